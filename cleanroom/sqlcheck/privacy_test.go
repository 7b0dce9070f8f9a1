package sqlcheck

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/internal/fuzzseed"
	"cleanroom.dev/cleanroom/internal/sqlcases"
)

// privacyDatasets are sqlcases.PrivacyDatasets as the analysis reads them.
func privacyDatasets() []Dataset {
	var out []Dataset
	for _, d := range sqlcases.PrivacyDatasets {
		ds := Dataset{Name: d.Name, PrivacyUnit: d.PrivacyUnit, Dimensions: d.Dimensions, Aggregations: d.Aggregations}
		for _, c := range d.Columns {
			ds.Columns = append(ds.Columns, Column{Name: c[0], Type: c[1]})
		}
		out = append(out, ds)
	}
	return out
}

// privacyTrees reads testdata/privacy_trees.json (written by
// coordinator/internal/engine's TestParseTreeFixtures).
func privacyTrees(t testing.TB) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile("testdata/privacy_trees.json")
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

// analyze parses a tree and runs Check then Analyze on its one statement.
func analyze(tree []byte, datasets []Dataset) (*Analysis, error) {
	stmts, err := Parse(tree)
	if err != nil {
		return nil, err
	}
	if len(stmts) != 1 {
		return nil, errors.New("not one statement")
	}
	names := make([]string, len(datasets))
	for i, d := range datasets {
		names[i] = d.Name
	}
	if err := Check(stmts[0], names); err != nil {
		return nil, err
	}
	return Analyze(stmts[0], datasets)
}

// TestAnalyzeFixtures holds Analyze, without DuckDB, to the privacy table:
// each refused algorithm is refused under the rule the table names, with
// the words it names; each accepted one is accepted, and its rewrite is a
// statement the checks accept again, with one privacy-unit count per
// reading of a protected dataset.
func TestAnalyzeFixtures(t *testing.T) {
	tr := privacyTrees(t)
	cases := sqlcases.LoadPrivacy(t)
	refused, accepted := 0, 0
	for _, c := range cases {
		tree, ok := tr[c.Name]
		if !ok {
			t.Errorf("%s: no parse tree in testdata/privacy_trees.json (run coordinator/internal/engine's TestParseTreeFixtures with -update)", c.Name)
			continue
		}
		a, err := analyze(tree, privacyDatasets())
		if c.Refuse {
			refused++
			var r *Refusal
			switch {
			case !errors.As(err, &r):
				t.Errorf("%s: want a refusal, got %v", c.Name, err)
			case r.Rule.String() != c.Rule:
				t.Errorf("%s: refused under the rule %q, want %q: %v", c.Name, r.Rule, c.Rule, r)
			case !strings.Contains(r.Error(), c.Want):
				t.Errorf("%s: refusal %q does not say %q", c.Name, r, c.Want)
			case r.Construct == "":
				t.Errorf("%s: refusal without its construct: %+v", c.Name, r)
			case r.Rule >= RulePrivacyUnit && !strings.Contains(r.Error(), "(rule: "+c.Rule+" of mode aggregate)"):
				t.Errorf("%s: refusal %q does not name its rule", c.Name, r)
			}
			continue
		}
		accepted++
		if err != nil {
			t.Errorf("%s: refused: %v", c.Name, err)
			continue
		}
		checkRewrite(t, c.Name, a)
	}
	if refused < 60 || accepted < 25 {
		t.Errorf("the table has %d refused and %d accepted algorithms; it should keep at least 60 and 25", refused, accepted)
	}
}

// checkRewrite checks a rewrite in the ways that need no DuckDB: the
// rewritten statement parses strictly, passes Check and Analyze again, and
// ends in one count per reading of a protected dataset.
func checkRewrite(t *testing.T, name string, a *Analysis) {
	t.Helper()
	tree := a.Rewritten()
	if len(a.Protected) == 0 {
		if tree != nil || len(a.Counts) > 0 {
			t.Errorf("%s: reads no protected dataset but is rewritten", name)
		}
		return
	}
	if tree == nil || len(a.Counts) == 0 {
		t.Errorf("%s: reads %v but has no rewrite", name, a.Protected)
		return
	}
	stmts, err := Parse(tree)
	if err != nil {
		t.Errorf("%s: the rewrite does not parse: %v", name, err)
		return
	}
	if err := Check(stmts[0], sqlcases.PrivacyDatasetNames()); err == nil {
		t.Errorf("%s: the rewrite passes the algorithm check, whose reserved names it uses", name)
	}
	sel, ok := stmts[0].Node.(*SelectNode)
	if !ok {
		t.Errorf("%s: the rewrite is a %T", name, stmts[0].Node)
		return
	}
	// The distinct count columns, in order of first use.
	var columns []Count
	for _, c := range a.Counts {
		if !slices.ContainsFunc(columns, func(x Count) bool { return x.Column == c.Column }) {
			columns = append(columns, c)
		}
	}
	items := sel.SelectList[len(sel.SelectList)-len(columns):]
	for i, e := range items {
		f, ok := e.(*FunctionExpr)
		if !ok || f.Name != "count" || !f.Distinct || f.Alias != columns[i].Column || len(f.Children) != 1 {
			t.Errorf("%s: the rewrite's column %d is not count(DISTINCT …) AS %s", name, i, columns[i].Column)
			continue
		}
		if (f.Filter != nil) != (columns[i].Filter != "") {
			t.Errorf("%s: count %s and its FILTER disagree", name, columns[i].Column)
		}
	}
	for _, m := range sel.Modifiers {
		if _, ok := m.(*LimitModifier); ok {
			t.Errorf("%s: the rewrite keeps the result's LIMIT", name)
		}
	}
	for _, c := range a.Counts {
		if !slices.Contains(a.Protected, c.Dataset) {
			t.Errorf("%s: count of %s, which Protected does not list", name, c.Dataset)
		}
	}
}

// TestAnalyzeDetails checks what the table's fragments do not: the counts
// and LIMIT of a few rewrites, and that the same algorithm over datasets
// without privacy units is accepted as it is.
func TestAnalyzeDetails(t *testing.T) {
	tr := privacyTrees(t)
	for _, c := range []struct {
		name   string
		counts []Count
		limit  int64
		offset int64
	}{
		{"per campaign", []Count{{Column: "_cleanroom_units_0", Dataset: "impressions"}}, -1, 0},
		// Readings joined on their units (inner join, one type) share a
		// count; an outer join's do not.
		{"join that duplicates units", []Count{{"_cleanroom_units_0", "impressions", ""}, {"_cleanroom_units_0", "impressions", ""}}, -1, 0},
		{"ad attribution", []Count{{"_cleanroom_units_0", "conversions", ""}, {"_cleanroom_units_0", "impressions", ""}}, -1, 0},
		{"left join", []Count{{"_cleanroom_units_0", "impressions", ""}, {"_cleanroom_units_1", "conversions", ""}}, -1, 0},
		{"filtered aggregate", []Count{{"_cleanroom_units_0", "impressions", ""}, {"_cleanroom_units_1", "impressions", "count_star"}}, -1, 0},
		{"GROUP BY ALL with HAVING, ORDER BY, LIMIT and OFFSET", []Count{{"_cleanroom_units_0", "impressions", ""}}, 3, 1},
		{"group by a recipient's segment", []Count{{"_cleanroom_units_0", "impressions", ""}}, -1, 0},
	} {
		a, err := analyze(tr[c.name], privacyDatasets())
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !slices.Equal(a.Counts, c.counts) || a.Limit != c.limit || a.Offset != c.offset {
			t.Errorf("%s: counts %v, limit %d, offset %d; want %v, %d, %d", c.name, a.Counts, a.Limit, a.Offset, c.counts, c.limit, c.offset)
		}
	}
	// Without privacy units nothing is protected: the analysis has nothing
	// to refuse, except what it cannot read.
	open := privacyDatasets()
	for i := range open {
		open[i].PrivacyUnit, open[i].Dimensions, open[i].Aggregations = "", nil, nil
	}
	for _, c := range sqlcases.LoadPrivacy(t) {
		a, err := analyze(tr[c.Name], open)
		var r *Refusal
		if c.Rule == "reserved names" || (errors.As(err, &r) && r.Rule == RuleParameter) {
			continue // refused by the statement check before any analysis
		}
		if err != nil || len(a.Protected) > 0 || a.Rewritten() != nil {
			t.Errorf("%s over unprotected datasets: %v", c.Name, err)
		}
	}
}

// FuzzAnalyze feeds mutations of real parse trees to Parse, Check and
// Analyze: they never panic; Analyze fails only with a *Refusal; a rewrite
// parses and passes the checks' reading again; and a dataset that gains
// its privacy unit never turns a refusal into an acceptance.
func FuzzAnalyze(f *testing.F) {
	for _, tree := range privacyTrees(f) {
		f.Add(tree, []byte{0xff})
	}
	f.Fuzz(func(t *testing.T, tree []byte, mask []byte) {
		protect := byte(0xff)
		if len(mask) > 0 {
			protect = mask[0]
		}
		stmts, err := Parse(tree)
		if err != nil || len(stmts) != 1 {
			return
		}
		all := privacyDatasets()
		some := privacyDatasets()
		for i := range some {
			if protect&(1<<i) == 0 {
				some[i].PrivacyUnit, some[i].Dimensions, some[i].Aggregations = "", nil, nil
			}
		}
		if Check(stmts[0], sqlcases.PrivacyDatasetNames()) != nil {
			return
		}
		a, err := Analyze(stmts[0], some)
		var r *Refusal
		if err != nil && !errors.As(err, &r) {
			t.Fatalf("Analyze: %T %v", err, err)
		}
		if err == nil {
			if rw := a.Rewritten(); rw != nil {
				again, perr := Parse(rw)
				if perr != nil || len(again) != 1 {
					t.Fatalf("the rewrite does not parse: %v\n%s", perr, rw)
				}
			}
			return
		}
		if _, err := Analyze(stmts[0], all); err == nil {
			t.Fatalf("refused with fewer privacy units (%v), accepted with all", r)
		}
	})
}

// TestWritePrivacyFuzzSeeds writes FuzzAnalyze's committed seeds: the
// privacy table's parse trees, with every subset of protected datasets.
func TestWritePrivacyFuzzSeeds(t *testing.T) {
	if !*fuzzseed.Update {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz")
	}
	tr := privacyTrees(t)
	var seeds [][]any
	for i, c := range sqlcases.LoadPrivacy(t) {
		seeds = append(seeds, []any{tr[c.Name], []byte{byte(i % 16)}})
	}
	fuzzseed.Write(t, "FuzzAnalyze", seeds...)
}
