package cleanroom

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/veraison/go-cose"
)

// Content types of the COSE_Sign1 statements Cleanroom signs. Each is put in
// the protected header, so a signature made for one purpose can never be
// accepted as another.
const (
	ContentTypeContractApproval = "application/vnd.cleanroom.contract-approval.v1+cbor"
	ContentTypeUploadStatement  = "application/vnd.cleanroom.upload-statement.v2+cbor"
	ContentTypeResultStatement  = "application/vnd.cleanroom.result-statement.v2+cbor"
	// ContentTypeResumption is a participant's approval to resume a
	// suspended contract (contracts.SignResumption).
	ContentTypeResumption = "application/vnd.cleanroom.contract-resumption.v1+cbor"
)

// MaxStatementSize bounds the size of an encoded statement that the decoder
// accepts.
const MaxStatementSize = 64 << 10

// ErrBadSignature reports a statement whose signature does not verify, or
// that cannot be decoded.
var ErrBadSignature = errors.New("bad signature")

// SignStatement signs payload as a tagged COSE_Sign1 (RFC 9052) with
// algorithm EdDSA, the given content type, and kid = the signer's key
// fingerprint, all in the protected header.
func SignStatement(id *Identity, contentType string, payload []byte) ([]byte, error) {
	signer, err := cose.NewSigner(cose.AlgorithmEdDSA, id.sign)
	if err != nil {
		return nil, err
	}
	fp := id.Public().Fingerprint()
	headers := cose.Headers{Protected: cose.ProtectedHeader{
		cose.HeaderLabelAlgorithm:   cose.AlgorithmEdDSA,
		cose.HeaderLabelContentType: contentType,
		cose.HeaderLabelKeyID:       fp[:],
	}}
	return cose.Sign1(rand.Reader, signer, headers, payload, nil)
}

// Statement is a decoded, not yet verified, COSE_Sign1 statement.
type Statement struct {
	KeyID       Fingerprint
	ContentType string
	Payload     []byte
	msg         *cose.Sign1Message
}

// DecodeStatement decodes a tagged COSE_Sign1 without verifying it. It
// checks the structure: algorithm EdDSA, a 32-byte kid and a content type in
// the protected header, and an attached payload.
func DecodeStatement(data []byte) (*Statement, error) {
	if len(data) > MaxStatementSize {
		return nil, fmt.Errorf("%w: statement of %d bytes exceeds %d", ErrBadSignature, len(data), MaxStatementSize)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(data); err != nil {
		return nil, fmt.Errorf("%w: not a COSE_Sign1 message: %v", ErrBadSignature, err)
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil || alg != cose.AlgorithmEdDSA {
		return nil, fmt.Errorf("%w: protected header must name algorithm EdDSA", ErrBadSignature)
	}
	kid, ok := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	if !ok || len(kid) != len(Fingerprint{}) {
		return nil, fmt.Errorf("%w: protected header must carry a 32-byte kid (the key fingerprint)", ErrBadSignature)
	}
	ct, ok := msg.Headers.Protected[cose.HeaderLabelContentType].(string)
	if !ok {
		return nil, fmt.Errorf("%w: protected header must carry a content type", ErrBadSignature)
	}
	if len(msg.Headers.Unprotected) != 0 {
		return nil, fmt.Errorf("%w: unprotected header must be empty", ErrBadSignature)
	}
	if msg.Payload == nil {
		return nil, fmt.Errorf("%w: detached payloads are not used", ErrBadSignature)
	}
	st := &Statement{ContentType: ct, Payload: msg.Payload, msg: &msg}
	copy(st.KeyID[:], kid)
	return st, nil
}

// Verify checks the signature with pub, and that pub is the key the kid
// names and that the content type is the expected one.
func (s *Statement) Verify(pub *PublicKey, contentType string) error {
	if s.KeyID != pub.Fingerprint() {
		return fmt.Errorf("%w: signed by key %s, not %s", ErrBadSignature, s.KeyID.Short(), pub.Fingerprint().Short())
	}
	if s.ContentType != contentType {
		return fmt.Errorf("%w: content type is %q, want %q", ErrBadSignature, s.ContentType, contentType)
	}
	v, err := cose.NewVerifier(cose.AlgorithmEdDSA, ed25519.PublicKey(pub.sign))
	if err != nil {
		return err
	}
	if err := s.msg.Verify(nil, v); err != nil {
		return fmt.Errorf("%w: signature does not verify with key %s", ErrBadSignature, pub.Fingerprint().Short())
	}
	return nil
}
