package contracts

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestFillTemplate fills the commented template with keys, the
// coordinator's values and the query's digest: the result parses, holds
// what was written, and keeps the template's comments.
func TestFillTemplate(t *testing.T) {
	var m [48]byte
	if _, err := hex.Decode(m[:], []byte(measurement)); err != nil {
		t.Fatal(err)
	}
	root, alg := [32]byte{1, 2, 3}, [32]byte{9, 9}
	f := Fill{Name: "filled", ExpiresAt: testNow.Add(90 * 24 * time.Hour), Keys: map[string]string{},
		Platform: PlatformSEVSNPSimulated, Measurement: &m, SimulatedRoot: &root, AlgorithmSHA256: &alg}
	for _, p := range []string{"publisher", "advertiser", "measurer", "auditor"} {
		f.Keys[p] = parties[p].Public().String() + "\n"
	}
	out, err := FillTemplate([]byte(Template), f)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(out, ParseOptions{Now: testNow})
	if err != nil {
		t.Fatalf("the filled template does not parse: %v\n%s", err, out)
	}
	switch {
	case c.Name != "filled", !c.ExpiresAt.Equal(f.ExpiresAt), c.Algorithm.SHA256 != alg:
		t.Fatalf("name %q, expiry %v, algorithm %x", c.Name, c.ExpiresAt, c.Algorithm.SHA256)
	case c.Coordinator.Platform != PlatformSEVSNPSimulated || c.Coordinator.Measurements[0] != m || *c.Coordinator.SimulatedRootSHA256 != root:
		t.Fatalf("coordinator %+v", c.Coordinator)
	case !c.Participant("measurer").PublicKey.Equal(parties["measurer"].Public()):
		t.Fatal("measurer's key not written")
	case !strings.Contains(string(out), "# data_provider, algorithm_provider,"):
		t.Fatalf("the template's comments were lost:\n%s", out)
	}
	// Filling nothing changes no value.
	same, err := FillTemplate([]byte(Template), Fill{})
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if yaml.Unmarshal([]byte(Template), &a) != nil || yaml.Unmarshal(same, &b) != nil || !strings.EqualFold(yamlString(t, a), yamlString(t, b)) {
		t.Fatal("an empty fill changed the template's values")
	}
}

func yamlString(t *testing.T, v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFillTemplateRefusals names what is wrong with the fill.
func TestFillTemplateRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, draft string
		f           Fill
		want        string
	}{
		{"unknown participant", Template, Fill{Keys: map[string]string{"nurse": parties["publisher"].Public().String()}},
			`the draft has no participant "nurse"; its participants are: publisher, advertiser, measurer, auditor`},
		{"not a key", Template, Fill{Keys: map[string]string{"publisher": "SELECT 1"}}, "the key of participant publisher"},
		{"not a mapping", "- a\n- b\n", Fill{Name: "x"}, "not a YAML mapping"},
		{"not YAML", "a: [\n", Fill{Name: "x"}, "not YAML"},
		{"no participants", "version: 1\n", Fill{Keys: map[string]string{"publisher": parties["publisher"].Public().String()}}, "no participants list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FillTemplate([]byte(tc.draft), tc.f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzFillTemplate: any draft is filled or refused, never a panic, and a
// filled one is YAML again.
func FuzzFillTemplate(f *testing.F) {
	for _, s := range []string{Template, baseYAML(), "", "{}", "participants: 1\n", "participants: [{id: publisher}]\ncoordinator: {}\n", "a: &x 1\nb: *x\n"} {
		f.Add([]byte(s))
	}
	var m [48]byte
	fill := Fill{Name: "n", ExpiresAt: testNow, Keys: map[string]string{"publisher": parties["publisher"].Public().String()}, Platform: PlatformSEVSNP, Measurement: &m, AlgorithmSHA256: &[32]byte{}}
	f.Fuzz(func(t *testing.T, draft []byte) {
		out, err := FillTemplate(draft, fill)
		if err != nil {
			return
		}
		var v any
		if err := yaml.Unmarshal(out, &v); err != nil {
			t.Fatalf("the filled draft is not YAML: %v", err)
		}
	})
}
