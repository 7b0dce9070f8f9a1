package contracts

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DifferentialPrivacy is the output.differential_privacy block: the
// contract's privacy budget and how much one privacy unit may contribute
// to a run (docs/contract.md, docs/privacy.md). Every run of a contract in
// differential-privacy mode is charged EpsilonPerRun and DeltaPerRun; a run
// that would take the charges past EpsilonTotal or DeltaTotal is refused.
type DifferentialPrivacy struct {
	EpsilonTotal  float64 // > 0, finite
	DeltaTotal    float64 // in (0, 1)
	EpsilonPerRun float64 // in [MinEpsilon, min(MaxEpsilon, EpsilonTotal)]
	DeltaPerRun   float64 // in (0, DeltaTotal]
	// MaxGroupsContributed is the number of groups (output rows) a
	// privacy unit may contribute to in one run; MaxContributionsPerGroup
	// the number of its rows counted in each. Both in 1..MaxContributionBound.
	MaxGroupsContributed     int64
	MaxContributionsPerGroup int64
	// Bounds clamp every summed or averaged column, sorted by column.
	Bounds []ColumnBounds
	// PublicGroups lists, per column, the group keys known in advance,
	// sorted by column. A query whose group keys are all listed here
	// releases exactly the groups they make (every combination of the
	// listed values), each with noise, and no other; any other query's
	// groups go through differentially private partition selection.
	PublicGroups []PublicGroup
}

// ColumnBounds clamps a column's values to [Lower, Upper] before they are
// summed or averaged.
type ColumnBounds struct {
	Column       string
	Lower, Upper float64 // finite, Lower < Upper, |each| ≤ MaxBound
}

// PublicGroup is one column's public group keys.
type PublicGroup struct {
	Column string
	// Type is the column's type in the datasets that have it.
	Type ColumnType
	// Values are the listed keys, in contract order, typed by the column:
	// bool for bool; int64 for int32 and int64; float64 for float64;
	// string for string; time.Time (UTC) for date (midnight) and
	// timestamp (whole microseconds); and for decimal(p,s) the canonical
	// decimal text with exactly s digits after the point (as DuckDB casts
	// the decimal to text), such as "12.50".
	Values []any

	nodes []*yaml.Node // the values as written, until validation types them
}

// Limits of the differential_privacy block.
const (
	// MinEpsilon is the smallest epsilon_per_run: below it the noise
	// drowns any result, and the noise library refuses the per-aggregate
	// share of a run's epsilon.
	MinEpsilon = 1e-9
	// MaxEpsilon is the largest epsilon_per_run: a guarantee at ε = 100
	// already says nothing (e^100), and beyond a few hundred the noise
	// library's Gaussian calibration (partition selection) degenerates.
	MaxEpsilon = 100
	// MaxBound bounds the magnitude of every clamping bound (2^53: every
	// integer up to it is exact in float64).
	MaxBound = 1 << 53
	// MaxContributionBound caps max_groups_contributed and
	// max_contributions_per_group.
	MaxContributionBound = 1_000_000
	// MaxPublicGroupValues caps the values listed for one column.
	MaxPublicGroupValues = 10_000
)

// Bound returns the bounds of column, if the block has them.
func (dp *DifferentialPrivacy) Bound(column string) (ColumnBounds, bool) {
	i := slices.IndexFunc(dp.Bounds, func(b ColumnBounds) bool { return b.Column == column })
	if i < 0 {
		return ColumnBounds{}, false
	}
	return dp.Bounds[i], true
}

// PublicGroup returns the public group keys of column, or nil.
func (dp *DifferentialPrivacy) PublicGroup(column string) *PublicGroup {
	i := slices.IndexFunc(dp.PublicGroups, func(g PublicGroup) bool { return g.Column == column })
	if i < 0 {
		return nil
	}
	return &dp.PublicGroups[i]
}

// DifferentialPrivacy returns the contract's differential-privacy block
// when its runs are differentially private, or nil. Every run of such a
// contract is charged against the block's budget.
func (c *Contract) DifferentialPrivacy() *DifferentialPrivacy {
	if c.Output.Mode != ModeDifferentialPrivacy {
		return nil
	}
	return c.Output.DifferentialPrivacy
}

// RunsAllowed returns how many runs the budget allows: the largest n with
// n × per-run ≤ total for both epsilon and delta, each amount taken as the
// exact decimal number it is written as (its shortest round-trip form), so
// that a budget of 3 at 0.1 a run allows 30 runs. max_runs limits runs
// separately.
func (dp *DifferentialPrivacy) RunsAllowed() int64 {
	n := func(total, per float64) int64 {
		q := new(big.Rat).Quo(ExactDecimal(total), ExactDecimal(per))
		f := new(big.Int).Quo(q.Num(), q.Denom())
		if !f.IsInt64() {
			return math.MaxInt64
		}
		return f.Int64()
	}
	return min(n(dp.EpsilonTotal, dp.EpsilonPerRun), n(dp.DeltaTotal, dp.DeltaPerRun))
}

// ExactDecimal returns the exact rational value of the decimal number x is
// written as in its shortest round-trip form (strconv 'g', -1), such as
// 1/10 for 0.1: the value a privacy budget's accounting uses. x must be
// finite.
func ExactDecimal(x float64) *big.Rat {
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(x, 'g', -1, 64))
	if !ok {
		panic(fmt.Sprintf("contracts: %v is not a finite number", x))
	}
	return r
}

// canonical returns the block's part of the canonical encoding.
func (dp *DifferentialPrivacy) canonical() map[string]any {
	bounds := make(map[string]any, len(dp.Bounds))
	for _, b := range dp.Bounds {
		bounds[b.Column] = []any{b.Lower, b.Upper}
	}
	groups := make(map[string]any, len(dp.PublicGroups))
	for _, g := range dp.PublicGroups {
		vals := make([]any, len(g.Values))
		for i, v := range g.Values {
			vals[i] = canonicalGroupValue(g.Type, v)
		}
		groups[g.Column] = vals
	}
	return map[string]any{
		"epsilon_total":               dp.EpsilonTotal,
		"delta_total":                 dp.DeltaTotal,
		"epsilon_per_run":             dp.EpsilonPerRun,
		"delta_per_run":               dp.DeltaPerRun,
		"max_groups_contributed":      dp.MaxGroupsContributed,
		"max_contributions_per_group": dp.MaxContributionsPerGroup,
		"bounds":                      bounds,
		"public_groups":               groups,
	}
}

// canonicalGroupValue is a typed public group value in the canonical
// encoding: dates and timestamps as text, everything else as it is.
func canonicalGroupValue(t ColumnType, v any) any {
	switch t.Kind {
	case KindDate:
		return v.(time.Time).Format(time.DateOnly)
	case KindTimestamp:
		return v.(time.Time).Format(time.RFC3339Nano)
	}
	return v
}

// number decodes a finite decimal number written as a YAML integer or
// float.
func (d *decoder) number(n *yaml.Node, path string) (float64, bool) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		d.errorf(path, n, "must be a number, got %s", describe(n))
		return 0, false
	}
	if !decimalNumber.MatchString(n.Value) {
		d.errorf(path, n, "must be a finite decimal number such as 0.5 or 1e-6, got %q", truncate(n.Value))
		return 0, false
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || math.IsInf(v, 0) {
		d.errorf(path, n, "must be a finite number within float64 range, got %q", truncate(n.Value))
		return 0, false
	}
	return v, true
}

var decimalNumber = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// differentialPrivacy decodes output.differential_privacy.
func (d *decoder) differentialPrivacy(n *yaml.Node, path string, at func(string, *yaml.Node)) *DifferentialPrivacy {
	dp := &DifferentialPrivacy{}
	num := func(dst *float64) func(*yaml.Node, string) {
		return func(n *yaml.Node, p string) {
			at(p, n)
			*dst, _ = d.number(n, p)
		}
	}
	integer := func(dst *int64) func(*yaml.Node, string) {
		return func(n *yaml.Node, p string) {
			at(p, n)
			*dst, _ = d.integer(n, p)
		}
	}
	d.mapping(n, path, []field{
		{"epsilon_total", true, num(&dp.EpsilonTotal)},
		{"delta_total", true, num(&dp.DeltaTotal)},
		{"epsilon_per_run", true, num(&dp.EpsilonPerRun)},
		{"delta_per_run", true, num(&dp.DeltaPerRun)},
		{"max_groups_contributed", true, integer(&dp.MaxGroupsContributed)},
		{"max_contributions_per_group", true, integer(&dp.MaxContributionsPerGroup)},
		{"bounds", false, func(n *yaml.Node, p string) {
			at(p, n)
			d.columnMap(n, p, at, func(col string, v *yaml.Node, vp string) {
				b := ColumnBounds{Column: col}
				if v.Kind != yaml.SequenceNode || len(v.Content) != 2 {
					d.errorf(vp, v, "must be a list of two numbers [lower, upper], got %s", describe(v))
					return
				}
				lo, ok1 := d.number(v.Content[0], index(vp, 0))
				hi, ok2 := d.number(v.Content[1], index(vp, 1))
				if !ok1 || !ok2 {
					return
				}
				b.Lower, b.Upper = lo, hi
				dp.Bounds = append(dp.Bounds, b)
			})
		}},
		{"public_groups", false, func(n *yaml.Node, p string) {
			at(p, n)
			d.columnMap(n, p, at, func(col string, v *yaml.Node, vp string) {
				g := PublicGroup{Column: col}
				d.sequence(v, vp, func(_ int, item *yaml.Node, _ string) {
					g.nodes = append(g.nodes, item)
				})
				if v.Kind == yaml.SequenceNode {
					dp.PublicGroups = append(dp.PublicGroups, g)
				}
			})
		}},
	})
	slices.SortFunc(dp.Bounds, func(a, b ColumnBounds) int { return strings.Compare(a.Column, b.Column) })
	slices.SortFunc(dp.PublicGroups, func(a, b PublicGroup) int { return strings.Compare(a.Column, b.Column) })
	return dp
}

// columnMap decodes a mapping whose keys are column names, calling each for
// every entry; it refuses duplicate keys and keys that are not column
// names.
func (d *decoder) columnMap(n *yaml.Node, path string, at func(string, *yaml.Node), each func(col string, v *yaml.Node, p string)) {
	if n.Kind != yaml.MappingNode {
		d.errorf(path, n, "must be a mapping from column name to value, got %s", describe(n))
		return
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			d.errorf(path, k, "keys must be column names, got %s", describe(k))
			continue
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errorf(p, k, "duplicate column (first given on line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		at(p, k)
		if !columnNamePattern.MatchString(k.Value) {
			d.errorf(p, k, "%q is not a valid column name", truncate(k.Value))
			continue
		}
		each(k.Value, v, p)
	}
}

// differentialPrivacy checks the block against the datasets: values in
// range, per-run within total, and every bound and public group naming a
// column of the datasets with a suitable type. It types the public group
// values.
func (v *validator) differentialPrivacy() {
	dp := v.c.Output.DifferentialPrivacy
	if dp == nil {
		return
	}
	const p = "output.differential_privacy"
	positive := func(field string, x float64) bool {
		if !(x > 0) {
			v.problem(p+"."+field, "must be positive, got %v", x)
			return false
		}
		return true
	}
	if positive("epsilon_total", dp.EpsilonTotal) && positive("epsilon_per_run", dp.EpsilonPerRun) {
		switch {
		case dp.EpsilonPerRun > MaxEpsilon:
			v.problem(p+".epsilon_per_run", "must be at most %d, got %v: such a guarantee says nothing, and the noise library is not calibrated for it", MaxEpsilon, dp.EpsilonPerRun)
		case dp.EpsilonPerRun < MinEpsilon:
			v.problem(p+".epsilon_per_run", "must be at least %g, got %v: the noise would drown every result", MinEpsilon, dp.EpsilonPerRun)
		case ExactDecimal(dp.EpsilonPerRun).Cmp(ExactDecimal(dp.EpsilonTotal)) > 0:
			v.problem(p+".epsilon_per_run", "%v is more than epsilon_total %v: no run could ever be charged", dp.EpsilonPerRun, dp.EpsilonTotal)
		}
	}
	deltaOK := true
	for _, f := range []struct {
		name string
		x    float64
	}{{"delta_total", dp.DeltaTotal}, {"delta_per_run", dp.DeltaPerRun}} {
		if !positive(f.name, f.x) {
			deltaOK = false
		} else if f.x >= 1 {
			v.problem(p+"."+f.name, "must be less than 1, got %v (δ is the probability that the ε guarantee fails; it is usually far below 1/number of people)", f.x)
			deltaOK = false
		}
	}
	if deltaOK && ExactDecimal(dp.DeltaPerRun).Cmp(ExactDecimal(dp.DeltaTotal)) > 0 {
		v.problem(p+".delta_per_run", "%v is more than delta_total %v: no run could ever be charged", dp.DeltaPerRun, dp.DeltaTotal)
	}
	for _, f := range []struct {
		name string
		x    int64
	}{{"max_groups_contributed", dp.MaxGroupsContributed}, {"max_contributions_per_group", dp.MaxContributionsPerGroup}} {
		if f.x < 1 || f.x > MaxContributionBound {
			v.problem(p+"."+f.name, "must be from 1 to %d, got %d", MaxContributionBound, f.x)
		}
	}
	for _, b := range dp.Bounds {
		path := p + ".bounds." + b.Column
		switch {
		case math.Abs(b.Lower) > MaxBound || math.Abs(b.Upper) > MaxBound:
			v.problem(path, "bounds must lie within ±2^53, got [%v, %v]", b.Lower, b.Upper)
		case !(b.Lower < b.Upper):
			v.problem(path, "lower bound %v must be less than upper bound %v (equal bounds would make the column a constant: count rows instead)", b.Lower, b.Upper)
		}
		t, ok := v.columnType(path, b.Column)
		if ok && !numeric(t) {
			v.problem(path, "column %q is %s: only numeric columns (int32, int64, float64, decimal) are summed or averaged", b.Column, t)
		}
	}
	for i := range dp.PublicGroups {
		g := &dp.PublicGroups[i]
		path := p + ".public_groups." + g.Column
		nodes := g.nodes
		g.nodes = nil
		t, ok := v.columnType(path, g.Column)
		if !ok {
			continue
		}
		g.Type = t
		if len(nodes) == 0 {
			v.problem(path, "lists no values: list the group keys known in advance, or omit the column")
		}
		if len(nodes) > MaxPublicGroupValues {
			v.problem(path, "%d values is more than the limit of %d", len(nodes), MaxPublicGroupValues)
			continue
		}
		seen := map[string]int{}
		for j, n := range nodes {
			vp := index(path, j)
			val, err := groupValue(t, n)
			if err != nil {
				v.problems = append(v.problems, &FieldError{Field: vp, Line: n.Line, Msg: err.Error()})
				continue
			}
			key := fmt.Sprintf("%v", canonicalGroupValue(t, val))
			if k, dup := seen[key]; dup {
				v.problems = append(v.problems, &FieldError{Field: vp, Line: n.Line, Msg: fmt.Sprintf("value %s is listed twice (first as %s)", key, index(path, k))})
				continue
			}
			seen[key] = j
			g.Values = append(g.Values, val)
		}
	}
}

func numeric(t ColumnType) bool {
	switch t.Kind {
	case KindInt32, KindInt64, KindFloat64, KindDecimal:
		return true
	}
	return false
}

// columnType returns the type of the columns named column in the
// datasets. It reports a problem at path when no dataset has such a
// column, or when datasets give it different types.
func (v *validator) columnType(path, column string) (ColumnType, bool) {
	var t ColumnType
	var where []string
	ok := true
	for _, ds := range v.c.Datasets {
		for _, col := range ds.Columns {
			if col.Name != column {
				continue
			}
			where = append(where, ds.ID)
			if len(where) > 1 && col.Type != t {
				v.problem(path, "column %q is %s in dataset %s but %s in dataset %s: a bound or public group applies to every column of its name, which must have one type",
					column, t, where[0], col.Type, ds.ID)
				ok = false
			}
			if len(where) == 1 {
				t = col.Type
			}
		}
	}
	if len(where) == 0 {
		v.problem(path, "no dataset has a column named %q (names are exact)", column)
		return t, false
	}
	return t, ok
}

var (
	decimalText  = regexp.MustCompile(`^[-+]?([0-9]+)(?:\.([0-9]+))?$`)
	integerText  = regexp.MustCompile(`^[-+]?[0-9]+$`)
	rfc3339Value = "an RFC 3339 time with a zone, such as 2026-06-01T00:00:00Z"
)

// groupValue types one public group value by its column's type.
func groupValue(t ColumnType, n *yaml.Node) (any, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return nil, fmt.Errorf("must be a %s value, got %s", t, describe(n))
	}
	s := n.Value
	switch t.Kind {
	case KindBool:
		if n.Tag != "!!bool" || (s != "true" && s != "false") {
			return nil, fmt.Errorf("must be true or false (column type bool), got %s", describe(n))
		}
		return s == "true", nil
	case KindInt32, KindInt64:
		if n.Tag != "!!int" || !integerText.MatchString(s) {
			return nil, fmt.Errorf("must be a decimal integer (column type %s), got %s", t, describe(n))
		}
		bits := 64
		if t.Kind == KindInt32 {
			bits = 32
		}
		x, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("%s is out of range for column type %s", truncate(s), t)
		}
		return x, nil
	case KindFloat64:
		if (n.Tag != "!!int" && n.Tag != "!!float") || !decimalNumber.MatchString(s) {
			return nil, fmt.Errorf("must be a finite number (column type float64), got %s", describe(n))
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%s is out of range for float64", truncate(s))
		}
		return x, nil
	case KindString:
		if n.Tag != "!!str" {
			return nil, fmt.Errorf("must be a string (column type string), got %s (quote it)", describe(n))
		}
		return s, nil
	case KindDate:
		if n.Tag != "!!str" && n.Tag != "!!timestamp" {
			return nil, fmt.Errorf("must be a date such as 2026-06-01 (column type date), got %s", describe(n))
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return nil, fmt.Errorf("must be a date such as 2026-06-01 (column type date), got %q", truncate(s))
		}
		return d, nil
	case KindTimestamp:
		if n.Tag != "!!str" && n.Tag != "!!timestamp" {
			return nil, fmt.Errorf("must be %s (column type timestamp), got %s", rfc3339Value, describe(n))
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("must be %s (column type timestamp), got %q", rfc3339Value, truncate(s))
		}
		if ts.Nanosecond()%1000 != 0 {
			return nil, fmt.Errorf("%q has more precision than the column's microseconds", truncate(s))
		}
		return ts.UTC(), nil
	case KindDecimal:
		if n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" {
			return nil, fmt.Errorf("must be a decimal number (column type %s), got %s", t, describe(n))
		}
		m := decimalText.FindStringSubmatch(s)
		if m == nil {
			return nil, fmt.Errorf("must be a plain decimal number such as 12.50 (column type %s), got %q", t, truncate(s))
		}
		whole, frac := strings.TrimLeft(m[1], "0"), m[2]
		if len(strings.TrimRight(frac, "0")) > int(t.Scale) {
			return nil, fmt.Errorf("%s has more than the %d digits after the point of column type %s", truncate(s), t.Scale, t)
		}
		if len(whole) > int(t.Precision-t.Scale) {
			return nil, fmt.Errorf("%s has more than the %d digits before the point of column type %s", truncate(s), t.Precision-t.Scale, t)
		}
		frac = (frac + strings.Repeat("0", int(t.Scale)))[:t.Scale]
		if whole == "" {
			whole = "0"
		}
		text := whole
		if t.Scale > 0 {
			text += "." + frac
		}
		if strings.HasPrefix(s, "-") && strings.Trim(whole+frac, "0") != "" {
			text = "-" + text
		}
		return text, nil
	}
	return nil, fmt.Errorf("column type %s cannot be a public group key", t)
}

// Describe says in plain words what the block promises, one sentence a
// line, for `cleanroom contract show`.
func (dp *DifferentialPrivacy) Describe(maxRuns int64) []string {
	runs := dp.RunsAllowed()
	limit := fmt.Sprintf("the budget allows %d runs", runs)
	if maxRuns < runs {
		limit += fmt.Sprintf(" (max_runs allows %d)", maxRuns)
	}
	out := []string{
		fmt.Sprintf("differential privacy: each run is charged ε=%v, δ=%v of a total ε=%v, δ=%v; %s; the charge is logged before any data is decrypted and never refunded",
			dp.EpsilonPerRun, dp.DeltaPerRun, dp.EpsilonTotal, dp.DeltaTotal, limit),
		fmt.Sprintf("a privacy unit (person) counts in at most %d groups of a run, with at most %d rows in each; its other rows are dropped at random",
			dp.MaxGroupsContributed, dp.MaxContributionsPerGroup),
	}
	if len(dp.Bounds) > 0 {
		var bs []string
		for _, b := range dp.Bounds {
			bs = append(bs, fmt.Sprintf("%s to [%v, %v]", b.Column, b.Lower, b.Upper))
		}
		out = append(out, "summed or averaged values are clamped: "+strings.Join(bs, ", "))
	}
	if len(dp.PublicGroups) == 0 {
		out = append(out, "groups are released only through differentially private partition selection (small groups are dropped at random)")
	} else {
		var gs []string
		for _, g := range dp.PublicGroups {
			vals := make([]string, len(g.Values))
			for i, v := range g.Values {
				vals[i] = fmt.Sprint(canonicalGroupValue(g.Type, v))
			}
			gs = append(gs, fmt.Sprintf("%s ∈ {%s}", g.Column, strings.Join(vals, ", ")))
		}
		out = append(out, "public groups (released with noise even when empty, and no others): "+strings.Join(gs, "; ")+
			"; a query grouping by any other column goes through partition selection")
	}
	return out
}

// Guidance thresholds for contract show's warnings about a weak budget.
const (
	weakEpsilon = 10   // total ε above which the guarantee says little
	weakDelta   = 1e-5 // total δ above which the "almost never fails" part is weak
)

// warnings lists the weaknesses of a differential-privacy block.
func (dp *DifferentialPrivacy) warnings() []Warning {
	var ws []Warning
	const p = "output.differential_privacy"
	if dp.EpsilonTotal > weakEpsilon {
		ws = append(ws, Warning{p + ".epsilon_total",
			fmt.Sprintf("a total ε of %v is weak: the results may change the odds of any guess about one person by a factor of up to e^%v over the contract's life", dp.EpsilonTotal, dp.EpsilonTotal)})
	}
	if dp.DeltaTotal > weakDelta {
		ws = append(ws, Warning{p + ".delta_total",
			fmt.Sprintf("a total δ of %v is large: δ is the chance that the ε guarantee fails outright for someone, and should be far below 1 / the number of people in the data", dp.DeltaTotal)})
	}
	ws = append(ws, Warning{p,
		"differential privacy protects each privacy unit (the column named privacy_unit), not more: a person who appears under several units, or a household sharing one, is protected only as far as the bounds allow; and the results are noisy by design"})
	return ws
}
