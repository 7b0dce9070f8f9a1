// Package api holds the wire types of the coordinator's HTTP API
// (docs/api.md), shared by the coordinator that serves them and the client
// that calls them, so both always agree.
package api

import "fmt"

// UploadStatementTrailer is the HTTP trailer that carries a dataset
// upload's signed upload statement, base64-encoded.
const UploadStatementTrailer = "Cleanroom-Upload-Statement"

// MaxJSONBody bounds every JSON request and response body.
const MaxJSONBody = 1 << 20

// Health is the body of GET /v1/health.
type Health struct {
	Status string `json:"status"` // "ok", or "degraded" when stored blobs are damaged
	// The rest is told only to the operator (docs/api.md): counts over
	// every contract are nobody else's business.
	LogSize   *uint64 `json:"log_size,omitempty"`
	Contracts *int    `json:"contracts,omitempty"`
	Damaged   int     `json:"damaged_blobs,omitempty"`
}

// AttestationRequest is the body of POST /v1/attestation.
type AttestationRequest struct {
	Nonce string `json:"nonce"` // hex, 1 to 64 bytes
}

// SubmitContractRequest is the body of POST /v1/contracts.
type SubmitContractRequest struct {
	Contract   string   `json:"contract"`
	Signatures [][]byte `json:"signatures"`
}

// ContractReceipt acknowledges a registered contract.
type ContractReceipt struct {
	ContractID string `json:"contract_id"`
	LogIndex   uint64 `json:"log_index"`
}

// ContractStatus is a contract's progress, as its participants see it.
type ContractStatus struct {
	ContractID string          `json:"contract_id"`
	Name       string          `json:"name"`
	ExpiresAt  string          `json:"expires_at"`
	LogIndex   uint64          `json:"log_index"`
	Datasets   []DatasetStatus `json:"datasets"`
	Algorithm  AlgorithmStatus `json:"algorithm"`
	Models     []ModelStatus   `json:"models,omitempty"`
	Runs       []RunStatus     `json:"runs"`
	MaxRuns    int64           `json:"max_runs"`
	RunsUsed   int64           `json:"runs_used"`
	// LastLogIndex is the log index of the contract's latest event: an
	// auditor waits for a checkpoint covering it.
	LastLogIndex uint64 `json:"last_log_index"`
	// Suspended describes the suspension in force (SPEC §13), if any.
	Suspended *Suspension `json:"suspended,omitempty"`
	// SupersededBy is the id of the contract that amended this one, which
	// runs no more.
	SupersededBy string `json:"superseded_by,omitempty"`
	// Supersedes is the id of the contract this one amends, if any.
	Supersedes string `json:"supersedes,omitempty"`
}

// Suspension is a contract's emergency stop, in force until every
// participant signs its resumption over (contract id, LogIndex).
type Suspension struct {
	LogIndex uint64 `json:"log_index"` // of contract.suspended
	By       string `json:"by"`
	Reason   string `json:"reason"`
}

// SuspendRequest is the body of POST /v1/contracts/{cid}/suspend.
type SuspendRequest struct {
	Reason string `json:"reason"`
}

// ResumeRequest is the body of POST /v1/contracts/{cid}/resume: every
// participant's resumption approval (contracts.SignResumption).
type ResumeRequest struct {
	Approvals [][]byte `json:"approvals"`
}

// EventReceipt acknowledges a change of a contract's state by the log index
// of the event that records it.
type EventReceipt struct {
	Event    string `json:"event"` // the event type
	LogIndex uint64 `json:"log_index"`
}

// DatasetStatus describes one dataset of a contract.
type DatasetStatus struct {
	ID               string `json:"id"`
	Provider         string `json:"provider"`
	Uploaded         bool   `json:"uploaded"`
	CiphertextSHA256 string `json:"ciphertext_sha256,omitempty"`
	Rows             int64  `json:"rows,omitempty"`
	LogIndex         uint64 `json:"log_index,omitempty"`
	// Damaged says why the stored envelope cannot be used (found damaged
	// on disk); runs are refused until the operator restores it.
	Damaged string `json:"damaged,omitempty"`
	// Deleted is "withdrawn" or "expired" once the stored envelope and its
	// data key were deleted; DeletedIndex is the event's log index.
	Deleted      string `json:"deleted,omitempty"`
	DeletedIndex uint64 `json:"deleted_index,omitempty"`
}

// AlgorithmStatus describes a contract's algorithm.
type AlgorithmStatus struct {
	Submitted    bool   `json:"submitted"`
	SHA256       string `json:"sha256"`
	Confidential bool   `json:"confidential"`
	LogIndex     uint64 `json:"log_index,omitempty"`
}

// ModelStatus describes one model of a contract.
type ModelStatus struct {
	Name         string `json:"name"`
	Provider     string `json:"provider"`
	Commitment   string `json:"commitment"`
	Confidential bool   `json:"confidential"`
	Submitted    bool   `json:"submitted"`
	LogIndex     uint64 `json:"log_index,omitempty"`
}

// ModelReceipt acknowledges an accepted model.
type ModelReceipt struct {
	Name       string `json:"name"`
	Commitment string `json:"commitment"`
	LogIndex   uint64 `json:"log_index"`
	// Already reports a submission of the model already submitted (the
	// same commitment): the receipt is the first one's, nothing logged.
	Already bool `json:"already,omitempty"`
}

// Content types of PUT /v1/contracts/{cid}/models/{name}: a model's module
// as it is, or (required for a confidential model) sealed with
// cleanroom.SealModel. GET answers ContentTypeWasm.
const (
	ContentTypeWasm        = "application/wasm"
	ContentTypeSealedModel = "application/vnd.cleanroom.sealed-model"
)

// MaxModelSize bounds a model's module (and its sealed form).
const MaxModelSize = 32 << 20

// RunRequest is the body of POST /v1/contracts/{cid}/runs (optional: a
// run of an algorithm without parameters needs none).
type RunRequest struct {
	// Parameters are the run's values of the algorithm's parameters, name
	// → text as `cleanroom run --param name=value` gives it.
	Parameters map[string]string `json:"parameters,omitempty"`
}

// RunStatus describes one run.
type RunStatus struct {
	RunID          string `json:"run_id"`
	Number         int64  `json:"number"`
	Status         string `json:"status"` // running, finished, refused, aborted
	RowsKept       int64  `json:"rows_kept"`
	RowsSuppressed int64  `json:"rows_suppressed"`
	// ResultCommitment is the result statement's salted commitment to the
	// plaintext result (its salt is inside the encrypted result).
	ResultCommitment string `json:"result_commitment,omitempty"`
	Reason           string `json:"reason,omitempty"`
	// SealedReason is the full reason of a confidential algorithm's
	// refusal, sealed to its provider (cleanroom.OpenReason); present only
	// in answers to the provider.
	SealedReason []byte `json:"sealed_reason,omitempty"`
	LogIndex     uint64 `json:"log_index"` // of run.started
	// Parameters are the run's parameter values as run.started logged
	// them (canonical text).
	Parameters map[string]string `json:"parameters,omitempty"`
}

// UploadReceipt acknowledges an accepted dataset upload.
type UploadReceipt struct {
	Dataset          string `json:"dataset"`
	CiphertextSHA256 string `json:"ciphertext_sha256"`
	Rows             int64  `json:"rows"`
	LogIndex         uint64 `json:"log_index"`
	// Already reports an upload of content the dataset already holds: the
	// receipt is the first upload's, and nothing was stored or logged.
	Already bool `json:"already,omitempty"`
}

// SubmitAlgorithmRequest is the body of PUT /v1/contracts/{cid}/algorithm:
// exactly one of Text and Sealed.
type SubmitAlgorithmRequest struct {
	Text   *string `json:"text,omitempty"`
	Sealed []byte  `json:"sealed,omitempty"`
}

// AlgorithmReceipt acknowledges an accepted algorithm.
type AlgorithmReceipt struct {
	SHA256   string `json:"sha256"`
	LogIndex uint64 `json:"log_index"`
	// Already reports a submission of the algorithm already submitted
	// (the same digest): the receipt is the first one's, nothing logged.
	Already bool `json:"already,omitempty"`
}

// AlgorithmView is what a participant may see of the algorithm; Text is
// empty for those who may not see a confidential one.
type AlgorithmView struct {
	SHA256       string `json:"sha256"`
	Confidential bool   `json:"confidential"`
	Text         string `json:"text,omitempty"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what was refused and why.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Error is an error response as a Go error.
type Error struct {
	Status int
	ErrorDetail
}

func (e *Error) Error() string {
	return fmt.Sprintf("coordinator refused (%d %s): %s", e.Status, e.Code, e.Message)
}
