package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/sqlcases"
)

// TestParameterCheck holds the statement check to the table of algorithms
// with parameters: every refused one is refused by CheckQuery (the check at
// submission) and by QueryParameters, with the refusal the table names,
// most under sqlcheck's parameter rule; every accepted one passes and
// QueryParameters names its parameters in order.
func TestParameterCheck(t *testing.T) {
	for _, c := range sqlcases.LoadParameters(t) {
		t.Run(c.Name, func(t *testing.T) {
			cerr := CheckQuery(c.SQL, sqlcases.Datasets)
			names, perr := QueryParameters(c.SQL)
			if !c.Refuse {
				if cerr != nil || perr != nil {
					t.Fatalf("refused: %v / %v", cerr, perr)
				}
				if !slices.Equal(names, c.Params) {
					t.Fatalf("parameters %v, want %v", names, c.Params)
				}
				return
			}
			for what, err := range map[string]error{"CheckQuery": cerr, "QueryParameters": perr} {
				var re *RefusalError
				switch {
				case !errors.As(err, &re) || re.Layer != LayerStatement:
					t.Errorf("%s did not refuse at the statement check: %v", what, err)
				case !strings.Contains(err.Error(), c.Want):
					t.Errorf("%s's refusal %q does not say %q", what, err, c.Want)
				}
			}
		})
	}
}

// parameterTreesPath holds DuckDB's parse trees of the parameter table,
// for cleanroom/sqlcheck's tests, which run without DuckDB.
var parameterTreesPath = filepath.Join("..", "..", "..", "cleanroom", "sqlcheck", "testdata", "parameter_trees.json")

// TestParameterTreeFixtures checks that the committed parse trees of the
// parameter table are what this DuckDB makes of it (rerun with -update
// after a DuckDB upgrade).
func TestParameterTreeFixtures(t *testing.T) {
	ctx := context.Background()
	connector, err := open(ctx, Config{MemoryLimit: 64 << 20, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer connector.Close()
	conn, err := connector.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b bytes.Buffer
	b.WriteString("{\n")
	cases := sqlcases.LoadParameters(t)
	for i, c := range cases {
		tree, err := serialize(ctx, conn, "json_serialize_sql(CAST($1 AS VARCHAR))", c.SQL)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := json.Marshal(c.Name)
		b.Write(name)
		b.WriteString(": ")
		if err := json.Compact(&b, tree); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if i < len(cases)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	if *update {
		if err := os.WriteFile(parameterTreesPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(parameterTreesPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("%s differs from this DuckDB's parse trees of the parameter table: rerun with -update", parameterTreesPath)
	}
}

func mustValue(t *testing.T, typ, text string) contracts.Value {
	t.Helper()
	ct, err := contracts.ParseColumnType(typ)
	if err != nil {
		t.Fatal(err)
	}
	v, err := contracts.ParseValue(ct, text)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestParametersMatchPlainDuckDB runs parameterised queries in the locked
// session with values bound, and the same queries with the values written
// as literals in an ordinary DuckDB over the same data as Parquet: the
// results must be the same, for every parameter type.
func TestParametersMatchPlainDuckDB(t *testing.T) {
	imp, conv := scenario(20000, 9)
	all := allTypes(2000, 3)
	dir := t.TempDir()
	plain := newPlainDuckDB(t, 2, map[string]string{
		imp.name: writeParquet(t, dir, imp), conv.name: writeParquet(t, dir, conv), all.name: writeParquet(t, dir, all),
	})
	for _, q := range []struct {
		name, sql, literal string
		params             []Param
	}{
		{"date window", `SELECT campaign, count(DISTINCT user_id) AS users FROM impressions
			WHERE shown_at >= $since AND shown_at < $until GROUP BY campaign ORDER BY campaign`,
			`SELECT campaign, count(DISTINCT user_id) AS users FROM impressions
			WHERE shown_at >= DATE '2026-10-15' AND shown_at < DATE '2026-11-20' GROUP BY campaign ORDER BY campaign`,
			[]Param{{"since", mustValue(t, "date", "2026-10-15")}, {"until", mustValue(t, "date", "2026-11-20")}}},
		{"timestamp and float", `SELECT count(*) AS n, sum(value) AS v FROM conversions WHERE converted_at >= $t AND value > $min`,
			`SELECT count(*) AS n, sum(value) AS v FROM conversions WHERE converted_at >= TIMESTAMPTZ '2026-10-20 06:30:00+00' AND value > 120.5`,
			[]Param{{"t", mustValue(t, "timestamp", "2026-10-20T08:30:00+02:00")}, {"min", mustValue(t, "float64", "120.5")}}},
		{"string, int and bool", `SELECT count(*) AS n FROM impressions WHERE campaign = $c AND length(user_id) >= $len AND $strict`,
			`SELECT count(*) AS n FROM impressions WHERE campaign = 'campaign-03' AND length(user_id) >= 11 AND true`,
			[]Param{{"c", mustValue(t, "string", "campaign-03")}, {"len", mustValue(t, "int32", "11")}, {"strict", mustValue(t, "bool", "true")}}},
		{"a quote in a string stays a value", `SELECT count(*) AS n FROM impressions WHERE campaign = $c`,
			`SELECT count(*) AS n FROM impressions WHERE campaign = 'x'' OR 1=1 --'`,
			[]Param{{"c", mustValue(t, "string", "x' OR 1=1 --")}}},
		{"int64 and decimal", `SELECT count(*) AS n, sum(dec_small) AS s FROM all_types WHERE i64 > $i AND dec_small < $d`,
			`SELECT count(*) AS n, sum(dec_small) AS s FROM all_types WHERE i64 > -1000000 AND dec_small < 50.25`,
			[]Param{{"i", mustValue(t, "int64", "-1000000")}, {"d", mustValue(t, "decimal(9,2)", "50.25")}}},
		{"a parameter in HAVING", `SELECT user_id, count(*) AS n FROM conversions GROUP BY user_id HAVING count(*) >= $n ORDER BY user_id`,
			`SELECT user_id, count(*) AS n FROM conversions GROUP BY user_id HAVING count(*) >= 2 ORDER BY user_id`,
			[]Param{{"n", mustValue(t, "int64", "2")}}},
	} {
		t.Run(q.name, func(t *testing.T) {
			s := newSession(t, Config{})
			load(t, s, imp, conv, all)
			res, err := s.Run(context.Background(), q.sql, noLimit, q.params...)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Release()
			schema, batches := plain.query(t, q.literal)
			want := concatBatches(t, schema, batches)
			got := concatBatches(t, res.Schema, res.Batches)
			if want.NumRows() == 0 {
				t.Fatal("the reference result is empty; the query tests nothing")
			}
			if err := sameResult(want, got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRunRefusesMismatchedParameters: a run must give exactly the
// parameters the query uses.
func TestRunRefusesMismatchedParameters(t *testing.T) {
	imp, conv := scenario(100, 1)
	q := "SELECT count(*) AS n FROM impressions WHERE campaign = $c"
	for _, tc := range []struct {
		name   string
		params []Param
		want   string
	}{
		{"none", nil, "the algorithm uses the parameter $c, and the run gives it no value"},
		{"another", []Param{{"d", mustValue(t, "string", "x")}}, "the algorithm uses the parameter $c, and the run gives it no value"},
		{"one too many", []Param{{"c", mustValue(t, "string", "x")}, {"d", mustValue(t, "string", "y")}}, "the run gives a value for the parameter d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, Config{})
			load(t, s, imp, conv)
			_, err := s.Run(context.Background(), q, noLimit, tc.params...)
			var re *RefusalError
			if !errors.As(err, &re) || re.Layer != LayerStatement || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a statement refusal: %s", err, tc.want)
			}
		})
	}
	if err := CheckParameterNames([]string{"a", "b"}, []contracts.Parameter{{Name: "a"}, {Name: "c"}}); err == nil ||
		!strings.Contains(err.Error(), "it uses $b, which the contract's algorithm.parameters do not declare") ||
		!strings.Contains(err.Error(), "the contract declares the parameter c, which it never uses") {
		t.Fatalf("CheckParameterNames: %v", err)
	}
	var r *sqlcheck.Refusal
	if _, err := QueryParameters("SELECT COLUMNS($x) FROM impressions"); !errors.As(err, &r) && !strings.Contains(err.Error(), "COLUMNS") {
		t.Fatalf("QueryParameters on COLUMNS($x): %v", err)
	}
}

// TestParametersThroughPrivacyAnalysis runs a parameterised query in mode
// aggregate over protected datasets: the analysis reads the parameter as a
// literal, its rewrite keeps $name (json_deserialize_sql writes it back),
// the value is bound to the rewritten query, and the released rows are
// those of the same query with the literal, k-suppressed alike.
func TestParametersThroughPrivacyAnalysis(t *testing.T) {
	imp, conv := scenario(20000, 4)
	p := aggregatePolicy(imp, conv)
	p.Output.MinGroupSize = 300
	q := `SELECT i.campaign, count(DISTINCT i.user_id) AS users, sum(c.value) AS v FROM impressions i
		JOIN conversions c ON c.user_id = i.user_id WHERE i.shown_at >= $since OR i.campaign < 'campaign-10' GROUP BY i.campaign ORDER BY i.campaign`
	lit := strings.Replace(q, "$since", "TIMESTAMPTZ '2026-10-20 00:00:00+00'", 1)
	run := func(query string, params ...Param) *Result {
		s := newSession(t, Config{})
		load(t, s, imp, conv)
		res, err := s.Run(context.Background(), query, p, params...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(res.Release)
		return res
	}
	got := run(q, Param{"since", mustValue(t, "timestamp", "2026-10-20T00:00:00Z")})
	want := run(lit)
	if got.Rows == 0 || got.Suppressed == 0 {
		t.Fatalf("rows %d, suppressed %d: the case must both keep and suppress rows", got.Rows, got.Suppressed)
	}
	if got.Rows != want.Rows || got.Suppressed != want.Suppressed {
		t.Fatalf("with the parameter: %d rows, %d suppressed; with the literal: %d, %d", got.Rows, got.Suppressed, want.Rows, want.Suppressed)
	}
	if err := sameResult(concatBatches(t, want.Schema, want.Batches), concatBatches(t, got.Schema, got.Batches)); err != nil {
		t.Fatal(err)
	}
	// Mode custom: the query's own count, the parameter bound the same way.
	custom := Policy{Output: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 300, MaxRows: 1000}}
	sc := newSession(t, Config{})
	load(t, sc, imp, conv)
	cres, err := sc.Run(context.Background(), q, custom, Param{"since", mustValue(t, "timestamp", "2026-10-20T00:00:00Z")})
	if err != nil {
		t.Fatal(err)
	}
	defer cres.Release()
	if cres.Rows == 0 {
		t.Fatal("mode custom with the parameter released nothing")
	}
	// A parameter never reaches the analysis as anything but a value: the
	// privacy unit compared with a parameter is refused like with a literal.
	s := newSession(t, Config{})
	load(t, s, imp, conv)
	_, err = s.Run(context.Background(), "SELECT campaign, count(*) AS n FROM impressions WHERE user_id = $u GROUP BY campaign", p,
		Param{"u", mustValue(t, "string", "u1000000001")})
	var re *RefusalError
	if !errors.As(err, &re) || re.Layer != LayerPrivacy {
		t.Fatalf("a privacy unit filtered by a parameter: %v, want a privacy refusal", err)
	}
}
