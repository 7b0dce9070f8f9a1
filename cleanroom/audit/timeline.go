package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/contracts"
)

// timeline checks the verified entries of a log, in order, against a
// contract and the attested coordinator, and fills the contract's part of a
// report. It does no I/O, and never trusts an entry beyond what it verifies:
// every signature an event carries is checked, and every rule of
// docs/events.md that the auditor can check is.
type timeline struct {
	c     *contracts.Contract
	cid   string
	coord *Coordinator
	doc   []byte
	r     *Report

	seenIDs      map[string]bool
	lastTime     time.Time
	uploads      map[string]*events.DatasetUploaded
	runs         map[string]*RunFact
	runByID      map[string]int // run id → index in r.Runs
	algorithm    bool
	models       map[string]bool // models submitted so far
	lastStart    *events.CoordinatorStarted
	lastStartIdx uint64
	evidenceIdxs []uint64 // starts that record the attested evidence
	cur          *TimelineEntry
	chains       map[string]*chainLink // events scope → its last event shown

	// Contracts over time (SPEC §13).
	suspendedAt    *uint64           // log index of the suspension in force
	supersededAt   *uint64           // log index of contract.superseded
	deleted        map[string]uint64 // dataset id → log index of its deletion
	expiredResults map[string]uint64 // run id → log index of result.expired
}

// chainLink is the last event of a scope's chain the audit was shown.
type chainLink struct {
	seq   uint64
	leaf  [32]byte
	index uint64
}

// checkTimeline fills r's contract facts, timeline, log counts, problems and
// warnings from entries (entry i at index i; nil for an entry redacted in
// the contract's view).
func checkTimeline(r *Report, entries [][]byte, c *contracts.Contract, coord *Coordinator, doc []byte) {
	t := &timeline{
		c: c, cid: c.ID().String(), coord: coord, doc: doc, r: r,
		seenIDs: map[string]bool{}, uploads: map[string]*events.DatasetUploaded{},
		runs: map[string]*RunFact{}, runByID: map[string]int{}, chains: map[string]*chainLink{},
		deleted: map[string]uint64{}, expiredResults: map[string]uint64{},
	}
	t.contractFacts()
	for i, raw := range entries {
		t.entry(uint64(i), raw)
	}
	t.finish()
}

func (t *timeline) contractFacts() {
	c := t.c
	r := t.r
	r.Contract = ContractFacts{
		ID: t.cid, Name: c.Name, ExpiresAt: c.ExpiresAt.UTC(), Platform: string(c.Coordinator.Platform),
		MaxRuns: c.Output.MaxRuns, MaxRows: c.Output.MaxRows, GroupSizeColumn: c.Output.GroupSizeColumn,
		MinGroupSize: c.Output.MinGroupSize, Recipients: slices.Clone(c.Output.Recipients),
	}
	if r.Contract.Recipients == nil {
		r.Contract.Recipients = []string{}
	}
	r.Parties = make([]ParticipantFact, 0, len(c.Participants))
	for _, p := range c.Participants {
		roles := make([]string, len(p.Roles))
		for i, ro := range p.Roles {
			roles[i] = string(ro)
		}
		r.Parties = append(r.Parties, ParticipantFact{ID: p.ID, Roles: roles, Key: p.PublicKey.Fingerprint().String()})
	}
	r.Datasets = make([]DatasetFact, 0, len(c.Datasets))
	for i := range c.Datasets {
		d := &c.Datasets[i]
		df := DatasetFact{ID: d.ID, Provider: d.Provider, SchemaDigest: hexs(d.SchemaDigest())}
		if p := c.Participant(d.Provider); p != nil && p.PublicKey != nil {
			df.ProviderKey = p.PublicKey.Fingerprint().String()
		}
		r.Datasets = append(r.Datasets, df)
	}
	r.Algorithm = AlgorithmFact{Provider: c.Algorithm.Provider, SHA256: hexs(c.Algorithm.SHA256), Confidential: c.Algorithm.Confidential}
	r.Runs = []RunFact{}
	r.Timeline = []TimelineEntry{}
}

// hexs writes a digest or key in lowercase hex.
func hexs[T ~[]byte | ~[32]byte](b T) string { return fmt.Sprintf("%x", b) }

func digest(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// problem records a violation in the current entry.
func (t *timeline) problem(idx uint64, format string, args ...any) {
	t.r.Problems = append(t.r.Problems, Finding{Index: ptr(idx), Message: fmt.Sprintf(format, args...)})
	if t.cur != nil && t.cur.Index == idx {
		t.cur.OK = false
	}
}

func (t *timeline) warning(idx *uint64, format string, args ...any) {
	t.r.Warnings = append(t.r.Warnings, Finding{Index: idx, Message: fmt.Sprintf(format, args...)})
}

func (t *timeline) entry(idx uint64, raw []byte) {
	if len(raw) == 0 {
		t.r.Log.OtherEvents++ // redacted: another contract's
		return
	}
	ev, err := events.Decode(raw)
	if err != nil {
		// The coordinator refuses to start on such a log; an entry that is
		// included under a signed checkpoint but is no event is a fault.
		t.cur = nil
		t.problem(idx, "entry %d is not a valid event: %v", idx, err)
		return
	}
	if t.seenIDs[ev.ID] {
		t.warning(ptr(idx), "entry %d repeats event id %s; replay ignores it, and so does this audit", idx, ev.ID)
		return
	}
	t.seenIDs[ev.ID] = true
	if ev.Scope() != t.cid && ev.Scope() != events.CoordinatorScope {
		t.cur = nil
		t.problem(idx, "entry %d is a %s event of another contract, served in this contract's view: the coordinator breaks the isolation of contracts", idx, ev.Type)
		return
	}
	if !t.lastTime.IsZero() && ev.Time.Before(t.lastTime) {
		t.warning(ptr(idx), "entry %d (%s) is dated %s, before the entry preceding it (%s): the coordinator's clock went backwards (the log index, not the time, orders events)",
			idx, ev.Type, ev.Time.UTC().Format(time.RFC3339Nano), t.lastTime.UTC().Format(time.RFC3339Nano))
	}
	if ev.Time.After(t.lastTime) {
		t.lastTime = ev.Time
	}
	if ev.Type == events.TypeCoordinatorStarted {
		t.open(idx, ev)
		t.link(idx, ev, raw)
		t.coordinatorStarted(idx, ev)
		return
	}
	t.r.Log.ContractEvents++
	t.open(idx, ev)
	t.link(idx, ev, raw)
	if ev.Type != events.TypeContractRegistered && t.r.Contract.Registered == nil {
		t.problem(idx, "%s event at index %d comes before the contract's registration", ev.Type, idx)
	}
	if ev.Actor != "" {
		p := t.c.Participant(ev.Actor)
		switch {
		case p == nil:
			t.problem(idx, "%s event at index %d names actor %q, who is not a participant of the contract", ev.Type, idx, ev.Actor)
		case p.PublicKey.Fingerprint().String() != ev.ActorKey:
			t.problem(idx, "%s event at index %d names actor %s with key %s, but the contract gives %s the key %s",
				ev.Type, idx, ev.Actor, ev.ActorKey, ev.Actor, p.PublicKey.Fingerprint())
		}
	}
	switch ev.Type {
	case events.TypeContractRegistered:
		t.contractRegistered(idx, ev)
	case events.TypeDatasetUploaded:
		t.datasetUploaded(idx, ev)
	case events.TypeAlgorithmSubmitted:
		t.algorithmSubmitted(idx, ev)
	case events.TypeModelSubmitted:
		t.modelSubmitted(idx, ev)
	case events.TypeRunStarted:
		t.runStarted(idx, ev)
	case events.TypeRunFinished:
		t.runFinished(idx, ev)
	case events.TypeRunRefused:
		t.runRefused(idx, ev)
	case events.TypeRunAborted:
		t.runAborted(idx, ev)
	case events.TypeResultFetched:
		t.resultFetched(idx, ev)
	case events.TypeContractSuspended:
		t.contractSuspended(idx, ev)
	case events.TypeContractResumed:
		t.contractResumed(idx, ev)
	case events.TypeContractSuperseded:
		t.contractSuperseded(idx, ev)
	case events.TypeDatasetWithdrawn, events.TypeDatasetExpired:
		t.datasetDeleted(idx, ev)
	case events.TypeResultExpired:
		t.resultExpired(idx, ev)
	}
}

// link checks that ev continues its scope's chain: the next seq, and prev
// the leaf hash of the scope's event before. A gap means events of the
// scope were withheld from this view.
func (t *timeline) link(idx uint64, ev *events.Event, raw []byte) {
	scope := "this contract"
	if ev.Scope() == events.CoordinatorScope {
		scope = "the coordinator's starts"
	}
	last := t.chains[ev.Scope()]
	if last == nil {
		last = &chainLink{}
	}
	switch {
	case ev.Seq > last.seq+1 && last.seq == 0:
		t.problem(idx, "entry %d is event %d of the chain of %s, but no earlier one was shown: events 1 to %d were withheld", idx, ev.Seq, scope, ev.Seq-1)
	case ev.Seq > last.seq+1:
		t.problem(idx, "entry %d is event %d of the chain of %s, but the one before it shown is event %d (entry %d): events %d to %d were withheld",
			idx, ev.Seq, scope, last.seq, last.index, last.seq+1, ev.Seq-1)
	case ev.Seq <= last.seq:
		t.problem(idx, "entry %d is event %d of the chain of %s again (event %d was entry %d)", idx, ev.Seq, scope, last.seq, last.index)
	case last.seq > 0 && ev.Prev != hexs(last.leaf):
		t.problem(idx, "entry %d links to %s as the event before it in the chain of %s, but that event (entry %d) has leaf hash %x", idx, ev.Prev, scope, last.index, last.leaf)
	}
	t.chains[ev.Scope()] = &chainLink{seq: ev.Seq, leaf: tlog.HashLeaf(raw), index: idx}
}

// open appends the timeline row of an event; the handlers fill its summary
// and details.
func (t *timeline) open(idx uint64, ev *events.Event) {
	t.r.Timeline = append(t.r.Timeline, TimelineEntry{
		Index: idx, Time: ev.Time.UTC(), Type: string(ev.Type), EventID: ev.ID,
		Actor: ev.Actor, ActorKey: ev.ActorKey, Details: map[string]string{}, OK: true,
	})
	t.cur = &t.r.Timeline[len(t.r.Timeline)-1]
}

func (t *timeline) coordinatorStarted(idx uint64, ev *events.Event) {
	b := ev.CoordinatorStarted
	t.r.Log.CoordinatorStarts++
	t.r.Coordinator.Starts++
	t.cur.Summary = fmt.Sprintf("coordinator started (%s, cleanroomd %s), evidence %s", b.Platform, b.Software, short(b.EvidenceSHA256))
	t.cur.Details = map[string]string{
		"platform": b.Platform, "measurement": b.Measurement, "public_key": b.PublicKey,
		"evidence_sha256": b.EvidenceSHA256, "software": b.Software,
	}
	co := t.coord
	if b.PublicKey != co.PublicKey.Fingerprint().String() {
		t.problem(idx, "coordinator.started at index %d names key %s, not the attested key %s whose log this is", idx, b.PublicKey, co.PublicKey.Fingerprint())
	}
	if b.Platform != string(co.Platform) {
		t.problem(idx, "coordinator.started at index %d names platform %s; the attested coordinator runs on %s", idx, b.Platform, co.Platform)
	}
	if b.Measurement != hex.EncodeToString(co.Measurement[:]) {
		t.problem(idx, "coordinator.started at index %d names measurement %s; the attested coordinator's is %x (its key is sealed to its measurement, so one key cannot start under two)",
			idx, b.Measurement, co.Measurement)
	}
	if b.EvidenceSHA256 == hexs(co.EvidenceSHA256) {
		t.evidenceIdxs = append(t.evidenceIdxs, idx)
		t.cur.Details["attested_now"] = "true"
	}
	t.lastStart, t.lastStartIdx = b, idx
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

func (t *timeline) contractRegistered(idx uint64, ev *events.Event) {
	b := ev.ContractRegistered
	c := t.c
	t.cur.Summary = fmt.Sprintf("contract %q registered by %s with %d signatures", b.Name, ev.Actor, len(b.Signatures))
	t.cur.Details = map[string]string{
		"name": b.Name, "expires_at": b.ExpiresAt.UTC().Format(time.RFC3339), "doc_sha256": b.DocSHA256,
		"document_sha256": b.Document.SHA256, "signatures": strings.Join(slices.Sorted(maps.Keys(b.Signatures)), ","),
	}
	if t.r.Contract.Registered != nil {
		t.problem(idx, "contract.registered at index %d registers the contract a second time (first at index %d)", idx, *t.r.Contract.Registered)
		return
	}
	t.r.Contract.Registered, t.r.Contract.RegisteredAt, t.r.Contract.RegisteredBy = ptr(idx), ptr(ev.Time.UTC()), ev.Actor
	if c.Supersedes != nil {
		t.cur.Summary += fmt.Sprintf(", superseding contract %s (%d runs carried over)", short(c.Supersedes.String()), b.CarriedRuns)
		t.cur.Details["supersedes"] = c.Supersedes.String()
		t.cur.Details["carried_runs"] = fmt.Sprint(b.CarriedRuns)
		if len(b.SupersedesSignatures) == 0 {
			t.problem(idx, "contract.registered at index %d registers an amendment of contract %s without the approvals of its participants (supersedes_signatures)", idx, c.Supersedes)
		}
		// Runs of the superseded contracts count against max_runs.
		t.r.Contract.RunsStarted = b.CarriedRuns
	} else if b.CarriedRuns != 0 || len(b.SupersedesSignatures) > 0 {
		t.problem(idx, "contract.registered at index %d carries runs or approvals over, but the contract supersedes none", idx)
	}
	t.r.Contract.DocSHA256 = b.DocSHA256
	t.r.Contract.DocMatches = t.doc != nil && digest(t.doc) == b.DocSHA256
	if ev.Actor == "" {
		t.problem(idx, "contract.registered at index %d names no participant who submitted it", idx)
	}
	if b.Name != c.Name {
		t.problem(idx, "contract.registered at index %d names the contract %q; yours is %q", idx, b.Name, c.Name)
	}
	if !b.ExpiresAt.Equal(c.ExpiresAt) {
		t.problem(idx, "contract.registered at index %d says it expires at %s; your contract says %s", idx, b.ExpiresAt.UTC().Format(time.RFC3339), c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if !ev.Time.Before(c.ExpiresAt) {
		t.problem(idx, "contract.registered at index %d is dated %s, when the contract had expired (%s)", idx, ev.Time.UTC().Format(time.RFC3339), c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	for _, id := range slices.Sorted(maps.Keys(b.Signatures)) {
		if c.Participant(id) == nil {
			t.problem(idx, "contract.registered at index %d carries a signature under %q, who is not a participant", idx, id)
		}
	}
	for i := range c.Participants {
		p := &c.Participants[i]
		pf := &t.r.Parties[i]
		sig, ok := b.Signatures[p.ID]
		if !ok {
			t.problem(idx, "contract.registered at index %d has no signature by participant %s: the coordinator must not accept a contract not everyone signed", idx, p.ID)
			continue
		}
		pf.SignatureSHA256 = digest(sig)
		who, err := c.VerifySignature(contracts.SignedBy{Source: fmt.Sprintf("log entry %d", idx), Data: sig})
		switch {
		case err != nil:
			t.problem(idx, "signature of participant %s in contract.registered (index %d) does not count: %v", p.ID, idx, err)
		case who != p.ID:
			t.problem(idx, "contract.registered at index %d files %s's signature under %s", idx, who, p.ID)
		default:
			pf.SignatureVerified = true
		}
	}
}

func (t *timeline) datasetUploaded(idx uint64, ev *events.Event) {
	b := ev.DatasetUploaded
	c := t.c
	t.cur.Summary = fmt.Sprintf("dataset %s uploaded: %d rows, ciphertext %s (%d bytes)", b.Dataset, b.Rows, short(b.Ciphertext.SHA256), b.Ciphertext.Size)
	t.cur.Details = map[string]string{
		"dataset": b.Dataset, "ciphertext_sha256": b.Ciphertext.SHA256, "ciphertext_size": fmt.Sprint(b.Ciphertext.Size),
		"rows": fmt.Sprint(b.Rows), "schema_digest": b.SchemaDigest, "header_sha256": b.HeaderSHA256,
		"upload_statement_sha256": digest(b.UploadStatement), "stored_sha256": b.Stored.SHA256,
		"stored_size": fmt.Sprint(b.Stored.Size), "stored_header_sha256": b.StoredHeaderSHA256,
	}
	ds := c.Dataset(b.Dataset)
	if ds == nil {
		t.problem(idx, "dataset.uploaded at index %d is for dataset %q, which the contract does not have", idx, b.Dataset)
		return
	}
	if prev := t.uploads[b.Dataset]; prev != nil {
		t.problem(idx, "dataset.uploaded at index %d uploads dataset %s a second time; datasets are immutable", idx, b.Dataset)
		return
	}
	df := &t.r.Datasets[slices.IndexFunc(c.Datasets, func(d contracts.Dataset) bool { return d.ID == b.Dataset })]
	t.uploads[b.Dataset] = b
	df.Uploaded, df.Index, df.Time = true, ptr(idx), ptr(ev.Time.UTC())
	df.CiphertextSHA256, df.CiphertextSize, df.Rows = b.Ciphertext.SHA256, b.Ciphertext.Size, b.Rows
	df.StatementSHA256 = digest(b.UploadStatement)
	if ev.Actor != ds.Provider {
		t.problem(idx, "dataset.uploaded at index %d was made by %q; only the provider %s may upload dataset %s", idx, ev.Actor, ds.Provider, ds.ID)
	}
	schema := ds.SchemaDigest()
	if b.SchemaDigest != hexs(schema) {
		t.problem(idx, "dataset.uploaded at index %d names schema digest %s; the contract's dataset %s has %x", idx, b.SchemaDigest, ds.ID, schema)
	}
	p := c.Participant(ds.Provider)
	if p == nil || p.PublicKey == nil {
		t.problem(idx, "dataset %s's provider %q is not a participant with a key", ds.ID, ds.Provider)
		return
	}
	ctDigest, err := parseDigest(b.Ciphertext.SHA256)
	if err != nil {
		t.problem(idx, "dataset.uploaded at index %d: ciphertext digest: %v", idx, err)
		return
	}
	uploadContract := c.ID()
	if b.CarriedFrom != "" {
		t.cur.Details["carried_from"] = b.CarriedFrom
		t.cur.Summary += ", carried over from contract " + short(b.CarriedFrom)
		if c.Supersedes == nil || b.CarriedFrom != c.Supersedes.String() {
			t.problem(idx, "dataset.uploaded at index %d carries dataset %s over from contract %s, which this contract does not supersede", idx, ds.ID, b.CarriedFrom)
			return
		}
		uploadContract = *c.Supersedes
	}
	st, err := upload.Verify(b.UploadStatement, p.PublicKey, upload.Expect{
		ContractID: uploadContract, DatasetID: ds.ID, CiphertextSHA256: &ctDigest, SchemaDigest: &schema,
	})
	if err != nil {
		t.problem(idx, "upload statement of dataset %s (index %d) does not verify under provider %s's key %s: %v", ds.ID, idx, ds.Provider, p.PublicKey.Fingerprint().Short(), err)
		return
	}
	switch {
	case st.RowCount != b.Rows:
		t.problem(idx, "dataset.uploaded at index %d records %d rows; the provider signed %d", idx, b.Rows, st.RowCount)
	case st.CiphertextSize != b.Ciphertext.Size:
		t.problem(idx, "dataset.uploaded at index %d records a %d-byte envelope; the provider signed %d bytes", idx, b.Ciphertext.Size, st.CiphertextSize)
	case b.HeaderSHA256 != hexs(st.HeaderSHA256):
		t.problem(idx, "dataset.uploaded at index %d records header digest %s; the provider signed %x", idx, b.HeaderSHA256, st.HeaderSHA256)
	default:
		df.StatementVerified = true
	}
	if b.Stored.SHA256 == b.Ciphertext.SHA256 || b.StoredHeaderSHA256 == b.HeaderSHA256 {
		// The coordinator must store an envelope of its own: the
		// provider's, whose data key the provider knows, could be swapped
		// for other rows under the same header between runs.
		t.problem(idx, "dataset.uploaded at index %d stores the provider's own envelope of dataset %s instead of re-encrypting it: runs over it cannot be proven to read what the provider signed", idx, ds.ID)
	}
}

func parseDigest(s string) ([32]byte, error) {
	var d [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return d, fmt.Errorf("%q is not 64 hex digits", s)
	}
	copy(d[:], b)
	return d, nil
}

func (t *timeline) algorithmSubmitted(idx uint64, ev *events.Event) {
	b := ev.AlgorithmSubmitted
	c := t.c
	t.cur.Summary = fmt.Sprintf("algorithm submitted: sha256 %s%s", short(b.SHA256), map[bool]string{true: " (confidential)"}[b.Confidential])
	t.cur.Details = map[string]string{"sha256": b.SHA256, "confidential": fmt.Sprint(b.Confidential), "text_sha256": b.Text.SHA256}
	if t.algorithm {
		t.problem(idx, "algorithm.submitted at index %d submits the algorithm a second time", idx)
		return
	}
	t.algorithm = true
	a := &t.r.Algorithm
	a.Submitted, a.Index, a.Time = true, ptr(idx), ptr(ev.Time.UTC())
	if ev.Actor != c.Algorithm.Provider {
		t.problem(idx, "algorithm.submitted at index %d was made by %q; only the algorithm provider %s may submit it", idx, ev.Actor, c.Algorithm.Provider)
	}
	if b.SHA256 != hexs(c.Algorithm.SHA256) {
		t.problem(idx, "algorithm.submitted at index %d has sha256 %s; the contract approves only %x", idx, b.SHA256, c.Algorithm.SHA256)
	}
	if b.Confidential != c.Algorithm.Confidential {
		t.problem(idx, "algorithm.submitted at index %d says confidential=%v; the contract says %v", idx, b.Confidential, c.Algorithm.Confidential)
	}
}

func (t *timeline) modelSubmitted(idx uint64, ev *events.Event) {
	b := ev.ModelSubmitted
	c := t.c
	what := "sha256"
	if b.Confidential {
		what = "commitment"
	}
	t.cur.Summary = fmt.Sprintf("model %s submitted by %s: %s %s%s", b.Name, ev.Actor, what, short(b.Commitment), map[bool]string{true: " (confidential)"}[b.Confidential])
	t.cur.Details = map[string]string{"name": b.Name, "commitment": b.Commitment, "confidential": fmt.Sprint(b.Confidential), "module_blob_sha256": b.Module.SHA256}
	m := c.Model(b.Name)
	if m == nil || m.Name != b.Name {
		t.problem(idx, "model.submitted at index %d submits model %q, which the contract does not name", idx, b.Name)
		return
	}
	t.cur.Details["provider"] = m.Provider
	if t.models == nil {
		t.models = map[string]bool{}
	}
	if t.models[b.Name] {
		t.problem(idx, "model.submitted at index %d submits model %s a second time", idx, b.Name)
		return
	}
	t.models[b.Name] = true
	if ev.Actor != m.Provider {
		t.problem(idx, "model.submitted at index %d was made by %q; only the model's provider %s may submit it", idx, ev.Actor, m.Provider)
	}
	if b.Commitment != hexs(m.SHA256) {
		t.problem(idx, "model.submitted at index %d has commitment %s; the contract approves only %x", idx, b.Commitment, m.SHA256)
	}
	if b.Confidential != m.Confidential {
		t.problem(idx, "model.submitted at index %d says confidential=%v; the contract says %v", idx, b.Confidential, m.Confidential)
	}
}

func (t *timeline) runStarted(idx uint64, ev *events.Event) {
	b := ev.RunStarted
	c := t.c
	for _, m := range c.Models {
		if !t.models[m.Name] {
			t.problem(idx, "run.started at index %d comes before model %s was submitted", idx, m.Name)
		}
	}
	t.cur.Summary = fmt.Sprintf("run %d of %d started (run %s)", b.Number, c.Output.MaxRuns, b.RunID)
	if len(b.Parameters) > 0 {
		t.cur.Summary += " with " + bundle.FormatParameters(b.Parameters)
	}
	t.cur.Details = map[string]string{"run_id": b.RunID, "number": fmt.Sprint(b.Number), "algorithm_sha256": b.AlgorithmSHA256}
	for ds, d := range b.Datasets {
		t.cur.Details["dataset."+ds] = d
	}
	for name, v := range b.Parameters {
		t.cur.Details["parameter."+name] = v
	}
	if canonical, err := c.Algorithm.CheckParameters(b.Parameters); err != nil {
		t.problem(idx, "run.started at index %d runs with parameters the contract does not allow: %s", idx, strings.ReplaceAll(err.Error(), "\n", "; "))
	} else if !maps.Equal(canonical, b.Parameters) && len(canonical)+len(b.Parameters) > 0 {
		t.problem(idx, "run.started at index %d gives parameters %s, not in their canonical form %s", idx, bundle.FormatParameters(b.Parameters), bundle.FormatParameters(canonical))
	}
	if _, dup := t.runByID[b.RunID]; dup {
		t.problem(idx, "run.started at index %d starts run %s a second time", idx, b.RunID)
		return
	}
	rf := RunFact{
		RunID: b.RunID, Number: b.Number, StartedIndex: idx, StartedAt: ev.Time.UTC(), RequestedBy: ev.Actor,
		AlgorithmSHA256: b.AlgorithmSHA256, Datasets: maps.Clone(b.Datasets), Status: RunRunning, Fetches: []Fetch{},
		Parameters: maps.Clone(b.Parameters),
	}
	if rf.Datasets == nil {
		rf.Datasets = map[string]string{}
	}
	t.r.Runs = append(t.r.Runs, rf)
	t.runByID[b.RunID] = len(t.r.Runs) - 1
	t.r.Contract.RunsStarted++
	if want := t.r.Contract.RunsStarted; b.Number != want {
		t.problem(idx, "run.started at index %d numbers its run %d; it is run %d of the contract", idx, b.Number, want)
	}
	if t.r.Contract.RunsStarted > c.Output.MaxRuns {
		t.problem(idx, "run.started at index %d starts run %d, over the contract's max_runs of %d", idx, t.r.Contract.RunsStarted, c.Output.MaxRuns)
	}
	if ev.Actor != c.Algorithm.Provider && !c.IsRecipient(ev.Actor) {
		t.problem(idx, "run.started at index %d was requested by %q, who is neither the algorithm provider nor a result recipient", idx, ev.Actor)
	}
	if !ev.Time.Before(c.ExpiresAt) {
		t.problem(idx, "run.started at index %d is dated %s, after the contract expired (%s)", idx, ev.Time.UTC().Format(time.RFC3339), c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if !t.algorithm {
		t.problem(idx, "run.started at index %d comes before the algorithm was submitted", idx)
	}
	if b.AlgorithmSHA256 != hexs(c.Algorithm.SHA256) {
		t.problem(idx, "run.started at index %d runs algorithm %s; the contract approves only %x", idx, b.AlgorithmSHA256, c.Algorithm.SHA256)
	}
	if t.suspendedAt != nil {
		t.problem(idx, "run.started at index %d starts a run while the contract is suspended (contract.suspended at index %d, not resumed)", idx, *t.suspendedAt)
	}
	if t.supersededAt != nil {
		t.problem(idx, "run.started at index %d starts a run of a contract superseded at index %d", idx, *t.supersededAt)
	}
	for _, d := range slices.Sorted(maps.Keys(t.deleted)) {
		t.problem(idx, "run.started at index %d starts a run after dataset %s was deleted (index %d)", idx, d, t.deleted[d])
	}
	for _, d := range c.Datasets {
		up := t.uploads[d.ID]
		switch {
		case up == nil:
			t.problem(idx, "run.started at index %d comes before dataset %s was uploaded", idx, d.ID)
		case b.Datasets[d.ID] != up.Ciphertext.SHA256:
			t.problem(idx, "run.started at index %d uses dataset %s with ciphertext %q; the upload logged is %s", idx, d.ID, b.Datasets[d.ID], up.Ciphertext.SHA256)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(b.Datasets)) {
		if c.Dataset(id) == nil {
			t.problem(idx, "run.started at index %d names dataset %q, which the contract does not have", idx, id)
		}
	}
}

// endRun returns the run an ending event is for, or nil after recording a
// problem when it has not started or has ended already.
func (t *timeline) endRun(idx uint64, ev *events.Event, runID string) *RunFact {
	i, ok := t.runByID[runID]
	if !ok {
		t.problem(idx, "%s at index %d is for run %s, which never started", ev.Type, idx, runID)
		return nil
	}
	rf := &t.r.Runs[i]
	if rf.Status != RunRunning {
		t.problem(idx, "%s at index %d ends run %s a second time (it %s at index %d)", ev.Type, idx, runID, rf.Status, *rf.EndedIndex)
		return nil
	}
	rf.EndedIndex, rf.EndedAt = ptr(idx), ptr(ev.Time.UTC())
	return rf
}

func (t *timeline) runFinished(idx uint64, ev *events.Event) {
	b := ev.RunFinished
	c := t.c
	t.cur.Summary = fmt.Sprintf("run %s finished: %d rows released, %d suppressed; result commitment %s", b.RunID, b.RowsKept, b.RowsSuppressed, short(b.ResultCommitment))
	t.cur.Details = map[string]string{
		"run_id": b.RunID, "result_commitment": b.ResultCommitment, "encrypted_result_sha256": b.EncryptedResult.SHA256,
		"encrypted_result_size": fmt.Sprint(b.EncryptedResult.Size), "rows_kept": fmt.Sprint(b.RowsKept),
		"rows_suppressed": fmt.Sprint(b.RowsSuppressed), "statement_sha256": digest(b.Statement),
	}
	if ev.Actor != "" {
		t.problem(idx, "run.finished at index %d names an actor (%s); the coordinator finishes runs itself", idx, ev.Actor)
	}
	rf := t.endRun(idx, ev, b.RunID)
	if rf == nil {
		return
	}
	rf.Status = RunFinished
	rf.RowsKept, rf.RowsSuppressed, rf.ResultCommitment = b.RowsKept, b.RowsSuppressed, b.ResultCommitment
	rf.EncryptedResultSHA256, rf.EncryptedResultSize = b.EncryptedResult.SHA256, b.EncryptedResult.Size
	rf.StatementSHA256 = digest(b.Statement)
	if b.RowsKept > c.Output.MaxRows {
		t.problem(idx, "run %s released %d rows, over the contract's max_rows of %d", b.RunID, b.RowsKept, c.Output.MaxRows)
	}
	st, err := bundle.VerifyStatement(b.Statement, t.coord.PublicKey)
	if err != nil {
		t.problem(idx, "result statement of run %s (index %d) does not verify under the attested coordinator key %s: %v", b.RunID, idx, t.coord.PublicKey.Fingerprint().Short(), err)
		return
	}
	if msgs := t.statementMismatches(st, b, rf); len(msgs) > 0 {
		for _, m := range msgs {
			t.problem(idx, "result statement of run %s (index %d): %s", b.RunID, idx, m)
		}
		return
	}
	rf.StatementVerified = true
}

// statementMismatches compares a verified result statement with the event
// that carries it, the run's start and the logged uploads.
func (t *timeline) statementMismatches(st *bundle.Statement, b *events.RunFinished, rf *RunFact) []string {
	c := t.c
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if st.ContractID != c.ID() {
		add("it is for contract %x, not %s", st.ContractID, t.cid)
	}
	if st.RunID != b.RunID {
		add("it is for run %s, not %s", st.RunID, b.RunID)
	}
	if st.RunNumber != rf.Number {
		add("it numbers the run %d; run.started numbers it %d", st.RunNumber, rf.Number)
	}
	if st.RunStartedIndex != rf.StartedIndex {
		add("it puts run.started at index %d; the log has it at %d", st.RunStartedIndex, rf.StartedIndex)
	}
	if st.AlgorithmSHA256 != c.Algorithm.SHA256 {
		add("it names algorithm %x; the contract approves only %x", st.AlgorithmSHA256, c.Algorithm.SHA256)
	}
	want := bundle.RunFinished(st, b.Statement)
	if want.ResultCommitment != b.ResultCommitment {
		add("it signs result_commitment %s; the event says %s", want.ResultCommitment, b.ResultCommitment)
	}
	if want.EncryptedResult != b.EncryptedResult {
		add("it signs the encrypted result %s (%d bytes); the event says %s (%d bytes)", want.EncryptedResult.SHA256, want.EncryptedResult.Size, b.EncryptedResult.SHA256, b.EncryptedResult.Size)
	}
	if want.RowsKept != b.RowsKept || want.RowsSuppressed != b.RowsSuppressed {
		add("it signs %d rows kept and %d suppressed; the event says %d and %d", want.RowsKept, want.RowsSuppressed, b.RowsKept, b.RowsSuppressed)
	}
	if len(st.Datasets) != len(c.Datasets) {
		add("it names %d datasets; the contract has %d", len(st.Datasets), len(c.Datasets))
	} else {
		for i, d := range st.Datasets {
			cd := c.Datasets[i]
			up := t.uploads[cd.ID]
			switch {
			case d.ID != cd.ID:
				add("its dataset %d is %q; the contract's is %s", i, d.ID, cd.ID)
			case hexs(d.CiphertextSHA256) != rf.Datasets[d.ID]:
				add("it names ciphertext %x for dataset %s; run.started names %s", d.CiphertextSHA256, d.ID, rf.Datasets[d.ID])
			case up == nil:
				add("it names an upload of dataset %s that the log does not have", d.ID)
			case !bytes.Equal(d.UploadStatement, up.UploadStatement):
				add("it carries another upload statement for dataset %s than the one logged (SHA-256 %s, logged %s)", d.ID, digest(d.UploadStatement), digest(up.UploadStatement))
			case d.RowCount != up.Rows:
				add("it names %d rows for dataset %s; the upload logged %d", d.RowCount, d.ID, up.Rows)
			}
		}
	}
	if recips, err := bundle.Recipients(c); err != nil {
		add("%v", err)
	} else if !slices.Equal(recips, st.Recipients) {
		add("it seals the result to %s; the contract's recipients are %s", describeRecipients(st.Recipients), describeRecipients(recips))
	}
	return out
}

func describeRecipients(rs []bundle.Recipient) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.Participant + " (" + r.Key.Short() + ")"
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func (t *timeline) runRefused(idx uint64, ev *events.Event) {
	b := ev.RunRefused
	t.cur.Details = map[string]string{"stage": b.Stage, "reason": b.Reason}
	if b.RunID == "" {
		t.cur.Summary = fmt.Sprintf("run refused at admission (no run counted): %s", b.Reason)
		t.r.Contract.RefusedAtAdmission++
		if b.Stage != "admission" {
			t.problem(idx, "run.refused at index %d refuses at stage %s without naming the run it counted", idx, b.Stage)
		}
		return
	}
	t.cur.Details["run_id"] = b.RunID
	t.cur.Summary = fmt.Sprintf("run %s refused at stage %s: %s", b.RunID, b.Stage, b.Reason)
	if b.SealedReason != nil {
		// The full reason is sealed to the confidential algorithm's
		// provider; an auditor sees only that it exists.
		t.cur.Details["sealed_reason_sha256"] = digest(b.SealedReason)
		switch {
		case b.SealedTo == "":
			t.cur.Summary += fmt.Sprintf(" (full reason sealed to %s)", t.c.Algorithm.Provider)
			if !t.c.Algorithm.Confidential {
				t.problem(idx, "run.refused at index %d seals the reason of run %s, but the contract's algorithm is not confidential: its reasons are public", idx, b.RunID)
			}
		case !t.c.ProvidesModel(b.SealedTo):
			t.problem(idx, "run.refused at index %d seals the reason of run %s to %q, who provides no model of the contract", idx, b.RunID, b.SealedTo)
		default:
			// A failing model's detail is sealed to its provider
			// (docs/models.md §5).
			t.cur.Details["sealed_to"] = b.SealedTo
			t.cur.Summary += fmt.Sprintf(" (the model's detail sealed to %s)", b.SealedTo)
		}
	}
	if b.Stage == "admission" {
		t.problem(idx, "run.refused at index %d refuses run %s at admission, but the run had started", idx, b.RunID)
	}
	if ev.Actor != "" {
		t.problem(idx, "run.refused at index %d for run %s names an actor (%s); the coordinator ends runs itself", idx, b.RunID, ev.Actor)
	}
	if rf := t.endRun(idx, ev, b.RunID); rf != nil {
		rf.Status, rf.Stage, rf.Reason, rf.ReasonSealed = RunRefused, b.Stage, b.Reason, b.SealedReason != nil
	}
}

func (t *timeline) runAborted(idx uint64, ev *events.Event) {
	b := ev.RunAborted
	t.cur.Summary = fmt.Sprintf("run %s aborted: %s", b.RunID, b.Reason)
	t.cur.Details = map[string]string{"run_id": b.RunID, "reason": b.Reason}
	if rf := t.endRun(idx, ev, b.RunID); rf != nil {
		rf.Status, rf.Reason = RunAborted, b.Reason
	}
	// A run is aborted only by a coordinator that restarted during it.
	if t.lastStart == nil || t.runByIDStarted(b.RunID) > t.lastStartIdx {
		t.problem(idx, "run.aborted at index %d for run %s has no coordinator restart between the run's start and its abort", idx, b.RunID)
	}
}

func (t *timeline) runByIDStarted(runID string) uint64 {
	if i, ok := t.runByID[runID]; ok {
		return t.r.Runs[i].StartedIndex
	}
	return 0
}

func (t *timeline) resultFetched(idx uint64, ev *events.Event) {
	b := ev.ResultFetched
	t.cur.Summary = fmt.Sprintf("result of run %s fetched by %s", b.RunID, ev.Actor)
	t.cur.Details = map[string]string{"run_id": b.RunID}
	if !t.c.IsRecipient(ev.Actor) {
		t.problem(idx, "result.fetched at index %d: %q fetched the result of run %s but is not a result recipient", idx, ev.Actor, b.RunID)
	}
	i, ok := t.runByID[b.RunID]
	if !ok {
		t.problem(idx, "result.fetched at index %d is for run %s, which never started", idx, b.RunID)
		return
	}
	rf := &t.r.Runs[i]
	if rf.Status != RunFinished {
		t.problem(idx, "result.fetched at index %d: run %s has no released result (it is %s)", idx, b.RunID, rf.Status)
	}
	if at, gone := t.expiredResults[b.RunID]; gone {
		t.problem(idx, "result.fetched at index %d serves the result of run %s, which result.expired deleted at index %d", idx, b.RunID, at)
	}
	rf.Fetches = append(rf.Fetches, Fetch{Index: idx, Time: ev.Time.UTC(), Actor: ev.Actor})
}

// finish records what the whole log shows.
func (t *timeline) finish() {
	co := &t.r.Coordinator
	if n := len(t.evidenceIdxs); n > 0 {
		co.EvidenceLoggedAt = ptr(t.evidenceIdxs[n-1])
		if t.evidenceIdxs[n-1] != t.lastStartIdx {
			t.warning(ptr(t.lastStartIdx), "the coordinator restarted (index %d) after the start whose evidence it served to this audit (index %d)", t.lastStartIdx, t.evidenceIdxs[n-1])
		}
	}
	sort.SliceStable(t.r.Runs, func(i, j int) bool { return t.r.Runs[i].StartedIndex < t.r.Runs[j].StartedIndex })
}

func (t *timeline) contractSuspended(idx uint64, ev *events.Event) {
	b := ev.ContractSuspended
	t.cur.Summary = fmt.Sprintf("contract suspended by %s: %s", ev.Actor, b.Reason)
	t.cur.Details = map[string]string{"reason": b.Reason}
	if p := t.c.Participant(ev.Actor); p == nil || !p.Has(contracts.RoleDataProvider) {
		t.problem(idx, "contract.suspended at index %d was made by %q, who is not a data provider", idx, ev.Actor)
	}
	if t.suspendedAt != nil {
		t.problem(idx, "contract.suspended at index %d suspends a contract already suspended (index %d)", idx, *t.suspendedAt)
	}
	t.suspendedAt = ptr(idx)
}

func (t *timeline) contractResumed(idx uint64, ev *events.Event) {
	b := ev.ContractResumed
	t.cur.Summary = fmt.Sprintf("contract resumed from the suspension at index %d with %d approvals", b.SuspensionIndex, len(b.Approvals))
	t.cur.Details = map[string]string{"suspension_index": fmt.Sprint(b.SuspensionIndex), "approvals": strings.Join(slices.Sorted(maps.Keys(b.Approvals)), ",")}
	if t.suspendedAt == nil || *t.suspendedAt != b.SuspensionIndex {
		t.problem(idx, "contract.resumed at index %d lifts the suspension at index %d, which is not in force", idx, b.SuspensionIndex)
	}
	sigs := make([]contracts.SignedBy, 0, len(b.Approvals))
	for _, id := range slices.Sorted(maps.Keys(b.Approvals)) {
		sigs = append(sigs, contracts.SignedBy{Source: fmt.Sprintf("log entry %d, approval of %s", idx, id), Data: b.Approvals[id]})
	}
	if ap := t.c.VerifyResumptions(sigs, b.SuspensionIndex); !ap.Complete() {
		t.problem(idx, "contract.resumed at index %d does not carry every participant's valid approval of resuming from index %d: %s", idx, b.SuspensionIndex, strings.ReplaceAll(ap.Err().Error(), "\n", "; "))
	}
	t.suspendedAt = nil
}

func (t *timeline) contractSuperseded(idx uint64, ev *events.Event) {
	b := ev.ContractSuperseded
	t.cur.Summary = fmt.Sprintf("contract superseded by contract %s", b.By)
	t.cur.Details = map[string]string{"by": b.By}
	if t.supersededAt != nil {
		t.problem(idx, "contract.superseded at index %d closes a contract already superseded (index %d)", idx, *t.supersededAt)
	}
	t.supersededAt = ptr(idx)
}

func (t *timeline) datasetDeleted(idx uint64, ev *events.Event) {
	b, how := ev.DatasetWithdrawn, "withdrawn"
	if b == nil {
		b, how = ev.DatasetExpired, "expired"
	}
	c := t.c
	t.cur.Summary = fmt.Sprintf("dataset %s %s: envelope %s and its data key deleted", b.Dataset, how, short(b.Stored.SHA256))
	t.cur.Details = map[string]string{"dataset": b.Dataset, "stored_sha256": b.Stored.SHA256}
	ds := c.Dataset(b.Dataset)
	up := t.uploads[b.Dataset]
	switch {
	case ds == nil:
		t.problem(idx, "dataset.%s at index %d names dataset %q, which the contract does not have", how, idx, b.Dataset)
		return
	case up == nil:
		t.problem(idx, "dataset.%s at index %d deletes dataset %s, which was never uploaded", how, idx, b.Dataset)
	case up.Stored != b.Stored:
		t.problem(idx, "dataset.%s at index %d deletes envelope %s; the upload stored %s", how, idx, b.Stored.SHA256, up.Stored.SHA256)
	}
	if at, ok := t.deleted[b.Dataset]; ok {
		t.problem(idx, "dataset.%s at index %d deletes dataset %s a second time (first at index %d)", how, idx, b.Dataset, at)
	}
	if how == "withdrawn" && ev.Actor != ds.Provider {
		t.problem(idx, "dataset.withdrawn at index %d was made by %q; only the provider %s may withdraw dataset %s", idx, ev.Actor, ds.Provider, ds.ID)
	}
	if how == "expired" && ev.Time.Before(c.ExpiresAt) {
		t.problem(idx, "dataset.expired at index %d is dated %s, before the contract expires (%s)", idx, ev.Time.UTC().Format(time.RFC3339), c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	t.deleted[b.Dataset] = idx
}

func (t *timeline) resultExpired(idx uint64, ev *events.Event) {
	b := ev.ResultExpired
	t.cur.Summary = fmt.Sprintf("result of run %s deleted at the contract's expiry", b.RunID)
	t.cur.Details = map[string]string{"run_id": b.RunID, "encrypted_result_sha256": b.EncryptedResult.SHA256}
	i, ok := t.runByID[b.RunID]
	if !ok || t.r.Runs[i].Status != RunFinished {
		t.problem(idx, "result.expired at index %d deletes the result of run %s, which released none", idx, b.RunID)
	}
	if ev.Time.Before(t.c.ExpiresAt) {
		t.problem(idx, "result.expired at index %d is dated %s, before the contract expires (%s)", idx, ev.Time.UTC().Format(time.RFC3339), t.c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	t.expiredResults[b.RunID] = idx
}
