package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/sqlcases"
)

// privacyK is the k of the privacy tests.
const privacyK = 5

// privacyTables are the privacy table's datasets, made by plain SQL in an
// ordinary DuckDB (returned too, to compare with): 150 users' impressions
// of four campaigns, a pilot few users saw and a campaign one user saw;
// 120 users' conversions; a recipient's segments of 100 users, one of them
// alone in its segment; 100 patients' visits on three sites, one with 3
// patients.
func privacyTables(tb testing.TB) (*plainDuckDB, []*table) {
	tb.Helper()
	p := newPlainDuckDB(tb, 2, nil)
	for _, q := range []string{
		`CREATE TABLE impressions AS
		 SELECT printf('u%03d', u) AS user_id,
		        CASE WHEN i = 7 THEN 'solo' WHEN u < 3 THEN 'pilot' WHEN i % 3 = 0 THEN 'spring' WHEN i % 3 = 1 THEN 'summer' ELSE 'autumn' END AS campaign,
		        TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_seconds(CAST((i * 7919) % 2592000 AS BIGINT)) AS shown_at
		 FROM (SELECT i, (i * 37) % 150 AS u FROM range(3000) t(i))`,
		`CREATE TABLE conversions AS
		 SELECT printf('u%03d', (i * 53) % 120) AS user_id, printf('o%04d', i) AS order_id,
		        round(((i * 31) % 400) * 0.75 + 1, 2) AS value,
		        TIMESTAMPTZ '2026-10-05 00:00:00+00' + to_seconds(CAST((i * 104729) % 2592000 AS BIGINT)) AS converted_at
		 FROM range(400) t(i)`,
		`CREATE TABLE segments AS
		 SELECT printf('u%03d', i) AS user_id, CASE WHEN i = 0 THEN 'vip' WHEN i % 2 = 0 THEN 'loyal' ELSE 'churned' END AS segment
		 FROM range(100) t(i)`,
		`CREATE TABLE visits AS
		 SELECT printf('p%03d', (i * 13) % 100) AS patient_id,
		        CASE WHEN (i * 13) % 100 < 3 THEN 'east' WHEN (i * 13) % 100 < 50 THEN 'north' ELSE 'south' END AS site,
		        CAST(30 + ((i * 13) % 100) % 50 AS BIGINT) AS age, round((i % 17) * 12.5, 2) AS cost,
		        CASE WHEN i % 4 = 0 THEN 'I10' ELSE 'E11.' || (i % 9) END AS diagnosis
		 FROM range(500) t(i)`,
	} {
		p.exec(tb, q)
	}
	var tables []*table
	for _, d := range sqlcases.PrivacyDatasets {
		schema, batches := p.query(tb, "SELECT * FROM "+d.Name)
		tables = append(tables, &table{name: d.Name, schema: stripMetadata(schema), batches: batches})
	}
	tb.Cleanup(func() {
		for _, t := range tables {
			t.release()
		}
	})
	return p, tables
}

// stripMetadata returns a schema of the same fields without metadata, as
// a contract's datasets have.
func stripMetadata(s *arrow.Schema) *arrow.Schema {
	fields := slices.Clone(s.Fields())
	for i := range fields {
		fields[i].Metadata = arrow.Metadata{}
		fields[i].Nullable = true
	}
	return arrow.NewSchema(fields, nil)
}

// privacyPolicy is mode aggregate over the privacy table's datasets, with
// privacyK.
func privacyPolicy(tb testing.TB) Policy {
	tb.Helper()
	p := Policy{Output: contracts.Output{Mode: contracts.ModeAggregate, MinGroupSize: privacyK, MaxRows: 1000}}
	for _, d := range sqlcases.PrivacyDatasets {
		ds := contracts.Dataset{ID: d.Name, PrivacyUnit: d.PrivacyUnit, Dimensions: d.Dimensions}
		for _, c := range d.Columns {
			ds.Columns = append(ds.Columns, col(c[0], c[1]))
		}
		for _, name := range slices.Sorted(mapKeys(d.Aggregations)) {
			ds.Aggregations = append(ds.Aggregations, contracts.Aggregation{Column: name, Functions: d.Aggregations[name]})
		}
		p.Datasets = append(p.Datasets, ds)
	}
	return p
}

func mapKeys(m map[string][]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestPrivacyTable holds CheckAlgorithm (the check at submission) and
// Session.Run in mode aggregate (with the datasets loaded) to the privacy
// table: each refused algorithm is refused by the privacy analysis (or,
// for a reserved name, the statement check) with the refusal the table
// names; each accepted one runs.
func TestPrivacyTable(t *testing.T) {
	_, tables := privacyTables(t)
	policy := privacyPolicy(t)
	for _, c := range sqlcases.LoadPrivacy(t) {
		t.Run(c.Name, func(t *testing.T) {
			cerr := CheckAlgorithm(c.SQL, policy)
			s := newSession(t, Config{Threads: 1, MemoryLimit: 128 << 20})
			load(t, s, tables...)
			res, rerr := s.Run(context.Background(), c.SQL, policy)
			if !c.Refuse {
				if cerr != nil {
					t.Errorf("CheckAlgorithm refused an accepted algorithm: %v", cerr)
				}
				if rerr != nil {
					t.Fatalf("Run: %v", rerr)
				}
				res.Release()
				return
			}
			if rerr == nil {
				res.Release()
			}
			layer := LayerPrivacy
			if c.Rule == "reserved names" {
				layer = LayerStatement
			}
			for what, err := range map[string]error{"CheckAlgorithm": cerr, "Run": rerr} {
				var re *RefusalError
				switch {
				case !errors.As(err, &re):
					t.Errorf("%s did not refuse: %v", what, err)
				case re.Layer != layer:
					t.Errorf("%s refused at the %s, want the %s: %v", what, re.Layer, layer, err)
				case !strings.Contains(err.Error(), c.Want):
					t.Errorf("%s's refusal %q does not say %q", what, err, c.Want)
				}
			}
		})
	}
}

// diffCase is an algorithm with, written by hand in plain SQL, the group
// keys of its result and the distinct privacy units behind each group, of
// every reading of a protected dataset (columns n1, n2, ...).
type diffCase struct {
	name  string
	core  string   // the algorithm without its ORDER BY and LIMIT
	tail  string   // its ORDER BY, LIMIT and OFFSET, or ""
	units string   // keys and n1..nk, by hand
	keys  []string // the result's group-key columns, also in units
	n     int      // how many unit counts units has
	order string   // the ORDER BY of tail, applied to the expected rows ("" compares as sets)
	limit string   // the LIMIT and OFFSET of tail
}

var diffCases = []diffCase{
	{name: "per campaign",
		core:  "SELECT campaign, count(DISTINCT user_id) AS users, count(*) AS n FROM impressions GROUP BY campaign",
		tail:  "ORDER BY campaign",
		units: "SELECT campaign, count(DISTINCT user_id) AS n1 FROM impressions GROUP BY campaign",
		keys:  []string{"campaign"}, n: 1, order: "campaign"},
	{name: "group size from a constant",
		core:  "SELECT campaign, 1000000 AS users, count(*) AS n FROM impressions GROUP BY campaign",
		units: "SELECT campaign, count(DISTINCT user_id) AS n1 FROM impressions GROUP BY campaign",
		keys:  []string{"campaign"}, n: 1},
	{name: "join on the unit",
		core: "SELECT i.campaign, count(*) AS pairs, sum(c.value) AS revenue FROM conversions c JOIN impressions i ON i.user_id = c.user_id " +
			"WHERE i.shown_at < c.converted_at GROUP BY i.campaign",
		tail: "ORDER BY i.campaign",
		units: "SELECT i.campaign, count(DISTINCT c.user_id) AS n1, count(DISTINCT i.user_id) AS n2 FROM conversions c JOIN impressions i " +
			"ON i.user_id = c.user_id WHERE i.shown_at < c.converted_at GROUP BY i.campaign",
		keys: []string{"campaign"}, n: 2, order: "campaign"},
	{name: "ad attribution",
		core: "WITH attributed AS (SELECT DISTINCT i.campaign, c.order_id, c.user_id, c.value FROM conversions AS c JOIN impressions AS i ON i.user_id = c.user_id " +
			"WHERE i.shown_at < c.converted_at AND i.shown_at >= c.converted_at - INTERVAL 720 HOUR) " +
			"SELECT campaign, count(DISTINCT user_id) AS users, count(*) AS conversions, sum(CAST(value AS DECIMAL(12, 2))) AS revenue FROM attributed GROUP BY campaign",
		tail: "ORDER BY campaign",
		units: "SELECT i.campaign, count(DISTINCT c.user_id) AS n1, count(DISTINCT i.user_id) AS n2 FROM conversions c JOIN impressions i ON i.user_id = c.user_id " +
			"WHERE i.shown_at < c.converted_at AND i.shown_at >= c.converted_at - INTERVAL 720 HOUR GROUP BY i.campaign",
		keys: []string{"campaign"}, n: 2, order: "campaign"},
	{name: "a join that duplicates one person",
		core: "SELECT i.campaign, count(*) AS users FROM impressions i JOIN impressions j ON i.user_id = j.user_id AND j.campaign = 'solo' GROUP BY i.campaign",
		units: "SELECT i.campaign, count(DISTINCT i.user_id) AS n1, count(DISTINCT j.user_id) AS n2 FROM impressions i JOIN impressions j " +
			"ON i.user_id = j.user_id AND j.campaign = 'solo' GROUP BY i.campaign",
		keys: []string{"campaign"}, n: 2},
	{name: "per person, then across persons",
		core:  "WITH per_user AS (SELECT user_id, count(*) AS orders, sum(value) AS spent FROM conversions GROUP BY user_id) SELECT orders, count(*) AS users, avg(spent) AS mean_spent FROM per_user GROUP BY orders",
		tail:  "ORDER BY orders",
		units: "SELECT orders, count(DISTINCT user_id) AS n1 FROM (SELECT user_id, count(*) AS orders FROM conversions GROUP BY user_id) GROUP BY orders",
		keys:  []string{"orders"}, n: 1, order: "orders"},
	{name: "a recipient's segments",
		core:  "SELECT s.segment, count(DISTINCT i.user_id) AS users, count(*) AS n FROM impressions i JOIN segments s ON s.user_id = i.user_id GROUP BY s.segment",
		tail:  "ORDER BY s.segment",
		units: "SELECT s.segment, count(DISTINCT i.user_id) AS n1 FROM impressions i JOIN segments s ON s.user_id = i.user_id GROUP BY s.segment",
		keys:  []string{"segment"}, n: 1, order: "segment"},
	{name: "a filtered aggregate counted apart",
		core: "SELECT s.segment, count(*) AS n, count(*) FILTER (WHERE i.campaign = 'pilot') AS pilot FROM impressions i JOIN segments s ON s.user_id = i.user_id GROUP BY s.segment",
		units: "SELECT s.segment, count(DISTINCT i.user_id) AS n1, count(DISTINCT i.user_id) FILTER (WHERE i.campaign = 'pilot') AS n2 " +
			"FROM impressions i JOIN segments s ON s.user_id = i.user_id GROUP BY s.segment",
		keys: []string{"segment"}, n: 2},
	{name: "HAVING, ORDER BY, LIMIT and OFFSET after suppression",
		core:  "SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign HAVING count(*) > 2",
		tail:  "ORDER BY n DESC, campaign LIMIT 2 OFFSET 1",
		units: "SELECT campaign, count(DISTINCT user_id) AS n1 FROM impressions GROUP BY campaign",
		keys:  []string{"campaign"}, n: 1, order: "n DESC, campaign", limit: "LIMIT 2 OFFSET 1"},
	{name: "left join",
		core: "SELECT i.campaign, count(c.order_id) AS orders FROM impressions i LEFT JOIN conversions c ON c.user_id = i.user_id GROUP BY i.campaign",
		units: "SELECT i.campaign, count(DISTINCT i.user_id) AS n1, count(DISTINCT c.user_id) AS n2 FROM impressions i LEFT JOIN conversions c " +
			"ON c.user_id = i.user_id GROUP BY i.campaign",
		keys: []string{"campaign"}, n: 2},
	{name: "clinical shape",
		core: "WITH banded AS (SELECT patient_id, site, CASE WHEN age < 50 THEN 'under 50' ELSE '50 and over' END AS band, cost FROM visits WHERE diagnosis LIKE 'E11%') " +
			"SELECT site, band, count(DISTINCT patient_id) AS patients, avg(cost) AS mean_cost, max(cost) AS top_cost FROM banded GROUP BY site, band",
		tail: "ORDER BY site, band",
		units: "SELECT site, CASE WHEN age < 50 THEN 'under 50' ELSE '50 and over' END AS band, count(DISTINCT patient_id) AS n1 FROM visits " +
			"WHERE diagnosis LIKE 'E11%' GROUP BY ALL",
		keys: []string{"site", "band"}, n: 1, order: "site, band"},
	{name: "global aggregate",
		core:  "SELECT count(*) AS n, sum(value) AS total FROM conversions WHERE value > 250",
		units: "SELECT count(DISTINCT user_id) AS n1 FROM conversions WHERE value > 250",
		n:     1},
	{name: "global aggregate of one person",
		core:  "SELECT count(*) AS n FROM impressions WHERE campaign = 'solo'",
		units: "SELECT count(DISTINCT user_id) AS n1 FROM impressions WHERE campaign = 'solo'",
		n:     1},
	{name: "SELECT DISTINCT",
		core:  "SELECT DISTINCT campaign FROM impressions",
		tail:  "ORDER BY campaign",
		units: "SELECT campaign, count(DISTINCT user_id) AS n1 FROM impressions GROUP BY campaign",
		keys:  []string{"campaign"}, n: 1, order: "campaign"},
	{name: "semi join on a recipient's list",
		core:  "SELECT campaign, count(*) AS n FROM impressions WHERE user_id IN (SELECT user_id FROM segments WHERE segment <> 'churned') GROUP BY campaign",
		units: "SELECT campaign, count(DISTINCT user_id) AS n1 FROM impressions WHERE user_id IN (SELECT user_id FROM segments WHERE segment <> 'churned') GROUP BY campaign",
		keys:  []string{"campaign"}, n: 1},
}

// TestAggregateMatchesPlainDuckDB is the differential test of mode
// aggregate: for each algorithm, the engine releases exactly what plain
// DuckDB computes with it over the same data, minus the groups that have
// fewer than k distinct privacy units of some reading of a protected
// dataset — those counted by SQL written by hand, not by the rewrite —
// with its ORDER BY, LIMIT and OFFSET applied to the rows left; and it
// counts the groups it drops.
func TestAggregateMatchesPlainDuckDB(t *testing.T) {
	plain, tables := privacyTables(t)
	policy := privacyPolicy(t)
	suppressedSomewhere := false
	for _, c := range diffCases {
		t.Run(c.name, func(t *testing.T) {
			s := newSession(t, Config{Threads: 1, MemoryLimit: 128 << 20})
			load(t, s, tables...)
			res, err := s.Run(context.Background(), c.core+" "+c.tail, policy)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Release()
			var on, pass []string
			for _, k := range c.keys {
				on = append(on, fmt.Sprintf("r.%s IS NOT DISTINCT FROM u.%s", k, k))
			}
			if len(on) == 0 {
				on = []string{"true"}
			}
			for i := 1; i <= c.n; i++ {
				pass = append(pass, fmt.Sprintf("coalesce(u.n%d, 0) >= %d", i, privacyK))
			}
			// Every row of the algorithm's result has its group among the
			// hand-written counts (LEFT JOIN: a missing one would fail the
			// count below).
			with := "WITH r AS (" + c.core + "), u AS (" + c.units + ") "
			from := " FROM r LEFT JOIN u ON " + strings.Join(on, " AND ")
			order := ""
			if c.order != "" {
				order = " ORDER BY " + c.order
			}
			wantSchema, want := plain.query(t, with+"SELECT r.*"+from+" WHERE "+strings.Join(pass, " AND ")+order+" "+c.limit)
			_, dropped := plain.query(t, with+"SELECT count(*) AS n"+from+" WHERE NOT ("+strings.Join(pass, " AND ")+")")
			_, all := plain.query(t, with+"SELECT count(*) AS n FROM r")
			_, matched := plain.query(t, with+"SELECT count(*) AS n"+from+" WHERE u.n1 IS NOT NULL")
			if countOf(all) != countOf(matched) && c.n > 0 && len(c.keys) > 0 {
				t.Fatalf("the hand-written counts miss groups of the result: %d groups, %d matched", countOf(all), countOf(matched))
			}
			got, exp := rowsOf(res.Batches), rowsOf(want)
			if c.order == "" {
				slices.Sort(got)
				slices.Sort(exp)
			}
			if !slices.Equal(got, exp) {
				t.Errorf("released\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(exp, "\n  "))
			}
			if res.Suppressed != countOf(dropped) {
				t.Errorf("suppressed %d rows, want %d", res.Suppressed, countOf(dropped))
			}
			if res.Suppressed > 0 {
				suppressedSomewhere = true
			}
			if res.Rows != int64(len(got)) || !slices.Equal(fieldNames(res.Schema), fieldNames(wantSchema)) {
				t.Errorf("Rows %d, schema %s, want %s", res.Rows, res.Schema, wantSchema)
			}
		})
	}
	if !suppressedSomewhere {
		t.Error("no case suppressed a group: the data does not exercise k")
	}
}

func countOf(batches []arrow.RecordBatch) int64 {
	var n int64
	for _, b := range batches {
		for i := range int(b.NumRows()) {
			v := b.Column(0).ValueStr(i)
			var x int64
			fmt.Sscan(v, &x)
			n += x
		}
	}
	return n
}

// rowsOf renders every row as its values' text.
func rowsOf(batches []arrow.RecordBatch) []string {
	var out []string
	for _, b := range batches {
		for i := range int(b.NumRows()) {
			var vals []string
			for c := range int(b.NumCols()) {
				vals = append(vals, b.Column(c).ValueStr(i))
			}
			out = append(out, strings.Join(vals, " | "))
		}
	}
	return out
}

// TestAggregateOutput checks the rest of what mode aggregate releases: a
// nested value over a protected dataset is refused whole; the same value
// over unprotected data passes; the result's columns are the algorithm's,
// without the counts; max_rows counts the rows left.
func TestAggregateOutput(t *testing.T) {
	_, tables := privacyTables(t)
	policy := privacyPolicy(t)
	run := func(q string, p Policy) (*Result, error) {
		s := newSession(t, Config{Threads: 1, MemoryLimit: 128 << 20})
		load(t, s, tables...)
		return s.Run(context.Background(), q, p)
	}
	for _, q := range []string{
		"SELECT campaign, {'n': count(*)} AS s FROM impressions GROUP BY campaign",
		"SELECT campaign, [count(*), count(*)] AS l FROM impressions GROUP BY campaign",
		"SELECT campaign, map([1], [count(*)]) AS m FROM impressions GROUP BY campaign",
	} {
		_, err := run(q, policy)
		var re *RefusalError
		if !errors.As(err, &re) || re.Layer != LayerPolicy || !strings.Contains(err.Error(), "has the nested type") {
			t.Errorf("%s: %v, want a refusal of the nested value", q, err)
		}
	}
	res, err := run("SELECT segment, list(user_id ORDER BY user_id) AS who FROM segments GROUP BY segment ORDER BY segment", policy)
	if err != nil {
		t.Fatalf("nested value over unprotected data: %v", err)
	}
	res.Release()
	res, err = run("SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign ORDER BY campaign", policy)
	if err != nil {
		t.Fatal(err)
	}
	if names := fieldNames(res.Schema); !slices.Equal(names, []string{"campaign", "n"}) {
		t.Errorf("result columns %v", names)
	}
	res.Release()
	tight := policy
	tight.Output.MaxRows = 2 // three campaigns have enough users, solo and pilot do not
	if _, err := run("SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign", tight); err == nil || !strings.Contains(err.Error(), "more than max_rows (2)") {
		t.Errorf("max_rows: %v", err)
	}
	tight.Output.MaxRows = 3
	res, err = run("SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign", tight)
	if err != nil || res.Rows != 3 || res.Suppressed != 2 {
		t.Fatalf("max_rows after suppression: %v %+v", err, res)
	}
	res.Release()
	// k = 1 releases every group with a person behind it; a group of no
	// one (an outer join's unmatched side counts 0) is still dropped.
	one := policy
	one.Output.MinGroupSize = 1
	res, err = run("SELECT i.campaign, count(c.order_id) AS orders FROM impressions i LEFT JOIN conversions c ON c.user_id = i.user_id AND c.value > 1e9 GROUP BY i.campaign", one)
	if err != nil || res.Rows != 0 || res.Suppressed != 5 {
		t.Fatalf("k=1 over an empty side: %v %+v", err, res)
	}
	res.Release()
}

func fieldNames(s *arrow.Schema) []string {
	var out []string
	for _, f := range s.Fields() {
		out = append(out, f.Name)
	}
	return out
}

// TestModesPolicy checks the policies Run refuses before running, and that
// mode custom keeps trusting the query's column.
func TestModesPolicy(t *testing.T) {
	_, tables := privacyTables(t)
	base := privacyPolicy(t)
	lie := "SELECT campaign, 1000000 AS users, count(*) AS n FROM impressions GROUP BY campaign"
	for _, c := range []struct {
		name string
		edit func(*Policy)
		want string
	}{
		{"no mode", func(p *Policy) { p.Output.Mode = "" }, `mode "" is not one of`},
		{"differential privacy", func(p *Policy) { p.Output.Mode = contracts.ModeDifferentialPrivacy }, "differential_privacy is not supported by this engine"},
		{"group column in mode aggregate", func(p *Policy) { p.Output.GroupSizeColumn = "users" }, "in mode aggregate, where the engine counts"},
	} {
		p := base
		c.edit(&p)
		s := newSession(t, Config{Threads: 1})
		load(t, s, tables...)
		if _, err := s.Run(context.Background(), lie, p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
		if err := CheckAlgorithm(lie, p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s at submission: %v", c.name, err)
		}
	}
	// The lie passes mode custom, which trusts the query's column: this is
	// why a confidential algorithm may not use it.
	custom := base
	custom.Output.Mode, custom.Output.GroupSizeColumn = contracts.ModeCustom, "users"
	s := newSession(t, Config{Threads: 1})
	load(t, s, tables...)
	res, err := s.Run(context.Background(), lie, custom)
	if err != nil || res.Suppressed != 0 || res.Rows != 5 {
		t.Fatalf("mode custom: %v %+v", err, res)
	}
	res.Release()
	s = newSession(t, Config{Threads: 1})
	load(t, s, tables...)
	res, err = s.Run(context.Background(), lie, base)
	if err != nil || res.Suppressed != 2 || res.Rows != 3 {
		t.Fatalf("mode aggregate: %v %+v", err, res)
	}
	res.Release()
}
