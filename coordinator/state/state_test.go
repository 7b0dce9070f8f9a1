package state

import (
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
		if err := s.Apply(uint64(i), e); err != nil {
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
		if err := s.Apply(s.Size(), e); err == nil {
			t.Errorf("contradiction %d accepted", i)
		}
	}
	if s.Size() != uint64(len(evs)) {
		t.Fatalf("size %d after refused events", s.Size())
	}
	// The same event id again is a no-op.
	if err := s.Apply(s.Size(), evs[5]); err != nil {
		t.Fatal(err)
	}
	s.View(func(v *Snapshot) {
		if v.Run(run1).Fetches != 1 {
			t.Fatal("duplicate event applied twice")
		}
	})
	if err := s.Apply(0, evs[0]); err == nil {
		t.Fatal("out-of-order index accepted")
	}
}
