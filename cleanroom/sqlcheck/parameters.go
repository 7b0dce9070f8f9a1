package sqlcheck

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// A contract's parameters (algorithm.parameters) reach the algorithm as
// prepared-statement parameters, $name, which DuckDB binds as values: a
// parameter is a literal of the query and can never become a table,
// column or function name — as long as it stands where DuckDB reads a
// value. DuckDB's parser also accepts a parameter in places where its
// binder then reads the value as a name. RuleParameter refuses every one
// of them:
//
//   - inside COLUMNS(...) or another star expression, whose argument picks
//     columns by name or pattern, and in the columns of PIVOT or UNPIVOT;
//   - as the key of x[...] or x.field, and as a name argument of a function
//     that reads a name from a string: a struct's field (struct_extract
//     and its kin), a union's member, a variant's path, or the aggregate
//     list_aggregate calls;
//   - as an argument of a table function: most read a table's or a file's
//     name, and DuckDB needs the numbers of range and generate_series to
//     plan the query, which the coordinator checks before binding values;
//   - in LIMIT or OFFSET, whose number DuckDB also needs to plan;
//   - alone as a key of GROUP BY, ORDER BY, PARTITION BY, DISTINCT ON or
//     USING KEY, where a constant can mean a column's position.
//
// Parameters are named: $1 and ? (DuckDB numbers them) are refused, as a
// run's values are given by name.

const limitPlace = "in LIMIT or OFFSET, whose number DuckDB needs to plan the query; the coordinator checks the plan before values are bound: write the number into the query"

// nameFunctions take a name (of a field, member, path or aggregate) as
// every argument after their first.
var nameFunctions = []string{
	"struct_extract", "struct_extract_at", "struct_contains", "struct_has", "struct_indexof", "struct_position",
	"struct_insert", "struct_update", "remap_struct", "union_extract", "union_value", "variant_extract",
	"array_extract", "list_extract", "list_element", "element_at",
	"list_aggregate", "list_aggr", "aggregate", "array_aggregate", "array_aggr",
}

// Parameters returns the names of the parameters st uses ($name), sorted, or a *Refusal under RuleParameter when it uses
// a positional parameter ($1, ?) or puts a parameter where DuckDB reads a
// name (see RuleParameter). Check applies the same rule.
func Parameters(st *Statement) ([]string, error) {
	p := &paramWalk{}
	p.walk(reflect.ValueOf(st), "")
	if p.refusal != nil {
		return nil, p.refusal
	}
	// Sorted: the walk follows the tree's fields, not the text (LIMIT
	// before the select list), and DuckDB records no position for them.
	slices.Sort(p.names)
	return p.names, nil
}

type paramWalk struct {
	names   []string
	refusal *Refusal
}

func (p *paramWalk) refuse(x *ParameterExpr, where string) {
	if p.refusal != nil {
		return
	}
	name := "$" + x.Identifier
	p.refusal = &Refusal{Rule: RuleParameter, Construct: name, Location: x.Location,
		Reason: fmt.Sprintf("the algorithm uses the parameter %s%s %s", name, at(x.Location), where)}
	if !strings.Contains(where, ";") {
		p.refusal.Reason += "; a parameter is a value of the query, never a name, so it may stand only where DuckDB reads a value"
	}
}

// walk visits v; inside is non-empty when v is in a place where a
// parameter would be read as a name, and says where.
func (p *paramWalk) walk(v reflect.Value, inside string) {
	if p.refusal != nil {
		return
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Pointer {
			if p.node(v.Interface(), inside) {
				return
			}
		}
		p.walk(v.Elem(), inside)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				p.walk(v.Field(i), inside)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			p.walk(v.Index(i), inside)
		}
	}
}

// node handles the nodes whose parts are places of their own, and reports
// whether it walked the node itself.
func (p *paramWalk) node(n any, inside string) bool {
	switch x := n.(type) {
	case *ParameterExpr:
		if _, err := strconv.ParseUint(x.Identifier, 10, 64); err == nil || x.Identifier == "" {
			p.refusal = &Refusal{Rule: RuleParameter, Construct: "$" + x.Identifier, Location: x.Location,
				Reason: fmt.Sprintf("the algorithm uses a positional parameter ($%s or ?)%s; parameters are named, $name, as the contract's algorithm.parameters declare them", x.Identifier, at(x.Location))}
			return true
		}
		if inside != "" {
			p.refuse(x, inside)
			return true
		}
		if !slices.Contains(p.names, x.Identifier) {
			p.names = append(p.names, x.Identifier)
		}
		return true
	case *StarExpr:
		p.walkField(x.Replace, inside)
		p.walkField(x.Expr, "inside COLUMNS(...) or a star expression, whose argument picks columns by name")
		return true
	case *PivotRef:
		p.walkField(x.Source, inside)
		p.walkField(x.Aggregates, inside)
		p.walkField(x.Pivots, "in the columns of a PIVOT or UNPIVOT, which become column names")
		return true
	case *OperatorExpr:
		if (x.Type == "ARRAY_EXTRACT" || x.Type == "STRUCT_EXTRACT") && len(x.Children) > 1 {
			p.walkField(x.Children[0], inside)
			p.walkField(x.Children[1:], "as the key of x[...] or x.field, which names a struct's field")
			return true
		}
	case *FunctionExpr:
		if slices.Contains(nameFunctions, asciiLower(x.Name)) && len(x.Children) > 1 {
			p.walkField(x.Children[0], inside)
			p.walkField(x.Children[1:], "as an argument of "+x.Name+", which reads a name from it")
			p.walkField(x.Filter, inside)
			p.walkField(x.OrderBy, inside)
			return true
		}
	case *TableFunctionRef:
		if x.Function != nil {
			p.walkField(x.Function, "as an argument of the table function "+x.Function.Name+", which reads a table's or a file's name, or a number DuckDB needs to plan the query")
			return true
		}
	case *LimitModifier:
		p.walkField(x.Limit, limitPlace)
		p.walkField(x.Offset, limitPlace)
		return true
	case *SelectNode:
		p.keys(x.GroupBy, "GROUP BY")
	case *OrderBy:
		p.key(x.Expr, "ORDER BY")
	case *WindowExpr:
		p.keys(x.Partitions, "PARTITION BY")
	case *DistinctModifier:
		p.keys(x.On, "DISTINCT ON")
	case *CTE:
		p.keys(x.KeyTargets, "USING KEY")
	case *RecursiveCTENode:
		p.keys(x.KeyTargets, "USING KEY")
	}
	return false
}

func (p *paramWalk) walkField(v any, inside string) { p.walk(reflect.ValueOf(v), inside) }

// keys refuses a parameter standing alone as a key of clause.
func (p *paramWalk) keys(es []Expr, clause string) {
	for _, e := range es {
		p.key(e, clause)
	}
}

func (p *paramWalk) key(e Expr, clause string) {
	if x, ok := e.(*ParameterExpr); ok {
		if _, err := strconv.ParseUint(x.Identifier, 10, 64); err == nil {
			return // the walk refuses it as positional
		}
		p.refuse(x, "alone as a key of "+clause+", where a constant can mean a column's position")
	}
}
