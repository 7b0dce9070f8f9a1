package attest

import (
	"fmt"

	"github.com/google/go-sev-guest/kds"

	"cleanroom.dev/cleanroom/contracts"
)

// AMD product lines.
const (
	ProductMilan = "Milan"
	ProductGenoa = "Genoa"
	ProductTurin = "Turin"
)

// TCB is a decoded SEV-SNP TCB_VERSION: the security version number of each
// firmware component. Its layout depends on the product line (SEV-SNP ABI
// specification, TCB_VERSION):
//
//	Milan, Genoa: byte 0 BOOTLOADER, 1 TEE, 2–5 reserved, 6 SNP, 7 MICROCODE
//	Turin:        byte 0 FMC, 1 BOOTLOADER, 2 TEE, 3 SNP, 4–6 reserved, 7 MICROCODE
//
// (byte 0 is the least significant byte of the little-endian 64-bit value).
type TCB struct {
	Raw        uint64
	Bootloader uint8
	TEE        uint8
	SNP        uint8
	Microcode  uint8
	// FMC is the firmware mailbox controller's version; HasFMC is true on
	// Turin and later, which have one.
	FMC    uint8
	HasFMC bool
}

// DecodeTCB decodes a TCB_VERSION for the given product line.
func DecodeTCB(productLine string, raw uint64) TCB {
	b := func(i int) uint8 { return uint8(raw >> (8 * i)) }
	if productLine == ProductTurin {
		return TCB{Raw: raw, FMC: b(0), HasFMC: true, Bootloader: b(1), TEE: b(2), SNP: b(3), Microcode: b(7)}
	}
	return TCB{Raw: raw, Bootloader: b(0), TEE: b(1), SNP: b(6), Microcode: b(7)}
}

// String returns "bootloader=B tee=T snp=S microcode=M" (with "fmc=F " first
// on Turin).
func (t TCB) String() string {
	s := fmt.Sprintf("bootloader=%d tee=%d snp=%d microcode=%d", t.Bootloader, t.TEE, t.SNP, t.Microcode)
	if t.HasFMC {
		s = fmt.Sprintf("fmc=%d ", t.FMC) + s
	}
	return s
}

// below returns the name of the first component of t lower than min's, or "".
func (t TCB) below(min contracts.TCB) string {
	switch {
	case t.Bootloader < min.Bootloader:
		return "bootloader"
	case t.TEE < min.TEE:
		return "tee"
	case t.SNP < min.SNP:
		return "snp"
	case t.Microcode < min.Microcode:
		return "microcode"
	}
	return ""
}

func formatMinTCB(m contracts.TCB) string {
	return fmt.Sprintf("bootloader=%d tee=%d snp=%d microcode=%d", m.Bootloader, m.TEE, m.SNP, m.Microcode)
}

// tcbComponent names byte i (0 the least significant) of a TCB_VERSION in
// the layout of productLine.
func tcbComponent(productLine string, i int) string {
	if productLine == ProductTurin {
		return [8]string{"fmc", "bootloader", "tee", "snp", "reserved byte 4", "reserved byte 5", "reserved byte 6", "microcode"}[i]
	}
	return [8]string{"bootloader", "tee", "reserved byte 2", "reserved byte 3", "reserved byte 4", "reserved byte 5", "snp", "microcode"}[i]
}

// firstDifferent returns the index of the first byte in which a and b
// differ, or -1 when they are equal.
func firstDifferent(a, b uint64) int {
	for i := 0; i < 8; i++ {
		if uint8(a>>(8*i)) != uint8(b>>(8*i)) {
			return i
		}
	}
	return -1
}

// firstAbove returns the index of the first byte of a that is greater than
// the same byte of b, or -1 when a ≤ b component by component. Every byte
// of a TCB_VERSION is one security version number (or reserved, and zero),
// whatever the product line, so the comparison needs no layout.
func firstAbove(a, b uint64) int {
	for i := 0; i < 8; i++ {
		if uint8(a>>(8*i)) > uint8(b>>(8*i)) {
			return i
		}
	}
	return -1
}

// describe returns the components and the raw value, for messages.
func (t TCB) describe() string { return fmt.Sprintf("%s, %#016x", t, t.Raw) }

// endorsedTCB returns the TCB an endorsement key certificate was issued for
// (kds.Extensions.TCBVersion, composed in the Milan layout from the
// certificate's SPL extensions), laid out as the product line's
// TCB_VERSION, and the mask of the bytes the certificate speaks for. On
// Milan and Genoa the layouts are the same and every byte counts. On Turin
// the certificate's bootloader, TEE, SNP and microcode move to their Turin
// bytes; its FMC byte is not covered (the KDS extensions go-sev-guest reads
// carry no FMC), and reserved SPLs 4–7, which a Turin TCB_VERSION has no
// place for, must be zero.
func endorsedTCB(productLine string, v kds.TCBVersion) (raw, mask uint64, err error) {
	if productLine != ProductTurin {
		return uint64(v), ^uint64(0), nil
	}
	p := kds.DecomposeTCBVersion(v)
	if p.Spl4|p.Spl5|p.Spl6|p.Spl7 != 0 {
		return 0, 0, fmt.Errorf("the certificate names reserved TCB components (SPL 4–7: %d %d %d %d) that a Turin TCB_VERSION has no place for", p.Spl4, p.Spl5, p.Spl6, p.Spl7)
	}
	raw = uint64(p.BlSpl)<<8 | uint64(p.TeeSpl)<<16 | uint64(p.SnpSpl)<<24 | uint64(p.UcodeSpl)<<56
	return raw, ^uint64(0xff), nil
}
