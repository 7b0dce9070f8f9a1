package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/scripttest"
	"cleanroom.dev/cleanroom/internal/testenv"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"cleanroom": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI end to end from the scripts in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams("testdata/script"))
}

// scriptParams are the settings every script test shares, with the extra
// commands the scripts use.
func scriptParams(dir string) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"subst":    cmdSubst,
			"flipbyte": scripttest.FlipByte,
			"simcoord": cmdSimCoord,
			"serve":    cmdServe,
			"capture":  cmdCapture,
			"sha256":   cmdSHA256,
		},
	}
}

// cmdSubst writes a copy of a file with placeholders replaced by the trimmed
// content of other files:
//
//	subst TEMPLATE OUT NAME=FILE...
//
// replaces every {{NAME}} in TEMPLATE.
func cmdSubst(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: subst TEMPLATE OUT NAME=FILE...")
	}
	text := ts.ReadFile(args[0])
	for _, kv := range args[2:] {
		name, file, ok := strings.Cut(kv, "=")
		if !ok {
			ts.Fatalf("subst: %q is not NAME=FILE", kv)
		}
		value := strings.TrimSpace(ts.ReadFile(file))
		text = strings.ReplaceAll(text, "{{"+name+"}}", value)
	}
	if strings.Contains(text, "{{") {
		ts.Fatalf("subst: placeholders left in %s", args[1])
	}
	if err := os.WriteFile(ts.MkAbs(args[1]), []byte(text), 0o644); err != nil {
		ts.Fatalf("subst: %v", err)
	}
	fmt.Fprint(ts.Stdout(), "")
}

// cmdSimCoord initialises a simulated coordinator's data directory and
// writes its identity document and the two values a contract pins:
//
//	simcoord DIR
//
// writes DIR.identity.json, DIR.measurement and DIR.root.
func cmdSimCoord(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: simcoord DIR")
	}
	dir := ts.MkAbs(args[0])
	id, err := coordinator.Init(dir, coordinator.ModeSimulated)
	ts.Check(err)
	doc := id.Document
	b, err := json.MarshalIndent(doc, "", "  ")
	ts.Check(err)
	m := doc.Measurement
	ts.Check(os.WriteFile(dir+".identity.json", b, 0o644))
	ts.Check(os.WriteFile(dir+".measurement", []byte(hex.EncodeToString(m[:])), 0o644))
	ts.Check(os.WriteFile(dir+".root", []byte(hex.EncodeToString(doc.SimulatedRootSHA256[:])), 0o644))
}

// cmdServe starts a coordinator on the simulated platform on 127.0.0.1 in
// this process, for the rest of the script:
//
//	serve DIR [CHECKPOINT_INTERVAL]
//
// sets $COORDINATOR to its URL and $SIMULATED_ROOT and $MEASUREMENT to the
// values a contract pins, which it also writes to DIR.root and
// DIR.measurement (for subst).
func cmdServe(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: serve DIR [CHECKPOINT_INTERVAL]")
	}
	dir := ts.MkAbs(args[0])
	var cfg coordinator.Config
	if len(args) == 2 {
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		cfg.CheckpointInterval = d
	}
	srv, err := testenv.StartE(dir, cfg)
	ts.Check(err)
	ts.Defer(srv.Stop)
	doc := srv.Coord.Identity().Document
	root, measurement := hex.EncodeToString(doc.SimulatedRootSHA256[:]), hex.EncodeToString(doc.Measurement[:])
	ts.Setenv("COORDINATOR", srv.URL)
	ts.Setenv("SIMULATED_ROOT", root)
	ts.Setenv("MEASUREMENT", measurement)
	ts.Check(os.WriteFile(dir+".root", []byte(root), 0o644))
	ts.Check(os.WriteFile(dir+".measurement", []byte(measurement), 0o644))
}

// cmdSHA256 writes the SHA-256 of a file's bytes, in hex, to another:
//
//	sha256 FILE OUT
func cmdSHA256(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sha256 FILE OUT")
	}
	sum := sha256.Sum256([]byte(ts.ReadFile(args[0])))
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(hex.EncodeToString(sum[:])+"\n"), 0o644))
}

// cmdCapture sets an environment variable to what a regular expression's
// first group matches in a file (cp stderr FILE first to read a command's
// output):
//
//	capture VAR REGEXP FILE
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: capture VAR REGEXP FILE")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile(args[2]))
	if len(m) < 2 {
		ts.Fatalf("capture: %s does not match %q", args[2], args[1])
	}
	ts.Setenv(args[0], m[1])
}
