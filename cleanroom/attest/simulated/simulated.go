// Package simulated is a fake AMD SEV-SNP platform for development, tests
// and demos. It PROTECTS NOTHING: whoever runs it holds every key.
//
// New makes a throw-away AMD-like chain with fresh keys: an ARK and an ASK
// (RSA-3072, RSASSA-PSS with SHA-384, as AMD's RSA-4096 ones) and a VCEK
// (ECDSA P-384) carrying AMD's KDS extensions (product name, TCB, HWID).
// Attest signs real SEV-SNP ATTESTATION_REPORTs (go-sev-guest's abi layout)
// with the VCEK, so the real verification code (go-sev-guest's verify, and
// package attest) runs unchanged against the fake root. A verifier trusts
// that root only when it is pinned by the SHA-256 of the ARK certificate
// (RootSHA256), which is what a contract's simulated_root_sha256 holds.
//
// The platform poses as an AMD Milan (family 19h, model 01h, stepping B0).
// The certificate names are AMD's where go-sev-guest checks them (the ASK's
// and VCEK's); the ARK's subject says it is simulated.
package simulated

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// The TCB the simulated VCEK is issued for (Milan layout), and the firmware
// version the reports show.
const (
	tcbBootloader = 4
	tcbTEE        = 0
	tcbSNP        = 22
	tcbMicrocode  = 213
	fwMajor       = 1
	fwMinor       = 55
	fwBuild       = 21
)

const (
	rootKeyBits = 3072
	productName = "Milan-B0"
	milanFamily = 0x19
	milanModel  = 0x01
)

// Platform is a fake SEV-SNP machine: its fake AMD chain and the VCEK's
// private key.
type Platform struct {
	ark, ask, vcek []byte // DER
	vcekKey        *ecdsa.PrivateKey
	chipID         [64]byte
	tcb            uint64
}

// amdName is the subject AMD's certificates carry; go-sev-guest requires it
// on the ASK and VCEK.
func amdName(cn string) pkix.Name {
	return pkix.Name{
		Country:            []string{"US"},
		Locality:           []string{"Santa Clara"},
		Province:           []string{"CA"},
		Organization:       []string{"Advanced Micro Devices"},
		OrganizationalUnit: []string{"Engineering"},
		CommonName:         cn,
	}
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// Options shape a new simulated platform. The zero value is the default
// platform that New makes.
type Options struct {
	// TCB is the TCB_VERSION (Milan layout, byte 0 the least significant:
	// bootloader, TEE, reserved 2–5, SNP, microcode) that the VCEK is
	// issued for and that every report shows as its REPORTED, CURRENT,
	// COMMITTED and LAUNCH TCB. Zero means bootloader 4, TEE 0, SNP 22,
	// microcode 213. Every byte but the microcode's must be at most 127
	// (AMD's KDS rule).
	TCB uint64
}

// New makes a fresh simulated platform: new ARK, ASK and VCEK keys and a
// random chip id. The ARK and ASK private keys are discarded once the VCEK
// is issued.
func New() (*Platform, error) { return NewWithOptions(Options{}) }

// NewWithOptions makes a fresh simulated platform shaped by o (see New).
func NewWithOptions(o Options) (*Platform, error) {
	now := time.Now().UTC().Truncate(time.Second)
	arkKey, err := rsa.GenerateKey(rand.Reader, rootKeyBits)
	if err != nil {
		return nil, err
	}
	askKey, err := rsa.GenerateKey(rand.Reader, rootKeyBits)
	if err != nil {
		return nil, err
	}
	vcekKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	p := &Platform{vcekKey: vcekKey}
	if _, err := rand.Read(p.chipID[:]); err != nil {
		return nil, err
	}
	parts := kds.TCBParts{BlSpl: tcbBootloader, TeeSpl: tcbTEE, SnpSpl: tcbSNP, UcodeSpl: tcbMicrocode}
	if o.TCB != 0 {
		parts = kds.DecomposeTCBVersion(kds.TCBVersion(o.TCB))
	}
	tcb, err := kds.ComposeTCBParts(parts)
	if err != nil {
		return nil, fmt.Errorf("the simulated TCB: %w", err)
	}
	p.tcb = uint64(tcb)

	arkName := pkix.Name{
		Organization: []string{"Cleanroom simulated SEV-SNP platform (protects nothing)"},
		CommonName:   "SIMULATED ARK-Milan",
	}
	s1, err := serial()
	if err != nil {
		return nil, err
	}
	arkTmpl := &x509.Certificate{
		SerialNumber:          s1,
		Subject:               arkName,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(25, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SignatureAlgorithm:    x509.SHA384WithRSAPSS,
	}
	if p.ark, err = x509.CreateCertificate(rand.Reader, arkTmpl, arkTmpl, &arkKey.PublicKey, arkKey); err != nil {
		return nil, fmt.Errorf("making the simulated ARK: %w", err)
	}
	arkCert, err := x509.ParseCertificate(p.ark)
	if err != nil {
		return nil, err
	}
	s2, err := serial()
	if err != nil {
		return nil, err
	}
	askTmpl := &x509.Certificate{
		SerialNumber:          s2,
		Subject:               amdName("SEV-Milan"),
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(25, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SignatureAlgorithm:    x509.SHA384WithRSAPSS,
	}
	if p.ask, err = x509.CreateCertificate(rand.Reader, askTmpl, arkCert, &askKey.PublicKey, arkKey); err != nil {
		return nil, fmt.Errorf("making the simulated ASK: %w", err)
	}
	askCert, err := x509.ParseCertificate(p.ask)
	if err != nil {
		return nil, err
	}
	exts, err := vcekExtensions(p.chipID[:], parts)
	if err != nil {
		return nil, err
	}
	vcekTmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(0),
		Subject:            amdName("SEV-VCEK"),
		NotBefore:          now.Add(-time.Hour),
		NotAfter:           now.AddDate(25, 0, 0),
		SignatureAlgorithm: x509.SHA384WithRSAPSS,
		ExtraExtensions:    exts,
	}
	if p.vcek, err = x509.CreateCertificate(rand.Reader, vcekTmpl, askCert, &vcekKey.PublicKey, askKey); err != nil {
		return nil, fmt.Errorf("making the simulated VCEK: %w", err)
	}
	return p, nil
}

// vcekExtensions returns AMD's KDS extensions for the simulated VCEK.
func vcekExtensions(hwid []byte, tcb kds.TCBParts) ([]pkix.Extension, error) {
	var exts []pkix.Extension
	add := func(oid asn1.ObjectIdentifier, v []byte, err error) error {
		if err != nil {
			return err
		}
		exts = append(exts, pkix.Extension{Id: oid, Value: v})
		return nil
	}
	ints := []struct {
		oid asn1.ObjectIdentifier
		v   int
	}{
		{kds.OidStructVersion, 1},
		{kds.OidBlSpl, int(tcb.BlSpl)},
		{kds.OidTeeSpl, int(tcb.TeeSpl)},
		{kds.OidSnpSpl, int(tcb.SnpSpl)},
		{kds.OidSpl4, int(tcb.Spl4)},
		{kds.OidSpl5, int(tcb.Spl5)},
		{kds.OidSpl6, int(tcb.Spl6)},
		{kds.OidSpl7, int(tcb.Spl7)},
		{kds.OidUcodeSpl, int(tcb.UcodeSpl)},
	}
	for _, x := range ints {
		v, err := asn1.Marshal(x.v)
		if err := add(x.oid, v, err); err != nil {
			return nil, err
		}
	}
	name, err := asn1.MarshalWithParams(productName, "ia5")
	if err := add(kds.OidProductName1, name, err); err != nil {
		return nil, err
	}
	id, err := asn1.Marshal(hwid)
	if err := add(kds.OidHwid, id, err); err != nil {
		return nil, err
	}
	return exts, nil
}

// RootSHA256 returns the SHA-256 of the fake ARK certificate (DER): the
// value a contract pins as simulated_root_sha256.
func (p *Platform) RootSHA256() [32]byte { return sha256.Sum256(p.ark) }

// ChipID returns the fake chip id (the VCEK's HWID).
func (p *Platform) ChipID() [64]byte { return p.chipID }

// Request is what the simulated guest asks the simulated firmware to attest.
type Request struct {
	// Measurement is the launch measurement to report.
	Measurement [48]byte
	// ReportData is the guest's 64 bytes.
	ReportData [64]byte
	// Debug sets the guest policy's DEBUG bit, as a debuggable VM would.
	Debug bool
	// VMPL is the privilege level the report is made at (0 to 3).
	VMPL uint32
}

// Attest returns evidence for req: a version 3 ATTESTATION_REPORT signed by
// the simulated VCEK, with the VCEK, ASK and ARK certificates.
func (p *Platform) Attest(req Request) (*attest.SNPEvidence, error) {
	if req.VMPL > 3 {
		return nil, fmt.Errorf("VMPL %d is out of range 0..3", req.VMPL)
	}
	reportID := make([]byte, abi.ReportIDSize)
	if _, err := rand.Read(reportID); err != nil {
		return nil, err
	}
	r := &spb.Report{
		Version:          abi.ReportVersion3,
		Policy:           abi.SnpPolicyToBytes(abi.SnpPolicy{SMT: true, Debug: req.Debug}),
		FamilyId:         make([]byte, abi.FamilyIDSize),
		ImageId:          make([]byte, abi.ImageIDSize),
		Vmpl:             req.VMPL,
		SignatureAlgo:    abi.SignEcdsaP384Sha384,
		CurrentTcb:       p.tcb,
		PlatformInfo:     1, // SMT enabled
		SignerInfo:       abi.ComposeSignerInfo(abi.SignerInfo{SigningKey: abi.VcekReportSigner}),
		ReportData:       req.ReportData[:],
		Measurement:      req.Measurement[:],
		HostData:         make([]byte, abi.HostDataSize),
		IdKeyDigest:      make([]byte, abi.IDKeyDigestSize),
		AuthorKeyDigest:  make([]byte, abi.AuthorKeyDigestSize),
		ReportId:         reportID,
		ReportIdMa:       bytes.Repeat([]byte{0xff}, abi.ReportIDMASize),
		ReportedTcb:      p.tcb,
		Cpuid1EaxFms:     abi.FmsToCpuid1Eax(milanFamily, milanModel, 0),
		ChipId:           p.chipID[:],
		CommittedTcb:     p.tcb,
		CurrentBuild:     fwBuild,
		CurrentMinor:     fwMinor,
		CurrentMajor:     fwMajor,
		CommittedBuild:   fwBuild,
		CommittedMinor:   fwMinor,
		CommittedMajor:   fwMajor,
		LaunchTcb:        p.tcb,
		Signature:        make([]byte, abi.SignatureSize),
		CurrentMitVector: 0,
	}
	raw, err := abi.ReportToAbiBytes(r)
	if err != nil {
		return nil, fmt.Errorf("laying out the simulated report: %w", err)
	}
	return p.SignReport(raw)
}

// SignReport signs the 1184-byte ATTESTATION_REPORT report (its bytes
// 0x000–0x29F; the signature goes at 0x2A0) with the simulated VCEK and
// returns it as evidence, whatever the report says. The simulated firmware
// vouches for anything its holder asks, which is why it protects nothing;
// tests use this to make the reports real firmware makes only for VMs a
// contract must refuse (a migration agent, uncommitted firmware, a TCB the
// VCEK was not issued for). report is not modified.
func (p *Platform) SignReport(report []byte) (*attest.SNPEvidence, error) {
	if len(report) != abi.ReportSize {
		return nil, fmt.Errorf("a report has %d bytes, not %d", abi.ReportSize, len(report))
	}
	raw := bytes.Clone(report)
	digest := sha512.Sum384(abi.SignedComponent(raw))
	rr, ss, err := ecdsa.Sign(rand.Reader, p.vcekKey, digest[:])
	if err != nil {
		return nil, err
	}
	if err := abi.SetSignature(rr, ss, raw); err != nil {
		return nil, err
	}
	return attest.NewSNPEvidence(contracts.PlatformSEVSNPSimulated, raw, p.vcek, p.ask, p.ark)
}

// PEM block types of the marshalled platform.
const (
	pemCert = "CERTIFICATE"
	pemKey  = "PRIVATE KEY"
)

// MarshalPEM returns the platform as PEM: the ARK, ASK and VCEK
// certificates, then the VCEK's PKCS #8 private key. It holds the fake
// hardware's secret: store it with mode 0600.
func (p *Platform) MarshalPEM() ([]byte, error) {
	key, err := x509.MarshalPKCS8PrivateKey(p.vcekKey)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, der := range [][]byte{p.ark, p.ask, p.vcek} {
		if err := pem.Encode(&b, &pem.Block{Type: pemCert, Bytes: der}); err != nil {
			return nil, err
		}
	}
	if err := pem.Encode(&b, &pem.Block{Type: pemKey, Bytes: key}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ErrBadPlatform reports a marshalled platform that cannot be loaded.
var ErrBadPlatform = errors.New("bad simulated platform")

// ParsePEM loads a platform written by MarshalPEM. It checks the shape (three
// certificates and a key, nothing else), that the key is the VCEK's, and that
// the VCEK carries a TCB and HWID; the chain itself is checked by every
// verifier.
func ParsePEM(data []byte) (*Platform, error) {
	var blocks []*pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the last PEM block", ErrBadPlatform)
	}
	if len(blocks) != 4 || blocks[0].Type != pemCert || blocks[1].Type != pemCert || blocks[2].Type != pemCert || blocks[3].Type != pemKey {
		return nil, fmt.Errorf("%w: want the ARK, ASK and VCEK certificates and the VCEK key, in that order", ErrBadPlatform)
	}
	p := &Platform{ark: blocks[0].Bytes, ask: blocks[1].Bytes, vcek: blocks[2].Bytes}
	vcek, err := x509.ParseCertificate(p.vcek)
	if err != nil {
		return nil, fmt.Errorf("%w: VCEK certificate: %v", ErrBadPlatform, err)
	}
	for i, der := range [][]byte{p.ark, p.ask} {
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("%w: %s certificate: %v", ErrBadPlatform, []string{"ARK", "ASK"}[i], err)
		}
	}
	k, err := x509.ParsePKCS8PrivateKey(blocks[3].Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: VCEK key: %v", ErrBadPlatform, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P384() {
		return nil, fmt.Errorf("%w: the VCEK key is not ECDSA P-384", ErrBadPlatform)
	}
	if !key.Public().(crypto.PublicKey).(*ecdsa.PublicKey).Equal(vcek.PublicKey) {
		return nil, fmt.Errorf("%w: the VCEK key does not match the VCEK certificate", ErrBadPlatform)
	}
	exts, err := kds.VcekCertificateExtensions(vcek)
	if err != nil {
		return nil, fmt.Errorf("%w: VCEK extensions: %v", ErrBadPlatform, err)
	}
	p.vcekKey = key
	copy(p.chipID[:], exts.HWID)
	p.tcb = uint64(exts.TCBVersion)
	return p, nil
}
