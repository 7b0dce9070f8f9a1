package privacy_test

import (
	"database/sql"
	"errors"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/coordinator/internal/engine"
	. "cleanroom.dev/cleanroom/coordinator/internal/privacy"
)

// TestBoundedSQLFeedsRelease runs engine.Bounding's SQL in DuckDB over a
// unit that appears in many groups and rows, feeds the result to Release,
// and checks both agree: the bounded relation passes Release's bounds
// check, and the same relation under tighter parameters (a rewrite that
// bounded with the wrong ones) is refused before any noise is drawn.
func TestBoundedSQLFeedsRelease(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE TABLE visits (user_id VARCHAR, campaign VARCHAR, value DOUBLE)",
		"INSERT INTO visits SELECT 'heavy', 'c' || (g % 8), 250 FROM range(8) AS a(g), range(25) AS b(r)",
		"INSERT INTO visits SELECT 'u' || u, 'c' || (u % 3), u FROM range(300) AS a(u)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	const G, C = 2, 2
	q, err := engine.Bounding{Input: "visits", Unit: "user_id", Groups: []string{"campaign"},
		Values: []engine.BoundedColumn{{Column: "value", Lower: 0, Upper: 100}}, MaxGroups: G, MaxRowsPerGroup: C, Key: engine.NewBoundingKey()}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	var in []Contribution
	for rows.Next() {
		var unit, campaign string
		var c Contribution
		var p Partial
		if err := rows.Scan(&unit, &campaign, &c.Rows, &p.Count, &p.Sum); err != nil {
			t.Fatal(err)
		}
		c.Unit, c.Group, c.Values = unit, []any{campaign}, []Partial{p}
		in = append(in, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	heavy := 0
	for _, c := range in {
		if c.Unit == "heavy" {
			heavy++
			if c.Rows != C || c.Values[0] != (Partial{C, C * 100}) {
				t.Errorf("heavy: %+v", c)
			}
		}
	}
	if heavy != G || len(in) != G+300 {
		t.Fatalf("the heavy unit is in %d groups of the bounded relation (%d rows in all)", heavy, len(in))
	}
	p := Params{Epsilon: 1, Delta: 1e-6, MaxGroupsContributed: G, MaxContributionsPerGroup: C,
		Aggregates:   []Aggregate{{Kind: CountRows}, {Kind: CountUnits}, {Kind: Sum, Column: 0, Lower: 0, Upper: 100}, {Kind: Avg, Column: 0, Lower: 0, Upper: 100}},
		PublicGroups: [][]any{{"c0"}, {"c1"}, {"c2"}, {"c7"}}}
	out, err := Release(p, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 {
		t.Fatalf("%d groups released", len(out))
	}
	for name, edit := range map[string]func(*Params){
		"fewer groups": func(p *Params) { p.MaxGroupsContributed = 1 },
		"fewer rows":   func(p *Params) { p.MaxContributionsPerGroup = 1 },
		"tighter bounds": func(p *Params) {
			p.Aggregates = []Aggregate{{Kind: Sum, Column: 0, Lower: 0, Upper: 50}}
		},
	} {
		q := p
		edit(&q)
		if _, err := Release(q, in); !errors.Is(err, ErrBounds) {
			t.Errorf("%s: %v, want ErrBounds", name, err)
		}
	}
}
