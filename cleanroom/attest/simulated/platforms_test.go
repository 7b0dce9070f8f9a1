package simulated_test

import (
	"crypto/sha512"
	"errors"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
	"cleanroom.dev/cleanroom/contracts"
)

// twin is one simulated platform, seen through what every test needs.
type twin struct {
	platform contracts.Platform
	root     [32]byte
	attest   func(simulated.Request) (attest.Evidence, error)
	reload   func() (func(simulated.Request) (attest.Evidence, error), error)
	refs     func(m [48]byte, debug bool) attest.Policy
}

func twins(t *testing.T) []twin {
	t.Helper()
	tdx, err := simulated.NewTDX()
	if err != nil {
		t.Fatal(err)
	}
	nitro, err := simulated.NewNitro()
	if err != nil {
		t.Fatal(err)
	}
	cca, err := simulated.NewCCA()
	if err != nil {
		t.Fatal(err)
	}
	return []twin{
		{contracts.PlatformTDXSimulated, tdx.RootSHA256(),
			func(r simulated.Request) (attest.Evidence, error) { return tdx.Attest(r) },
			func() (func(simulated.Request) (attest.Evidence, error), error) {
				pem, err := tdx.MarshalPEM()
				if err != nil {
					return nil, err
				}
				p, err := simulated.ParseTDXPEM(pem)
				return func(r simulated.Request) (attest.Evidence, error) { return p.Attest(r) }, err
			},
			func(m [48]byte, debug bool) attest.Policy {
				return attest.Policy{TDX: &contracts.TDXRefs{MRTD: [][48]byte{m}, MinTEETCBSVN: simulated.TDXTEETCBSVN(), AllowDebug: debug}}
			}},
		{contracts.PlatformNitroSimulated, nitro.RootSHA256(),
			func(r simulated.Request) (attest.Evidence, error) { return nitro.Attest(r) },
			func() (func(simulated.Request) (attest.Evidence, error), error) {
				pem, err := nitro.MarshalPEM()
				if err != nil {
					return nil, err
				}
				p, err := simulated.ParseNitroPEM(pem)
				return func(r simulated.Request) (attest.Evidence, error) { return p.Attest(r) }, err
			},
			func(m [48]byte, debug bool) attest.Policy {
				if debug {
					m = [48]byte{}
				}
				return attest.Policy{Nitro: &contracts.NitroRefs{PCR0: [][48]byte{m}}, InsecureAllowDebug: debug}
			}},
		{contracts.PlatformCCASimulated, cca.RootSHA256(),
			func(r simulated.Request) (attest.Evidence, error) { return cca.Attest(r) },
			func() (func(simulated.Request) (attest.Evidence, error), error) {
				pem, err := cca.MarshalPEM()
				if err != nil {
					return nil, err
				}
				p, err := simulated.ParseCCAPEM(pem)
				return func(r simulated.Request) (attest.Evidence, error) { return p.Attest(r) }, err
			},
			func(m [48]byte, debug bool) attest.Policy {
				return attest.Policy{CCA: &contracts.CCARefs{RIM: [][]byte{m[:]}}, InsecureAllowDebug: debug}
			}},
	}
}

// Each simulated platform's evidence goes through the real verification
// code: genuine against its pinned root, refused against another pin,
// another platform, another measurement, another key binding, and as a
// debug platform unless allowed. Its marshalled form reloads and attests the
// same.
func TestSimulatedTwins(t *testing.T) {
	m := sha512.Sum384([]byte("coordinator"))
	rd := [64]byte{7, 7, 7}
	for _, tw := range twins(t) {
		t.Run(string(tw.platform), func(t *testing.T) {
			verifier := func(pin [32]byte) *attest.Verifier {
				v, err := attest.NewVerifier(attest.VerifierOptions{Platform: tw.platform, SimulatedRootSHA256: &pin})
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			reload, err := tw.reload()
			if err != nil {
				t.Fatal(err)
			}
			for _, make := range []func(simulated.Request) (attest.Evidence, error){tw.attest, reload} {
				ev, err := make(simulated.Request{Measurement: m, ReportData: rd})
				if err != nil {
					t.Fatal(err)
				}
				// The encoding round-trips.
				raw, err := ev.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				if ev, err = attest.ParseEvidence(raw); err != nil {
					t.Fatal(err)
				}
				c, err := verifier(tw.root).Verify(ev)
				if err != nil {
					t.Fatal(err)
				}
				if c.Platform != tw.platform || c.Debug || c.ReportData != rd || *c.SimulatedRoot() != tw.root {
					t.Fatalf("claims %+v", c)
				}
				p := tw.refs(m, false)
				p.ReportData = &rd
				if err := p.Validate(c); err != nil {
					t.Fatal(err)
				}
				other := [64]byte{8}
				p.ReportData = &other
				if err := p.Validate(c); !isCheck(err, attest.CheckReportData) {
					t.Errorf("another binding: %v", err)
				}
				p = tw.refs(sha512.Sum384([]byte("other")), false)
				p.ReportData = &rd
				if err := p.Validate(c); err == nil || !errors.Is(err, attest.ErrRefused) {
					t.Errorf("another measurement: %v", err)
				}
				if _, err := verifier([32]byte{1}).Verify(ev); !isCheck(err, attest.CheckSimulatedRoot) {
					t.Errorf("another pin: %v", err)
				}
			}
			// A debug platform.
			ev, err := tw.attest(simulated.Request{Measurement: m, ReportData: rd, Debug: true})
			if err != nil {
				t.Fatal(err)
			}
			c, err := verifier(tw.root).Verify(ev)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Debug {
				t.Fatal("debug evidence not reported as debug")
			}
			p := tw.refs(m, false)
			p.InsecureAnyReportData = true
			if tw.platform == contracts.PlatformNitroSimulated {
				p = tw.refs(m, true)
				p.InsecureAllowDebug, p.InsecureAnyReportData = false, true
			}
			if err := p.Validate(c); !isCheck(err, attest.CheckDebug) {
				t.Errorf("debug without permission: %v", err)
			}
			p = tw.refs(m, true)
			p.InsecureAnyReportData = true
			if err := p.Validate(c); err != nil {
				t.Errorf("debug with permission: %v", err)
			}
		})
	}
}

func isCheck(err error, check string) bool {
	var ce *attest.CheckError
	return errors.As(err, &ce) && ce.Check == check
}
