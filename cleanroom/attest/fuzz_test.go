package attest_test

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/fuzzseed"
)

// fuzzKey is a key identity documents of fuzzed evidence name.
var fuzzKey = func() *cleanroom.Identity {
	id, err := cleanroom.GenerateIdentity()
	if err != nil {
		panic(err)
	}
	return id
}()

// FuzzParseEvidence: parsing never panics; what parses re-encodes to the
// same bytes (one encoding per value); verifying it, and validating what
// verifies, never panics.
func FuzzParseEvidence(f *testing.F) {
	amd, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformSEVSNP, Now: inVCEKValidity})
	if err != nil {
		f.Fatal(err)
	}
	validate := func(claims *attest.Claims, err error) {
		if err != nil {
			return
		}
		p := attest.Policy{InsecureAnyMeasurement: true, InsecureAllowDebug: true, InsecureAnyReportData: true}
		p.Validate(claims)
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
		switch p := ev.Platform(); {
		case p == contracts.PlatformSEVSNP:
			validate(amd.Verify(ev))
		case p == contracts.PlatformSEVSNPSimulated:
			pin := sha256.Sum256(ev.(*attest.SNPEvidence).ARKCert())
			v, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformSEVSNPSimulated, SimulatedRootSHA256: &pin})
			if err != nil {
				t.Fatal(err)
			}
			validate(v.Verify(ev))
		default:
			// The other platforms, pinned to the evidence's own root (or
			// platform key).
			opts := attest.VerifierOptions{Platform: p}
			if doc, err := attest.NewIdentityDocument(fuzzKey.Public(), ev); err == nil && doc.SimulatedRootSHA256 != nil {
				opts.SimulatedRootSHA256 = doc.SimulatedRootSHA256
			} else if p.Simulated() {
				return
			}
			if c, ok := ev.(*attest.CCAEvidence); ok && p == contracts.PlatformCCA {
				opts.CCAIAKSHA256 = [][32]byte{sha256.Sum256(c.IAK())}
			}
			v, err := attest.NewVerifier(opts)
			if err != nil {
				t.Fatal(err)
			}
			validate(v.Verify(ev))
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

// TestWriteFuzzSeeds rewrites testdata/fuzz/Fuzz*/ when run with
// -update-seeds.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*fuzzseed.Update {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz")
	}
	doc, _, _ := simIdentity(t)
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
	seeds := [][]byte{simEv, realEv, simEv[:len(simEv)/3], []byte{0xa0}}
	// Genuine simulated evidence for each report field the policy refuses,
	// so the fuzzer starts from every refusal.
	p1, _ := twoPlatforms(t)
	for _, tc := range refusedReports() {
		ev, err := p1.SignReport(changeReport(t, doc.Evidence.(*attest.SNPEvidence).Report(), tc.change))
		if err != nil {
			t.Fatal(err)
		}
		b, err := ev.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	v6 := doc.Evidence.(*attest.SNPEvidence).Report()
	v6[0] = 6 // VERSION, outside what the parser understands
	ev, err := p1.SignReport(v6)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ev.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, b)
	seeds = append(seeds, platformEvidenceSeeds(t)...)
	fuzzseed.Write(t, "FuzzParseEvidence", fuzzseed.Bytes(seeds...)...)
	fuzzseed.Write(t, "FuzzParseIdentityDocument", fuzzseed.Bytes(docJSON, realDocJSON,
		[]byte(`{"version":1,"version":1}`), []byte(`{}`))...)
}
