// The example scripts, run end to end as a person would run them: real
// binaries, a real coordinator process, real TLS on 127.0.0.1.
package examples_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
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
	// The sponsor's risk model, as the Makefile builds it.
	cmd := exec.Command("go", "build", "-trimpath", "-buildmode=c-shared", "-o", filepath.Join(bin, "risk_band.wasm"), "./clinical-cohort/riskmodel/wasm")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return bin, fmt.Errorf("building the risk model: %v\n%s", err, b)
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
		{"ad-attribution/run.sh", "20000", []string{"matches", "rows released",
			`with since="2026-10-01T00:00:00Z" until="2027-01-31T00:00:00Z" finished`, `parameters since="2026-10-01T00:00:00Z" until="2027-01-31T00:00:00Z"`,
			"ad-attribution: done"}},
		{"clinical-cohort/run.sh", "20000", []string{"matches", "rows released", "model risk_band submitted sealed", "model.submitted",
			"risk_band(int64, string, float64, int32) -> string from sponsor, commitment ", "only its provider sponsor may fetch it",
			`parameters max_age="75" min_age="40"`, "clinical-cohort: done"}},
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
// written (but for `make build`, done here), in one bash session from the
// repository's top directory, twice in a row in the same shell, as a new
// user re-running it would: both runs succeed, each in a fresh scratch
// directory (mktemp -d, under the test's own TMPDIR) with a fresh
// coordinator, keys and contract, so the second shows only its own
// results.
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
	body := strings.ReplaceAll(script.String(), "export PATH=$PWD/bin:$PATH", "export PATH="+bin+":$PATH")
	if body == script.String() {
		t.Fatal("the tutorial no longer puts the built binaries on PATH as this test expects")
	}
	twice := "set -euo pipefail\necho '=== first run'\n" + body + "echo '=== second run'\n" + body
	cmd := exec.Command("bash", "-c", twice)
	cmd.Dir = ".."
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README tutorial failed: %v\n%s\n--- script ---\n%s", err, out.String(), twice)
	}
	first, second, ok := strings.Cut(out.String(), "=== second run")
	if !ok {
		t.Fatalf("the second run did not start:\n%s", out.String())
	}
	registered := regexp.MustCompile(`contract ad-attribution-2026q4 \(([0-9a-f]{64})\) registered at log index`)
	var ids []string
	for i, run := range []string{first, second} {
		for _, want := range []string{"all 4 participants signed", "matches", "log verified",
			"binds against the datasets of contract.yaml", "fits dataset impressions", "ready: a run may start (5 runs left)",
			`run 1 of 5 (`, `with since="2026-10-01T00:00:00Z" until="2027-01-31T00:00:00Z" finished`,
			`with since="2026-12-01T00:00:00Z" until="2027-01-01T00:00:00Z" finished`, "first audit into this state directory"} {
			if !strings.Contains(run, want) {
				t.Fatalf("run %d of the tutorial lacks %q:\n%s", i+1, want, run)
			}
		}
		m := registered.FindStringSubmatch(run)
		if m == nil {
			t.Fatalf("run %d registered no contract:\n%s", i+1, run)
		}
		ids = append(ids, m[1])
	}
	if ids[0] == ids[1] {
		t.Fatalf("both runs registered contract %s: the second reused the first's keys", ids[0])
	}
	if dirs, _ := os.ReadDir(tmp); len(dirs) != 2 {
		t.Fatalf("the two runs used %d scratch directories under TMPDIR, want 2", len(dirs))
	}
}

// TestEncryptInBoundedMemory encrypts a few hundred megabytes of CSV with
// `cleanroom dataset encrypt` and checks the process's peak memory stays
// far below the input's size: conversion and encryption stream, so memory
// does not grow with the input (a 5 GB input is measured the same way; see
// docs/security-testing.md).
func TestEncryptInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and encrypts a few hundred megabytes")
	}
	bin := buildBinaries(t)
	work := t.TempDir()
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = work
		return cmd
	}
	must := func(cmd *exec.Cmd) string {
		t.Helper()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, errb.String())
		}
		return out.String()
	}
	must(run("cleanroomd", "init", "--data-dir", "coord", "--attestation", "simulated"))
	identity := must(run("cleanroomd", "identity", "--data-dir", "coord"))
	os.WriteFile(filepath.Join(work, "identity.json"), []byte(identity), 0o644)
	field := func(name string) string {
		i := strings.Index(identity, `"`+name+`": "`)
		if i < 0 {
			t.Fatalf("identity document lacks %s", name)
		}
		rest := identity[i+len(name)+5:]
		return rest[:strings.IndexByte(rest, '"')]
	}
	keys := map[string]string{}
	for _, p := range []string{"publisher", "advertiser", "measurer", "auditor"} {
		keys[p] = strings.TrimSpace(must(run("cleanroom", "keygen", "--out", p)))
	}
	must(run("ad-attribution-gen", "contract", "--out", "contract.yaml",
		"--set", "EXPIRES_AT=2099-01-01T00:00:00Z",
		"--set", "PUBLISHER_KEY="+keys["publisher"], "--set", "ADVERTISER_KEY="+keys["advertiser"],
		"--set", "MEASURER_KEY="+keys["measurer"], "--set", "AUDITOR_KEY="+keys["auditor"],
		"--set", "QUERY_SHA256="+strings.Repeat("ab", 32),
		"--set", "MEASUREMENT="+field("measurement"), "--set", "SIMULATED_ROOT_SHA256="+field("simulated_root_sha256")))
	must(run("ad-attribution-gen", "--out", "data", "--rows", "8000000", "--format", "csv"))
	fi, err := os.Stat(filepath.Join(work, "data", "impressions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := run("cleanroom", "dataset", "encrypt", "data/impressions.csv", "--contract", "contract.yaml",
		"--dataset", "impressions", "--coordinator-identity", "identity.json", "--out", "impressions.env", "--key", "publisher.key")
	must(cmd)
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	t.Logf("encrypted %d MB of CSV with a peak RSS of %d MB", fi.Size()>>20, peak>>20)
	if fi.Size() < 300<<20 {
		t.Fatalf("the input has only %d bytes", fi.Size())
	}
	if peak > 200<<20 {
		t.Fatalf("peak memory %d MB for a %d MB input: encryption does not stream", peak>>20, fi.Size()>>20)
	}
}
