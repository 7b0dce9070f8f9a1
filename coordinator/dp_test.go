package coordinator_test

import (
	"context"
	"testing"

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
