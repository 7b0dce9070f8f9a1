// Package tlogtest holds what the tests of the audit log's writer
// (coordinator/internal/eventlog) and of its verifier (cleanroom/tlog)
// share: a fixed coordinator key, its checkpoint verifier, and signed notes
// the writer never makes. It protects nothing.
package tlogtest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
)

// secretKey is the fixed coordinator identity of the tests.
const secretKey = "CLEANROOM-SECRET-KEY-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-Pw"

// Identity returns the fixed coordinator identity of the tests.
func Identity() *cleanroom.Identity {
	id, err := cleanroom.ParseIdentity([]byte(secretKey))
	if err != nil {
		panic(err) // a constant that parses
	}
	return id
}

// Verifier returns the checkpoint verifier of Identity's log.
func Verifier(tb testing.TB) *tlog.Verifier {
	tb.Helper()
	v, err := tlog.NewCoordinatorVerifier(Identity().Public())
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// MustVerify verifies a checkpoint, failing the test if it does not.
func MustVerify(tb testing.TB, v *tlog.Verifier, raw []byte) *tlog.Checkpoint {
	tb.Helper()
	cp, err := v.VerifyCheckpoint(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return cp
}

// Context returns a context that ends with the test, after 60 s at most.
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// ed25519Signer signs notes, to make checkpoints the writer never would.
type ed25519Signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s ed25519Signer) Name() string                    { return s.name }
func (s ed25519Signer) KeyHash() uint32                 { return s.hash }
func (s ed25519Signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// NewSigner returns a note signer named name with key.
func NewSigner(tb testing.TB, name string, key ed25519.PrivateKey) note.Signer {
	tb.Helper()
	v, err := tlog.NewVerifier(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatal(err)
	}
	nv, err := note.NewVerifier(v.NoteVerifierKey())
	if err != nil {
		tb.Fatal(err)
	}
	return ed25519Signer{name: name, hash: nv.KeyHash(), key: key}
}

// SignNote signs text with signers.
func SignNote(tb testing.TB, text string, signers ...note.Signer) []byte {
	tb.Helper()
	b, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// GoldenSize is the number of entries of cleanroom/tlog's golden log.
const GoldenSize = 5

// GoldenEntry is entry i of the golden log.
func GoldenEntry(i int) []byte { return []byte(fmt.Sprintf("golden entry %d", i)) }

// LogSigner returns the note signer of Identity's log, as the
// coordinator's writer signs: its origin and the coordinator key.
func LogSigner(tb testing.TB) note.Signer {
	tb.Helper()
	return NewSigner(tb, tlog.Origin(Identity().Public()), Identity().Signer().(ed25519.PrivateKey))
}
