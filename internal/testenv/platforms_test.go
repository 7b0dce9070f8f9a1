package testenv_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// The whole multi-party scenario on each simulated TEE: a contract pinning
// the coordinator's platform and reference values, signed by every party
// and registered; both uploads encrypted to the attested key; the agreed
// query run; the result bundle verified offline down to the platform's
// pinned root and decrypted; the audit log verified. A contract for another
// platform refuses the coordinator's evidence.
func TestScenarioOnEverySimulatedPlatform(t *testing.T) {
	ctx := context.Background()
	modes := []coordinator.Mode{coordinator.ModeTDXSimulated, coordinator.ModeNitroSimulated, coordinator.ModeCCASimulated}
	for i, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			srv := testenv.Start(t, t.TempDir(), coordinator.Config{Attestation: mode})
			sc := testenv.New(t, srv, testenv.AdSpec(t, "platform-"+string(mode), 2))
			if sc.Contract.Coordinator.Platform != mode.Platform() {
				t.Fatalf("contract platform %s", sc.Contract.Coordinator.Platform)
			}
			sc.Submit(t, "auditor")
			sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
			sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
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

			// The result bundle, verified as the recipient fetches it.
			res, err := sc.Client(t, "advertiser").Result(ctx, rs.RunID)
			if err != nil {
				t.Fatalf("bundle: %v", err)
			}
			rep := res.Report
			if rep.Claims.Platform != mode.Platform() || rep.Claims.SimulatedRoot() == nil || !strings.Contains(rep.Steps[0].Detail, string(mode.Platform())) {
				t.Fatalf("bundle evidence: %+v, %q", rep.Claims, rep.Steps[0].Detail)
			}
			if len(rep.Result) == 0 {
				t.Fatal("no decrypted result")
			}

			// The audit log.
			st, err := audit.OpenState(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var ar *audit.Report
			for deadline := time.Now().Add(10 * time.Second); ; {
				ar, err = sc.Client(t, "auditor").AuditLog(ctx, sc.Text, st)
				if err != nil {
					t.Fatal(err)
				}
				if ar.Coordinator.Platform != string(mode.Platform()) {
					t.Fatalf("audited platform %s", ar.Coordinator.Platform)
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
			doc := srv.Coord.Identity().Document
			if _, err := doc.Verify(&wrong); !isCheck(err, attest.CheckPlatform) {
				t.Fatalf("evidence of %s under a %s contract: %v", mode, other, err)
			}
			if _, err := client.VerifyResult(res.Bundle, withCoordinator(t, sc, wrong), nil); err == nil || !strings.Contains(err.Error(), "platform") {
				t.Fatalf("bundle of %s under a %s contract: %v", mode, other, err)
			}
		})
	}
}

// withCoordinator returns sc's contract with another coordinator section
// (its id changes; Verify checks the evidence step first).
func withCoordinator(t *testing.T, sc *testenv.Scenario, cp contracts.CoordinatorPolicy) *contracts.Contract {
	t.Helper()
	c := *sc.Contract
	c.Coordinator = cp
	return &c
}

func isCheck(err error, check string) bool {
	var ce *attest.CheckError
	return errors.As(err, &ce) && ce.Check == check
}
