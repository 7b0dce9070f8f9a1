package attest

import (
	"fmt"

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

// sameComponents reports whether the four components a contract names are
// equal.
func (t TCB) sameComponents(o TCB) bool {
	return t.Bootloader == o.Bootloader && t.TEE == o.TEE && t.SNP == o.SNP && t.Microcode == o.Microcode
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
