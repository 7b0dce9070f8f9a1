package contracts

import (
	"bytes"
	"errors"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/internal/canon"
)

// approval is the payload of a contract signature: the canonical CBOR map
// {"contract_id": bstr(32)}, signed as a COSE_Sign1 with content type
// cleanroom.ContentTypeContractApproval.
type approval struct {
	ContractID []byte `cbor:"contract_id"`
}

// strictDecoder decodes approvals strictly.
var strictDecoder = canon.NewDecoder(canon.Limits{MaxNestedLevels: 16, MaxArrayElements: 1 << 16, MaxMapPairs: 1 << 16})

// Sign returns the signer's approval of the contract: a COSE_Sign1 over the
// contract id, kid = the signer's key fingerprint. It refuses a key that is
// not a participant's, since such a signature could never count.
func (c *Contract) Sign(id *cleanroom.Identity) ([]byte, error) {
	if c.ParticipantByKey(id.Public().Fingerprint()) == nil {
		return nil, fmt.Errorf("key %s is not the key of any participant of contract %s; sign with your own participant key",
			id.Public().Fingerprint().Short(), c.ID())
	}
	payload, err := CanonicalCBOR(approval{ContractID: c.id[:]})
	if err != nil {
		return nil, err
	}
	return cleanroom.SignStatement(id, cleanroom.ContentTypeContractApproval, payload)
}

// Reasons a signature does not count.
var (
	ErrSignatureMalformed = errors.New("not a contract signature")
	ErrSignerUnknown      = errors.New("signed by a key that is not a participant's")
	ErrSignatureInvalid   = errors.New("signature does not verify")
	ErrOtherContract      = errors.New("signature is over a different contract")
	ErrSignatureMissing   = errors.New("has not signed")
)

// SignatureError says why one signature does not count, naming the
// signature's source (a file name, say) and, when known, the participant.
type SignatureError struct {
	Source      string
	Participant string // "" when the signer is unknown
	Err         error
	Detail      string
}

func (e *SignatureError) Error() string {
	who := ""
	if e.Participant != "" {
		who = "participant " + e.Participant + ": "
	}
	src := ""
	if e.Source != "" {
		src = e.Source + ": "
	}
	if e.Detail != "" {
		return fmt.Sprintf("%s%s%v (%s)", src, who, e.Err, e.Detail)
	}
	return fmt.Sprintf("%s%s%v", src, who, e.Err)
}

func (e *SignatureError) Unwrap() error { return e.Err }

// SignedBy is a signature as given, with where it came from.
type SignedBy struct {
	Source string // file name or other label used in messages
	Data   []byte
}

// Approvals is the outcome of checking signatures against a contract.
type Approvals struct {
	// Valid maps participant id to the signature bytes that count for it.
	Valid map[string][]byte
	// Problems lists every signature that does not count and every
	// participant that has not signed, in that order.
	Problems []*SignatureError
}

// Complete reports whether every participant signed validly and no
// signature given was bad.
func (a *Approvals) Complete() bool { return len(a.Problems) == 0 }

// Err returns nil when Complete, else an error listing every problem.
func (a *Approvals) Err() error {
	if a.Complete() {
		return nil
	}
	errs := make([]error, len(a.Problems))
	for i, p := range a.Problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// VerifySignature checks one signature: decodable, made by a participant's
// key, valid, and over this contract. It returns the participant's id.
func (c *Contract) VerifySignature(sig SignedBy) (string, error) {
	st, err := cleanroom.DecodeStatement(sig.Data)
	if err != nil {
		return "", &SignatureError{Source: sig.Source, Err: ErrSignatureMalformed, Detail: err.Error()}
	}
	p := c.ParticipantByKey(st.KeyID)
	if p == nil {
		return "", &SignatureError{Source: sig.Source, Err: ErrSignerUnknown, Detail: "key " + st.KeyID.Short()}
	}
	if err := verifyApproval(sig, st, p, c.id); err != nil {
		return "", err
	}
	return p.ID, nil
}

// verifyApproval checks that a decoded signature is participant p's
// approval of contract id.
func verifyApproval(sig SignedBy, st *cleanroom.Statement, p *Participant, id ID) error {
	fail := func(err error, detail string) error {
		return &SignatureError{Source: sig.Source, Participant: p.ID, Err: err, Detail: detail}
	}
	if err := st.Verify(p.PublicKey, cleanroom.ContentTypeContractApproval); err != nil {
		return fail(ErrSignatureInvalid, err.Error())
	}
	var a approval
	if err := strictDecoder.Unmarshal(st.Payload, &a); err != nil || len(a.ContractID) != len(ID{}) {
		return fail(ErrSignatureMalformed, "payload is not a contract approval")
	}
	if !bytes.Equal(a.ContractID, id[:]) {
		return fail(ErrOtherContract, fmt.Sprintf("it approves contract %x, this contract is %s", a.ContractID, id))
	}
	return nil
}

// VerifySignatures checks every signature given and that every participant
// signed: the all-parties check the coordinator makes before accepting a
// contract.
func (c *Contract) VerifySignatures(sigs []SignedBy) *Approvals {
	a := &Approvals{Valid: map[string][]byte{}}
	for _, sig := range sigs {
		id, err := c.VerifySignature(sig)
		if err != nil {
			a.Problems = append(a.Problems, err.(*SignatureError))
			continue
		}
		if _, dup := a.Valid[id]; !dup { // a second valid signature adds nothing
			a.Valid[id] = sig.Data
		}
	}
	for _, p := range c.Participants {
		if _, ok := a.Valid[p.ID]; !ok {
			a.Problems = append(a.Problems, &SignatureError{Participant: p.ID, Err: ErrSignatureMissing})
		}
	}
	return a
}
