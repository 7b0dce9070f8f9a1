package tee

import (
	"fmt"
	"sync"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
	"cleanroom.dev/cleanroom/contracts"
)

// The platforms of a seal header's second byte (seal.go).
var sealKinds = []contracts.Platform{contracts.PlatformSEVSNP, contracts.PlatformTDX, contracts.PlatformNitro, contracts.PlatformCCA}

func sealKind(p contracts.Platform) byte {
	for i, k := range sealKinds {
		if k == p.Real() {
			return byte(i)
		}
	}
	panic("tee: no seal kind for platform " + string(p))
}

func simulatedSealKind(m Mode) byte { return sealKind(m.Platform()) }

func simulatedModeOfSeal(kind byte) (Mode, error) {
	if int(kind) >= len(sealKinds) {
		return "", fmt.Errorf("%w: unknown simulated platform %d", ErrSealBroken, kind)
	}
	if kind == 0 {
		return ModeSimulated, nil
	}
	return Mode(sealKinds[kind] + "-simulated"), nil
}

func ephemeralModeOfSeal(kind byte) (Mode, error) {
	if kind == 0 || int(kind) >= len(sealKinds) {
		return "", fmt.Errorf("%w: unknown platform %d", ErrSealBroken, kind)
	}
	return Mode(sealKinds[kind]), nil
}

// ephemeralMarker is the sealed-identity file of a platform without a
// sealing key: the header and 16 zero bytes, no identity.
func ephemeralMarker(m Mode) []byte {
	h := sealParams{mode: sealModeEphemeral, rootKey: sealKind(m.Platform())}.header(make([]byte, 12))
	return append(h, make([]byte, 16)...)
}

// newSimulatedPlatform makes the throw-away vendor root of a simulated mode
// and returns it as PEM, for the data directory.
func newSimulatedPlatform(m Mode) ([]byte, error) {
	switch m {
	case ModeSimulated:
		p, err := simulated.New()
		if err != nil {
			return nil, err
		}
		return p.MarshalPEM()
	case ModeTDXSimulated:
		p, err := simulated.NewTDX()
		if err != nil {
			return nil, err
		}
		return p.MarshalPEM()
	case ModeNitroSimulated:
		p, err := simulated.NewNitro()
		if err != nil {
			return nil, err
		}
		return p.MarshalPEM()
	case ModeCCASimulated:
		p, err := simulated.NewCCA()
		if err != nil {
			return nil, err
		}
		return p.MarshalPEM()
	}
	return nil, fmt.Errorf("mode %q is not simulated", m)
}

// twinBackend produces a simulated platform's evidence for a measurement
// (the SHA-384 of the running executable).
type twinBackend struct {
	mu          sync.Mutex
	attest      func(simulated.Request) (attest.Evidence, error)
	measurement [48]byte
}

func (b *twinBackend) evidence(reportData [64]byte) (attest.Evidence, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.attest(simulated.Request{Measurement: b.measurement, ReportData: reportData})
}

// loadSimulatedPlatform reads a simulated platform from its PEM.
func loadSimulatedPlatform(m Mode, pem []byte, measurement [48]byte) (backend, error) {
	switch m {
	case ModeSimulated:
		p, err := simulated.ParsePEM(pem)
		if err != nil {
			return nil, err
		}
		return &simBackend{platform: p, measurement: measurement}, nil
	case ModeTDXSimulated:
		p, err := simulated.ParseTDXPEM(pem)
		if err != nil {
			return nil, err
		}
		return &twinBackend{attest: func(r simulated.Request) (attest.Evidence, error) { return p.Attest(r) }, measurement: measurement}, nil
	case ModeNitroSimulated:
		p, err := simulated.ParseNitroPEM(pem)
		if err != nil {
			return nil, err
		}
		return &twinBackend{attest: func(r simulated.Request) (attest.Evidence, error) { return p.Attest(r) }, measurement: measurement}, nil
	case ModeCCASimulated:
		p, err := simulated.ParseCCAPEM(pem)
		if err != nil {
			return nil, err
		}
		return &twinBackend{attest: func(r simulated.Request) (attest.Evidence, error) { return p.Attest(r) }, measurement: measurement}, nil
	}
	return nil, fmt.Errorf("mode %q is not simulated", m)
}

// ReferenceValues returns the coordinator section a contract pins to accept
// exactly this coordinator: its platform, the measurements its own verified
// evidence shows (SEV-SNP MEASUREMENT; TDX MRTD, RTMRs and TEE_TCB_SVN;
// Nitro PCR0-2; CCA RIM, and the platform key on real CCA) and, on a
// simulated platform, its root. Parties should check the values against a
// build they reproduced rather than take them from the coordinator.
func (inst *Instance) ReferenceValues() (*contracts.CoordinatorPolicy, error) {
	c := inst.claims
	if c == nil {
		return nil, fmt.Errorf("the coordinator's own evidence was not verified")
	}
	cp := &contracts.CoordinatorPolicy{Platform: inst.Platform(), SimulatedRootSHA256: inst.SimulatedRootSHA256()}
	switch {
	case c.TDX != nil:
		cp.TDX = &contracts.TDXRefs{MRTD: [][48]byte{c.TDX.MRTD}, RTMR: [][4][48]byte{c.TDX.RTMR}, MinTEETCBSVN: c.TDX.TEETCBSVN}
	case c.Nitro != nil:
		cp.Nitro = &contracts.NitroRefs{PCR0: [][48]byte{c.Nitro.PCR(0)}, PCR1: [][48]byte{c.Nitro.PCR(1)}, PCR2: [][48]byte{c.Nitro.PCR(2)}}
	case c.CCA != nil:
		cp.CCA = &contracts.CCARefs{RIM: [][]byte{c.CCA.RIM}}
		if inst.mode == ModeCCA {
			cp.CCA.Platform.IAKSHA256 = [][32]byte{c.CCA.IAKSHA256}
		}
	default:
		cp.Measurements = [][48]byte{c.Measurement}
	}
	return cp, nil
}
