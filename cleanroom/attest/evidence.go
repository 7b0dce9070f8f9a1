package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/google/go-sev-guest/abi"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/canon"
)

// Evidence is attestation evidence from one confidential-computing platform:
// a statement signed by the platform about the software it runs and the 64
// bytes that software chose (REPORT_DATA). It is only a claim until a
// Verifier has checked it.
//
// Each platform (SEV-SNP, Intel TDX, AWS Nitro Enclaves, Arm CCA, and
// their simulated twins) has its own implementation; a Verifier checks any
// of them against the vendor's root, and a Policy against a contract's
// reference values.
type Evidence interface {
	// Platform names the platform the evidence says it comes from.
	Platform() contracts.Platform
	// MarshalBinary returns the evidence encoding of docs/attestation.md.
	MarshalBinary() ([]byte, error)

	// check validates the structure, never the signatures.
	check() error
	// verify checks that the evidence is genuine for v.
	verify(v *Verifier) (*Claims, error)
	// measurement is the 48-byte value identity documents and the audit
	// log show, read from the unverified evidence.
	measurement() ([48]byte, error)
	// simulatedRoot is the SHA-256 of the simulated root the evidence
	// chains to, read from the unverified evidence; nil on a real platform.
	simulatedRoot() (*[32]byte, error)
}

// MaxEvidenceSize bounds the evidence encoding ParseEvidence accepts.
const MaxEvidenceSize = 64 << 10

// maxCertSize bounds each certificate carried in SEV-SNP evidence.
const maxCertSize = 16 << 10

// SNPEvidence is SEV-SNP evidence: the 1184-byte ATTESTATION_REPORT and the
// certificates that verify it offline. On real hardware that is the VCEK
// (or VLEK) certificate from the host's certificate table; the ASK and ARK
// are AMD's, embedded in every verifier. On the simulated platform the fake
// ASK and ARK travel too, and a verifier accepts them only if the ARK's
// SHA-256 equals the pinned simulated root.
type SNPEvidence struct {
	platform contracts.Platform
	report   []byte
	ek       []byte
	ask      []byte
	ark      []byte
}

// NewSNPEvidence assembles SEV-SNP evidence. platform is sev-snp or
// sev-snp-simulated; report is the raw ATTESTATION_REPORT; ek is the DER
// VCEK or VLEK certificate (the one the report's SIGNING_KEY names); ask and
// ark are DER certificates, required for the simulated platform and
// forbidden for the real one (verifiers use AMD's embedded roots). It checks
// the structure only, never the signatures.
func NewSNPEvidence(platform contracts.Platform, report, ek, ask, ark []byte) (*SNPEvidence, error) {
	e := &SNPEvidence{
		platform: platform,
		report:   bytes.Clone(report),
		ek:       bytes.Clone(ek),
		ask:      bytes.Clone(ask),
		ark:      bytes.Clone(ark),
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *SNPEvidence) verify(v *Verifier) (*Claims, error) { return v.verifySNP(e) }

func (e *SNPEvidence) measurement() ([48]byte, error) {
	if err := e.check(); err != nil {
		return [48]byte{}, err
	}
	return [48]byte(e.report[0x90:0xC0]), nil
}

func (e *SNPEvidence) simulatedRoot() (*[32]byte, error) {
	if e.platform != contracts.PlatformSEVSNPSimulated {
		return nil, nil
	}
	h := sha256.Sum256(e.ark)
	return &h, nil
}

// Platform returns sev-snp or sev-snp-simulated.
func (e *SNPEvidence) Platform() contracts.Platform { return e.platform }

// Report returns the raw ATTESTATION_REPORT (1184 bytes).
func (e *SNPEvidence) Report() []byte { return bytes.Clone(e.report) }

// EndorsementKeyCert returns the DER VCEK or VLEK certificate.
func (e *SNPEvidence) EndorsementKeyCert() []byte { return bytes.Clone(e.ek) }

// ASKCert returns the DER ASK certificate carried in simulated evidence, or
// nil.
func (e *SNPEvidence) ASKCert() []byte { return bytes.Clone(e.ask) }

// ARKCert returns the DER ARK certificate carried in simulated evidence, or
// nil.
func (e *SNPEvidence) ARKCert() []byte { return bytes.Clone(e.ark) }

// check validates the structure: known platform, report size, certificates
// that parse, and the ASK/ARK rule per platform. The report's fields are read
// only after its signature verified, so that any change to a signed report
// is reported as a bad signature.
func (e *SNPEvidence) check() error {
	if e.platform != contracts.PlatformSEVSNP && e.platform != contracts.PlatformSEVSNPSimulated {
		return malformed("unknown platform %q (want %q or %q)", e.platform, contracts.PlatformSEVSNP, contracts.PlatformSEVSNPSimulated)
	}
	if len(e.report) != abi.ReportSize {
		return malformed("SEV-SNP report has %d bytes, want %d", len(e.report), abi.ReportSize)
	}
	if err := checkCert("VCEK/VLEK", e.ek); err != nil {
		return err
	}
	switch e.platform {
	case contracts.PlatformSEVSNP:
		if len(e.ask) != 0 || len(e.ark) != 0 {
			return malformed("sev-snp evidence must not carry ASK or ARK certificates: verifiers use AMD's embedded roots")
		}
	case contracts.PlatformSEVSNPSimulated:
		if err := checkCert("ASK", e.ask); err != nil {
			return err
		}
		if err := checkCert("ARK", e.ark); err != nil {
			return err
		}
	}
	return nil
}

func checkCert(name string, der []byte) error {
	if len(der) == 0 {
		return malformed("the %s certificate is missing", name)
	}
	if len(der) > maxCertSize {
		return malformed("the %s certificate has %d bytes, more than %d", name, len(der), maxCertSize)
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return malformed("the %s certificate does not parse: %v", name, err)
	}
	return nil
}

// snpWire is the CBOR map of SEV-SNP evidence (docs/attestation.md).
type snpWire struct {
	Platform string `cbor:"1,keyasint"`
	Report   []byte `cbor:"2,keyasint"`
	EK       []byte `cbor:"3,keyasint"`
	ASK      []byte `cbor:"4,keyasint,omitempty"`
	ARK      []byte `cbor:"5,keyasint,omitempty"`
}

// MarshalBinary returns the canonical evidence encoding: a CBOR map in core
// deterministic encoding (RFC 8949 §4.2.1).
func (e *SNPEvidence) MarshalBinary() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	return canon.Marshal(snpWire{Platform: string(e.platform), Report: e.report, EK: e.ek, ASK: e.ask, ARK: e.ark})
}

var (
	decoder = canon.NewDecoder(canon.Limits{MaxNestedLevels: 4, MaxArrayElements: 16, MaxMapPairs: 16})
)

// decodeCanonical decodes data into v strictly: no unknown or duplicate
// keys, no tags, no indefinite lengths, nothing after the item, and the
// bytes must be exactly the core deterministic encoding of the value, so
// every value has one encoding.
func decodeCanonical(what string, data []byte, v any) error {
	if err := decoder.Decode(what, data, v); err != nil {
		return malformed("%v", err)
	}
	return nil
}

// evidenceWire is the CBOR map every evidence encoding shares: key 1 names
// the platform, and keys 2 to 6 hold the platform's byte strings
// (docs/attestation.md). SEV-SNP evidence has always been encoded this way.
type evidenceWire struct {
	Platform string `cbor:"1,keyasint"`
	F2       []byte `cbor:"2,keyasint,omitempty"`
	F3       []byte `cbor:"3,keyasint,omitempty"`
	F4       []byte `cbor:"4,keyasint,omitempty"`
	F5       []byte `cbor:"5,keyasint,omitempty"`
	F6       []byte `cbor:"6,keyasint,omitempty"`
}

// ParseEvidence parses the evidence encoding strictly: the structure must be
// exactly as specified for the platform it names, canonical, within size
// limits, with certificates that parse. It does not verify anything; pass
// the result to a Verifier.
func ParseEvidence(data []byte) (Evidence, error) {
	if len(data) > MaxEvidenceSize {
		return nil, malformed("evidence of %d bytes exceeds %d", len(data), MaxEvidenceSize)
	}
	var w evidenceWire
	if err := decodeCanonical("evidence", data, &w); err != nil {
		return nil, err
	}
	p := contracts.Platform(w.Platform)
	none := func(keys ...[]byte) error {
		for _, k := range keys {
			if len(k) != 0 {
				return malformed("%s evidence has a field it does not define", p)
			}
		}
		return nil
	}
	var e Evidence
	switch p.Real() {
	case contracts.PlatformSEVSNP:
		if err := none(w.F6); err != nil {
			return nil, err
		}
		e = &SNPEvidence{platform: p, report: w.F2, ek: w.F3, ask: w.F4, ark: w.F5}
	case contracts.PlatformTDX:
		t := &TDXEvidence{platform: p, quote: w.F2}
		if len(w.F3)+len(w.F4)+len(w.F5)+len(w.F6) > 0 {
			t.collateral = &TDXCollateral{TCBInfo: w.F3, TCBInfoIssuerChain: w.F4, QEIdentity: w.F5, QEIdentityIssuerChain: w.F6}
		}
		e = t
	case contracts.PlatformNitro:
		if err := none(w.F3, w.F4, w.F5, w.F6); err != nil {
			return nil, err
		}
		e = &NitroEvidence{platform: p, document: w.F2}
	case contracts.PlatformCCA:
		if err := none(w.F4, w.F5, w.F6); err != nil {
			return nil, err
		}
		e = &CCAEvidence{platform: p, token: w.F2, iak: w.F3}
	default:
		return nil, malformed("unknown platform %s (want one of %s)", describePlatform(p), platformNames())
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

func platformNames() string {
	s := make([]string, len(contracts.Platforms))
	for i, p := range contracts.Platforms {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// describePlatform is for messages.
func describePlatform(p contracts.Platform) string {
	if p == "" {
		return "(none)"
	}
	return fmt.Sprintf("%q", string(p))
}

// SNPEvidenceFromExtendedReport builds sev-snp evidence from an extended
// report as an SEV-SNP guest gets it (configfs-tsm or /dev/sev-guest): the
// 1184-byte ATTESTATION_REPORT followed by the host's certificate table (the
// GUID table of the GHCB specification). The table must hold the
// certificate of the key the report's SIGNING_KEY names (VCEK or VLEK);
// other entries (ASK, ARK, platform information) are not kept, since
// verifiers use AMD's embedded roots.
func SNPEvidenceFromExtendedReport(data []byte) (*SNPEvidence, error) {
	if len(data) < abi.ReportSize {
		return nil, malformed("extended report has %d bytes, fewer than a report's %d", len(data), abi.ReportSize)
	}
	report, table := data[:abi.ReportSize], data[abi.ReportSize:]
	if len(table) == 0 {
		return nil, malformed("the report comes without a certificate table: the host supplies no VCEK/VLEK certificate (configure the host to serve its certificates in extended reports; Cleanroom never fetches them from AMD)")
	}
	var certs abi.CertTable
	if err := certs.Unmarshal(table); err != nil {
		return nil, malformed("the host's certificate table: %v", err)
	}
	chain := certs.Proto()
	signerInfo, err := abi.ReportSignerInfo(report)
	if err != nil {
		return nil, malformed("%v", err)
	}
	info, err := abi.ParseSignerInfo(signerInfo)
	if err != nil {
		return nil, malformed("the report's signer info: %v", err)
	}
	var ek []byte
	switch info.SigningKey {
	case abi.VcekReportSigner:
		ek = chain.GetVcekCert()
	case abi.VlekReportSigner:
		ek = chain.GetVlekCert()
	default:
		return nil, malformed("the report's SIGNING_KEY is %v, not VCEK or VLEK", info.SigningKey)
	}
	if len(ek) == 0 {
		return nil, malformed("the host's certificate table has no %v certificate (configure the host to serve it; Cleanroom never fetches it from AMD)", info.SigningKey)
	}
	return NewSNPEvidence(contracts.PlatformSEVSNP, report, ek, nil, nil)
}
