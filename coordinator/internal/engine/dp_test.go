package engine

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"cleanroom.dev/cleanroom/contracts"
)

// dpPolicy is mode differential_privacy over the privacy table's datasets:
// a run's ε and δ, each unit in at most groups groups with at most rows
// rows in each, value clamped to [0, 400] and cost to [0, 250] (wider
// than the data: clamping changes nothing).
func dpPolicy(tb testing.TB, eps float64, groups, rows int64) Policy {
	p := privacyPolicy(tb)
	p.Output.Mode, p.Output.MinGroupSize = contracts.ModeDifferentialPrivacy, 0
	p.Output.DifferentialPrivacy = &contracts.DifferentialPrivacy{
		EpsilonTotal: eps, DeltaTotal: 1e-3, EpsilonPerRun: eps, DeltaPerRun: 1e-3,
		MaxGroupsContributed: groups, MaxContributionsPerGroup: rows,
		Bounds: []contracts.ColumnBounds{{Column: "cost", Lower: 0, Upper: 250}, {Column: "value", Lower: 0, Upper: 400}},
	}
	return p
}

func runDPQuery(t *testing.T, tables []*table, query string, p Policy) (*Result, error) {
	t.Helper()
	s := newSession(t, Config{Threads: 1, MemoryLimit: 128 << 20})
	load(t, s, tables...)
	return s.Run(context.Background(), query, p)
}

// dpRows reads a result of string keys and numeric aggregates into a map
// from the joined keys to the aggregates.
func dpRows(t *testing.T, res *Result) map[string][]float64 {
	t.Helper()
	out := map[string][]float64{}
	for _, b := range res.Batches {
		for r := range int(b.NumRows()) {
			var key []string
			var vals []float64
			for c := range int(b.NumCols()) {
				switch col := b.Column(c).(type) {
				case *array.String:
					key = append(key, col.Value(r))
				case *array.Int64:
					vals = append(vals, float64(col.Value(r)))
				case *array.Float64:
					vals = append(vals, col.Value(r))
				case *array.Decimal128:
					vals = append(vals, col.Value(r).ToFloat64(col.DataType().(*arrow.Decimal128Type).Scale))
				default:
					t.Fatalf("column %d is %s", c, col.DataType())
				}
			}
			out[strings.Join(key, "|")] = vals
		}
	}
	return out
}

// TestDifferentialPrivacyMatchesPlainDuckDB: with contribution bounds
// that bound nothing in these data and ε = 100, the engine's
// differentially private result of each algorithm is plain DuckDB's up to
// the noise — every value within 30 noise scales of the exact one (a
// Laplace draw is that far with probability e^-30) — with the
// algorithm's column names; partition selection may leave out a group of a
// handful of persons, never add one. The rewrite computes the same
// aggregates of the same groups, through joins, CTEs, positions and
// aliases.
func TestDifferentialPrivacyMatchesPlainDuckDB(t *testing.T) {
	plain, tables := privacyTables(t)
	cases := []struct {
		name, query string
		names       []string
		kinds       string // per column: k key, n COUNT(*), u COUNT(DISTINCT unit), s SUM, a AVG
		groups      int64
		rows        int64
	}{
		{"counts and sums through a join",
			"SELECT i.campaign, count(*) AS n, count(DISTINCT i.user_id) AS users, sum(c.value) AS revenue, avg(c.value) AS mean " +
				"FROM impressions i JOIN conversions c ON i.user_id = c.user_id GROUP BY i.campaign",
			[]string{"campaign", "n", "users", "revenue", "mean"}, "knusa", 2, 100},
		{"a CTE, keys by position",
			"WITH seen AS (SELECT DISTINCT campaign, user_id FROM impressions) SELECT campaign, count(*) AS pairs FROM seen GROUP BY 1",
			[]string{"campaign", "pairs"}, "kn", 2, 1},
		{"an aliased key expression and a filter",
			"SELECT upper(site) AS s, avg(cost) AS c, count(DISTINCT patient_id) AS p FROM visits WHERE age > 35 GROUP BY s",
			[]string{"s", "c", "p"}, "kau", 1, 10},
		{"no group key",
			"SELECT count(*) AS n, sum(value) AS v FROM conversions",
			[]string{"n", "v"}, "ns", 1, 10},
	}
	const eps = 100
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := runDPQuery(t, tables, c.query, dpPolicy(t, eps, c.groups, c.rows))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Release()
			if got := fieldNames(res.Schema); strings.Join(got, ",") != strings.Join(c.names, ",") {
				t.Fatalf("columns %v, want %v", got, c.names)
			}
			_, want := plain.query(t, c.query)
			exact := dpRows(t, &Result{Batches: want})
			got := dpRows(t, res)
			if len(got) == 0 || len(got) > len(exact) || len(got) < len(exact)-2 {
				t.Fatalf("%d groups released, plain DuckDB has %d", len(got), len(exact))
			}
			aggs := strings.Count(c.kinds, "n") + strings.Count(c.kinds, "u") + strings.Count(c.kinds, "s") + strings.Count(c.kinds, "a")
			mechanisms := float64(aggs)
			if strings.Contains(c.kinds, "k") {
				mechanisms++ // partition selection
			}
			epsA := eps / mechanisms
			g, r := float64(c.groups), float64(c.rows)
			for k, vals := range got {
				ev, ok := exact[k]
				if !ok {
					t.Fatalf("group %q is not in plain DuckDB's result", k)
				}
				i := 0
				for _, kind := range strings.ReplaceAll(c.kinds, "k", "") {
					var tol float64
					switch kind {
					case 'n':
						tol = 30 * g * r / epsA
					case 'u':
						tol = 30 * g / epsA
					case 's':
						tol = 30 * g * r * 400 / epsA
					case 'a':
						// dpagg.BoundedMean: a noisy sum of the values
						// less the midpoint over a noisy count, each with
						// half the share; clamped to the bounds [0, 400].
						tol = 400
						if n := strings.Index(strings.ReplaceAll(c.kinds, "k", ""), "n"); n >= 0 {
							countScale, sumScale := 2*g*r/epsA, 2*g*r*200/epsA
							if rows := ev[n] - 30*countScale; rows > 0 {
								tol = min(tol, 30*(sumScale+200*countScale)/rows)
							}
						}
					}
					if math.Abs(vals[i]-ev[i]) > tol {
						t.Errorf("group %q column %d (%c): %v, plain DuckDB %v (tolerance %v)", k, i, kind, vals[i], ev[i], tol)
					}
					i++
				}
			}
		})
	}
}

// TestDifferentialPrivacyBoundsContributions: each user has about 20
// impressions over five campaigns; bounded to one group and one row, the
// noisy counts of all groups add up to about the number of users (150),
// not of impressions (3000), and a sum of value clamped to [0, 1] per row
// is at most the number of users.
func TestDifferentialPrivacyBoundsContributions(t *testing.T) {
	_, tables := privacyTables(t)
	p := dpPolicy(t, 100, 1, 1)
	p.Output.DifferentialPrivacy.PublicGroups = []contracts.PublicGroup{{Column: "campaign", Type: contracts.ColumnType{Kind: contracts.KindString},
		Values: []any{"autumn", "pilot", "solo", "spring", "summer", "winter"}}}
	res, err := runDPQuery(t, tables, "SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign", p)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	got := dpRows(t, res)
	if len(got) != 6 {
		t.Fatalf("%d groups released, want the 6 public ones: %v", len(got), got)
	}
	total := 0.0
	for _, v := range got {
		total += v[0]
	}
	if math.Abs(total-150) > 3 {
		t.Fatalf("the counts add up to %v, want about 150 (one row of each of 150 users)", total)
	}
	if math.Abs(got["winter"][0]) > 1 {
		t.Fatalf("the public group nobody is in counts %v", got["winter"][0])
	}

	p = dpPolicy(t, 100, 3, 2)
	p.Output.DifferentialPrivacy.Bounds = []contracts.ColumnBounds{{Column: "value", Lower: 0, Upper: 1}}
	res2, err := runDPQuery(t, tables, "SELECT count(*) AS n, sum(value) AS v FROM conversions", p)
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Release()
	for _, v := range dpRows(t, res2) {
		// 120 users, at most 2 rows each, each value clamped to 1.
		if v[0] > 240+2 || v[1] > 240+2 || v[0] < 200 {
			t.Fatalf("bounded count %v and sum %v of 400 rows of 120 users, at most 2 rows each, value clamped to [0, 1]", v[0], v[1])
		}
	}
}

// TestDifferentialPrivacyRefusals: what mode differential_privacy refuses,
// each refusal naming the construct and its rule.
func TestDifferentialPrivacyRefusals(t *testing.T) {
	_, tables := privacyTables(t)
	cases := []struct{ name, query, want string }{
		{"having", "SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign HAVING count(*) > 5", "HAVING"},
		{"order by", "SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign ORDER BY n", "ORDER BY"},
		{"limit", "SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign LIMIT 2", "LIMIT"},
		{"a member's value", "SELECT max(value) AS m FROM conversions", "max"},
		{"an unbounded column", "SELECT avg(age) AS a FROM visits", "age, which has no bounds"},
		{"an expression summed", "SELECT sum(value * 2) AS v FROM conversions", "SUM of an expression"},
		{"an expression around an aggregate", "SELECT sum(value) / count(*) AS v FROM conversions", "is not a plain aggregate"},
		{"count distinct of a column", "SELECT count(DISTINCT campaign) AS c FROM impressions", "not one mode differential_privacy releases"},
		{"an unprotected dataset", "SELECT s.segment, count(*) AS n FROM conversions c JOIN segments s USING (user_id) GROUP BY s.segment", "segments, which has no privacy unit"},
		{"units not joined", "SELECT i.campaign, count(*) AS n FROM impressions i JOIN visits v ON i.campaign = v.site GROUP BY i.campaign", "not joined on their privacy units"},
		{"a key not released", "SELECT count(*) AS n FROM impressions GROUP BY campaign", "a group key is not an output column"},
		{"raw rows", "SELECT campaign FROM impressions", "rule: aggregation"},
		{"the unit as a key", "SELECT user_id, count(*) AS n FROM impressions GROUP BY user_id", "rule: privacy unit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := runDPQuery(t, tables, c.query, dpPolicy(t, 1, 1, 1))
			if err == nil {
				res.Release()
				t.Fatal("accepted")
			}
			var re *RefusalError
			if !errors.As(err, &re) || re.Layer != LayerPrivacy {
				t.Fatalf("not a privacy refusal: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "rule: ") {
				t.Fatalf("refusal %q does not name %q and its rule", err, c.want)
			}
			if err := CheckAlgorithm(c.query, dpPolicy(t, 1, 1, 1)); err == nil {
				t.Fatal("CheckAlgorithm accepts it")
			}
		})
	}
}

// TestDifferentialPrivacyResultTypes: keys keep their type (integers as
// int64), counts are int64, sums and averages float64.
func TestDifferentialPrivacyResultTypes(t *testing.T) {
	_, tables := privacyTables(t)
	res, err := runDPQuery(t, tables, "SELECT age // 10 AS decade, count(*) AS n, avg(cost) AS c FROM visits GROUP BY decade", dpPolicy(t, 100, 10, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	want := []arrow.DataType{arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64}
	for i, f := range res.Schema.Fields() {
		if !arrow.TypeEqual(f.Type, want[i]) {
			t.Errorf("column %s is %s, want %s", f.Name, f.Type, want[i])
		}
	}
	if res.Rows == 0 {
		t.Fatal("nothing released")
	}
}

// TestDifferentialPrivacyBindsParameters: a parameter reaches the bounded
// relation as a bound value in mode differential_privacy too: the noisy
// counts follow the value given (near plain DuckDB's with the literal, far
// from those of another value), and a run without the value is refused.
func TestDifferentialPrivacyBindsParameters(t *testing.T) {
	plain, tables := privacyTables(t)
	q := "SELECT site, count(DISTINCT patient_id) AS p FROM visits WHERE age >= $min_age GROUP BY site"
	p := dpPolicy(t, 100, 1, 10)
	p.Output.DifferentialPrivacy.PublicGroups = []contracts.PublicGroup{{Column: "site", Type: contracts.ColumnType{Kind: contracts.KindString},
		Values: []any{"east", "north", "south"}}}
	for _, minAge := range []string{"30", "60"} {
		s := newSession(t, Config{Threads: 1, MemoryLimit: 128 << 20})
		load(t, s, tables...)
		res, err := s.Run(context.Background(), q, p, Param{"min_age", mustValue(t, "int64", minAge)})
		if err != nil {
			t.Fatalf("min_age %s: %v", minAge, err)
		}
		got := dpRows(t, res)
		res.Release()
		_, want := plain.query(t, strings.Replace(q, "$min_age", minAge, 1))
		exact := dpRows(t, &Result{Batches: want})
		for site, v := range exact {
			// One unit in one group: a count's noise scale is 1/50 here.
			if g, ok := got[site]; !ok || math.Abs(g[0]-v[0]) > 1 {
				t.Errorf("min_age %s, site %s: released %v, plain DuckDB with the literal %v", minAge, site, got[site], v)
			}
		}
		if len(exact) == 0 {
			t.Fatalf("min_age %s: plain DuckDB released nothing; the case tests nothing", minAge)
		}
	}
	if _, err := runDPQuery(t, tables, q, p); err == nil {
		t.Fatal("a run without the parameter's value was not refused")
	}
}
