package tee

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"sync"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// openCollector opens the evidence source of a real TDX, Nitro or CCA
// guest, refusing clearly when this machine has none.
func openCollector(m Mode) (backend, error) {
	var be backend
	var err error
	switch m {
	case ModeTDX:
		be, err = openTSM(m, "tdx_guest", "an Intel TDX guest (a TD)")
	case ModeCCA:
		be, err = openTSM(m, "arm_cca_guest", "an Arm CCA realm")
	case ModeNitro:
		be, err = openNSM()
	default:
		err = fmt.Errorf("mode %q has no evidence collector", m)
	}
	if err != nil {
		return nil, err
	}
	return be, nil
}

// tsmBackend gets evidence through the kernel's configfs-tsm interface
// (/sys/kernel/config/tsm/report): a TDX quote, or a CCA token.
type tsmBackend struct {
	mu       sync.Mutex
	mode     Mode
	client   configfsi.Client
	provider string
	// iak is the CCA platform key (DER SubjectPublicKeyInfo), read from
	// the data directory: the token does not carry it.
	iak []byte
	// collateral is the Intel PCS collateral served with TDX quotes, when
	// the data directory has it.
	collateral *attest.TDXCollateral
}

func openTSM(m Mode, provider, what string) (*tsmBackend, error) {
	client, err := linuxtsm.MakeClient()
	if err != nil {
		return nil, fmt.Errorf("no configfs-tsm report interface (%v): is this %s with a kernel that has CONFIG_TSM_REPORTS, and is configfs mounted at /sys/kernel/config? (for development use --attestation %s-simulated)", err, what, m)
	}
	b := &tsmBackend{mode: m, client: client, provider: provider}
	if err := b.configure(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *tsmBackend) evidence(reportData [64]byte) (attest.Evidence, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	resp, err := report.Get(b.client, &report.Request{InBlob: reportData[:]})
	if err != nil {
		return nil, fmt.Errorf("getting a %s report through configfs-tsm: %v", b.mode, err)
	}
	if resp.Provider != b.provider {
		return nil, fmt.Errorf("configfs-tsm's provider is %q, not %q: this machine is not the platform %s", resp.Provider, b.provider, b.mode)
	}
	switch b.mode {
	case ModeTDX:
		return attest.NewTDXEvidence(contracts.PlatformTDX, resp.OutBlob, b.collateral)
	case ModeCCA:
		return attest.NewCCAEvidence(contracts.PlatformCCA, resp.OutBlob, b.iak)
	}
	return nil, fmt.Errorf("mode %q does not use configfs-tsm", b.mode)
}

// Environment variables a real TDX or CCA coordinator reads at init
// (docs/deploy-tdx.md, docs/deploy-cca.md).
const (
	// EnvTDXCollateral names a directory of Intel PCS collateral
	// (attest.LoadTDXCollateral) served with every quote, so clients learn
	// the platform's TCB status. Optional.
	EnvTDXCollateral = "CLEANROOMD_TDX_COLLATERAL"
	// EnvCCAPlatformKey names the file of the CCA platform's Initial
	// Attestation Key (PEM or DER SubjectPublicKeyInfo), which CCA tokens
	// do not carry. Required on cca.
	EnvCCAPlatformKey = "CLEANROOMD_CCA_PLATFORM_KEY"
)

// configure reads the optional inputs of a configfs-tsm collector.
func (b *tsmBackend) configure() error {
	switch b.mode {
	case ModeTDX:
		if dir := os.Getenv(EnvTDXCollateral); dir != "" {
			c, err := attest.LoadTDXCollateral(dir)
			if err != nil {
				return fmt.Errorf("%s: %w", EnvTDXCollateral, err)
			}
			b.collateral = c
		}
	case ModeCCA:
		path := os.Getenv(EnvCCAPlatformKey)
		if path == "" {
			return fmt.Errorf("a CCA coordinator needs its platform's Initial Attestation Key, which CCA tokens do not carry: set %s to its PEM or DER public key file (docs/deploy-cca.md)", EnvCCAPlatformKey)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvCCAPlatformKey, err)
		}
		if blk, _ := pem.Decode(data); blk != nil {
			data = blk.Bytes
		}
		if _, err := x509.ParsePKIXPublicKey(data); err != nil {
			return fmt.Errorf("%s: %s is not a public key: %v", EnvCCAPlatformKey, path, err)
		}
		b.iak = data
	}
	return nil
}
