// Package tlog verifies Cleanroom's audit log: a Merkle-tree transparency
// log in the C2SP tlog-tiles layout whose checkpoints are C2SP signed notes
// made with the coordinator's Ed25519 key.
//
// Nothing the coordinator serves is taken on trust. A Verifier, built from
// the coordinator's public key (itself checked by remote attestation),
// verifies checkpoints; CheckConsistency proves that a new checkpoint extends
// one kept from an earlier visit and reports a rollback or a fork with the
// two checkpoints as evidence; VerifyEntries recomputes the whole tree from
// the entry bundles and checks every hash tile; VerifyInclusion checks one
// entry against a checkpoint offline. The formats are described in
// docs/log.md.
package tlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"cleanroom.dev/cleanroom/cleanroom"
	"golang.org/x/mod/sumdb/note"
)

// OriginPrefix starts the origin line of every Cleanroom coordinator's log.
// The rest of the origin is the coordinator key's fingerprint in hex.
const OriginPrefix = "cleanroom.dev/coordinator/"

// MaxCheckpointSize bounds the size of a signed checkpoint the parser
// accepts. Real ones are about 250 bytes.
const MaxCheckpointSize = 4096

// ErrBadCheckpoint reports a checkpoint that is malformed, not signed by the
// expected key, or for another log. Errors that wrap it say which.
var ErrBadCheckpoint = errors.New("bad checkpoint")

// Origin returns the origin of the log kept by the coordinator with public
// key pub: OriginPrefix followed by the key's fingerprint in hex. It is both
// the first line of every checkpoint and the name of the note signing key, so
// a checkpoint names the key that must have signed it, and a log cannot be
// passed off as another coordinator's.
func Origin(pub *cleanroom.PublicKey) string {
	return OriginPrefix + pub.Fingerprint().String()
}

// Verifier verifies checkpoints signed by one log's key. It is safe for
// concurrent use.
type Verifier struct {
	origin string
	key    ed25519.PublicKey
	nv     note.Verifier
}

// NewVerifier returns a Verifier for checkpoints of the log with the given
// origin, signed by key. The origin is also the note key name.
func NewVerifier(origin string, key ed25519.PublicKey) (*Verifier, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: log key has %d bytes, want an Ed25519 public key of %d", ErrBadCheckpoint, len(key), ed25519.PublicKeySize)
	}
	vkey, err := note.NewEd25519VerifierKey(origin, key)
	if err != nil {
		return nil, fmt.Errorf("%w: origin %q cannot be a note key name (no spaces or '+'): %v", ErrBadCheckpoint, origin, err)
	}
	nv, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	return &Verifier{origin: origin, key: bytes.Clone(key), nv: nv}, nil
}

// NewCoordinatorVerifier returns the Verifier for the log of the coordinator
// with public key pub (origin Origin(pub), key pub.SigningKey()). The caller
// must have checked pub, e.g. by verifying the coordinator's attestation.
func NewCoordinatorVerifier(pub *cleanroom.PublicKey) (*Verifier, error) {
	return NewVerifier(Origin(pub), pub.SigningKey())
}

// Origin returns the origin the Verifier accepts.
func (v *Verifier) Origin() string { return v.origin }

// NoteVerifierKey returns the verifier key in the text form of
// golang.org/x/mod/sumdb/note ("<origin>+<key hash>+<base64>"), for tools
// that check notes themselves.
func (v *Verifier) NoteVerifierKey() string {
	vkey, _ := note.NewEd25519VerifierKey(v.origin, v.key)
	return vkey
}

// Checkpoint is a checkpoint whose signature has been verified. Values come
// only from Verifier.VerifyCheckpoint; the functions of this package refuse
// any other.
type Checkpoint struct {
	origin string
	size   uint64
	root   [HashSize]byte
	raw    []byte
	ok     bool
}

// Origin returns the log's origin line.
func (c *Checkpoint) Origin() string { return c.origin }

// Size returns the number of entries the checkpoint commits to.
func (c *Checkpoint) Size() uint64 { return c.size }

// Root returns the RFC 6962 root hash of the first Size entries.
func (c *Checkpoint) Root() [HashSize]byte { return c.root }

// Bytes returns the signed note exactly as it was verified; keep these bytes
// as evidence.
func (c *Checkpoint) Bytes() []byte { return bytes.Clone(c.raw) }

// String returns a short human description: "size N, root HEX".
func (c *Checkpoint) String() string {
	if c == nil {
		return "<nil checkpoint>"
	}
	return fmt.Sprintf("size %d, root %x", c.size, c.root)
}

func (c *Checkpoint) check() error {
	if c == nil || !c.ok {
		return fmt.Errorf("%w: checkpoint was not verified (obtain it from Verifier.VerifyCheckpoint)", ErrBadCheckpoint)
	}
	return nil
}

// emptyRoot is the RFC 6962 root of the empty tree: SHA-256 of nothing.
var emptyRoot = sha256.Sum256(nil)

// VerifyCheckpoint parses a signed checkpoint strictly and verifies it. It
// accepts exactly the note
//
//	<origin>\n<size>\n<base64 root>\n\n— <origin> <base64(key hash ‖ signature)>\n
//
// with the Verifier's origin, a size in canonical decimal, a 32-byte root in
// canonical standard base64, no extension lines, and exactly one signature
// line, which must verify under the Verifier's key. Anything else is refused
// with an error wrapping ErrBadCheckpoint that says what was wrong.
func (v *Verifier) VerifyCheckpoint(raw []byte) (*Checkpoint, error) {
	bad := func(format string, args ...any) (*Checkpoint, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBadCheckpoint}, args...)...)
	}
	if len(raw) > MaxCheckpointSize {
		return bad("%d bytes, more than the %d a checkpoint may have", len(raw), MaxCheckpointSize)
	}
	n, err := note.Open(raw, note.VerifierList(v.nv))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return bad("not signed by the log key %s: %s", v.NoteVerifierKey(), describeSigs(unverified.Note.UnverifiedSigs, v.origin))
		case errors.As(err, &invalid):
			return bad("signature by %s does not verify: the checkpoint was altered or forged", v.origin)
		default:
			return bad("not a signed note (text, blank line, signature lines): %v", err)
		}
	}
	if len(n.UnverifiedSigs) > 0 {
		return bad("carries signatures by keys other than the log's (%s); only the log's own signature is accepted", describeSigs(n.UnverifiedSigs, v.origin))
	}
	if sigBlock := raw[len(n.Text)+1:]; bytes.Count(sigBlock, []byte("\n")) != 1 {
		return bad("has %d signature lines, want exactly one", bytes.Count(sigBlock, []byte("\n")))
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		return bad("body has %d lines, want origin, size and root hash", len(lines)-1)
	}
	if len(lines) > 4 {
		return bad("body has extension lines after the root hash; none are accepted")
	}
	if lines[0] != v.origin {
		return bad("origin is %q, want %q: this checkpoint is for another log", lines[0], v.origin)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return bad("size %q is not a decimal number in canonical form", lines[1])
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != HashSize || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return bad("root hash %q is not %d bytes in canonical base64", lines[2], HashSize)
	}
	cp := &Checkpoint{origin: lines[0], size: size, raw: bytes.Clone(raw), ok: true}
	copy(cp.root[:], root)
	if size == 0 && cp.root != emptyRoot {
		return bad("size 0 with root %x; the empty tree's root is SHA-256 of nothing", cp.root)
	}
	return cp, nil
}

func describeSigs(sigs []note.Signature, origin string) string {
	if len(sigs) == 0 {
		return "no signature lines"
	}
	var parts []string
	for _, s := range sigs {
		if s.Name == origin {
			parts = append(parts, fmt.Sprintf("signed by another key under the same name (key hash %08x)", s.Hash))
		} else {
			parts = append(parts, fmt.Sprintf("signed by %q (key hash %08x)", s.Name, s.Hash))
		}
	}
	return strings.Join(parts, "; ")
}
