package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/fxamacker/cbor/v2"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/canon"
)

// Statement is what the coordinator attests to, with its attested key, when
// it releases a run's result: for run RunID (the RunNumber-th run) of a
// contract, it ran the algorithm with digest AlgorithmSHA256 over exactly
// these uploads, the output policy kept RowsKept rows and suppressed
// RowsSuppressed, the plaintext result (an Arrow IPC stream) is the one
// ResultCommitment commits to (with a salt only the recipients learn, inside
// the encrypted result), and it is sealed to the Recipients in the envelope
// that hashes to EncryptedResultSHA256. RunStartedIndex is the audit-log index
// of the run's run.started event. docs/bundle.md specifies the encoding.
type Statement struct {
	ContractID [32]byte
	RunID      string // 32 lowercase hex digits, as events.NewID makes
	RunNumber  int64  // 1 for the contract's first run
	// AlgorithmSHA256 is the contract's algorithm.sha256: the text's
	// SHA-256, or a confidential algorithm's salted commitment.
	AlgorithmSHA256 [32]byte
	// Datasets lists every dataset of the contract, in contract order,
	// with the upload the run used.
	Datasets []Dataset
	// ResultCommitment is CommitResult(salt, plaintext Arrow IPC stream),
	// the salt being the first 32 bytes of the encrypted result's
	// plaintext.
	ResultCommitment      [32]byte
	EncryptedResultSHA256 [32]byte // of the whole result envelope
	EncryptedResultSize   int64    // of the whole result envelope
	RowsKept              int64
	RowsSuppressed        int64
	Time                  time.Time // when the coordinator signed; kept to the nanosecond, in UTC
	RunStartedIndex       uint64
	// Recipients lists the contract's result recipients, in contract
	// order, with the key each result stanza is for.
	Recipients []Recipient
	// Parameters are the values the run bound to the algorithm's
	// parameters (algorithm.parameters), name → canonical text, as its
	// run.started logged them. The field is absent when there are none.
	Parameters map[string]string
}

// Dataset is one dataset's upload as a result statement names it.
type Dataset struct {
	ID               string
	CiphertextSHA256 [32]byte // SHA-256 of the dataset envelope
	RowCount         int64
	// UploadStatement is the provider's signed upload statement
	// (cleanroom/upload), byte for byte as the coordinator received it.
	UploadStatement []byte
}

// Recipient is a result recipient and the fingerprint of its key.
type Recipient struct {
	Participant string
	Key         cleanroom.Fingerprint
}

// Limits of a statement.
const (
	// MaxDatasets and MaxRecipients bound the lists, as the contract does.
	MaxDatasets   = contracts.MaxDatasets
	MaxRecipients = envelope.MaxRecipients
	// maxCount bounds every integer field.
	maxCount = 1 << 62
)

// ErrMalformed reports bytes that are not a well-formed result statement
// payload or result bundle: not canonical CBOR, a missing, unknown or
// mistyped field, a value out of range, or over a size limit.
var ErrMalformed = errors.New("malformed result bundle")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

var runIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// statementWire is the CBOR form of a Statement. Every field is required.
type statementWire struct {
	ContractID            []byte          `cbor:"contract_id"`
	RunID                 string          `cbor:"run_id"`
	RunNumber             uint64          `cbor:"run_number"`
	AlgorithmSHA256       []byte          `cbor:"algorithm_sha256"`
	Datasets              []datasetWire   `cbor:"datasets"`
	ResultCommitment      []byte          `cbor:"result_commitment"`
	EncryptedResultSHA256 []byte          `cbor:"encrypted_result_sha256"`
	EncryptedResultSize   uint64          `cbor:"encrypted_result_size"`
	RowsKept              uint64          `cbor:"rows_kept"`
	RowsSuppressed        uint64          `cbor:"rows_suppressed"`
	Time                  string          `cbor:"time"`
	RunStartedIndex       uint64          `cbor:"run_started_index"`
	Recipients            []recipientWire `cbor:"recipients"`
	// Parameters is optional: absent when the run has none, so statements
	// of contracts without parameters keep their encoding.
	Parameters map[string]string `cbor:"parameters,omitempty"`
}

type datasetWire struct {
	DatasetID        string `cbor:"dataset_id"`
	CiphertextSHA256 []byte `cbor:"ciphertext_sha256"`
	RowCount         uint64 `cbor:"row_count"`
	UploadStatement  []byte `cbor:"upload_statement"`
}

type recipientWire struct {
	Participant string `cbor:"participant"`
	Key         []byte `cbor:"key"`
}

var statementFields = []string{
	"algorithm_sha256", "contract_id", "datasets", "encrypted_result_sha256", "encrypted_result_size",
	"recipients", "result_commitment", "rows_kept", "rows_suppressed", "run_id", "run_number",
	"run_started_index", "time",
}

// optionalStatementFields may be absent.
var optionalStatementFields = []string{"parameters"}

// decoder decodes statements strictly; encoding is canon's deterministic
// CBOR.
var decoder = canon.NewDecoder(canon.Limits{MaxNestedLevels: 4, MaxArrayElements: max(MaxDatasets, MaxRecipients), MaxMapPairs: max(32, contracts.MaxParameters)})

// check validates the values of a statement on their own (not against a
// contract: Verify does that).
func (s *Statement) check() error {
	bad := func(field, format string, args ...any) error {
		return malformed("result statement: %s: %s", field, fmt.Sprintf(format, args...))
	}
	switch {
	case s.ContractID == [32]byte{}:
		return bad("contract_id", "is all zeros")
	case !runIDPattern.MatchString(s.RunID):
		return bad("run_id", "%q is not 32 lowercase hex digits", s.RunID)
	case s.RunNumber < 1 || s.RunNumber > maxCount:
		return bad("run_number", "%d is outside 1..2^62", s.RunNumber)
	case len(s.Datasets) == 0 || len(s.Datasets) > MaxDatasets:
		return bad("datasets", "%d datasets, want 1..%d", len(s.Datasets), MaxDatasets)
	case s.EncryptedResultSize < 0 || s.EncryptedResultSize > maxCount:
		return bad("encrypted_result_size", "%d is out of range", s.EncryptedResultSize)
	case s.RowsKept < 0 || s.RowsKept > maxCount:
		return bad("rows_kept", "%d is out of range", s.RowsKept)
	case s.RowsSuppressed < 0 || s.RowsSuppressed > maxCount:
		return bad("rows_suppressed", "%d is out of range", s.RowsSuppressed)
	case s.Time.IsZero():
		return bad("time", "is not set")
	case s.Time.Year() < 1 || s.Time.Year() > 9999:
		return bad("time", "year %d is outside 1..9999", s.Time.Year())
	case s.RunStartedIndex > maxCount:
		return bad("run_started_index", "%d is out of range", s.RunStartedIndex)
	case len(s.Recipients) == 0 || len(s.Recipients) > MaxRecipients:
		return bad("recipients", "%d recipients, want 1..%d", len(s.Recipients), MaxRecipients)
	}
	for i, d := range s.Datasets {
		field := fmt.Sprintf("datasets[%d]", i)
		if err := envelope.CheckObjectID(d.ID); err != nil {
			return bad(field+".dataset_id", "%q: %v", d.ID, err)
		}
		for _, o := range s.Datasets[:i] {
			if o.ID == d.ID {
				return bad(field+".dataset_id", "%q appears twice", d.ID)
			}
		}
		if d.RowCount < 0 || d.RowCount > maxCount {
			return bad(field+".row_count", "%d is out of range", d.RowCount)
		}
		if len(d.UploadStatement) == 0 || len(d.UploadStatement) > cleanroom.MaxStatementSize {
			return bad(field+".upload_statement", "has %d bytes, want 1..%d", len(d.UploadStatement), cleanroom.MaxStatementSize)
		}
	}
	if s.Parameters != nil && len(s.Parameters) == 0 {
		return bad("parameters", "is present but empty; it is absent when the run has no parameters")
	}
	if len(s.Parameters) > contracts.MaxParameters {
		return bad("parameters", "%d parameters, want at most %d", len(s.Parameters), contracts.MaxParameters)
	}
	for name, v := range s.Parameters {
		if name == "" || len(name) > 63 || len(v) > contracts.MaxParameterValue {
			return bad("parameters", "parameter %.70q or its value is out of bounds", name)
		}
	}
	for i, r := range s.Recipients {
		field := fmt.Sprintf("recipients[%d]", i)
		if r.Participant == "" || len(r.Participant) > 64 {
			return bad(field+".participant", "%q is not a participant id", r.Participant)
		}
		for _, o := range s.Recipients[:i] {
			if o.Participant == r.Participant {
				return bad(field+".participant", "%q appears twice", r.Participant)
			}
		}
	}
	return nil
}

// timeText is the one text form of a statement's time: RFC 3339 in UTC
// with as many fractional digits as needed (none for whole seconds).
func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Payload returns the canonical encoding of the statement: a CBOR map with
// text keys in core deterministic encoding (RFC 8949 §4.2.1).
func (s *Statement) Payload() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	w := statementWire{
		ContractID:            s.ContractID[:],
		RunID:                 s.RunID,
		RunNumber:             uint64(s.RunNumber),
		AlgorithmSHA256:       s.AlgorithmSHA256[:],
		ResultCommitment:      s.ResultCommitment[:],
		EncryptedResultSHA256: s.EncryptedResultSHA256[:],
		EncryptedResultSize:   uint64(s.EncryptedResultSize),
		RowsKept:              uint64(s.RowsKept),
		RowsSuppressed:        uint64(s.RowsSuppressed),
		Time:                  timeText(s.Time),
		RunStartedIndex:       s.RunStartedIndex,
		Datasets:              make([]datasetWire, len(s.Datasets)),
		Recipients:            make([]recipientWire, len(s.Recipients)),
		Parameters:            s.Parameters,
	}
	for i, d := range s.Datasets {
		w.Datasets[i] = datasetWire{DatasetID: d.ID, CiphertextSHA256: d.CiphertextSHA256[:], RowCount: uint64(d.RowCount), UploadStatement: d.UploadStatement}
	}
	for i, r := range s.Recipients {
		w.Recipients[i] = recipientWire{Participant: r.Participant, Key: r.Key[:]}
	}
	return canon.Marshal(w)
}

// Sign returns the statement signed by the coordinator's identity: a
// COSE_Sign1 (cleanroom.SignStatement) with content type
// cleanroom.ContentTypeResultStatement. It refuses a statement that is not
// well formed or whose signed form exceeds cleanroom.MaxStatementSize.
func (s *Statement) Sign(coordinator *cleanroom.Identity) ([]byte, error) {
	payload, err := s.Payload()
	if err != nil {
		return nil, err
	}
	signed, err := cleanroom.SignStatement(coordinator, cleanroom.ContentTypeResultStatement, payload)
	if err != nil {
		return nil, err
	}
	if len(signed) > cleanroom.MaxStatementSize {
		return nil, fmt.Errorf("result statement: %d bytes signed exceed the %d-byte limit of statements (are the upload statements unusually large?)",
			len(signed), cleanroom.MaxStatementSize)
	}
	return signed, nil
}

// ParseStatement decodes a result statement payload (the content of the
// COSE_Sign1) strictly: a CBOR map with exactly the statement's fields and
// types, no tags, no indefinite lengths, no duplicate keys, byte for byte
// the canonical encoding Payload produces, with values in range. It
// verifies nothing: VerifyStatement checks the signature first.
func ParseStatement(payload []byte) (*Statement, error) {
	if len(payload) > cleanroom.MaxStatementSize {
		return nil, malformed("result statement of %d bytes exceeds %d", len(payload), cleanroom.MaxStatementSize)
	}
	var fields map[string]cbor.RawMessage
	if err := decoder.Unmarshal(payload, &fields); err != nil {
		return nil, malformed("result statement is not a CBOR map with text keys: %v", err)
	}
	for name := range fields {
		if !slices.Contains(statementFields, name) && !slices.Contains(optionalStatementFields, name) {
			return nil, malformed("result statement: unknown field %q", name)
		}
	}
	for _, name := range statementFields {
		if _, ok := fields[name]; !ok {
			return nil, malformed("result statement: missing field %q", name)
		}
	}
	var w statementWire
	if err := decoder.Unmarshal(payload, &w); err != nil {
		return nil, malformed("result statement: %v", err)
	}
	s := &Statement{RunID: w.RunID, RunStartedIndex: w.RunStartedIndex, Parameters: w.Parameters}
	digest := func(name string, src []byte, dst *[32]byte) error {
		if len(src) != 32 {
			return malformed("result statement: %s has %d bytes, want 32", name, len(src))
		}
		copy(dst[:], src)
		return nil
	}
	for _, f := range []struct {
		name string
		src  []byte
		dst  *[32]byte
	}{
		{"contract_id", w.ContractID, &s.ContractID},
		{"algorithm_sha256", w.AlgorithmSHA256, &s.AlgorithmSHA256},
		{"result_commitment", w.ResultCommitment, &s.ResultCommitment},
		{"encrypted_result_sha256", w.EncryptedResultSHA256, &s.EncryptedResultSHA256},
	} {
		if err := digest(f.name, f.src, f.dst); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		v    uint64
		dst  *int64
	}{
		{"run_number", w.RunNumber, &s.RunNumber},
		{"encrypted_result_size", w.EncryptedResultSize, &s.EncryptedResultSize},
		{"rows_kept", w.RowsKept, &s.RowsKept},
		{"rows_suppressed", w.RowsSuppressed, &s.RowsSuppressed},
	} {
		if f.v > maxCount {
			return nil, malformed("result statement: %s %d is out of range", f.name, f.v)
		}
		*f.dst = int64(f.v)
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return nil, malformed("result statement: time %q is not RFC 3339: %v", w.Time, err)
	}
	if timeText(t) != w.Time {
		return nil, malformed("result statement: time %q is not in the canonical form %q (UTC, no trailing zeros)", w.Time, timeText(t))
	}
	s.Time = t.UTC()
	for i, d := range w.Datasets {
		ds := Dataset{ID: d.DatasetID, UploadStatement: d.UploadStatement}
		if err := digest(fmt.Sprintf("datasets[%d].ciphertext_sha256", i), d.CiphertextSHA256, &ds.CiphertextSHA256); err != nil {
			return nil, err
		}
		if d.RowCount > maxCount {
			return nil, malformed("result statement: datasets[%d].row_count %d is out of range", i, d.RowCount)
		}
		ds.RowCount = int64(d.RowCount)
		s.Datasets = append(s.Datasets, ds)
	}
	for i, r := range w.Recipients {
		rc := Recipient{Participant: r.Participant}
		if len(r.Key) != len(rc.Key) {
			return nil, malformed("result statement: recipients[%d].key has %d bytes, want %d", i, len(r.Key), len(rc.Key))
		}
		copy(rc.Key[:], r.Key)
		s.Recipients = append(s.Recipients, rc)
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	canonical, err := s.Payload()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canonical, payload) {
		return nil, malformed("result statement is not in canonical deterministic CBOR encoding (or a nested field is missing)")
	}
	return s, nil
}

// contentTypeResultStatementV1 is the content type of the first result
// statement format, which named the unsalted SHA-256 of the result.
const contentTypeResultStatementV1 = "application/vnd.cleanroom.result-statement.v1+cbor"

// errStatementV1 refuses a statement of the first format.
var errStatementV1 = fmt.Errorf("%w: result statement format v1 (%s) names the unsalted SHA-256 of the result, which lets anyone who reads it test a guess of the result; "+
	"this program reads only format v2 (%s): verify it with the cleanroom release that fetched it, or run the contract again on an up-to-date coordinator",
	ErrMalformed, contentTypeResultStatementV1, cleanroom.ContentTypeResultStatement)

// VerifyStatement checks a signed result statement: a COSE_Sign1 with the
// result statement content type, signed by the coordinator key (which the
// caller has checked by attestation), whose payload parses strictly. It
// returns the statement only if all hold. Signature failures wrap
// cleanroom.ErrBadSignature; payload failures wrap ErrMalformed.
func VerifyStatement(signed []byte, coordinator *cleanroom.PublicKey) (*Statement, error) {
	if coordinator == nil {
		return nil, errors.New("bundle: no coordinator key given")
	}
	st, err := cleanroom.DecodeStatement(signed)
	if err != nil {
		return nil, err
	}
	if st.ContentType == contentTypeResultStatementV1 {
		return nil, errStatementV1
	}
	if err := st.Verify(coordinator, cleanroom.ContentTypeResultStatement); err != nil {
		return nil, err
	}
	return ParseStatement(st.Payload)
}

// Recipients returns the result recipients of a contract in contract order
// with their key fingerprints, as a statement names them.
func Recipients(c *contracts.Contract) ([]Recipient, error) {
	out := make([]Recipient, 0, len(c.Output.Recipients))
	for _, id := range c.Output.Recipients {
		p := c.Participant(id)
		if p == nil || p.PublicKey == nil {
			return nil, fmt.Errorf("contract %s names result recipient %q, who is not a participant with a key", c.ID(), id)
		}
		out = append(out, Recipient{Participant: id, Key: p.PublicKey.Fingerprint()})
	}
	return out, nil
}
