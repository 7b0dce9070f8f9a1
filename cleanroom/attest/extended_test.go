package attest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
)

func TestEvidenceFromExtendedReport(t *testing.T) {
	report, vcek := milanFiles(t)
	p1, _ := twoPlatforms(t)
	sim, err := p1.Attest(simulated.Request{})
	if err != nil {
		t.Fatal(err)
	}
	// The host's table as a guest receives it: VCEK, ASK, ARK (here fake
	// ones, which verification never uses) and padding after the data.
	table := abi.CertsFromProto(&spb.CertificateChain{VcekCert: vcek, AskCert: sim.ASKCert(), ArkCert: sim.ARKCert()}).Marshal()
	ext := append(append(append([]byte(nil), report...), table...), make([]byte, 100)...)
	ev, err := attest.SNPEvidenceFromExtendedReport(ext)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.ASKCert()) != 0 || len(ev.ARKCert()) != 0 {
		t.Error("the host's ASK/ARK were kept")
	}
	if _, err := amdVerifier(t, attest.ProductMilan).Verify(ev); err != nil {
		t.Fatalf("evidence from the extended report: %v", err)
	}

	noVCEK := abi.CertsFromProto(&spb.CertificateChain{AskCert: sim.ASKCert()}).Marshal()
	for name, tc := range map[string]struct {
		data []byte
		says string
	}{
		"bare report":  {report, "without a certificate table"},
		"no VCEK":      {append(append([]byte(nil), report...), noVCEK...), "has no VCEK certificate"},
		"short":        {report[:100], "fewer than a report's"},
		"broken table": {append(append([]byte(nil), report...), 1, 2, 3), "certificate table"},
	} {
		_, err := attest.SNPEvidenceFromExtendedReport(tc.data)
		if !errors.Is(err, attest.ErrMalformed) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
