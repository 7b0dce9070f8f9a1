// Package sqlcheck decides whether an algorithm — one DuckDB SELECT — stays
// inside what its contract names: it may read only the contract's datasets
// and the CTEs it defines, call only the reviewed row generators in FROM,
// and call only the reviewed scalar, aggregate and window functions and
// macros, none of which reads DuckDB's catalog, settings, session, clock or
// random state.
//
// The check works on DuckDB's own parse of the text, as DuckDB's
// json_serialize_sql serialises it: the caller runs DuckDB (the coordinator
// in its locked-down engine, a client locally) and hands this package the
// JSON. The package itself depends on no DuckDB: Parse decodes the JSON
// strictly into the typed tree of tree.go, and Check walks it with the
// rules below, so the same analysis runs wherever the algorithm is checked.
//
// The rules, each a Rule of the *Refusal that reports a breach:
//
//   - RuleRelation: a relation in FROM (a base table reference) must be
//     named without catalog or schema, and be either a CTE in scope at that
//     point or one of the contract's datasets. Everything else — catalog
//     views (pg_catalog.*, information_schema.*, duckdb_*), anything
//     qualified, files named as tables, unknown names — is refused. DuckDB
//     resolves a bare name first to a CTE in scope, then to the datasets
//     (views in the in-memory database's main schema), and only then to
//     the system catalogs, so an allowed name never reaches a catalog.
//     Scoping follows DuckDB's binder: a WITH clause's CTEs are in scope in
//     its whole query node (both sides of a set operation it heads, every
//     subquery inside), each also in the CTEs after it but not in its own
//     body; a recursive CTE is in scope in its recursive part only. Names
//     compare without ASCII case, as DuckDB's do.
//   - RuleTableFunction: a table function must be one of TableFunctions'
//     allowed ones (range, generate_series, unnest).
//   - RuleFunction: every scalar, aggregate or window function, macro and
//     operator must be allowed by ExpressionFunctions, and be named without
//     catalog or schema (or with the schema main, which DuckDB's parser
//     writes itself for some syntax).
//   - RuleKeyword: a column reference that DuckDB's binder turns into a
//     function call when no column has its name (current_date, user, ...)
//     is refused where that can happen; qualified by a table it is a column.
//   - RuleConstruct: DESCRIBE/SHOW/SUMMARIZE as a table (they read the
//     catalog), AT (time travel), and sampling (random) are refused.
//   - RuleUnreadable: a tree with a node or key the decoder does not know.
//   - RuleReserved: a name (column, alias, CTE, column alias) starting with
//     ReservedPrefix, which the engine keeps for the columns it adds to a
//     query (Analyze).
//   - RuleParameter: a positional parameter ($1, ?), or a named one ($name)
//     where DuckDB reads a name rather than a value: inside COLUMNS(...),
//     PIVOT columns, a struct's key, a name argument, a table function's
//     argument, LIMIT or OFFSET, or alone as a grouping or ordering key (parameters.go lists them; Parameters returns the names).
//
// The privacy analysis of mode aggregate (Analyze, privacy.go) adds the
// rules RulePrivacyUnit, RuleAggregation, RuleDimensions,
// RuleAggregateFunctions and RuleAnalysable.
//
// Named parameters where values go, casts, typed literals, star expressions and
// COLUMNS(...), lambdas, VALUES lists, PIVOT/UNPIVOT, lateral joins and
// set operations are allowed, their parts checked like any other.
package sqlcheck

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Rule names the rule a refusal enforces.
type Rule int

// The rules; the package documentation explains each.
const (
	RuleRelation Rule = iota + 1
	RuleTableFunction
	RuleFunction
	RuleKeyword
	RuleConstruct
	RuleUnreadable
	RuleReserved
	RulePrivacyUnit
	RuleAggregation
	RuleDimensions
	RuleAggregateFunctions
	RuleAnalysable
	RuleParameter
)

func (r Rule) String() string {
	switch r {
	case RuleRelation:
		return "relations"
	case RuleTableFunction:
		return "table functions"
	case RuleFunction:
		return "functions"
	case RuleKeyword:
		return "SQL value keywords"
	case RuleConstruct:
		return "constructs"
	case RuleUnreadable:
		return "readable parse tree"
	case RuleReserved:
		return "reserved names"
	case RulePrivacyUnit:
		return "privacy unit"
	case RuleAggregation:
		return "aggregation"
	case RuleDimensions:
		return "dimensions"
	case RuleAggregateFunctions:
		return "aggregate functions"
	case RuleAnalysable:
		return "analysable query"
	case RuleParameter:
		return "parameters"
	}
	return fmt.Sprintf("rule(%d)", int(r))
}

// Refusal is the check's reason to refuse an algorithm: the rule, what
// the algorithm names (a relation, function or construct, as written) and
// where, and a sentence for people.
type Refusal struct {
	Rule Rule
	// Construct is what is refused, as the algorithm writes it:
	// "pg_catalog.pg_settings", "current_setting", "USING SAMPLE".
	Construct string
	// Location is the byte offset in the algorithm's text DuckDB recorded
	// for it, or NoLocation.
	Location Location
	// Reason is the sentence explaining the refusal: what the algorithm
	// does, where, and the rule it breaks.
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }

// Check checks one statement that Parse decoded. datasets are the names the
// algorithm may read: the contract's dataset ids. It returns nil or the
// first *Refusal met in a walk of the whole tree.
func Check(st *Statement, datasets []string) error {
	return CheckWithModels(st, datasets, nil)
}

// CheckWithModels is Check for a contract that names models: models are
// the contract's model names (docs/models.md), scalar functions the
// algorithm may call by their bare names besides the allowed ones.
func CheckWithModels(st *Statement, datasets, models []string) error {
	if _, err := Parameters(st); err != nil {
		return err
	}
	c := &checker{datasets: datasets, models: models}
	c.statement(st, nil)
	if c.refusal != nil {
		return c.refusal
	}
	return nil
}

// ModelCalls returns, in the walk's order, the name (as the contract spells
// it) of every call in st to one of models: a FunctionExpr with no catalog
// or schema whose name equals a model's, ignoring ASCII case. It is how an
// analysis of the algorithm finds the model calls (docs/models.md §7).
func ModelCalls(st *Statement, models []string) []string {
	var out []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Pointer:
			if v.IsNil() {
				return
			}
			if f, ok := v.Interface().(*FunctionExpr); ok && f.Catalog == "" && f.Schema == "" {
				if i := slices.IndexFunc(models, func(m string) bool { return equalFold(m, f.Name) }); i >= 0 {
					out = append(out, models[i])
				}
			}
			walk(v.Elem())
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(st))
	return out
}

// datasetList names the datasets in a refusal.
func (c *checker) datasetList() string {
	if len(c.datasets) == 0 {
		return "the contract's datasets"
	}
	d := slices.Clone(c.datasets)
	slices.Sort(d)
	return "the contract's datasets (" + strings.Join(d, ", ") + ")"
}
