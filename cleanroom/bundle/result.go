package bundle

import (
	"bytes"
	"crypto/hpke"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/contracts"
)

// ResultSchemaDigest is the schema digest of every result envelope: all
// zero bytes. A contract declares no schema for results (the algorithm's
// SELECT decides the columns), so there is nothing to pin; the result
// statement names the plaintext's SHA-256 instead.
var ResultSchemaDigest [32]byte

// ResultSegmentSize is the segment size of result envelopes.
const ResultSegmentSize = envelope.DefaultSegmentSize

// MaxResultSize bounds the encrypted result a bundle may carry.
const MaxResultSize = 256 << 20

// EncryptResult seals a run's plaintext result (an Arrow IPC stream) in an
// envelope to every result recipient of the contract, in contract order:
// kind result, the contract's id, object id = runID, schema digest
// ResultSchemaDigest, segment size ResultSegmentSize, one stanza per
// recipient's HPKE key. It returns the whole envelope.
func EncryptResult(plain []byte, c *contracts.Contract, runID string) ([]byte, error) {
	if !runIDPattern.MatchString(runID) {
		return nil, fmt.Errorf("bundle: run id %q is not 32 lowercase hex digits", runID)
	}
	keys, err := recipientKeys(c)
	if err != nil {
		return nil, err
	}
	hpkeKeys := make([]hpke.PublicKey, len(keys))
	for i, k := range keys {
		hpkeKeys[i] = k.HPKE()
	}
	var buf bytes.Buffer
	buf.Grow(len(plain) + len(plain)/ResultSegmentSize*envelope.TagSize + 2048*len(keys))
	w, err := envelope.NewWriter(&buf, envelope.Header{
		Kind:         envelope.KindResult,
		ContractID:   c.ID(),
		ObjectID:     runID,
		SchemaDigest: ResultSchemaDigest,
		SegmentSize:  ResultSegmentSize,
	}, hpkeKeys)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if buf.Len() > MaxResultSize {
		return nil, fmt.Errorf("bundle: the encrypted result has %d bytes, more than the %d a bundle may carry", buf.Len(), MaxResultSize)
	}
	return buf.Bytes(), nil
}

// recipientKeys returns the public keys of the contract's result
// recipients, in contract order.
func recipientKeys(c *contracts.Contract) ([]*cleanroom.PublicKey, error) {
	if len(c.Output.Recipients) == 0 {
		return nil, fmt.Errorf("contract %s names no result recipient", c.ID())
	}
	keys := make([]*cleanroom.PublicKey, len(c.Output.Recipients))
	for i, id := range c.Output.Recipients {
		p := c.Participant(id)
		if p == nil || p.PublicKey == nil {
			return nil, fmt.Errorf("contract %s names result recipient %q, who is not a participant with a key", c.ID(), id)
		}
		keys[i] = p.PublicKey
	}
	return keys, nil
}

// DecryptResult opens a result envelope as a recipient: it refuses a key
// that is not a result recipient's in the contract, and an envelope that is
// not the result of this contract and run (kind, contract id, run id,
// schema digest), then authenticates and decrypts every segment. It returns
// the plaintext only if the whole envelope authenticates. It does not check
// the plaintext against a result statement: Verify does.
func DecryptResult(ciphertext []byte, recipient *cleanroom.Identity, c *contracts.Contract, runID string) ([]byte, error) {
	fp := recipient.Public().Fingerprint()
	p := c.ParticipantByKey(fp)
	if p == nil || !c.IsRecipient(p.ID) {
		who := "no participant's key"
		if p != nil {
			who = fmt.Sprintf("the key of %q, who is not a result recipient", p.ID)
		}
		return nil, fmt.Errorf("%w: key %s is %s of contract %s (result recipients: %v)",
			envelope.ErrNotRecipient, fp.Short(), who, c.ID(), c.Output.Recipients)
	}
	zero := ResultSchemaDigest
	plain, _, err := envelope.Open(ciphertext, recipient.HPKE(), envelope.Expect{
		Kind:         envelope.KindResult,
		ContractID:   c.ID(),
		ObjectID:     runID,
		SchemaDigest: &zero,
	})
	if err != nil {
		return nil, err
	}
	return plain, nil
}
