package clinicalcohort

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/examples/clinical-cohort/riskmodel"
	"cleanroom.dev/cleanroom/examples/internal/scenario"
	"cleanroom.dev/cleanroom/examples/internal/scenario/scenariotest"
	"cleanroom.dev/cleanroom/internal/wasmtest"
)

// testRows is small enough for a quick test and large enough for groups on
// both sides of k; batches of 4096 rows make several batches per file.
const (
	testRows  = 30_000
	testBatch = 4096
)

// TestQueryMatchesExpected proves query.sql and the generator agree: plain
// DuckDB running the query, its age bounds written as the literals of
// Parameters (LiteralQuery), on the generated CSV and on the generated
// Parquet returns exactly the groups the generator computed, suppressed
// ones included.
func TestQueryMatchesExpected(t *testing.T) {
	dir, sum := scenariotest.Generate(t, Spec, testRows, 7, testBatch)
	if strings.Contains(LiteralQuery(), "$") || !strings.Contains(Query, "BETWEEN $min_age AND $max_age") {
		t.Fatalf("query.sql does not read the age bounds as parameters, or LiteralQuery leaves one:\n%s", LiteralQuery())
	}
	db := scenariotest.QueryMatchesExpected(t, dir, sum, map[string][]contracts.Column{Patients: PatientColumns, Enrolments: EnrolmentColumns}, LiteralQuery(), ResultColumns,
		func(db *scenariotest.DuckDB) { db.RegisterUDF(t, "risk_band", nativeRiskBand{}) })
	// The data must exercise the edges of every criterion, or the
	// agreement above would not prove the query and the generator read
	// them the same way.
	for _, q := range []string{
		"SELECT count(*) AS n FROM patients WHERE birth_date = DATE '1986-12-01'",
		"SELECT count(*) AS n FROM patients WHERE birth_date = DATE '1986-12-02'",
		"SELECT count(*) AS n FROM patients WHERE birth_date = DATE '1950-12-01'",
		"SELECT count(*) AS n FROM patients WHERE birth_date = DATE '1950-12-02'",
		"SELECT count(*) AS n FROM patients WHERE hba1c = 7.5",
		"SELECT count(*) AS n FROM patients WHERE hba1c = 7.4",
		"SELECT count(*) AS n FROM patients WHERE hba1c = 10.5",
		"SELECT count(*) AS n FROM patients WHERE hba1c = 10.6",
		"SELECT count(*) AS n FROM patients WHERE hba1c IS NULL AND diagnosis LIKE 'E11%'",
		"SELECT count(*) AS n FROM patients WHERE egfr = 45",
		"SELECT count(*) AS n FROM patients WHERE egfr = 44",
		"SELECT count(*) AS n FROM patients WHERE egfr IS NULL AND diagnosis LIKE 'E11%'",
		"SELECT count(*) AS n FROM patients WHERE last_visit = DATE '2025-06-01'",
		"SELECT count(*) AS n FROM patients WHERE last_visit = DATE '2025-05-31'",
		"SELECT count(*) AS n FROM enrolments WHERE ended_on IS NULL",
		"SELECT count(*) AS n FROM enrolments WHERE ended_on = DATE '2026-12-01'",
		"SELECT count(*) AS n FROM enrolments WHERE ended_on = DATE '2026-11-30'",
		"SELECT count(*) AS n FROM enrolments e WHERE NOT EXISTS (SELECT 1 FROM patients p WHERE p.patient_id = e.patient_id)",
		"SELECT count(*) AS n FROM (SELECT patient_id FROM enrolments GROUP BY patient_id HAVING count(*) > 1)",
	} {
		if n := db.QueryInt(t, q); n == 0 {
			t.Errorf("no row for %s", q)
		}
	}
	if n := db.QueryInt(t, "SELECT count(*) - count(DISTINCT patient_id) AS n FROM patients"); n != 0 {
		t.Errorf("%d duplicate patient ids", n)
	}
	// The groups the expectation suppresses are those with fewer than k
	// distinct patients, counted here by hand, the criteria written
	// another way (age() for completed years, an anti join for trials).
	scenariotest.ReleasedByUnits(t, db, dir, ResultColumns, `
		SELECT site, risk_band(a, sex, CAST(hba1c AS DOUBLE), egfr) AS risk_band,
		       count(DISTINCT patient_id) AS n1
		FROM (SELECT p.*, year(age(DATE '2026-12-01', p.birth_date)) AS a
		      FROM patients p
		      LEFT JOIN (SELECT DISTINCT patient_id FROM enrolments WHERE ended_on IS NULL OR ended_on >= DATE '2026-12-01') e
		        ON e.patient_id = p.patient_id
		      WHERE e.patient_id IS NULL)
		WHERE diagnosis LIKE 'E11%' AND a BETWEEN 40 AND 75 AND hba1c BETWEEN 7.5 AND 10.5 AND egfr >= 45
		  AND last_visit >= DATE '2025-06-01'
		GROUP BY ALL`, 2, 1, K)
}

// TestEngineReleasesExpected plays the scenario on a real coordinator
// through the client SDK (scenariotest.CleanRoom): the files read by
// connectors.Open with the contract's columns, encrypted and uploaded, the
// query and the risk model submitted, the query run in the locked-down
// engine under the contract's output policy, the result verified and
// decrypted. It releases exactly the expected rows and suppresses the rest.
//
// The sponsor's risk model runs there as the WebAssembly module built from
// riskmodel/wasm, while the generator's expected counts use the same Go
// code natively: the two agree row for row.
func TestEngineReleasesExpected(t *testing.T) {
	dir, _ := scenariotest.Generate(t, Spec, testRows, 11, testBatch)
	model := riskModule(t)
	exp, err := scenario.ReadExpected(filepath.Join(dir, scenario.ExpectedFile), ResultColumns)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []connectors.Format{connectors.FormatCSV, connectors.FormatParquet} {
		t.Run(format.String(), func(t *testing.T) {
			result := filepath.Join(t.TempDir(), "result.csv")
			got, suppressed := scenariotest.CleanRoomWith(t, ContractTemplate, dir, format, Query, Parameters, ResultColumns, result, model)
			if err := exp.Compare(got, suppressed); err != nil {
				t.Fatal(err)
			}
			// The checker the scenario's script runs on the recipient's
			// CSV agrees.
			if err := scenario.Check(filepath.Join(dir, scenario.ExpectedFile), result, ResultColumns, suppressed); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestContractTemplate fills the template and checks that it parses and
// describes what the generator writes.
func TestContractTemplate(t *testing.T) {
	model := riskModule(t)
	c, _ := scenariotest.FillContract(t, ContractTemplate, Query, model)
	if got := scenario.Placeholders(ContractTemplate); !slices.Equal(got, []string{
		"EXPIRES_AT", "HOSPITAL_KEY", "SPONSOR_KEY", "ETHICS_KEY",
		"QUERY_COMMITMENT", "MODEL_COMMITMENT", "MEASUREMENT", "SIMULATED_ROOT_SHA256",
	}) {
		t.Errorf("placeholders %v", got)
	}
	if !slices.EqualFunc(c.Dataset(Patients).Columns, PatientColumns, sameColumn) ||
		!slices.EqualFunc(c.Dataset(Enrolments).Columns, EnrolmentColumns, sameColumn) {
		t.Errorf("the contract's columns differ from the generator's")
	}
	if c.Output.Mode != contracts.ModeAggregate || c.Output.MinGroupSize != K || c.Dataset(Patients).PrivacyUnit != "patient_id" {
		t.Errorf("output policy %+v, want mode aggregate with k = %d over patients' patient_id", c.Output, K)
	}
	if !slices.Equal(c.Output.Recipients, []string{"sponsor"}) {
		t.Errorf("recipients %v", c.Output.Recipients)
	}
	if !c.Algorithm.Confidential || c.Algorithm.Provider != "sponsor" {
		t.Errorf("algorithm %+v, want the sponsor's, confidential", c.Algorithm)
	}
	if c.Algorithm.SHA256 == sha256.Sum256([]byte(Query)) {
		t.Error("the confidential query's contract names its plain SHA-256, not a salted commitment")
	}
	// The age bounds are parameters the contract bounds, and the values
	// the scenario runs with are within them.
	if got, err := c.Algorithm.CheckParameters(Parameters); err != nil || !maps.Equal(got, Parameters) {
		t.Errorf("the scenario's parameters %v against the contract's %+v: %v", Parameters, c.Algorithm.Parameters, err)
	}
	if _, err := c.Algorithm.CheckParameters(map[string]string{"min_age": "17", "max_age": "75"}); err == nil {
		t.Error("the contract allows a minimum age of 17; its bounds are 18 to 90")
	}
	if m := c.Model("risk_band"); m == nil || !m.Confidential || m.Provider != "sponsor" || m.Check(model.Module, model.Salt) != nil {
		t.Errorf("models %+v, want the sponsor's confidential risk_band committing to its module", c.Models)
	}
}

// TestFilesReadWithContractColumns reads every generated file through
// connectors.Open with the contract's columns.
func TestFilesReadWithContractColumns(t *testing.T) {
	dir, sum := scenariotest.Generate(t, Spec, 5000, 3, 1000)
	c, _ := scenariotest.FillContract(t, ContractTemplate, Query, riskModule(t))
	for _, ds := range c.Datasets {
		for _, ext := range []string{"csv", "parquet"} {
			n := scenariotest.ReadAll(t, filepath.Join(dir, ds.ID+"."+ext), ds.Columns)
			if n != sum.Datasets[ds.ID] {
				t.Errorf("%s.%s: %d rows, generator says %d", ds.ID, ext, n, sum.Datasets[ds.ID])
			}
		}
	}
	if sum.Datasets[Patients] != 5000 {
		t.Errorf("%d patients, want exactly 5000", sum.Datasets[Patients])
	}
}

// TestDeterministic: the same seed gives the same bytes in every file; a
// different seed gives different data.
func TestDeterministic(t *testing.T) {
	a, _ := scenariotest.Generate(t, Spec, 8000, 42, 2000)
	b, _ := scenariotest.Generate(t, Spec, 8000, 42, 2000)
	scenariotest.SameFiles(t, a, b)
	c, _ := scenariotest.Generate(t, Spec, 8000, 43, 2000)
	if scenariotest.FilesEqual(t, filepath.Join(a, "patients.csv"), filepath.Join(c, "patients.csv")) {
		t.Error("seeds 42 and 43 gave the same patients")
	}
}

// TestSizes: the number of patients is exactly what was asked, down to one
// row.
func TestSizes(t *testing.T) {
	for _, rows := range []int64{1, 2, 7, 999} {
		_, sum := scenariotest.Generate(t, Spec, rows, 1, 64)
		if sum.Datasets[Patients] != rows {
			t.Errorf("asked %d patients, got %d", rows, sum.Datasets[Patients])
		}
	}
}

// riskModule is the sponsor's risk model built for WebAssembly, with a
// fresh salt.
func riskModule(t *testing.T) scenariotest.Module {
	return scenariotest.Module{Name: "risk_band", Placeholder: "MODEL_COMMITMENT",
		Module: wasmtest.BuildGo(t, RiskModelPackage), Salt: ptr(cleanroom.NewSalt())}
}

func ptr[T any](v T) *T { return &v }

// nativeRiskBand is the risk model as a plain DuckDB function in native Go.
type nativeRiskBand struct{}

func (nativeRiskBand) Config() duckdb.ScalarFuncConfig {
	ti := func(t duckdb.Type) duckdb.TypeInfo {
		info, err := duckdb.NewTypeInfo(t)
		if err != nil {
			panic(err)
		}
		return info
	}
	return duckdb.ScalarFuncConfig{
		InputTypeInfos: []duckdb.TypeInfo{ti(duckdb.TYPE_BIGINT), ti(duckdb.TYPE_VARCHAR), ti(duckdb.TYPE_DOUBLE), ti(duckdb.TYPE_INTEGER)},
		ResultTypeInfo: ti(duckdb.TYPE_VARCHAR),
	}
}

func (nativeRiskBand) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{RowExecutor: func(v []driver.Value) (any, error) {
		return riskmodel.Band(v[0].(int64), v[1].(string), v[2].(float64), v[3].(int32)), nil
	}}
}

func sameColumn(a, b contracts.Column) bool { return a.Name == b.Name && a.Type == b.Type }

// TestCancelLeavesNothing: a cancelled run stops and removes every file it
// started.
func TestCancelLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	formats, _ := scenario.ParseFormats("both")
	_, err := Generate(ctx, scenario.Config{Dir: dir, Rows: 100_000, Seed: 1, Formats: formats, K: K})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a cancelled run left %v", entries)
	}
}
