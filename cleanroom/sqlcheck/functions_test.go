package sqlcheck

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
)

// snapshot reads testdata/duckdb_functions.tsv: for each function type,
// the names DuckDB lists.
func snapshot(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("testdata/duckdb_functions.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "\t")
		if len(parts) != 3 {
			t.Fatalf("snapshot line %q: want type, schema, name", line)
		}
		out[parts[0]] = append(out[parts[0]], parts[2])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEveryFunctionClassified holds the allow-lists to the snapshot of
// DuckDB's functions: every name DuckDB lists is classified (allowed or
// refused with a reason) in the list of its position, and every name the
// lists classify exists, so a DuckDB upgrade cannot add a function the
// lists silently ignore, nor leave stale names behind.
func TestEveryFunctionClassified(t *testing.T) {
	snap := snapshot(t)
	exprNames := append(append(append([]string{}, snap["scalar"]...), snap["aggregate"]...), snap["macro"]...)
	tableNames := append(append([]string{}, snap["table"]...), snap["table_macro"]...)
	if len(exprNames) < 700 || len(tableNames) < 80 {
		t.Fatalf("the snapshot lists only %d expression and %d table functions", len(exprNames), len(tableNames))
	}
	for _, c := range []struct {
		what  string
		names []string
		list  map[string]Verdict
		extra []string
	}{
		{"expression", exprNames, exprFunctions, binderFunctions},
		{"table", tableNames, tableFunctions, nil},
	} {
		for _, n := range c.names {
			if _, ok := c.list[strings.ToLower(n)]; !ok {
				t.Errorf("DuckDB's %s function %s is not classified in functions.go", c.what, n)
			}
		}
		lower := make([]string, len(c.names))
		for i, n := range c.names {
			lower[i] = strings.ToLower(n)
		}
		for n, v := range c.list {
			if !slices.Contains(lower, n) && !slices.Contains(c.extra, n) {
				t.Errorf("functions.go classifies the %s function %s, which DuckDB does not list", c.what, n)
			}
			if v.Note == "" {
				t.Errorf("%s function %s has no group or reason", c.what, n)
			}
		}
	}
	// list_aggr and its aliases call an aggregate named by a string, out
	// of the parse tree's sight: every aggregate must be allowed.
	for _, n := range snap["aggregate"] {
		if !exprFunctions[n].Allowed {
			t.Errorf("aggregate %s is refused, but list_aggr(l, '%s') would call it unseen: refuse list_aggr and its aliases too", n, n)
		}
	}
	// Every function of the PostgreSQL catalog schema is refused.
	f, _ := os.ReadFile("testdata/duckdb_functions.tsv")
	for _, line := range strings.Split(string(f), "\n") {
		if p := strings.Split(line, "\t"); len(p) == 3 && p[1] == "pg_catalog" {
			if exprFunctions[p[2]].Allowed {
				t.Errorf("pg_catalog function %s is allowed", p[2])
			}
		}
	}
	allowed, refused := 0, 0
	for _, v := range exprFunctions {
		if v.Allowed {
			allowed++
		} else {
			refused++
		}
	}
	t.Logf("expression functions: %d allowed, %d refused; table functions: %s allowed of %d", allowed, refused, allowedTableFunctions(), len(tableFunctions))
}
