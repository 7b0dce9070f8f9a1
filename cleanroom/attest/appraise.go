package attest

import (
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/verify/trust"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/contracts"
)

// RawEvidence is attestation evidence as a platform's own tools give it,
// with what verifying it offline needs, for LoadEvidence.
type RawEvidence struct {
	// Data is the evidence: Cleanroom's evidence encoding (any platform,
	// simulated ones included), or the platform's own form: an SEV-SNP
	// report (bare, with VCEK, or extended: followed by the host's
	// certificate table), a TDX quote, a Nitro attestation document or a
	// CCA token.
	Data []byte
	// Platform is the platform of Data in its own form (default sev-snp);
	// for Cleanroom's encoding, the platform it must be (or empty).
	Platform contracts.Platform
	// VCEK is an SEV-SNP report's VCEK or VLEK certificate (DER or PEM).
	VCEK []byte
	// IAK is a CCA platform's Initial Attestation Key (PEM or DER public
	// key).
	IAK []byte
}

// Errors of LoadEvidence that tell the caller what to supply.
var (
	// ErrNeedVCEK reports a bare SEV-SNP report given without its VCEK.
	ErrNeedVCEK = errors.New("a bare SEV-SNP report verifies offline only with its VCEK certificate")
	// ErrNeedIAK reports a CCA token given without its platform key.
	ErrNeedIAK = errors.New("a CCA token verifies with its platform's Initial Attestation Key")
	// ErrBadVCEK reports a VCEK that is not a certificate.
	ErrBadVCEK = errors.New("the VCEK is not a certificate (DER or PEM)")
)

// IsEncoded reports whether data is in Cleanroom's evidence encoding (a
// CBOR map), which carries its certificates and keys.
func IsEncoded(data []byte) bool { return len(data) > 0 && data[0]&0xe0 == 0xa0 }

// LoadEvidence decodes raw evidence into Evidence, ready to verify. It
// checks the form, not authenticity.
func LoadEvidence(r RawEvidence) (Evidence, error) {
	p := r.Platform
	if p != "" && (!p.Known() || p.Simulated()) {
		return nil, fmt.Errorf("platform %q is not sev-snp, tdx, nitro or cca (simulated evidence comes only in Cleanroom's encoding)", p)
	}
	if IsEncoded(r.Data) {
		if r.VCEK != nil || r.IAK != nil {
			return nil, errors.New("Cleanroom's evidence encoding carries its certificates and keys; no separate VCEK or IAK is used")
		}
		ev, err := ParseEvidence(r.Data)
		if err != nil {
			return nil, err
		}
		if p != "" && ev.Platform().Real() != p {
			return nil, fmt.Errorf("the evidence comes from platform %s, not %s", ev.Platform(), p)
		}
		return ev, nil
	}
	if p != "" && p != contracts.PlatformSEVSNP && r.VCEK != nil {
		return nil, errors.New("a VCEK certificate goes with sev-snp evidence")
	}
	if p != contracts.PlatformCCA && r.IAK != nil {
		return nil, errors.New("a platform key (IAK) goes with cca evidence")
	}
	switch p {
	case contracts.PlatformTDX:
		return NewTDXEvidence(p, r.Data, nil)
	case contracts.PlatformNitro:
		return NewNitroEvidence(p, r.Data)
	case contracts.PlatformCCA:
		if r.IAK == nil {
			return nil, ErrNeedIAK
		}
		key := r.IAK
		if b, _ := pem.Decode(key); b != nil {
			key = b.Bytes
		}
		return NewCCAEvidence(p, r.Data, key)
	}
	if len(r.Data) < abi.ReportSize {
		return nil, fmt.Errorf("the evidence has %d bytes: an SEV-SNP attestation report has %d", len(r.Data), abi.ReportSize)
	}
	if r.VCEK == nil {
		if len(r.Data) == abi.ReportSize {
			return nil, ErrNeedVCEK
		}
		return SNPEvidenceFromExtendedReport(r.Data)
	}
	cert, err := trust.ParseCert(r.VCEK)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadVCEK, err)
	}
	return NewSNPEvidence(contracts.PlatformSEVSNP, r.Data[:abi.ReportSize], cert.Raw, nil, nil)
}

// AppraisalOptions are the trust and policy of Appraise. Either Contract
// supplies the whole policy, or the fields below it do.
type AppraisalOptions struct {
	// Contract, when set, is the policy: its coordinator section's
	// platform, reference values, debug and TCB rules, and the pins of a
	// simulated root or a CCA platform key.
	Contract *contracts.Contract
	// Measurements are the acceptable measurements without a contract:
	// SEV-SNP MEASUREMENT, TDX MRTD, Nitro PCR0 (48 bytes), CCA RIM (32, 48
	// or 64 bytes). None: the measurement is shown but not checked.
	Measurements [][]byte
	// AllowDebug accepts a debuggable guest, TD, enclave or platform
	// (without a contract).
	AllowDebug bool
	// ReportData is the exact REPORT_DATA expected (a Nitro document's
	// user_data); nil checks none. An identity document's evidence is
	// always checked to bind its keys instead.
	ReportData *[64]byte
	// Product is the AMD product line an SEV-SNP report must come from
	// (ProductMilan ...); empty accepts any.
	Product string
	// At verifies as of that time (certificates and TDX collateral must be
	// valid then) instead of now.
	At time.Time
	// EARSigner, when set, signs the appraisal as an EAT Attestation
	// Result (Appraisal.EAR) whether the evidence passed or not; EARBuild
	// names the verifier's build in it.
	EARSigner *cleanroom.Identity
	EARBuild  string
}

// ErrSimulatedUnpinned reports simulated evidence appraised without a
// contract: it is genuine only against a pinned simulated root.
var ErrSimulatedUnpinned = errors.New("this evidence comes from a SIMULATED platform: it is genuine only against a pinned simulated root, and none is given")

// Appraisal is what Appraise found: the claims of genuine evidence, and
// whether they meet the policy.
type Appraisal struct {
	// Claims are set when the evidence is genuine.
	Claims *Claims
	// Err is nil when the evidence is genuine and meets the policy;
	// otherwise it says which check failed (a *CheckError).
	Err error
	// Root names what the evidence chains to when genuine ("AMD's root",
	// "the pinned SIMULATED root", ...).
	Root string
	// MeasurementChecked and ReportDataChecked say whether the policy
	// checked them.
	MeasurementChecked, ReportDataChecked bool
	// IAKTrustedAsGiven is the SHA-256 of a CCA platform key trusted as
	// given, without a contract pinning it.
	IAKTrustedAsGiven *[32]byte
	// EAR is the signed EAT Attestation Result (a JWT) when asked for, and
	// EARStatus each submodule's status in it.
	EAR       []byte
	EARStatus map[string]string
}

// Appraise verifies evidence offline, down to the vendor's root keys (or a
// pinned simulated root or CCA platform key): is it genuine (verify), and
// does it meet the policy of opts (validate). With an identity document,
// doc's evidence must also bind the document's keys. An error return means
// the appraisal could not be made (a policy that cannot apply); a failed
// appraisal is Appraisal.Err.
func Appraise(ev Evidence, doc *IdentityDocument, opts AppraisalOptions) (*Appraisal, error) {
	policy, err := measurementPolicy(opts.Measurements, ev.Platform())
	if err != nil {
		return nil, err
	}
	vopts := VerifierOptions{Platform: ev.Platform(), Product: opts.Product}
	if !opts.At.IsZero() {
		at := opts.At
		vopts.Now = func() time.Time { return at }
	}
	a := &Appraisal{}
	policyID := "command-line"
	if ct := opts.Contract; ct != nil {
		if len(opts.Measurements) > 0 || opts.AllowDebug {
			return nil, errors.New("a contract supplies the measurements and allow_debug; give neither besides it")
		}
		cp := &ct.Coordinator
		vopts.Platform, vopts.SimulatedRootSHA256 = cp.Platform, cp.SimulatedRootSHA256
		if cp.Platform == contracts.PlatformCCA && cp.CCA != nil {
			vopts.CCAIAKSHA256 = cp.CCA.Platform.IAKSHA256
		}
		policy = PolicyFromContract(cp, [64]byte{})
		policy.ReportData, policy.Origin = nil, "the contract's"
		policyID = "contract:" + ct.ID().String()
	} else {
		if ev.Platform().Simulated() {
			return nil, ErrSimulatedUnpinned
		}
		if cca, ok := ev.(*CCAEvidence); ok {
			sum := sha256.Sum256(cca.IAK())
			vopts.CCAIAKSHA256, a.IAKTrustedAsGiven = [][32]byte{sum}, &sum
		}
		policy.InsecureAllowDebug = opts.AllowDebug
		policy.Origin = "the --measurement"
		policy.InsecureAnyMeasurement = len(opts.Measurements) == 0
	}
	switch {
	case doc != nil:
		// VerifyWith binds the document's keys.
		if opts.ReportData != nil {
			return nil, errors.New("an identity document's report data must bind its public key; give no report data besides it")
		}
	case opts.ReportData != nil:
		policy.ReportData = opts.ReportData
	default:
		policy.InsecureAnyReportData = true
	}
	a.MeasurementChecked, a.ReportDataChecked = !policy.InsecureAnyMeasurement, !policy.InsecureAnyReportData
	v, err := NewVerifier(vopts)
	if err != nil {
		return nil, err
	}
	var verifyErr, validateErr error
	if doc != nil {
		a.Claims, err = doc.VerifyWith(v, policy, nil)
		if a.Claims == nil {
			verifyErr = err
		} else {
			validateErr = err
		}
	} else if a.Claims, verifyErr = v.Verify(ev); verifyErr == nil {
		validateErr = policy.Validate(a.Claims)
	}
	a.Err = errors.Join(verifyErr, validateErr)
	if a.Claims != nil {
		a.Root = ev.Platform().Vendor() + "'s root"
		if ev.Platform() == contracts.PlatformCCA {
			a.Root = "the pinned platform key"
		}
		if a.Claims.SimulatedRoot() != nil {
			a.Root = "the pinned SIMULATED root"
		}
	}
	if opts.EARSigner != nil {
		ar, err := NewEAR(a.Claims, verifyErr, validateErr, EAROptions{Build: opts.EARBuild, PolicyID: policyID})
		if err != nil {
			return nil, err
		}
		if a.EAR, err = SignEAR(ar, opts.EARSigner); err != nil {
			return nil, err
		}
		a.EARStatus = map[string]string{}
		for name, sub := range ar.Submods {
			a.EARStatus[name] = sub.Status.String()
		}
	}
	return a, nil
}

// measurementPolicy reads measurements as the platform's: SEV-SNP
// MEASUREMENT, TDX MRTD and Nitro PCR0 (48 bytes), CCA RIM (32, 48 or 64
// bytes).
func measurementPolicy(list [][]byte, p contracts.Platform) (Policy, error) {
	var pol Policy
	switch p.Real() {
	case contracts.PlatformTDX:
		pol.TDX = &contracts.TDXRefs{}
	case contracts.PlatformNitro:
		pol.Nitro = &contracts.NitroRefs{}
	case contracts.PlatformCCA:
		pol.CCA = &contracts.CCARefs{}
	}
	for _, b := range list {
		if pol.CCA != nil {
			if len(b) != 32 && len(b) != 48 && len(b) != 64 {
				return pol, fmt.Errorf("measurement %x is not a Realm Initial Measurement of 32, 48 or 64 bytes", b)
			}
			pol.CCA.RIM = append(pol.CCA.RIM, b)
			continue
		}
		if len(b) != 48 {
			return pol, fmt.Errorf("measurement %x is not 48 bytes (96 hex digits)", b)
		}
		switch {
		case pol.TDX != nil:
			pol.TDX.MRTD = append(pol.TDX.MRTD, [48]byte(b))
		case pol.Nitro != nil:
			pol.Nitro.PCR0 = append(pol.Nitro.PCR0, [48]byte(b))
		default:
			pol.Measurements = append(pol.Measurements, [48]byte(b))
		}
	}
	return pol, nil
}

// DescribeSNPPolicy names an SEV-SNP guest policy's set flags and minimum
// ABI, as `cleanroom attestation verify` prints them.
func DescribeSNPPolicy(p uint64) string {
	pol, err := abi.ParseSnpPolicy(p)
	if err != nil {
		return "unparsable"
	}
	parts := []string{fmt.Sprintf("abi>=%d.%d", pol.ABIMajor, pol.ABIMinor)}
	flags := []struct {
		on   bool
		name string
	}{
		{pol.Debug, "DEBUG"}, {pol.SMT, "smt"}, {pol.MigrateMA, "migrate_ma"}, {pol.SingleSocket, "single_socket"},
		{pol.CXLAllowed, "cxl_allowed"}, {pol.MemAES256XTS, "mem_aes_256_xts"}, {pol.RAPLDis, "rapl_dis"},
		{pol.CipherTextHidingDRAM, "ciphertext_hiding"}, {pol.PageSwapDisable, "page_swap_disable"},
	}
	for _, f := range flags {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	return strings.Join(parts, " ")
}
