package sqlcheck

import "maps"

// AggregateKind says what an aggregate function reveals of the rows it
// aggregates, for the privacy analysis (Analyze).
type AggregateKind int

const (
	// AggregateSummary is an aggregate whose result summarises its rows
	// without returning any one member's value: counts, sums, means,
	// variances, correlations. It may aggregate any protected column that
	// is not a privacy unit, unless the contract restricts the dataset's
	// aggregations.
	AggregateSummary AggregateKind = iota + 1
	// AggregateMember returns a member's value, or values, as they are:
	// MIN, MAX, ANY_VALUE, FIRST, ARG_MAX, MEDIAN and the quantiles, MODE,
	// STRING_AGG, LIST, HISTOGRAM, the bitwise aggregates. It may aggregate
	// a protected column only where the contract allows it by name.
	AggregateMember
	// AggregateWindow is a function that exists only over a window
	// (row_number, rank, lag, ...).
	AggregateWindow
)

// Aggregates returns the kind of every aggregate function, aggregate
// macro and window-only function, by lower-case name. The analysis treats
// a call of any of these names as an aggregate.
func Aggregates() map[string]AggregateKind { return maps.Clone(aggregates) }

// aggregateMacros are the macros of this DuckDB whose body is an
// aggregate: the analysis treats a call as the aggregate it expands to.
// (The engine's TestAggregateMacrosListed checks this list against every
// allowed macro's definition.)
var aggregateMacros = []string{"geomean", "geometric_mean", "json_group_array", "json_group_object",
	"json_group_structure", "wavg", "weighted_avg"}

var aggregates = func() map[string]AggregateKind {
	m := map[string]AggregateKind{}
	add := func(k AggregateKind, names ...string) {
		for _, n := range names {
			if _, dup := m[n]; dup {
				panic("sqlcheck: aggregate " + n + " is classified twice")
			}
			m[n] = k
		}
	}
	add(AggregateSummary,
		"approx_count_distinct", "avg", "bool_and", "bool_or", "corr", "count", "count_if", "count_star", "countif",
		"covar_pop", "covar_samp", "entropy", "favg", "fsum", "geomean", "geometric_mean", "kahan_sum", "kurtosis",
		"kurtosis_pop", "mean", "product", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2",
		"regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "sem", "skewness", "stddev", "stddev_pop", "stddev_samp",
		"sum", "sum_no_overflow", "sumkahan", "var_pop", "var_samp", "variance", "wavg", "weighted_avg")
	add(AggregateMember,
		"any_value", "approx_quantile", "approx_top_k", "arbitrary", "arg_max", "arg_max_null", "arg_max_nulls_last",
		"arg_min", "arg_min_null", "arg_min_nulls_last", "argmax", "argmin", "array_agg", "bit_and", "bit_or",
		"bit_xor", "bitstring_agg", "first", "group_concat", "histogram", "histogram_exact", "json_group_array",
		"json_group_object", "json_group_structure", "last", "list", "listagg", "mad", "max", "max_by", "median",
		"min", "min_by", "mode", "quantile", "quantile_cont", "quantile_disc", "reservoir_quantile", "string_agg")
	add(AggregateWindow,
		"cume_dist", "dense_rank", "fill", "first_value", "lag", "last_value", "lead", "nth_value", "ntile",
		"percent_rank", "rank", "rank_dense", "row_number")
	return m
}()
