package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/contracts"
)

// Step names a step of the verification, in the order Verify runs them.
type Step string

// The steps of Verify. docs/bundle.md describes each.
const (
	StepEvidence        Step = "evidence"
	StepStatement       Step = "statement"
	StepLog             Step = "log"
	StepEntries         Step = "entries"
	StepUploads         Step = "uploads"
	StepEncryptedResult Step = "encrypted result"
	StepDecryption      Step = "decryption"
)

// Steps lists every step in order. StepDecryption runs only when a
// recipient identity is given.
var Steps = []Step{StepEvidence, StepStatement, StepLog, StepEntries, StepUploads, StepEncryptedResult, StepDecryption}

// Parts of a bundle (and of the contract) that a VerifyError names.
const (
	PartEvidence        = "evidence"
	PartCoordinatorKey  = "coordinator key"
	PartStatement       = "statement"
	PartCheckpoint      = "checkpoint"
	PartRunStarted      = "run.started entry"
	PartRunFinished     = "run.finished entry"
	PartEncryptedResult = "encrypted result"
	PartRecipientKey    = "recipient key"
	PartContract        = "contract"
)

// PartUploadStatement names the upload statement of a dataset inside the
// result statement.
func PartUploadStatement(datasetID string) string { return "upload statement of dataset " + datasetID }

// ErrNotVerified is wrapped by every verification failure (a *VerifyError).
var ErrNotVerified = errors.New("result bundle does not verify")

// VerifyError is a failed verification step: which step, which part of the
// bundle it found wrong, and why. It wraps ErrNotVerified and the cause
// (for example attest.ErrNotGenuine, cleanroom.ErrBadSignature,
// tlog.ErrBadProof, upload.ErrMismatch, envelope.ErrNotRecipient), so
// errors.Is works with both.
type VerifyError struct {
	Step Step
	Part string
	Err  error
}

func (e *VerifyError) Error() string {
	if string(e.Step) == e.Part {
		return fmt.Sprintf("%s: %v", e.Step, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Step, e.Part, e.Err)
}

// Unwrap returns ErrNotVerified and the cause.
func (e *VerifyError) Unwrap() []error { return []error{ErrNotVerified, e.Err} }

// StepResult is the outcome of one step.
type StepResult struct {
	Step Step
	OK   bool
	// Detail says what the step established, or (when !OK) what failed.
	Detail string
}

// Report is what Verify established, step by step. Its fields past Steps
// are set once the step that establishes them has passed.
type Report struct {
	Steps []StepResult

	// Claims are the coordinator's verified attestation claims.
	Claims *attest.Claims
	// CoordinatorKey is the attested coordinator key.
	CoordinatorKey *cleanroom.PublicKey
	// Statement is the verified result statement.
	Statement *Statement
	// Checkpoint is the verified checkpoint both proofs are under, and
	// RunStartedIndex, RunFinishedIndex the proven indices.
	Checkpoint                        *tlog.Checkpoint
	RunStartedIndex, RunFinishedIndex uint64
	// RunStarted and RunFinished are the decoded log entries.
	RunStarted, RunFinished *events.Event
	// Uploads are the verified upload statements, in contract order.
	Uploads []*upload.Statement
	// EnvelopeHeader is the result envelope's header.
	EnvelopeHeader *envelope.Header
	// Result is the decrypted plaintext result (an Arrow IPC stream),
	// set only when a recipient identity was given and it decrypted to
	// the statement's result commitment; ResultSalt is the commitment's
	// salt (with it, a recipient can prove the result to a third party
	// who holds the statement).
	Result     []byte
	ResultSalt cleanroom.Salt
}

// OK reports whether every step that ran passed.
func (r *Report) OK() bool {
	for _, s := range r.Steps {
		if !s.OK {
			return false
		}
	}
	return len(r.Steps) > 0
}

// VerifyOptions adjust Verify. The zero value verifies everything but the
// decryption.
type VerifyOptions struct {
	// Recipient, when set, is a result recipient's identity: Verify then
	// decrypts the result and checks its digest (StepDecryption), and
	// returns the plaintext in Report.Result.
	Recipient *cleanroom.Identity
}

// verifier carries the state between steps.
type verifier struct {
	b    *Bundle
	c    *contracts.Contract
	opts VerifyOptions
	r    *Report
}

// Verify checks a result bundle against a contract, offline, step by step,
// stopping at the first failure:
//
//  1. evidence: the evidence is genuine (chained to AMD's root, or to the
//     contract's pinned simulated root), meets the contract's coordinator
//     policy, and its REPORT_DATA binds the bundle's coordinator key;
//  2. statement: the statement is signed by that key with the result
//     statement content type, its payload parses strictly, and it names
//     this contract, its algorithm, its datasets and its recipients;
//  3. log: both inclusion proofs are under one checkpoint signed by that
//     key for its log, run.started is included at the statement's index and
//     run.finished after it;
//  4. entries: both entries decode and agree with the statement and the
//     contract (run id and number, algorithm, dataset digests, the
//     statement bytes themselves, result commitment, encrypted result
//     digest and row counts);
//  5. uploads: each upload statement is signed by the dataset's provider
//     and names the dataset's digest and row count;
//  6. encrypted result: its SHA-256 and size are the statement's, and its
//     envelope header names kind result, this contract and run, the zero
//     schema digest, and exactly the recipients' keys in contract order;
//  7. decryption (with opts.Recipient): it decrypts to a salt and a
//     plaintext whose commitment CommitResult(salt, plaintext) is the
//     statement's result commitment.
//
// It returns the report and, on failure, a *VerifyError naming the step and
// part. The report's steps end with the failed one.
func Verify(b *Bundle, c *contracts.Contract, opts VerifyOptions) (*Report, error) {
	if b == nil || c == nil {
		return nil, errors.New("bundle: Verify needs a bundle and a contract")
	}
	v := &verifier{b: b, c: c, opts: opts, r: &Report{}}
	steps := []struct {
		step Step
		run  func() (string, string, error)
	}{
		{StepEvidence, v.evidence},
		{StepStatement, v.statement},
		{StepLog, v.log},
		{StepEntries, v.entries},
		{StepUploads, v.uploads},
		{StepEncryptedResult, v.encryptedResult},
	}
	if opts.Recipient != nil {
		steps = append(steps, struct {
			step Step
			run  func() (string, string, error)
		}{StepDecryption, v.decrypt})
	}
	for _, s := range steps {
		detail, part, err := s.run()
		if err != nil {
			ve := &VerifyError{Step: s.step, Part: part, Err: err}
			msg := err.Error()
			if part != string(s.step) {
				msg = part + ": " + msg
			}
			v.r.Steps = append(v.r.Steps, StepResult{Step: s.step, Detail: msg})
			return v.r, ve
		}
		v.r.Steps = append(v.r.Steps, StepResult{Step: s.step, OK: true, Detail: detail})
	}
	return v.r, nil
}

// Each step returns what it established, or the part it found wrong and
// why.

func (v *verifier) evidence() (string, string, error) {
	ev, err := attest.ParseEvidence(v.b.Evidence)
	if err != nil {
		return "", PartEvidence, err
	}
	key, err := cleanroom.PublicKeyFromBytes(v.b.CoordinatorKey)
	if err != nil {
		return "", PartCoordinatorKey, err
	}
	claims, err := attest.VerifyCoordinator(ev, &v.c.Coordinator, []*cleanroom.PublicKey{key}, nil)
	if err != nil {
		var ce *attest.CheckError
		if errors.As(err, &ce) && ce.Check == attest.CheckReportData {
			return "", PartCoordinatorKey, err
		}
		return "", PartEvidence, err
	}
	v.r.Claims, v.r.CoordinatorKey = claims, key
	var d strings.Builder
	fmt.Fprintf(&d, "genuine %s report", claims.Platform)
	if s := claims.SNP; s != nil && s.SimulatedRootSHA256 == nil {
		fmt.Fprintf(&d, " (%s, %s)", s.Product, s.Signer)
	}
	fmt.Fprintf(&d, ", measurement %x", claims.Measurement)
	if s := claims.SNP; s != nil {
		fmt.Fprintf(&d, ", TCB %s", s.ReportedTCB)
	}
	switch root := claims.SimulatedRoot(); {
	case root != nil:
		fmt.Fprintf(&d, ", chain to the pinned SIMULATED root %x", *root)
	case claims.CCA != nil:
		fmt.Fprintf(&d, ", signed by the pinned platform key %x", claims.CCA.IAKSHA256)
	default:
		fmt.Fprintf(&d, ", chain to %s's root", claims.Platform.Vendor())
	}
	fmt.Fprintf(&d, "; it meets the contract's coordinator policy and binds coordinator key %s", key.Fingerprint())
	return d.String(), "", nil
}

func (v *verifier) statement() (string, string, error) {
	key := v.r.CoordinatorKey
	s, err := VerifyStatement(v.b.Statement, key)
	if err != nil {
		return "", PartStatement, err
	}
	c := v.c
	mismatch := func(format string, args ...any) (string, string, error) {
		return "", PartStatement, fmt.Errorf("the statement %s", fmt.Sprintf(format, args...))
	}
	if s.ContractID != c.ID() {
		return mismatch("is about contract %x, not this contract %s", s.ContractID, c.ID())
	}
	if s.AlgorithmSHA256 != c.Algorithm.SHA256 {
		return mismatch("names algorithm %x; the contract's is %x", s.AlgorithmSHA256, c.Algorithm.SHA256)
	}
	got := make([]string, len(s.Datasets))
	for i, d := range s.Datasets {
		got[i] = d.ID
	}
	want := make([]string, len(c.Datasets))
	for i, d := range c.Datasets {
		want[i] = d.ID
	}
	if !slices.Equal(got, want) {
		return mismatch("names datasets %v; the contract's are %v (in this order)", got, want)
	}
	rcpts, err := Recipients(c)
	if err != nil {
		return "", PartContract, err
	}
	if !slices.Equal(s.Recipients, rcpts) {
		return mismatch("names recipients %s; the contract's are %s", describeRecipients(s.Recipients), describeRecipients(rcpts))
	}
	// The parameters must be exactly the contract's, each of its type and
	// within its bounds, in canonical text.
	canonical, err := c.Algorithm.CheckParameters(s.Parameters)
	if err != nil {
		return mismatch("names parameters the contract does not allow: %v", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	for name, text := range s.Parameters {
		if canonical[name] != text {
			return mismatch("gives parameter %s as %q, not in its canonical form %q", name, text, canonical[name])
		}
	}
	v.r.Statement = s
	params := ""
	if len(s.Parameters) > 0 {
		params = ", parameters " + FormatParameters(s.Parameters)
	}
	return fmt.Sprintf("signed by coordinator key %s: run %s (run %d of contract %s) at %s, algorithm %x%s, %d rows kept, %d suppressed",
		key.Fingerprint().Short(), s.RunID, s.RunNumber, c.ID(), timeText(s.Time), s.AlgorithmSHA256, params, s.RowsKept, s.RowsSuppressed), "", nil
}

// FormatParameters writes parameter values as name=value pairs sorted by
// name, each value quoted as Go quotes strings.
func FormatParameters(params map[string]string) string {
	parts := make([]string, 0, len(params))
	for _, name := range slices.Sorted(maps.Keys(params)) {
		parts = append(parts, fmt.Sprintf("%s=%q", name, params[name]))
	}
	return strings.Join(parts, " ")
}

func describeRecipients(rs []Recipient) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.Participant + " (key " + r.Key.Short() + ")"
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func (v *verifier) log() (string, string, error) {
	lv, err := tlog.NewCoordinatorVerifier(v.r.CoordinatorKey)
	if err != nil {
		return "", PartCoordinatorKey, err
	}
	started, err := tlog.ParseInclusionProof(v.b.RunStarted.Proof)
	if err != nil {
		return "", PartRunStarted, err
	}
	finished, err := tlog.ParseInclusionProof(v.b.RunFinished.Proof)
	if err != nil {
		return "", PartRunFinished, err
	}
	if !bytes.Equal(started.Checkpoint, finished.Checkpoint) {
		return "", PartCheckpoint, fmt.Errorf("%w: the two inclusion proofs are under different checkpoints; a bundle's are under one", tlog.ErrBadCheckpoint)
	}
	cp, err := lv.VerifyCheckpoint(started.Checkpoint)
	if err != nil {
		return "", PartCheckpoint, err
	}
	s := v.r.Statement
	if started.Index != s.RunStartedIndex {
		return "", PartRunStarted, fmt.Errorf("%w: the proof is for index %d; the statement names index %d", tlog.ErrBadProof, started.Index, s.RunStartedIndex)
	}
	if finished.Index <= started.Index {
		return "", PartRunFinished, fmt.Errorf("%w: the proof is for index %d, not after run.started's %d", tlog.ErrBadProof, finished.Index, started.Index)
	}
	for _, e := range []struct {
		part  string
		proof *tlog.InclusionProof
		entry []byte
	}{{PartRunStarted, started, v.b.RunStarted.Entry}, {PartRunFinished, finished, v.b.RunFinished.Entry}} {
		if _, err := lv.VerifyInclusionProof(e.proof, e.entry); err != nil {
			return "", e.part, fmt.Errorf("%w (the entry or its audit path was altered)", err)
		}
	}
	v.r.Checkpoint, v.r.RunStartedIndex, v.r.RunFinishedIndex = cp, started.Index, finished.Index
	root := cp.Root()
	return fmt.Sprintf("checkpoint of %d entries (root %s) signed by the coordinator for log %s; run.started at index %d and run.finished at index %d are included",
		cp.Size(), hex.EncodeToString(root[:]), cp.Origin(), started.Index, finished.Index), "", nil
}

func (v *verifier) entries() (string, string, error) {
	s, c := v.r.Statement, v.c
	cid := c.ID().String()
	decode := func(part string, raw []byte, typ events.Type) (*events.Event, error) {
		e, err := events.Decode(raw)
		if err != nil {
			return nil, err
		}
		if e.Type != typ {
			return nil, fmt.Errorf("the entry is a %s event, not %s", e.Type, typ)
		}
		if e.Contract != cid {
			return nil, fmt.Errorf("the entry names contract %s, not %s", e.Contract, cid)
		}
		return e, nil
	}
	started, err := decode(PartRunStarted, v.b.RunStarted.Entry, events.TypeRunStarted)
	if err != nil {
		return "", PartRunStarted, err
	}
	rs := started.RunStarted
	algo := hex.EncodeToString(c.Algorithm.SHA256[:])
	switch {
	case rs.RunID != s.RunID:
		return "", PartRunStarted, fmt.Errorf("the entry is for run %s; the statement's is %s", rs.RunID, s.RunID)
	case rs.Number != s.RunNumber:
		return "", PartRunStarted, fmt.Errorf("the entry numbers the run %d; the statement %d", rs.Number, s.RunNumber)
	case rs.AlgorithmSHA256 != algo:
		return "", PartRunStarted, fmt.Errorf("the entry names algorithm %s; the contract and the statement name %s", rs.AlgorithmSHA256, algo)
	}
	want := make(map[string]string, len(s.Datasets))
	for _, d := range s.Datasets {
		want[d.ID] = hex.EncodeToString(d.CiphertextSHA256[:])
	}
	if !maps.Equal(rs.Datasets, want) {
		return "", PartRunStarted, fmt.Errorf("the entry's datasets %v differ from the statement's %v", rs.Datasets, want)
	}
	if !maps.Equal(rs.Parameters, s.Parameters) {
		return "", PartRunStarted, fmt.Errorf("the entry's parameters %s differ from the statement's %s", FormatParameters(rs.Parameters), FormatParameters(s.Parameters))
	}

	finished, err := decode(PartRunFinished, v.b.RunFinished.Entry, events.TypeRunFinished)
	if err != nil {
		return "", PartRunFinished, err
	}
	rf := finished.RunFinished
	wantRF := RunFinished(s, v.b.Statement)
	switch {
	case rf.RunID != s.RunID:
		return "", PartRunFinished, fmt.Errorf("the entry is for run %s; the statement's is %s", rf.RunID, s.RunID)
	case !bytes.Equal(rf.Statement, v.b.Statement):
		return "", PartRunFinished, fmt.Errorf("the entry carries another result statement than the bundle's (SHA-256 %x, not %x)",
			sha256.Sum256(rf.Statement), sha256.Sum256(v.b.Statement))
	case rf.ResultCommitment != wantRF.ResultCommitment:
		return "", PartRunFinished, fmt.Errorf("the entry's result_commitment %s differs from the statement's %s", rf.ResultCommitment, wantRF.ResultCommitment)
	case rf.EncryptedResult != wantRF.EncryptedResult:
		return "", PartRunFinished, fmt.Errorf("the entry's encrypted_result %+v differs from the statement's %+v", rf.EncryptedResult, wantRF.EncryptedResult)
	case rf.RowsKept != s.RowsKept || rf.RowsSuppressed != s.RowsSuppressed:
		return "", PartRunFinished, fmt.Errorf("the entry's rows kept/suppressed %d/%d differ from the statement's %d/%d",
			rf.RowsKept, rf.RowsSuppressed, s.RowsKept, s.RowsSuppressed)
	}
	v.r.RunStarted, v.r.RunFinished = started, finished
	return fmt.Sprintf("run.started (run %d, algorithm %s, %d datasets) and run.finished (this statement, its result commitment, digest and row counts) agree with the statement and the contract",
		rs.Number, algo[:16], len(rs.Datasets)), "", nil
}

func (v *verifier) uploads() (string, string, error) {
	s, c := v.r.Statement, v.c
	parts := make([]string, 0, len(s.Datasets))
	for _, d := range s.Datasets {
		part := PartUploadStatement(d.ID)
		ds := c.Dataset(d.ID)
		p := c.Participant(ds.Provider)
		if p == nil || p.PublicKey == nil {
			return "", PartContract, fmt.Errorf("dataset %s's provider %q is not a participant with a key", d.ID, ds.Provider)
		}
		digest, schema := d.CiphertextSHA256, ds.SchemaDigest()
		expect := upload.Expect{
			ContractID:       c.ID(),
			DatasetID:        d.ID,
			CiphertextSHA256: &digest,
			SchemaDigest:     &schema,
		}
		u, err := upload.Verify(d.UploadStatement, p.PublicKey, expect)
		if err != nil && c.Supersedes != nil {
			// A dataset an amendment carried over keeps the provider's
			// upload of the contract it supersedes (docs/contract.md).
			expect.ContractID = *c.Supersedes
			if cu, cerr := upload.Verify(d.UploadStatement, p.PublicKey, expect); cerr == nil {
				u, err = cu, nil
			}
		}
		if err != nil {
			if errors.Is(err, cleanroom.ErrBadSignature) {
				err = fmt.Errorf("%w (the provider of dataset %s is %s)", err, d.ID, ds.Provider)
			}
			return "", part, err
		}
		if u.RowCount != d.RowCount {
			return "", part, fmt.Errorf("%w: the provider signed %d rows; the result statement names %d", upload.ErrMismatch, u.RowCount, d.RowCount)
		}
		v.r.Uploads = append(v.r.Uploads, u)
		parts = append(parts, fmt.Sprintf("%s: %d rows signed by %s (key %s), ciphertext %x",
			d.ID, d.RowCount, ds.Provider, p.PublicKey.Fingerprint().Short(), d.CiphertextSHA256))
	}
	return strings.Join(parts, "; "), "", nil
}

func (v *verifier) encryptedResult() (string, string, error) {
	s, c, enc := v.r.Statement, v.c, v.b.EncryptedResult
	if sum := sha256.Sum256(enc); sum != s.EncryptedResultSHA256 {
		return "", PartEncryptedResult, fmt.Errorf("its SHA-256 is %x; the statement names %x (the file was altered, truncated or replaced)", sum, s.EncryptedResultSHA256)
	}
	if int64(len(enc)) != s.EncryptedResultSize {
		return "", PartEncryptedResult, fmt.Errorf("it has %d bytes; the statement names %d", len(enc), s.EncryptedResultSize)
	}
	hdr, err := envelope.ParseHeader(bytes.NewReader(enc))
	if err != nil {
		return "", PartEncryptedResult, err
	}
	if _, err := envelope.BodyLayout(int64(len(enc)-hdr.Len()), hdr.SegmentSize, hdr.Len()); err != nil {
		return "", PartEncryptedResult, err
	}
	mismatch := func(field, want, got string) (string, string, error) {
		return "", PartEncryptedResult, &envelope.MismatchError{Field: field, Want: want, Got: got}
	}
	cid := c.ID()
	switch {
	case hdr.Kind != envelope.KindResult:
		return mismatch("kind", envelope.KindResult.String(), hdr.Kind.String())
	case hdr.ContractID != cid:
		return mismatch("contract id", cid.String(), hex.EncodeToString(hdr.ContractID[:]))
	case hdr.ObjectID != s.RunID:
		return mismatch("run id", fmt.Sprintf("%q", s.RunID), fmt.Sprintf("%q", hdr.ObjectID))
	case hdr.SchemaDigest != ResultSchemaDigest:
		return mismatch("schema digest", hex.EncodeToString(ResultSchemaDigest[:]), hex.EncodeToString(hdr.SchemaDigest[:]))
	}
	keys, err := recipientKeys(c)
	if err != nil {
		return "", PartContract, err
	}
	want := make([]string, len(keys))
	for i, k := range keys {
		id := envelope.KeyID(k.HPKE())
		want[i] = hex.EncodeToString(id[:8])
	}
	got := make([]string, len(hdr.Recipients))
	for i, st := range hdr.Recipients {
		got[i] = hex.EncodeToString(st.KeyID[:8])
	}
	if !slices.Equal(got, want) {
		return "", PartEncryptedResult, fmt.Errorf("%w: its recipient key ids are %v; the contract's recipients %v have %v (in this order)",
			envelope.ErrMismatch, got, c.Output.Recipients, want)
	}
	v.r.EnvelopeHeader = hdr
	return fmt.Sprintf("%d bytes, SHA-256 %x: a result envelope for run %s of this contract, sealed to %s",
		len(enc), s.EncryptedResultSHA256, s.RunID, strings.Join(c.Output.Recipients, ", ")), "", nil
}

func (v *verifier) decrypt() (string, string, error) {
	s, id := v.r.Statement, v.opts.Recipient
	plain, salt, err := DecryptResult(v.b.EncryptedResult, id, v.c, s.RunID)
	if err != nil {
		if errors.Is(err, envelope.ErrNotRecipient) {
			return "", PartRecipientKey, err
		}
		return "", PartEncryptedResult, err
	}
	if got := CommitResult(salt, plain); got != s.ResultCommitment {
		clear(plain)
		return "", PartEncryptedResult, fmt.Errorf("the decrypted result's commitment (with the salt it carries) is %x; the statement names %x", got, s.ResultCommitment)
	}
	v.r.Result, v.r.ResultSalt = plain, salt
	who := v.c.ParticipantByKey(id.Public().Fingerprint()).ID
	return fmt.Sprintf("decrypted with %s's key %s: %d bytes and the salt they carry open the statement's result commitment %x",
		who, id.Public().Fingerprint().Short(), len(plain), s.ResultCommitment), "", nil
}
