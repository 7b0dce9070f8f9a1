// Package upload implements upload statements: a data provider's signed
// record of the envelope it uploaded for a dataset of a contract. The
// coordinator verifies and logs each statement, so auditors can see who
// uploaded what, and the result statement names it.
//
// A statement is a COSE_Sign1 (cleanroom.SignStatement) with content type
// cleanroom.ContentTypeUploadStatement (version 2) over a deterministic CBOR
// map; the fields are specified in docs/envelope.md ("Upload statements").
// Version 1 statements, which did not sign the envelope's header digest,
// are refused.
package upload

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/fxamacker/cbor/v2"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/internal/canon"
)

// Errors of Verify and ParsePayload. Signature failures wrap
// cleanroom.ErrBadSignature instead.
var (
	// ErrMalformed reports a payload that is not a well-formed upload
	// statement: not canonical CBOR, a missing, unknown or mistyped field,
	// or a value out of range.
	ErrMalformed = errors.New("malformed upload statement")
	// ErrMismatch reports a valid statement about another contract,
	// dataset, envelope or schema than the one expected.
	ErrMismatch = errors.New("upload statement is not the one expected")
	// ErrOldVersion reports a statement of a version this package no
	// longer accepts.
	ErrOldVersion = errors.New("upload statement of an old version")
)

// contentTypeV1 is the content type of version 1 statements, which did not
// sign the envelope's header digest. They are refused with ErrOldVersion.
const contentTypeV1 = "application/vnd.cleanroom.upload-statement.v1+cbor"

// Statement is what a data provider attests to by signing: it uploaded, for
// a contract's dataset, the envelope whose bytes hash to CiphertextSHA256
// and whose header hashes to HeaderSHA256, holding RowCount rows of the
// schema with digest SchemaDigest.
type Statement struct {
	ContractID       [32]byte
	DatasetID        string
	CiphertextSHA256 [32]byte // SHA-256 of the whole envelope file
	HeaderSHA256     [32]byte // SHA-256 of the envelope's header: its segments' additional data
	CiphertextSize   int64    // size of the envelope file in bytes
	PlaintextSize    int64    // size of the Arrow IPC stream sealed inside
	SegmentSize      int      // the envelope's segment size
	RowCount         int64
	SchemaDigest     [32]byte
}

// wire is the CBOR form. Every field is required.
type wire struct {
	ContractID       []byte `cbor:"contract_id"`
	DatasetID        string `cbor:"dataset_id"`
	CiphertextSHA256 []byte `cbor:"ciphertext_sha256"`
	HeaderSHA256     []byte `cbor:"header_sha256"`
	CiphertextSize   uint64 `cbor:"ciphertext_size"`
	PlaintextSize    uint64 `cbor:"plaintext_size"`
	SegmentSize      uint64 `cbor:"segment_size"`
	RowCount         uint64 `cbor:"row_count"`
	SchemaDigest     []byte `cbor:"schema_digest"`
}

var fieldNames = []string{"ciphertext_sha256", "ciphertext_size", "contract_id", "dataset_id", "header_sha256", "plaintext_size", "row_count", "schema_digest", "segment_size"}

// decoder decodes statements strictly; encoding is canon's deterministic
// CBOR.
var decoder = canon.NewDecoder(canon.Limits{MaxNestedLevels: 4})

// FromEnvelope returns the statement for a dataset envelope that a writer
// has just finished, with the row count of the Arrow data sealed in it.
func FromEnvelope(sum envelope.Summary, rowCount int64) (Statement, error) {
	h := sum.Header
	if h == nil || h.Kind != envelope.KindDataset {
		return Statement{}, errors.New("upload: the envelope is not a dataset envelope")
	}
	s := Statement{
		ContractID:       h.ContractID,
		DatasetID:        h.ObjectID,
		CiphertextSHA256: sum.SHA256,
		HeaderSHA256:     h.SHA256(),
		CiphertextSize:   sum.Size,
		PlaintextSize:    sum.PlaintextSize,
		SegmentSize:      h.SegmentSize,
		RowCount:         rowCount,
		SchemaDigest:     h.SchemaDigest,
	}
	return s, s.check()
}

// check validates the values of a statement.
func (s *Statement) check() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrMalformed, field, fmt.Sprintf(format, args...))
	}
	switch {
	case s.ContractID == [32]byte{}:
		return bad("contract_id", "is all zeros")
	case envelope.CheckObjectID(s.DatasetID) != nil:
		return bad("dataset_id", "%q: %v", s.DatasetID, envelope.CheckObjectID(s.DatasetID))
	case s.SegmentSize < envelope.MinSegmentSize || s.SegmentSize > envelope.MaxSegmentSize:
		return bad("segment_size", "%d is outside %d..%d", s.SegmentSize, envelope.MinSegmentSize, envelope.MaxSegmentSize)
	case s.RowCount < 0:
		return bad("row_count", "%d is negative", s.RowCount)
	case s.PlaintextSize < 0 || s.CiphertextSize < 0:
		return bad("plaintext_size", "sizes must not be negative")
	}
	// The envelope body is at least the plaintext plus one tag per segment.
	segments := max(1, (s.PlaintextSize+int64(s.SegmentSize)-1)/int64(s.SegmentSize))
	if s.CiphertextSize < s.PlaintextSize+segments*envelope.TagSize {
		return bad("ciphertext_size", "%d bytes cannot hold %d bytes of plaintext in segments of %d", s.CiphertextSize, s.PlaintextSize, s.SegmentSize)
	}
	return nil
}

// Payload returns the canonical encoding of the statement: a CBOR map with
// text keys in deterministic encoding (RFC 8949 §4.2.1).
func (s *Statement) Payload() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return canon.Marshal(wire{
		ContractID:       s.ContractID[:],
		DatasetID:        s.DatasetID,
		CiphertextSHA256: s.CiphertextSHA256[:],
		HeaderSHA256:     s.HeaderSHA256[:],
		CiphertextSize:   uint64(s.CiphertextSize),
		PlaintextSize:    uint64(s.PlaintextSize),
		SegmentSize:      uint64(s.SegmentSize),
		RowCount:         uint64(s.RowCount),
		SchemaDigest:     s.SchemaDigest[:],
	})
}

// Sign returns the statement signed by the provider's identity as a
// COSE_Sign1 with content type cleanroom.ContentTypeUploadStatement.
func (s *Statement) Sign(provider *cleanroom.Identity) ([]byte, error) {
	payload, err := s.Payload()
	if err != nil {
		return nil, err
	}
	return cleanroom.SignStatement(provider, cleanroom.ContentTypeUploadStatement, payload)
}

// ParsePayload decodes a statement payload strictly: it must be a CBOR map
// holding exactly the statement's fields with the right types, in the
// canonical encoding Payload produces, and its values must be in range.
func ParsePayload(payload []byte) (*Statement, error) {
	var fields map[string]cbor.RawMessage
	if err := decoder.Unmarshal(payload, &fields); err != nil {
		return nil, fmt.Errorf("%w: not a CBOR map with text keys: %v", ErrMalformed, err)
	}
	for name := range fields {
		if !slices.Contains(fieldNames, name) {
			return nil, fmt.Errorf("%w: unknown field %q", ErrMalformed, name)
		}
	}
	for _, name := range fieldNames {
		if _, ok := fields[name]; !ok {
			return nil, fmt.Errorf("%w: missing field %q", ErrMalformed, name)
		}
	}
	var w wire
	if err := decoder.Unmarshal(payload, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	s := &Statement{DatasetID: w.DatasetID}
	for _, f := range []struct {
		name string
		src  []byte
		dst  *[32]byte
	}{{"contract_id", w.ContractID, &s.ContractID}, {"ciphertext_sha256", w.CiphertextSHA256, &s.CiphertextSHA256},
		{"header_sha256", w.HeaderSHA256, &s.HeaderSHA256}, {"schema_digest", w.SchemaDigest, &s.SchemaDigest}} {
		if len(f.src) != 32 {
			return nil, fmt.Errorf("%w: %s has %d bytes, want 32", ErrMalformed, f.name, len(f.src))
		}
		copy(f.dst[:], f.src)
	}
	for _, f := range []struct {
		name string
		v    uint64
	}{{"ciphertext_size", w.CiphertextSize}, {"plaintext_size", w.PlaintextSize}, {"row_count", w.RowCount}, {"segment_size", w.SegmentSize}} {
		if f.v > 1<<62 {
			return nil, fmt.Errorf("%w: %s %d is out of range", ErrMalformed, f.name, f.v)
		}
	}
	s.CiphertextSize, s.PlaintextSize, s.RowCount = int64(w.CiphertextSize), int64(w.PlaintextSize), int64(w.RowCount)
	s.SegmentSize = int(min(w.SegmentSize, envelope.MaxSegmentSize+1))
	if err := s.check(); err != nil {
		return nil, err
	}
	canonical, err := s.Payload()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canonical, payload) {
		return nil, fmt.Errorf("%w: the payload is not in canonical deterministic CBOR encoding", ErrMalformed)
	}
	return s, nil
}

// Expect pins what a verifier requires a statement to say. ContractID and
// DatasetID must be set; CiphertextSHA256, HeaderSHA256 and SchemaDigest
// are checked when not nil (the coordinator sets the first two to the
// digests of the envelope and the header it received).
type Expect struct {
	ContractID       [32]byte
	DatasetID        string
	CiphertextSHA256 *[32]byte
	HeaderSHA256     *[32]byte
	SchemaDigest     *[32]byte
}

// Verify checks an upload statement: a COSE_Sign1 with the upload
// statement content type, signed by provider, whose payload parses
// strictly and matches want. It returns the statement only if all hold.
func Verify(stmt []byte, provider *cleanroom.PublicKey, want Expect) (*Statement, error) {
	if provider == nil {
		return nil, errors.New("upload: no provider key given")
	}
	if want.ContractID == [32]byte{} || want.DatasetID == "" {
		return nil, errors.New("upload: Expect.ContractID and Expect.DatasetID must be set")
	}
	st, err := cleanroom.DecodeStatement(stmt)
	if err != nil {
		return nil, fmt.Errorf("upload statement: %w", err)
	}
	if st.ContentType == contentTypeV1 {
		return nil, fmt.Errorf("%w: it is version 1 (%s), which does not sign the envelope's header digest and is no longer accepted; encrypt and upload the dataset again with this version of cleanroom (cleanroom dataset upload), which signs version 2",
			ErrOldVersion, contentTypeV1)
	}
	if err := st.Verify(provider, cleanroom.ContentTypeUploadStatement); err != nil {
		return nil, fmt.Errorf("upload statement: %w", err)
	}
	s, err := ParsePayload(st.Payload)
	if err != nil {
		return nil, err
	}
	mismatch := func(field string, got, want []byte) error {
		return fmt.Errorf("%w: %s is %s, expected %s", ErrMismatch, field, hex.EncodeToString(got), hex.EncodeToString(want))
	}
	switch {
	case s.ContractID != want.ContractID:
		return nil, mismatch("contract_id", s.ContractID[:], want.ContractID[:])
	case s.DatasetID != want.DatasetID:
		return nil, fmt.Errorf("%w: dataset_id is %q, expected %q", ErrMismatch, s.DatasetID, want.DatasetID)
	case want.CiphertextSHA256 != nil && s.CiphertextSHA256 != *want.CiphertextSHA256:
		return nil, mismatch("ciphertext_sha256", s.CiphertextSHA256[:], want.CiphertextSHA256[:])
	case want.HeaderSHA256 != nil && s.HeaderSHA256 != *want.HeaderSHA256:
		return nil, mismatch("header_sha256", s.HeaderSHA256[:], want.HeaderSHA256[:])
	case want.SchemaDigest != nil && s.SchemaDigest != *want.SchemaDigest:
		return nil, mismatch("schema_digest", s.SchemaDigest[:], want.SchemaDigest[:])
	}
	return s, nil
}
