package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/coordinator/internal/eventlog"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// TestForgedChargeCaught plays a contract with a differential-privacy
// budget on a real coordinator (two runs charged and finished), then forges its log with the coordinator's own key: the first
// run's charge lowered, the entries re-chained and the tree re-signed, so
// that every signature, proof and chain link holds. The audit fails on the
// charge, and on the coordinator's account of the spend that no longer
// matches the charges; the same entries served unforged verify.
//
// It lives here, not in cleanroom/audit, because it writes the log with
// the coordinator's writer.
func TestForgedChargeCaught(t *testing.T) {
	ctx := context.Background()
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{CheckpointInterval: 100 * time.Millisecond})
	spec := testenv.DPSpec(t, "forged-charge", 10, "{epsilon_total: 1, delta_total: 1.0e-6, epsilon_per_run: 0.5, delta_per_run: 1.0e-7, "+
		"max_groups_contributed: 1, max_contributions_per_group: 1, bounds: {value: [0, 100]}}")
	sc := testenv.New(t, srv, spec)
	sc.Submit(t, "auditor")
	sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	sc.SubmitAlgorithm(t)
	for range 2 {
		if _, err := sc.Client(t, "advertiser").Run(ctx); err != nil {
			t.Fatalf("a charged run: %v", err)
		}
	}
	auditor := sc.Client(t, "auditor")
	vl := sc.VerifyLog(t, auditor)
	coord, honest := vl.Coordinator, vl.Entries
	var err error

	// The forgery: the first run charged ε 0.1, δ 1e-8 instead of 0.5,
	// 1e-7, and the spend it states to match (the second run's does not).
	evs := make([]*events.Event, len(honest))
	var starts []*events.Event
	for i, raw := range honest {
		if evs[i], err = events.Decode(raw); err != nil {
			t.Fatal(err)
		}
		if evs[i].Type == events.TypeRunStarted {
			starts = append(starts, evs[i])
		}
	}
	if len(starts) != 2 || starts[0].RunStarted.Privacy == nil {
		t.Fatalf("the log has %d run.started events (first charge %+v)", len(starts), starts)
	}
	p := starts[0].RunStarted.Privacy
	p.Epsilon, p.Delta, p.EpsilonSpent, p.DeltaSpent = 0.1, 1e-8, 0.1, 1e-8
	forged := relink(t, evs)

	config := func(entries [][]byte) audit.Config {
		return audit.Config{Contract: sc.Contract, ContractText: sc.Text, Coordinator: coord, URL: sc.URL,
			Fetcher: servedLog(t, srv, sc, entries), EvidenceWait: -1}
	}
	dir := t.TempDir()
	st, err := audit.OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := audit.Run(ctx, config(forged), st)
	if !errors.Is(err, audit.ErrFailed) || r == nil || r.Failure == nil || r.Failure.Kind != audit.FailEvents {
		t.Fatalf("a forged charge: %v (report %+v)", err, r)
	}
	var msgs []string
	for _, p := range r.Problems {
		msgs = append(msgs, p.Message)
	}
	joined := strings.Join(msgs, "\n")
	for _, want := range []string{
		"charges run " + starts[0].RunStarted.RunID + " ε=0.1, δ=1e-08; the contract charges every run ε=0.5, δ=1e-07",
		"says the contract has spent ε=1, δ=2e-07 with run " + starts[1].RunStarted.RunID + "; the charges in the log sum to ε=0.6, δ=1.1e-07",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("the problems do not say %q:\n%s", want, joined)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, audit.CheckpointFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a failed audit kept the forged log's checkpoint")
	}

	// The same entries, unforged and served the same way, verify: the
	// failure is the charge's.
	st2, err := audit.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if r, err := audit.Run(ctx, config(honest), st2); err != nil || r.Contract.Privacy == nil || r.Contract.Privacy.EpsilonSpent != 1 {
		t.Fatalf("the honest entries re-served: %v (%+v)", err, r)
	}
}

// relink encodes events as the coordinator appends them: each linked to
// the one before it in its scope's chain (seq and prev).
func relink(t *testing.T, evs []*events.Event) [][]byte {
	t.Helper()
	type link struct {
		seq  uint64
		leaf [32]byte
	}
	chains := map[string]link{}
	out := make([][]byte, len(evs))
	for i, e := range evs {
		last := chains[e.Scope()]
		e.Seq, e.Prev = last.seq+1, ""
		if last.seq > 0 {
			e.Prev = fmt.Sprintf("%x", last.leaf)
		}
		b, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		chains[e.Scope()] = link{e.Seq, tlog.HashLeaf(b)}
		out[i] = b
	}
	return out
}

// servedLog writes entries into a new log signed with the server's
// coordinator key and returns a Fetcher of the contract's view of it (every
// entry shown), served by the coordinator's view handler.
func servedLog(t *testing.T, srv *testenv.Server, sc *testenv.Scenario, entries [][]byte) tlog.Fetcher {
	t.Helper()
	id := srv.Coord.TEE().Identity()
	lg, err := eventlog.Open(filepath.Join(t.TempDir(), "log"), id.Signer(), tlog.Origin(id.Public()), &eventlog.Options{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close(context.Background()) })
	ctx := context.Background()
	for _, e := range entries {
		if _, err := lg.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := lg.WaitCheckpoint(ctx, uint64(len(entries))); err != nil {
		t.Fatal(err)
	}
	shown := make(shownView, len(entries))
	for i := range shown {
		shown[i] = true
	}
	h := lg.ViewHandler(sc.Contract.ID().String(), shown)
	return func(ctx context.Context, p string) ([]byte, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/"+p, nil))
		switch rec.Code {
		case http.StatusOK:
			return rec.Body.Bytes(), nil
		case http.StatusNotFound:
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("%s: %d %s", p, rec.Code, rec.Body)
	}
}

// TestAmendmentCarriesPrivacySpend: amending a contract in
// differential-privacy mode does not reset its budget. The old contract
// spends ε 0.5 of 1; the amendment (same budget, signed by everyone) starts
// from that spend, logged as carried_privacy, so it allows one run more,
// not two; a restart rebuilds the same account from the log; and the
// auditor of the new contract, who reads only its chain, recomputes the
// same spend without a problem.
func TestAmendmentCarriesPrivacySpend(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := coordinator.Config{CheckpointInterval: 100 * time.Millisecond}
	srv := testenv.Start(t, dir, cfg)
	spec := testenv.DPSpec(t, "dp-v1", 10, "{epsilon_total: 1, delta_total: 1.0e-6, epsilon_per_run: 0.5, delta_per_run: 1.0e-7, "+
		"max_groups_contributed: 1, max_contributions_per_group: 1, bounds: {value: [0, 100]}}")
	sc := testenv.New(t, srv, spec)
	sc.Submit(t, "auditor")
	sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	sc.SubmitAlgorithm(t)
	if _, err := sc.Client(t, "advertiser").Run(ctx); err != nil {
		t.Fatalf("the old contract's run: %v", err)
	}

	next := *spec
	next.Name, next.Supersedes = "dp-v2", sc.Contract.ID().String()
	sc2 := testenv.New(t, srv, &next)
	sc2.Submit(t, "publisher")
	budgetOf := func(sc *testenv.Scenario) *api.PrivacyBudget {
		t.Helper()
		st, err := sc.Client(t, "auditor").Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Privacy
	}
	if b := budgetOf(sc2); b == nil || b.EpsilonSpent != 0.5 || b.EpsilonLeft != 0.5 || b.RunsCharged != 0 {
		t.Fatalf("the amendment's budget before its first run: %+v, want ε 0.5 spent (carried), 0.5 left", b)
	}
	if _, err := sc2.Client(t, "advertiser").Run(ctx); err != nil {
		t.Fatalf("the amendment's first run: %v", err)
	}
	_, err := sc2.Client(t, "advertiser").Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "the differential privacy budget is spent") {
		t.Fatalf("a run past the carried budget: %v", err)
	}

	srv.Stop()
	srv = testenv.Start(t, dir, cfg)
	sc2.URL = srv.URL
	if b := budgetOf(sc2); b == nil || b.EpsilonSpent != 1 || b.EpsilonLeft != 0 || b.RunsCharged != 1 {
		t.Fatalf("after a restart: %+v, want ε 1 spent (0.5 carried, one run)", b)
	}

	st, err := audit.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// AuditLog waits for a checkpoint that covers the contract's latest
	// event, so the audit sees the run charged before the restart.
	r, err := sc2.Client(t, "auditor").AuditLog(ctx, sc2.Text, st)
	if err != nil {
		t.Fatalf("auditing the amendment: %v (%+v)", err, r)
	}
	if p := r.Contract.Privacy; p == nil || p.EpsilonSpent != 1 || p.EpsilonLeft != 0 || p.RunsCharged != 1 || len(r.Problems) != 0 {
		t.Fatalf("the auditor's recomputation: %+v, problems %+v; want ε 1 spent with the carried 0.5", p, r.Problems)
	}
}
