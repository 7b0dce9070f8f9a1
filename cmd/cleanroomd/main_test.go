package main

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/tee"
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
			"flipbyte":      cmdFlipByte,
			"checkidentity": cmdCheckIdentity,
		},
	})
}

// cmdFlipByte writes a copy of a file with one bit flipped:
//
//	flipbyte FILE OFFSET OUT
//
// A negative OFFSET counts from the end. OUT may be FILE.
func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: flipbyte FILE OFFSET OUT")
	}
	data := []byte(ts.ReadFile(args[0]))
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	if off < 0 {
		off += len(data)
	}
	if off < 0 || off >= len(data) {
		ts.Fatalf("flipbyte: offset %s outside %d bytes", args[1], len(data))
	}
	data[off] ^= 0x01
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), data, 0o600))
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
	want, err := tee.ExecutableMeasurement()
	if err != nil {
		return err
	}
	if claims.Measurement != want {
		return fmt.Errorf("measurement %x is not the SHA-384 of the executable (%x)", claims.Measurement, want)
	}
	return nil
}
