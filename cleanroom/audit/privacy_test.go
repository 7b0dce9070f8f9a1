package audit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/bundletest"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// The differential-privacy tests share a second real coordinator, on
// which a contract with a budget of two runs (ε 1 at 0.5 a run, δ 1e-6 at
// 1e-7) played out: two runs charged and finished, a third refused
// at admission for want of
// budget.

var (
	dpWorldOnce sync.Once
	theDPWorld  *privateWorld
	dpServer    *testenv.Server // stopped by TestMain
	dpWorldDir  string          // removed by TestMain
)

type privateWorld struct {
	srv     *testenv.Server
	sc      *testenv.Scenario
	auditor *client.Client
	coord   *audit.Coordinator
	status  *api.ContractStatus // the coordinator's account, after the runs
	entries [][]byte
	cp      *tlog.Checkpoint
}

const dpBlock = "{epsilon_total: 1, delta_total: 1.0e-6, epsilon_per_run: 0.5, delta_per_run: 1.0e-7, " +
	"max_groups_contributed: 1, max_contributions_per_group: 1, bounds: {value: [0, 100]}}"

func getDPWorld(t *testing.T) *privateWorld {
	t.Helper()
	dpWorldOnce.Do(func() { theDPWorld = buildDPWorld(t) })
	if theDPWorld == nil {
		t.Fatal("the differential-privacy scenario could not be built (see the first test's failure)")
	}
	return theDPWorld
}

func buildDPWorld(t *testing.T) *privateWorld {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "audit-dp-world-")
	if err != nil {
		t.Fatal(err)
	}
	dpWorldDir = dir
	srv, err := testenv.StartE(dir, coordinator.Config{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := &privateWorld{srv: srv}
	dpServer = srv
	spec := testenv.DPSpec(t, "audit-dp-test", 10, dpBlock)
	w.sc = testenv.New(t, srv, spec)
	sc := w.sc
	sc.Submit(t, "auditor")
	sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(sc.Spec.Query), sc.Spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, err := sc.Client(t, "advertiser").Run(ctx)
		if i < 2 && err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		if want := "the differential privacy budget is spent"; i == 2 && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Fatalf("run %d: %v, want %q", i+1, err, want)
		}
	}
	if w.status, err = sc.Client(t, "auditor").Status(ctx); err != nil {
		t.Fatal(err)
	}
	w.auditor = newAuditorClient(t, sc)
	vl := sc.VerifyLog(t, w.auditor)
	w.coord, w.cp, w.entries = vl.Coordinator, vl.Checkpoint, vl.Entries
	return w
}

func (w *privateWorld) config(f tlog.Fetcher) audit.Config {
	if f == nil {
		f = w.auditor.LogFetcher()
	}
	return audit.Config{Contract: w.sc.Contract, ContractText: w.sc.Text, Coordinator: w.coord, URL: w.sc.URL, Fetcher: f}
}

// TestAuditRecomputesBudget audits the DP scenario over attested TLS: the
// auditor's recomputation of the spend from the log's charges matches the
// coordinator's own account (its contract status), run by run and in
// total, and the timeline shows each charge.
func TestAuditRecomputesBudget(t *testing.T) {
	w := getDPWorld(t)
	r, err := audit.Run(context.Background(), w.config(nil), openState(t, t.TempDir()))
	if err != nil {
		t.Fatalf("audit of an honest log failed: %v (%+v)", err, r.Problems)
	}
	p, cp := r.Contract.Privacy, w.status.Privacy
	if p == nil || cp == nil {
		t.Fatalf("privacy facts: audit %+v, coordinator %+v", p, cp)
	}
	if p.EpsilonSpent != cp.EpsilonSpent || p.DeltaSpent != cp.DeltaSpent || p.EpsilonLeft != cp.EpsilonLeft || p.DeltaLeft != cp.DeltaLeft ||
		p.RunsCharged != cp.RunsCharged || p.EpsilonTotal != cp.EpsilonTotal || p.DeltaTotal != cp.DeltaTotal {
		t.Fatalf("the auditor's recomputation %+v differs from the coordinator's account %+v", p, cp)
	}
	if p.EpsilonSpent != 1 || p.DeltaSpent != 2e-7 || p.EpsilonLeft != 0 || p.DeltaLeft != 8e-7 || p.RunsCharged != 2 || p.RunsAllowed != 2 {
		t.Fatalf("privacy facts %+v", p)
	}
	if len(r.Runs) != 2 || len(w.status.Runs) != 2 {
		t.Fatalf("%d runs audited, %d in the status", len(r.Runs), len(w.status.Runs))
	}
	for i, rf := range r.Runs {
		got, want := rf.Privacy, w.status.Runs[i].Privacy
		if got == nil || want == nil || got.Epsilon != want.Epsilon || got.Delta != want.Delta || got.EpsilonLeft != want.EpsilonLeft || got.DeltaLeft != want.DeltaLeft {
			t.Errorf("run %d: audit %+v, coordinator %+v", i+1, got, want)
		}
		if rf.Status != audit.RunFinished {
			t.Errorf("run %d: %s (stage %q)", i+1, rf.Status, rf.Stage)
		}
	}
	if r.Contract.RefusedAtAdmission != 1 {
		t.Errorf("refused at admission: %d", r.Contract.RefusedAtAdmission)
	}
	var charged int
	for _, e := range r.Timeline {
		if e.Type == string(events.TypeRunStarted) {
			charged++
			if !strings.Contains(e.Summary, "charged ε=0.5, δ=1e-07 (budget left ε=") || e.Details["privacy.epsilon"] != "0.5" {
				t.Errorf("run.started row: %+v", e)
			}
		}
	}
	if charged != 2 {
		t.Fatalf("%d run.started rows", charged)
	}
}

// TestPrivacyRules changes the DP scenario's events one way at a time —
// each something a misbehaving coordinator could sign into its log — and
// checks the timeline names the problem.
func TestPrivacyRules(t *testing.T) {
	w := getDPWorld(t)
	base := func() *audit.Report {
		r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
		audit.CheckTimeline(r, w.entries, w.sc.Contract, w.coord, w.sc.Text)
		return r
	}
	if r := base(); len(r.Problems) != 0 || len(r.Warnings) != 0 {
		t.Fatalf("the honest log has problems %+v, warnings %+v", r.Problems, r.Warnings)
	}
	cases := []struct {
		name   string
		change func(evs []*events.Event) []*events.Event
		want   string
	}{
		{"a smaller charge", func(evs []*events.Event) []*events.Event {
			p := nth(evs, events.TypeRunStarted, 0).RunStarted.Privacy
			p.Epsilon, p.EpsilonSpent = 0.25, 0.25
			return evs
		}, "charges run %s ε=0.25, δ=1e-07; the contract charges every run ε=0.5, δ=1e-07"},
		{"no charge", func(evs []*events.Event) []*events.Event {
			nth(evs, events.TypeRunStarted, 1).RunStarted.Privacy = nil
			return evs
		}, "charges run %s nothing, but every run of the contract is charged ε=0.5, δ=1e-07"},
		{"a misstated spend", func(evs []*events.Event) []*events.Event {
			nth(evs, events.TypeRunStarted, 1).RunStarted.Privacy.EpsilonSpent = 0.5
			return evs
		}, "says the contract has spent ε=0.5, δ=2e-07 with run %s; the charges in the log sum to ε=1, δ=2e-07"},
		{"a run over budget", func(evs []*events.Event) []*events.Event {
			// The refusal at admission becomes a third run, charged.
			i := len(evs) - 1
			for evs[i].Type != events.TypeRunRefused || evs[i].RunRefused.RunID != "" {
				i--
			}
			third := clone(t, nth(evs, events.TypeRunStarted, 1))
			third.ID, third.Salt = events.NewID(), ""
			third.RunStarted.RunID, third.RunStarted.Number = events.NewID(), 3
			third.RunStarted.Privacy.EpsilonSpent, third.RunStarted.Privacy.DeltaSpent = 1.5, 3e-7
			evs[i] = third
			return evs
		}, "charges run %s beyond the contract's differential-privacy budget: the charges in the log sum to ε=1.5, δ=3e-07, over the totals ε=1, δ=1e-06"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := tc.change(decodeAll(t, w.entries))
			r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
			audit.CheckTimeline(r, encodeAll(t, evs), w.sc.Contract, w.coord, w.sc.Text)
			var runIDs []string
			for _, e := range evs {
				if e.Type == events.TypeRunStarted {
					runIDs = append(runIDs, e.RunStarted.RunID)
				}
			}
			found := false
			for _, id := range runIDs {
				for _, p := range r.Problems {
					found = found || strings.Contains(p.Message, fmt.Sprintf(tc.want, id))
				}
			}
			if !found {
				t.Fatalf("no problem saying %q in %+v", tc.want, r.Problems)
			}
		})
	}

	// A charge in the log of a contract whose runs are not differentially
	// private.
	plain := getWorld(t)
	evs := decodeAll(t, plain.entries)
	nth(evs, events.TypeRunStarted, 0).RunStarted.Privacy = &events.PrivacyCharge{Epsilon: 0.5, Delta: 1e-7, EpsilonSpent: 0.5, DeltaSpent: 1e-7}
	r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
	audit.CheckTimeline(r, encodeAll(t, evs), plain.sc.Contract, plain.coord, plain.sc.Text)
	if len(r.Problems) == 0 || !strings.Contains(r.Problems[0].Message, "but the contract's runs are not differentially private") {
		t.Fatalf("problems %+v", r.Problems)
	}
}

// TestPrivacyStatementInTimeline audits logs whose differentially private
// runs finished (made by bundletest, as the coordinator will once its
// query rewrite exists): the result statement's charge and budget left
// agree with the log, and a statement that overstates what is left is a
// problem.
func TestPrivacyStatementInTimeline(t *testing.T) {
	ctx := context.Background()
	bw, err := bundletest.NewWith(bundletest.Options{DifferentialPrivacy: "{epsilon_total: 3, delta_total: 1.0e-6, " +
		"epsilon_per_run: 0.5, delta_per_run: 1.0e-7, max_groups_contributed: 1, max_contributions_per_group: 1}"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		opts := bundletest.RunOptions{}
		if i == 2 {
			opts = bundletest.RunOptions{Unchecked: true, EditStatement: func(s *bundle.Statement) { s.Privacy.EpsilonLeft = 3 }}
		}
		if _, err := bw.Run(ctx, opts); err != nil {
			t.Fatal(err)
		}
	}
	entries := bw.Log.Entries()
	coord := &audit.Coordinator{PublicKey: bw.Coordinator.PublicKey(), Platform: bw.Coordinator.StaticEvidence().Platform(), Measurement: bw.Coordinator.Measurement()}
	r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
	audit.CheckTimeline(r, entries, bw.Contract, coord, bw.ContractText)
	if len(r.Runs) != 3 {
		t.Fatalf("%d runs", len(r.Runs))
	}
	for i, rf := range r.Runs[:2] {
		if !rf.StatementVerified || rf.Privacy == nil || rf.Privacy.EpsilonLeft != []float64{2.5, 2}[i] {
			t.Errorf("run %d: statement verified %v, privacy %+v", i+1, rf.StatementVerified, rf.Privacy)
		}
	}
	// These entries lack the contract's earlier events (its registration,
	// uploads, algorithm), which the timeline notes; of the result
	// statements, only the third's is wrong.
	var statementProblems []string
	for _, p := range r.Problems {
		if strings.Contains(p.Message, "result statement") || strings.Contains(p.Message, "charge") {
			statementProblems = append(statementProblems, p.Message)
		}
	}
	if r.Runs[2].StatementVerified || len(statementProblems) != 1 ||
		!strings.Contains(statementProblems[0], "it says the run left ε=3, δ=7e-07 of the budget; the log's charges up to the run leave ε=1.5, δ=7e-07") {
		t.Fatalf("problems %q", statementProblems)
	}
}

// TestWebViewShowsBudget: the contract's page shows the budget spent and
// left as the audit recomputed it; a contract without a budget shows none.
func TestWebViewShowsBudget(t *testing.T) {
	w := getDPWorld(t)
	dir := t.TempDir()
	if _, err := audit.Run(context.Background(), w.config(nil), openState(t, dir)); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	audit.Handler(dir, audit.ViewOptions{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/contracts/"+w.sc.Contract.ID().String(), nil))
	body := rec.Body.String()
	for _, want := range []string{
		`<dd id="privacy-budget">differential privacy: 2 runs charged ε=0.5, δ=1e-07 each (the budget allows 2); spent ε=1 of 1, δ=2e-07 of 1e-06; <span class="">left ε=0, δ=8e-07</span>`,
		`id="privacy-card"><span class="n">ε 0 / 1</span><span class="l">privacy budget left (δ 8e-07 / 1e-06)</span>`,
	} {
		if rec.Code != 200 || !strings.Contains(body, want) {
			t.Fatalf("%d: the page does not show %q:\n%s", rec.Code, want, body)
		}
	}
	plain := getWorld(t)
	pdir := t.TempDir()
	if _, err := audit.Run(context.Background(), plain.config(nil), openState(t, pdir)); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	audit.Handler(pdir, audit.ViewOptions{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/contracts/"+plain.sc.Contract.ID().String(), nil))
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "privacy-budget") {
		t.Fatalf("%d: a contract without a budget shows one", rec.Code)
	}
}
