// Package events defines the entries of the coordinator's audit log: one
// JSON object per state change, appended durably before the change takes
// effect. The coordinator writes them and rebuilds its state from them;
// auditors read and verify them. docs/events.md is the specification.
package events

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"
)

// Version is the event format version written in every event's "v".
// Version 2 replaced run.finished's result_sha256 (the plain SHA-256 of the
// result) by result_commitment (a salted commitment), added run.refused's
// sealed_reason, and added the fields that isolate contracts from each
// other in the shared log (salt, seq, prev); version 1 entries are refused.
const Version = 2

// MaxSize bounds an encoded event: it must fit one log entry (at most
// 65,535 bytes in the tlog-tiles entry bundle format).
const MaxSize = 60 << 10

// MaxSealedReason bounds run.refused's sealed_reason: a padded reason
// (cleanroom.ReasonPaddedSize) sealed with HPKE is 5,744 bytes.
const MaxSealedReason = 8 << 10

// MaxSuspensionReason bounds contract.suspended's reason.
const MaxSuspensionReason = 1024

// Type names an event.
type Type string

// The event types, in the order of a contract's life.
const (
	TypeCoordinatorStarted Type = "coordinator.started"
	TypeContractRegistered Type = "contract.registered"
	TypeDatasetUploaded    Type = "dataset.uploaded"
	TypeAlgorithmSubmitted Type = "algorithm.submitted"
	TypeModelSubmitted     Type = "model.submitted"
	TypeRunStarted         Type = "run.started"
	TypeRunFinished        Type = "run.finished"
	TypeRunRefused         Type = "run.refused"
	TypeRunAborted         Type = "run.aborted"
	TypeResultFetched      Type = "result.fetched"
	// Contracts over time (SPEC §13, docs/events.md).
	TypeContractSuspended  Type = "contract.suspended"
	TypeContractResumed    Type = "contract.resumed"
	TypeContractSuperseded Type = "contract.superseded"
	TypeDatasetWithdrawn   Type = "dataset.withdrawn"
	TypeDatasetExpired     Type = "dataset.expired"
	TypeResultExpired      Type = "result.expired"
)

// ErrMalformed wraps every decoding error.
var ErrMalformed = errors.New("malformed event")

// Event is one log entry. Exactly one of the body fields is set: the one
// that matches Type.
//
// Every event belongs to one scope (Scope): its contract, or the
// coordinator for coordinator.started. The events of a scope form a chain
// (Seq, Prev), so whoever reads a scope's events can tell that none is
// missing; Salt makes the entry's leaf hash in the log impossible to
// confirm by guessing the event for whoever has not been shown it.
type Event struct {
	V        int       `json:"v"`
	ID       string    `json:"id"`                  // 32 hex digits, unique
	Salt     string    `json:"salt"`                // 64 hex digits: 32 random bytes, fresh per event
	Seq      uint64    `json:"seq"`                 // 1 for the scope's first event, then 2, 3, …
	Prev     string    `json:"prev,omitempty"`      // leaf hash (64 hex) of the scope's previous event; empty iff seq is 1
	Type     Type      `json:"type"`                // one of the Type constants
	Time     time.Time `json:"time"`                // coordinator clock, UTC
	Contract string    `json:"contract,omitempty"`  // contract id, 64 hex; empty for coordinator.started
	Actor    string    `json:"actor,omitempty"`     // participant id that caused the event, if any
	ActorKey string    `json:"actor_key,omitempty"` // that participant's key fingerprint

	CoordinatorStarted *CoordinatorStarted `json:"coordinator_started,omitempty"`
	ContractRegistered *ContractRegistered `json:"contract_registered,omitempty"`
	DatasetUploaded    *DatasetUploaded    `json:"dataset_uploaded,omitempty"`
	AlgorithmSubmitted *AlgorithmSubmitted `json:"algorithm_submitted,omitempty"`
	ModelSubmitted     *ModelSubmitted     `json:"model_submitted,omitempty"`
	RunStarted         *RunStarted         `json:"run_started,omitempty"`
	RunFinished        *RunFinished        `json:"run_finished,omitempty"`
	RunRefused         *RunRefused         `json:"run_refused,omitempty"`
	RunAborted         *RunAborted         `json:"run_aborted,omitempty"`
	ResultFetched      *ResultFetched      `json:"result_fetched,omitempty"`
	ContractSuspended  *ContractSuspended  `json:"contract_suspended,omitempty"`
	ContractResumed    *ContractResumed    `json:"contract_resumed,omitempty"`
	ContractSuperseded *ContractSuperseded `json:"contract_superseded,omitempty"`
	DatasetWithdrawn   *DatasetDeleted     `json:"dataset_withdrawn,omitempty"`
	DatasetExpired     *DatasetDeleted     `json:"dataset_expired,omitempty"`
	ResultExpired      *ResultExpired      `json:"result_expired,omitempty"`
}

// Blob names a stored blob by digest and size.
type Blob struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// CoordinatorStarted records a start of the coordinator with what it
// attested.
type CoordinatorStarted struct {
	Platform       string `json:"platform"`        // sev-snp or sev-snp-simulated
	Measurement    string `json:"measurement"`     // 96 hex digits
	PublicKey      string `json:"public_key"`      // fingerprint of the coordinator key
	EvidenceSHA256 string `json:"evidence_sha256"` // of the encoded evidence served in TLS
	Software       string `json:"software"`        // cleanroomd version string
}

// ContractRegistered records a contract accepted with every participant's
// signature.
type ContractRegistered struct {
	Name       string            `json:"name"`
	ExpiresAt  time.Time         `json:"expires_at"`
	Document   Blob              `json:"document"`   // the submitted text, sealed
	DocSHA256  string            `json:"doc_sha256"` // SHA-256 of the submitted text
	Signatures map[string][]byte `json:"signatures"` // participant id → COSE_Sign1 approval
	// For an amendment (the document names supersedes): the approvals of
	// the superseded contract's participants, by the keys it gives them,
	// and the runs started under the contracts it supersedes, which count
	// against its max_runs (its first run is number CarriedRuns+1).
	SupersedesSignatures map[string][]byte `json:"supersedes_signatures,omitempty"`
	CarriedRuns          int64             `json:"carried_runs,omitempty"`
}

// DatasetUploaded records a dataset envelope accepted from its provider,
// and the envelope the coordinator stored in its place: the same plaintext
// re-encrypted under a data key that only the coordinator holds, which is
// what every run reads.
type DatasetUploaded struct {
	Dataset         string `json:"dataset"`
	Ciphertext      Blob   `json:"ciphertext"`    // the provider's envelope as received (not stored); its digest is the ciphertext digest
	HeaderSHA256    string `json:"header_sha256"` // SHA-256 of that envelope's header, as the provider signed it
	Rows            int64  `json:"rows"`
	SchemaDigest    string `json:"schema_digest"`
	UploadStatement []byte `json:"upload_statement"` // the provider's COSE_Sign1

	// Stored is the blob of the coordinator's re-encrypted envelope, and
	// StoredHeaderSHA256 the SHA-256 of its header, which every run checks.
	Stored             Blob   `json:"stored"`
	StoredHeaderSHA256 string `json:"stored_header_sha256"`

	// CarriedFrom, set when an amendment carried the dataset over, is the
	// superseded contract's id: the provider's fields above (ciphertext,
	// header, rows, upload statement) are that contract's upload's, and
	// Stored is the coordinator's re-encryption of it for this contract.
	CarriedFrom string `json:"carried_from,omitempty"`
}

// AlgorithmSubmitted records the algorithm text accepted from its provider.
type AlgorithmSubmitted struct {
	SHA256       string `json:"sha256"` // of the query text; equals the contract's
	Confidential bool   `json:"confidential"`
	Text         Blob   `json:"text"` // sealed
}

// ModelSubmitted records a model's WebAssembly module accepted from its
// provider. It carries the contract's commitment to the module (a salted
// commitment for a confidential model, so the log lets nobody test a
// guess of the module), never the module's own digest.
type ModelSubmitted struct {
	Name         string `json:"name"`       // the model's SQL function name in the contract
	Commitment   string `json:"commitment"` // equals the contract's models[].sha256
	Confidential bool   `json:"confidential"`
	Module       Blob   `json:"module"` // sealed
}

// RunStarted records that a run began. Runs are counted against max_runs
// from these events, so a restart cannot reset the count.
type RunStarted struct {
	RunID           string            `json:"run_id"`
	Number          int64             `json:"number"` // 1 for the contract's first run
	AlgorithmSHA256 string            `json:"algorithm_sha256"`
	Datasets        map[string]string `json:"datasets"` // dataset id → ciphertext digest
	// Parameters are the run's values of the algorithm's parameters
	// (algorithm.parameters), name → canonical text, checked against the
	// contract before the event is written; absent when it declares none.
	Parameters map[string]string `json:"parameters,omitempty"`
}

// RunFinished records a result released under the output policy.
type RunFinished struct {
	RunID string `json:"run_id"`
	// ResultCommitment is the result statement's salted commitment to the
	// plaintext result (Arrow IPC stream); the salt is inside the
	// encrypted result.
	ResultCommitment string `json:"result_commitment"`
	EncryptedResult  Blob   `json:"encrypted_result"`
	RowsKept         int64  `json:"rows_kept"`
	RowsSuppressed   int64  `json:"rows_suppressed"`
	Statement        []byte `json:"statement"` // the coordinator's COSE_Sign1 result statement
}

// RunRefused records a run that was refused: before it started (RunID
// empty: no run counted) or after (output policy, query error).
type RunRefused struct {
	RunID  string `json:"run_id,omitempty"`
	Stage  string `json:"stage"`  // "admission", "query", "policy" or "release"
	Reason string `json:"reason"` // for people; generic when SealedReason is set
	// SealedReason, set only for a run refused at stage query or policy
	// whose full reason only one participant may read, is that reason
	// sealed to it (cleanroom.SealReason): the provider of a confidential
	// algorithm (the reason may describe its text or output), or the
	// provider of the model that failed the run (docs/models.md §5).
	SealedReason []byte `json:"sealed_reason,omitempty"`
	// SealedTo names the participant SealedReason is sealed to when that is
	// not the algorithm provider: a model's provider. Empty otherwise.
	SealedTo string `json:"sealed_to,omitempty"`
}

// RunAborted records a run that started but never finished, found when the
// coordinator restarted. It released nothing.
type RunAborted struct {
	RunID  string `json:"run_id"`
	Reason string `json:"reason"`
}

// ResultFetched records a recipient downloading a result bundle.
type ResultFetched struct {
	RunID string `json:"run_id"`
}

// ContractSuspended records a data provider's emergency stop: no run starts
// until contract.resumed.
type ContractSuspended struct {
	Reason string `json:"reason"` // the provider's words, for people
}

// ContractResumed records the end of a suspension, approved by every
// participant's signature over (contract id, the suspension's log index).
type ContractResumed struct {
	SuspensionIndex uint64            `json:"suspension_index"` // log index of the contract.suspended it lifts
	Approvals       map[string][]byte `json:"approvals"`        // participant id → COSE_Sign1 resumption approval
}

// ContractSuperseded records, in the old contract's own chain, that an
// amendment signed by every participant of both contracts replaced it: no
// run of the old contract starts afterwards.
type ContractSuperseded struct {
	By string `json:"by"` // the id of the contract that supersedes it (64 hex)
}

// DatasetDeleted is the body of dataset.withdrawn (by its provider) and
// dataset.expired (by the coordinator, at the contract's expires_at): the
// stored envelope, whose header holds the only wrapped copy of its data
// key, is deleted after the event is in the log.
type DatasetDeleted struct {
	Dataset string `json:"dataset"`
	Stored  Blob   `json:"stored"` // the stored envelope deleted
}

// ResultExpired records the deletion of a run's stored encrypted result at
// the contract's expiry.
type ResultExpired struct {
	RunID           string `json:"run_id"`
	EncryptedResult Blob   `json:"encrypted_result"` // the blob deleted
}

// CoordinatorScope is the scope of coordinator.started events; every other
// event's scope is its contract id.
const CoordinatorScope = "coordinator"

// Scope returns the scope whose chain the event belongs to: the contract id
// (64 hex), or CoordinatorScope for coordinator.started.
func (e *Event) Scope() string {
	if e.Type == TypeCoordinatorStarted {
		return CoordinatorScope
	}
	return e.Contract
}

// NewSalt returns a fresh random salt: 32 bytes in hex.
func NewSalt() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// NewID returns a fresh random event or run id: 32 hex digits.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

var (
	idPattern      = regexp.MustCompile(`^[0-9a-f]{32}$`)
	digestPattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	measurePattern = regexp.MustCompile(`^[0-9a-f]{96}$`)
	paramPattern   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

// errVersion1 explains why an event of the first format is refused.
var errVersion1 = fmt.Sprintf("event format version 1 (from before salted result commitments and per-contract chains: salt, seq, prev) is not read by this program, which reads version %d: "+
	"start the coordinator on a new data directory, and audit an old log with the release that wrote it", Version)

// Encode returns the log entry for e after checking it.
func Encode(e *Event) ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(b), MaxSize)
	}
	return b, nil
}

// Decode parses a log entry strictly: unknown fields, a body that does not
// match the type, or bad ids are errors.
func Decode(entry []byte) (*Event, error) {
	if len(entry) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(entry), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(entry))
	dec.DisallowUnknownFields()
	var e Event
	if err := dec.Decode(&e); err != nil {
		// An event of the first format fails here on a field it had;
		// say so rather than name the field.
		var head struct {
			V int `json:"v"`
		}
		if json.Unmarshal(entry, &head) == nil && head.V == 1 {
			return nil, fmt.Errorf("%w: %s", ErrMalformed, errVersion1)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the event object", ErrMalformed)
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return &e, nil
}

// check validates the envelope fields and that exactly the body for Type
// is present.
func (e *Event) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s event %s: %s", ErrMalformed, e.Type, e.ID, fmt.Sprintf(format, args...))
	}
	if e.V == 1 {
		return bad("%s", errVersion1)
	}
	if e.V != Version {
		return bad("version %d, want %d", e.V, Version)
	}
	if !idPattern.MatchString(e.ID) {
		return bad("id must be 32 hex digits")
	}
	if !digestPattern.MatchString(e.Salt) {
		return bad("salt must be 64 hex digits")
	}
	if e.Seq < 1 {
		return bad("seq must be at least 1")
	}
	if e.Seq == 1 && e.Prev != "" {
		return bad("the first event of its scope (seq 1) has no prev")
	}
	if e.Seq > 1 && !digestPattern.MatchString(e.Prev) {
		return bad("prev must be the 64-hex leaf hash of the scope's event seq %d", e.Seq-1)
	}
	if e.Time.IsZero() {
		return bad("no time")
	}
	bodies := map[Type]bool{
		TypeCoordinatorStarted: e.CoordinatorStarted != nil,
		TypeContractRegistered: e.ContractRegistered != nil,
		TypeDatasetUploaded:    e.DatasetUploaded != nil,
		TypeAlgorithmSubmitted: e.AlgorithmSubmitted != nil,
		TypeModelSubmitted:     e.ModelSubmitted != nil,
		TypeRunStarted:         e.RunStarted != nil,
		TypeRunFinished:        e.RunFinished != nil,
		TypeRunRefused:         e.RunRefused != nil,
		TypeRunAborted:         e.RunAborted != nil,
		TypeResultFetched:      e.ResultFetched != nil,
		TypeContractSuspended:  e.ContractSuspended != nil,
		TypeContractResumed:    e.ContractResumed != nil,
		TypeContractSuperseded: e.ContractSuperseded != nil,
		TypeDatasetWithdrawn:   e.DatasetWithdrawn != nil,
		TypeDatasetExpired:     e.DatasetExpired != nil,
		TypeResultExpired:      e.ResultExpired != nil,
	}
	present, known := bodies[e.Type]
	if !known {
		return bad("unknown type")
	}
	if !present {
		return bad("missing its %s body", e.Type)
	}
	for t, p := range bodies {
		if p && t != e.Type {
			return bad("carries a %s body", t)
		}
	}
	if e.Type == TypeCoordinatorStarted {
		if e.Contract != "" || e.Actor != "" {
			return bad("a coordinator event names no contract or actor")
		}
	} else if !digestPattern.MatchString(e.Contract) {
		return bad("contract must be 64 hex digits")
	}
	if (e.Actor == "") != (e.ActorKey == "") {
		return bad("actor and actor_key go together")
	}
	if e.ActorKey != "" && !digestPattern.MatchString(e.ActorKey) {
		return bad("actor_key must be 64 hex digits")
	}
	return e.checkBody(bad)
}

func (e *Event) checkBody(bad func(string, ...any) error) error {
	blob := func(name string, b Blob) error {
		if !digestPattern.MatchString(b.SHA256) || b.Size < 0 {
			return bad("%s must name a blob by SHA-256 and size", name)
		}
		return nil
	}
	runID := func(id string) error {
		if !idPattern.MatchString(id) {
			return bad("run id must be 32 hex digits")
		}
		return nil
	}
	switch e.Type {
	case TypeCoordinatorStarted:
		b := e.CoordinatorStarted
		if !measurePattern.MatchString(b.Measurement) || !digestPattern.MatchString(b.PublicKey) || !digestPattern.MatchString(b.EvidenceSHA256) {
			return bad("measurement, public_key and evidence_sha256 must be hex digests")
		}
	case TypeContractRegistered:
		b := e.ContractRegistered
		if len(b.Signatures) == 0 || !digestPattern.MatchString(b.DocSHA256) {
			return bad("needs signatures and doc_sha256")
		}
		if b.CarriedRuns < 0 {
			return bad("carried_runs must not be negative")
		}
		return blob("document", b.Document)
	case TypeDatasetUploaded:
		b := e.DatasetUploaded
		if b.Dataset == "" || b.Rows < 0 || !digestPattern.MatchString(b.SchemaDigest) || !digestPattern.MatchString(b.HeaderSHA256) || len(b.UploadStatement) == 0 {
			return bad("needs dataset, rows, schema_digest, header_sha256 and upload_statement")
		}
		if b.Stored == (Blob{}) && b.StoredHeaderSHA256 == "" {
			return bad("dataset %s has no stored envelope (stored, stored_header_sha256): the event comes from a coordinator that ran on the provider's own envelope, which a run cannot prove unchanged; start with a new data directory and upload the datasets again", b.Dataset)
		}
		if !digestPattern.MatchString(b.StoredHeaderSHA256) {
			return bad("stored_header_sha256 must be 64 hex digits")
		}
		if b.CarriedFrom != "" && (!digestPattern.MatchString(b.CarriedFrom) || b.CarriedFrom == e.Contract) {
			return bad("carried_from must be another contract's id (64 hex digits)")
		}
		if err := blob("stored", b.Stored); err != nil {
			return err
		}
		return blob("ciphertext", b.Ciphertext)
	case TypeAlgorithmSubmitted:
		if !digestPattern.MatchString(e.AlgorithmSubmitted.SHA256) {
			return bad("sha256 must be 64 hex digits")
		}
		return blob("text", e.AlgorithmSubmitted.Text)
	case TypeModelSubmitted:
		b := e.ModelSubmitted
		if b.Name == "" || !digestPattern.MatchString(b.Commitment) {
			return bad("needs name and a 64-hex commitment")
		}
		return blob("module", b.Module)
	case TypeRunStarted:
		b := e.RunStarted
		if b.Number < 1 || !digestPattern.MatchString(b.AlgorithmSHA256) {
			return bad("needs number ≥ 1 and algorithm_sha256")
		}
		for name := range b.Parameters {
			if !paramPattern.MatchString(name) {
				return bad("parameter name %q is not a parameter name ([a-z][a-z0-9_]*)", name)
			}
		}
		return runID(b.RunID)
	case TypeRunFinished:
		b := e.RunFinished
		if !digestPattern.MatchString(b.ResultCommitment) || b.RowsKept < 0 || b.RowsSuppressed < 0 || len(b.Statement) == 0 {
			return bad("needs result_commitment, row counts and statement")
		}
		if err := blob("encrypted_result", b.EncryptedResult); err != nil {
			return err
		}
		return runID(b.RunID)
	case TypeRunRefused:
		b := e.RunRefused
		if b.Reason == "" || (b.Stage != "admission" && b.Stage != "query" && b.Stage != "policy" && b.Stage != "release") {
			return bad("needs a stage (admission, query, policy or release) and a reason")
		}
		if b.SealedReason != nil && (b.RunID == "" || (b.Stage != "query" && b.Stage != "policy") || len(b.SealedReason) == 0 || len(b.SealedReason) > MaxSealedReason) {
			return bad("a sealed_reason goes only with a run refused at stage query or policy, and has 1 to %d bytes", MaxSealedReason)
		}
		if b.SealedTo != "" && b.SealedReason == nil {
			return bad("sealed_to goes only with a sealed_reason")
		}
		if b.RunID != "" {
			return runID(b.RunID)
		}
	case TypeRunAborted:
		return runID(e.RunAborted.RunID)
	case TypeResultFetched:
		return runID(e.ResultFetched.RunID)
	case TypeContractSuspended:
		if r := e.ContractSuspended.Reason; r == "" || len(r) > MaxSuspensionReason {
			return bad("needs a reason of 1 to %d bytes", MaxSuspensionReason)
		}
	case TypeContractResumed:
		if len(e.ContractResumed.Approvals) == 0 {
			return bad("needs approvals")
		}
	case TypeContractSuperseded:
		if !digestPattern.MatchString(e.ContractSuperseded.By) || e.ContractSuperseded.By == e.Contract {
			return bad("by must be another contract's id (64 hex digits)")
		}
	case TypeDatasetWithdrawn, TypeDatasetExpired:
		b := e.DatasetWithdrawn
		if b == nil {
			b = e.DatasetExpired
		}
		if b.Dataset == "" {
			return bad("needs dataset")
		}
		return blob("stored", b.Stored)
	case TypeResultExpired:
		if err := blob("encrypted_result", e.ResultExpired.EncryptedResult); err != nil {
			return err
		}
		return runID(e.ResultExpired.RunID)
	}
	return nil
}
