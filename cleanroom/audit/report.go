package audit

import "time"

// ReportFormat is the value of Report.Format: the version of the report's
// JSON encoding (docs/audit.md). Fields are only ever added under it.
// Version 2 names runs' result_commitment where version 1 named the plain
// result_sha256, and adds reason_sealed.
const ReportFormat = "cleanroom/audit-report/v2"

// Report is what one audit of a contract established. Every fact in it was
// verified: it comes from a log entry whose inclusion under a signed
// checkpoint was proved, and each signature it mentions was checked. Its JSON
// form is the output of `cleanroom audit log --json`, specified in
// docs/audit.md; its field names and meanings are stable.
type Report struct {
	Format string `json:"format"`
	// Verified is true when everything verified: the checkpoint, its
	// consistency with the kept one, every entry, every signature and the
	// timeline's rules. Failure is then nil.
	Verified bool `json:"verified"`
	// VerifiedAt is when the audit ran (the auditor's clock, UTC).
	VerifiedAt  time.Time         `json:"verified_at"`
	Coordinator CoordinatorFacts  `json:"coordinator"`
	Checkpoint  CheckpointFacts   `json:"checkpoint"`
	Contract    ContractFacts     `json:"contract"`
	Parties     []ParticipantFact `json:"participants"`
	Datasets    []DatasetFact     `json:"datasets"`
	Algorithm   AlgorithmFact     `json:"algorithm"`
	Runs        []RunFact         `json:"runs"`
	// Timeline lists, in log order, the coordinator's starts and every event
	// of the contract.
	Timeline []TimelineEntry `json:"timeline"`
	Log      LogFacts        `json:"log"`
	// Problems are violations of the log's rules found in verified entries
	// (a bad signature, a run over max_runs, ...). Any problem fails the
	// audit.
	Problems []Finding `json:"problems"`
	// Warnings are oddities that do not fail the audit (a coordinator clock
	// going backwards, a duplicate event id that replay ignores).
	Warnings []Finding `json:"warnings"`
	// Failure says why the audit failed; nil when Verified.
	Failure *Failure `json:"failure"`
}

// CoordinatorFacts is what attested TLS proved about the coordinator, and how
// its log records it.
type CoordinatorFacts struct {
	URL            string `json:"url"`
	PublicKey      string `json:"public_key"` // fingerprint, 64 hex
	Origin         string `json:"origin"`     // the log's origin line
	Platform       string `json:"platform"`
	Measurement    string `json:"measurement"`     // 96 hex
	EvidenceSHA256 string `json:"evidence_sha256"` // of the evidence in its TLS certificate
	// EvidenceLoggedAt is the index of the coordinator.started event that
	// records the attested evidence, or nil when no verified entry does.
	EvidenceLoggedAt *uint64 `json:"evidence_logged_at"`
	Starts           uint64  `json:"starts"` // coordinator.started events in the log
}

// CheckpointFacts describes the verified checkpoint and how it relates to
// the one kept from the previous audit.
type CheckpointFacts struct {
	Size uint64 `json:"size"`
	Root string `json:"root"` // 64 hex
	// Note is the signed checkpoint, as served.
	Note string `json:"note"`
	// KeptSize and KeptRoot describe the checkpoint kept from the last
	// audit; nil on a first audit.
	KeptSize *uint64 `json:"kept_size"`
	KeptRoot *string `json:"kept_root"`
	// Consistency is "first-audit" (nothing kept), "unchanged" (same size
	// and root as kept), "extended" (a consistency proof was verified),
	// "rollback" or "fork" (the log is not an extension of the kept
	// checkpoint), or "" when the audit failed before it was checked.
	Consistency string `json:"consistency"`
	// ProofHashes is the number of hashes of the consistency proof.
	ProofHashes int `json:"proof_hashes"`
}

// ContractFacts describes the contract audited and its registration.
type ContractFacts struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	ExpiresAt       time.Time `json:"expires_at"`
	Platform        string    `json:"platform"`
	MaxRuns         int64     `json:"max_runs"`
	MaxRows         int64     `json:"max_rows"`
	GroupSizeColumn string    `json:"group_size_column"`
	MinGroupSize    int64     `json:"min_group_size"`
	Recipients      []string  `json:"recipients"`
	// Registered is the index of its contract.registered event, nil if the
	// log has none.
	Registered   *uint64    `json:"registered"`
	RegisteredAt *time.Time `json:"registered_at"`
	RegisteredBy string     `json:"registered_by"`
	// DocSHA256 is the digest of the contract text as submitted; DocMatches
	// says whether it is byte for byte the file the auditor gave (a
	// reformatted file has the same id but another digest).
	DocSHA256  string `json:"doc_sha256"`
	DocMatches bool   `json:"doc_matches"`
	// RunsStarted counts run.started events (what max_runs limits).
	RunsStarted int64 `json:"runs_started"`
	// RefusedAtAdmission counts runs refused before they started.
	RefusedAtAdmission int64 `json:"refused_at_admission"`
}

// ParticipantFact is a participant and its signature of the contract as the
// contract.registered event carries it.
type ParticipantFact struct {
	ID    string   `json:"id"`
	Roles []string `json:"roles"`
	Key   string   `json:"key"` // fingerprint, 64 hex
	// SignatureSHA256 is the digest of its COSE_Sign1 approval in the log
	// ("" if absent); SignatureVerified says it verified under Key and is
	// over this contract's id.
	SignatureSHA256   string `json:"signature_sha256"`
	SignatureVerified bool   `json:"signature_verified"`
}

// DatasetFact is a dataset of the contract and its upload.
type DatasetFact struct {
	ID           string `json:"id"`
	Provider     string `json:"provider"`
	ProviderKey  string `json:"provider_key"`
	SchemaDigest string `json:"schema_digest"`
	Uploaded     bool   `json:"uploaded"`
	// The fields below describe the dataset.uploaded event; zero when not
	// uploaded.
	Index            *uint64    `json:"index"`
	Time             *time.Time `json:"time"`
	CiphertextSHA256 string     `json:"ciphertext_sha256"`
	CiphertextSize   int64      `json:"ciphertext_size"`
	Rows             int64      `json:"rows"`
	// StatementSHA256 is the digest of the provider's signed upload
	// statement; StatementVerified says it verified under ProviderKey and
	// names this contract, dataset, ciphertext digest, size, schema and row
	// count.
	StatementSHA256   string `json:"statement_sha256"`
	StatementVerified bool   `json:"statement_verified"`
}

// AlgorithmFact is the contract's algorithm and its submission.
type AlgorithmFact struct {
	Provider     string     `json:"provider"`
	SHA256       string     `json:"sha256"`
	Confidential bool       `json:"confidential"`
	Submitted    bool       `json:"submitted"`
	Index        *uint64    `json:"index"`
	Time         *time.Time `json:"time"`
}

// Run statuses.
const (
	RunRunning  = "running"
	RunFinished = "finished"
	RunRefused  = "refused"
	RunAborted  = "aborted"
)

// RunFact is one run of the contract (a run.started event) and its ending.
type RunFact struct {
	RunID           string    `json:"run_id"`
	Number          int64     `json:"number"`
	StartedIndex    uint64    `json:"started_index"`
	StartedAt       time.Time `json:"started_at"`
	RequestedBy     string    `json:"requested_by"`
	AlgorithmSHA256 string    `json:"algorithm_sha256"`
	// Datasets maps dataset id to the ciphertext digest the run used.
	Datasets map[string]string `json:"datasets"`
	// Parameters are the run's parameter values, name → canonical text.
	Parameters map[string]string `json:"parameters,omitempty"`
	// Status is running, finished, refused or aborted.
	Status     string     `json:"status"`
	EndedIndex *uint64    `json:"ended_index"`
	EndedAt    *time.Time `json:"ended_at"`
	// For a finished run: the output policy's outcome and the released
	// result's digests, and the coordinator's result statement, verified
	// under the attested key and matching the event, the run and the
	// uploads.
	RowsKept              int64  `json:"rows_kept"`
	RowsSuppressed        int64  `json:"rows_suppressed"`
	ResultCommitment      string `json:"result_commitment"`
	EncryptedResultSHA256 string `json:"encrypted_result_sha256"`
	EncryptedResultSize   int64  `json:"encrypted_result_size"`
	StatementSHA256       string `json:"statement_sha256"`
	StatementVerified     bool   `json:"statement_verified"`
	// For a refused or aborted run: the stage (refused only) and reason;
	// ReasonSealed says the full reason is sealed to the confidential
	// algorithm's provider and Reason is the public, generic one.
	Stage        string `json:"stage"`
	Reason       string `json:"reason"`
	ReasonSealed bool   `json:"reason_sealed"`
	// Fetches lists the result.fetched events of the run.
	Fetches []Fetch `json:"fetches"`
}

// Fetch is a recipient's download of a run's result.
type Fetch struct {
	Index uint64    `json:"index"`
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
}

// TimelineEntry is one event of the timeline.
type TimelineEntry struct {
	Index    uint64    `json:"index"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	EventID  string    `json:"event_id"`
	Actor    string    `json:"actor"`     // "" when no participant caused it
	ActorKey string    `json:"actor_key"` // fingerprint, "" with no actor
	// Summary is one line for people.
	Summary string `json:"summary"`
	// Details holds the event's digests and values, keyed per event type
	// as docs/audit.md lists.
	Details map[string]string `json:"details"`
	// OK is false when a problem was found in this event.
	OK bool `json:"ok"`
}

// LogFacts counts what the verified log holds.
type LogFacts struct {
	Size              uint64 `json:"size"`               // entries verified (the checkpoint's size)
	ContractEvents    uint64 `json:"contract_events"`    // events of this contract
	CoordinatorStarts uint64 `json:"coordinator_starts"` // coordinator.started events
	OtherEvents       uint64 `json:"other_events"`       // entries redacted in this contract's view: other contracts' events, verified by leaf hash only
	ViewEntries       uint64 `json:"view_entries"`       // entries the view showed, as many as its signed head says
	ViewHead          string `json:"view_head"`          // the coordinator's signed view head at Size (docs/log.md §7), as served
}

// Finding is a problem or warning, tied to a log entry when Index is set.
type Finding struct {
	Index   *uint64 `json:"index"`
	Message string  `json:"message"`
}

// Failure kinds.
const (
	// FailRollback and FailFork: the log is not an extension of the kept
	// checkpoint; the evidence is saved.
	FailRollback = "rollback"
	FailFork     = "fork"
	// FailCheckpoint: the served checkpoint does not verify under the
	// attested key.
	FailCheckpoint = "bad-checkpoint"
	// FailLog: a tile or entry bundle does not match the signed checkpoint
	// (Path and Index say which).
	FailLog = "bad-log"
	// FailWithheld: the contract's view of the log shows fewer (or more)
	// entries than the coordinator's signed view head says; the head is in
	// Report.Log.ViewHead.
	FailWithheld = "withheld"
	// FailEvents: the entries verify but break the log's rules (see
	// Report.Problems).
	FailEvents = "bad-events"
	// FailState: the kept state cannot be used (another log's checkpoint,
	// unreadable files).
	FailState = "bad-state"
)

// Failure says why an audit failed.
type Failure struct {
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
	// Contract is the id of the contract audited.
	Contract string `json:"contract"`
	// Path and Index name the log resource and the first wrong entry of a
	// bad-log failure (Index nil when not tied to one entry).
	Path  string `json:"path"`
	Index *int64 `json:"index"`
	// Evidence is the evidence directory of a rollback or fork, relative
	// to the state directory.
	Evidence string `json:"evidence"`
}

func ptr[T any](v T) *T { return &v }
