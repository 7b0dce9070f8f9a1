package sqlcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
)

// The rewrite works on the JSON tree DuckDB's json_serialize_sql made:
// Rewritten copies it and edits the copy where Analyze asked —
//
//   - each CTE or subquery in FROM that reads a protected dataset gains,
//     at the end of its select list, one column per reading of a
//     protected dataset behind its rows, carrying that reading's privacy
//     unit: the unit column itself, or min(unit) in a CTE or subquery that
//     groups by the unit (one row per person, so min is the unit); a
//     SELECT DISTINCT there becomes GROUP BY ALL, which groups alike;
//   - the result's SELECT gains, at the end, count(DISTINCT unit) for each
//     reading of a protected dataset behind its rows, and for each
//     aggregate with a FILTER, count(DISTINCT unit) FILTER (the same
//     condition) for each reading; its LIMIT and OFFSET are removed (the
//     engine applies them after suppression) and a SELECT DISTINCT
//     becomes GROUP BY ALL.
//
// The engine turns the edited tree back into SQL with DuckDB's
// json_deserialize_sql. Every name added starts with ReservedPrefix, which
// no algorithm may use, so none can meet a name of the algorithm. One
// thing is changed for json_deserialize_sql's sake: it writes a DOUBLE
// literal such as 1e9 as 1000000000.0, which DuckDB reads back as a
// DECIMAL, so every DOUBLE literal is written as CAST('1e+09' AS DOUBLE),
// the same value of the same type.

// unknownLocation is the query_location DuckDB writes for "none".
const unknownLocation = "18446744073709551615"

// columnRefJSON is DuckDB's tree of a column reference.
func columnRefJSON(names []string, alias string) map[string]any {
	l := make([]any, len(names))
	for i, n := range names {
		l[i] = n
	}
	return map[string]any{"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": alias,
		"query_location": json.Number(unknownLocation), "column_names": l}
}

// functionJSON is DuckDB's tree of a function or aggregate call.
func functionJSON(name string, children []any, distinct bool, filter any, alias string) map[string]any {
	return map[string]any{"class": "FUNCTION", "type": "FUNCTION", "alias": alias,
		"query_location": json.Number(unknownLocation), "function_name": name, "schema": "",
		"children": children, "filter": filter,
		"order_bys": map[string]any{"type": "ORDER_MODIFIER", "orders": []any{}},
		"distinct":  distinct, "is_operator": false, "export_state": false, "catalog": ""}
}

// rewriteResult records the rewrite of the result's SELECT node. Readings
// whose units are equal in every row share one count; a reading the
// algorithm already counts, count(DISTINCT unit), is counted by the same
// expression, which DuckDB computes once.
func (a *analyzer) rewriteResult(n *SelectNode, sc *nameScope, carriers []carrier, counted []int, filtered []*FunctionExpr, limit *LimitModifier, distinctOnly bool) {
	res := a.result
	e := &nodeEdit{groupAll: distinctOnly, dropLimit: limit != nil}
	// The readings, in classes of equal units; each class's representative
	// is a reading the algorithm counts, if any, else its first.
	var classes [][]carrier
	for _, c := range carriers {
		root := sc.same.find("u" + strconv.Itoa(c.occ))
		placed := false
		for i, cl := range classes {
			if sc.same.find("u"+strconv.Itoa(cl[0].occ)) == root {
				classes[i] = append(classes[i], c)
				placed = true
				break
			}
		}
		if !placed {
			classes = append(classes, []carrier{c})
		}
	}
	reps := make([]carrier, len(classes))
	for i, cl := range classes {
		reps[i] = cl[0]
		for _, c := range cl {
			if slices.Contains(counted, c.occ) {
				reps[i] = c
				break
			}
		}
	}
	columns := 0
	add := func(filter *FunctionExpr) {
		for i, cl := range classes {
			name := countColumnPrefix + strconv.Itoa(columns)
			columns++
			var f any
			of := ""
			if filter != nil {
				f, of = deepCopy(filter.Filter.Node().raw, nil), filter.Name
			}
			e.appendItems = append(e.appendItems, functionJSON("count", []any{columnRefJSON(reps[i].ref, "")}, true, f, name))
			for _, c := range cl {
				res.Counts = append(res.Counts, Count{Column: name, Dataset: c.dataset, Filter: of})
				res.Protected = append(res.Protected, c.dataset)
			}
		}
	}
	add(nil)
	for _, f := range filtered {
		add(f)
	}
	if limit != nil {
		var ok bool
		if res.Limit, ok = a.rowCount(limit.Limit, "LIMIT", -1); !ok {
			return
		}
		if res.Offset, ok = a.rowCount(limit.Offset, "OFFSET", 0); !ok {
			return
		}
	}
	a.edits[n] = e
}

// rowCount reads the result's LIMIT or OFFSET: a non-negative integer
// constant, or none (def).
func (a *analyzer) rowCount(e Expr, what string, def int64) (int64, bool) {
	if e == nil {
		return def, true
	}
	if c, ok := e.(*ConstantExpr); ok {
		if n, ok := integerConstant(c); ok && n >= 0 {
			return n, true
		}
	}
	a.refuse(RuleAnalysable, what, e.Node().Location, "the query's "+what+" is not a number of rows",
		": in mode aggregate the engine applies LIMIT and OFFSET to the rows left after suppression, so they must be integer constants")
	return 0, false
}

// Rewritten returns the JSON of the rewritten statement, in the form
// json_deserialize_sql reads ({"error": false, "statements": [...]}), or
// nil when nothing is rewritten (the result reads no protected dataset).
func (r *Analysis) Rewritten() []byte {
	if len(r.edits) == 0 || r.st == nil || r.st.raw == nil {
		return nil
	}
	copies := map[uintptr]map[string]any{}
	st := deepCopy(r.st.raw, copies)
	castDoubles(st)
	for node, e := range r.edits {
		m := copies[reflect.ValueOf(node.raw).Pointer()]
		if m == nil {
			continue
		}
		list, _ := m["select_list"].([]any)
		for _, item := range e.appendItems {
			list = append(list, deepCopy(item, nil))
		}
		m["select_list"] = list
		if e.dropLimit || e.groupAll {
			mods, _ := m["modifiers"].([]any)
			var kept []any
			for _, mod := range mods {
				t, _ := mod.(map[string]any)["type"].(string)
				switch {
				case e.dropLimit && (t == "LIMIT_MODIFIER" || t == "LIMIT_PERCENT_MODIFIER"):
				case e.groupAll && t == "DISTINCT_MODIFIER":
				default:
					kept = append(kept, mod)
				}
			}
			if kept == nil {
				kept = []any{}
			}
			m["modifiers"] = kept
		}
		if e.groupAll {
			m["aggregate_handling"] = "FORCE_AGGREGATES"
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"error": false, "statements": []any{st}}); err != nil {
		panic(fmt.Sprintf("sqlcheck: encoding a decoded tree: %v", err)) // plain JSON values: cannot fail
	}
	return bytes.TrimSpace(b.Bytes())
}

// castDoubles replaces every DOUBLE literal under v by a CAST of its
// shortest exact text to DOUBLE.
func castDoubles(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if c, ok := doubleConstant(e); ok {
				x[k] = c
				continue
			}
			castDoubles(e)
		}
	case []any:
		for i, e := range x {
			if c, ok := doubleConstant(e); ok {
				x[i] = c
				continue
			}
			castDoubles(e)
		}
	}
}

// doubleConstant returns the CAST that stands for v when v is a DOUBLE
// literal.
func doubleConstant(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok || m["class"] != "CONSTANT" {
		return nil, false
	}
	val, _ := m["value"].(map[string]any)
	typ, _ := val["type"].(map[string]any)
	num, isNum := val["value"].(json.Number)
	if typ["id"] != "DOUBLE" || val["is_null"] != false || !isNum {
		return nil, false
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil {
		return nil, false
	}
	text := strconv.FormatFloat(f, 'g', -1, 64)
	return map[string]any{"class": "CAST", "type": "OPERATOR_CAST", "alias": m["alias"], "query_location": m["query_location"],
		"child": map[string]any{"class": "CONSTANT", "type": "VALUE_CONSTANT", "alias": "", "query_location": json.Number(unknownLocation),
			"value": map[string]any{"type": map[string]any{"id": "VARCHAR", "type_info": nil}, "is_null": false, "value": text}},
		"cast_type": map[string]any{"id": "DOUBLE", "type_info": nil}, "try_cast": false}, true
}

// deepCopy copies a decoded JSON value; copies, when not nil, maps each
// original object to its copy.
func deepCopy(v any, copies map[uintptr]map[string]any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e, copies)
		}
		if copies != nil {
			copies[reflect.ValueOf(x).Pointer()] = m
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e, copies)
		}
		return l
	}
	return v
}

func jsonUnmarshal(b []byte, v any) error {
	if len(b) == 0 {
		return fmt.Errorf("empty")
	}
	return json.Unmarshal(b, v)
}

// findWindow returns the first window function in exprs, outside
// subqueries.
func findWindow(exprs []Expr) *WindowExpr {
	var found *WindowExpr
	walkExprs(exprs, func(e Expr) bool {
		if w, ok := e.(*WindowExpr); ok && found == nil {
			found = w
		}
		return found == nil
	})
	return found
}

// hasAggregate reports whether exprs call an aggregate outside subqueries
// and windows.
func hasAggregate(exprs []Expr) bool {
	found := false
	walkExprs(exprs, func(e Expr) bool {
		switch x := e.(type) {
		case *FunctionExpr:
			if k, ok := aggregates[asciiLower(x.Name)]; ok && k != AggregateWindow && !x.IsOperator {
				found = true
			}
		case *WindowExpr:
			return false
		}
		return !found
	})
	return found
}

// walkExprs calls f on every expression under exprs, outside subqueries,
// depth first; f returns false to skip an expression's children.
func walkExprs(exprs []Expr, f func(Expr) bool) {
	for _, e := range exprs {
		walkExpr(e, f)
	}
}

func walkExpr(e Expr, f func(Expr) bool) {
	if e == nil || !f(e) {
		return
	}
	switch x := e.(type) {
	case *BetweenExpr:
		walkExprs([]Expr{x.Input, x.Lower, x.Upper}, f)
	case *CaseExpr:
		for _, c := range x.Checks {
			if c != nil {
				walkExprs([]Expr{c.When, c.Then}, f)
			}
		}
		walkExpr(x.Else, f)
	case *CastExpr:
		walkExpr(x.Child, f)
	case *CollateExpr:
		walkExpr(x.Child, f)
	case *ComparisonExpr:
		walkExprs([]Expr{x.Left, x.Right}, f)
	case *ConjunctionExpr:
		walkExprs(x.Children, f)
	case *FunctionExpr:
		walkExprs(x.Children, f)
		walkExpr(x.Filter, f)
		if x.OrderBy != nil {
			walkExprs(orderExprs([]Modifier{x.OrderBy}), f)
		}
	case *LambdaExpr:
		walkExprs([]Expr{x.Params, x.Body}, f)
	case *OperatorExpr:
		walkExprs(x.Children, f)
	case *StarExpr:
		walkExpr(x.Expr, f)
		for _, r := range x.Replace {
			if r != nil {
				walkExpr(r.Expr, f)
			}
		}
	case *SubqueryExpr:
		walkExpr(x.Child, f)
	case *WindowExpr:
		walkExprs(append(append(append([]Expr{}, x.Children...), x.Partitions...), x.StartExpr, x.EndExpr, x.OffsetExpr, x.DefaultExp, x.Filter), f)
		for _, o := range append(append([]*OrderBy{}, x.Orders...), x.ArgOrders...) {
			if o != nil {
				walkExpr(o.Expr, f)
			}
		}
	}
}
