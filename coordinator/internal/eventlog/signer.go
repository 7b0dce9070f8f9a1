package eventlog

import (
	"crypto"
	"crypto/ed25519"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"golang.org/x/mod/sumdb/note"
)

// noteSigner signs checkpoints as C2SP signed notes with an Ed25519
// crypto.Signer, so the coordinator's key never leaves its holder.
type noteSigner struct {
	name string
	hash uint32
	key  crypto.Signer
}

func (s *noteSigner) Name() string    { return s.name }
func (s *noteSigner) KeyHash() uint32 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) {
	return s.key.Sign(nil, msg, crypto.Hash(0))
}

// newNoteSigner returns the note signer for origin and the Verifier that
// checks its signatures. It refuses a key that is not Ed25519 or that does
// not sign for its own public key.
func newNoteSigner(origin string, key crypto.Signer) (*noteSigner, *tlog.Verifier, error) {
	if key == nil {
		return nil, nil, fmt.Errorf("no signing key given")
	}
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("checkpoint signing key is %T, want an Ed25519 key", key.Public())
	}
	v, err := tlog.NewVerifier(origin, pub)
	if err != nil {
		return nil, nil, err
	}
	nv, err := note.NewVerifier(v.NoteVerifierKey())
	if err != nil {
		return nil, nil, err
	}
	s := &noteSigner{name: origin, hash: nv.KeyHash(), key: key}
	probe := []byte("cleanroom event log key check\n")
	sig, err := s.Sign(probe)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint signing key cannot sign: %w", err)
	}
	if !ed25519.Verify(pub, probe, sig) {
		return nil, nil, fmt.Errorf("checkpoint signing key's signatures do not verify under its own public key")
	}
	return s, v, nil
}
