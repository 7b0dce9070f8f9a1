package tee

import (
	"fmt"
	"sync"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"

	"cleanroom.dev/cleanroom/cleanroom/attest"
)

// snpHardware is the SEV-SNP guest device as the coordinator uses it.
type snpHardware interface {
	// extendedReport returns a report carrying reportData, followed by the
	// host's certificate table.
	extendedReport(reportData [64]byte) ([]byte, error)
	// deriveKey returns the 32-byte key the firmware derives for req.
	deriveKey(req *client.SnpDerivedKeyReq) ([]byte, error)
}

// guestDevice is the real SEV-SNP guest: quotes through go-sev-guest's
// quote providers (configfs-tsm first, then /dev/sev-guest), derived keys
// through /dev/sev-guest. Calls are serialised.
type guestDevice struct {
	mu sync.Mutex
	qp client.QuoteProvider
}

// openGuestDevice finds the SEV-SNP guest interface of this VM.
func openGuestDevice() (*guestDevice, error) {
	qp, err := client.GetQuoteProvider()
	if err != nil {
		return nil, fmt.Errorf("no SEV-SNP guest interface (neither configfs-tsm nor /dev/sev-guest): is this an SEV-SNP confidential VM? (for development use --attestation simulated): %v", err)
	}
	return &guestDevice{qp: qp}, nil
}

func (g *guestDevice) extendedReport(reportData [64]byte) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	raw, err := g.qp.GetRawQuote(reportData)
	if err != nil {
		return nil, fmt.Errorf("getting an SEV-SNP report: %v", err)
	}
	return raw, nil
}

func (g *guestDevice) deriveKey(req *client.SnpDerivedKeyReq) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, err := client.OpenDevice()
	if err != nil {
		return nil, fmt.Errorf("opening /dev/sev-guest to derive the sealing key: %v", err)
	}
	defer d.Close()
	resp, err := client.GetDerivedKeyAcknowledgingItsLimitations(d, req)
	if err != nil {
		return nil, fmt.Errorf("deriving the sealing key: %v", err)
	}
	if resp.Status != 0 {
		return nil, fmt.Errorf("deriving the sealing key: firmware status %#x", resp.Status)
	}
	key := make([]byte, len(resp.Data))
	copy(key, resp.Data[:])
	return key, nil
}

// sealFields are the guest fields mixed into the sealing key: the launch
// measurement, the guest policy (so a debuggable VM derives another key) and
// the TCB version recorded at init.
var sealFields = client.GuestFieldSelect{Measurement: true, GuestPolicy: true, TCBVersion: true}

// snpSealParams returns the derivation parameters for a new seal: the VCEK
// as root key, sealFields, VMPL 0, guest SVN 0, and the committed TCB of
// the platform now (the firmware refuses to derive for a TCB above it, so a
// firmware rolled back below it cannot unseal).
func snpSealParams(hw snpHardware) (sealParams, error) {
	raw, err := hw.extendedReport([64]byte{})
	if err != nil {
		return sealParams{}, err
	}
	if len(raw) < abi.ReportSize {
		return sealParams{}, fmt.Errorf("the SEV-SNP report has %d bytes, want %d", len(raw), abi.ReportSize)
	}
	r, err := abi.ReportToProto(raw[:abi.ReportSize])
	if err != nil {
		return sealParams{}, fmt.Errorf("reading the SEV-SNP report: %v", err)
	}
	return sealParams{mode: sealModeSEVSNP, rootKey: 0, fieldSelect: sealFields.ABI(), vmpl: 0, guestSVN: 0, tcb: r.GetCommittedTcb()}, nil
}

// snpSealSecret asks the firmware for the key of p.
func snpSealSecret(hw snpHardware, p sealParams) ([]byte, error) {
	if p.fieldSelect != sealFields.ABI() {
		return nil, fmt.Errorf("%w: guest field select %#x is not Cleanroom's %#x", ErrSealBroken, p.fieldSelect, sealFields.ABI())
	}
	return hw.deriveKey(&client.SnpDerivedKeyReq{
		UseVCEK:          true,
		GuestFieldSelect: sealFields,
		Vmpl:             p.vmpl,
		GuestSVN:         p.guestSVN,
		TCBVersion:       p.tcb,
	})
}

// snpBackend produces real SEV-SNP evidence.
type snpBackend struct{ hw snpHardware }

func (b *snpBackend) evidence(reportData [64]byte) (attest.Evidence, error) {
	raw, err := b.hw.extendedReport(reportData)
	if err != nil {
		return nil, err
	}
	return attest.SNPEvidenceFromExtendedReport(raw)
}
