package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/contracts"
)

func testContract(t *testing.T) *contracts.Contract {
	t.Helper()
	var keys [3]string
	for i := range keys {
		id, err := cleanroom.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = id.Public().String()
	}
	text := `version: 1
name: t
expires_at: 2099-01-01T00:00:00Z
participants:
  - {id: a, roles: [data_provider], public_key: "` + keys[0] + `"}
  - {id: b, roles: [algorithm_provider], public_key: "` + keys[1] + `"}
  - {id: c, roles: [result_recipient, auditor], public_key: "` + keys[2] + `"}
datasets:
  - {id: d, provider: a, columns: [{name: x, type: int64}]}
algorithm: {provider: b, language: duckdb-sql, sha256: "` + strings.Repeat("aa", 32) + `"}
output: {recipients: [c], max_rows: 10, max_runs: 2}
coordinator: {platform: sev-snp, measurements: ["` + strings.Repeat("bb", 48) + `"]}
`
	c, err := contracts.Parse([]byte(text), contracts.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestApplyLifeCycle(t *testing.T) {
	c := testContract(t)
	s := New(func(*events.ContractRegistered) (*contracts.Contract, error) { return c, nil })
	h := strings.Repeat("ab", 32)
	now := time.Now().UTC()
	cid := c.ID().String()
	run1, run2 := events.NewID(), events.NewID()
	evs := []*events.Event{
		{Type: events.TypeContractRegistered, ContractRegistered: &events.ContractRegistered{Name: "t", Document: events.Blob{SHA256: h}, DocSHA256: h, Signatures: map[string][]byte{"a": {1}}}},
		{Type: events.TypeDatasetUploaded, DatasetUploaded: &events.DatasetUploaded{Dataset: "d", Ciphertext: events.Blob{SHA256: h, Size: 1}, HeaderSHA256: h, SchemaDigest: h, UploadStatement: []byte{1}}},
		{Type: events.TypeAlgorithmSubmitted, AlgorithmSubmitted: &events.AlgorithmSubmitted{SHA256: h, Text: events.Blob{SHA256: h}}},
		{Type: events.TypeRunStarted, RunStarted: &events.RunStarted{RunID: run1, Number: 1, AlgorithmSHA256: h}},
		{Type: events.TypeRunFinished, RunFinished: &events.RunFinished{RunID: run1, ResultCommitment: h, EncryptedResult: events.Blob{SHA256: h}, Statement: []byte{1}}},
		{Type: events.TypeResultFetched, ResultFetched: &events.ResultFetched{RunID: run1}},
		{Type: events.TypeRunStarted, RunStarted: &events.RunStarted{RunID: run2, Number: 2, AlgorithmSHA256: h}},
	}
	for i, e := range evs {
		e.V, e.ID, e.Time, e.Contract = events.Version, events.NewID(), now, cid
		link(s, e)
		if err := s.Apply(uint64(i), e, leafOf(e)); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	s.View(func(v *Snapshot) {
		got := v.Contract(c.ID())
		if got == nil || got.Datasets["d"] == nil || got.Algorithm == nil || len(got.Runs) != 2 {
			t.Fatalf("state after replay: %+v", got)
		}
		if got.Runs[0].Status != RunFinished || got.Runs[0].Fetches != 1 {
			t.Fatalf("run 1: %+v", got.Runs[0])
		}
		if running := v.RunningRuns(); len(running) != 1 || running[0].ID != run2 {
			t.Fatalf("running runs: %v", running)
		}
	})

	// Contradictions are refused and change nothing.
	bad := []*events.Event{
		{Type: events.TypeDatasetUploaded, DatasetUploaded: evs[1].DatasetUploaded},                                         // twice
		{Type: events.TypeAlgorithmSubmitted, AlgorithmSubmitted: evs[2].AlgorithmSubmitted},                                // twice
		{Type: events.TypeRunStarted, RunStarted: &events.RunStarted{RunID: events.NewID(), Number: 5, AlgorithmSHA256: h}}, // out of order
		{Type: events.TypeRunFinished, RunFinished: evs[4].RunFinished},                                                     // run 1 already ended
		{Type: events.TypeResultFetched, ResultFetched: &events.ResultFetched{RunID: run2}},                                 // nothing released
		{Type: events.TypeRunAborted, RunAborted: &events.RunAborted{RunID: events.NewID()}},                                // never started
	}
	for i, e := range bad {
		e.V, e.ID, e.Time, e.Contract = events.Version, events.NewID(), now, cid
		link(s, e)
		if err := s.Apply(s.Size(), e, leafOf(e)); err == nil {
			t.Errorf("contradiction %d accepted", i)
		}
	}
	if s.Size() != uint64(len(evs)) {
		t.Fatalf("size %d after refused events", s.Size())
	}
	// The same event id again is a no-op, but an entry of the contract's
	// view.
	if err := s.Apply(s.Size(), evs[5], leafOf(evs[5])); err != nil {
		t.Fatal(err)
	}
	s.View(func(v *Snapshot) {
		if v.Run(run1).Fetches != 1 {
			t.Fatal("duplicate event applied twice")
		}
	})
	if n := s.Count(cid, s.Size()); n != uint64(len(evs))+1 {
		t.Fatalf("the contract's view counts %d entries, want %d", n, len(evs)+1)
	}
	if n := s.Count(cid, 3); n != 3 {
		t.Fatalf("the contract's view counts %d of the first 3 entries", n)
	}
	if err := s.Apply(0, evs[0], leafOf(evs[0])); err == nil {
		t.Fatal("out-of-order index accepted")
	}
}

// link makes e the next link of its scope's chain in s, as the coordinator
// does before appending it.
func link(s *State, e *events.Event) {
	seq, last := s.ChainHead(e.Scope())
	e.Salt, e.Seq, e.Prev = events.NewSalt(), seq+1, ""
	if seq > 0 {
		e.Prev = hex.EncodeToString(last[:])
	}
}

func leafOf(e *events.Event) [32]byte {
	b, err := json.Marshal(e) // not Encode: some tests apply malformed links
	if err != nil {
		panic(err)
	}
	return sha256.Sum256(append([]byte{0}, b...))
}

// TestApplyChain: an event that does not continue its scope's chain (a
// seq skipped or repeated, a prev that is not the leaf hash of the one
// before) is refused and changes nothing; the coordinator's starts have a
// chain of their own.
func TestApplyChain(t *testing.T) {
	c := testContract(t)
	h := strings.Repeat("ab", 32)
	now := time.Now().UTC()
	cid := c.ID().String()
	registered := func() *events.Event {
		return &events.Event{V: events.Version, ID: events.NewID(), Time: now, Contract: cid, Type: events.TypeContractRegistered,
			ContractRegistered: &events.ContractRegistered{Name: "t", Document: events.Blob{SHA256: h}, DocSHA256: h, Signatures: map[string][]byte{"a": {1}}}}
	}
	algorithm := func() *events.Event {
		return &events.Event{V: events.Version, ID: events.NewID(), Time: now, Contract: cid, Type: events.TypeAlgorithmSubmitted,
			AlgorithmSubmitted: &events.AlgorithmSubmitted{SHA256: h, Text: events.Blob{SHA256: h}}}
	}
	start := func() *events.Event {
		return &events.Event{V: events.Version, ID: events.NewID(), Time: now, Type: events.TypeCoordinatorStarted,
			CoordinatorStarted: &events.CoordinatorStarted{Platform: "sev-snp", Measurement: strings.Repeat("0f", 48), PublicKey: h, EvidenceSHA256: h}}
	}
	for name, edit := range map[string]func(*events.Event){
		"seq skipped":    func(e *events.Event) { e.Seq++ },
		"seq repeated":   func(e *events.Event) { e.Seq--; e.Prev = "" },
		"prev not last":  func(e *events.Event) { e.Prev = h },
		"prev forgotten": func(e *events.Event) { e.Prev = "" },
	} {
		t.Run(name, func(t *testing.T) {
			s := New(func(*events.ContractRegistered) (*contracts.Contract, error) { return c, nil })
			for _, e := range []*events.Event{start(), registered(), start()} {
				link(s, e)
				if err := s.Apply(s.Size(), e, leafOf(e)); err != nil {
					t.Fatal(err)
				}
			}
			if seq, _ := s.ChainHead(events.CoordinatorScope); seq != 2 {
				t.Fatalf("the starts' chain is at seq %d, want 2", seq)
			}
			e := algorithm()
			link(s, e)
			edit(e)
			err := s.Apply(s.Size(), e, leafOf(e))
			if err == nil || !strings.Contains(err.Error(), "chain of contract "+cid) {
				t.Fatalf("got %v", err)
			}
			if s.Size() != 3 || s.algorithmOf(c.ID()) {
				t.Fatal("a refused link changed the state")
			}
		})
	}
}

func (s *State) algorithmOf(id contracts.ID) (ok bool) {
	s.View(func(v *Snapshot) { ok = v.Contract(id).Algorithm != nil })
	return ok
}

// TestApplyOverTime replays the events of contracts over time and refuses
// their contradictions: a suspension by a participant who provides no
// data or while suspended, a resumption of another suspension, a
// withdrawal by another participant or of a dataset never uploaded or
// already deleted, a result expired twice or fetched after its expiry.
func TestApplyOverTime(t *testing.T) {
	c := testContract(t)
	s := New(func(*events.ContractRegistered) (*contracts.Contract, error) { return c, nil })
	h := strings.Repeat("ab", 32)
	now := time.Now().UTC()
	cid := c.ID().String()
	run1 := events.NewID()
	stored := events.Blob{SHA256: strings.Repeat("cd", 32), Size: 10}
	result := events.Blob{SHA256: h, Size: 3}
	apply := func(e *events.Event) error {
		e.V, e.ID, e.Time, e.Contract = events.Version, events.NewID(), now, cid
		link(s, e)
		return s.Apply(s.Size(), e, leafOf(e))
	}
	for i, e := range []*events.Event{
		{Type: events.TypeContractRegistered, ContractRegistered: &events.ContractRegistered{Name: "t", Document: events.Blob{SHA256: h}, DocSHA256: h, Signatures: map[string][]byte{"a": {1}}}},
		{Type: events.TypeDatasetUploaded, Actor: "a", DatasetUploaded: &events.DatasetUploaded{Dataset: "d", Ciphertext: events.Blob{SHA256: h, Size: 1}, HeaderSHA256: h, SchemaDigest: h, UploadStatement: []byte{1}, Stored: stored, StoredHeaderSHA256: h}},
		{Type: events.TypeRunStarted, RunStarted: &events.RunStarted{RunID: run1, Number: 1, AlgorithmSHA256: h}},
		{Type: events.TypeRunFinished, RunFinished: &events.RunFinished{RunID: run1, ResultCommitment: h, EncryptedResult: result, Statement: []byte{1}}},
		{Type: events.TypeContractSuspended, Actor: "a", ContractSuspended: &events.ContractSuspended{Reason: "stop"}},
	} {
		if err := apply(e); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	suspension := s.Size() - 1
	for i, e := range []*events.Event{
		{Type: events.TypeContractSuspended, Actor: "a", ContractSuspended: &events.ContractSuspended{Reason: "again"}},
		{Type: events.TypeContractResumed, Actor: "a", ContractResumed: &events.ContractResumed{SuspensionIndex: suspension - 1, Approvals: map[string][]byte{"a": {1}}}},
		{Type: events.TypeDatasetWithdrawn, Actor: "c", DatasetWithdrawn: &events.DatasetDeleted{Dataset: "d", Stored: stored}},
		{Type: events.TypeDatasetWithdrawn, Actor: "a", DatasetWithdrawn: &events.DatasetDeleted{Dataset: "d", Stored: result}},
		{Type: events.TypeDatasetExpired, DatasetExpired: &events.DatasetDeleted{Dataset: "e", Stored: stored}},
	} {
		if err := apply(e); err == nil {
			t.Errorf("contradiction %d accepted", i)
		}
	}
	for i, e := range []*events.Event{
		{Type: events.TypeContractResumed, Actor: "a", ContractResumed: &events.ContractResumed{SuspensionIndex: suspension, Approvals: map[string][]byte{"a": {1}}}},
		{Type: events.TypeContractSuspended, Actor: "b", ContractSuspended: &events.ContractSuspended{Reason: "not a provider"}},
	} {
		err := apply(e)
		if (i == 0) != (err == nil) {
			t.Errorf("event %d: %v", i, err)
		}
	}
	for i, e := range []*events.Event{
		{Type: events.TypeDatasetWithdrawn, Actor: "a", DatasetWithdrawn: &events.DatasetDeleted{Dataset: "d", Stored: stored}},
		{Type: events.TypeResultExpired, ResultExpired: &events.ResultExpired{RunID: run1, EncryptedResult: result}},
	} {
		if err := apply(e); err != nil {
			t.Fatalf("deletion %d: %v", i, err)
		}
	}
	for i, e := range []*events.Event{
		{Type: events.TypeDatasetExpired, DatasetExpired: &events.DatasetDeleted{Dataset: "d", Stored: stored}},
		{Type: events.TypeResultExpired, ResultExpired: &events.ResultExpired{RunID: run1, EncryptedResult: result}},
		{Type: events.TypeResultFetched, Actor: "c", ResultFetched: &events.ResultFetched{RunID: run1}},
	} {
		if err := apply(e); err == nil {
			t.Errorf("after the deletions, contradiction %d accepted", i)
		}
	}
	s.View(func(v *Snapshot) {
		sc := v.Contract(c.ID())
		if sc.Suspended != nil || sc.Datasets["d"].Deleted != "withdrawn" || !v.Run(run1).ResultExpired {
			t.Fatalf("state: suspended %+v, dataset %+v, run %+v", sc.Suspended, sc.Datasets["d"], v.Run(run1))
		}
	})
}
