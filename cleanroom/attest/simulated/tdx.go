package simulated

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// TDXPlatform is a fake Intel TDX machine: a throw-away root named as
// Intel's SGX Root CA, a PCK platform CA and a PCK certificate with the SGX
// extensions Intel puts in it, the PCK key, and the quoting enclave's
// attestation key. Attest makes version 4 quotes in Intel's layout, so
// go-tdx-guest's verifier runs unchanged against the fake root. It PROTECTS
// NOTHING. A verifier trusts the root only when pinned by RootSHA256.
type TDXPlatform struct {
	root, inter, pck []byte // DER
	pckKey, akKey    *ecdsa.PrivateKey
}

// The simulated platform's values, Intel's where verifiers check them.
var (
	tdxQEVendorID = []byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}
	tdxFMSPC      = []byte{0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00} // fits no real platform
	tdxTEETCBSVN  = [16]byte{0x03, 0x00, 0x05}
	tdxXFAM       = []byte{0xe7, 0x1a, 0x06, 0, 0, 0, 0, 0}
)

// TDXTEETCBSVN is the TEE_TCB_SVN simulated quotes report.
func TDXTEETCBSVN() [16]byte { return tdxTEETCBSVN }

func intelName(cn string) pkix.Name {
	return pkix.Name{
		Country:      []string{"US"},
		Province:     []string{"CA"},
		Locality:     []string{"Santa Clara"},
		Organization: []string{"Intel Corporation (SIMULATED by Cleanroom: protects nothing)"},
		CommonName:   cn,
	}
}

// NewTDX makes a fresh simulated TDX platform. The root and PCK platform CA
// keys are discarded once the PCK certificate is issued.
func NewTDX() (*TDXPlatform, error) {
	now := time.Now().UTC().Truncate(time.Second)
	keys := make([]*ecdsa.PrivateKey, 4)
	for i := range keys {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	rootKey, interKey := keys[0], keys[1]
	p := &TDXPlatform{pckKey: keys[2], akKey: keys[3]}
	ca := func(cn string, pathLen int) (*x509.Certificate, error) {
		s, err := serial()
		if err != nil {
			return nil, err
		}
		return &x509.Certificate{
			SerialNumber: s, Subject: intelName(cn),
			NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(25, 0, 0),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true, IsCA: true, MaxPathLen: pathLen, MaxPathLenZero: pathLen == 0,
			SignatureAlgorithm: x509.ECDSAWithSHA256,
		}, nil
	}
	rootTmpl, err := ca("Intel SGX Root CA", 1)
	if err != nil {
		return nil, err
	}
	if p.root, err = x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey); err != nil {
		return nil, fmt.Errorf("making the simulated Intel root: %w", err)
	}
	rootCert, _ := x509.ParseCertificate(p.root)
	interTmpl, err := ca("Intel SGX PCK Platform CA", 0)
	if err != nil {
		return nil, err
	}
	if p.inter, err = x509.CreateCertificate(rand.Reader, interTmpl, rootCert, &interKey.PublicKey, rootKey); err != nil {
		return nil, fmt.Errorf("making the simulated PCK platform CA: %w", err)
	}
	interCert, _ := x509.ParseCertificate(p.inter)
	sgx, err := sgxExtension()
	if err != nil {
		return nil, err
	}
	s, err := serial()
	if err != nil {
		return nil, err
	}
	ski := sha256.Sum256(elliptic.MarshalCompressed(elliptic.P256(), p.pckKey.X, p.pckKey.Y))
	pckTmpl := &x509.Certificate{
		SerialNumber: s, Subject: intelName("Intel SGX PCK Certificate"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(25, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
		SubjectKeyId:          ski[:20],
		CRLDistributionPoints: []string{"https://simulated.invalid/pckcrl"},
		ExtraExtensions:       []pkix.Extension{sgx},
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	if p.pck, err = x509.CreateCertificate(rand.Reader, pckTmpl, interCert, &p.pckKey.PublicKey, interKey); err != nil {
		return nil, fmt.Errorf("making the simulated PCK certificate: %w", err)
	}
	return p, nil
}

// sgxExtension is the SGX extension of a PCK certificate (Intel's "SGX PCK
// Certificate and CRL Profile"): PPID, TCB (16 components, PCESVN, CPUSVN),
// PCE-ID and FMSPC.
func sgxExtension() (pkix.Extension, error) {
	oid := func(arc ...int) asn1.ObjectIdentifier {
		return append(asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}, arc...)
	}
	pair := func(id asn1.ObjectIdentifier, v any) (asn1.RawValue, error) {
		der, err := asn1.Marshal(struct {
			ID    asn1.ObjectIdentifier
			Value any
		}{id, v})
		return asn1.RawValue{FullBytes: der}, err
	}
	var tcb []asn1.RawValue
	cpusvn := make([]byte, 16)
	for i := 1; i <= 16; i++ {
		cpusvn[i-1] = 5
		r, err := pair(oid(2, i), 5)
		if err != nil {
			return pkix.Extension{}, err
		}
		tcb = append(tcb, r)
	}
	for _, kv := range []struct {
		arc int
		v   any
	}{{17, 13}, {18, cpusvn}} {
		r, err := pair(oid(2, kv.arc), kv.v)
		if err != nil {
			return pkix.Extension{}, err
		}
		tcb = append(tcb, r)
	}
	var items []asn1.RawValue
	for _, kv := range []struct {
		id asn1.ObjectIdentifier
		v  any
	}{{oid(1), make([]byte, 16)}, {oid(2), tcb}, {oid(3), []byte{0, 0}}, {oid(4), tdxFMSPC}} {
		r, err := pair(kv.id, kv.v)
		if err != nil {
			return pkix.Extension{}, err
		}
		items = append(items, r)
	}
	der, err := asn1.Marshal(items)
	return pkix.Extension{Id: oid(), Value: der}, err
}

// RootSHA256 returns the SHA-256 of the fake root certificate (DER): the
// value a contract pins as simulated_root_sha256.
func (p *TDXPlatform) RootSHA256() [32]byte { return sha256.Sum256(p.root) }

// rawSignature returns an ECDSA P-256 signature of SHA-256(msg) as Intel
// lays it out: r and s, 32 bytes each.
func rawSignature(k *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

func rawPublic(k *ecdsa.PrivateKey) []byte {
	out := make([]byte, 64)
	k.X.FillBytes(out[:32])
	k.Y.FillBytes(out[32:])
	return out
}

// Attest returns a version 4 quote whose MRTD is req.Measurement and whose
// REPORTDATA is req.ReportData, signed by the simulated quoting enclave;
// TD_ATTRIBUTES has DEBUG set when req.Debug.
func (p *TDXPlatform) Attest(req Request) (*attest.TDXEvidence, error) {
	le16 := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	var q bytes.Buffer
	// Header (48 bytes).
	q.Write(le16(4))          // version
	q.Write(le16(2))          // attestation key type: ECDSA P-256
	q.Write(le32(0x81))       // TEE type: TDX
	q.Write(le16(0))          // QE SVN
	q.Write(le16(13))         // PCE SVN
	q.Write(tdxQEVendorID)    // QE vendor id
	q.Write(make([]byte, 20)) // user data
	// TD quote body (584 bytes).
	tdAttributes := make([]byte, 8)
	if req.Debug {
		tdAttributes[0] = 1
	}
	q.Write(tdxTEETCBSVN[:])
	q.Write(make([]byte, 48)) // MRSEAM
	q.Write(make([]byte, 48)) // MRSIGNERSEAM
	q.Write(make([]byte, 8))  // SEAMATTRIBUTES
	q.Write(tdAttributes)
	q.Write(tdxXFAM)
	q.Write(req.Measurement[:]) // MRTD
	q.Write(make([]byte, 48*3)) // MRCONFIGID, MROWNER, MROWNERCONFIG
	q.Write(make([]byte, 48*4)) // RTMR0..3
	q.Write(req.ReportData[:])
	signed := q.Bytes()

	// The quoting enclave's report, signed by the PCK key, binds the
	// attestation key: REPORTDATA = SHA-256(key ‖ auth data) ‖ zeros.
	ak := rawPublic(p.akKey)
	authData := make([]byte, 32)
	binding := sha256.Sum256(append(append([]byte(nil), ak...), authData...))
	var qe bytes.Buffer
	qe.Write(make([]byte, 16)) // CPUSVN
	qe.Write(le32(0))          // MISCSELECT
	qe.Write(make([]byte, 28)) // reserved
	qe.Write(make([]byte, 16)) // ATTRIBUTES
	qe.Write(make([]byte, 32)) // MRENCLAVE
	qe.Write(make([]byte, 32)) // reserved
	qe.Write(make([]byte, 32)) // MRSIGNER
	qe.Write(make([]byte, 96)) // reserved
	qe.Write(le16(2))          // ISVPRODID
	qe.Write(le16(0))          // ISVSVN
	qe.Write(make([]byte, 60)) // reserved
	qe.Write(binding[:])       // REPORTDATA
	qe.Write(make([]byte, 32))
	qeSig, err := rawSignature(p.pckKey, qe.Bytes())
	if err != nil {
		return nil, err
	}
	chain, err := writePEM(&pem.Block{Type: pemCert, Bytes: p.pck}, &pem.Block{Type: pemCert, Bytes: p.inter}, &pem.Block{Type: pemCert, Bytes: p.root})
	if err != nil {
		return nil, err
	}
	var cert bytes.Buffer // QE report certification data
	cert.Write(qe.Bytes())
	cert.Write(qeSig)
	cert.Write(le16(uint16(len(authData))))
	cert.Write(authData)
	cert.Write(le16(5)) // PCK certificate chain
	cert.Write(le32(uint32(len(chain))))
	cert.Write(chain)

	sig, err := rawSignature(p.akKey, signed)
	if err != nil {
		return nil, err
	}
	var sd bytes.Buffer
	sd.Write(sig)
	sd.Write(ak)
	sd.Write(le16(6)) // QE report certification data
	sd.Write(le32(uint32(cert.Len())))
	sd.Write(cert.Bytes())

	quote := append(append(append([]byte(nil), signed...), le32(uint32(sd.Len()))...), sd.Bytes()...)
	return attest.NewTDXEvidence(contracts.PlatformTDXSimulated, quote, nil)
}

// MarshalPEM returns the platform as PEM: the root, PCK platform CA and
// PCK certificates, then the PCK and attestation keys. Store it with mode
// 0600.
func (p *TDXPlatform) MarshalPEM() ([]byte, error) {
	pk, err := keyBlock(p.pckKey)
	if err != nil {
		return nil, err
	}
	ak, err := keyBlock(p.akKey)
	if err != nil {
		return nil, err
	}
	return writePEM(&pem.Block{Type: pemCert, Bytes: p.root}, &pem.Block{Type: pemCert, Bytes: p.inter}, &pem.Block{Type: pemCert, Bytes: p.pck}, pk, ak)
}

// ParseTDXPEM loads a platform written by MarshalPEM.
func ParseTDXPEM(data []byte) (*TDXPlatform, error) {
	blocks, err := readPEM(data, pemCert, pemCert, pemCert, pemKey, pemKey)
	if err != nil {
		return nil, err
	}
	p := &TDXPlatform{root: blocks[0].Bytes, inter: blocks[1].Bytes, pck: blocks[2].Bytes}
	var pck *x509.Certificate
	for i, der := range [][]byte{p.root, p.inter, p.pck} {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrBadPlatform, i, err)
		}
		pck = c
	}
	if p.pckKey, err = ecKey(blocks[3].Bytes, elliptic.P256(), "PCK"); err != nil {
		return nil, err
	}
	if p.akKey, err = ecKey(blocks[4].Bytes, elliptic.P256(), "attestation"); err != nil {
		return nil, err
	}
	if !p.pckKey.PublicKey.Equal(pck.PublicKey) {
		return nil, fmt.Errorf("%w: the PCK key does not match the PCK certificate", ErrBadPlatform)
	}
	return p, nil
}
