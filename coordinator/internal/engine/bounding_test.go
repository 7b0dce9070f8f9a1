package engine

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// boundingDB returns a locked-down session's database, opened as a
// database/sql handle, with the table contributions:
//
//   - unit "heavy" in 30 groups (campaign c0..c9 × day 0..2) with 20 rows in
//     each, value 1000 or NULL in turn (clamped to 100), clicks 7 (clamped
//     to 2);
//   - units light00..light49, each one row in group (c0, 0), value 5,
//     clicks 1;
//   - unit "pair" with one row in each of two groups, value -3 (clamped to
//     0);
//   - unit "nulls" with 5 rows in group (NULL, 0) and 5 in (NULL, NULL):
//     NULL is a group key like any other;
//   - three rows without a unit.
func boundingDB(t *testing.T) *sql.DB {
	t.Helper()
	s := newSession(t, Config{})
	db := sql.OpenDB(s.connector)
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		"CREATE TABLE contributions (user_id VARCHAR, campaign VARCHAR, day INTEGER, value DOUBLE, clicks BIGINT)",
		`INSERT INTO contributions SELECT 'heavy', 'c' || (g % 10), g // 10, CASE WHEN r % 2 = 0 THEN 1000 END, 7
		   FROM range(30) AS a(g), range(20) AS b(r)`,
		`INSERT INTO contributions SELECT 'light' || lpad(CAST(u AS VARCHAR), 2, '0'), 'c0', 0, 5, 1 FROM range(50) AS a(u)`,
		`INSERT INTO contributions VALUES ('pair', 'c1', 0, -3, 1), ('pair', 'c2', 1, -3, 1)`,
		`INSERT INTO contributions SELECT 'nulls', NULL, CASE WHEN r < 5 THEN 0 END, 1, 1 FROM range(10) AS a(r)`,
		`INSERT INTO contributions VALUES (NULL, 'c0', 0, 50, 1), (NULL, 'c9', 2, 50, 1), (NULL, 'c5', 1, 50, 1)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db
}

// pair is one row of the bounded relation.
type pair struct {
	unit, campaign string // campaign "<NULL>" for NULL
	day            int64  // -1 for NULL
	rows           int64
	counts         [2]int64
	sums           [2]float64
}

func runBounding(t *testing.T, db *sql.DB, b Bounding) []pair {
	t.Helper()
	q, err := b.SQL()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	want := []string{BoundedUnit, "campaign", "day", BoundedRows, BoundedCount(0), BoundedSum(0), BoundedCount(1), BoundedSum(1)}
	if !slices.Equal(cols, want) {
		t.Fatalf("columns %v, want %v", cols, want)
	}
	var out []pair
	for rows.Next() {
		var p pair
		var campaign sql.NullString
		var day sql.NullInt64
		if err := rows.Scan(&p.unit, &campaign, &day, &p.rows, &p.counts[0], &p.sums[0], &p.counts[1], &p.sums[1]); err != nil {
			t.Fatal(err)
		}
		p.campaign, p.day = "<NULL>", -1
		if campaign.Valid {
			p.campaign = campaign.String
		}
		if day.Valid {
			p.day = day.Int64
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func boundingOf(key uint64) Bounding {
	return Bounding{
		Input: "contributions", Unit: "user_id", Groups: []string{"campaign", "day"},
		Values:    []BoundedColumn{{Column: "value", Lower: 0, Upper: 100}, {Column: "clicks", Lower: 0, Upper: 2}},
		MaxGroups: 4, MaxRowsPerGroup: 3, Key: key,
	}
}

// TestBoundingLimitsEachUnit: a unit in 30 groups with 20 rows in each
// counts in exactly MaxGroups groups with MaxRowsPerGroup rows in each,
// its values clamped; units within the bounds keep everything; rows
// without a unit are dropped.
func TestBoundingLimitsEachUnit(t *testing.T) {
	db := boundingDB(t)
	pairs := runBounding(t, db, boundingOf(NewBoundingKey()))
	byUnit := map[string][]pair{}
	for _, p := range pairs {
		byUnit[p.unit] = append(byUnit[p.unit], p)
	}
	if len(byUnit) != 53 || len(pairs) != 4+50+2+2 {
		t.Fatalf("%d units and %d pairs, want 53 units (NULL dropped) and 58 pairs", len(byUnit), len(pairs))
	}
	heavy := byUnit["heavy"]
	if len(heavy) != 4 {
		t.Fatalf("the heavy unit counts in %d groups, want 4", len(heavy))
	}
	seen := map[string]bool{}
	for _, p := range heavy {
		g := fmt.Sprintf("%s/%d", p.campaign, p.day)
		if seen[g] {
			t.Fatalf("group %s twice", g)
		}
		seen[g] = true
		// 3 rows kept of 20; values 1000 or NULL clamped to 100, clicks 7
		// clamped to 2.
		if p.rows != 3 || p.counts[0] > 3 || p.sums[0] != 100*float64(p.counts[0]) || p.counts[1] != 3 || p.sums[1] != 6 {
			t.Errorf("heavy in %s: %+v", g, p)
		}
	}
	for u, ps := range byUnit {
		switch {
		case u == "heavy":
		case u == "nulls":
			if len(ps) != 2 || ps[0].rows != 3 || ps[1].rows != 3 || ps[0].campaign != "<NULL>" || ps[0].day == ps[1].day {
				t.Errorf("nulls: %+v", ps)
			}
		case u == "pair":
			if len(ps) != 2 || ps[0].rows != 1 || ps[0].sums[0] != 0 || ps[0].counts[0] != 1 {
				t.Errorf("pair: %+v", ps)
			}
		case strings.HasPrefix(u, "light"):
			if len(ps) != 1 || ps[0].rows != 1 || ps[0].counts != [2]int64{1, 1} || ps[0].sums != [2]float64{5, 1} || ps[0].campaign != "c0" {
				t.Errorf("%s: %+v", u, ps)
			}
		default:
			t.Errorf("unexpected unit %q", u)
		}
	}
}

// TestBoundingChoiceIsKeyedAndDataIndependent: which groups a unit keeps
// depends on the key and that unit's own rows only: adding other units'
// rows to its groups does not change it; another key does.
func TestBoundingChoiceIsKeyedAndDataIndependent(t *testing.T) {
	db := boundingDB(t)
	groupsOf := func(key uint64) []string {
		var gs []string
		for _, p := range runBounding(t, db, boundingOf(key)) {
			if p.unit == "heavy" {
				gs = append(gs, fmt.Sprintf("%s/%d", p.campaign, p.day))
			}
		}
		slices.Sort(gs)
		return gs
	}
	key := NewBoundingKey()
	before := groupsOf(key)
	if _, err := db.Exec(`INSERT INTO contributions SELECT 'other' || u, 'c' || (g % 10), g // 10, 1, 1 FROM range(30) AS a(g), range(40) AS b(u)`); err != nil {
		t.Fatal(err)
	}
	if after := groupsOf(key); !slices.Equal(before, after) {
		t.Fatalf("other units' rows changed the heavy unit's groups: %v, then %v", before, after)
	}
	// Another key chooses other groups: the chance that three fresh keys
	// all pick the same 4 of 30 groups is (1/27405)³.
	for range 3 {
		if !slices.Equal(groupsOf(NewBoundingKey()), before) {
			return
		}
	}
	t.Fatal("three other keys chose the same groups: the key does not key the choice")
}

// TestBoundingWholeTable: with no group columns, a unit counts once, with
// at most MaxRowsPerGroup rows.
func TestBoundingWholeTable(t *testing.T) {
	db := boundingDB(t)
	q, err := Bounding{Input: "(SELECT * FROM contributions WHERE day = 0)", Unit: "user_id", MaxGroups: 1, MaxRowsPerGroup: 2, Key: 1}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	var units, rows, maxRows int64
	if err := db.QueryRow("SELECT count(*), sum("+BoundedRows+"), max("+BoundedRows+") FROM ("+q+")").Scan(&units, &rows, &maxRows); err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	if units != 53 || maxRows != 2 || rows != 2+50+1+2 {
		t.Fatalf("%d units, %d rows, at most %d per unit", units, rows, maxRows)
	}
}

func TestBoundingRefusesBadParameters(t *testing.T) {
	good := boundingOf(1)
	for name, edit := range map[string]func(*Bounding){
		"no input":          func(b *Bounding) { b.Input = " " },
		"no unit":           func(b *Bounding) { b.Unit = "" },
		"zero groups":       func(b *Bounding) { b.MaxGroups = 0 },
		"zero rows":         func(b *Bounding) { b.MaxRowsPerGroup = 0 },
		"unit as group":     func(b *Bounding) { b.Groups = []string{"USER_ID"} },
		"group twice":       func(b *Bounding) { b.Groups = []string{"day", "Day"} },
		"reserved group":    func(b *Bounding) { b.Groups = []string{"__rows"} },
		"equal bounds":      func(b *Bounding) { b.Values[0].Upper = 0 },
		"NaN bound":         func(b *Bounding) { b.Values[1].Lower = math.NaN() },
		"value without col": func(b *Bounding) { b.Values[0].Column = "" },
	} {
		b := good
		b.Values = slices.Clone(good.Values)
		b.Groups = slices.Clone(good.Groups)
		edit(&b)
		if _, err := b.SQL(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkBounding bounds a million rows: 100,000 units in up to 40
// groups each.
func BenchmarkBounding(b *testing.B) {
	s := newSession(b, Config{MemoryLimit: 2 << 30})
	db := sql.OpenDB(s.connector)
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE contributions AS SELECT 'user' || (i % 100000) AS user_id, 'c' || (hash(i) % 40) AS campaign,
		CAST(i % 3 AS INTEGER) AS day, CAST(hash(i * 7) % 1000 AS DOUBLE) AS value, CAST(1 AS BIGINT) AS clicks FROM range(1000000) AS t(i)`); err != nil {
		b.Fatal(err)
	}
	q, err := boundingOf(NewBoundingKey()).SQL()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var n int64
		if err := db.QueryRow("SELECT count(*) FROM (" + q + ")").Scan(&n); err != nil {
			b.Fatal(err)
		}
	}
}
