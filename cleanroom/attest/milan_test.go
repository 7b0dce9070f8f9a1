package attest_test

import (
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// The real Milan report in testdata (see testdata/README.md).
const (
	milanMeasurement = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
	milanReportData  = "0102030405000000000000000000000000000000000000000000000000000000" +
		"0000000000000000000000000000000000000000000000000000000000000000"
	milanChipID = "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d"
)

// inVCEKValidity is a time inside the test VCEK's validity (2022-09-24 to
// 2029-09-24), so these tests do not expire with the fixture.
func inVCEKValidity() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }

func milanFiles(t testing.TB) (report, vcek []byte) {
	t.Helper()
	report, err := os.ReadFile("testdata/attestation.bin")
	if err != nil {
		t.Fatal(err)
	}
	vcek, err = os.ReadFile("testdata/vcek.testcer")
	if err != nil {
		t.Fatal(err)
	}
	return report, vcek
}

func milanEvidence(t testing.TB, report []byte) *attest.SNPEvidence {
	t.Helper()
	_, vcek := milanFiles(t)
	ev, err := attest.NewSNPEvidence(contracts.PlatformSEVSNP, report, vcek, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func amdVerifier(t testing.TB, product string) *attest.Verifier {
	t.Helper()
	v, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformSEVSNP, Product: product, Now: inVCEKValidity})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustHex48(t testing.TB, s string) [48]byte {
	var m [48]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 48 {
		t.Fatalf("bad measurement hex %q", s)
	}
	copy(m[:], b)
	return m
}

func mustHex64(t testing.TB, s string) *[64]byte {
	var m [64]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 64 {
		t.Fatalf("bad report data hex %q", s)
	}
	copy(m[:], b)
	return &m
}

func checkFailed(t *testing.T, err error, check string, kind error, wantInMessage ...string) {
	t.Helper()
	var ce *attest.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a CheckError", err)
	}
	if ce.Check != check {
		t.Fatalf("failed check %q (%v), want %q", ce.Check, err, check)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %v does not wrap %v", err, kind)
	}
	for _, s := range wantInMessage {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestMilanReportVerifies(t *testing.T) {
	report, _ := milanFiles(t)
	claims, err := amdVerifier(t, attest.ProductMilan).Verify(milanEvidence(t, report))
	if err != nil {
		t.Fatalf("real Milan report does not verify: %v", err)
	}
	if got := hex.EncodeToString(claims.Measurement[:]); got != milanMeasurement {
		t.Errorf("measurement %s, want %s", got, milanMeasurement)
	}
	if got := hex.EncodeToString(claims.ReportData[:]); got != milanReportData {
		t.Errorf("report data %s, want %s", got, milanReportData)
	}
	s := claims.SNP
	if claims.Platform != contracts.PlatformSEVSNP || !claims.Debug || s.Product != "Milan" || s.Signer != "VCEK" || s.VMPL != 0 || s.Version != 2 {
		t.Errorf("claims %+v / %+v", claims, s)
	}
	if got, want := s.ReportedTCB.String(), "bootloader=2 tee=0 snp=5 microcode=68"; got != want {
		t.Errorf("TCB %s, want %s", got, want)
	}
	if got := hex.EncodeToString(s.ChipID); got != milanChipID {
		t.Errorf("chip id %s", got)
	}
	// Any product line is accepted when none is asked for.
	if _, err := amdVerifier(t, "").Verify(milanEvidence(t, report)); err != nil {
		t.Errorf("without a product: %v", err)
	}
}

func TestMilanPolicy(t *testing.T) {
	report, _ := milanFiles(t)
	claims, err := amdVerifier(t, "").Verify(milanEvidence(t, report))
	if err != nil {
		t.Fatal(err)
	}
	good := func() attest.Policy {
		return attest.Policy{
			Measurements:       [][48]byte{mustHex48(t, milanMeasurement)},
			InsecureAllowDebug: true,
			ReportData:         mustHex64(t, milanReportData),
			MinTCB:             contracts.TCB{Bootloader: 2, SNP: 5, Microcode: 68},
		}
	}
	p := good()
	if err := p.Validate(claims); err != nil {
		t.Fatalf("acceptable claims refused: %v", err)
	}
	other := strings.Repeat("ab", 48)
	tests := []struct {
		name   string
		change func(*attest.Policy)
		check  string
		says   []string
	}{
		{"debug", func(p *attest.Policy) { p.InsecureAllowDebug = false }, attest.CheckDebug, []string{"debug"}},
		{"measurement", func(p *attest.Policy) { p.Measurements = [][48]byte{mustHex48(t, other)} }, attest.CheckMeasurement,
			[]string{milanMeasurement, other}},
		{"no measurement listed", func(p *attest.Policy) { p.Measurements = nil }, attest.CheckMeasurement, []string{milanMeasurement}},
		{"report data", func(p *attest.Policy) { p.ReportData = mustHex64(t, strings.Repeat("00", 64)) }, attest.CheckReportData,
			[]string{milanReportData, strings.Repeat("00", 64)}},
		{"no report data", func(p *attest.Policy) { p.ReportData = nil }, attest.CheckReportData, nil},
		{"tcb", func(p *attest.Policy) { p.MinTCB.SNP = 6 }, attest.CheckTCB, []string{"snp=5", "snp=6", "snp is too old"}},
		{"zero policy", func(p *attest.Policy) { *p = attest.Policy{} }, attest.CheckMeasurement, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.change(&p)
			checkFailed(t, p.Validate(claims), tc.check, attest.ErrRefused, tc.says...)
		})
	}
	t.Run("insecure skips", func(t *testing.T) {
		p := attest.Policy{InsecureAnyMeasurement: true, InsecureAllowDebug: true, InsecureAnyReportData: true}
		if err := p.Validate(claims); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMilanWrongProduct(t *testing.T) {
	report, _ := milanFiles(t)
	_, err := amdVerifier(t, attest.ProductGenoa).Verify(milanEvidence(t, report))
	checkFailed(t, err, attest.CheckProduct, attest.ErrNotGenuine, "Milan", "Genoa")
}

// TestMilanFlippedBytes flips every 7th byte of the signed part of the
// report (and a few of the signature): each must be refused as a bad
// signature, whatever field it lands in.
func TestMilanFlippedBytes(t *testing.T) {
	report, _ := milanFiles(t)
	v := amdVerifier(t, attest.ProductMilan)
	const signedPart = 0x2A0
	positions := []int{}
	for i := 0; i < signedPart; i += 7 {
		positions = append(positions, i)
	}
	positions = append(positions, signedPart-1, signedPart, signedPart+0x47, signedPart+0x48, signedPart+0x8f)
	for _, i := range positions {
		for _, mask := range []byte{0x01, 0x80} {
			bad := append([]byte(nil), report...)
			bad[i] ^= mask
			_, err := v.Verify(milanEvidence(t, bad))
			if err == nil {
				t.Fatalf("byte %#x ^ %#x: altered report verified", i, mask)
			}
			var ce *attest.CheckError
			if !errors.As(err, &ce) || ce.Check != attest.CheckSignature || !errors.Is(err, attest.ErrNotGenuine) {
				t.Fatalf("byte %#x ^ %#x: refused for %v, want a bad signature", i, mask, err)
			}
		}
	}
}

func TestMilanExpiredVCEK(t *testing.T) {
	report, _ := milanFiles(t)
	v, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformSEVSNP,
		Now: func() time.Time { return time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(milanEvidence(t, report))
	checkFailed(t, err, attest.CheckChain, attest.ErrNotGenuine, "expired")
}

func TestVerifierOptions(t *testing.T) {
	pin := [32]byte{1}
	tests := []struct {
		name string
		opts attest.VerifierOptions
		says string
	}{
		{"no platform", attest.VerifierOptions{}, "unknown platform"},
		{"pin on real platform", attest.VerifierOptions{Platform: contracts.PlatformSEVSNP, SimulatedRootSHA256: &pin}, "only meaningful"},
		{"simulated without pin", attest.VerifierOptions{Platform: contracts.PlatformSEVSNPSimulated}, "pinned"},
		{"bad product", attest.VerifierOptions{Platform: contracts.PlatformSEVSNP, Product: "milan"}, "unknown AMD product line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := attest.NewVerifier(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %v, want one saying %q", err, tc.says)
			}
		})
	}
}

// TestMilanIdentityDocumentNonce follows the path of `cleanroom coordinator
// info` without a contract on real SEV-SNP: a document answering a nonce is
// checked against the binding of its keys AND that nonce, and a document
// without one against the binding of its keys alone. The real report binds
// neither (its REPORT_DATA is fixed), so both are refused by the report data
// check, each naming the binding it wanted: that is what shows which one was
// checked.
func TestMilanIdentityDocumentNonce(t *testing.T) {
	report, _ := milanFiles(t)
	id, err := cleanroom.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := attest.NewIdentityDocument(id.Public(), milanEvidence(t, report))
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("0123456789abcdef0123456789abcdef")
	for _, n := range [][]byte{nonce, nil} {
		want, err := attest.ReportData(doc.PublicKeys, n)
		if err != nil {
			t.Fatal(err)
		}
		policy := attest.Policy{InsecureAnyMeasurement: true, InsecureAllowDebug: true}
		claims, err := doc.VerifyWith(amdVerifier(t, attest.ProductMilan), policy, n)
		checkFailed(t, err, attest.CheckReportData, attest.ErrRefused, hex.EncodeToString(want[:]))
		if claims == nil || hex.EncodeToString(claims.Measurement[:]) != milanMeasurement {
			t.Errorf("nonce %x: genuine claims not returned with the refusal: %+v", n, claims)
		}
	}
}
