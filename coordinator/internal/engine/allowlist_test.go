package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/internal/sqlcases"
)

// TestStatementCheckTable holds CheckQuery (the check at submission) and
// Session.Run (the checks at run time, with the datasets loaded) to the
// shared table of algorithms: each refused one is refused by the statement
// check with the refusal the table names; each accepted one passes and
// runs.
func TestStatementCheckTable(t *testing.T) {
	imp, conv := scenario(300, 5)
	for _, c := range sqlcases.Load(t) {
		t.Run(c.Name, func(t *testing.T) {
			cerr := CheckQuery(c.SQL, sqlcases.Datasets)
			s := newSession(t, Config{Threads: 1, MemoryLimit: 128 << 20})
			load(t, s, imp, conv)
			res, rerr := s.Run(context.Background(), c.SQL, noLimit)
			if !c.Refuse {
				if cerr != nil {
					t.Errorf("CheckQuery refused an accepted algorithm: %v", cerr)
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
			for what, err := range map[string]error{"CheckQuery": cerr, "Run": rerr} {
				var re *RefusalError
				switch {
				case !errors.As(err, &re):
					t.Errorf("%s did not refuse: %v", what, err)
				case re.Layer != LayerStatement:
					t.Errorf("%s refused at the %s, want the statement check: %v", what, re.Layer, err)
				case !strings.Contains(err.Error(), c.Want):
					t.Errorf("%s's refusal %q does not say %q", what, err, c.Want)
				}
			}
		})
	}
}

// treesPath holds DuckDB's parse trees of the table's algorithms, for
// cleanroom/sqlcheck's tests, which run without DuckDB.
var treesPath = filepath.Join("..", "..", "..", "cleanroom", "sqlcheck", "testdata", "trees.json")

// privacyTreesPath holds the parse trees of the privacy table's
// algorithms.
var privacyTreesPath = filepath.Join("..", "..", "..", "cleanroom", "sqlcheck", "testdata", "privacy_trees.json")

// TestParseTreeFixtures checks that the committed parse trees are what this
// DuckDB's json_serialize_sql makes of the tables' algorithms (rerun with
// -update to rewrite them after a DuckDB upgrade).
func TestParseTreeFixtures(t *testing.T) {
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
	for path, cases := range map[string][]sqlcases.Case{treesPath: sqlcases.Load(t), privacyTreesPath: sqlcases.LoadPrivacy(t)} {
		// One case a line: {"name": tree, ...}, in the table's order.
		var b bytes.Buffer
		b.WriteString("{\n")
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
		got := b.Bytes()
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from this DuckDB's parse trees of the table's algorithms: rerun with -update", path)
		}
	}
}

// TestPlanCheckAlone skips the parse-tree check and gives the table's
// algorithms that read a catalog relation or call a refused function
// straight to the plan check, on a session with the datasets loaded: it
// must refuse every one by itself, so a mistake in the parse-tree check's
// scoping still reads nothing. (Refusals the plan cannot see — a macro
// DuckDB expands to a constant, a qualified name of a dataset — are the
// parse-tree check's alone, and so are functions DuckDB evaluates while
// binding, whose value is all the plan keeps.)
func TestPlanCheckAlone(t *testing.T) {
	imp, conv := scenario(50, 3)
	s := newSession(t, Config{Threads: 1, MemoryLimit: 64 << 20})
	load(t, s, imp, conv)
	conn, err := s.connector.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	catalog := regexp.MustCompile(`pg_settings|duckdb_|information_schema|sqlite_master|pg_catalog\.|system\.main|current_setting|version\(|current_database|current_schemas|current_query|in_search_path|random\(|now\(|getvariable|json_serialize_plan|write_log|pg_get_viewdef|format_type|get_block_size`)
	parseOnly := map[string]string{
		"getvariable": "bound to its value while binding",
		"refused function in a table function argument": "table function arguments are evaluated while binding",
		"function qualified by the system catalog":      "upper is allowed; its qualified name is what is refused",
	}
	n := 0
	for _, c := range sqlcases.Load(t) {
		if !c.Refuse || !catalog.MatchString(c.SQL) || parseOnly[c.Name] != "" {
			continue
		}
		n++
		err := checkPlan(context.Background(), conn, c.SQL)
		var re *RefusalError
		if !errors.As(err, &re) {
			t.Errorf("%s: the plan check alone accepted %q: %v", c.Name, c.SQL, err)
			continue
		}
		t.Logf("%s: %v", c.Name, err)
	}
	if n < 40 {
		t.Errorf("only %d algorithms tried", n)
	}
	for _, q := range []string{scenarioQuery, "SELECT * FROM range(3) r, generate_series(1, 2) g, unnest([1]) u", "WITH pg_settings AS (SELECT * FROM impressions) SELECT count(*) FROM pg_settings"} {
		if err := checkPlan(context.Background(), conn, q); err != nil {
			t.Errorf("the plan check refused %q: %v", q, err)
		}
	}
}
