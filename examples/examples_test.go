// The example scripts, run end to end as a person would run them: real
// binaries, a real coordinator process, real TLS on 127.0.0.1.
package examples_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildBinaries builds the commands the scripts use into a temporary bin
// directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, target := range []struct{ out, pkg string }{
		{"", "../cmd/cleanroom"},
		{"", "../cmd/cleanroomd"},
		{"ad-attribution-gen", "./ad-attribution/gen"},
		{"clinical-cohort-gen", "./clinical-cohort/gen"},
	} {
		out := bin + "/"
		if target.out != "" {
			out = filepath.Join(bin, target.out)
		}
		cmd := exec.Command("go", "build", "-tags=duckdb_arrow", "-o", out, target.pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", target.pkg, err, b)
		}
	}
	return bin
}

func TestExampleScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs two whole scenarios")
	}
	bin := buildBinaries(t)
	for _, ex := range []struct {
		script string
		rows   string
		want   []string
	}{
		{"ad-attribution/run.sh", "20000", []string{"matches", "rows released", "ad-attribution: done"}},
		{"clinical-cohort/run.sh", "20000", []string{"matches", "rows released", "clinical-cohort: done"}},
	} {
		t.Run(filepath.Dir(ex.script), func(t *testing.T) {
			work := t.TempDir()
			cmd := exec.Command("bash", ex.script)
			cmd.Env = append(os.Environ(), "BIN="+bin, "WORK="+work, "ROWS="+ex.rows)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\n%s", ex.script, err, out.String())
			}
			for _, w := range ex.want {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("%s: output lacks %q:\n%s", ex.script, w, out.String())
				}
			}
		})
	}
}
