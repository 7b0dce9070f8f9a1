package contracts

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
)

// ErrAlgorithmMismatch reports an algorithm text (with its salt) that is not
// the one the contract's algorithm.sha256 names.
var ErrAlgorithmMismatch = errors.New("the algorithm is not the one the contract approves")

// Digest returns what a contract's algorithm.sha256 must hold for text: its
// plain SHA-256 when the algorithm is not confidential (salt must be nil),
// and the salted commitment cleanroom.CommitAlgorithm(salt, text) when it
// is (salt is required). It refuses the wrong combination.
func (a *Algorithm) Digest(text []byte, salt *cleanroom.Salt) ([32]byte, error) {
	switch {
	case a.Confidential && salt == nil:
		return [32]byte{}, errors.New("algorithm.confidential is true: algorithm.sha256 is a salted commitment, and checking the text needs its salt (cleanroom algorithm commit made it)")
	case !a.Confidential && salt != nil:
		return [32]byte{}, errors.New("algorithm.confidential is false: algorithm.sha256 is the plain SHA-256 of the text, and takes no salt")
	case a.Confidential:
		return cleanroom.CommitAlgorithm(*salt, text), nil
	}
	return sha256.Sum256(text), nil
}

// Check verifies that text is the algorithm the contract approves: its
// plain SHA-256 equals algorithm.sha256 when the algorithm is not
// confidential; when it is, algorithm.sha256 is the salted commitment
// cleanroom.CommitAlgorithm(salt, text) and salt is required. A
// confidential contract that names the plain SHA-256 of the text is
// refused with its own message: such a contract lets anyone who holds it
// test a guess of the text. Mismatches wrap ErrAlgorithmMismatch.
func (a *Algorithm) Check(text []byte, salt *cleanroom.Salt) error {
	want, err := a.Digest(text, salt)
	if err != nil {
		return err
	}
	if want == a.SHA256 {
		return nil
	}
	if a.Confidential && sha256.Sum256(text) == a.SHA256 {
		return fmt.Errorf("%w: algorithm.sha256 is the plain SHA-256 of this confidential algorithm, which lets anyone holding the contract confirm a guess of its text; "+
			"make a salted commitment with cleanroom algorithm commit, put it in algorithm.sha256 and have every participant sign the amended contract", ErrAlgorithmMismatch)
	}
	if a.Confidential {
		return fmt.Errorf("%w: the commitment of this text with this salt is %x; algorithm.sha256 is %x (is it the salt file the commitment was made with, and the exact query bytes?)",
			ErrAlgorithmMismatch, want, a.SHA256)
	}
	return fmt.Errorf("%w: its SHA-256 is %x; algorithm.sha256 is %x (the hash covers the exact bytes, including any final newline)",
		ErrAlgorithmMismatch, want, a.SHA256)
}
