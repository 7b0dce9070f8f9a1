package attest_test

import (
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
)

// BenchmarkVerifyMilan measures verifying a real report: signature, chain
// to AMD's root (RSA-4096 PSS), TCB binding.
func BenchmarkVerifyMilan(b *testing.B) {
	report, _ := milanFiles(b)
	ev := milanEvidence(b, report)
	v := amdVerifier(b, "")
	for b.Loop() {
		if _, err := v.Verify(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCoordinatorSimulated measures the whole check a client
// makes of a simulated coordinator: authenticity, policy, key binding.
func BenchmarkVerifyCoordinatorSimulated(b *testing.B) {
	p1, _ := twoPlatforms(b)
	key := newKey(b)
	keys := []*cleanroom.PublicKey{key}
	rd, _ := attest.ReportData(keys, nil)
	m := [48]byte{1}
	ev, err := p1.Attest(simulated.Request{Measurement: m, ReportData: rd})
	if err != nil {
		b.Fatal(err)
	}
	cp := simPolicy(p1, m)
	for b.Loop() {
		if _, err := attest.VerifyCoordinator(ev, cp, keys, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSimulatedAttest measures making simulated evidence (an ECDSA
// P-384 signature).
func BenchmarkSimulatedAttest(b *testing.B) {
	p1, _ := twoPlatforms(b)
	for b.Loop() {
		if _, err := p1.Attest(simulated.Request{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSimulatedNew measures making a fresh simulated platform (two
// RSA-3072 keys): the cost of a simulated init.
func BenchmarkSimulatedNew(b *testing.B) {
	for b.Loop() {
		if _, err := simulated.New(); err != nil {
			b.Fatal(err)
		}
	}
}
