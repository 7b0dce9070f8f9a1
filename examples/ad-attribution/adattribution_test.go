package adattribution

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
// DuckDB running the query, its reporting window written as the literals
// of Parameters (LiteralQuery), on the generated CSV and on the generated
// Parquet returns exactly the groups the generator computed, suppressed
// ones included.
func TestQueryMatchesExpected(t *testing.T) {
	dir, sum := scenariotest.Generate(t, Spec, testRows, 7, testBatch)
	if strings.Contains(LiteralQuery(), "$") || !strings.Contains(Query, "c.converted_at >= $since") || !strings.Contains(Query, "c.converted_at < $until") {
		t.Fatalf("query.sql does not read the reporting window as parameters, or LiteralQuery leaves one:\n%s", LiteralQuery())
	}
	db := scenariotest.QueryMatchesExpected(t, dir, sum, datasets, LiteralQuery(), ResultColumns)
	// Period holds every conversion the rule can attribute, so the
	// expectation over it is the result over all the data.
	if n := db.QueryInt(t, "SELECT count(*) AS n FROM conversions c JOIN impressions i USING (user_id) WHERE "+
		"i.shown_at < c.converted_at AND i.shown_at >= c.converted_at - INTERVAL 720 HOUR AND NOT ("+
		Period.Literal("c.converted_at >= $since AND c.converted_at < $until")+")"); n != 0 {
		t.Errorf("%d attributed conversions lie outside Period %v", n, Period)
	}
	// The data must exercise the edges of the attribution window, or the
	// agreement above would not prove the query and the generator read
	// the rule the same way.
	for _, q := range []string{
		"SELECT count(*) AS n FROM conversions c JOIN impressions i USING (user_id) WHERE i.shown_at = c.converted_at",
		"SELECT count(*) AS n FROM conversions c JOIN impressions i USING (user_id) WHERE i.shown_at = c.converted_at - INTERVAL 720 HOUR",
		"SELECT count(*) AS n FROM conversions c JOIN impressions i USING (user_id) WHERE i.shown_at = c.converted_at - INTERVAL 720 HOUR - INTERVAL 1 SECOND",
		"SELECT count(*) AS n FROM conversions c WHERE NOT EXISTS (SELECT 1 FROM impressions i WHERE i.user_id = c.user_id)",
		// Conversions after the quarter's end, some attributed: Period
		// must reach past the last impression.
		"SELECT count(*) AS n FROM conversions c JOIN impressions i USING (user_id) WHERE c.converted_at >= TIMESTAMPTZ '2027-01-01T00:00:00Z' " +
			"AND i.shown_at < c.converted_at AND i.shown_at >= c.converted_at - INTERVAL 720 HOUR",
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
			got, suppressed := scenariotest.CleanRoomWith(t, ContractTemplate, dir, format, Query, Parameters, ResultColumns, result)
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
	checkWindowParameters(t, c)
	// The differentially private variant reads the same window.
	dp, _ := scenariotest.FillContract(t, ContractDPTemplate, QueryDP)
	checkWindowParameters(t, dp)
}

// checkWindowParameters: the reporting window is a pair of parameters
// the contract bounds to Period, and the values the scenario runs with
// are within them.
func checkWindowParameters(t *testing.T, c *contracts.Contract) {
	t.Helper()
	if got, err := c.Algorithm.CheckParameters(Parameters); err != nil || !maps.Equal(got, Parameters) {
		t.Errorf("the scenario's parameters %v against the contract's %+v: %v", Parameters, c.Algorithm.Parameters, err)
	}
	for _, p := range []map[string]string{
		{"since": "2026-09-30T23:59:59Z", "until": "2027-01-31T00:00:00Z"},
		{"since": "2026-10-01T00:00:00Z", "until": "2027-01-31T00:00:01Z"},
	} {
		if _, err := c.Algorithm.CheckParameters(p); err == nil {
			t.Errorf("the contract allows %v; its bounds are %v", p, Parameters)
		}
	}
}

// TestWindow: the reporting window changes the result, and the
// generator's expectation for a window is what plain DuckDB returns for
// it. The window is cut at two conversions' own times, found in the data,
// so the one at since counts and the one at until does not, on both
// sides. The data files are those of the whole period (same seed, same
// bytes); only the expectation differs, and it differs from the whole
// period's: a query that ignored $since and $until would fail.
func TestWindow(t *testing.T) {
	full, _ := scenariotest.Generate(t, Spec, testRows, 7, testBatch)
	db := scenariotest.NewDuckDB(t)
	for name := range datasets {
		db.ViewParquet(t, name, filepath.Join(full, name+".parquet"))
	}
	attributed := "FROM conversions c WHERE EXISTS (SELECT 1 FROM impressions i WHERE i.user_id = c.user_id " +
		"AND i.shown_at < c.converted_at AND i.shown_at >= c.converted_at - INTERVAL 720 HOUR)"
	at := func(q float64) time.Time {
		s := db.QueryInt(t, fmt.Sprintf("SELECT epoch(quantile_disc(c.converted_at, %g))::BIGINT AS n %s", q, attributed))
		return time.Unix(s, 0).UTC()
	}
	w := Window{Since: at(0.3), Until: at(0.6)}
	for _, edge := range []time.Time{w.Since, w.Until} {
		if n := db.QueryInt(t, "SELECT count(*) AS n "+attributed+" AND c.converted_at = "+Window{edge, edge}.Literal("$since")); n == 0 {
			t.Fatalf("no attributed conversion at the window's edge %v", edge)
		}
	}
	spec := Spec
	spec.Generate = func(ctx context.Context, cfg scenario.Config) (*scenario.Summary, error) {
		return GenerateWindow(ctx, cfg, w)
	}
	dir, sum := scenariotest.Generate(t, spec, testRows, 7, testBatch)
	for name := range datasets {
		for _, ext := range []string{".csv", ".parquet"} {
			if !scenariotest.FilesEqual(t, filepath.Join(full, name+ext), filepath.Join(dir, name+ext)) {
				t.Errorf("%s%s differs with the window %v: it must change only the expectation", name, ext, w)
			}
		}
	}
	scenariotest.QueryMatchesExpected(t, dir, sum, datasets, w.Literal(Query), ResultColumns)

	whole, err := scenario.ReadExpected(filepath.Join(full, scenario.ExpectedFile), ResultColumns)
	if err != nil {
		t.Fatal(err)
	}
	part, err := scenario.ReadExpected(filepath.Join(dir, scenario.ExpectedFile), ResultColumns)
	if err != nil {
		t.Fatal(err)
	}
	if err := part.CompareAll(&scenario.Table{Columns: whole.Columns, Rows: whole.All}); err == nil {
		t.Fatalf("the window %v gives the same expected result as the whole period", w)
	}
	t.Logf("window %s to %s: %d of %d campaigns released", w.Since.Format(time.RFC3339), w.Until.Format(time.RFC3339), len(part.Released), len(whole.Released))
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

// datasets are the scenario's tables and their columns.
var datasets = map[string][]contracts.Column{Impressions: ImpressionColumns, Conversions: ConversionColumns}

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

// TestDPVariant plays the differentially private variant on a real
// coordinator (contract-dp.yaml.tmpl, query-dp.sql) at ε = 1 and 0.5 a
// run, and sets each result beside the exact one: every released campaign
// is a campaign of the exact result, all of them are released (they are
// public groups), in the contract's order, and the popular ones are close
// to the exact counts. The test logs the median relative error per
// campaign (the figures of docs/privacy.md).
func TestDPVariant(t *testing.T) {
	dir, _ := scenariotest.Generate(t, Spec, testRows, 11, testBatch)
	exp, err := scenario.ReadExpected(filepath.Join(dir, scenario.ExpectedFile), ResultColumns)
	if err != nil {
		t.Fatal(err)
	}
	exact := &scenario.Table{Columns: exp.Columns, Rows: exp.All}
	for _, eps := range []string{"1.0", "0.5"} {
		t.Run("epsilon="+eps, func(t *testing.T) {
			tmpl := []byte(strings.Replace(string(ContractDPTemplate), "epsilon_per_run: 1.0", "epsilon_per_run: "+eps, 1))
			got, _ := scenariotest.CleanRoomWith(t, tmpl, dir, connectors.FormatParquet, QueryDP, Parameters, DPResultColumns, filepath.Join(t.TempDir(), "result.csv"))
			c, err := scenario.Compare(exact, got)
			if err != nil {
				t.Fatal(err)
			}
			var released []string
			for _, r := range c.Rows {
				released = append(released, r.Key)
			}
			if !slices.Equal(released[:3], campaigns[:3]) {
				t.Errorf("released %v: want the public groups in the contract's order", released)
			}
			var b strings.Builder
			c.Write(&b)
			t.Logf("ε = %s a run, %d rows of impressions:\n%s", eps, testRows, b.String())
			if len(c.Rows) != len(campaigns)+len(pilots) || len(c.Missing) != 0 || len(c.Extra) != 0 {
				t.Errorf("%d campaigns released, want every public one", len(c.Rows))
			}
			// users and conversions: noise of scale 9 and 18 at ε = 1
			// a run, against hundreds in the popular campaigns.
			for _, r := range c.Rows[:3] {
				for i := range 2 {
					if e := math.Abs(r.Private[i]-r.Exact[i]) / r.Exact[i]; !(e < 0.5) {
						t.Errorf("%s: %s %v, exact %v", r.Key, c.Columns[i], r.Private[i], r.Exact[i])
					}
				}
			}
		})
	}
}
