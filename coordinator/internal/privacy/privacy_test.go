package privacy

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/contracts"
)

// TestPublicGroups: with public groups, every listed group is released in
// the listed order — an empty one too, with noise — and no other group,
// whatever the data holds.
func TestPublicGroups(t *testing.T) {
	p := Params{Epsilon: 1, Delta: 1e-6, MaxGroupsContributed: 2, MaxContributionsPerGroup: 1,
		Aggregates:   []Aggregate{{Kind: CountUnits}, {Kind: Sum, Column: 0, Lower: 0, Upper: 10}, {Kind: Avg, Column: 0, Lower: 0, Upper: 10}},
		PublicGroups: [][]any{{"summer"}, {"spring"}, {"winter"}}}
	in := []Contribution{
		{Unit: "u1", Group: []any{"spring"}, Rows: 1, Values: []Partial{{1, 5}}},
		{Unit: "u1", Group: []any{"secret"}, Rows: 1, Values: []Partial{{1, 5}}},
		{Unit: "u2", Group: []any{"summer"}, Rows: 1, Values: []Partial{{0, 0}}},
	}
	for range 20 {
		rows, err := Release(p, in)
		if err != nil {
			t.Fatal(err)
		}
		var got []any
		for _, r := range rows {
			got = append(got, r.Group[0])
			if len(r.Values) != 3 {
				t.Fatalf("row %v has %d values", r.Group, len(r.Values))
			}
			if n, ok := r.Values[0].(int64); !ok || n < 0 {
				t.Fatalf("COUNT(DISTINCT unit) of %v is %#v", r.Group, r.Values[0])
			}
			if s, ok := r.Values[1].(float64); !ok || s < 0 {
				t.Fatalf("SUM of non-negative values of %v is %#v", r.Group, r.Values[1])
			}
			if a, ok := r.Values[2].(float64); !ok || a < 0 || a > 10 {
				t.Fatalf("AVG of %v is %#v, outside the bounds", r.Group, r.Values[2])
			}
		}
		if !reflect.DeepEqual(got, []any{"summer", "spring", "winter"}) {
			t.Fatalf("released groups %v", got)
		}
	}
}

// TestPartitionSelectionDropsSmallGroups: without public groups, a group
// of one unit is released with probability δ/G (here 1e-9 a run, so the
// test fails falsely with probability 2e-7 over its 200 runs), and a
// group of 500 units always.
func TestPartitionSelectionDropsSmallGroups(t *testing.T) {
	p := Params{Epsilon: 1, Delta: 1e-9, MaxGroupsContributed: 1, MaxContributionsPerGroup: 1, Aggregates: []Aggregate{{Kind: CountRows}}}
	in := append(units("crowd", 500, 1, 0, 0), Contribution{Unit: "alone", Group: []any{"rare"}, Rows: 1})
	for range 200 {
		rows, err := Release(p, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Group[0] != "crowd" {
			t.Fatalf("released %v", rows)
		}
	}
}

// TestBoundsEnforced: contributions that break the bounds they claim to
// respect are refused, whole, with ErrBounds; nothing is released.
func TestBoundsEnforced(t *testing.T) {
	p := Params{Epsilon: 1, Delta: 1e-6, MaxGroupsContributed: 2, MaxContributionsPerGroup: 3,
		Aggregates: []Aggregate{{Kind: CountRows}, {Kind: Sum, Column: 0, Lower: -1, Upper: 10}}}
	ok := func(unit string, g string) Contribution {
		return Contribution{Unit: unit, Group: []any{g}, Rows: 2, Values: []Partial{{2, 12}}}
	}
	cases := []struct {
		name string
		in   []Contribution
		want string
	}{
		{"a unit in three groups", []Contribution{ok("u", "a"), ok("u", "b"), ok("u", "c")}, "more than 2 groups"},
		{"the same unit twice in a group", []Contribution{ok("u", "a"), ok("u", "a")}, "twice"},
		{"int and int64 units are one unit", []Contribution{ok("u", "a"), {Unit: 7, Group: []any{"a"}, Rows: 1, Values: []Partial{{1, 1}}}, {Unit: int64(7), Group: []any{int32(0)}, Rows: 1, Values: []Partial{{1, 1}}}, {Unit: uint8(7), Group: []any{"b"}, Rows: 1, Values: []Partial{{1, 1}}}}, "more than 2 groups"},
		{"too many rows", []Contribution{{Unit: "u", Group: []any{"a"}, Rows: 4, Values: []Partial{{0, 0}}}}, "4 rows, not 1 to 3"},
		{"no rows", []Contribution{{Unit: "u", Group: []any{"a"}, Rows: 0, Values: []Partial{{0, 0}}}}, "0 rows"},
		{"more values than rows", []Contribution{{Unit: "u", Group: []any{"a"}, Rows: 1, Values: []Partial{{2, 3}}}}, "counts 2 values in 1 rows"},
		{"a sum over the bound", []Contribution{{Unit: "u", Group: []any{"a"}, Rows: 2, Values: []Partial{{2, 20.5}}}}, "outside [-2, 20]"},
		{"a sum under the bound", []Contribution{{Unit: "u", Group: []any{"a"}, Rows: 2, Values: []Partial{{1, -1.5}}}}, "outside [-1, 10]"},
		{"a NaN sum", []Contribution{{Unit: "u", Group: []any{"a"}, Rows: 1, Values: []Partial{{1, math.NaN()}}}}, "outside"},
		{"a missing value column", []Contribution{{Unit: "u", Group: []any{"a"}, Rows: 1}}, "no value column 0"},
		{"a NULL unit", []Contribution{{Unit: nil, Group: []any{"a"}, Rows: 1, Values: []Partial{{0, 0}}}}, "NULL"},
		{"an unsupported group key", []Contribution{{Unit: "u", Group: []any{[]byte("a")}, Rows: 1, Values: []Partial{{0, 0}}}}, "type []uint8"},
	}
	for _, tc := range cases {
		rows, err := Release(p, tc.in)
		if !errors.Is(err, ErrBounds) || !strings.Contains(err.Error(), tc.want) || rows != nil {
			t.Errorf("%s: %v (rows %v), want ErrBounds saying %q", tc.name, err, rows, tc.want)
		}
	}
	// A sum a hair over the bound, as a sum of clamped doubles may come
	// out of SQL, is accepted.
	if _, err := Release(p, []Contribution{{Unit: "u", Group: []any{"a"}, Rows: 3, Values: []Partial{{3, 30 * (1 + 1e-15)}}}}); err != nil {
		t.Fatalf("a rounding error refused: %v", err)
	}
}

func TestParamsRefused(t *testing.T) {
	good := Params{Epsilon: 1, Delta: 1e-6, MaxGroupsContributed: 1, MaxContributionsPerGroup: 1, Aggregates: []Aggregate{{Kind: CountRows}}}
	for name, edit := range map[string]func(*Params){
		"zero epsilon":          func(p *Params) { p.Epsilon = 0 },
		"infinite epsilon":      func(p *Params) { p.Epsilon = math.Inf(1) },
		"delta 1":               func(p *Params) { p.Delta = 1 },
		"selection without δ":   func(p *Params) { p.Delta = 0 },
		"no groups":             func(p *Params) { p.MaxGroupsContributed = 0 },
		"no aggregates":         func(p *Params) { p.Aggregates = nil },
		"unknown kind":          func(p *Params) { p.Aggregates = []Aggregate{{Kind: 9}} },
		"sum with equal bounds": func(p *Params) { p.Aggregates = []Aggregate{{Kind: Sum, Lower: 1, Upper: 1}} },
		"avg without bounds":    func(p *Params) { p.Aggregates = []Aggregate{{Kind: Avg, Lower: math.NaN(), Upper: 1}} },
	} {
		p := good
		edit(&p)
		if _, err := Release(p, nil); err == nil || errors.Is(err, ErrBounds) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// With public groups, δ may be 0: only partition selection needs it.
	p := good
	p.Delta, p.PublicGroups = 0, [][]any{{"a"}}
	if _, err := Release(p, nil); err != nil {
		t.Fatal(err)
	}
}

func TestBudgetSplit(t *testing.T) {
	agg := []Aggregate{{Kind: CountRows}, {Kind: Sum, Lower: 0, Upper: 1}, {Kind: Avg, Lower: 0, Upper: 1}}
	if s := BudgetSplit(Params{Epsilon: 2, Delta: 1e-6, Aggregates: agg}); s != (Split{Mechanisms: 4, AggregateEpsilon: 0.5, SelectionEpsilon: 0.5, SelectionDelta: 1e-6, PartitionSelection: true}) {
		t.Fatalf("with partition selection: %+v", s)
	}
	if s := BudgetSplit(Params{Epsilon: 3, Delta: 1e-6, Aggregates: agg, PublicGroups: [][]any{}}); s != (Split{Mechanisms: 3, AggregateEpsilon: 1}) {
		t.Fatalf("with public groups: %+v", s)
	}
}

// TestGroupKeys: keys are equal exactly when the values are, across
// integer and float widths.
func TestGroupKeys(t *testing.T) {
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	same := [][2][]any{
		{{int32(5), "a"}, {int64(5), "a"}},
		{{float32(0.5)}, {0.5}},
		{{math.Copysign(0, -1)}, {0.0}},
		{{at}, {at.In(time.FixedZone("x", 3600))}},
	}
	for _, s := range same {
		a, _ := groupKey(s[0])
		b, _ := groupKey(s[1])
		if a != b {
			t.Errorf("%v and %v have different keys %q, %q", s[0], s[1], a, b)
		}
	}
	distinct := [][]any{{"ab", "c"}, {"a", "bc"}, {"5"}, {int64(5)}, {5.0}, {true}, {nil}, {"n;"}, {at}, {""}, {}}
	seen := map[string]int{}
	for i, v := range distinct {
		k, err := groupKey(v)
		if err != nil {
			t.Fatal(err)
		}
		if j, dup := seen[k]; dup {
			t.Errorf("%v and %v share key %q", distinct[j], v, k)
		}
		seen[k] = i
	}
}

func TestPublicGroupsFor(t *testing.T) {
	dp := &contracts.DifferentialPrivacy{PublicGroups: []contracts.PublicGroup{
		{Column: "campaign", Values: []any{"spring", "summer"}},
		{Column: "region", Values: []any{"eu", "us", "apac"}},
	}}
	got, ok, err := PublicGroupsFor(dp, []string{"region", "campaign"})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	want := [][]any{{"eu", "spring"}, {"eu", "summer"}, {"us", "spring"}, {"us", "summer"}, {"apac", "spring"}, {"apac", "summer"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("groups %v", got)
	}
	if _, ok, err := PublicGroupsFor(dp, []string{"campaign", "device"}); ok || err != nil {
		t.Fatalf("a column without public values: %v %v", ok, err)
	}
	if got, ok, _ := PublicGroupsFor(dp, nil); !ok || len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("no group columns: %v", got)
	}
	big := make([]any, 1001)
	for i := range big {
		big[i] = int64(i)
	}
	dp.PublicGroups = append(dp.PublicGroups, contracts.PublicGroup{Column: "a", Values: big}, contracts.PublicGroup{Column: "b", Values: big})
	if _, _, err := PublicGroupsFor(dp, []string{"a", "b"}); err == nil {
		t.Fatal("a million public groups and more accepted")
	}
}
