package attest_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/fuzzseed"
)

// validateAll checks claims against a policy that accepts anything, so the
// validation code runs on whatever verifies.
func validateAll(claims *attest.Claims, err error) {
	if err != nil {
		return
	}
	p := attest.Policy{InsecureAnyMeasurement: true, InsecureAllowDebug: true, InsecureAnyReportData: true}
	p.Validate(claims)
	attest.NewEAR(claims, nil, nil, attest.EAROptions{})
}

// FuzzTDXQuote: a TDX quote of any bytes, with or without the real
// collateral, is refused or verified without a panic.
func FuzzTDXQuote(f *testing.F) {
	col, err := attest.LoadTDXCollateral("testdata/tdx")
	if err != nil {
		f.Fatal(err)
	}
	v, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformTDX, Now: func() time.Time { return tdxSampleTime }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, quote []byte) {
		for _, c := range []*attest.TDXCollateral{nil, col} {
			ev, err := attest.NewTDXEvidence(contracts.PlatformTDX, quote, c)
			if err != nil {
				return
			}
			validateAll(v.Verify(ev))
		}
	})
}

// FuzzNitroDocument: a Nitro attestation document of any bytes is refused
// or verified without a panic, on the real platform and on the simulated one
// pinned to the document's own root.
func FuzzNitroDocument(f *testing.F) {
	v, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformNitro})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		ev, err := attest.NewNitroEvidence(contracts.PlatformNitro, doc)
		if err != nil {
			return
		}
		validateAll(v.Verify(ev))
		sim, err := attest.NewNitroEvidence(contracts.PlatformNitroSimulated, doc)
		if err != nil {
			t.Fatal(err)
		}
		pin := sha256.Sum256(doc)
		vs, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformNitroSimulated, SimulatedRootSHA256: &pin})
		if err != nil {
			t.Fatal(err)
		}
		validateAll(vs.Verify(sim))
	})
}

// FuzzCCAToken: a CCA token of any bytes is refused or verified with the
// TF-RMM platform key without a panic.
func FuzzCCAToken(f *testing.F) {
	ev, iak := ccaSample(f)
	v, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformCCA, CCAIAKSHA256: [][32]byte{iak}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token []byte) {
		e, err := attest.NewCCAEvidence(contracts.PlatformCCA, token, ev.IAK())
		if err != nil {
			return
		}
		validateAll(v.Verify(e))
	})
}

// TestWritePlatformFuzzSeeds rewrites the seed corpora of the platform fuzz
// targets from the real samples (go test -run TestWritePlatformFuzzSeeds
// -update-seeds).
func TestWritePlatformFuzzSeeds(t *testing.T) {
	if !*fuzzseed.Update {
		t.Skip("run with -update-seeds to rewrite the seed corpora")
	}
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i%len(c)] ^= 0x80
		return c
	}
	quote := readFile(t, "testdata/tdx/quote.dat")
	fuzzseed.Write(t, "FuzzTDXQuote", fuzzseed.Bytes(quote, flip(quote, 2), flip(quote, 0x27c+0x80+6), quote[:0x400], []byte{})...)
	doc := readFile(t, "testdata/nitro/attestation-doc.cbor")
	fuzzseed.Write(t, "FuzzNitroDocument", fuzzseed.Bytes(doc, flip(doc, 20), flip(doc, len(doc)-1), doc[:100], []byte{0x84})...)
	token := readFile(t, "testdata/cca/token.cbor")
	fuzzseed.Write(t, "FuzzCCAToken", fuzzseed.Bytes(token, flip(token, 8), flip(token, len(token)-3), token[:64])...)
}

// platformEvidenceSeeds returns the evidence encoding of each real sample,
// for FuzzParseEvidence's corpus.
func platformEvidenceSeeds(t *testing.T) [][]byte {
	col, err := attest.LoadTDXCollateral("testdata/tdx")
	if err != nil {
		t.Fatal(err)
	}
	tdx, err := attest.NewTDXEvidence(contracts.PlatformTDX, readFile(t, "testdata/tdx/quote.dat"), col)
	if err != nil {
		t.Fatal(err)
	}
	cca, _ := ccaSample(t)
	var out [][]byte
	for _, ev := range []attest.Evidence{tdx, nitroSample(t), cca} {
		b, err := ev.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
