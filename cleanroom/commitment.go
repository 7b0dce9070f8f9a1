package cleanroom

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"cleanroom.dev/cleanroom/internal/durable"
)

// SaltSize is the size of a commitment salt.
const SaltSize = 32

// Salt is the secret random value of a salted commitment. Whoever holds it
// can check a commitment against the data; whoever does not cannot test a
// guess of the data against the commitment.
type Salt [SaltSize]byte

// NewSalt returns a fresh random salt.
func NewSalt() Salt {
	var s Salt
	rand.Read(s[:]) // crypto/rand does not fail on supported platforms
	return s
}

// String returns the salt as 64 lowercase hex digits.
func (s Salt) String() string { return hex.EncodeToString(s[:]) }

// Commitment labels. Each purpose has its own, so a commitment made for one
// can never be taken for another.
const (
	// CommitmentAlgorithm labels the commitment a contract names for a
	// confidential algorithm's text.
	CommitmentAlgorithm = "cleanroom/algorithm-commitment/v1"
	// CommitmentResult labels the commitment a result statement names for
	// the plaintext result.
	CommitmentResult = "cleanroom/result-commitment/v1"
)

// Commit returns the salted commitment to data under label:
//
//	SHA-256(label ‖ 0x00 ‖ salt (32 bytes) ‖ data)
//
// It binds data (finding two data with one commitment means a SHA-256
// collision) and, with a secret uniformly random salt, hides it: without
// the salt, a guess of data cannot be tested against the commitment.
func Commit(label string, salt Salt, data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write([]byte{0})
	h.Write(salt[:])
	h.Write(data)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// CommitAlgorithm returns the commitment a contract names (as
// algorithm.sha256) for a confidential algorithm's exact text:
// Commit(CommitmentAlgorithm, salt, text).
func CommitAlgorithm(salt Salt, text []byte) [32]byte {
	return Commit(CommitmentAlgorithm, salt, text)
}

// saltFilePrefix starts a salt file. The version digit is part of it: a
// future format gets a new prefix and old readers refuse it.
const saltFilePrefix = "CLEANROOM-SALT-1:"

// ErrBadSalt reports a salt file that cannot be read or parsed.
var ErrBadSalt = errors.New("bad salt file")

// WriteSaltFile writes a fresh salt to path (mode 0600, written
// atomically) and returns it. It refuses to overwrite an existing file: a
// salt replaced after a contract named its commitment could never open it
// again.
func WriteSaltFile(path string) (Salt, error) {
	if _, err := os.Lstat(path); err == nil {
		return Salt{}, fmt.Errorf("%s already exists: refusing to overwrite a salt (read it with --salt instead)", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Salt{}, err
	}
	s := NewSalt()
	if err := durable.WriteFile(path, []byte(saltFilePrefix+s.String()+"\n"), 0o600); err != nil {
		return Salt{}, err
	}
	return s, nil
}

// CommitAlgorithmFile returns the salted commitment to text that a
// contract names as algorithm.sha256 for a confidential algorithm, with
// the salt kept in the salt file at path: read when the file exists, made
// fresh and written there (mode 0600) when it does not, so the same file
// always gives the same commitment. created reports a new salt file.
func CommitAlgorithmFile(text []byte, path string) (sum [32]byte, created bool, err error) {
	salt, err := ReadSaltFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		salt, err = WriteSaltFile(path)
		created = true
	}
	if err != nil {
		return sum, false, err
	}
	return CommitAlgorithm(salt, text), created, nil
}

// ReadSaltFile reads a salt file written by WriteSaltFile. Like a secret
// key, it refuses a file that group or others can read or write.
func ReadSaltFile(path string) (Salt, error) {
	var s Salt
	fi, err := os.Stat(path)
	if err != nil {
		return s, fmt.Errorf("reading salt: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return s, fmt.Errorf("%w: %s has mode %04o; a salt is secret and must not be accessible by group or others (run: chmod 600 %s)",
			ErrBadSalt, path, fi.Mode().Perm(), path)
	}
	if fi.Size() > 256 {
		return s, fmt.Errorf("%w: %s has %d bytes; a salt file is one short line", ErrBadSalt, path, fi.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("reading salt: %w", err)
	}
	if s, err = ParseSalt(strings.TrimRight(string(data), "\r\n")); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParseSalt parses the one line of a salt file: "CLEANROOM-SALT-1:"
// followed by 64 hex digits.
func ParseSalt(line string) (Salt, error) {
	var s Salt
	rest, ok := strings.CutPrefix(line, saltFilePrefix)
	if !ok {
		return s, fmt.Errorf("%w: a salt file holds one line starting %q (made by cleanroom algorithm commit)", ErrBadSalt, saltFilePrefix)
	}
	b, err := hex.DecodeString(rest)
	if err != nil || len(b) != SaltSize {
		return s, fmt.Errorf("%w: the salt must be %d hex digits after %q", ErrBadSalt, 2*SaltSize, saltFilePrefix)
	}
	copy(s[:], b)
	return s, nil
}
