package sqlcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// SerializeError is the error json_serialize_sql reported instead of a parse
// tree: the text does not parse, or holds a statement other than a SELECT
// (json_serialize_sql serialises SELECT statements only).
type SerializeError struct {
	Type    string // DuckDB's error_type: "parser", "not implemented", ...
	Subtype string
	Message string
}

func (e *SerializeError) Error() string {
	return fmt.Sprintf("DuckDB's parser: %s (%s)", e.Message, e.Type)
}

// Parse decodes the output of DuckDB's json_serialize_sql: the statements
// of the algorithm, or the *SerializeError DuckDB reported. It is strict:
// a node type, expression class or key it does not know is refused with a
// *Refusal under RuleUnreadable, naming where in the tree it is, so that
// nothing DuckDB adds in a later version passes unchecked.
func Parse(serialized []byte) ([]*Statement, error) {
	dec := json.NewDecoder(bytes.NewReader(serialized))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, unreadable("", "it is not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, unreadable("", "it has data after the JSON value")
	}
	d := &decoder{}
	o := d.object(root, "")
	if o == nil {
		return nil, d.err
	}
	if o.boolean("error") {
		// DuckDB's error: its message and type; what else it says (a
		// subtype, a position) varies with the error.
		e := &SerializeError{Type: o.str("error_type"), Message: o.str("error_message")}
		e.Subtype, _ = o.m["error_subtype"].(string)
		if d.err != nil {
			return nil, d.err
		}
		return nil, e
	}
	var stmts []*Statement
	for i, v := range o.list("statements") {
		stmts = append(stmts, d.statement(v, fmt.Sprintf("statements[%d]", i)))
	}
	o.finish()
	if d.err != nil {
		return nil, d.err
	}
	return stmts, nil
}

// unreadable is the refusal of a tree the check cannot read.
func unreadable(path, format string, args ...any) *Refusal {
	where := "DuckDB's parse tree"
	if path != "" {
		where += " at " + path
	}
	return &Refusal{Rule: RuleUnreadable, Construct: where, Location: NoLocation,
		Reason: fmt.Sprintf("the statement check cannot read %s: %s; it refuses what it cannot read (a DuckDB upgrade needs the check's decoder updated)",
			where, fmt.Sprintf(format, args...))}
}

// decoder turns the generic JSON tree into the typed tree. The first error
// sticks: later calls return zero values.
type decoder struct {
	err error
}

func (d *decoder) fail(path, format string, args ...any) {
	if d.err == nil {
		d.err = unreadable(path, format, args...)
	}
}

// object is one JSON object being read: finish refuses the keys not read.
type object struct {
	d    *decoder
	path string
	m    map[string]any
	read map[string]bool
}

func (d *decoder) object(v any, path string) *object {
	if d.err != nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "expected an object, found %s", jsonKind(v))
		return nil
	}
	return &object{d: d, path: path, m: m, read: map[string]bool{}}
}

func (o *object) at(key string) string {
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

// get returns the value of key, which must be present.
func (o *object) get(key string) (any, bool) {
	if o == nil || o.d.err != nil {
		return nil, false
	}
	o.read[key] = true
	v, ok := o.m[key]
	if !ok {
		o.d.fail(o.path, "the key %q is missing", key)
		return nil, false
	}
	return v, true
}

func (o *object) finish() {
	if o == nil || o.d.err != nil {
		return
	}
	var unknown []string
	for k := range o.m {
		if !o.read[k] {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		o.d.fail(o.path, "it has keys the statement check does not know: %s", strings.Join(unknown, ", "))
	}
}

func (o *object) str(key string) string {
	v, ok := o.get(key)
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		o.d.fail(o.at(key), "expected a string, found %s", jsonKind(v))
	}
	return s
}

func (o *object) boolean(key string) bool {
	v, ok := o.get(key)
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		o.d.fail(o.at(key), "expected true or false, found %s", jsonKind(v))
	}
	return b
}

// raw returns the value of key as JSON, for values the check treats as
// data (constants, types, name lists). Data holds no expression: a nested
// object with an expression's "class" key is refused, so that an
// expression DuckDB might one day put inside a type or a constant is not
// taken for data.
func (o *object) raw(key string) json.RawMessage {
	v, ok := o.get(key)
	if !ok {
		return nil
	}
	if hasExpression(v) {
		o.d.fail(o.at(key), "an expression inside what the statement check reads as data")
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		o.d.fail(o.at(key), "cannot re-encode: %v", err)
	}
	return b
}

func (o *object) number(key string) json.Number {
	v, ok := o.get(key)
	if !ok {
		return ""
	}
	n, ok := v.(json.Number)
	if !ok {
		o.d.fail(o.at(key), "expected a number, found %s", jsonKind(v))
	}
	return n
}

// location reads query_location: DuckDB writes the largest uint64 (or, in
// some versions, nothing) for "unknown".
func (o *object) location() Location {
	if o == nil {
		return NoLocation
	}
	if _, ok := o.m["query_location"]; !ok {
		return NoLocation
	}
	n := o.number("query_location")
	u, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil || u > math.MaxInt64 {
		return NoLocation
	}
	return Location(u)
}

// list returns the array at key; null reads as empty.
func (o *object) list(key string) []any {
	v, ok := o.get(key)
	if !ok || v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		o.d.fail(o.at(key), "expected an array, found %s", jsonKind(v))
	}
	return l
}

func (o *object) strs(key string) []string {
	var out []string
	for i, v := range o.list(key) {
		s, ok := v.(string)
		if !ok {
			o.d.fail(fmt.Sprintf("%s[%d]", o.at(key), i), "expected a string, found %s", jsonKind(v))
			return nil
		}
		out = append(out, s)
	}
	return out
}

func (o *object) expr(key string) Expr {
	v, ok := o.get(key)
	if !ok {
		return nil
	}
	return o.d.expr(v, o.at(key))
}

func (o *object) exprs(key string) []Expr {
	var out []Expr
	for i, v := range o.list(key) {
		out = append(out, o.d.expr(v, fmt.Sprintf("%s[%d]", o.at(key), i)))
	}
	return out
}

func (o *object) query(key string) QueryNode {
	v, ok := o.get(key)
	if !ok {
		return nil
	}
	return o.d.queryNode(v, o.at(key))
}

func (o *object) tableRef(key string) TableRef {
	v, ok := o.get(key)
	if !ok {
		return nil
	}
	return o.d.tableRef(v, o.at(key))
}

func (o *object) sample() *Sample {
	v, ok := o.get("sample")
	if !ok || v == nil {
		return nil
	}
	s := o.d.object(v, o.at("sample"))
	if s == nil {
		return nil
	}
	out := &Sample{Size: s.raw("sample_size"), IsPercentage: s.boolean("is_percentage"), Method: s.str("method"), Seed: s.raw("seed")}
	s.finish()
	return out
}

func (d *decoder) statement(v any, path string) *Statement {
	o := d.object(v, path)
	if o == nil {
		return nil
	}
	st := &Statement{Node: o.query("node"), NamedParams: o.raw("named_param_map"), raw: o.m}
	o.finish()
	if st.Node == nil {
		d.fail(path, "a statement without a query node")
	}
	return st
}

func (d *decoder) common(o *object) QueryCommon {
	var c QueryCommon
	for i, v := range o.list("modifiers") {
		c.Modifiers = append(c.Modifiers, d.modifier(v, fmt.Sprintf("%s[%d]", o.at("modifiers"), i)))
	}
	v, ok := o.get("cte_map")
	if !ok {
		return c
	}
	m := d.object(v, o.at("cte_map"))
	if m == nil {
		return c
	}
	for i, e := range m.list("map") {
		path := fmt.Sprintf("%s[%d]", m.at("map"), i)
		entry := d.object(e, path)
		if entry == nil {
			return c
		}
		cte := &CTE{Name: entry.str("key")}
		v, _ := entry.get("value")
		if val := d.object(v, entry.at("value")); val != nil {
			cte.Aliases = val.strs("aliases")
			if q, ok := val.get("query"); ok {
				cte.Query = d.statement(q, val.at("query"))
			}
			cte.Materialized = val.str("materialized")
			cte.KeyTargets = val.exprs("key_targets")
			val.finish()
		}
		entry.finish()
		c.CTEs = append(c.CTEs, cte)
	}
	m.finish()
	return c
}

// queryNode decodes a query node; JSON null is nil.
func (d *decoder) queryNode(v any, path string) QueryNode {
	if v == nil {
		return nil
	}
	o := d.object(v, path)
	if o == nil {
		return nil
	}
	var n QueryNode
	switch t := o.str("type"); t {
	case "SELECT_NODE":
		s := &SelectNode{QueryCommon: d.common(o), raw: o.m}
		s.SelectList = o.exprs("select_list")
		s.From = o.tableRef("from_table")
		s.Where = o.expr("where_clause")
		s.GroupBy = o.exprs("group_expressions")
		s.GroupingSets = o.raw("group_sets")
		s.AggregateHandling = o.str("aggregate_handling")
		s.Having = o.expr("having")
		s.Sample = o.sample()
		s.Qualify = o.expr("qualify")
		n = s
	case "SET_OPERATION_NODE":
		s := &SetOperationNode{QueryCommon: d.common(o)}
		s.Op = o.str("setop_type")
		s.All = o.boolean("setop_all")
		s.Left = o.query("left")
		s.Right = o.query("right")
		n = s
	case "RECURSIVE_CTE_NODE":
		r := &RecursiveCTENode{QueryCommon: d.common(o)}
		r.Name = o.str("cte_name")
		r.UnionAll = o.boolean("union_all")
		r.Left = o.query("left")
		r.Right = o.query("right")
		r.Aliases = o.strs("aliases")
		r.KeyTargets = o.exprs("key_targets")
		n = r
	default:
		if d.err == nil {
			d.fail(path, "the query node type %q is not one the statement check knows", t)
		}
		return nil
	}
	o.finish()
	return n
}

func (d *decoder) modifier(v any, path string) Modifier {
	o := d.object(v, path)
	if o == nil {
		return nil
	}
	var m Modifier
	switch t := o.str("type"); t {
	case "ORDER_MODIFIER":
		m = d.orderModifier(o)
	case "LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER":
		m = &LimitModifier{Limit: o.expr("limit"), Offset: o.expr("offset"), Percent: t == "LIMIT_PERCENT_MODIFIER"}
	case "DISTINCT_MODIFIER":
		m = &DistinctModifier{On: o.exprs("distinct_on_targets")}
	default:
		if d.err == nil {
			d.fail(path, "the result modifier %q is not one the statement check knows", t)
		}
		return nil
	}
	o.finish()
	return m
}

func (d *decoder) orderModifier(o *object) *OrderModifier {
	return &OrderModifier{Orders: d.orders(o, "orders")}
}

func (d *decoder) orders(o *object, key string) []*OrderBy {
	var out []*OrderBy
	for i, v := range o.list(key) {
		ob := d.object(v, fmt.Sprintf("%s[%d]", o.at(key), i))
		if ob == nil {
			return nil
		}
		out = append(out, &OrderBy{Direction: ob.str("type"), NullOrder: ob.str("null_order"), Expr: ob.expr("expression")})
		ob.finish()
	}
	return out
}

// tableRef decodes a table reference; JSON null is nil.
func (d *decoder) tableRef(v any, path string) TableRef {
	if v == nil {
		return nil
	}
	o := d.object(v, path)
	if o == nil {
		return nil
	}
	t := o.str("type")
	c := RefCommon{Alias: o.str("alias"), Sample: o.sample(), Location: o.location()}
	var r TableRef
	switch t {
	case "BASE_TABLE":
		b := &BaseTable{RefCommon: c, Catalog: o.str("catalog_name"), Schema: o.str("schema_name"), Name: o.str("table_name"),
			ColumnAliases: o.strs("column_name_alias")}
		if at, ok := o.get("at_clause"); ok && at != nil {
			if a := d.object(at, o.at("at_clause")); a != nil {
				b.At = &AtClause{Unit: a.str("unit"), Expr: a.expr("expr")}
				a.finish()
			}
		}
		r = b
	case "JOIN":
		r = &JoinRef{RefCommon: c, Left: o.tableRef("left"), Right: o.tableRef("right"), Condition: o.expr("condition"),
			JoinType: o.str("join_type"), RefType: o.str("ref_type"), Using: o.strs("using_columns"),
			DelimFlipped: o.boolean("delim_flipped"), DuplicateEliminated: o.exprs("duplicate_eliminated_columns")}
	case "SUBQUERY":
		s := &SubqueryRef{RefCommon: c}
		if q, ok := o.get("subquery"); ok {
			s.Query = d.statement(q, o.at("subquery"))
		}
		s.ColumnAliases = o.strs("column_name_alias")
		r = s
	case "TABLE_FUNCTION":
		f := &TableFunctionRef{RefCommon: c, ColumnAliases: o.strs("column_name_alias"), Ordinality: o.str("with_ordinality")}
		fn, ok := o.expr("function").(*FunctionExpr)
		if !ok && d.err == nil {
			d.fail(o.at("function"), "a table function that is not a function call")
		}
		f.Function = fn
		r = f
	case "EMPTY":
		r = &EmptyRef{RefCommon: c}
	case "EXPRESSION_LIST":
		e := &ValuesRef{RefCommon: c, Names: o.strs("expected_names"), Types: o.raw("expected_types")}
		for i, row := range o.list("values") {
			l, ok := row.([]any)
			if !ok {
				d.fail(fmt.Sprintf("%s[%d]", o.at("values"), i), "expected an array, found %s", jsonKind(row))
				break
			}
			var exprs []Expr
			for j, x := range l {
				exprs = append(exprs, d.expr(x, fmt.Sprintf("%s[%d][%d]", o.at("values"), i, j)))
			}
			e.Rows = append(e.Rows, exprs)
		}
		r = e
	case "PIVOT":
		p := &PivotRef{RefCommon: c, Source: o.tableRef("source"), Aggregates: o.exprs("aggregates"),
			UnpivotNames: o.strs("unpivot_names"), Groups: o.strs("groups"), ColumnAliases: o.strs("column_name_alias"),
			IncludeNulls: o.boolean("include_nulls")}
		for i, pv := range o.list("pivots") {
			po := d.object(pv, fmt.Sprintf("%s[%d]", o.at("pivots"), i))
			if po == nil {
				break
			}
			col := &PivotColumn{Exprs: po.exprs("pivot_expressions"), UnpivotNames: po.strs("unpivot_names"), Enum: po.str("pivot_enum")}
			for j, e := range po.list("entries") {
				eo := d.object(e, fmt.Sprintf("%s[%d]", po.at("entries"), j))
				if eo == nil {
					break
				}
				col.Entries = append(col.Entries, &PivotEntry{Values: eo.raw("values"), Star: eo.expr("star_expr"), Alias: eo.str("alias")})
				eo.finish()
			}
			po.finish()
			p.Pivots = append(p.Pivots, col)
		}
		r = p
	case "SHOW_REF":
		r = &ShowRef{RefCommon: c, ShowType: o.str("show_type"), Catalog: o.str("catalog_name"), Schema: o.str("schema_name"),
			Name: o.str("table_name"), Query: o.query("query")}
	default:
		if d.err == nil {
			d.fail(path, "the table reference type %q is not one the statement check knows", t)
		}
		return nil
	}
	o.finish()
	return r
}

// expr decodes an expression; JSON null is a nil Expr.
func (d *decoder) expr(v any, path string) Expr {
	if v == nil || d.err != nil {
		return nil
	}
	o := d.object(v, path)
	if o == nil {
		return nil
	}
	c := ExprCommon{Class: o.str("class"), Type: o.str("type"), Alias: o.str("alias"), Location: o.location(), raw: o.m}
	var e Expr
	switch c.Class {
	case "BETWEEN":
		e = &BetweenExpr{ExprCommon: c, Input: o.expr("input"), Lower: o.expr("lower"), Upper: o.expr("upper")}
	case "CASE":
		ce := &CaseExpr{ExprCommon: c}
		for i, v := range o.list("case_checks") {
			co := d.object(v, fmt.Sprintf("%s[%d]", o.at("case_checks"), i))
			if co == nil {
				break
			}
			ce.Checks = append(ce.Checks, &CaseCheck{When: co.expr("when_expr"), Then: co.expr("then_expr")})
			co.finish()
		}
		ce.Else = o.expr("else_expr")
		e = ce
	case "CAST":
		e = &CastExpr{ExprCommon: c, Child: o.expr("child"), To: o.raw("cast_type"), Try: o.boolean("try_cast")}
	case "COLLATE":
		e = &CollateExpr{ExprCommon: c, Child: o.expr("child"), Collation: o.str("collation")}
	case "COLUMN_REF":
		e = &ColumnRef{ExprCommon: c, Names: o.strs("column_names")}
	case "COMPARISON":
		e = &ComparisonExpr{ExprCommon: c, Left: o.expr("left"), Right: o.expr("right")}
	case "CONJUNCTION":
		e = &ConjunctionExpr{ExprCommon: c, Children: o.exprs("children")}
	case "CONSTANT":
		e = &ConstantExpr{ExprCommon: c, Value: o.raw("value")}
	case "FUNCTION":
		f := &FunctionExpr{ExprCommon: c, Name: o.str("function_name"), Schema: o.str("schema"), Catalog: o.str("catalog"),
			Children: o.exprs("children"), Filter: o.expr("filter"), Distinct: o.boolean("distinct"),
			IsOperator: o.boolean("is_operator"), ExportState: o.boolean("export_state")}
		if v, ok := o.get("order_bys"); ok && v != nil {
			if mo := d.object(v, o.at("order_bys")); mo != nil {
				if t := mo.str("type"); t != "ORDER_MODIFIER" && d.err == nil {
					d.fail(mo.path, "expected an ORDER_MODIFIER, found %q", t)
				}
				f.OrderBy = d.orderModifier(mo)
				mo.finish()
			}
		}
		e = f
	case "LAMBDA":
		e = &LambdaExpr{ExprCommon: c, Params: o.expr("lhs"), Body: o.expr("expr")}
	case "OPERATOR":
		e = &OperatorExpr{ExprCommon: c, Children: o.exprs("children")}
	case "PARAMETER":
		e = &ParameterExpr{ExprCommon: c, Identifier: o.str("identifier")}
	case "POSITIONAL_REFERENCE":
		e = &PositionalRef{ExprCommon: c, Index: o.number("index")}
	case "STAR":
		s := &StarExpr{ExprCommon: c, Relation: o.str("relation_name"), Exclude: o.raw("exclude_list"),
			Columns: o.boolean("columns"), Expr: o.expr("expr"), QualifiedExclude: o.raw("qualified_exclude_list"),
			Rename: o.raw("rename_list")}
		for i, v := range o.list("replace_list") {
			ro := d.object(v, fmt.Sprintf("%s[%d]", o.at("replace_list"), i))
			if ro == nil {
				break
			}
			s.Replace = append(s.Replace, &StarReplace{Name: ro.str("key"), Expr: ro.expr("value")})
			ro.finish()
		}
		e = s
	case "SUBQUERY":
		s := &SubqueryExpr{ExprCommon: c, SubqueryType: o.str("subquery_type"), Child: o.expr("child"), Comparison: o.str("comparison_type")}
		if q, ok := o.get("subquery"); ok {
			s.Query = d.statement(q, o.at("subquery"))
		}
		e = s
	case "WINDOW":
		e = &WindowExpr{ExprCommon: c, Name: o.str("function_name"), Schema: o.str("schema"), Catalog: o.str("catalog"),
			Children: o.exprs("children"), Partitions: o.exprs("partitions"),
			Orders: d.orders(o, "orders"), ArgOrders: d.orders(o, "arg_orders"),
			Start: o.str("start"), End: o.str("end"), StartExpr: o.expr("start_expr"), EndExpr: o.expr("end_expr"),
			OffsetExpr: o.expr("offset_expr"), DefaultExp: o.expr("default_expr"), Filter: o.expr("filter_expr"),
			IgnoreNulls: o.boolean("ignore_nulls"), Distinct: o.boolean("distinct"), Exclude: o.str("exclude_clause")}
	default:
		if d.err == nil {
			d.fail(path, "the expression class %q is not one the statement check knows", c.Class)
		}
		return nil
	}
	o.finish()
	if d.err != nil {
		return nil
	}
	return e
}

// hasExpression reports whether v holds an object with a "class" key, as
// every parsed expression has.
func hasExpression(v any) bool {
	switch n := v.(type) {
	case map[string]any:
		if _, ok := n["class"]; ok {
			return true
		}
		for _, e := range n {
			if hasExpression(e) {
				return true
			}
		}
	case []any:
		for _, e := range n {
			if hasExpression(e) {
				return true
			}
		}
	}
	return false
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
