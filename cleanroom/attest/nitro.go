package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"sync"
	"time"

	"github.com/veraison/go-cose"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/canon"
)

// Bounds of a Nitro Enclaves attestation document (AWS's NSM API limits
// user_data, nonce and public_key to 1024 bytes each; a document with its
// certificates is about 4.5 KiB).
const (
	maxNitroDocumentSize = 32 << 10
	maxNitroFieldSize    = 1024
	maxNitroCABundle     = 8
	maxNitroPCRs         = 32
)

// NitroEvidence is AWS Nitro Enclaves evidence: the attestation document
// the Nitro Secure Module signs, an untagged COSE_Sign1 (ES384) whose
// payload is a CBOR map of the module id, a timestamp, the PCRs, the
// signing certificate with its CA bundle, and the enclave's public_key,
// user_data and nonce. The bundle chains to the AWS Nitro Enclaves root G1
// (embedded in every verifier); on nitro-simulated, to a throw-away root
// that a verifier accepts only when pinned.
type NitroEvidence struct {
	platform contracts.Platform
	document []byte
}

// NewNitroEvidence assembles Nitro evidence from an attestation document.
// It checks the structure only, never the signatures.
func NewNitroEvidence(platform contracts.Platform, document []byte) (*NitroEvidence, error) {
	e := &NitroEvidence{platform: platform, document: bytes.Clone(document)}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

// Platform returns nitro or nitro-simulated.
func (e *NitroEvidence) Platform() contracts.Platform { return e.platform }

// Document returns the raw attestation document.
func (e *NitroEvidence) Document() []byte { return bytes.Clone(e.document) }

func (e *NitroEvidence) check() error {
	if e.platform != contracts.PlatformNitro && e.platform != contracts.PlatformNitroSimulated {
		return malformed("platform %q is not %q or %q", e.platform, contracts.PlatformNitro, contracts.PlatformNitroSimulated)
	}
	if len(e.document) == 0 {
		return malformed("the Nitro attestation document is missing")
	}
	if len(e.document) > maxNitroDocumentSize {
		return malformed("the Nitro attestation document has %d bytes, more than %d", len(e.document), maxNitroDocumentSize)
	}
	return nil
}

// MarshalBinary returns the canonical evidence encoding.
func (e *NitroEvidence) MarshalBinary() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	return canon.Marshal(evidenceWire{Platform: string(e.platform), F2: e.document})
}

// NitroDocument is the payload of a Nitro attestation document, as AWS
// specifies it (aws-nitro-enclaves-nsm-api, "Attestation document
// specification").
type NitroDocument struct {
	ModuleID    string          `cbor:"module_id"`
	Digest      string          `cbor:"digest"`
	Timestamp   uint64          `cbor:"timestamp"` // milliseconds since the Unix epoch
	PCRs        map[uint][]byte `cbor:"pcrs"`
	Certificate []byte          `cbor:"certificate"`
	CABundle    [][]byte        `cbor:"cabundle"`
	PublicKey   []byte          `cbor:"public_key"`
	UserData    []byte          `cbor:"user_data"`
	Nonce       []byte          `cbor:"nonce"`
}

// nitroDecoder reads AWS's encoding strictly: no duplicate or unknown
// keys, no indefinite lengths, bounded sizes.
var nitroDecoder = canon.NewDecoder(canon.Limits{MaxNestedLevels: 4, MaxArrayElements: 64, MaxMapPairs: 64})

// parse returns the COSE message and its decoded, structurally checked
// payload.
func (e *NitroEvidence) parse() (*cose.UntaggedSign1Message, *NitroDocument, error) {
	var msg cose.UntaggedSign1Message
	if err := msg.UnmarshalCBOR(e.document); err != nil {
		return nil, nil, malformed("the Nitro attestation document is not an untagged COSE_Sign1: %v", err)
	}
	var doc NitroDocument
	if err := nitroDecoder.Unmarshal(msg.Payload, &doc); err != nil {
		return nil, nil, malformed("the Nitro attestation document's payload: %v", err)
	}
	switch {
	case doc.ModuleID == "":
		return nil, nil, malformed("the Nitro attestation document has no module_id")
	case doc.Digest != "SHA384":
		return nil, nil, malformed("the Nitro attestation document's digest is %q, not SHA384", doc.Digest)
	case doc.Timestamp == 0:
		return nil, nil, malformed("the Nitro attestation document has no timestamp")
	case len(doc.PCRs) == 0 || len(doc.PCRs) > maxNitroPCRs:
		return nil, nil, malformed("the Nitro attestation document has %d PCRs (want 1 to %d)", len(doc.PCRs), maxNitroPCRs)
	case len(doc.Certificate) == 0:
		return nil, nil, malformed("the Nitro attestation document has no certificate")
	case len(doc.CABundle) == 0 || len(doc.CABundle) > maxNitroCABundle:
		return nil, nil, malformed("the Nitro attestation document's cabundle has %d certificates (want 1 to %d)", len(doc.CABundle), maxNitroCABundle)
	case len(doc.PublicKey) > maxNitroFieldSize || len(doc.UserData) > maxNitroFieldSize || len(doc.Nonce) > maxNitroFieldSize:
		return nil, nil, malformed("the Nitro attestation document's public_key, user_data or nonce is longer than %d bytes", maxNitroFieldSize)
	}
	for i, v := range doc.PCRs {
		if i >= maxNitroPCRs || len(v) != 48 {
			return nil, nil, malformed("the Nitro attestation document's PCR%d has %d bytes, want 48 (SHA-384)", i, len(v))
		}
	}
	if _, ok := doc.PCRs[0]; !ok {
		return nil, nil, malformed("the Nitro attestation document has no PCR0")
	}
	return &msg, &doc, nil
}

func (e *NitroEvidence) measurement() ([48]byte, error) {
	_, doc, err := e.parse()
	if err != nil {
		return [48]byte{}, err
	}
	return [48]byte(doc.PCRs[0]), nil
}

func (e *NitroEvidence) simulatedRoot() (*[32]byte, error) {
	if e.platform != contracts.PlatformNitroSimulated {
		return nil, nil
	}
	_, doc, err := e.parse()
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(doc.CABundle[0])
	return &h, nil
}

//go:embed aws_nitro_root_g1.pem
var awsNitroRootG1PEM []byte

// AWSNitroRootG1SHA256 is the SHA-256 of the AWS Nitro Enclaves root G1
// certificate (DER), as AWS publishes it.
const AWSNitroRootG1SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

var awsNitroRootG1 = sync.OnceValues(func() (*x509.Certificate, error) {
	b, _ := pem.Decode(awsNitroRootG1PEM)
	if b == nil {
		return nil, errors.New("the embedded AWS Nitro root is not PEM")
	}
	if h := sha256.Sum256(b.Bytes); hex.EncodeToString(h[:]) != AWSNitroRootG1SHA256 {
		return nil, errors.New("the embedded AWS Nitro root is not root G1")
	}
	return x509.ParseCertificate(b.Bytes)
})

// NitroClaims are the fields of a verified Nitro attestation document.
type NitroClaims struct {
	ModuleID  string
	Timestamp time.Time
	PCRs      map[uint][48]byte
	PublicKey []byte
	UserData  []byte
	Nonce     []byte
	// SimulatedRootSHA256 is set for simulated evidence: the pinned root
	// it chained to.
	SimulatedRootSHA256 *[32]byte
}

// PCR returns PCR i, or all zeros when the document has none.
func (n *NitroClaims) PCR(i uint) [48]byte { return n.PCRs[i] }

func (e *NitroEvidence) verify(v *Verifier) (*Claims, error) {
	msg, doc, err := e.parse()
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(doc.Certificate)
	if err != nil {
		return nil, malformed("the Nitro document's certificate does not parse: %v", err)
	}
	bundle := make([]*x509.Certificate, len(doc.CABundle))
	for i, der := range doc.CABundle {
		if bundle[i], err = x509.ParseCertificate(der); err != nil {
			return nil, malformed("the Nitro document's cabundle[%d] does not parse: %v", i, err)
		}
	}

	// 1. The signature, with the document's own certificate.
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil || alg != cose.AlgorithmES384 {
		return nil, notGenuine(CheckSignature, "the document's COSE algorithm is %v, not ES384", alg)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, notGenuine(CheckSignature, "the document's certificate does not hold an ECDSA P-384 key")
	}
	verifier, err := cose.NewVerifier(cose.AlgorithmES384, pub)
	if err != nil {
		return nil, notGenuine(CheckSignature, "%v", err)
	}
	if err := msg.Verify(nil, verifier); err != nil {
		return nil, notGenuine(CheckSignature, "the document's COSE_Sign1 signature does not verify with its certificate %q (%v): the document was altered after it was signed, or another key signed it", leaf.Subject.CommonName, err)
	}

	// 2. The root of trust.
	roots := x509.NewCertPool()
	rootDesc := "the AWS Nitro Enclaves root G1"
	var simRoot *[32]byte
	if e.platform == contracts.PlatformNitro {
		g1, err := awsNitroRootG1()
		if err != nil {
			return nil, err
		}
		roots.AddCert(g1)
	} else {
		got := sha256.Sum256(doc.CABundle[0])
		if got != v.simRoot {
			return nil, notGenuine(CheckSimulatedRoot, "the document's simulated root has SHA-256 %s; the contract pins %s (is this another simulated coordinator?)",
				hex.EncodeToString(got[:]), hex.EncodeToString(v.simRoot[:]))
		}
		roots.AddCert(bundle[0])
		simRoot, rootDesc = &got, "the pinned simulated root "+hex.EncodeToString(got[:])
	}

	// 3. The chain, at the time the document was signed: its certificates
	// live for hours, and the timestamp is part of what the leaf signs.
	at := time.UnixMilli(int64(doc.Timestamp)).UTC()
	inter := x509.NewCertPool()
	for _, c := range bundle[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, notGenuine(CheckChain, "the document's certificate does not chain to %s at the document's time %s: %v", rootDesc, at.Format(time.RFC3339), err)
	}

	n := &NitroClaims{
		ModuleID:            doc.ModuleID,
		Timestamp:           at,
		PCRs:                map[uint][48]byte{},
		PublicKey:           doc.PublicKey,
		UserData:            doc.UserData,
		Nonce:               doc.Nonce,
		SimulatedRootSHA256: simRoot,
	}
	for i, p := range doc.PCRs {
		n.PCRs[i] = [48]byte(p)
	}
	c := &Claims{Platform: e.platform, Measurement: n.PCRs[0], Debug: n.PCRs[0] == [48]byte{}, Nitro: n}
	if len(doc.UserData) == len(c.ReportData) {
		c.ReportData = [64]byte(doc.UserData)
	}
	return c, nil
}

// nitroReportData checks the binding of a Nitro document: user_data must
// be exactly the 64 bytes expected.
func nitroReportData(n *NitroClaims, want [64]byte) error {
	if len(n.UserData) != len(want) {
		return refused(CheckReportData, "the document's user_data has %d bytes, not the 64 of Cleanroom's key binding (want %x): the document was made for something else", len(n.UserData), want)
	}
	if !bytes.Equal(n.UserData, want[:]) {
		return refused(CheckReportData, "the document's user_data %x is not the expected %x", n.UserData, want)
	}
	return nil
}

// validateNitro checks a document's PCRs against a contract's reference
// values: PCR0 must be listed; PCR1 and PCR2 when their lists are not
// empty.
func validateNitro(n *NitroClaims, refs *contracts.NitroRefs, origin string) error {
	for i, list := range [][][48]byte{refs.PCR0, refs.PCR1, refs.PCR2} {
		if i > 0 && len(list) == 0 {
			continue
		}
		pcr := n.PCR(uint(i))
		if !containsMeasurement(list, pcr) {
			return refused(CheckPCR, "PCR%d %x is not in %s list of pcr%d [%s]", i, pcr, origin, i, formatMeasurements(list))
		}
	}
	return nil
}
