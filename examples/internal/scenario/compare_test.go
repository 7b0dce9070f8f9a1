package scenario

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompare sets a private result beside an exact one: relative errors,
// the median per column, keys the private result drops or adds, and the
// command line's refusals.
func TestCompare(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	exact := write("exact.csv", "campaign,users,revenue\na,100,1000\nb,50,500\nc,10,100\n")
	private := write("private.csv", "campaign,users,revenue\na,110,1000\nb,45,600\npilot,3,7\n")
	e, err := ReadCSVTable(exact)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ReadCSVTable(private)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compare(e, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rows) != 2 || strings.Join(c.Missing, ",") != "c" || len(c.Extra) != 1 || c.Extra[0][0] != "pilot" {
		t.Fatalf("comparison %+v", c)
	}
	// users: errors 10% and 10%; revenue: 0% and 20%.
	if math.Abs(c.Median[0]-0.1) > 1e-12 || math.Abs(c.Median[1]-0.1) > 1e-12 {
		t.Fatalf("medians %v", c.Median)
	}
	var out, errOut bytes.Buffer
	if code := Main(Spec{Name: "tiny"}, []string{"compare", exact, private}, &out, &errOut); code != 0 {
		t.Fatalf("compare: %d %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "median relative error per group: users 10.0%, revenue 10.0%") || !strings.Contains(out.String(), "not released by partition selection: c") {
		t.Fatalf("output:\n%s", out.String())
	}
	other := write("other.csv", "campaign,users\na,1\n")
	for _, args := range [][]string{{"compare", exact}, {"compare", exact, other}, {"compare", exact, filepath.Join(dir, "none.csv")}} {
		errOut.Reset()
		if code := Main(Spec{Name: "tiny"}, args, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "tiny-gen: error:") {
			t.Errorf("%v: exit %d, %s", args, code, errOut.String())
		}
	}
}
