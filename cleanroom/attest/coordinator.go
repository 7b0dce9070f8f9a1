package attest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/contracts"
)

// VerifierForContract returns the Verifier a contract's coordinator section
// asks for: its platform, and for the simulated platform its pinned root.
// now may be nil (time.Now).
func VerifierForContract(cp *contracts.CoordinatorPolicy, now func() time.Time) (*Verifier, error) {
	if cp == nil {
		return nil, fmt.Errorf("the contract has no coordinator section")
	}
	opts := VerifierOptions{Platform: cp.Platform, SimulatedRootSHA256: cp.SimulatedRootSHA256, Now: now}
	if cp.Platform == contracts.PlatformCCA && cp.CCA != nil {
		opts.CCAIAKSHA256 = cp.CCA.Platform.IAKSHA256
	}
	return NewVerifier(opts)
}

// VerifyCoordinator checks a coordinator's evidence against a contract's
// coordinator section: genuine (Verifier), acceptable (Policy), and binding
// exactly these public keys and this nonce (nil when none was asked for) in
// its REPORT_DATA. It returns the verified claims; when only the policy
// refuses, it returns the (genuine) claims together with the error, so a
// caller can show what the coordinator runs.
func VerifyCoordinator(ev Evidence, cp *contracts.CoordinatorPolicy, keys []*cleanroom.PublicKey, nonce []byte) (*Claims, error) {
	v, err := VerifierForContract(cp, nil)
	if err != nil {
		return nil, err
	}
	want, err := ReportData(keys, nonce)
	if err != nil {
		return nil, err
	}
	claims, err := v.Verify(ev)
	if err != nil {
		return nil, err
	}
	p := PolicyFromContract(cp, want)
	if err := p.Validate(claims); err != nil {
		var ce *CheckError
		if errors.As(err, &ce) && ce.Check == CheckReportData {
			err = refused(CheckReportData, "report data %x does not bind the coordinator key %s (want %x): the evidence was made for another key or nonce",
				claims.ReportData, describeKeys(keys), want)
		}
		return claims, err
	}
	return claims, nil
}

func describeKeys(keys []*cleanroom.PublicKey) string {
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = k.Fingerprint().Short()
	}
	return strings.Join(s, ",")
}
