package simulated

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// NitroPlatform is a fake AWS Nitro Secure Module: a throw-away root
// (standing in for the AWS Nitro Enclaves root G1) and the ECDSA P-384 key
// of the certificate it issued, which signs attestation documents in AWS's
// format (COSE_Sign1, ES384). It PROTECTS NOTHING. A verifier trusts the
// root only when pinned by RootSHA256.
type NitroPlatform struct {
	root, leaf []byte // DER
	key        *ecdsa.PrivateKey
}

// NewNitro makes a fresh simulated Nitro platform.
func NewNitro() (*NitroPlatform, error) {
	now := time.Now().UTC().Truncate(time.Second)
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s1, err := serial()
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          s1,
		Subject:               pkix.Name{Organization: []string{"Cleanroom simulated Nitro platform (protects nothing)"}, CommonName: "SIMULATED aws.nitro-enclaves"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(25, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	p := &NitroPlatform{key: key}
	if p.root, err = x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey); err != nil {
		return nil, fmt.Errorf("making the simulated Nitro root: %w", err)
	}
	rootCert, err := x509.ParseCertificate(p.root)
	if err != nil {
		return nil, err
	}
	s2, err := serial()
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:          s2,
		Subject:               pkix.Name{CommonName: "SIMULATED i-00000000000000000-enc0000000000000000"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(25, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	if p.leaf, err = x509.CreateCertificate(rand.Reader, leafTmpl, rootCert, &key.PublicKey, rootKey); err != nil {
		return nil, fmt.Errorf("making the simulated Nitro signing certificate: %w", err)
	}
	return p, nil
}

// RootSHA256 returns the SHA-256 of the fake root certificate (DER): the
// value a contract pins as simulated_root_sha256.
func (p *NitroPlatform) RootSHA256() [32]byte { return sha256.Sum256(p.root) }

// nitroDocument is the payload AWS's Nitro Secure Module signs.
type nitroDocument struct {
	ModuleID    string          `cbor:"module_id"`
	Digest      string          `cbor:"digest"`
	Timestamp   uint64          `cbor:"timestamp"`
	PCRs        map[uint][]byte `cbor:"pcrs"`
	Certificate []byte          `cbor:"certificate"`
	CABundle    [][]byte        `cbor:"cabundle"`
	PublicKey   []byte          `cbor:"public_key"`
	UserData    []byte          `cbor:"user_data"`
	Nonce       []byte          `cbor:"nonce"`
}

// NitroPCR returns the value the simulated platform reports in PCR i
// (1 or 2) for a measurement: SHA-384 over a label, the index and the
// measurement.
func NitroPCR(i int, measurement [48]byte) [48]byte {
	return sha512.Sum384(append([]byte(fmt.Sprintf("cleanroom simulated nitro pcr%d:", i)), measurement[:]...))
}

// Attest returns a signed attestation document: PCR0 is req.Measurement,
// PCR1 and PCR2 are NitroPCR of it, the other 13 PCRs zero (all 16 zero
// when req.Debug: a debug-mode enclave), user_data is req.ReportData.
func (p *NitroPlatform) Attest(req Request) (*attest.NitroEvidence, error) {
	doc := nitroDocument{
		ModuleID:    "SIMULATED-i-00000000000000000-enc0000000000000000",
		Digest:      "SHA384",
		Timestamp:   uint64(time.Now().UnixMilli()),
		PCRs:        map[uint][]byte{},
		Certificate: p.leaf,
		CABundle:    [][]byte{p.root},
		UserData:    req.ReportData[:],
	}
	for i := uint(0); i < 16; i++ {
		doc.PCRs[i] = make([]byte, 48)
	}
	if !req.Debug {
		pcr1, pcr2 := NitroPCR(1, req.Measurement), NitroPCR(2, req.Measurement)
		doc.PCRs[0], doc.PCRs[1], doc.PCRs[2] = req.Measurement[:], pcr1[:], pcr2[:]
	}
	payload, err := cbor.Marshal(doc)
	if err != nil {
		return nil, err
	}
	signer, err := cose.NewSigner(cose.AlgorithmES384, p.key)
	if err != nil {
		return nil, err
	}
	msg := cose.UntaggedSign1Message{Headers: cose.Headers{Protected: cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmES384}}, Payload: payload}
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		return nil, err
	}
	raw, err := msg.MarshalCBOR()
	if err != nil {
		return nil, err
	}
	return attest.NewNitroEvidence(contracts.PlatformNitroSimulated, raw)
}

// MarshalPEM returns the platform as PEM: the root and signing
// certificates, then the signing key. Store it with mode 0600.
func (p *NitroPlatform) MarshalPEM() ([]byte, error) {
	k, err := keyBlock(p.key)
	if err != nil {
		return nil, err
	}
	return writePEM(&pem.Block{Type: pemCert, Bytes: p.root}, &pem.Block{Type: pemCert, Bytes: p.leaf}, k)
}

// ParseNitroPEM loads a platform written by MarshalPEM.
func ParseNitroPEM(data []byte) (*NitroPlatform, error) {
	blocks, err := readPEM(data, pemCert, pemCert, pemKey)
	if err != nil {
		return nil, err
	}
	p := &NitroPlatform{root: blocks[0].Bytes, leaf: blocks[1].Bytes}
	leaf, err := x509.ParseCertificate(p.leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: signing certificate: %v", ErrBadPlatform, err)
	}
	if _, err := x509.ParseCertificate(p.root); err != nil {
		return nil, fmt.Errorf("%w: root certificate: %v", ErrBadPlatform, err)
	}
	if p.key, err = ecKey(blocks[2].Bytes, elliptic.P384(), "signing"); err != nil {
		return nil, err
	}
	if !p.key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("%w: the signing key does not match the signing certificate", ErrBadPlatform)
	}
	return p, nil
}
