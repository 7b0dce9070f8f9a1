package coordinator_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"

	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// protect puts a contract of testenv.AdSpec's shape in mode aggregate: both
// datasets protected by user_id, and k counted by the engine rather than
// taken from the query's users column.
func protect(spec *testenv.Spec) *testenv.Spec {
	spec.GroupColumn = ""
	spec.Datasets = slices.Clone(spec.Datasets)
	for i := range spec.Datasets {
		spec.Datasets[i].PrivacyUnit = "user_id"
	}
	return spec
}

// lyingSpec is testenv.AdSpec in mode aggregate, with a third dataset: the
// advertiser's own list of users (not protected), which a lying query can
// use to single people out.
func lyingSpec(t *testing.T, name, query string) *testenv.Spec {
	spec := protect(testenv.AdSpec(t, name, 2))
	spec.Datasets = append(spec.Datasets, testenv.Dataset{ID: "targets", Provider: "advertiser",
		Columns: "[{name: user_id, type: string}, {name: label, type: string}]"})
	spec.Query = query
	return spec
}

// TestLyingQueriesRefused submits lying algorithms under signed contracts
// in mode aggregate to a real coordinator: each is refused when it is
// submitted — before any run is spent — with a refusal that names the
// construct and the rule, and the log does not change.
func TestLyingQueriesRefused(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	ctx := context.Background()
	for i, c := range []struct {
		name, query string
		rule, want  string
	}{
		{"raw rows under a constant group size", "SELECT 1000000 AS users, * FROM impressions",
			"aggregation", "the query returns rows of the protected dataset impressions without aggregating them"},
		{"units listed beside an honest count", "SELECT campaign, count(DISTINCT user_id) AS users, list(user_id) AS who FROM impressions GROUP BY campaign",
			"privacy unit", "uses user_id, the privacy unit of impressions, inside the aggregate list"},
		{"group size from a window", "SELECT campaign, count(*) OVER (PARTITION BY campaign) AS users, user_id FROM impressions",
			"analysable query", "calls the window function count over a protected dataset"},
		{"a subquery that re-identifies", "SELECT campaign, count(*) AS users FROM impressions WHERE user_id IN (SELECT user_id FROM conversions WHERE value > 15) GROUP BY campaign",
			"analysable query", "a subquery used as an expression (IN, EXISTS, a scalar subquery) reads the protected dataset conversions"},
		{"a unit smuggled into a group key", "SELECT CASE WHEN user_id = 'u1' THEN 'u1' ELSE campaign END AS g, count(*) AS users FROM impressions GROUP BY g",
			"privacy unit", "as a group key of the result"},
		{"everyone but one", "SELECT sum(value) AS revenue, count(DISTINCT user_id) AS users FROM conversions WHERE user_id <> 'u1'",
			"privacy unit", "inside a comparison in a filter (WHERE)"},
		{"a recipient's list keyed by the unit", "SELECT t.user_id, sum(c.value) AS revenue FROM conversions c JOIN targets t ON t.user_id = c.user_id GROUP BY t.user_id",
			"privacy unit", "which a join or WHERE equality makes equal to the privacy unit of conversions"},
		{"nested output of members' values", "SELECT i.campaign, list(c.value) AS values FROM impressions i JOIN conversions c USING (user_id) GROUP BY i.campaign",
			"aggregate functions", "aggregates value of the protected dataset conversions with list, which returns a member's value"},
		{"a member's value", "SELECT i.campaign, max(c.value) AS biggest FROM impressions i JOIN conversions c USING (user_id) GROUP BY i.campaign",
			"aggregate functions", "with max, which returns a member's value"},
		{"a rollup that subtracts", "SELECT campaign, count(DISTINCT user_id) AS users FROM impressions GROUP BY ROLLUP (campaign)",
			"analysable query", "groups with GROUPING SETS, ROLLUP or CUBE"},
		{"union of a group and its total", "SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign UNION ALL SELECT 'all', count(*) FROM impressions",
			"analysable query", "inside UNION ALL"},
		{"a per-campaign count merged again", "WITH t AS (SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign) SELECT sum(n) AS total FROM t",
			"analysable query", "without grouping by its privacy unit user_id"},
		{"a lateral join", "SELECT campaign, count(*) AS n FROM impressions i, LATERAL (SELECT * FROM targets t WHERE t.user_id = i.user_id) x GROUP BY campaign",
			"analysable query", "(a lateral join)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := lyingSpec(t, fmt.Sprintf("lie-%d", i), c.query)
			sc := testenv.New(t, srv, spec)
			sc.Submit(t, "publisher")
			before := sc.LogSize()
			_, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(c.query), nil)
			expectRefusal(t, c.name, err, 422, c.want)
			expectRefusal(t, c.name, err, 422, "(rule: "+c.rule+" of mode aggregate)")
			expectRefusal(t, c.name, err, 422, "refused by the privacy analysis")
			if sc.LogSize() != before {
				t.Fatal("a refused algorithm changed the log")
			}
		})
	}
}

// The suppression tests' data: ten users saw spring and converted; one
// user, u1, saw solo fifty times and converted; the advertiser's targets
// list only u1.
var (
	lieImpressions = func() string {
		var b strings.Builder
		b.WriteString("user_id,campaign\n")
		for u := 1; u <= 10; u++ {
			fmt.Fprintf(&b, "u%d,spring\n", u)
		}
		for range 50 {
			b.WriteString("u1,solo\n")
		}
		return b.String()
	}()
	lieConversions = "user_id,value\nu1,10\nu2,20\nu3,30\nu4,40\nu5,50\nu6,60\nu7,70\nu8,80\nu9,90\nu10,100\n"
	lieTargets     = "user_id,label\nu1,target\n"
)

// TestLyingQueriesSuppressed runs lies the analysis cannot refuse — a
// group size the query makes up, a join that multiplies one person's rows,
// a list that singles one person out — under a signed contract in mode
// aggregate: the engine counts the persons itself, so every group of fewer
// than k is suppressed, and the result statement says how many. The same
// lie under mode custom, which trusts the query's column, releases the
// lonely group: that is the difference.
func TestLyingQueriesSuppressed(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	for i, c := range []struct {
		name, query string
		released    []string // campaign of each released row
		suppressed  int64
		customLeaks bool // mode custom (users column, k 3) releases a lonely group
	}{
		{"group size from a constant",
			"SELECT i.campaign, 1000 AS users FROM impressions i JOIN conversions c USING (user_id) GROUP BY i.campaign ORDER BY i.campaign",
			[]string{"spring"}, 1, true},
		{"a join that duplicates one person",
			"SELECT i.campaign, count(*) AS users FROM impressions i JOIN impressions j ON i.user_id = j.user_id GROUP BY i.campaign ORDER BY i.campaign",
			[]string{"spring"}, 1, true},
		{"a recipient's list of one",
			"SELECT i.campaign, count(*) AS users, sum(c.value) AS revenue FROM impressions i JOIN conversions c USING (user_id) " +
				"WHERE i.user_id IN (SELECT user_id FROM targets) GROUP BY i.campaign ORDER BY i.campaign",
			nil, 2, true},
		{"a filtered aggregate of one",
			"SELECT i.campaign, count(DISTINCT i.user_id) AS users, count(*) FILTER (WHERE c.value < 15) AS small FROM impressions i " +
				"JOIN conversions c USING (user_id) GROUP BY i.campaign ORDER BY i.campaign",
			nil, 2, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := lyingSpec(t, fmt.Sprintf("suppress-%d", i), c.query)
			spec.K = 3
			got, st := runAndRead(t, testenv.New(t, srv, spec))
			if !slices.Equal(got, c.released) || st.RowsSuppressed != c.suppressed || st.RowsKept != int64(len(c.released)) {
				t.Fatalf("released %v (statement: %d kept, %d suppressed), want %v and %d suppressed", got, st.RowsKept, st.RowsSuppressed, c.released, c.suppressed)
			}
			// Mode custom: the query's own users column decides.
			custom := testenv.AdSpec(t, fmt.Sprintf("custom-%d", i), 2)
			custom.Datasets = lyingSpec(t, "x", "").Datasets
			for j := range custom.Datasets {
				custom.Datasets[j].PrivacyUnit = ""
			}
			custom.Query, custom.K = c.query, 3
			got, _ = runAndRead(t, testenv.New(t, srv, custom))
			if leaks := slices.Contains(got, "solo") || (len(c.released) == 0 && len(got) > 0); leaks != c.customLeaks {
				t.Fatalf("mode custom released %v", got)
			}
		})
	}
}

// runAndRead registers the scenario's contract, uploads the suppression
// data, submits the algorithm, runs it once and returns the campaigns of
// the released rows (verified offline from the bundle) and the statement.
func runAndRead(t *testing.T, sc *testenv.Scenario) ([]string, *bundle.Statement) {
	t.Helper()
	ctx := context.Background()
	sc.Submit(t, "publisher")
	sc.MustUpload(t, "publisher", "impressions", lieImpressions)
	sc.MustUpload(t, "advertiser", "conversions", lieConversions)
	sc.MustUpload(t, "advertiser", "targets", lieTargets)
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(sc.Spec.Query), nil); err != nil {
		t.Fatal(err)
	}
	rs, err := sc.Client(t, "advertiser").Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The client verifies the bundle offline (evidence, statement, log
	// proofs, uploads) and decrypts the result against its commitment.
	got, err := sc.Client(t, "advertiser").Result(ctx, rs.RunID)
	if err != nil {
		t.Fatal(err)
	}
	report := got.Report
	r, err := ipc.NewReader(bytes.NewReader(report.Result))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var campaigns []string
	for r.Next() {
		rec := r.RecordBatch()
		for i := range int(rec.NumRows()) {
			campaigns = append(campaigns, rec.Column(0).ValueStr(i))
		}
	}
	return campaigns, report.Statement
}
