package attest_test

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// FuzzParseEvidence: parsing never panics; what parses re-encodes to the
// same bytes (one encoding per value) and verifying it never panics.
func FuzzParseEvidence(f *testing.F) {
	amd, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformSEVSNP, Now: inVCEKValidity})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := attest.ParseEvidence(data)
		if err != nil {
			return
		}
		again, err := ev.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed evidence does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("evidence parsed from non-canonical bytes")
		}
		switch ev.Platform() {
		case contracts.PlatformSEVSNP:
			amd.Verify(ev)
		case contracts.PlatformSEVSNPSimulated:
			pin := sha256.Sum256(ev.(*attest.SNPEvidence).ARKCert())
			v, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformSEVSNPSimulated, SimulatedRootSHA256: &pin})
			if err != nil {
				t.Fatal(err)
			}
			v.Verify(ev)
		}
	})
}

// FuzzParseIdentityDocument: parsing never panics, and what parses
// marshals to a document that parses to the same marshalled form.
func FuzzParseIdentityDocument(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := attest.ParseIdentityDocument(data)
		if err != nil {
			return
		}
		out, err := doc.MarshalJSON()
		if err != nil {
			t.Fatalf("parsed document does not marshal: %v", err)
		}
		back, err := attest.ParseIdentityDocument(out)
		if err != nil {
			t.Fatalf("marshalled document does not parse: %v", err)
		}
		again, _ := back.MarshalJSON()
		if !bytes.Equal(again, out) {
			t.Fatal("document does not round-trip")
		}
	})
}

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false, "rewrite the committed fuzz seed corpora in testdata/fuzz")

// TestWriteFuzzSeeds regenerates testdata/fuzz/Fuzz*/ when run with
// -write-fuzz-seeds; otherwise it only checks that the corpora exist.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeFuzzSeeds {
		for _, name := range []string{"FuzzParseEvidence", "FuzzParseIdentityDocument"} {
			if m, _ := filepath.Glob(filepath.Join("testdata/fuzz", name, "*")); len(m) == 0 {
				t.Errorf("no committed seed corpus for %s (run go test -run TestWriteFuzzSeeds -write-fuzz-seeds)", name)
			}
		}
		return
	}
	doc, _, p1 := simIdentity(t)
	simEv, err := doc.Evidence.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	report, _ := milanFiles(t)
	realEv, err := milanEvidence(t, report).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	docJSON, err := doc.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	realDoc, err := attest.NewIdentityDocument(newKey(t), milanEvidence(t, report))
	if err != nil {
		t.Fatal(err)
	}
	realDocJSON, err := realDoc.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	_ = p1
	write := func(fuzz, name string, data []byte) {
		dir := filepath.Join("testdata/fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("FuzzParseEvidence", "simulated", simEv)
	write("FuzzParseEvidence", "milan", realEv)
	write("FuzzParseEvidence", "truncated", simEv[:len(simEv)/3])
	write("FuzzParseEvidence", "empty-map", []byte{0xa0})
	write("FuzzParseIdentityDocument", "simulated", docJSON)
	write("FuzzParseIdentityDocument", "milan", realDocJSON)
	write("FuzzParseIdentityDocument", "duplicate-key", []byte(`{"version":1,"version":1}`))
	write("FuzzParseIdentityDocument", "empty-object", []byte(`{}`))
}
