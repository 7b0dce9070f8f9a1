package contracts

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
)

// ErrModelMismatch reports a module (with its salt) that is not the one
// the contract's models[].sha256 names.
var ErrModelMismatch = errors.New("the module is not the one the contract approves")

// Check verifies that module is the model the contract approves: its plain
// SHA-256 equals sha256 when the model is not confidential (salt must be
// nil); when it is, sha256 is the salted commitment
// cleanroom.CommitModel(salt, module) and salt is required. Mismatches wrap
// ErrModelMismatch.
func (m *Model) Check(module []byte, salt *cleanroom.Salt) error {
	var got [32]byte
	switch {
	case m.Confidential && salt == nil:
		return fmt.Errorf("model %s is confidential: its sha256 is a salted commitment, and checking the module needs its salt (cleanroom model commit made it)", m.Name)
	case !m.Confidential && salt != nil:
		return fmt.Errorf("model %s is not confidential: its sha256 is the plain SHA-256 of the module, and takes no salt", m.Name)
	case m.Confidential:
		got = cleanroom.CommitModel(*salt, module)
	default:
		got = sha256.Sum256(module)
	}
	if got == m.SHA256 {
		return nil
	}
	if m.Confidential && sha256.Sum256(module) == m.SHA256 {
		return fmt.Errorf("%w: models[].sha256 of %s is the plain SHA-256 of this confidential module, which lets anyone holding the contract confirm a guess of it; "+
			"make a salted commitment with cleanroom model commit and have every participant sign the amended contract", ErrModelMismatch, m.Name)
	}
	if m.Confidential {
		return fmt.Errorf("%w: the commitment of this module with this salt is %x; model %s names %x (is it the salt file the commitment was made with, and the exact module?)",
			ErrModelMismatch, got, m.Name, m.SHA256)
	}
	return fmt.Errorf("%w: its SHA-256 is %x; model %s names %x", ErrModelMismatch, got, m.Name, m.SHA256)
}
