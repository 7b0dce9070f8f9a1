package coordinator_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/sqlcases"
	"cleanroom.dev/cleanroom/internal/testenv"
	"cleanroom.dev/cleanroom/internal/wasmtest"
)

// The datasets of the statement check's table of algorithms, with
// timestamps, as in the ad-attribution example.
const (
	allowImpressions = "[{name: user_id, type: string}, {name: campaign, type: string}, {name: shown_at, type: timestamp}]"
	allowConversions = "[{name: user_id, type: string}, {name: value, type: float64}, {name: converted_at, type: timestamp}]"
	allowImpCSV      = "user_id,campaign,shown_at\n" +
		"u1,campaign-00,2026-03-01T10:00:00Z\nu2,campaign-00,2026-03-02T11:00:00Z\n" +
		"u3,campaign-01,2026-03-03T12:00:00Z\nu1,campaign-01,2026-03-04T13:00:00Z\nu4,campaign-02,2026-02-01T08:00:00Z\n"
	allowConvCSV = "user_id,value,converted_at\n" +
		"u1,120.5,2026-03-05T09:00:00Z\nu2,20,2026-03-06T09:00:00Z\nu3,300,2026-03-10T09:00:00Z\nu1,45,2026-03-11T09:00:00Z\n"
)

// allowSpec is a contract over the table's datasets approving query, with
// no group-size threshold, so that any accepted algorithm releases rows.
func allowSpec(t *testing.T, name, query string) *testenv.Spec {
	return &testenv.Spec{
		Name: name,
		Parties: []*testenv.Party{
			testenv.NewParty(t, "publisher", contracts.RoleDataProvider),
			testenv.NewParty(t, "advertiser", contracts.RoleDataProvider, contracts.RoleResultRecipient),
			testenv.NewParty(t, "measurer", contracts.RoleAlgorithmProvider),
		},
		Datasets: []testenv.Dataset{
			{ID: "impressions", Provider: "publisher", Columns: allowImpressions},
			{ID: "conversions", Provider: "advertiser", Columns: allowConversions},
		},
		Query: query, AlgorithmBy: "measurer", Recipients: []string{"advertiser"},
		MaxRows: 1000, MaxRuns: 1,
	}
}

// TestAlgorithmAllowList submits every algorithm of the statement check's
// table to a real coordinator, each under a contract that approves exactly
// its hash, signed by every party: the refused ones are refused at
// submission, naming the relation, function or construct and the rule,
// and the log does not change; the accepted ones — and both examples'
// algorithms — are accepted, run and release their rows.
func TestAlgorithmAllowList(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	ctx := context.Background()
	for i, c := range sqlcases.Load(t) {
		t.Run(c.Name, func(t *testing.T) {
			sc := testenv.New(t, srv, allowSpec(t, fmt.Sprintf("allow-%d", i), c.SQL))
			sc.Submit(t, "publisher")
			if c.Refuse {
				before := sc.LogSize()
				_, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(c.SQL), nil)
				expectRefusal(t, c.Name, err, 422, "the algorithm is refused: refused by the statement check: ")
				expectRefusal(t, c.Name, err, 422, c.Want)
				if sc.LogSize() != before {
					t.Errorf("the refused algorithm changed the log")
				}
				return
			}
			sc.MustUpload(t, "publisher", "impressions", allowImpCSV)
			sc.MustUpload(t, "advertiser", "conversions", allowConvCSV)
			submitAndRun(t, sc)
		})
	}
}

// TestExampleAlgorithmsAccepted submits and runs the examples' own
// algorithms, read from their query.sql, under their datasets' columns.
func TestExampleAlgorithmsAccepted(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	read := func(example string) string {
		b, err := os.ReadFile(filepath.Join("..", "examples", example, "query.sql"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Run("ad-attribution", func(t *testing.T) {
		// The example's datasets, protected as in its contract (k = 1, so
		// that this small data releases rows).
		spec := allowSpec(t, "example-ad", read("ad-attribution"))
		spec.Datasets[0].PrivacyUnit = "user_id"
		spec.Datasets[0].Privacy = "dimensions: [campaign]"
		spec.Datasets[1] = testenv.Dataset{ID: "conversions", Provider: "advertiser", PrivacyUnit: "user_id", Privacy: "aggregations: {value: [sum]}",
			Columns: "[{name: user_id, type: string}, {name: order_id, type: string}, {name: value, type: float64}, {name: converted_at, type: timestamp}]"}
		spec.K = 1
		// The query reads its reporting window as parameters (bounded
		// here around this small data's dates).
		spec.Parameters = "[{name: since, type: timestamp, min: \"2026-01-01T00:00:00Z\", max: \"2027-01-01T00:00:00Z\"}, " +
			"{name: until, type: timestamp, min: \"2026-01-01T00:00:00Z\", max: \"2027-01-01T00:00:00Z\"}]"
		sc := testenv.New(t, srv, spec)
		sc.Submit(t, "publisher")
		sc.MustUpload(t, "publisher", "impressions", allowImpCSV)
		sc.MustUpload(t, "advertiser", "conversions", "user_id,order_id,value,converted_at\n"+
			"u1,o1,120.5,2026-03-05T09:00:00Z\nu2,o2,20,2026-03-06T09:00:00Z\nu3,o3,300,2026-03-10T09:00:00Z\nu1,o4,45,2026-03-11T09:00:00Z\n")
		submitAndRunWith(t, sc, map[string]string{"since": "2026-03-01T00:00:00Z", "until": "2026-04-01T00:00:00Z"})
	})
	t.Run("clinical-cohort", func(t *testing.T) {
		spec := &testenv.Spec{
			Name: "example-clinical",
			Parties: []*testenv.Party{
				testenv.NewParty(t, "hospital", contracts.RoleDataProvider),
				testenv.NewParty(t, "sponsor", contracts.RoleDataProvider, contracts.RoleAlgorithmProvider, contracts.RoleResultRecipient),
			},
			Datasets: []testenv.Dataset{
				{ID: "patients", Provider: "hospital", PrivacyUnit: "patient_id", Privacy: "dimensions: [site, sex, birth_date, hba1c, egfr]", Columns: "[{name: patient_id, type: string}, {name: site, type: string}, " +
					"{name: sex, type: string}, {name: birth_date, type: date}, {name: diagnosis, type: string}, " +
					"{name: hba1c, type: \"decimal(4,1)\"}, {name: egfr, type: int32}, {name: last_visit, type: date}]"},
				{ID: "enrolments", Provider: "sponsor", Columns: "[{name: patient_id, type: string}, {name: trial, type: string}, " +
					"{name: enrolled_on, type: date}, {name: ended_on, type: date}]"},
			},
			Query: read("clinical-cohort"), AlgorithmBy: "sponsor", Confidential: true, Recipients: []string{"sponsor"},
			K: 1, MaxRows: 1000, MaxRuns: 1,
			// The query reads the cohort's age bounds as parameters.
			Parameters: "[{name: min_age, type: int64, min: 18, max: 90}, {name: max_age, type: int64, min: 18, max: 90}]",
			// The query calls the sponsor's risk model (docs/models.md).
			Models: []testenv.Model{{Name: "risk_band", Provider: "sponsor", Args: "[int64, string, float64, int32]", Result: "string",
				Module: wasmtest.BuildGo(t, "./examples/clinical-cohort/riskmodel/wasm"), Salt: newSalt()}},
		}
		sc := testenv.New(t, srv, spec)
		sc.Submit(t, "hospital")
		sc.MustUpload(t, "hospital", "patients", "patient_id,site,sex,birth_date,diagnosis,hba1c,egfr,last_visit\n"+
			"p1,north,F,1960-05-01,E11.9,8.1,70,2026-01-10\np2,north,M,1970-02-03,E11.2,9.0,50,2025-09-01\n"+
			"p3,south,F,1990-07-07,E11.9,8.0,90,2026-02-01\np4,south,M,1955-11-30,I10,8.5,60,2026-03-01\n")
		sc.MustUpload(t, "sponsor", "enrolments", "patient_id,trial,enrolled_on,ended_on\np2,T-1,2024-01-01,2025-01-01\n")
		submitAndRunWith(t, sc, map[string]string{"min_age": "40", "max_age": "75"})
	})
}

// submitAndRun submits the scenario's algorithm (the client seals a
// confidential one), runs it once, and requires a finished run with rows.
func submitAndRun(t *testing.T, sc *testenv.Scenario) {
	t.Helper()
	submitAndRunWith(t, sc, nil)
}

// submitAndRunWith is submitAndRun with the values of the algorithm's
// parameters.
func submitAndRunWith(t *testing.T, sc *testenv.Scenario, params map[string]string) {
	t.Helper()
	ctx := context.Background()
	if _, err := sc.Client(t, sc.Spec.AlgorithmBy).SubmitAlgorithm(ctx, []byte(sc.Spec.Query), sc.Spec.AlgorithmSalt()); err != nil {
		t.Fatalf("submitting the algorithm: %v", err)
	}
	for _, m := range sc.Spec.Models {
		if _, err := sc.Client(t, m.Provider).SubmitModel(ctx, m.Name, m.Module, m.Salt); err != nil {
			t.Fatalf("submitting model %s: %v", m.Name, err)
		}
	}
	rs, err := sc.Client(t, sc.Spec.Recipients[0]).RunWith(ctx, params)
	if err != nil {
		t.Fatalf("running the algorithm: %v", err)
	}
	if rs.Status != "finished" || rs.ResultCommitment == "" || rs.RowsKept < 1 {
		t.Fatalf("run: %+v", rs)
	}
}

// TestAlgorithmThatDoesNotBindRefused: an algorithm the statement check
// and the privacy analysis accept but DuckDB cannot bind against the
// contract's datasets (a call no function matches) is refused at
// submission, naming the function, and no run is ever spent on it.
func TestAlgorithmThatDoesNotBindRefused(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	query := "SELECT campaign, count(*) AS n FROM impressions WHERE length(campaign, 2) > 1 GROUP BY campaign"
	sc := testenv.New(t, srv, allowSpec(t, "does-not-bind", query))
	sc.Submit(t, "publisher")
	before := sc.LogSize()
	_, err := sc.Client(t, "measurer").SubmitAlgorithm(context.Background(), []byte(query), nil)
	expectRefusal(t, "unbound", err, 422, "bind check: DuckDB cannot bind the algorithm against the contract's datasets")
	expectRefusal(t, "unbound", err, 422, "length")
	if sc.LogSize() != before {
		t.Fatal("the refused algorithm changed the log")
	}
}
