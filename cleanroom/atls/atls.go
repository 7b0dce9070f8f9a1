// Package atls is attested TLS between Cleanroom participants and the
// coordinator: TLS 1.3 in which the coordinator's self-signed Ed25519
// certificate carries its attestation (public key and evidence, in an X.509
// extension) and the client verifies it during the handshake against a
// contract's coordinator policy; participants authenticate with their own
// keys (mutual TLS with self-signed Ed25519 certificates).
//
// The TLS layer proves who is at the other end: the coordinator's key is
// attested, the participant's key is held by the peer. What a participant
// may do is decided above it, by the contract; a server can also refuse
// unknown keys during the handshake (ServerOptions.AuthorizeClient).
//
// docs/attestation.md specifies the certificate and the extension.
package atls

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
)

// ErrUnauthenticated reports a peer whose certificate does not prove a key:
// missing, not Ed25519, not self-signed, or a chain.
var ErrUnauthenticated = errors.New("peer certificate does not authenticate a key")

// notAfter is the expiry of every certificate made here: RFC 5280's "no
// well-defined expiration date". Validity is never what is checked: keys
// and evidence are.
var notAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// selfSigned makes a self-signed certificate for an Ed25519 key with the
// given extra extensions.
func selfSigned(id *cleanroom.Identity, cn string, exts []pkix.Extension, usage x509.ExtKeyUsage) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{CommonName: cn},
		NotBefore:       time.Now().Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{usage},
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.Public().SigningKey(), id.Signer())
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.Signer(), Leaf: leaf}, nil
}

// CoordinatorCertificate returns the coordinator's TLS certificate:
// self-signed by its Ed25519 key, carrying its public key and ev in the
// attestation extension. ev must bind the key (REPORT_DATA =
// attest.ReportData([key], nil)); clients refuse it otherwise.
func CoordinatorCertificate(id *cleanroom.Identity, ev attest.Evidence) (tls.Certificate, error) {
	if id == nil || ev == nil {
		return tls.Certificate{}, errors.New("a coordinator certificate needs the coordinator's identity and evidence")
	}
	value, err := marshalExtension(id.Public(), ev)
	if err != nil {
		return tls.Certificate{}, err
	}
	cn := "cleanroom coordinator " + id.Public().Fingerprint().Short()
	return selfSigned(id, cn, []pkix.Extension{{Id: OIDAttestation, Value: value}}, x509.ExtKeyUsageServerAuth)
}

// ParticipantCertificate returns a participant's TLS client certificate:
// self-signed by the participant's Ed25519 key.
func ParticipantCertificate(id *cleanroom.Identity) (tls.Certificate, error) {
	if id == nil {
		return tls.Certificate{}, errors.New("a participant certificate needs the participant's identity")
	}
	return selfSigned(id, "cleanroom participant "+id.Public().Fingerprint().Short(), nil, x509.ExtKeyUsageClientAuth)
}

// selfSignedKey checks that the peer sent exactly one certificate, with an
// Ed25519 key that signed it, and returns the key. Possession of the key is
// proven by the TLS 1.3 handshake signature (CertificateVerify), which
// crypto/tls checks before the VerifyConnection callbacks run.
func selfSignedKey(certs []*x509.Certificate) (ed25519.PublicKey, error) {
	if len(certs) != 1 {
		return nil, fmt.Errorf("%w: %d certificates sent; want one self-signed certificate", ErrUnauthenticated, len(certs))
	}
	leaf := certs[0]
	key, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the certificate's key is %T, not Ed25519", ErrUnauthenticated, leaf.PublicKey)
	}
	if leaf.SignatureAlgorithm != x509.PureEd25519 {
		return nil, fmt.Errorf("%w: the certificate is signed with %v, not Ed25519", ErrUnauthenticated, leaf.SignatureAlgorithm)
	}
	if err := leaf.CheckSignature(x509.PureEd25519, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		return nil, fmt.Errorf("%w: the certificate is not self-signed by its key: %v", ErrUnauthenticated, err)
	}
	return key, nil
}

// PeerKey returns the participant key a client proved during a handshake
// on a connection whose configuration came from NewServerConfig, or nil for
// an anonymous client. On other connections its result means nothing.
func PeerKey(cs *tls.ConnectionState) ed25519.PublicKey {
	if cs == nil || len(cs.PeerCertificates) != 1 {
		return nil
	}
	key, _ := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	return key
}
