package coordinator_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// TestPrivacyBudgetSurvivesKill spends a differential-privacy budget of
// two runs (ε 1 at 0.5 a run; max_runs would allow ten), kills the
// coordinator with SIGKILL, and checks that the restarted coordinator
// still refuses a run for want of budget: the spend is rebuilt from the
// run.started charges in the log, not kept in memory. Each run is charged
// in run.started before anything is decrypted.
func TestPrivacyBudgetSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	inst, err := coordinator.ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := testenv.DPSpec(t, "dp-budget", 10, "{epsilon_total: 1, delta_total: 1.0e-6, epsilon_per_run: 0.5, delta_per_run: 1.0e-7, "+
		"max_groups_contributed: 1, max_contributions_per_group: 1, bounds: {value: [0, 100]}}")
	sc := testenv.NewRemote(t, d.url, inst, spec)
	prepare(t, sc, testenv.ImpressionsCSV)
	ctx := context.Background()
	for i, who := range []string{"advertiser", "measurer"} {
		if _, err := sc.Client(t, who).Run(ctx); err != nil {
			t.Fatalf("charged run %d: %v", i+1, err)
		}
		st, err := sc.Client(t, "auditor").Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := &api.PrivacyBudget{EpsilonTotal: 1, DeltaTotal: 1e-6, EpsilonSpent: 0.5 * float64(i+1), DeltaSpent: 1e-7 * float64(i+1),
			EpsilonLeft: 1 - 0.5*float64(i+1), DeltaLeft: []float64{9e-7, 8e-7}[i], RunsCharged: int64(i + 1)}
		if st.Privacy == nil || *st.Privacy != *want {
			t.Fatalf("after run %d: budget %+v, want %+v", i+1, st.Privacy, want)
		}
		r := st.Runs[i]
		if r.Status != "finished" || r.Privacy == nil || r.Privacy.Epsilon != 0.5 || r.Privacy.EpsilonLeft != want.EpsilonLeft || r.Privacy.DeltaLeft != want.DeltaLeft {
			t.Fatalf("run %d: %+v (privacy %+v)", i+1, r, r.Privacy)
		}
	}
	_, err = sc.Client(t, "advertiser").Run(ctx)
	expectRefusal(t, "third run", err, 422, "the differential privacy budget is spent: 2 runs have used ε=1 of epsilon_total 1 and δ=2e-07 of delta_total 1e-06, and a run is charged ε=0.5, δ=1e-07")
	d.kill()

	d = startDaemon(t, dir)
	defer d.kill()
	sc.URL = d.url
	_, err = sc.Client(t, "measurer").Run(ctx)
	expectRefusal(t, "run after a restart", err, 422, "the differential privacy budget is spent")
	st, err := sc.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.RunsUsed != 2 || st.Privacy == nil || st.Privacy.EpsilonSpent != 1 || st.Privacy.RunsCharged != 2 || st.Privacy.EpsilonLeft != 0 {
		t.Fatalf("status after restart: %+v (budget %+v)", st, st.Privacy)
	}
}

// TestDifferentialPrivacyRelease runs a differentially private algorithm
// under a signed contract on a real coordinator: 400 users, each with
// eight impressions of one campaign and three conversions; the contract
// lists the campaigns as public groups and bounds each user to one group
// and one row. The result bundle verifies offline, its statement carries
// the run's charge and the budget left, and the released counts are the
// bounded ones (about 100 users a campaign, not 2400 joined rows), with
// noise, every public campaign present — the empty one too — and no other.
func TestDifferentialPrivacyRelease(t *testing.T) {
	ctx := context.Background()
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	spec := testenv.DPSpec(t, "dp-release", 10, "{epsilon_total: 3, delta_total: 1.0e-6, epsilon_per_run: 1, delta_per_run: 1.0e-7, "+
		"max_groups_contributed: 1, max_contributions_per_group: 1, bounds: {value: [0, 50]}, public_groups: {campaign: [autumn, spring, summer, winter, zzz]}}")
	sc := testenv.New(t, srv, spec)
	campaigns := []string{"autumn", "spring", "summer", "winter"}
	var imp, conv strings.Builder
	imp.WriteString("user_id,campaign\n")
	conv.WriteString("user_id,value\n")
	for u := range 400 {
		for range 8 {
			fmt.Fprintf(&imp, "u%d,%s\n", u, campaigns[u%4])
		}
		for k := range 3 {
			fmt.Fprintf(&conv, "u%d,%d\n", u, 10*(k+1))
		}
	}
	sc.Submit(t, "publisher")
	sc.MustUpload(t, "publisher", "impressions", imp.String())
	sc.MustUpload(t, "advertiser", "conversions", conv.String())
	sc.SubmitAlgorithm(t)
	rs, err := sc.Client(t, "advertiser").Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sc.Client(t, "advertiser").Result(ctx, rs.RunID)
	if err != nil {
		t.Fatal(err)
	}
	st := got.Report.Statement
	if st.Privacy == nil || st.Privacy.Epsilon != 1 || st.Privacy.Delta != 1e-7 || st.Privacy.EpsilonLeft != 2 || st.Privacy.DeltaLeft != 9e-7 {
		t.Fatalf("statement privacy %+v", st.Privacy)
	}
	r, err := ipc.NewReader(bytes.NewReader(got.Report.Result))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if names := fmt.Sprintln(r.Schema().Fields()[0].Name, r.Schema().Fields()[1].Name, r.Schema().Fields()[2].Name); names != "campaign users revenue\n" {
		t.Fatalf("columns %s", names)
	}
	var rows []string
	for r.Next() {
		rec := r.RecordBatch()
		for i := range int(rec.NumRows()) {
			c := rec.Column(0).ValueStr(i)
			users := rec.Column(1).(*array.Int64).Value(i)
			revenue := rec.Column(2).(*array.Float64).Value(i)
			rows = append(rows, c)
			// ε 1 over two aggregates: Laplace scale 2 for the count of
			// users, 100 for the sum of one clamped value each (≤ 50);
			// 30 scales is a failure rate of e^-30.
			wantUsers, wantRevenue := 100.0, 100.0*20 // one of 10, 20, 30 per user
			if c == "zzz" {
				wantUsers, wantRevenue = 0, 0
			}
			if math.Abs(float64(users)-wantUsers) > 60 || math.Abs(revenue-wantRevenue) > 3000 || revenue < 0 {
				t.Errorf("campaign %s: %d users, revenue %v; want about %v and %v", c, users, revenue, wantUsers, wantRevenue)
			}
		}
	}
	if strings.Join(rows, ",") != "autumn,spring,summer,winter,zzz" {
		t.Fatalf("released groups %v, want the public ones in the contract's order", rows)
	}
}
