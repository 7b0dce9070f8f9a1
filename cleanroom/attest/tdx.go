package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	tdxabi "github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
	tdxvalidate "github.com/google/go-tdx-guest/validate"
	tdxverify "github.com/google/go-tdx-guest/verify"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/canon"
)

// Bounds on the parts of TDX evidence.
const (
	maxTDXQuoteSize      = 16 << 10
	maxTDXCollateralPart = 16 << 10
)

// TDXEvidence is Intel TDX evidence: a TDX quote (version 4) whose
// certification data carries the PCK certificate chain, and optionally the
// collateral that rates the platform's TCB (Intel PCS's TCB info and QE
// identity, each with its issuer chain). The quote verifies offline down to
// the Intel SGX Root CA (embedded in every verifier); on tdx-simulated the
// chain ends in a throw-away root that a verifier accepts only when pinned.
type TDXEvidence struct {
	platform   contracts.Platform
	quote      []byte
	collateral *TDXCollateral
}

// TDXCollateral is what Intel's Provisioning Certification Service serves
// for a platform, kept as served so its signatures verify: the TCB info and
// QE identity response bodies (JSON with "tcbInfo"/"enclaveIdentity" and
// "signature") and the issuer chains of their HTTP headers (PEM: the TCB
// signing certificate, then the root). Verification never fetches it.
type TDXCollateral struct {
	TCBInfo               []byte
	TCBInfoIssuerChain    []byte
	QEIdentity            []byte
	QEIdentityIssuerChain []byte
}

// Collateral file names in a directory (cleanroom attestation verify
// --collateral DIR, and a TDX coordinator's data directory).
const (
	TDXTCBInfoFile               = "tcb_info.json"
	TDXTCBInfoIssuerChainFile    = "tcb_info_issuer_chain.pem"
	TDXQEIdentityFile            = "qe_identity.json"
	TDXQEIdentityIssuerChainFile = "qe_identity_issuer_chain.pem"
)

// NewTDXEvidence assembles TDX evidence from a raw quote and optional
// collateral. It checks the structure only, never the signatures.
func NewTDXEvidence(platform contracts.Platform, quote []byte, collateral *TDXCollateral) (*TDXEvidence, error) {
	e := &TDXEvidence{platform: platform, quote: bytes.Clone(quote)}
	if collateral != nil {
		c := *collateral
		e.collateral = &c
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

// Platform returns tdx or tdx-simulated.
func (e *TDXEvidence) Platform() contracts.Platform { return e.platform }

// Quote returns the raw quote.
func (e *TDXEvidence) Quote() []byte { return bytes.Clone(e.quote) }

// Collateral returns the collateral carried, or nil.
func (e *TDXEvidence) Collateral() *TDXCollateral {
	if e.collateral == nil {
		return nil
	}
	c := *e.collateral
	return &c
}

// WithCollateral returns the evidence with c as its collateral.
func (e *TDXEvidence) WithCollateral(c *TDXCollateral) (*TDXEvidence, error) {
	return NewTDXEvidence(e.platform, e.quote, c)
}

func (e *TDXEvidence) check() error {
	if e.platform != contracts.PlatformTDX && e.platform != contracts.PlatformTDXSimulated {
		return malformed("platform %q is not %q or %q", e.platform, contracts.PlatformTDX, contracts.PlatformTDXSimulated)
	}
	if len(e.quote) < tdxabi.QuoteMinSize {
		return malformed("TDX quote has %d bytes, fewer than the %d of the smallest quote", len(e.quote), tdxabi.QuoteMinSize)
	}
	if len(e.quote) > maxTDXQuoteSize {
		return malformed("TDX quote has %d bytes, more than %d", len(e.quote), maxTDXQuoteSize)
	}
	if c := e.collateral; c != nil {
		parts := []struct {
			name string
			b    []byte
		}{{"TCB info", c.TCBInfo}, {"TCB info issuer chain", c.TCBInfoIssuerChain}, {"QE identity", c.QEIdentity}, {"QE identity issuer chain", c.QEIdentityIssuerChain}}
		for _, p := range parts {
			if len(p.b) == 0 {
				return malformed("the TDX collateral has no %s: give all four parts or none", p.name)
			}
			if len(p.b) > maxTDXCollateralPart {
				return malformed("the TDX collateral's %s has %d bytes, more than %d", p.name, len(p.b), maxTDXCollateralPart)
			}
		}
	}
	return nil
}

// MarshalBinary returns the canonical evidence encoding.
func (e *TDXEvidence) MarshalBinary() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	w := evidenceWire{Platform: string(e.platform), F2: e.quote}
	if c := e.collateral; c != nil {
		w.F3, w.F4, w.F5, w.F6 = c.TCBInfo, c.TCBInfoIssuerChain, c.QEIdentity, c.QEIdentityIssuerChain
	}
	return canon.Marshal(w)
}

// quoteV4 parses the quote's structure.
func (e *TDXEvidence) quoteV4() (*tdxpb.QuoteV4, error) {
	if v := uint16(e.quote[0]) | uint16(e.quote[1])<<8; v != tdxabi.QuoteVersion {
		return nil, malformed("TDX quote version %d is not supported: Cleanroom verifies version %d quotes (go-tdx-guest v0.3.1, the verifier it uses, reads no other; configure the quote generation service for version 4)", v, tdxabi.QuoteVersion)
	}
	q, err := tdxabi.QuoteToProto(e.quote)
	if err != nil {
		return nil, malformed("the TDX quote does not parse: %v", err)
	}
	quote, ok := q.(*tdxpb.QuoteV4)
	if !ok {
		return nil, malformed("the TDX quote is of unsupported type %T", q)
	}
	if err := tdxabi.CheckQuoteV4(quote); err != nil {
		return nil, malformed("the TDX quote: %v", err)
	}
	return quote, nil
}

func (e *TDXEvidence) measurement() ([48]byte, error) {
	q, err := e.quoteV4()
	if err != nil {
		return [48]byte{}, err
	}
	return [48]byte(q.GetTdQuoteBody().GetMrTd()), nil
}

func (e *TDXEvidence) simulatedRoot() (*[32]byte, error) {
	if e.platform != contracts.PlatformTDXSimulated {
		return nil, nil
	}
	q, err := e.quoteV4()
	if err != nil {
		return nil, err
	}
	root, err := pckChainRoot(q)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(root.Raw)
	return &h, nil
}

// pckChainRoot returns the last certificate of the quote's PCK chain.
func pckChainRoot(q *tdxpb.QuoteV4) (*x509.Certificate, error) {
	rest := q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	var last *pem.Block
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		last = b
	}
	if last == nil {
		return nil, malformed("the TDX quote carries no PCK certificate chain")
	}
	c, err := x509.ParseCertificate(last.Bytes)
	if err != nil {
		return nil, malformed("the root certificate of the quote's PCK chain does not parse: %v", err)
	}
	return c, nil
}

//go:embed intel_sgx_root_ca.pem
var intelSGXRootCAPEM []byte

// intelSGXRootCA is Intel's SGX Root CA, the root of TDX quotes.
var intelSGXRootCA = sync.OnceValues(func() (*x509.Certificate, error) {
	b, _ := pem.Decode(intelSGXRootCAPEM)
	if b == nil {
		return nil, errors.New("the embedded Intel SGX Root CA is not PEM")
	}
	return x509.ParseCertificate(b.Bytes)
})

// TDXClaims are the TDX fields of a verified quote.
type TDXClaims struct {
	QuoteVersion  uint32
	TEETCBSVN     [16]byte
	MRSEAM        [48]byte
	TDAttributes  [8]byte
	XFAM          [8]byte
	MRTD          [48]byte
	MRConfigID    [48]byte
	MROwner       [48]byte
	MROwnerConfig [48]byte
	RTMR          [4][48]byte
	QESVN, PCESVN uint32
	FMSPC         string
	// TCBStatus is the status the collateral gives the platform's TCB
	// level (UpToDate, SWHardeningNeeded, OutOfDate, Revoked, …, or
	// TDXTCBNotSupported when no level matches); empty when the evidence
	// carried no collateral. TCBStatusDetail says why it is not UpToDate.
	TCBStatus       string
	TCBStatusDetail string
	// SimulatedRootSHA256 is set for simulated evidence: the pinned root
	// it chained to.
	SimulatedRootSHA256 *[32]byte

	quote *tdxpb.QuoteV4
}

// Debug reports whether TD_ATTRIBUTES has its DEBUG bit (bit 0) set.
func (t *TDXClaims) Debug() bool { return t.TDAttributes[0]&1 != 0 }

func (e *TDXEvidence) verify(v *Verifier) (*Claims, error) {
	quote, err := e.quoteV4()
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	rootDesc := "the Intel SGX Root CA"
	var simRoot *[32]byte
	if e.platform == contracts.PlatformTDX {
		intel, err := intelSGXRootCA()
		if err != nil {
			return nil, err
		}
		roots.AddCert(intel)
	} else {
		root, err := pckChainRoot(quote)
		if err != nil {
			return nil, err
		}
		got := sha256.Sum256(root.Raw)
		if got != v.simRoot {
			return nil, notGenuine(CheckSimulatedRoot, "the quote's simulated root has SHA-256 %s; the contract pins %s (is this another simulated coordinator?)",
				hex.EncodeToString(got[:]), hex.EncodeToString(v.simRoot[:]))
		}
		roots.AddCert(root)
		simRoot, rootDesc = &got, "the pinned simulated root "+hex.EncodeToString(got[:])
	}
	now := v.now()
	options := func(collateral bool) *tdxverify.Options {
		return &tdxverify.Options{GetCollateral: collateral, CheckRevocations: false, Getter: collateralGetter{e.collateral}, Now: now, TrustedRoots: roots}
	}
	// The quote: PCK chain to the root, QE report, attestation key, quote
	// signature.
	if err := tdxverify.TdxQuote(quote, options(false)); err != nil {
		return nil, classifyTDXError(err, rootDesc)
	}
	// The collateral: Intel's signatures and validity, the QE identity, and
	// the platform's TCB level. go-tdx-guest accepts only an UpToDate level;
	// another status is recorded (and judged by Policy), not a forgery.
	tcbStatus, tcbDetail := "", ""
	if e.collateral != nil {
		switch err := tdxverify.TdxQuote(quote, options(true)); {
		case err == nil:
			tcbStatus = "UpToDate"
		case isTDXTCBStatusError(err):
			tcbDetail = err.Error()
		default:
			return nil, classifyTDXError(err, rootDesc)
		}
	}
	exts, err := pcs.PckCertificateExtensions(mustPCKLeaf(quote))
	if err != nil {
		return nil, notGenuine(CheckChain, "the PCK certificate's SGX extensions: %v", err)
	}
	body := quote.GetTdQuoteBody()
	t := &TDXClaims{
		QuoteVersion:        quote.GetHeader().GetVersion(),
		TEETCBSVN:           [16]byte(body.GetTeeTcbSvn()),
		MRSEAM:              [48]byte(body.GetMrSeam()),
		TDAttributes:        [8]byte(body.GetTdAttributes()),
		XFAM:                [8]byte(body.GetXfam()),
		MRTD:                [48]byte(body.GetMrTd()),
		MRConfigID:          [48]byte(body.GetMrConfigId()),
		MROwner:             [48]byte(body.GetMrOwner()),
		MROwnerConfig:       [48]byte(body.GetMrOwnerConfig()),
		QESVN:               le16(quote.GetHeader().GetQeSvn()),
		PCESVN:              le16(quote.GetHeader().GetPceSvn()),
		FMSPC:               exts.FMSPC,
		SimulatedRootSHA256: simRoot,
		quote:               quote,
	}
	for i, r := range body.GetRtmrs() {
		t.RTMR[i] = [48]byte(r)
	}
	if e.collateral != nil {
		t.TCBStatus, t.TCBStatusDetail = tcbStatus, tcbDetail
		if tcbStatus == "" {
			if t.TCBStatus = tdxTCBStatus(e.collateral, t, exts); t.TCBStatus == "" {
				t.TCBStatus = TDXTCBNotSupported
			}
		}
	}
	c := &Claims{Platform: e.platform, Measurement: t.MRTD, ReportData: [64]byte(body.GetReportData()), Debug: t.Debug(), TDX: t}
	return c, nil
}

// mustPCKLeaf returns the PCK leaf certificate of a quote that verified.
func mustPCKLeaf(q *tdxpb.QuoteV4) *x509.Certificate {
	b, _ := pem.Decode(q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain())
	if b == nil {
		return nil
	}
	c, _ := x509.ParseCertificate(b.Bytes)
	return c
}

// TDXTCBNotSupported is the TCB status of a platform that no TCB level of
// the collateral matches: older than every level Intel lists.
const TDXTCBNotSupported = "NotSupported"

// isTDXTCBStatusError reports whether go-tdx-guest refused a verified
// quote only for its TCB status.
func isTDXTCBStatusError(err error) bool {
	msg := err.Error()
	return errors.Is(err, tdxverify.ErrTcbStatus) || strings.Contains(msg, "TCB status check") || strings.Contains(msg, "TCB Status is not")
}

// classifyTDXError names the check a go-tdx-guest error failed.
func classifyTDXError(err error, rootDesc string) error {
	msg := err.Error()
	switch {
	case errors.Is(err, tdxverify.ErrHashVerificationFail):
		return notGenuine(CheckSignature, "the quote's signature does not verify with its attestation key: the quote was altered after it was signed (%v)", err)
	case strings.Contains(msg, "QE report") || strings.Contains(msg, "QE Report"):
		return notGenuine(CheckSignature, "the quoting enclave's report does not verify with the PCK certificate: the quote's signed data was altered (%v)", err)
	case strings.Contains(msg, "tcbInfo") || strings.Contains(msg, "QeIdentity") || strings.Contains(msg, "collateral") || strings.Contains(msg, "TCB"):
		return notGenuine(CheckCollateral, "the TDX collateral does not verify or does not rate this platform: %v", err)
	default:
		return notGenuine(CheckChain, "the PCK certificate chain does not verify up to %s: %v", rootDesc, err)
	}
}

// tdxTCBStatus reads the status of the TCB level that go-tdx-guest matched
// (the collateral verified and a level exists, or it would have refused).
func tdxTCBStatus(c *TDXCollateral, t *TDXClaims, exts *pcs.PckExtensions) string {
	var info pcs.TdxTcbInfo
	if json.Unmarshal(c.TCBInfo, &info) != nil {
		return ""
	}
	for _, level := range info.TcbInfo.TcbLevels {
		ok := exts.TCB.PCESvn >= level.Tcb.Pcesvn
		for i, comp := range level.Tcb.SgxTcbcomponents {
			if i < len(exts.TCB.CPUSvnComponents) && exts.TCB.CPUSvnComponents[i] < comp.Svn {
				ok = false
			}
		}
		for i, comp := range level.Tcb.TdxTcbcomponents {
			if i < len(t.TEETCBSVN) && t.TEETCBSVN[i] < comp.Svn {
				ok = false
			}
		}
		if ok {
			return fmt.Sprint(level.TcbStatus)
		}
	}
	return ""
}

// collateralGetter serves a quote's collateral to go-tdx-guest from the
// evidence, as Intel's PCS would, and refuses every other URL:
// verification never touches the network.
type collateralGetter struct{ c *TDXCollateral }

func (g collateralGetter) Get(u string) (map[string][]string, []byte, error) {
	if g.c == nil {
		return nil, nil, fmt.Errorf("refusing to fetch %s: Cleanroom verifies attestation offline", u)
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case u == pcs.QeIdentityURL():
		return map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": {url.QueryEscape(string(g.c.QEIdentityIssuerChain))}}, g.c.QEIdentity, nil
	case strings.HasPrefix(u, pcs.TcbInfoURL("")):
		want := parsed.Query().Get("fmspc")
		var info pcs.TdxTcbInfo
		if err := json.Unmarshal(g.c.TCBInfo, &info); err != nil {
			return nil, nil, fmt.Errorf("the collateral's TCB info is not JSON: %v", err)
		}
		if !strings.EqualFold(info.TcbInfo.Fmspc, want) {
			return nil, nil, fmt.Errorf("the collateral's TCB info is for FMSPC %q, but the quote's PCK certificate names %q", info.TcbInfo.Fmspc, want)
		}
		return map[string][]string{"Tcb-Info-Issuer-Chain": {url.QueryEscape(string(g.c.TCBInfoIssuerChain))}}, g.c.TCBInfo, nil
	}
	return nil, nil, fmt.Errorf("refusing to fetch %s: Cleanroom verifies attestation offline", u)
}

// validateTDX checks a quote's claims against a contract's reference
// values: MRTD listed, the four RTMRs equal to one listed set (when any is
// listed), then go-tdx-guest's validation of the quote: TEE_TCB_SVN at
// least the minimum, component by component, and the XFAM and TD_ATTRIBUTES
// bits Intel fixes.
func validateTDX(t *TDXClaims, refs *contracts.TDXRefs, origin string) error {
	if !containsMeasurement(refs.MRTD, t.MRTD) {
		return refused(CheckMRTD, "MRTD %x is not in %s list [%s]", t.MRTD, origin, formatMeasurements(refs.MRTD))
	}
	if len(refs.RTMR) > 0 {
		found := false
		for _, set := range refs.RTMR {
			found = found || set == t.RTMR
		}
		if !found {
			return refused(CheckRTMR, "RTMR0..3 [%x %x %x %x] are not one of the %d sets in %s list", t.RTMR[0], t.RTMR[1], t.RTMR[2], t.RTMR[3], len(refs.RTMR), origin)
		}
	}
	if t.TCBStatus == "Revoked" {
		return refused(CheckTCB, "the collateral rates the platform's TCB Revoked: %s", t.TCBStatusDetail)
	}
	if t.quote == nil {
		return refused(CheckTEETCBSVN, "the claims carry no quote to validate")
	}
	opts := &tdxvalidate.Options{TdQuoteBodyOptions: tdxvalidate.TdQuoteBodyOptions{MinimumTeeTcbSvn: refs.MinTEETCBSVN[:]}}
	if err := tdxvalidate.TdxQuote(t.quote, opts); err != nil {
		if strings.Contains(err.Error(), "TEE TCB security-version number") {
			return refused(CheckTEETCBSVN, "TEE_TCB_SVN %x is below %s min_tee_tcb_svn %x: %v", t.TEETCBSVN, origin, refs.MinTEETCBSVN, err)
		}
		return refused(CheckTDAttributes, "the quote fails go-tdx-guest's validation: %v", err)
	}
	return nil
}

func le16(b []byte) uint32 {
	if len(b) < 2 {
		return 0
	}
	return uint32(b[0]) | uint32(b[1])<<8
}

// LoadTDXCollateral reads the four collateral files from dir (TDXTCBInfoFile
// and the others). A file that is missing, empty or larger than 16 KiB is
// an error naming it.
func LoadTDXCollateral(dir string) (*TDXCollateral, error) {
	c := &TDXCollateral{}
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{
		{TDXTCBInfoFile, &c.TCBInfo},
		{TDXTCBInfoIssuerChainFile, &c.TCBInfoIssuerChain},
		{TDXQEIdentityFile, &c.QEIdentity},
		{TDXQEIdentityIssuerChainFile, &c.QEIdentityIssuerChain},
	} {
		path := filepath.Join(dir, f.name)
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("TDX collateral: %w (a collateral directory holds %s, %s, %s and %s, as Intel's PCS serves them)",
				err, TDXTCBInfoFile, TDXTCBInfoIssuerChainFile, TDXQEIdentityFile, TDXQEIdentityIssuerChainFile)
		}
		if st.Size() == 0 || st.Size() > maxTDXCollateralPart {
			return nil, fmt.Errorf("TDX collateral %s has %d bytes (want 1 to %d)", path, st.Size(), maxTDXCollateralPart)
		}
		if *f.dst, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	return c, nil
}
