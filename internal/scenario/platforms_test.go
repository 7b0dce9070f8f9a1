package scenario_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/coordinator/tee"
	"cleanroom.dev/cleanroom/internal/scenario"
)

func adSpec(t testing.TB, name string) *scenario.Spec {
	return &scenario.Spec{
		Name: name,
		Parties: []*scenario.Party{
			scenario.NewParty(t, "publisher", contracts.RoleDataProvider),
			scenario.NewParty(t, "advertiser", contracts.RoleDataProvider, contracts.RoleResultRecipient),
			scenario.NewParty(t, "measurer", contracts.RoleAlgorithmProvider),
			scenario.NewParty(t, "auditor", contracts.RoleAuditor),
		},
		Datasets: []scenario.Dataset{
			{ID: "impressions", Provider: "publisher", Columns: "[{name: user_id, type: string}, {name: campaign, type: string}]"},
			{ID: "conversions", Provider: "advertiser", Columns: "[{name: user_id, type: string}, {name: value, type: float64}]"},
		},
		Query: "SELECT i.campaign, count(DISTINCT i.user_id) AS users, sum(c.value) AS revenue " +
			"FROM impressions i JOIN conversions c USING (user_id) GROUP BY i.campaign ORDER BY i.campaign",
		AlgorithmBy: "measurer",
		Recipients:  []string{"advertiser"},
		GroupColumn: "users", K: 2,
		MaxRows: 100, MaxRuns: 2,
	}
}

// The whole multi-party scenario on each simulated TEE: a contract pinning
// the coordinator's platform and reference values, signed by every party
// and registered; both uploads encrypted to the attested key; the agreed
// query run; the result bundle verified offline down to the platform's
// pinned root and decrypted; the audit log verified. A contract for another
// platform refuses the coordinator's evidence.
func TestScenarioOnEverySimulatedPlatform(t *testing.T) {
	ctx := context.Background()
	modes := []tee.Mode{tee.ModeTDXSimulated, tee.ModeNitroSimulated, tee.ModeCCASimulated}
	for i, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			srv := scenario.Start(t, t.TempDir(), coordinator.Config{Attestation: mode})
			sc := scenario.New(t, srv, adSpec(t, "platform-"+string(mode)))
			if sc.Contract.Coordinator.Platform != mode.Platform() {
				t.Fatalf("contract platform %s", sc.Contract.Coordinator.Platform)
			}
			sc.Submit(t, "auditor")
			sc.MustUpload(t, "publisher", "impressions", "user_id,campaign\nu1,spring\nu2,spring\nu3,spring\nu1,summer\nu4,autumn\n")
			sc.MustUpload(t, "advertiser", "conversions", "user_id,value\nu1,10.5\nu2,20\nu3,1\nu4,7\n")
			if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(sc.Spec.Query), sc.Spec.AlgorithmSalt()); err != nil {
				t.Fatal(err)
			}
			rs, err := sc.Client(t, "advertiser").Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rs.Status != "finished" || rs.RowsKept != 1 || rs.RowsSuppressed != 2 {
				t.Fatalf("run: %+v", rs)
			}

			// The result bundle, offline.
			raw, err := sc.Client(t, "advertiser").Result(ctx, rs.RunID)
			if err != nil {
				t.Fatal(err)
			}
			b, err := bundle.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := bundle.Verify(b, sc.Contract, bundle.VerifyOptions{Recipient: sc.Party("advertiser").Identity})
			if err != nil {
				t.Fatalf("bundle: %v", err)
			}
			if rep.Claims.Platform != mode.Platform() || rep.Claims.SimulatedRoot() == nil || !strings.Contains(rep.Steps[0].Detail, string(mode.Platform())) {
				t.Fatalf("bundle evidence: %+v, %q", rep.Claims, rep.Steps[0].Detail)
			}
			if len(rep.Result) == 0 {
				t.Fatal("no decrypted result")
			}

			// The audit log.
			auditor, err := client.New(sc.URL, client.Options{Contract: sc.Contract, Identity: sc.Party("auditor").Identity})
			if err != nil {
				t.Fatal(err)
			}
			defer auditor.Close()
			peer, err := auditor.Coordinator(ctx)
			if err != nil {
				t.Fatal(err)
			}
			co, err := audit.AttestedCoordinator(peer)
			if err != nil {
				t.Fatal(err)
			}
			if co.Platform != mode.Platform() {
				t.Fatalf("audited platform %s", co.Platform)
			}
			st, err := audit.OpenState(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var ar *audit.Report
			for deadline := time.Now().Add(10 * time.Second); ; {
				ar, err = audit.Run(ctx, audit.Config{Contract: sc.Contract, ContractText: sc.Text, Coordinator: co, URL: sc.URL, Fetcher: auditor.LogFetcher()}, st)
				if err != nil {
					t.Fatal(err)
				}
				if len(ar.Runs) == 1 || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !ar.Verified || len(ar.Problems) != 0 || len(ar.Runs) != 1 || !ar.Runs[0].StatementVerified {
				t.Fatalf("audit: verified %v, problems %+v, runs %+v", ar.Verified, ar.Problems, ar.Runs)
			}

			// A contract for another simulated platform, pinning this
			// coordinator's own root, refuses its evidence.
			other := modes[(i+1)%len(modes)].Platform()
			cp := sc.Contract.Coordinator
			wrong := contracts.CoordinatorPolicy{Platform: other, SimulatedRootSHA256: cp.SimulatedRootSHA256,
				TDX: &contracts.TDXRefs{MRTD: [][48]byte{{}}}, Nitro: &contracts.NitroRefs{PCR0: [][48]byte{{}}}, CCA: &contracts.CCARefs{RIM: [][]byte{make([]byte, 48)}}}
			doc, err := srv.Coord.TEE().IdentityDocument()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := doc.Verify(&wrong); !isCheck(err, attest.CheckPlatform) {
				t.Fatalf("evidence of %s under a %s contract: %v", mode, other, err)
			}
			if _, err := bundle.Verify(b, withCoordinator(t, sc, wrong), bundle.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "platform") {
				t.Fatalf("bundle of %s under a %s contract: %v", mode, other, err)
			}
		})
	}
}

// withCoordinator returns sc's contract with another coordinator section
// (its id changes; Verify checks the evidence step first).
func withCoordinator(t *testing.T, sc *scenario.Scenario, cp contracts.CoordinatorPolicy) *contracts.Contract {
	t.Helper()
	c := *sc.Contract
	c.Coordinator = cp
	return &c
}

func isCheck(err error, check string) bool {
	var ce *attest.CheckError
	return errors.As(err, &ce) && ce.Check == check
}
