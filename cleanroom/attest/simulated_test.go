package attest_test

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
	"cleanroom.dev/cleanroom/contracts"
)

// Two simulated platforms shared by the tests of this package (making one
// costs two RSA key generations).
var platforms = sync.OnceValues(func() ([2]*simulated.Platform, error) {
	var ps [2]*simulated.Platform
	for i := range ps {
		p, err := simulated.New()
		if err != nil {
			return ps, err
		}
		ps[i] = p
	}
	return ps, nil
})

func twoPlatforms(t testing.TB) (*simulated.Platform, *simulated.Platform) {
	t.Helper()
	ps, err := platforms()
	if err != nil {
		t.Fatal(err)
	}
	return ps[0], ps[1]
}

func simVerifier(t testing.TB, pin [32]byte) *attest.Verifier {
	t.Helper()
	v, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformSEVSNPSimulated, SimulatedRootSHA256: &pin})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newKey(t testing.TB) *cleanroom.PublicKey {
	t.Helper()
	id, err := cleanroom.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Public()
}

func simPolicy(p *simulated.Platform, m [48]byte) *contracts.CoordinatorPolicy {
	root := p.RootSHA256()
	return &contracts.CoordinatorPolicy{
		Platform:            contracts.PlatformSEVSNPSimulated,
		Measurements:        [][48]byte{m},
		SimulatedRootSHA256: &root,
	}
}

func TestSimulatedVerifiesOnlyUnderItsPin(t *testing.T) {
	p1, p2 := twoPlatforms(t)
	m := [48]byte{0xaa, 0xbb}
	rd := [64]byte{1, 2, 3}
	ev1, err := p1.Attest(simulated.Request{Measurement: m, ReportData: rd})
	if err != nil {
		t.Fatal(err)
	}
	ev2, err := p2.Attest(simulated.Request{Measurement: m, ReportData: rd})
	if err != nil {
		t.Fatal(err)
	}

	claims, err := simVerifier(t, p1.RootSHA256()).Verify(ev1)
	if err != nil {
		t.Fatalf("simulated evidence under its own pin: %v", err)
	}
	if claims.Measurement != m || claims.ReportData != rd || claims.Debug || claims.SNP.VMPL != 0 || claims.SNP.Product != "Milan" {
		t.Errorf("claims %+v %+v", claims, claims.SNP)
	}
	if claims.SNP.SimulatedRootSHA256 == nil || *claims.SNP.SimulatedRootSHA256 != p1.RootSHA256() {
		t.Errorf("claims do not name the pinned root")
	}
	ark := sha256.Sum256(ev1.ARKCert())
	if ark != p1.RootSHA256() {
		t.Errorf("RootSHA256 is not the SHA-256 of the ARK certificate")
	}

	// A second simulated coordinator's report is refused under the first's
	// pin, naming both hashes.
	r1, r2 := p1.RootSHA256(), p2.RootSHA256()
	_, err = simVerifier(t, r1).Verify(ev2)
	checkFailed(t, err, attest.CheckSimulatedRoot, attest.ErrNotGenuine, hex.EncodeToString(r1[:]), hex.EncodeToString(r2[:]))

	// Simulated evidence is never accepted where the real platform is
	// required.
	_, err = amdVerifier(t, "").Verify(ev1)
	checkFailed(t, err, attest.CheckPlatform, attest.ErrNotGenuine, "sev-snp-simulated")
}

func TestSimulatedForgeries(t *testing.T) {
	p1, p2 := twoPlatforms(t)
	ev1, err := p1.Attest(simulated.Request{})
	if err != nil {
		t.Fatal(err)
	}
	ev2, err := p2.Attest(simulated.Request{})
	if err != nil {
		t.Fatal(err)
	}

	// p1's report and VCEK with p2's ASK and ARK: the pin of p2 matches,
	// but p1's VCEK does not chain to p2's root.
	mixed, err := attest.NewSNPEvidence(contracts.PlatformSEVSNPSimulated, ev1.Report(), ev1.EndorsementKeyCert(), ev2.ASKCert(), ev2.ARKCert())
	if err != nil {
		t.Fatal(err)
	}
	_, err = simVerifier(t, p2.RootSHA256()).Verify(mixed)
	checkFailed(t, err, attest.CheckChain, attest.ErrNotGenuine)

	// p1's report with p2's VCEK: the signature does not verify.
	swapped, err := attest.NewSNPEvidence(contracts.PlatformSEVSNPSimulated, ev1.Report(), ev2.EndorsementKeyCert(), ev1.ASKCert(), ev1.ARKCert())
	if err != nil {
		t.Fatal(err)
	}
	_, err = simVerifier(t, p1.RootSHA256()).Verify(swapped)
	checkFailed(t, err, attest.CheckSignature, attest.ErrNotGenuine)

	// A simulated report relabelled as real SEV-SNP evidence: its VCEK does
	// not chain to AMD's root.
	relabelled, err := attest.NewSNPEvidence(contracts.PlatformSEVSNP, ev1.Report(), ev1.EndorsementKeyCert(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = amdVerifier(t, "").Verify(relabelled)
	checkFailed(t, err, attest.CheckChain, attest.ErrNotGenuine, "AMD")
}

func TestSimulatedPolicy(t *testing.T) {
	p1, _ := twoPlatforms(t)
	key := newKey(t)
	rd, err := attest.ReportData([]*cleanroom.PublicKey{key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := [48]byte{7}
	cp := simPolicy(p1, m)
	attestWith := func(req simulated.Request) attest.Evidence {
		ev, err := p1.Attest(req)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	if _, err := attest.VerifyCoordinator(attestWith(simulated.Request{Measurement: m, ReportData: rd}), cp, []*cleanroom.PublicKey{key}, nil); err != nil {
		t.Fatalf("acceptable evidence refused: %v", err)
	}
	other := newKey(t)
	tests := []struct {
		name  string
		req   simulated.Request
		keys  []*cleanroom.PublicKey
		nonce []byte
		check string
		says  []string
	}{
		{"debug", simulated.Request{Measurement: m, ReportData: rd, Debug: true}, nil, nil, attest.CheckDebug, nil},
		{"vmpl", simulated.Request{Measurement: m, ReportData: rd, VMPL: 2}, nil, nil, attest.CheckVMPL, []string{"VMPL 2"}},
		{"measurement", simulated.Request{Measurement: [48]byte{8}, ReportData: rd}, nil, nil, attest.CheckMeasurement, nil},
		{"another key", simulated.Request{Measurement: m, ReportData: rd}, []*cleanroom.PublicKey{other}, nil, attest.CheckReportData,
			[]string{other.Fingerprint().Short()}},
		{"a nonce not bound", simulated.Request{Measurement: m, ReportData: rd}, nil, []byte("fresh"), attest.CheckReportData, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := tc.keys
			if keys == nil {
				keys = []*cleanroom.PublicKey{key}
			}
			claims, err := attest.VerifyCoordinator(attestWith(tc.req), cp, keys, tc.nonce)
			checkFailed(t, err, tc.check, attest.ErrRefused, tc.says...)
			if claims == nil {
				t.Error("a policy refusal returns the genuine claims")
			}
		})
	}

	t.Run("min tcb", func(t *testing.T) {
		cp := simPolicy(p1, m)
		cp.MinTCB = contracts.TCB{Microcode: 250}
		_, err := attest.VerifyCoordinator(attestWith(simulated.Request{Measurement: m, ReportData: rd}), cp, []*cleanroom.PublicKey{key}, nil)
		checkFailed(t, err, attest.CheckTCB, attest.ErrRefused, "microcode=250", "microcode is too old")
	})
	t.Run("nonce bound", func(t *testing.T) {
		nonce := []byte("0123456789abcdef0123456789abcdef")
		rdn, err := attest.ReportData([]*cleanroom.PublicKey{key}, nonce)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := attest.VerifyCoordinator(attestWith(simulated.Request{Measurement: m, ReportData: rdn}), cp, []*cleanroom.PublicKey{key}, nonce); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSimulatedPlatformRoundTrip(t *testing.T) {
	p1, _ := twoPlatforms(t)
	data, err := p1.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := simulated.ParsePEM(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.RootSHA256() != p1.RootSHA256() || back.ChipID() != p1.ChipID() {
		t.Fatal("the reloaded platform differs")
	}
	ev, err := back.Attest(simulated.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := simVerifier(t, p1.RootSHA256()).Verify(ev); err != nil {
		t.Fatalf("evidence of the reloaded platform: %v", err)
	}
	for _, bad := range [][]byte{nil, []byte("junk"), data[:len(data)/2], append(append([]byte(nil), data...), "trailing"...)} {
		if _, err := simulated.ParsePEM(bad); err == nil {
			t.Errorf("ParsePEM accepted %d bad bytes", len(bad))
		}
	}
}
