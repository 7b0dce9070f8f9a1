// Package bundle implements result statements and result bundles: what a
// Cleanroom coordinator releases at the end of a run, and its offline
// verification from the platform's root keys down to the result bytes.
//
// A result statement (Statement) is a COSE_Sign1 by the coordinator's
// attested key over a canonical CBOR map naming the contract, the run, the
// algorithm, every dataset's upload (with the provider's signed upload
// statement), a salted commitment to the plaintext result, the digest of
// the encrypted result, the rows kept and suppressed, and the audit-log
// index of the run.started event.
//
// A result bundle (Bundle) carries the signed statement, the coordinator's
// attestation evidence and public key, the encrypted result (an envelope to
// every result recipient, see EncryptResult), and the run.started and
// run.finished log entries with their inclusion proofs under one signed
// checkpoint. Verify checks all of it against a contract, step by step,
// without any network access; Assemble is the coordinator's side, which
// builds a bundle and refuses to release one that would not verify.
//
// docs/bundle.md specifies the encodings and the verification algorithm.
package bundle

import (
	"bytes"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/canon"
)

// Version is the bundle format version written in every bundle. Version 2
// names a salted commitment to the result (Statement.ResultCommitment)
// where version 1 named its plain SHA-256, and its encrypted result starts
// with the commitment's salt.
const Version = 2

// Size limits of the parts of a bundle.
const (
	// MaxKeySize bounds the coordinator key field (a raw public key is
	// 1248 bytes).
	MaxKeySize = 4096
	// MaxEntrySize bounds a log entry: the largest entry the log holds.
	MaxEntrySize = tlog.MaxEntrySize
	// MaxProofSize bounds an encoded inclusion proof: magic, index,
	// checkpoint of at most tlog.MaxCheckpointSize bytes, 64 hashes.
	MaxProofSize = 34 + 8 + 2 + tlog.MaxCheckpointSize + 1 + 64*tlog.HashSize
	// MaxSize bounds a whole encoded bundle.
	MaxSize = MaxResultSize + cleanroom.MaxStatementSize + attest.MaxEvidenceSize + MaxKeySize + 2*(MaxEntrySize+MaxProofSize) + 1024
)

// Bundle is a result bundle. Its fields hold the parts exactly as they
// travel; Parse checks only the container, and Verify parses and checks
// every part, so that a damaged part is reported by the step that checks
// it.
type Bundle struct {
	// Statement is the coordinator's signed result statement (COSE_Sign1).
	Statement []byte
	// Evidence is the coordinator's attestation evidence in the encoding
	// of package attest; its REPORT_DATA binds CoordinatorKey.
	Evidence []byte
	// CoordinatorKey is the coordinator's raw public key
	// (cleanroom.PublicKey.Bytes).
	CoordinatorKey []byte
	// EncryptedResult is the result envelope (EncryptResult).
	EncryptedResult []byte
	// RunStarted and RunFinished are the run's two audit-log entries with
	// their inclusion proofs, both under the same signed checkpoint.
	RunStarted  LogEntry
	RunFinished LogEntry
}

// LogEntry is an audit-log entry with its inclusion proof.
type LogEntry struct {
	// Entry is the event (cleanroom/events) exactly as appended.
	Entry []byte
	// Proof is the encoded tlog.InclusionProof of Entry.
	Proof []byte
}

// bundleWire is the CBOR form of a Bundle.
type bundleWire struct {
	Version         uint64       `cbor:"version"`
	Statement       []byte       `cbor:"statement"`
	Evidence        []byte       `cbor:"evidence"`
	CoordinatorKey  []byte       `cbor:"coordinator_key"`
	EncryptedResult []byte       `cbor:"encrypted_result"`
	RunStarted      logEntryWire `cbor:"run_started"`
	RunFinished     logEntryWire `cbor:"run_finished"`
}

type logEntryWire struct {
	Entry []byte `cbor:"entry"`
	Proof []byte `cbor:"proof"`
}

// check validates the sizes of the parts.
func (b *Bundle) check() error {
	for _, f := range []struct {
		name string
		v    []byte
		max  int
	}{
		{"statement", b.Statement, cleanroom.MaxStatementSize},
		{"evidence", b.Evidence, attest.MaxEvidenceSize},
		{"coordinator_key", b.CoordinatorKey, MaxKeySize},
		{"encrypted_result", b.EncryptedResult, MaxResultSize},
		{"run_started.entry", b.RunStarted.Entry, MaxEntrySize},
		{"run_started.proof", b.RunStarted.Proof, MaxProofSize},
		{"run_finished.entry", b.RunFinished.Entry, MaxEntrySize},
		{"run_finished.proof", b.RunFinished.Proof, MaxProofSize},
	} {
		if len(f.v) == 0 || len(f.v) > f.max {
			return malformed("bundle field %s has %d bytes, want 1..%d", f.name, len(f.v), f.max)
		}
	}
	return nil
}

// Marshal returns the bundle's encoding: a CBOR map with text keys in core
// deterministic encoding (RFC 8949 §4.2.1), as docs/bundle.md specifies.
func (b *Bundle) Marshal() ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	return canon.Marshal(bundleWire{
		Version:         Version,
		Statement:       b.Statement,
		Evidence:        b.Evidence,
		CoordinatorKey:  b.CoordinatorKey,
		EncryptedResult: b.EncryptedResult,
		RunStarted:      logEntryWire(b.RunStarted),
		RunFinished:     logEntryWire(b.RunFinished),
	})
}

// bundleDecoder decodes bundles strictly.
var bundleDecoder = canon.NewDecoder(canon.Limits{MaxNestedLevels: 4, MaxArrayElements: 16, MaxMapPairs: 16})

// Parse decodes a bundle strictly: at most MaxSize bytes; a CBOR map with
// exactly the bundle's fields (and the two entry maps with exactly theirs),
// each a byte string of the allowed size; version 2; no tags, indefinite
// lengths, duplicate keys or trailing bytes; and byte for byte the
// canonical encoding Marshal produces. It verifies nothing (see Verify).
// A version 1 bundle is refused with a message that says what to do.
func Parse(data []byte) (*Bundle, error) {
	if len(data) > MaxSize {
		return nil, malformed("bundle of %d bytes exceeds %d", len(data), MaxSize)
	}
	if len(data) == 0 {
		return nil, malformed("empty bundle")
	}
	if data[0]&0xe0 != 0xa0 {
		return nil, malformed("a bundle is a CBOR map; this starts with byte 0x%02x (is it a result envelope, not a bundle?)", data[0])
	}
	var w bundleWire
	rest, err := bundleDecoder.UnmarshalFirst(data, &w)
	if err != nil {
		return nil, malformed("bundle is not a CBOR map of the bundle's fields: %v", err)
	}
	if len(rest) != 0 {
		return nil, malformed("bundle has %d bytes after its end", len(rest))
	}
	if w.Version == 1 {
		return nil, malformed("bundle version 1 is not supported: its statement names the unsalted SHA-256 of the result, which lets anyone who reads it test a guess of the result; " +
			"this program reads version 2 only: verify the bundle with the cleanroom release that fetched it, or run the contract again on an up-to-date coordinator")
	}
	if w.Version != Version {
		return nil, malformed("bundle version %d is not supported (this program reads version %d)", w.Version, Version)
	}
	b := &Bundle{
		Statement:       w.Statement,
		Evidence:        w.Evidence,
		CoordinatorKey:  w.CoordinatorKey,
		EncryptedResult: w.EncryptedResult,
		RunStarted:      LogEntry(w.RunStarted),
		RunFinished:     LogEntry(w.RunFinished),
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	again, err := b.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, data) {
		return nil, malformed("bundle is not in canonical deterministic CBOR encoding, or a field is missing")
	}
	return b, nil
}

// String summarises the bundle's sizes, for messages.
func (b *Bundle) String() string {
	return fmt.Sprintf("result bundle (statement %d bytes, evidence %d bytes, encrypted result %d bytes)",
		len(b.Statement), len(b.Evidence), len(b.EncryptedResult))
}
