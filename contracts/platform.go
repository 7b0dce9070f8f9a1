package contracts

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Platform names the confidential-computing platform the coordinator must
// attest on.
type Platform string

// Platforms (SPEC §5.1). Each real platform has a simulated twin that runs
// the same verification code against a throw-away vendor root made at the
// coordinator's first start: it protects nothing and exists so the real
// protocol can run without the hardware.
const (
	PlatformSEVSNP          Platform = "sev-snp"
	PlatformSEVSNPSimulated Platform = "sev-snp-simulated"
	PlatformTDX             Platform = "tdx"
	PlatformTDXSimulated    Platform = "tdx-simulated"
	PlatformNitro           Platform = "nitro"
	PlatformNitroSimulated  Platform = "nitro-simulated"
	PlatformCCA             Platform = "cca"
	PlatformCCASimulated    Platform = "cca-simulated"
)

// Platforms lists every platform a contract may name, real ones first.
var Platforms = []Platform{
	PlatformSEVSNP, PlatformTDX, PlatformNitro, PlatformCCA,
	PlatformSEVSNPSimulated, PlatformTDXSimulated, PlatformNitroSimulated, PlatformCCASimulated,
}

const simulatedSuffix = "-simulated"

// Known reports whether p is one of Platforms.
func (p Platform) Known() bool { return slices.Contains(Platforms, p) }

// Simulated reports whether p is a simulated twin.
func (p Platform) Simulated() bool { return p.Known() && strings.HasSuffix(string(p), simulatedSuffix) }

// Real returns the real platform of p: p itself, or the platform a
// simulated twin imitates.
func (p Platform) Real() Platform { return Platform(strings.TrimSuffix(string(p), simulatedSuffix)) }

// Vendor names, for messages, whose root of trust the real platform chains
// to.
func (p Platform) Vendor() string {
	switch p.Real() {
	case PlatformSEVSNP:
		return "AMD"
	case PlatformTDX:
		return "Intel"
	case PlatformNitro:
		return "AWS"
	case PlatformCCA:
		return "Arm CCA platform"
	}
	return "the platform's"
}

func platformList() string {
	s := make([]string, len(Platforms))
	for i, p := range Platforms {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// TDXRefs are a contract's reference values for Intel TDX (coordinator.tdx).
type TDXRefs struct {
	// MRTD lists the acceptable build-time measurements of the TD.
	MRTD [][48]byte
	// RTMR lists acceptable run-time measurement registers, each entry all
	// four of RTMR0..RTMR3; empty accepts any.
	RTMR [][4][48]byte
	// MinTEETCBSVN is the lowest acceptable TEE_TCB_SVN, compared byte by
	// byte (each byte is one component's security version number).
	MinTEETCBSVN [16]byte
	// AllowDebug accepts a TD whose attributes let the host debug it.
	AllowDebug bool
}

// NitroRefs are a contract's reference values for AWS Nitro Enclaves
// (coordinator.nitro): acceptable SHA-384 PCR values. PCR0 is required;
// an empty PCR1 or PCR2 list accepts any value.
type NitroRefs struct {
	PCR0 [][48]byte // the enclave image file
	PCR1 [][48]byte // the Linux kernel and boot ramfs
	PCR2 [][48]byte // the application
}

// CCARefs are a contract's reference values for Arm CCA (coordinator.cca).
type CCARefs struct {
	// RIM lists acceptable Realm Initial Measurements (32, 48 or 64 bytes,
	// as the realm's hash algorithm makes them).
	RIM [][]byte
	// Platform holds the platform token's reference values.
	Platform CCAPlatformRefs
}

// CCAPlatformRefs are the reference values of a CCA platform token
// (coordinator.cca.platform_refs).
type CCAPlatformRefs struct {
	// IAKSHA256 pins the platform's Initial Attestation Keys: the SHA-256
	// of each acceptable key's DER SubjectPublicKeyInfo. Required on cca;
	// on cca-simulated the key is pinned by simulated_root_sha256.
	IAKSHA256 [][32]byte
	// ImplementationIDs, when not empty, lists acceptable platform
	// implementation ids (32 bytes).
	ImplementationIDs [][]byte
	// SWMeasurements, when not empty, lists acceptable measurement values
	// of the platform's software components: every component's must be in
	// the list.
	SWMeasurements [][]byte
}

func (d *decoder) hexList(n *yaml.Node, path string, size int, add func([]byte)) {
	var seen []string
	d.sequence(n, path, func(_ int, item *yaml.Node, ip string) {
		b, ok := d.hexBytes(item, ip, size)
		if !ok {
			return
		}
		k := string(b)
		if slices.Contains(seen, k) {
			d.errorf(ip, item, "value listed twice")
			return
		}
		seen = append(seen, k)
		add(b)
	})
}

// hexVarList decodes a list of hex strings of 32, 48 or 64 bytes.
func (d *decoder) hexVarList(n *yaml.Node, path string, add func([]byte)) {
	var seen []string
	d.sequence(n, path, func(_ int, item *yaml.Node, ip string) {
		s, ok := d.str(item, ip)
		if !ok {
			return
		}
		var b []byte
		for _, size := range []int{32, 48, 64} {
			if len(s) == 2*size {
				b, ok = d.hexBytes(item, ip, size)
				if !ok {
					return
				}
			}
		}
		if b == nil {
			d.errorf(ip, item, "must be 64, 96 or 128 hex digits (a SHA-256, SHA-384 or SHA-512 digest), got %q", truncate(s))
			return
		}
		if slices.Contains(seen, string(b)) {
			d.errorf(ip, item, "value listed twice")
			return
		}
		seen = append(seen, string(b))
		add(b)
	})
}

func (d *decoder) tdx(n *yaml.Node, path string, at func(string, *yaml.Node)) *TDXRefs {
	r := &TDXRefs{}
	d.mapping(n, path, []field{
		{"mrtd", true, func(n *yaml.Node, p string) {
			at(p, n)
			d.hexList(n, p, 48, func(b []byte) { r.MRTD = append(r.MRTD, [48]byte(b)) })
		}},
		{"rtmr", false, func(n *yaml.Node, p string) {
			at(p, n)
			d.sequence(n, p, func(_ int, item *yaml.Node, ip string) {
				var set [4][48]byte
				ok := true
				if item.Kind != yaml.SequenceNode || len(item.Content) != 4 {
					d.errorf(ip, item, "must be a list of the four registers [rtmr0, rtmr1, rtmr2, rtmr3], got %s", describe(item))
					return
				}
				for j, reg := range item.Content {
					b, good := d.hexBytes(reg, index(ip, j), 48)
					if !good {
						ok = false
						continue
					}
					set[j] = [48]byte(b)
				}
				if !ok {
					return
				}
				if slices.Contains(r.RTMR, set) {
					d.errorf(ip, item, "value listed twice")
					return
				}
				r.RTMR = append(r.RTMR, set)
			})
		}},
		{"min_tee_tcb_svn", false, func(n *yaml.Node, p string) {
			at(p, n)
			if b, ok := d.hexBytes(n, p, 16); ok {
				r.MinTEETCBSVN = [16]byte(b)
			}
		}},
		{"allow_debug", false, func(n *yaml.Node, p string) {
			r.AllowDebug, _ = d.boolean(n, p)
		}},
	})
	return r
}

func (d *decoder) nitro(n *yaml.Node, path string, at func(string, *yaml.Node)) *NitroRefs {
	r := &NitroRefs{}
	pcr := func(dst *[][48]byte) func(*yaml.Node, string) {
		return func(n *yaml.Node, p string) {
			at(p, n)
			d.hexList(n, p, 48, func(b []byte) { *dst = append(*dst, [48]byte(b)) })
		}
	}
	d.mapping(n, path, []field{
		{"pcr0", true, pcr(&r.PCR0)},
		{"pcr1", false, pcr(&r.PCR1)},
		{"pcr2", false, pcr(&r.PCR2)},
	})
	return r
}

func (d *decoder) cca(n *yaml.Node, path string, at func(string, *yaml.Node)) *CCARefs {
	r := &CCARefs{}
	d.mapping(n, path, []field{
		{"rim", true, func(n *yaml.Node, p string) {
			at(p, n)
			d.hexVarList(n, p, func(b []byte) { r.RIM = append(r.RIM, b) })
		}},
		{"platform_refs", false, func(n *yaml.Node, p string) {
			at(p, n)
			d.mapping(n, p, []field{
				{"iak_sha256", false, func(n *yaml.Node, p string) {
					at(p, n)
					d.hexList(n, p, 32, func(b []byte) { r.Platform.IAKSHA256 = append(r.Platform.IAKSHA256, [32]byte(b)) })
				}},
				{"implementation_ids", false, func(n *yaml.Node, p string) {
					at(p, n)
					d.hexList(n, p, 32, func(b []byte) { r.Platform.ImplementationIDs = append(r.Platform.ImplementationIDs, b) })
				}},
				{"sw_measurements", false, func(n *yaml.Node, p string) {
					at(p, n)
					d.hexVarList(n, p, func(b []byte) { r.Platform.SWMeasurements = append(r.Platform.SWMeasurements, b) })
				}},
			})
		}},
	})
	return r
}

// platformSections checks that the coordinator section holds exactly the
// reference values its platform uses.
func (v *validator) platformSections() {
	cp := &v.c.Coordinator
	real := cp.Platform.Real()
	section := map[Platform]bool{PlatformTDX: cp.TDX != nil, PlatformNitro: cp.Nitro != nil, PlatformCCA: cp.CCA != nil}
	for p, present := range section {
		name := "coordinator." + string(p)
		switch {
		case p == real && !present:
			v.problem(name, "is required with platform %s: it holds the platform's reference values", cp.Platform)
		case p != real && present:
			v.problem(name, "must be absent with platform %s (it holds the reference values of platform %s)", cp.Platform, p)
		}
	}
	if real == PlatformSEVSNP {
		if len(cp.Measurements) == 0 {
			v.problem("coordinator.measurements", "at least one trusted measurement is needed")
		}
		return
	}
	if len(cp.Measurements) > 0 {
		v.problem("coordinator.measurements", "must be absent with platform %s: its measurements go in coordinator.%s", cp.Platform, real)
	}
	if cp.MinTCB != (TCB{}) {
		v.problem("coordinator.min_tcb", "is an SEV-SNP field and must be absent with platform %s", cp.Platform)
	}
	switch real {
	case PlatformTDX:
		if cp.AllowDebug {
			v.problem("coordinator.allow_debug", "must be absent with platform %s: use coordinator.tdx.allow_debug", cp.Platform)
		}
		if cp.TDX != nil && len(cp.TDX.MRTD) == 0 {
			v.problem("coordinator.tdx.mrtd", "at least one trusted MRTD is needed")
		}
		if cp.TDX != nil && len(cp.TDX.MRTD) > MaxMeasurements {
			v.problem("coordinator.tdx.mrtd", "%d values is more than the limit of %d", len(cp.TDX.MRTD), MaxMeasurements)
		}
	case PlatformNitro:
		if cp.Nitro != nil && len(cp.Nitro.PCR0) == 0 {
			v.problem("coordinator.nitro.pcr0", "at least one trusted PCR0 (the enclave image) is needed")
		}
	case PlatformCCA:
		if cp.CCA == nil {
			return
		}
		if len(cp.CCA.RIM) == 0 {
			v.problem("coordinator.cca.rim", "at least one trusted Realm Initial Measurement is needed")
		}
		pins := len(cp.CCA.Platform.IAKSHA256) > 0
		if cp.Platform == PlatformCCA && !pins {
			v.problem("coordinator.cca.platform_refs.iak_sha256", "is required with platform %s: pin the SHA-256 of the platform's Initial Attestation Key (its DER SubjectPublicKeyInfo)", PlatformCCA)
		}
		if cp.Platform == PlatformCCASimulated && pins {
			v.problem("coordinator.cca.platform_refs.iak_sha256", "must be absent with platform %s: its throw-away key is pinned by simulated_root_sha256", PlatformCCASimulated)
		}
	}
}

// FlowYAML returns the coordinator section as one line of flow-style YAML,
// as a contract writes it after "coordinator: ", with only the fields its
// platform uses.
func (cp *CoordinatorPolicy) FlowYAML() string {
	var b strings.Builder
	h := func(x []byte) string { return `"` + hex.EncodeToString(x) + `"` }
	list48 := func(l [][48]byte) string {
		s := make([]string, len(l))
		for i := range l {
			s[i] = h(l[i][:])
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	list := func(l [][]byte) string {
		s := make([]string, len(l))
		for i := range l {
			s[i] = h(l[i])
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	fmt.Fprintf(&b, "{platform: %s", cp.Platform)
	if len(cp.Measurements) > 0 {
		fmt.Fprintf(&b, ", measurements: %s", list48(cp.Measurements))
	}
	if cp.AllowDebug {
		b.WriteString(", allow_debug: true")
	}
	if cp.MinTCB != (TCB{}) {
		t := cp.MinTCB
		fmt.Fprintf(&b, ", min_tcb: {bootloader: %d, tee: %d, snp: %d, microcode: %d}", t.Bootloader, t.TEE, t.SNP, t.Microcode)
	}
	if cp.SimulatedRootSHA256 != nil {
		fmt.Fprintf(&b, ", simulated_root_sha256: %s", h(cp.SimulatedRootSHA256[:]))
	}
	if r := cp.TDX; r != nil {
		fmt.Fprintf(&b, ", tdx: {mrtd: %s", list48(r.MRTD))
		if len(r.RTMR) > 0 {
			sets := make([]string, len(r.RTMR))
			for i, set := range r.RTMR {
				sets[i] = list48(set[:])
			}
			fmt.Fprintf(&b, ", rtmr: [%s]", strings.Join(sets, ", "))
		}
		fmt.Fprintf(&b, ", min_tee_tcb_svn: %s, allow_debug: %v}", h(r.MinTEETCBSVN[:]), r.AllowDebug)
	}
	if r := cp.Nitro; r != nil {
		fmt.Fprintf(&b, ", nitro: {pcr0: %s, pcr1: %s, pcr2: %s}", list48(r.PCR0), list48(r.PCR1), list48(r.PCR2))
	}
	if r := cp.CCA; r != nil {
		iak := make([][]byte, len(r.Platform.IAKSHA256))
		for i := range iak {
			iak[i] = r.Platform.IAKSHA256[i][:]
		}
		fmt.Fprintf(&b, ", cca: {rim: %s, platform_refs: {iak_sha256: %s, implementation_ids: %s, sw_measurements: %s}}",
			list(r.RIM), list(iak), list(r.Platform.ImplementationIDs), list(r.Platform.SWMeasurements))
	}
	b.WriteString("}")
	return b.String()
}
