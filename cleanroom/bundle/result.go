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
// statement names a salted commitment to the plaintext instead.
var ResultSchemaDigest [32]byte

// ResultSegmentSize is the segment size of result envelopes.
const ResultSegmentSize = envelope.DefaultSegmentSize

// MaxResultSize bounds the encrypted result a bundle may carry.
const MaxResultSize = 256 << 20

// CommitResult returns the salted commitment to a plaintext result (an
// Arrow IPC stream) that a result statement names:
// cleanroom.Commit(cleanroom.CommitmentResult, salt, plain). The salt
// travels only inside the encrypted result, so only the recipients can
// check it, and no one else can test a guess of the result against it.
func CommitResult(salt cleanroom.Salt, plain []byte) [32]byte {
	return cleanroom.Commit(cleanroom.CommitmentResult, salt, plain)
}

// EncryptResult seals a run's plaintext result (an Arrow IPC stream) in an
// envelope to every result recipient of the contract, in contract order:
// kind result, the contract's id, object id = runID, schema digest
// ResultSchemaDigest, segment size ResultSegmentSize, one stanza per
// recipient's HPKE key. The envelope's plaintext is a fresh random salt (32
// bytes) followed by the result. It returns the whole envelope and the
// commitment CommitResult(salt, plain) the result statement names; the
// salt itself leaves only inside the envelope.
func EncryptResult(plain []byte, c *contracts.Contract, runID string) ([]byte, [32]byte, error) {
	if !runIDPattern.MatchString(runID) {
		return nil, [32]byte{}, fmt.Errorf("bundle: run id %q is not 32 lowercase hex digits", runID)
	}
	keys, err := recipientKeys(c)
	if err != nil {
		return nil, [32]byte{}, err
	}
	hpkeKeys := make([]hpke.PublicKey, len(keys))
	for i, k := range keys {
		hpkeKeys[i] = k.HPKE()
	}
	var buf bytes.Buffer
	n := cleanroom.SaltSize + len(plain)
	buf.Grow(n + n/ResultSegmentSize*envelope.TagSize + 2048*len(keys))
	w, err := envelope.NewWriter(&buf, envelope.Header{
		Kind:         envelope.KindResult,
		ContractID:   c.ID(),
		ObjectID:     runID,
		SchemaDigest: ResultSchemaDigest,
		SegmentSize:  ResultSegmentSize,
	}, hpkeKeys)
	if err != nil {
		return nil, [32]byte{}, err
	}
	salt := cleanroom.NewSalt()
	if _, err := w.Write(salt[:]); err != nil {
		return nil, [32]byte{}, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, [32]byte{}, err
	}
	if err := w.Close(); err != nil {
		return nil, [32]byte{}, err
	}
	if buf.Len() > MaxResultSize {
		return nil, [32]byte{}, fmt.Errorf("bundle: the encrypted result has %d bytes, more than the %d a bundle may carry", buf.Len(), MaxResultSize)
	}
	return buf.Bytes(), CommitResult(salt, plain), nil
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
// the plaintext result and the salt of its commitment only if the whole
// envelope authenticates. It does not check them against a result
// statement: Verify does.
func DecryptResult(ciphertext []byte, recipient *cleanroom.Identity, c *contracts.Contract, runID string) ([]byte, cleanroom.Salt, error) {
	fp := recipient.Public().Fingerprint()
	p := c.ParticipantByKey(fp)
	if p == nil || !c.IsRecipient(p.ID) {
		who := "no participant's key"
		if p != nil {
			who = fmt.Sprintf("the key of %q, who is not a result recipient", p.ID)
		}
		return nil, cleanroom.Salt{}, fmt.Errorf("%w: key %s is %s of contract %s (result recipients: %v)",
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
		return nil, cleanroom.Salt{}, err
	}
	if len(plain) < cleanroom.SaltSize {
		return nil, cleanroom.Salt{}, malformed("the decrypted result has %d bytes, fewer than the %d-byte salt it starts with",
			len(plain), cleanroom.SaltSize)
	}
	var salt cleanroom.Salt
	copy(salt[:], plain)
	return plain[cleanroom.SaltSize:], salt, nil
}
