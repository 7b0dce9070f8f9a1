package adattribution

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/examples/internal/scenario"
	"cleanroom.dev/cleanroom/examples/internal/scenario/scenariotest"
)

// testRows is small enough for a quick test and large enough that every
// campaign converts; batches of 4096 rows make several batches per file.
const (
	testRows  = 30_000
	testBatch = 4096
)

// TestQueryMatchesExpected proves query.sql and the generator agree: plain
// DuckDB running the query on the generated CSV and on the generated
// Parquet returns exactly the groups the generator computed, suppressed
// ones included.
func TestQueryMatchesExpected(t *testing.T) {
	dir, sum := scenariotest.Generate(t, Spec, testRows, 7, testBatch)
	db := scenariotest.QueryMatchesExpected(t, dir, sum, map[string][]contracts.Column{Impressions: ImpressionColumns, Conversions: ConversionColumns}, Query, ResultColumns)
	// The data must exercise the edges of the attribution window, or the
	// agreement above would not prove the query and the generator read
	// the rule the same way.
	for _, q := range []string{
		"SELECT count(*) AS n FROM conversions c JOIN impressions i USING (user_id) WHERE i.shown_at = c.converted_at",
		"SELECT count(*) AS n FROM conversions c JOIN impressions i USING (user_id) WHERE i.shown_at = c.converted_at - INTERVAL 720 HOUR",
		"SELECT count(*) AS n FROM conversions c JOIN impressions i USING (user_id) WHERE i.shown_at = c.converted_at - INTERVAL 720 HOUR - INTERVAL 1 SECOND",
		"SELECT count(*) AS n FROM conversions c WHERE NOT EXISTS (SELECT 1 FROM impressions i WHERE i.user_id = c.user_id)",
	} {
		if n := db.QueryInt(t, q); n == 0 {
			t.Errorf("no row for %s", q)
		}
	}
	// The groups the expectation suppresses are those with fewer than k
	// distinct users of impressions or of conversions, counted here by
	// hand over the attributed pairs.
	scenariotest.ReleasedByUnits(t, db, dir, ResultColumns, `
		SELECT i.campaign, count(DISTINCT c.user_id) AS n1, count(DISTINCT i.user_id) AS n2
		FROM conversions c JOIN impressions i ON i.user_id = c.user_id
		WHERE i.shown_at < c.converted_at AND i.shown_at >= c.converted_at - INTERVAL 720 HOUR
		GROUP BY i.campaign`, 1, 2, K)
}

// TestEngineReleasesExpected plays the scenario on a real coordinator
// through the client SDK (scenariotest.CleanRoom): the files read by
// connectors.Open with the contract's columns, encrypted and uploaded, the
// query run in the locked-down engine under the contract's output policy,
// the result verified and decrypted. It releases exactly the expected
// rows and suppresses the rest.
func TestEngineReleasesExpected(t *testing.T) {
	dir, _ := scenariotest.Generate(t, Spec, testRows, 11, testBatch)
	exp, err := scenario.ReadExpected(filepath.Join(dir, scenario.ExpectedFile), ResultColumns)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []connectors.Format{connectors.FormatCSV, connectors.FormatParquet} {
		t.Run(format.String(), func(t *testing.T) {
			result := filepath.Join(t.TempDir(), "result.csv")
			got, suppressed := scenariotest.CleanRoom(t, ContractTemplate, dir, format, Query, ResultColumns, result)
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
	c, _ := scenariotest.FillContract(t, ContractTemplate, Query)
	if got := scenario.Placeholders(ContractTemplate); !slices.Equal(got, []string{
		"EXPIRES_AT", "PUBLISHER_KEY", "ADVERTISER_KEY", "MEASURER_KEY", "AUDITOR_KEY",
		"QUERY_SHA256", "MEASUREMENT", "SIMULATED_ROOT_SHA256",
	}) {
		t.Errorf("placeholders %v", got)
	}
	if !slices.EqualFunc(c.Dataset(Impressions).Columns, ImpressionColumns, sameColumn) ||
		!slices.EqualFunc(c.Dataset(Conversions).Columns, ConversionColumns, sameColumn) {
		t.Errorf("the contract's columns differ from the generator's")
	}
	if c.Output.Mode != contracts.ModeAggregate || c.Output.MinGroupSize != K ||
		c.Dataset(Impressions).PrivacyUnit != "user_id" || c.Dataset(Conversions).PrivacyUnit != "user_id" {
		t.Errorf("output policy %+v, want mode aggregate with k = %d over both datasets' user_id", c.Output, K)
	}
	if !slices.Equal(c.Output.Recipients, []string{"advertiser"}) {
		t.Errorf("recipients %v", c.Output.Recipients)
	}
}

// TestFilesReadWithContractColumns reads every generated file through
// connectors.Open with the contract's columns.
func TestFilesReadWithContractColumns(t *testing.T) {
	dir, sum := scenariotest.Generate(t, Spec, 5000, 3, 1000)
	c, _ := scenariotest.FillContract(t, ContractTemplate, Query)
	for _, ds := range c.Datasets {
		for _, ext := range []string{"csv", "parquet"} {
			n := scenariotest.ReadAll(t, filepath.Join(dir, ds.ID+"."+ext), ds.Columns)
			if n != sum.Datasets[ds.ID] {
				t.Errorf("%s.%s: %d rows, generator says %d", ds.ID, ext, n, sum.Datasets[ds.ID])
			}
		}
	}
	if sum.Datasets[Impressions] != 5000 {
		t.Errorf("%d impressions, want exactly 5000", sum.Datasets[Impressions])
	}
}

// TestDeterministic: the same seed gives the same bytes in every file; a
// different seed gives different data.
func TestDeterministic(t *testing.T) {
	a, _ := scenariotest.Generate(t, Spec, 8000, 42, 2000)
	b, _ := scenariotest.Generate(t, Spec, 8000, 42, 2000)
	scenariotest.SameFiles(t, a, b)
	c, _ := scenariotest.Generate(t, Spec, 8000, 43, 2000)
	if scenariotest.FilesEqual(t, filepath.Join(a, "impressions.csv"), filepath.Join(c, "impressions.csv")) {
		t.Error("seeds 42 and 43 gave the same impressions")
	}
}

// TestSizes: the number of impressions is exactly what was asked, down to
// one row.
func TestSizes(t *testing.T) {
	for _, rows := range []int64{1, 2, 7, 999} {
		_, sum := scenariotest.Generate(t, Spec, rows, 1, 64)
		if sum.Datasets[Impressions] != rows {
			t.Errorf("asked %d impressions, got %d", rows, sum.Datasets[Impressions])
		}
	}
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
