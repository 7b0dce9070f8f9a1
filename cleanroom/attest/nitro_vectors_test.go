package attest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// nitroVector builds an attestation document in AWS's documented format
// (aws-nitro-enclaves-nsm-api, "Attestation document specification"): a
// root, a certificate valid from notBefore to notAfter that signs the
// document, and the document's timestamp. It returns the document and the
// SHA-256 of its root.
func nitroVector(t *testing.T, notBefore, notAfter, signedAt time.Time) ([]byte, [32]byte) {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: notBefore.Add(-time.Hour), NotAfter: notAfter.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	root, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	rootCert, _ := x509.ParseCertificate(root)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test enclave"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	leaf, err := x509.CreateCertificate(rand.Reader, leafTmpl, rootCert, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	pcrs := map[uint][]byte{}
	for i := uint(0); i < 16; i++ {
		pcrs[i] = make([]byte, 48)
	}
	pcrs[0][0] = 1
	payload, err := cbor.Marshal(map[string]any{
		"module_id": "i-test-enc", "digest": "SHA384", "timestamp": uint64(signedAt.UnixMilli()),
		"pcrs": pcrs, "certificate": leaf, "cabundle": [][]byte{root},
		"public_key": nil, "user_data": make([]byte, 64), "nonce": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := cose.NewSigner(cose.AlgorithmES384, key)
	msg := cose.UntaggedSign1Message{Headers: cose.Headers{Protected: cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmES384}}, Payload: payload}
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		t.Fatal(err)
	}
	doc, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return doc, sha256.Sum256(root)
}

// Nitro documents built in AWS's format: one signed while its certificate
// was valid verifies; one signed after it expired, or before it was
// valid, is refused; one chaining to another root is refused on the real
// platform.
func TestNitroVectors(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	verify := func(doc []byte, pin [32]byte) error {
		ev, err := attest.NewNitroEvidence(contracts.PlatformNitroSimulated, doc)
		if err != nil {
			return err
		}
		v, err := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformNitroSimulated, SimulatedRootSHA256: &pin})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(ev)
		return err
	}
	good, pin := nitroVector(t, t0, t0.Add(3*time.Hour), t0.Add(time.Hour))
	if err := verify(good, pin); err != nil {
		t.Fatal(err)
	}
	expired, pin2 := nitroVector(t, t0, t0.Add(3*time.Hour), t0.Add(4*time.Hour))
	err := verify(expired, pin2)
	wantCheck(t, err, attest.CheckChain, attest.ErrNotGenuine)
	if !strings.Contains(err.Error(), "expired") {
		t.Errorf("not named as expired: %v", err)
	}
	early, pin3 := nitroVector(t, t0, t0.Add(3*time.Hour), t0.Add(-time.Minute))
	wantCheck(t, verify(early, pin3), attest.CheckChain, attest.ErrNotGenuine)
	// Another root: the same document on the real platform, whose root is
	// AWS's.
	ev, err := attest.NewNitroEvidence(contracts.PlatformNitro, good)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := attest.NewVerifier(attest.VerifierOptions{Platform: contracts.PlatformNitro})
	_, err = v.Verify(ev)
	wantCheck(t, err, attest.CheckChain, attest.ErrNotGenuine)
	if !strings.Contains(err.Error(), "AWS Nitro Enclaves root G1") {
		t.Errorf("the root is not named: %v", err)
	}
	// And against another pin.
	wantCheck(t, verify(good, pin2), attest.CheckSimulatedRoot, attest.ErrNotGenuine)
}
