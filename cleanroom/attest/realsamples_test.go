package attest_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// The real samples in testdata (see testdata/README.md): a production TDX
// quote with Intel PCS collateral (go-tdx-guest), a Nitro Enclaves
// attestation document from AWS hardware (Sui's framework tests), and a CCA
// token from TF-RMM with its platform key (ccatoken's test vectors).

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tdxSampleTime lies inside the validity of the sample's collateral
// (issued 2023-06-18, next update 2023-07-18).
var tdxSampleTime = time.Date(2023, 7, 1, 1, 0, 0, 0, time.UTC)

func tdxSample(t testing.TB, withCollateral bool) *attest.TDXEvidence {
	t.Helper()
	var c *attest.TDXCollateral
	if withCollateral {
		var err error
		if c, err = attest.LoadTDXCollateral("testdata/tdx"); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := attest.NewTDXEvidence(contracts.PlatformTDX, readFile(t, "testdata/tdx/quote.dat"), c)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func verifierAt(t testing.TB, opts attest.VerifierOptions, at time.Time) *attest.Verifier {
	t.Helper()
	opts.Now = func() time.Time { return at }
	v, err := attest.NewVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantCheck(t *testing.T, err error, check string, kind error) {
	t.Helper()
	var ce *attest.CheckError
	if !errors.As(err, &ce) || ce.Check != check || !errors.Is(err, kind) {
		t.Fatalf("want a %q check failure wrapping %v, got %v", check, kind, err)
	}
}

func TestTDXRealQuote(t *testing.T) {
	for _, collateral := range []bool{false, true} {
		v := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformTDX}, tdxSampleTime)
		c, err := v.Verify(tdxSample(t, collateral))
		if err != nil {
			t.Fatalf("collateral %v: %v", collateral, err)
		}
		if c.TDX == nil || c.Platform != contracts.PlatformTDX || c.Measurement != c.TDX.MRTD || c.TDX.QuoteVersion != 4 {
			t.Fatalf("claims %+v", c)
		}
		if collateral != (c.TDX.TCBStatus != "") {
			t.Errorf("collateral %v, TCB status %q", collateral, c.TDX.TCBStatus)
		}
		// The sample collateral is Intel-signed and valid then, but lists
		// only TCB levels newer than the sampled platform's (as
		// go-tdx-guest's own TestNegativeTcbInfoTcbStatusV4 shows).
		if collateral && c.TDX.TCBStatus != attest.TDXTCBNotSupported {
			t.Errorf("TCB status %q, want %q", c.TDX.TCBStatus, attest.TDXTCBNotSupported)
		}
		if c.TDX.FMSPC != "50806f000000" {
			t.Errorf("FMSPC %q", c.TDX.FMSPC)
		}
		// The reference values it carries are accepted, others refused.
		refs := &contracts.TDXRefs{MRTD: [][48]byte{c.TDX.MRTD}, RTMR: [][4][48]byte{c.TDX.RTMR}, MinTEETCBSVN: c.TDX.TEETCBSVN}
		p := attest.Policy{TDX: refs, InsecureAllowDebug: c.Debug, ReportData: &c.ReportData}
		if err := p.Validate(c); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTDXRealQuoteRefusals(t *testing.T) {
	v := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformTDX}, tdxSampleTime)
	good, err := v.Verify(tdxSample(t, true))
	if err != nil {
		t.Fatal(err)
	}
	refs := func() *contracts.TDXRefs {
		return &contracts.TDXRefs{MRTD: [][48]byte{good.TDX.MRTD}, RTMR: [][4][48]byte{good.TDX.RTMR}}
	}
	other := [64]byte{1}
	cases := []struct {
		name   string
		policy func() attest.Policy
		check  string
	}{
		{"wrong mrtd", func() attest.Policy {
			r := refs()
			r.MRTD[0][0] ^= 1
			return attest.Policy{TDX: r, ReportData: &good.ReportData}
		}, attest.CheckMRTD},
		{"wrong rtmr", func() attest.Policy {
			r := refs()
			r.RTMR[0][2][47] ^= 1
			return attest.Policy{TDX: r, ReportData: &good.ReportData}
		}, attest.CheckRTMR},
		{"tee tcb svn too old", func() attest.Policy {
			r := refs()
			r.MinTEETCBSVN = good.TDX.TEETCBSVN
			r.MinTEETCBSVN[0]++
			return attest.Policy{TDX: r, ReportData: &good.ReportData}
		}, attest.CheckTEETCBSVN},
		{"bound to another key", func() attest.Policy { return attest.Policy{TDX: refs(), ReportData: &other} }, attest.CheckReportData},
		{"no tdx reference values", func() attest.Policy {
			return attest.Policy{Measurements: [][48]byte{good.Measurement}, ReportData: &good.ReportData}
		}, attest.CheckMeasurement},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.policy()
			wantCheck(t, p.Validate(good), tc.check, attest.ErrRefused)
		})
	}
}

// Any byte flipped in the quote's signed parts is refused as not genuine
// (or malformed, where the flip breaks the structure), naming the reason.
func TestTDXRealQuoteFlippedBytes(t *testing.T) {
	quote := readFile(t, "testdata/tdx/quote.dat")
	v := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformTDX}, tdxSampleTime)
	// Header and TD quote body (signed by the attestation key), the
	// signature, the attestation key, the QE report (signed by the PCK),
	// the QE report signature, and the PCK chain.
	offsets := []int{0x08, 0x0c, 0x1c, 0x30, 0x40, 0xb8, 0x138, 0x1f0, 0x230, 0x277, 0x27c, 0x2bc, 0x2fe, 0x400, 0x480, 0x500, 0x600, 0x800, 0x1000}
	for step := 0x31; step < 0x278; step += 0x37 {
		offsets = append(offsets, step)
	}
	reasons := map[string]int{}
	for _, off := range offsets {
		q := append([]byte(nil), quote...)
		q[off] ^= 0x01
		ev, err := attest.NewTDXEvidence(contracts.PlatformTDX, q, nil)
		if err == nil {
			_, err = v.Verify(ev)
		}
		if err == nil {
			t.Errorf("byte %#x flipped: accepted", off)
			continue
		}
		var ce *attest.CheckError
		switch {
		case errors.As(err, &ce) && errors.Is(err, attest.ErrNotGenuine):
			reasons[ce.Check]++
		case errors.Is(err, attest.ErrMalformed):
			reasons["malformed"]++
		default:
			t.Errorf("byte %#x flipped: unexpected error %v", off, err)
		}
	}
	if reasons[attest.CheckSignature] == 0 {
		t.Errorf("no flip was reported as a bad signature: %v", reasons)
	}
	t.Logf("refusals by reason: %v", reasons)
}

func TestTDXRealQuoteTrust(t *testing.T) {
	ev := tdxSample(t, true)
	// Expired collateral.
	_, err := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformTDX}, time.Date(2023, 8, 1, 0, 0, 0, 0, time.UTC)).Verify(ev)
	wantCheck(t, err, attest.CheckCollateral, attest.ErrNotGenuine)
	// The real quote on the simulated platform: its root is not the pin.
	pin := [32]byte{1}
	_, err = verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformTDXSimulated, SimulatedRootSHA256: &pin}, tdxSampleTime).Verify(ev)
	wantCheck(t, err, attest.CheckPlatform, attest.ErrNotGenuine)
	// Collateral for another platform (FMSPC) is refused.
	c := ev.Collateral()
	c.TCBInfo = []byte(strings.Replace(string(c.TCBInfo), "50806f000000", "50806f000001", 1))
	ev2, err := ev.WithCollateral(c)
	if err != nil {
		t.Fatal(err)
	}
	_, err = verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformTDX}, tdxSampleTime).Verify(ev2)
	wantCheck(t, err, attest.CheckCollateral, attest.ErrNotGenuine)
}

// nitroSampleTime is when the sample document was signed.
var nitroSampleTime = time.UnixMilli(1731627989450).UTC()

func nitroSample(t testing.TB) *attest.NitroEvidence {
	t.Helper()
	ev, err := attest.NewNitroEvidence(contracts.PlatformNitro, readFile(t, "testdata/nitro/attestation-doc.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestNitroRealDocument(t *testing.T) {
	v := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformNitro}, time.Now())
	c, err := v.Verify(nitroSample(t))
	if err != nil {
		t.Fatal(err)
	}
	n := c.Nitro
	if n == nil || n.ModuleID != "i-0f73a4b4cb74cc9f2-enc0192e4188fef781d" || !n.Timestamp.Equal(nitroSampleTime) || len(n.UserData) != 32 {
		t.Fatalf("claims %+v", n)
	}
	// PCR0-2 are zero: AWS made it for an enclave in debug mode.
	if !c.Debug {
		t.Error("a document with zero PCRs is not reported as debug")
	}
	pcr3 := n.PCR(3)
	p := attest.Policy{Nitro: &contracts.NitroRefs{PCR0: [][48]byte{{}}, PCR1: [][48]byte{{}}}, InsecureAllowDebug: true, InsecureAnyReportData: true}
	if err := p.Validate(c); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		p     attest.Policy
		check string
	}{
		{"wrong pcr0", attest.Policy{Nitro: &contracts.NitroRefs{PCR0: [][48]byte{pcr3}}, InsecureAllowDebug: true, InsecureAnyReportData: true}, attest.CheckPCR},
		{"wrong pcr2", attest.Policy{Nitro: &contracts.NitroRefs{PCR0: [][48]byte{{}}, PCR2: [][48]byte{pcr3}}, InsecureAllowDebug: true, InsecureAnyReportData: true}, attest.CheckPCR},
		{"debug not allowed", attest.Policy{Nitro: &contracts.NitroRefs{PCR0: [][48]byte{{}}}, InsecureAnyReportData: true}, attest.CheckDebug},
		{"wrong binding", attest.Policy{Nitro: &contracts.NitroRefs{PCR0: [][48]byte{{}}}, InsecureAllowDebug: true, ReportData: &[64]byte{}}, attest.CheckReportData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantCheck(t, tc.p.Validate(c), tc.check, attest.ErrRefused) })
	}
}

func TestNitroRealDocumentTrust(t *testing.T) {
	doc := readFile(t, "testdata/nitro/attestation-doc.cbor")
	v := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformNitro}, time.Now())
	// A flipped signature byte (the signature is the last 96 bytes).
	bad := append([]byte(nil), doc...)
	bad[len(bad)-10] ^= 1
	ev, _ := attest.NewNitroEvidence(contracts.PlatformNitro, bad)
	_, err := v.Verify(ev)
	wantCheck(t, err, attest.CheckSignature, attest.ErrNotGenuine)
	// A flipped payload byte (inside PCR3).
	i := strings.Index(string(doc), string([]byte{0x63, 0x9a, 0x8b, 0x65}))
	bad = append([]byte(nil), doc...)
	bad[i] ^= 1
	ev, _ = attest.NewNitroEvidence(contracts.PlatformNitro, bad)
	_, err = v.Verify(ev)
	wantCheck(t, err, attest.CheckSignature, attest.ErrNotGenuine)
	// Another root: the real document on the simulated platform.
	pin := sha256.Sum256([]byte("another root"))
	_, err = verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformNitroSimulated, SimulatedRootSHA256: &pin}, time.Now()).Verify(nitroSample(t))
	wantCheck(t, err, attest.CheckPlatform, attest.ErrNotGenuine)
}

func ccaSample(t testing.TB) (*attest.CCAEvidence, [32]byte) {
	t.Helper()
	b, _ := pem.Decode(readFile(t, "testdata/cca/platform.pub"))
	if _, err := x509.ParsePKIXPublicKey(b.Bytes); err != nil {
		t.Fatal(err)
	}
	ev, err := attest.NewCCAEvidence(contracts.PlatformCCA, readFile(t, "testdata/cca/token.cbor"), b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return ev, sha256.Sum256(b.Bytes)
}

func TestCCARealToken(t *testing.T) {
	ev, iak := ccaSample(t)
	v := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformCCA, CCAIAKSHA256: [][32]byte{iak}}, time.Now())
	c, err := v.Verify(ev)
	if err != nil {
		t.Fatal(err)
	}
	k := c.CCA
	if k == nil || len(k.RIM) != 32 || k.HashAlgorithm != "sha-256" || !k.LifecycleSecured() || len(k.SWComponents) != 4 || c.Debug {
		t.Fatalf("claims %+v", k)
	}
	refs := &contracts.CCARefs{RIM: [][]byte{k.RIM}, Platform: contracts.CCAPlatformRefs{ImplementationIDs: [][]byte{k.ImplementationID}, SWMeasurements: [][]byte{k.SWComponents[0].Measurement}}}
	p := attest.Policy{CCA: refs, ReportData: &c.ReportData}
	if err := p.Validate(c); err != nil {
		t.Fatal(err)
	}
	wrongRIM := *refs
	wrongRIM.RIM = [][]byte{make([]byte, 48)}
	wrongImpl := *refs
	wrongImpl.Platform.ImplementationIDs = [][]byte{make([]byte, 32)}
	wrongSW := *refs
	wrongSW.Platform.SWMeasurements = [][]byte{make([]byte, 32)}
	other := [64]byte{2}
	cases := []struct {
		name  string
		p     attest.Policy
		check string
	}{
		{"wrong rim", attest.Policy{CCA: &wrongRIM, ReportData: &c.ReportData}, attest.CheckRIM},
		{"wrong implementation id", attest.Policy{CCA: &wrongImpl, ReportData: &c.ReportData}, attest.CheckPlatformRefs},
		{"wrong platform software", attest.Policy{CCA: &wrongSW, ReportData: &c.ReportData}, attest.CheckPlatformRefs},
		{"wrong binding", attest.Policy{CCA: refs, ReportData: &other}, attest.CheckReportData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantCheck(t, tc.p.Validate(c), tc.check, attest.ErrRefused) })
	}
}

func TestCCARealTokenTrust(t *testing.T) {
	ev, iak := ccaSample(t)
	// Another pinned key.
	_, err := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformCCA, CCAIAKSHA256: [][32]byte{{9}}}, time.Now()).Verify(ev)
	wantCheck(t, err, attest.CheckIAK, attest.ErrNotGenuine)
	// A flipped byte in the platform token's signature, and in the realm
	// token's signature (each the last bytes of its COSE_Sign1).
	token := ev.Token()
	v := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformCCA, CCAIAKSHA256: [][32]byte{iak}}, time.Now())
	for _, off := range []int{len(token) - 5, 0x1c0} {
		bad := append([]byte(nil), token...)
		bad[off] ^= 1
		e2, err := attest.NewCCAEvidence(contracts.PlatformCCA, bad, ev.IAK())
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(e2)
		if !errors.Is(err, attest.ErrNotGenuine) && !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("byte %#x flipped: %v", off, err)
		}
	}
}
