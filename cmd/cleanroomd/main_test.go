package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"crypto/sha512"
	"io"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/scripttest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"cleanroomd": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the daemon's commands end to end from testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"flipbyte":      scripttest.FlipByte,
			"checkidentity": cmdCheckIdentity,
			"waitfor":       cmdWaitFor,
		},
	})
}

// cmdWaitFor waits (up to a minute) until a file exists, such as the
// checkpoint a daemon started in the background publishes:
//
//	waitfor PATH
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfor PATH")
	}
	path := ts.MkAbs(args[0])
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	ts.Fatalf("waitfor: %s did not appear within a minute", args[0])
}

// cmdCheckIdentity verifies an identity document as a participant would,
// pinning the simulated root and measurement the document shows, and checks
// that its key is the one in KEYFILE:
//
//	checkidentity DOC KEYFILE
func cmdCheckIdentity(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: checkidentity DOC KEYFILE")
	}
	err := checkIdentity(ts.ReadFile(args[0]), ts.ReadFile(args[1]))
	if neg {
		if err == nil {
			ts.Fatalf("identity document verified")
		}
		return
	}
	ts.Check(err)
}

func checkIdentity(docText, keyText string) error {
	doc, err := attest.ParseIdentityDocument([]byte(docText))
	if err != nil {
		return err
	}
	key, err := cleanroom.ParsePublicKey(keyText)
	if err != nil {
		return err
	}
	if !doc.PublicKeys[0].Equal(key) {
		return fmt.Errorf("the document's key is %s, not %s", doc.PublicKeys[0].Fingerprint().Short(), key.Fingerprint().Short())
	}
	cp := &contracts.CoordinatorPolicy{
		Platform:            doc.Platform,
		Measurements:        [][48]byte{doc.Measurement},
		SimulatedRootSHA256: doc.SimulatedRootSHA256,
	}
	claims, err := doc.Verify(cp)
	if err != nil {
		return err
	}
	// The simulated measurement is the SHA-384 of the running executable:
	// here the test binary, which the script ran as cleanroomd.
	want, err := executableSHA384()
	if err != nil {
		return err
	}
	if claims.Measurement != want {
		return fmt.Errorf("measurement %x is not the SHA-384 of the executable (%x)", claims.Measurement, want)
	}
	return nil
}

// executableSHA384 is the SHA-384 of the running test binary.
func executableSHA384() ([48]byte, error) {
	var m [48]byte
	exe, err := os.Executable()
	if err != nil {
		return m, err
	}
	f, err := os.Open(exe)
	if err != nil {
		return m, err
	}
	defer f.Close()
	h := sha512.New384()
	if _, err := io.Copy(h, f); err != nil {
		return m, err
	}
	h.Sum(m[:0])
	return m, nil
}
