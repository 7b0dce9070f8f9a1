package contracts

import (
	"bytes"
	"errors"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
)

// A suspended contract (SPEC §13, cleanroom contract suspend) runs again
// only when every participant approves: each signs the pair (contract id,
// the log index of the contract.suspended event), so an approval counts for
// one suspension only and cannot be replayed to lift a later one.

// resumption is the payload of a resumption approval: the canonical CBOR
// map {"contract_id": bstr(32), "suspension_index": uint}, signed as a
// COSE_Sign1 with content type cleanroom.ContentTypeResumption.
type resumption struct {
	ContractID      []byte `cbor:"contract_id"`
	SuspensionIndex uint64 `cbor:"suspension_index"`
}

// SignResumption returns the signer's approval to resume the contract
// from the suspension logged at index suspension: a COSE_Sign1, kid = the
// signer's key fingerprint. It refuses a key that is not a participant's.
func (c *Contract) SignResumption(id *cleanroom.Identity, suspension uint64) ([]byte, error) {
	if c.ParticipantByKey(id.Public().Fingerprint()) == nil {
		return nil, fmt.Errorf("key %s is not the key of any participant of contract %s; sign with your own participant key",
			id.Public().Fingerprint().Short(), c.ID())
	}
	payload, err := CanonicalCBOR(resumption{ContractID: c.id[:], SuspensionIndex: suspension})
	if err != nil {
		return nil, err
	}
	return cleanroom.SignStatement(id, cleanroom.ContentTypeResumption, payload)
}

// VerifyResumption checks one resumption approval: decodable, made by a
// participant's key, valid, and for this contract and the suspension at
// log index suspension. It returns the participant's id.
func (c *Contract) VerifyResumption(sig SignedBy, suspension uint64) (string, error) {
	st, err := cleanroom.DecodeStatement(sig.Data)
	if err != nil {
		return "", &SignatureError{Source: sig.Source, Err: ErrSignatureMalformed, Detail: err.Error()}
	}
	p := c.ParticipantByKey(st.KeyID)
	if p == nil {
		return "", &SignatureError{Source: sig.Source, Err: ErrSignerUnknown, Detail: "key " + st.KeyID.Short()}
	}
	fail := func(err error, detail string) (string, error) {
		return "", &SignatureError{Source: sig.Source, Participant: p.ID, Err: err, Detail: detail}
	}
	if err := st.Verify(p.PublicKey, cleanroom.ContentTypeResumption); err != nil {
		return fail(ErrSignatureInvalid, err.Error())
	}
	var r resumption
	if err := strictDecoder.Unmarshal(st.Payload, &r); err != nil || len(r.ContractID) != len(ID{}) {
		return fail(ErrSignatureMalformed, "payload is not a resumption approval")
	}
	if !bytes.Equal(r.ContractID, c.id[:]) {
		return fail(ErrOtherContract, fmt.Sprintf("it resumes contract %x, this contract is %s", r.ContractID, c.id))
	}
	if r.SuspensionIndex != suspension {
		return fail(ErrOtherSuspension, fmt.Sprintf("it lifts the suspension at log index %d; the contract's suspension is at index %d", r.SuspensionIndex, suspension))
	}
	return p.ID, nil
}

// ErrOtherSuspension reports a resumption approval for another suspension.
var ErrOtherSuspension = errors.New("approval is for another suspension")

// VerifyResumptions checks every approval given and that every participant
// approved resuming from the suspension at log index suspension.
func (c *Contract) VerifyResumptions(sigs []SignedBy, suspension uint64) *Approvals {
	a := &Approvals{Valid: map[string][]byte{}}
	for _, sig := range sigs {
		id, err := c.VerifyResumption(sig, suspension)
		if err != nil {
			a.Problems = append(a.Problems, err.(*SignatureError))
			continue
		}
		if _, dup := a.Valid[id]; !dup {
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
