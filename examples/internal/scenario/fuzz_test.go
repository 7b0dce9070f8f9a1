package scenario

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzFill: whatever value Fill accepts stays inside its quoted field — the
// filled document parses to the same structure with exactly that value.
func FuzzFill(f *testing.F) {
	f.Add("cleanroom-pub-1:AAAA_-")
	f.Add(`x", b: "y`)
	f.Add("x\nb: y")
	f.Add("{{A}}")
	f.Add("& * ! | > ' % @ `")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		tmpl := []byte("a: \"{{A}}\"\nb: [\"{{A}}\"]\n")
		out, err := Fill(tmpl, map[string]string{"A": v})
		if err != nil {
			return
		}
		var doc struct {
			A string   `yaml:"a"`
			B []string `yaml:"b"`
		}
		if err := yaml.Unmarshal(out, &doc); err != nil {
			t.Fatalf("filled template does not parse: %v\n%s", err, out)
		}
		if doc.A != v || len(doc.B) != 1 || doc.B[0] != v {
			t.Fatalf("value %q became a=%q b=%q", v, doc.A, doc.B)
		}
	})
}
