package sqlcheck

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/internal/sqlcases"
)

// TestParameterFixtures holds Parameters and Check, without DuckDB, to the
// table of algorithms with parameters through their committed parse trees
// (written by coordinator/internal/engine's TestParameterTreeFixtures):
// every accepted algorithm passes and names its parameters in order; every
// refused one DuckDB can parse is refused with the fragment the table names.
func TestParameterFixtures(t *testing.T) {
	b, err := os.ReadFile("testdata/parameter_trees.json")
	if err != nil {
		t.Fatal(err)
	}
	var tr map[string]json.RawMessage
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	for _, c := range sqlcases.LoadParameters(t) {
		t.Run(c.Name, func(t *testing.T) {
			tree, ok := tr[c.Name]
			if !ok {
				t.Fatalf("no parse tree in testdata/parameter_trees.json (run coordinator/internal/engine's TestParameterTreeFixtures with -update)")
			}
			stmts, err := Parse(tree)
			var serr *SerializeError
			if errors.As(err, &serr) {
				if !c.Refuse || !strings.Contains(serr.Message, strings.TrimPrefix(c.Want, "DuckDB cannot parse the algorithm: ")) {
					t.Fatalf("DuckDB cannot parse it: %v", serr)
				}
				return // refused by DuckDB's parser itself
			}
			if err != nil || len(stmts) != 1 {
				t.Fatalf("parse: %v (%d statements)", err, len(stmts))
			}
			names, perr := Parameters(stmts[0])
			cerr := Check(stmts[0], sqlcases.Datasets)
			if !c.Refuse {
				if perr != nil || cerr != nil {
					t.Fatalf("refused: %v / %v", perr, cerr)
				}
				if !slices.Equal(names, c.Params) {
					t.Fatalf("parameters %v, want %v", names, c.Params)
				}
				return
			}
			var r *Refusal
			if !errors.As(cerr, &r) || !strings.Contains(r.Error(), c.Want) {
				t.Fatalf("Check: %v, want a refusal saying %q", cerr, c.Want)
			}
		})
	}
}
