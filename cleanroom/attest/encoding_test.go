package attest_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
	"cleanroom.dev/cleanroom/contracts"
)

// vectorKey is the key whose two seeds are the bytes 0x00..0x3f, the key of
// the REPORT_DATA test vectors in docs/attestation.md.
func vectorKey(t testing.TB) *cleanroom.PublicKey {
	t.Helper()
	seeds := make([]byte, 64)
	for i := range seeds {
		seeds[i] = byte(i)
	}
	id, err := cleanroom.ParseIdentity([]byte("CLEANROOM-SECRET-KEY-1:" + base64.RawURLEncoding.EncodeToString(seeds)))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile("testdata/reportdata-vector.pub")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(pub)) != id.Public().String() {
		t.Fatal("testdata/reportdata-vector.pub is not the vector key")
	}
	return id.Public()
}

func TestReportDataVectors(t *testing.T) {
	key := vectorKey(t)
	tests := []struct {
		nonce []byte
		want  string
	}{
		{nil, reportDataVectorNoNonce},
		{[]byte("nonce"), reportDataVectorNonce},
	}
	for _, tc := range tests {
		got, err := attest.ReportData([]*cleanroom.PublicKey{key}, tc.nonce)
		if err != nil {
			t.Fatal(err)
		}
		// The same bytes built by hand from the specification.
		var b bytes.Buffer
		b.WriteString("cleanroom.dev/attest/report-data/v1")
		binary.Write(&b, binary.BigEndian, uint32(1))
		binary.Write(&b, binary.BigEndian, uint32(len(key.Bytes())))
		b.Write(key.Bytes())
		binary.Write(&b, binary.BigEndian, uint32(len(tc.nonce)))
		b.Write(tc.nonce)
		if spec := sha512.Sum512(b.Bytes()); spec != got {
			t.Errorf("nonce %q: ReportData differs from the specified construction", tc.nonce)
		}
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("nonce %q: report data %x, want the vector %s", tc.nonce, got, tc.want)
		}
	}

	other := newKey(t)
	a, _ := attest.ReportData([]*cleanroom.PublicKey{key, other}, nil)
	b, _ := attest.ReportData([]*cleanroom.PublicKey{other, key}, nil)
	if a == b {
		t.Error("key order does not matter")
	}
	if _, err := attest.ReportData(nil, nil); err == nil {
		t.Error("no keys accepted")
	}
	if _, err := attest.ReportData([]*cleanroom.PublicKey{key}, make([]byte, attest.MaxNonceSize+1)); err == nil {
		t.Error("oversized nonce accepted")
	}
	if _, err := attest.ReportData([]*cleanroom.PublicKey{key}, make([]byte, attest.MaxNonceSize)); err != nil {
		t.Error(err)
	}
}

// REPORT_DATA test vectors (also in docs/attestation.md).
const (
	reportDataVectorNoNonce = "374a5169ceb2355b84f8f82cb90d6981e18df949c9fbeb6be957ee7b988b4ef3" +
		"ea2b5435d893591c4b7c24b5aca5584c023e7265159ca132eba1ace7ca9a030b"
	reportDataVectorNonce = "e1628bb52fa63f14394cae8aed2e9af0ad886cf90126a35df582fd88fe8a58a9" +
		"2581d2c5252d156eff6d0e888f5e48b6f791cd48736609600b2e277c391b2767"
)

func TestEvidenceRoundTrip(t *testing.T) {
	p1, _ := twoPlatforms(t)
	sim, err := p1.Attest(simulated.Request{Measurement: [48]byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	report, vcek := milanFiles(t)
	real, err := attest.NewSNPEvidence(contracts.PlatformSEVSNP, report, vcek, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []attest.Evidence{sim, real} {
		data, err := ev.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := attest.ParseEvidence(data)
		if err != nil {
			t.Fatalf("%s evidence does not parse back: %v", ev.Platform(), err)
		}
		again, _ := back.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatalf("%s evidence does not round-trip", ev.Platform())
		}
	}

	data, _ := sim.MarshalBinary()
	bad := map[string][]byte{
		"empty":         nil,
		"truncated":     data[:len(data)-1],
		"trailing":      append(append([]byte(nil), data...), 0),
		"not a map":     {0x80},
		"too big":       make([]byte, attest.MaxEvidenceSize+1),
		"unknown field": append([]byte{0xa1, 0x06}, 0x00),
	}
	for name, b := range bad {
		if _, err := attest.ParseEvidence(b); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: ParseEvidence returned %v, want ErrMalformed", name, err)
		}
	}
	// Structural rules.
	if _, err := attest.NewSNPEvidence(contracts.PlatformSEVSNP, report, vcek, sim.ASKCert(), sim.ARKCert()); err == nil {
		t.Error("real evidence with an ASK/ARK accepted")
	}
	if _, err := attest.NewSNPEvidence(contracts.PlatformSEVSNPSimulated, report, vcek, nil, nil); err == nil {
		t.Error("simulated evidence without ASK/ARK accepted")
	}
	if _, err := attest.NewSNPEvidence(contracts.PlatformSEVSNP, report[:100], vcek, nil, nil); err == nil {
		t.Error("short report accepted")
	}
	if _, err := attest.NewSNPEvidence("tdx", report, vcek, nil, nil); err == nil {
		t.Error("unknown platform accepted")
	}
}

func simIdentity(t testing.TB) (*attest.IdentityDocument, *cleanroom.PublicKey, *simulated.Platform) {
	t.Helper()
	p1, _ := twoPlatforms(t)
	key := newKey(t)
	rd, err := attest.ReportData([]*cleanroom.PublicKey{key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := p1.Attest(simulated.Request{Measurement: [48]byte{0x42}, ReportData: rd})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := attest.NewIdentityDocument(key, ev)
	if err != nil {
		t.Fatal(err)
	}
	return doc, key, p1
}

func TestIdentityDocument(t *testing.T) {
	doc, key, p1 := simIdentity(t)
	data, err := doc.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	root := p1.RootSHA256()
	if fields["measurement"] != "42"+strings.Repeat("00", 47) || fields["simulated_root_sha256"] != hex.EncodeToString(root[:]) ||
		fields["platform"] != "sev-snp-simulated" || fields["version"] != 1.0 {
		t.Errorf("document fields: %s", data)
	}
	back, err := attest.ParseIdentityDocument(data)
	if err != nil {
		t.Fatal(err)
	}
	if !back.PublicKeys[0].Equal(key) || back.Measurement != doc.Measurement || *back.SimulatedRootSHA256 != root {
		t.Error("document does not round-trip")
	}
	if _, err := back.Verify(simPolicy(p1, doc.Measurement)); err != nil {
		t.Fatalf("document does not verify under its contract: %v", err)
	}

	// A document whose key was swapped: the evidence binds another key.
	other := newKey(t)
	swapped := strings.Replace(string(data), key.String(), other.String(), 1)
	forged, err := attest.ParseIdentityDocument([]byte(swapped))
	if err != nil {
		t.Fatal(err)
	}
	_, err = forged.Verify(simPolicy(p1, doc.Measurement))
	checkFailed(t, err, attest.CheckReportData, attest.ErrRefused, other.Fingerprint().Short())

	// Strict parsing.
	mutate := func(f func(map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(data, &m)
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	bad := map[string][]byte{
		"unknown field":   mutate(func(m map[string]any) { m["extra"] = 1 }),
		"no evidence":     mutate(func(m map[string]any) { delete(m, "evidence") }),
		"wrong version":   mutate(func(m map[string]any) { m["version"] = 2 }),
		"measurement":     mutate(func(m map[string]any) { m["measurement"] = strings.Repeat("00", 48) }),
		"upper-case hex":  mutate(func(m map[string]any) { m["measurement"] = "42" + strings.Repeat("00", 47) + "X" }),
		"root mismatch":   mutate(func(m map[string]any) { m["simulated_root_sha256"] = strings.Repeat("00", 32) }),
		"platform":        mutate(func(m map[string]any) { m["platform"] = "sev-snp" }),
		"two keys":        mutate(func(m map[string]any) { m["public_keys"] = []string{key.String(), key.String()} }),
		"bad key":         mutate(func(m map[string]any) { m["public_keys"] = []string{"cleanroom-pub-1:AAAA"} }),
		"bad base64":      mutate(func(m map[string]any) { m["evidence"] = "!!" }),
		"duplicate field": []byte(strings.Replace(string(data), `"version": 1,`, `"version": 1, "version": 1,`, 1)),
		"other case":      []byte(strings.Replace(string(data), `"version"`, `"Version"`, 1)),
		"trailing":        append(append([]byte(nil), data...), "{}"...),
		"array":           []byte("[]"),
	}
	for name, b := range bad {
		if _, err := attest.ParseIdentityDocument(b); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: ParseIdentityDocument returned %v, want ErrMalformed", name, err)
		}
	}
}
