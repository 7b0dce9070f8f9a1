package sqlcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/internal/fuzzseed"
	"cleanroom.dev/cleanroom/internal/sqlcases"
)

// trees reads testdata/trees.json: DuckDB's parse tree of each algorithm
// of the shared table, by case name (written by coordinator/internal/engine's
// TestParseTreeFixtures).
func trees(t testing.TB) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile("testdata/trees.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// check parses a tree and checks its one statement.
func check(tree []byte, datasets []string) error {
	stmts, err := Parse(tree)
	if err != nil {
		return err
	}
	if len(stmts) != 1 {
		return errors.New("not one statement")
	}
	return Check(stmts[0], datasets)
}

// TestCheckFixtures holds Check, without DuckDB, to the shared table of
// algorithms through their committed parse trees.
func TestCheckFixtures(t *testing.T) {
	tr := trees(t)
	for _, c := range sqlcases.Load(t) {
		tree, ok := tr[c.Name]
		if !ok {
			t.Errorf("%s: no parse tree in testdata/trees.json (run coordinator/internal/engine's TestParseTreeFixtures with -update)", c.Name)
			continue
		}
		err := check(tree, sqlcases.Datasets)
		if !c.Refuse {
			if err != nil {
				t.Errorf("%s: refused: %v", c.Name, err)
			}
			continue
		}
		var r *Refusal
		switch {
		case !errors.As(err, &r):
			t.Errorf("%s: want a refusal, got %v", c.Name, err)
		case !strings.Contains(r.Error(), c.Want):
			t.Errorf("%s: refusal %q does not say %q", c.Name, r, c.Want)
		case r.Construct == "" || r.Rule == 0:
			t.Errorf("%s: refusal without its construct or rule: %+v", c.Name, r)
		}
	}
}

// TestRules checks the rule and construct each kind of refusal reports.
func TestRules(t *testing.T) {
	tr := trees(t)
	for _, c := range []struct {
		name      string
		rule      Rule
		construct string
	}{
		{"pg_settings qualified", RuleRelation, "pg_catalog.pg_settings"},
		{"CTE of an inner scope used outside it", RuleRelation, "pg_settings"},
		{"current_setting", RuleFunction, "current_setting"},
		{"qualified function", RuleFunction, "pg_catalog.current_schema"},
		{"read_csv", RuleTableFunction, "read_csv"},
		{"user keyword", RuleKeyword, "user"},
		{"USING SAMPLE", RuleConstruct, "USING SAMPLE"},
		{"DESCRIBE as a table", RuleConstruct, "DESCRIBE"},
	} {
		var r *Refusal
		if err := check(tr[c.name], sqlcases.Datasets); !errors.As(err, &r) || r.Rule != c.rule || r.Construct != c.construct {
			t.Errorf("%s: got %v (%+v), want rule %s on %s", c.name, err, r, c.rule, c.construct)
		}
	}
}

// TestDatasetNames checks how relation names meet dataset names: without
// ASCII case, as DuckDB compares them, and never by a prefix or a fold
// DuckDB does not make.
func TestDatasetNames(t *testing.T) {
	tree := trees(t)["join"] // FROM impressions i JOIN conversions c
	for _, c := range []struct {
		datasets []string
		ok       bool
	}{
		{[]string{"impressions", "conversions"}, true},
		{[]string{"IMPRESSIONS", "Conversions"}, true},
		{[]string{"impressions"}, false},
		{[]string{"impressions", "conversion"}, false},
		{[]string{"impressions", "conversions2"}, false},
		{[]string{"impreſſions", "conversions"}, false}, // long s: Unicode folds it to s, DuckDB does not
		{nil, false},
	} {
		err := check(tree, c.datasets)
		if (err == nil) != c.ok {
			t.Errorf("datasets %q: %v", c.datasets, err)
		}
	}
	// A dataset of the same name as a catalog view is read as the dataset
	// (DuckDB's main schema comes before the system catalog).
	if err := check(trees(t)["pg_settings bare"], []string{"pg_settings"}); err != nil {
		t.Errorf("a dataset named pg_settings: %v", err)
	}
}

// TestParseStrict alters real parse trees in the ways a DuckDB upgrade or a
// hostile input could, and requires a refusal that names where.
func TestParseStrict(t *testing.T) {
	join := trees(t)["join"]
	for _, c := range []struct {
		name string
		tree []byte
		want string
	}{
		{"unknown key in a node", replace(t, join, `"where_clause":null`, `"where_clause":null,"extra_filter":null`), `keys the statement check does not know: "extra_filter"`},
		{"unknown expression class", replace(t, join, `"class":"COLUMN_REF","type":"COLUMN_REF"`, `"class":"NEW_THING","type":"COLUMN_REF"`), `expression class "NEW_THING"`},
		{"unknown table reference", replace(t, join, `"type":"BASE_TABLE"`, `"type":"REMOTE_TABLE"`), `table reference type "REMOTE_TABLE"`},
		{"unknown query node", replace(t, join, `"type":"SELECT_NODE"`, `"type":"GRAPH_NODE"`), `query node type "GRAPH_NODE"`},
		{"unknown modifier", replace(t, join, `"type":"ORDER_MODIFIER","orders":[{`, `"type":"SHUFFLE_MODIFIER","orders":[{`), `result modifier "SHUFFLE_MODIFIER"`},
		{"missing key", replace(t, join, `"table_name":"impressions",`, ``), `the key "table_name" is missing`},
		{"wrong type", replace(t, join, `"table_name":"impressions"`, `"table_name":7`), `expected a string, found a number`},
		{"a statement without a node", []byte(`{"error":false,"statements":[{"node":null,"named_param_map":[]}]}`), "without a query node"},
		{"not JSON", []byte(`{"error":false,`), "not JSON"},
		{"trailing data", append(bytes.Clone(join), []byte(" {}")...), "after the JSON value"},
		{"not an object", []byte(`[1]`), "expected an object, found an array"},
		{"an expression inside data", replace(t, join, `"group_sets":[[0]]`, `"group_sets":[[{"class":"SUBQUERY"}]]`), "an expression inside what the statement check reads as data"},
	} {
		_, err := Parse(c.tree)
		var r *Refusal
		if !errors.As(err, &r) || r.Rule != RuleUnreadable || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a refusal saying %q", c.name, err, c.want)
		}
	}
	// DuckDB's own error comes back as a *SerializeError.
	_, err := Parse([]byte(`{"error":true,"error_type":"parser","error_message":"syntax error at or near \"FRM\"","error_subtype":"SYNTAX_ERROR","position":"9"}`))
	var se *SerializeError
	if !errors.As(err, &se) || se.Type != "parser" || !strings.Contains(se.Message, "FRM") {
		t.Errorf("DuckDB's error: %v", err)
	}
}

// replace replaces old, which must occur, in a tree.
func replace(t *testing.T, tree []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(tree, []byte(old)) {
		t.Fatalf("%q is not in the tree", old)
	}
	return bytes.Replace(tree, []byte(old), []byte(new), 1)
}

// TestCheckPlan checks the plan rules on plans of DuckDB's shape.
func TestCheckPlan(t *testing.T) {
	get := func(name string) string {
		return `{"type":"LOGICAL_GET","name":"` + name + `","children":[]}`
	}
	plan := func(ops ...string) []byte {
		return []byte(`{"error":false,"plans":[{"type":"LOGICAL_PROJECTION","children":[` + strings.Join(ops, ",") + `]}]}`)
	}
	scans := []string{"_cleanroom_scan"}
	for _, c := range []struct {
		name string
		plan []byte
		want string // "" to accept
	}{
		{"dataset scans and generators", plan(get("_cleanroom_scan"), get("range"), get("generate_series"), get("unnest")), ""},
		{"catalog function", plan(get("_cleanroom_scan"), get("duckdb_settings")), "reads through the table function duckdb_settings, which reads DuckDB's catalog"},
		{"table scan", plan(get("seq_scan")), "reads through the table function seq_scan"},
		{"unknown reader", plan(get("read_everything")), "reads through the table function read_everything, which reads DuckDB's catalog or storage"},
		{"refused function", plan(`{"type":"BOUND_FUNCTION","expression_class":"BOUND_FUNCTION","name":"current_setting"}`), "calls current_setting"},
		{"refused aggregate-position call", plan(`{"type":"BOUND_AGGREGATE","expression_class":"BOUND_AGGREGATE","name":"now"}`), "calls now"},
		{"allowed and internal functions", plan(`{"expression_class":"BOUND_FUNCTION","name":"upper"}`, `{"expression_class":"BOUND_FUNCTION","name":"error"}`), ""},
		{"nested deep in expressions", plan(`{"type":"LOGICAL_FILTER","expressions":[{"expression_class":"BOUND_CASE","case_checks":[{"then_expr":{"expression_class":"BOUND_FUNCTION","name":"random"}}]}]}`), "calls random"},
		{"not JSON", []byte("{"), "not JSON"},
		{"no plans", []byte(`{"error":false}`), "no list of plans"},
	} {
		err := CheckPlan(c.plan, scans)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	var se *SerializeError
	if err := CheckPlan([]byte(`{"error":true,"error_type":"binder","error_message":"Referenced column x not found"}`), scans); !errors.As(err, &se) || se.Type != "binder" {
		t.Errorf("DuckDB's binder error: %v", err)
	}
}

// FuzzCheck feeds arbitrary JSON, and mutations of real parse trees, to
// Parse and Check: they never panic; Parse fails only with a
// *SerializeError or a *Refusal, Check only with a *Refusal; and fewer
// datasets never turn a refusal into an acceptance.
func FuzzCheck(f *testing.F) {
	for _, tree := range trees(f) {
		f.Add(tree, "impressions,conversions")
	}
	f.Fuzz(func(t *testing.T, tree []byte, datasets string) {
		stmts, err := Parse(tree)
		if err != nil {
			var se *SerializeError
			var r *Refusal
			if !errors.As(err, &se) && !errors.As(err, &r) {
				t.Fatalf("Parse: %T %v", err, err)
			}
			return
		}
		ds := strings.Split(datasets, ",")
		for _, st := range stmts {
			err := Check(st, ds)
			var r *Refusal
			if err != nil && !errors.As(err, &r) {
				t.Fatalf("Check: %T %v", err, err)
			}
			if err != nil && Check(st, nil) == nil {
				t.Fatalf("refused with datasets %q (%v), accepted with none", ds, err)
			}
		}
	})
}

// FuzzCheckPlan feeds arbitrary JSON to CheckPlan: it never panics and
// fails only with a *SerializeError or a *Refusal.
func FuzzCheckPlan(f *testing.F) {
	f.Add([]byte(`{"error":false,"plans":[{"type":"LOGICAL_GET","name":"_cleanroom_scan"}]}`))
	f.Add([]byte(`{"error":false,"plans":[{"type":"LOGICAL_GET","name":"duckdb_settings"}]}`))
	f.Add([]byte(`{"error":true,"error_type":"binder","error_message":"x"}`))
	f.Fuzz(func(t *testing.T, plan []byte) {
		err := CheckPlan(plan, []string{"_cleanroom_scan"})
		var se *SerializeError
		var r *Refusal
		if err != nil && !errors.As(err, &se) && !errors.As(err, &r) {
			t.Fatalf("CheckPlan: %T %v", err, err)
		}
	})
}

// TestWriteFuzzSeeds writes the committed seed corpora: real parse trees
// of hostile algorithms, and trees altered into shapes DuckDB does not
// make (unknown nodes, wrong types, null where a node belongs, deep
// nesting).
func TestWriteFuzzSeeds(t *testing.T) {
	if !*fuzzseed.Update {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz")
	}
	tr := trees(t)
	join := tr["join"]
	deep := `{"class":"CONSTANT","type":"VALUE_CONSTANT","alias":"","query_location":0,"value":1}`
	for range 200 {
		deep = `{"class":"OPERATOR","type":"OPERATOR_NOT","alias":"","query_location":0,"children":[` + deep + `]}`
	}
	var seeds [][]any
	for _, name := range []string{"pg_settings qualified", "CTE that reads the catalog view it is named after",
		"recursive CTE whose anchor reads the catalog view it is named after", "CTE of one UNION branch used in the other",
		"catalog relation under PIVOT", "keyword in a table function argument", "accept/CTE named like a catalog view"} {
		if tree, ok := tr[strings.TrimPrefix(name, "accept/")]; ok {
			seeds = append(seeds, []any{tree, "impressions,conversions"})
		}
	}
	for _, tree := range [][]byte{
		replace(t, join, `"type":"BASE_TABLE"`, `"type":"SHOW_REF"`),
		replace(t, join, `"from_table":{`, `"from_table":null,"x":{`),
		replace(t, join, `"select_list":[`, `"select_list":[null,`),
		replace(t, join, `"cte_map":{"map":[]}`, `"cte_map":{"map":[{"key":"impressions","value":null}]}`),
		[]byte(`{"error":false,"statements":[{"node":{"type":"SELECT_NODE","modifiers":[],"cte_map":{"map":[]},"select_list":[` + deep +
			`],"from_table":{"type":"EMPTY","alias":"","sample":null,"query_location":0},"where_clause":null,"group_expressions":[],"group_sets":[],"aggregate_handling":"STANDARD_HANDLING","having":null,"sample":null,"qualify":null},"named_param_map":[]}]}`),
		[]byte(`{"error":true,"error_type":"parser","error_message":"x"}`),
		[]byte(`{"error":false,"statements":[]}`),
	} {
		seeds = append(seeds, []any{tree, "impressions"})
	}
	fuzzseed.Write(t, "FuzzCheck", seeds...)
}

// BenchmarkCheck measures Parse and Check of the ad-attribution shape's
// parse tree (DuckDB's own serialisation is the engine's to measure).
func BenchmarkCheck(b *testing.B) {
	tree := trees(b)["ad attribution shape"]
	b.SetBytes(int64(len(tree)))
	for b.Loop() {
		if err := check(tree, sqlcases.Datasets); err != nil {
			b.Fatal(err)
		}
	}
}
