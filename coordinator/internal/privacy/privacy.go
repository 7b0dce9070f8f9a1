// Package privacy releases differentially private aggregates of a query's
// groups: noisy COUNT(*), COUNT(DISTINCT privacy unit), SUM and AVG, from
// each privacy unit's contribution to each group, already bounded by the
// query rewrite (at most MaxGroupsContributed groups per unit, at most
// MaxContributionsPerGroup rows per unit and group, values clamped to the
// contract's bounds: engine.Bounding builds that SQL). Groups are released
// through differentially private partition selection, or, when the
// contract lists them as public, exactly the public groups.
//
// The noise and the partition selection are Google's differential-privacy
// library (github.com/google/differential-privacy/go/v3, dpagg): its
// Laplace mechanism is the "secure noise" construction (a geometric
// sampler over a power-of-two grid, immune to the floating-point attacks on
// textbook Laplace samplers) fed by crypto/rand. This package writes no
// sampler of its own. docs/privacy.md describes the mechanism, the split of
// a run's (ε, δ) and its references.
package privacy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/google/differential-privacy/go/v3/dpagg"
	"github.com/google/differential-privacy/go/v3/noise"

	"cleanroom.dev/cleanroom/contracts"
)

// Kind is the kind of a noisy aggregate.
type Kind int

// The aggregates of SPEC §7.1's differential_privacy mode.
const (
	// CountRows is COUNT(*): the rows of each group, each unit
	// contributing at most MaxContributionsPerGroup.
	CountRows Kind = iota + 1
	// CountUnits is COUNT(DISTINCT unit): the privacy units of each group.
	CountUnits
	// Sum is SUM(column) over the clamped values.
	Sum
	// Avg is AVG(column) over the clamped values.
	Avg
)

func (k Kind) String() string {
	switch k {
	case CountRows:
		return "COUNT(*)"
	case CountUnits:
		return "COUNT(DISTINCT unit)"
	case Sum:
		return "SUM"
	case Avg:
		return "AVG"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Aggregate is one noisy output column.
type Aggregate struct {
	Kind Kind
	// Column is, for Sum and Avg, the index of the value column in
	// Contribution.Values; Lower and Upper are its clamping bounds (the
	// contract's bounds for the column, Lower < Upper).
	Column       int
	Lower, Upper float64
}

// Params are what a release needs besides the data.
type Params struct {
	// Epsilon and Delta are the run's budget: the contract's
	// epsilon_per_run and delta_per_run.
	Epsilon, Delta float64
	// MaxGroupsContributed and MaxContributionsPerGroup are the bounds the
	// contributions were made to respect.
	MaxGroupsContributed, MaxContributionsPerGroup int64
	// Aggregates are the output columns after the group keys, in order.
	Aggregates []Aggregate
	// PublicGroups, when not nil, are the groups to release, each a key
	// tuple in group column order (PublicGroupsFor makes them from the
	// contract): every one is released, with noise, even when no
	// contribution is in it, and contributions to any other group are
	// dropped. When nil, groups are chosen by partition selection.
	PublicGroups [][]any
}

// Contribution is one privacy unit's contribution to one group, after
// bounding.
type Contribution struct {
	// Unit identifies the privacy unit: any comparable value (the unit
	// column's value, or an injective encoding of it). Release checks the
	// bounds per unit.
	Unit any
	// Group is the group's key, one value per group column: nil, bool,
	// any integer, float32/float64, string, or time.Time (decimals as
	// their text with the column's scale, as DuckDB casts them).
	Group []any
	// Rows is the number of the unit's rows counted in the group: 1 to
	// MaxContributionsPerGroup.
	Rows int64
	// Values holds, per value column, the partial aggregate of those rows.
	Values []Partial
}

// Partial is a unit's partial aggregate of one value column in one group.
type Partial struct {
	// Count is the number of non-NULL values (0 to Rows); Sum their sum,
	// each clamped to the column's bounds.
	Count int64
	Sum   float64
}

// Row is one released group: its key and one value per aggregate (int64
// for the counts, float64 for SUM and AVG).
type Row struct {
	Group  []any
	Values []any
}

// ErrBounds is wrapped by the error of a contribution that breaks the
// bounds it was to respect: a rewrite that failed to bound, which must
// never release anything.
var ErrBounds = errors.New("contributions are not bounded as the parameters say")

// Split says how a run's budget is divided: each of the Mechanisms
// (every aggregate, plus partition selection when the groups are not
// public) gets Epsilon / Mechanisms; partition selection gets all of Delta,
// and the Laplace aggregates none (they are ε-DP). AVG spends its share
// half on a noisy sum and half on a noisy count, as dpagg.BoundedMean
// does.
type Split struct {
	Mechanisms         int
	AggregateEpsilon   float64
	SelectionEpsilon   float64 // 0 with public groups
	SelectionDelta     float64 // 0 with public groups
	PartitionSelection bool
}

// BudgetSplit returns how p's budget is divided.
func BudgetSplit(p Params) Split {
	s := Split{Mechanisms: len(p.Aggregates), PartitionSelection: p.PublicGroups == nil}
	if s.PartitionSelection {
		s.Mechanisms++
	}
	if s.Mechanisms == 0 {
		return s
	}
	s.AggregateEpsilon = p.Epsilon / float64(s.Mechanisms)
	if s.PartitionSelection {
		s.SelectionEpsilon, s.SelectionDelta = s.AggregateEpsilon, p.Delta
	}
	return s
}

func (p Params) check() error {
	switch {
	case !(p.Epsilon > 0) || p.Epsilon > contracts.MaxEpsilon:
		return fmt.Errorf("privacy: epsilon %v is not a positive number of at most %d", p.Epsilon, contracts.MaxEpsilon)
	case !(p.Delta >= 0) || p.Delta >= 1:
		return fmt.Errorf("privacy: delta %v is not in [0, 1)", p.Delta)
	case p.PublicGroups == nil && p.Delta == 0:
		return errors.New("privacy: partition selection needs a positive delta")
	case p.MaxGroupsContributed < 1 || p.MaxContributionsPerGroup < 1:
		return fmt.Errorf("privacy: contribution bounds %d groups and %d rows must be at least 1", p.MaxGroupsContributed, p.MaxContributionsPerGroup)
	case len(p.Aggregates) == 0:
		return errors.New("privacy: no aggregate to release")
	}
	for i, a := range p.Aggregates {
		switch a.Kind {
		case CountRows, CountUnits:
		case Sum, Avg:
			if a.Column < 0 || math.IsNaN(a.Lower) || math.IsInf(a.Lower, 0) || math.IsNaN(a.Upper) || math.IsInf(a.Upper, 0) || !(a.Lower < a.Upper) {
				return fmt.Errorf("privacy: aggregate %d (%s): column %d with bounds [%v, %v]: the bounds must be finite with lower < upper", i, a.Kind, a.Column, a.Lower, a.Upper)
			}
		default:
			return fmt.Errorf("privacy: aggregate %d has unknown kind %v", i, a.Kind)
		}
	}
	return nil
}

// group is one group's contributions.
type group struct {
	key   []any
	units []*Contribution
}

// Release returns the differentially private aggregates of the groups of
// in under p: one Row per released group, in the order of p.PublicGroups,
// or (with partition selection) sorted by group key. Each call draws fresh
// noise: calling it twice on the same data spends the budget twice.
//
// It first checks that in respects the bounds (at most
// MaxGroupsContributed groups per unit, one contribution per unit and
// group, 1 to MaxContributionsPerGroup rows, partial aggregates possible
// for that many clamped values) and refuses, wrapping ErrBounds, when it
// does not.
func Release(p Params, in []Contribution) ([]Row, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	groups, err := collect(p, in)
	if err != nil {
		return nil, err
	}
	split := BudgetSplit(p)
	var out []Row
	if p.PublicGroups != nil {
		for _, key := range p.PublicGroups {
			k, err := groupKey(key)
			if err != nil {
				return nil, fmt.Errorf("privacy: public group %v: %w", key, err)
			}
			g := groups[k]
			if g == nil {
				g = &group{key: key}
			}
			row, err := aggregate(p, split, g)
			if err != nil {
				return nil, err
			}
			out = append(out, row)
		}
		return out, nil
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g := groups[k]
		sel, err := dpagg.NewPreAggSelectPartition(&dpagg.PreAggSelectPartitionOptions{
			Epsilon: split.SelectionEpsilon, Delta: split.SelectionDelta, MaxPartitionsContributed: p.MaxGroupsContributed,
		})
		if err != nil {
			return nil, fmt.Errorf("privacy: partition selection: %w", err)
		}
		if err := sel.IncrementBy(int64(len(g.units))); err != nil {
			return nil, fmt.Errorf("privacy: partition selection: %w", err)
		}
		keep, err := sel.ShouldKeepPartition()
		if err != nil {
			return nil, fmt.Errorf("privacy: partition selection: %w", err)
		}
		if !keep {
			continue
		}
		row, err := aggregate(p, split, g)
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, nil
}

// collect checks the bounds and groups the contributions. With public
// groups, contributions to other groups are dropped (after the bounds
// check: they still count against a unit's groups).
func collect(p Params, in []Contribution) (map[string]*group, error) {
	groups := map[string]*group{}
	// Sized for every contribution up front: growing them was a third of
	// a run's time at a million rows.
	perUnit := make(map[string]int64, len(in))
	seen := make(map[[2]string]struct{}, len(in))
	for i := range in {
		c := &in[i]
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: contribution %d (group %v): %s", ErrBounds, i, c.Group, fmt.Sprintf(format, args...))
		}
		k, err := groupKey(c.Group)
		if err != nil {
			return nil, bad("%v", err)
		}
		uk, err := unitKey(c.Unit)
		if err != nil {
			return nil, bad("%v", err)
		}
		if _, dup := seen[[2]string{uk, k}]; dup {
			return nil, bad("the unit contributes to the group twice")
		}
		seen[[2]string{uk, k}] = struct{}{}
		if perUnit[uk]++; perUnit[uk] > p.MaxGroupsContributed {
			return nil, bad("the unit contributes to more than %d groups", p.MaxGroupsContributed)
		}
		if c.Rows < 1 || c.Rows > p.MaxContributionsPerGroup {
			return nil, bad("%d rows, not 1 to %d", c.Rows, p.MaxContributionsPerGroup)
		}
		for _, a := range p.Aggregates {
			if a.Kind != Sum && a.Kind != Avg {
				continue
			}
			if a.Column >= len(c.Values) {
				return nil, bad("no value column %d", a.Column)
			}
			v := c.Values[a.Column]
			lo, hi := float64(v.Count)*a.Lower, float64(v.Count)*a.Upper
			slack := 1e-9 * float64(v.Count) * math.Max(math.Abs(a.Lower), math.Abs(a.Upper)) // rounding of the sum in SQL
			switch {
			case v.Count < 0 || v.Count > c.Rows:
				return nil, bad("value column %d counts %d values in %d rows", a.Column, v.Count, c.Rows)
			case math.IsNaN(v.Sum) || v.Sum < lo-slack || v.Sum > hi+slack:
				return nil, bad("value column %d sums %d values to %v, outside [%v, %v]", a.Column, v.Count, v.Sum, lo, hi)
			}
		}
		g := groups[k]
		if g == nil {
			g = &group{key: c.Group}
			groups[k] = g
		}
		g.units = append(g.units, c)
	}
	if p.PublicGroups != nil {
		public := map[string]bool{}
		for _, key := range p.PublicGroups {
			k, err := groupKey(key)
			if err != nil {
				return nil, fmt.Errorf("privacy: public group %v: %w", key, err)
			}
			public[k] = true
		}
		for k := range groups {
			if !public[k] {
				delete(groups, k)
			}
		}
	}
	return groups, nil
}

// aggregate computes one group's noisy aggregates.
func aggregate(p Params, split Split, g *group) (Row, error) {
	row := Row{Group: g.key, Values: make([]any, len(p.Aggregates))}
	eps := split.AggregateEpsilon
	G, C := p.MaxGroupsContributed, p.MaxContributionsPerGroup
	lap := noise.Laplace()
	for i, a := range p.Aggregates {
		fail := func(err error) (Row, error) {
			return Row{}, fmt.Errorf("privacy: %s (aggregate %d): %w", a.Kind, i, err)
		}
		switch a.Kind {
		case CountRows:
			// Each unit adds its row count, 0 to C: a bounded sum.
			s, err := dpagg.NewBoundedSumInt64(&dpagg.BoundedSumInt64Options{
				Epsilon: eps, MaxPartitionsContributed: G, Lower: 0, Upper: C, Noise: lap})
			if err != nil {
				return fail(err)
			}
			for _, u := range g.units {
				if err := s.Add(u.Rows); err != nil {
					return fail(err)
				}
			}
			v, err := s.Result()
			if err != nil {
				return fail(err)
			}
			row.Values[i] = max(v, 0)
		case CountUnits:
			c, err := dpagg.NewCount(&dpagg.CountOptions{Epsilon: eps, MaxPartitionsContributed: G, Noise: lap})
			if err != nil {
				return fail(err)
			}
			if err := c.IncrementBy(int64(len(g.units))); err != nil {
				return fail(err)
			}
			v, err := c.Result()
			if err != nil {
				return fail(err)
			}
			row.Values[i] = max(v, 0)
		case Sum:
			// Each unit adds the sum of its 0 to C clamped values, which
			// lies in [min(0, C·lower), max(0, C·upper)].
			lo, hi := math.Min(0, float64(C)*a.Lower), math.Max(0, float64(C)*a.Upper)
			s, err := dpagg.NewBoundedSumFloat64(&dpagg.BoundedSumFloat64Options{
				Epsilon: eps, MaxPartitionsContributed: G, Lower: lo, Upper: hi, Noise: lap})
			if err != nil {
				return fail(err)
			}
			for _, u := range g.units {
				if err := s.Add(u.Values[a.Column].Sum); err != nil {
					return fail(err)
				}
			}
			v, err := s.Result()
			if err != nil {
				return fail(err)
			}
			// A sum of non-negative (non-positive) values is
			// non-negative (non-positive): clamping to that sign uses
			// only the contract, so it is post-processing.
			if a.Lower >= 0 {
				v = math.Max(v, 0)
			}
			if a.Upper <= 0 {
				v = math.Min(v, 0)
			}
			row.Values[i] = v
		case Avg:
			m, err := dpagg.NewBoundedMean(&dpagg.BoundedMeanOptions{
				Epsilon: eps, MaxPartitionsContributed: G, MaxContributionsPerPartition: C,
				Lower: a.Lower, Upper: a.Upper, Noise: lap})
			if err != nil {
				return fail(err)
			}
			for _, u := range g.units {
				// The mean depends on a unit's values only through
				// their count and sum: add its mean that many times.
				pv := u.Values[a.Column]
				for range pv.Count {
					if err := m.Add(pv.Sum / float64(pv.Count)); err != nil {
						return fail(err)
					}
				}
			}
			v, err := m.Result()
			if err != nil {
				return fail(err)
			}
			row.Values[i] = v
		}
	}
	return row, nil
}

// groupKey encodes a group key as a string that is equal for equal keys
// and distinct for distinct ones, whatever integer or float width the
// values come in.
func groupKey(vals []any) (string, error) {
	var b []byte
	for _, v := range vals {
		var err error
		if b, err = appendValue(b, v); err != nil {
			return "", err
		}
	}
	return string(b), nil
}

func unitKey(v any) (string, error) {
	if v == nil {
		return "", errors.New("the unit is NULL")
	}
	b, err := appendValue(nil, v)
	return string(b), err
}

// appendValue appends a value's encoding: a type letter, then the value,
// then ';' (strings are length-prefixed instead).
func appendValue(b []byte, v any) ([]byte, error) {
	integer := func(x int64) []byte { return append(strconv.AppendInt(append(b, 'i'), x, 10), ';') }
	switch x := v.(type) {
	case nil:
		return append(b, 'n', ';'), nil
	case bool:
		return append(strconv.AppendBool(append(b, 'b'), x), ';'), nil
	case int:
		return integer(int64(x)), nil
	case int8:
		return integer(int64(x)), nil
	case int16:
		return integer(int64(x)), nil
	case int32:
		return integer(int64(x)), nil
	case int64:
		return integer(x), nil
	case uint8:
		return integer(int64(x)), nil
	case uint16:
		return integer(int64(x)), nil
	case uint32:
		return integer(int64(x)), nil
	case uint64:
		return append(strconv.AppendUint(append(b, 'i'), x, 10), ';'), nil
	case float32:
		return appendValue(b, float64(x))
	case float64:
		if math.IsNaN(x) {
			return append(b, "fNaN;"...), nil
		}
		return append(strconv.AppendFloat(append(b, 'f'), x+0, 'g', -1, 64), ';'), nil // +0 makes -0 0
	case string:
		return append(append(strconv.AppendInt(append(b, 's'), int64(len(x)), 10), ':'), x...), nil
	case time.Time:
		return append(strconv.AppendInt(append(b, 't'), x.UnixNano(), 10), ';'), nil
	}
	return nil, fmt.Errorf("a group key or unit of type %T is not supported", v)
}

// MaxPublicGroups caps the number of groups PublicGroupsFor makes.
const MaxPublicGroups = 1_000_000

// PublicGroupsFor returns the public groups of a query grouping by
// columns: every combination of the values the contract lists for them,
// in the order of the columns, then of the listed values. It returns
// false when some column has no public values: the query's groups then go
// through partition selection.
func PublicGroupsFor(dp *contracts.DifferentialPrivacy, columns []string) ([][]any, bool, error) {
	if len(columns) == 0 {
		return [][]any{{}}, true, nil // one group: the whole table
	}
	lists := make([][]any, len(columns))
	n := 1
	for i, col := range columns {
		g := dp.PublicGroup(col)
		if g == nil {
			return nil, false, nil
		}
		lists[i] = g.Values
		if n *= len(g.Values); n > MaxPublicGroups {
			return nil, false, fmt.Errorf("the public groups of columns %v make more than %d groups", columns, MaxPublicGroups)
		}
	}
	out := [][]any{{}}
	for _, vals := range lists {
		next := make([][]any, 0, len(out)*len(vals))
		for _, prefix := range out {
			for _, v := range vals {
				next = append(next, append(slices.Clone(prefix), v))
			}
		}
		out = next
	}
	return out, true, nil
}
