// The example scripts, run end to end as a person would run them: real
// binaries, a real coordinator process, real TLS on 127.0.0.1.
package examples_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinaries builds the commands the scripts use into a temporary bin
// directory, once per test binary.
func buildBinaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() { binDir, buildErr = build() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func build() (string, error) {
	bin, err := os.MkdirTemp("", "cleanroom-examples-bin-*")
	if err != nil {
		return "", err
	}
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
			return bin, fmt.Errorf("building %s: %v\n%s", target.pkg, err, b)
		}
	}
	return bin, nil
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

// TestREADMETutorial runs the README's tutorial commands exactly as
// written (but for `make build`, done here, and the scratch directory,
// which is the test's own), in one bash session from the repository's top
// directory.
func TestREADMETutorial(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs a whole scenario")
	}
	bin := buildBinaries(t)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "## Tutorial")
	end := strings.Index(text[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("README has no tutorial section")
	}
	section := text[start : start+1+end]
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	blocks := strings.Split(section, "```")
	for i := 1; i < len(blocks); i += 2 {
		for _, line := range strings.Split(blocks[i], "\n") {
			line = strings.TrimPrefix(line, "   ")
			if strings.TrimSpace(line) == "make build" {
				continue
			}
			script.WriteString(line + "\n")
		}
	}
	work := t.TempDir()
	body := strings.ReplaceAll(script.String(), "/tmp/cleanroom-tutorial", work)
	body = strings.ReplaceAll(body, "export PATH=$PWD/bin:$PATH", "export PATH="+bin+":$PATH")
	cmd := exec.Command("bash", "-c", body)
	cmd.Dir = ".."
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README tutorial failed: %v\n%s\n--- script ---\n%s", err, out.String(), body)
	}
	for _, want := range []string{"all 4 participants signed", "matches", "log verified"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the tutorial's output lacks %q:\n%s", want, out.String())
		}
	}
}
