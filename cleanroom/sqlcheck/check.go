package sqlcheck

import (
	"fmt"
	"slices"
	"strings"
)

// checker walks one statement; the first refusal sticks.
type checker struct {
	datasets []string
	models   []string // the contract's model names: scalar functions it may call
	refusal  *Refusal
	// inTableFunction counts the table-function argument lists the walk is
	// inside, where DuckDB's binder tries SQL value keywords harder.
	inTableFunction int
}

// scope is the CTEs visible at a point of the tree, innermost first.
type scope struct {
	name   string
	parent *scope
}

func (s *scope) with(name string) *scope { return &scope{name: name, parent: s} }

func (s *scope) has(name string) bool {
	for ; s != nil; s = s.parent {
		if equalFold(s.name, name) {
			return true
		}
	}
	return false
}

// refuse records the first refusal: what the algorithm does, where, and
// why that breaks the rule (a clause starting with ", " or "; ").
func (c *checker) refuse(rule Rule, construct string, loc Location, what, why string) {
	if c.refusal == nil {
		c.refusal = &Refusal{Rule: rule, Construct: construct, Location: loc, Reason: what + at(loc) + why}
	}
}

// at is " (at byte n)" for a known location.
func at(loc Location) string {
	if loc < 0 {
		return ""
	}
	return fmt.Sprintf(" (at byte %d)", loc)
}

func (c *checker) statement(st *Statement, sc *scope) {
	if st != nil {
		c.query(st.Node, sc)
	}
}

func (c *checker) query(q QueryNode, sc *scope) {
	if c.refusal != nil {
		return
	}
	switch n := q.(type) {
	case nil:
	case *SelectNode:
		sc = c.ctes(n.CTEs, sc)
		c.from(n.From, sc)
		c.exprs(n.SelectList, sc)
		c.expr(n.Where, sc)
		c.exprs(n.GroupBy, sc)
		c.expr(n.Having, sc)
		c.expr(n.Qualify, sc)
		if n.Sample != nil {
			c.refuseSample(NoLocation)
		}
		c.modifiers(n.Modifiers, sc)
	case *SetOperationNode:
		sc = c.ctes(n.CTEs, sc)
		c.query(n.Left, sc)
		c.query(n.Right, sc)
		c.modifiers(n.Modifiers, sc)
	case *RecursiveCTENode:
		// DuckDB's parser makes one only as the body of a WITH RECURSIVE
		// CTE, which ctes checks.
		c.refuse(RuleConstruct, "recursive CTE "+n.Name, NoLocation,
			"the algorithm has a recursive CTE body ("+n.Name+") outside a WITH clause", ", which the statement check does not expect")
	default:
		c.refuse(RuleUnreadable, fmt.Sprintf("%T", q), NoLocation, fmt.Sprintf("the statement check does not know the query node %T", q), "")
	}
}

// ctes checks a WITH clause and returns the scope of its query node: each
// CTE's body sees the CTEs before it (and a recursive CTE's recursive part
// sees the CTE itself); the node sees them all.
func (c *checker) ctes(list []*CTE, sc *scope) *scope {
	for _, cte := range list {
		if cte == nil {
			continue
		}
		c.reserved("the CTE", cte.Name, NoLocation)
		c.reservedList("a CTE column alias", cte.Aliases, NoLocation)
		if cte.Query != nil {
			if r, ok := cte.Query.Node.(*RecursiveCTENode); ok {
				if !equalFold(r.Name, cte.Name) {
					c.refuse(RuleConstruct, "recursive CTE "+cte.Name, NoLocation,
						fmt.Sprintf("the algorithm's recursive CTE %s has a body that names itself %s", cte.Name, r.Name), ", which the statement check does not expect")
					return sc
				}
				inner := c.ctes(r.CTEs, sc)
				c.query(r.Left, inner)
				self := inner.with(cte.Name)
				c.query(r.Right, self)
				c.exprs(r.KeyTargets, self)
				c.modifiers(r.Modifiers, self)
			} else {
				c.statement(cte.Query, sc)
			}
		}
		sc = sc.with(cte.Name)
		c.exprs(cte.KeyTargets, sc)
	}
	return sc
}

func (c *checker) modifiers(ms []Modifier, sc *scope) {
	for _, m := range ms {
		switch m := m.(type) {
		case *OrderModifier:
			c.orders(m.Orders, sc)
		case *LimitModifier:
			c.expr(m.Limit, sc)
			c.expr(m.Offset, sc)
		case *DistinctModifier:
			c.exprs(m.On, sc)
		}
	}
}

func (c *checker) orders(os []*OrderBy, sc *scope) {
	for _, o := range os {
		if o != nil {
			c.expr(o.Expr, sc)
		}
	}
}

func (c *checker) refuseSample(loc Location) {
	c.refuse(RuleConstruct, "USING SAMPLE", loc, "the algorithm samples rows (USING SAMPLE or TABLESAMPLE)",
		"; sampling is random, and an algorithm's result must depend only on the datasets, its text and its parameters")
}

// from checks one item of a FROM clause.
func (c *checker) from(t TableRef, sc *scope) {
	if c.refusal != nil || t == nil {
		return
	}
	common := t.Ref()
	c.reserved("the table alias", common.Alias, common.Location)
	switch r := t.(type) {
	case *BaseTable:
		c.reservedList("a column alias", r.ColumnAliases, common.Location)
	case *SubqueryRef:
		c.reservedList("a column alias", r.ColumnAliases, common.Location)
	case *TableFunctionRef:
		c.reservedList("a column alias", r.ColumnAliases, common.Location)
	}
	if common.Sample != nil {
		c.refuseSample(common.Location)
		return
	}
	switch r := t.(type) {
	case *BaseTable:
		c.relation(r, sc)
	case *JoinRef:
		c.from(r.Left, sc)
		c.from(r.Right, sc)
		c.expr(r.Condition, sc)
		c.exprs(r.DuplicateEliminated, sc)
	case *SubqueryRef:
		c.statement(r.Query, sc)
	case *TableFunctionRef:
		if r.Function == nil {
			c.refuse(RuleUnreadable, "table function", common.Location, "the algorithm has a table function without a call", "")
			return
		}
		f := r.Function
		c.function(f.Name, f.Schema, f.Catalog, f.Location, len(f.Children), true)
		c.inTableFunction++
		c.exprs(f.Children, sc)
		c.expr(f.Filter, sc)
		if f.OrderBy != nil {
			c.orders(f.OrderBy.Orders, sc)
		}
		c.inTableFunction--
	case *EmptyRef:
	case *ValuesRef:
		for _, row := range r.Rows {
			c.exprs(row, sc)
		}
	case *PivotRef:
		c.from(r.Source, sc)
		c.exprs(r.Aggregates, sc)
		for _, p := range r.Pivots {
			if p == nil {
				continue
			}
			c.exprs(p.Exprs, sc)
			for _, e := range p.Entries {
				if e != nil {
					c.expr(e.Star, sc)
				}
			}
		}
	case *ShowRef:
		word := map[string]string{"DESCRIBE": "DESCRIBE", "SUMMARY": "SUMMARIZE", "SHOW_UNQUALIFIED": "SHOW"}[r.ShowType]
		if word == "" {
			word = r.ShowType
		}
		c.refuse(RuleConstruct, word, common.Location, "the algorithm uses "+word,
			", which reads DuckDB's catalog; an algorithm may read only "+c.datasetList()+" and the CTEs it defines")
	default:
		c.refuse(RuleUnreadable, fmt.Sprintf("%T", t), common.Location, fmt.Sprintf("the statement check does not know the table reference %T", t), "")
	}
}

// relation checks a base table reference.
func (c *checker) relation(r *BaseTable, sc *scope) {
	name := qualified(r.Catalog, r.Schema, r.Name)
	rule := "an algorithm may read only " + c.datasetList() + ", named without a schema, and the CTEs it defines where they are in scope"
	switch {
	case r.At != nil:
		c.refuse(RuleConstruct, name+" AT (...)", r.Location, fmt.Sprintf("the algorithm reads %s AT (%s => ...)", name, r.At.Unit),
			", a past version of a table; "+rule)
	case r.Catalog != "" || r.Schema != "":
		c.refuse(RuleRelation, name, r.Location, "the algorithm reads "+name, ", a relation qualified by a catalog or schema; "+rule)
	case sc.has(r.Name):
	case c.isDataset(r.Name):
	default:
		c.refuse(RuleRelation, name, r.Location, "the algorithm reads "+name, ", which is neither one of the contract's datasets nor a CTE in scope there; "+rule)
	}
}

func (c *checker) isDataset(name string) bool {
	for _, d := range c.datasets {
		if equalFold(d, name) {
			return true
		}
	}
	return false
}

// function checks a call of name (in FROM when table) with nargs
// arguments.
func (c *checker) function(name, schema, catalog string, loc Location, nargs int, table bool) {
	full := qualified(catalog, schema, name)
	kind, list := "function", exprFunctions
	if table {
		kind, list = "table function", tableFunctions
	}
	rule := RuleFunction
	if table {
		rule = RuleTableFunction
	}
	calls := "the algorithm calls " + name
	if table {
		calls = "the algorithm calls the table function " + name
	}
	if catalog != "" || (schema != "" && !equalFold(schema, "main")) {
		c.refuse(rule, full, loc, fmt.Sprintf("the algorithm calls the %s %s", kind, full),
			" by a qualified name; an algorithm calls functions by their bare names, and only those the statement check allows")
		return
	}
	if !table && catalog == "" && schema == "" && slices.ContainsFunc(c.models, func(m string) bool { return equalFold(m, name) }) {
		return // one of the contract's models (docs/models.md): DuckDB's binder checks its arguments
	}
	v, known := list[asciiLower(name)]
	switch {
	case !known && table:
		c.refuse(rule, name, loc, calls, ", which is not one the statement check knows"+onlyTables())
	case !known:
		c.refuse(rule, name, loc, calls, ", which is not on the statement check's list of functions an algorithm may call")
	case !v.Allowed && table:
		c.refuse(rule, name, loc, calls, ", which "+v.Note+onlyTables())
	case !v.Allowed:
		c.refuse(rule, name, loc, calls, ", which "+v.Note+"; an algorithm may call only the functions on the statement check's list")
	default:
		if why := arityRule(asciiLower(name), nargs, table); why != "" {
			c.refuse(rule, name, loc, fmt.Sprintf("the algorithm calls %s with %d argument(s)", name, nargs), ", which "+why)
		}
	}
}

func onlyTables() string {
	return "; the only table functions an algorithm may call are " + allowedTableFunctions()
}

func (c *checker) exprs(es []Expr, sc *scope) {
	for _, e := range es {
		c.expr(e, sc)
	}
}

// expr checks one expression and everything under it.
func (c *checker) expr(e Expr, sc *scope) {
	if c.refusal != nil || e == nil {
		return
	}
	c.reserved("the alias", e.Node().Alias, e.Node().Location)
	switch x := e.(type) {
	case *BetweenExpr:
		c.expr(x.Input, sc)
		c.expr(x.Lower, sc)
		c.expr(x.Upper, sc)
	case *CaseExpr:
		for _, ck := range x.Checks {
			if ck != nil {
				c.expr(ck.When, sc)
				c.expr(ck.Then, sc)
			}
		}
		c.expr(x.Else, sc)
	case *CastExpr:
		c.expr(x.Child, sc)
	case *CollateExpr:
		c.expr(x.Child, sc)
	case *ColumnRef:
		c.columnRef(x)
	case *ComparisonExpr:
		c.expr(x.Left, sc)
		c.expr(x.Right, sc)
	case *ConjunctionExpr:
		c.exprs(x.Children, sc)
	case *ConstantExpr:
	case *FunctionExpr:
		c.function(x.Name, x.Schema, x.Catalog, x.Location, len(x.Children), false)
		c.exprs(x.Children, sc)
		c.expr(x.Filter, sc)
		if x.OrderBy != nil {
			c.orders(x.OrderBy.Orders, sc)
		}
	case *LambdaExpr:
		c.expr(x.Params, sc)
		c.expr(x.Body, sc)
	case *OperatorExpr:
		c.exprs(x.Children, sc)
	case *ParameterExpr:
	case *PositionalRef:
	case *StarExpr:
		for _, r := range x.Replace {
			if r != nil {
				c.expr(r.Expr, sc)
			}
		}
		c.expr(x.Expr, sc)
	case *SubqueryExpr:
		c.expr(x.Child, sc)
		c.statement(x.Query, sc)
	case *WindowExpr:
		c.function(x.Name, x.Schema, x.Catalog, x.Location, len(x.Children), false)
		c.exprs(x.Children, sc)
		c.exprs(x.Partitions, sc)
		c.orders(x.Orders, sc)
		c.orders(x.ArgOrders, sc)
		c.expr(x.StartExpr, sc)
		c.expr(x.EndExpr, sc)
		c.expr(x.OffsetExpr, sc)
		c.expr(x.DefaultExp, sc)
		c.expr(x.Filter, sc)
	default:
		c.refuse(RuleUnreadable, fmt.Sprintf("%T", e), NoLocation, fmt.Sprintf("the statement check does not know the expression %T", e), "")
	}
}

// valueKeywords are the names DuckDB's binder turns into a function call
// when no column of that name is in scope (GetSQLValueFunctionName in
// DuckDB's bind_columnref_expression.cpp), and the function each calls.
var valueKeywords = map[string]string{
	"current_catalog":   "current_catalog",
	"current_date":      "current_date",
	"current_role":      "current_role",
	"current_schema":    "current_schema",
	"current_time":      "get_current_time",
	"current_timestamp": "get_current_timestamp",
	"current_user":      "current_user",
	"localtime":         "current_localtime",
	"localtimestamp":    "current_localtimestamp",
	"session_user":      "session_user",
	"user":              "user",
}

// columnRef refuses a column reference the binder may read as a call of a
// function the check does not allow: a bare keyword, one qualified by
// "alias" (DuckDB's name for the select list's aliases), and any inside a
// table function's arguments, where the binder also tries the keyword
// of a qualified name.
func (c *checker) columnRef(x *ColumnRef) {
	if len(x.Names) == 0 {
		return
	}
	c.reservedList("the name", x.Names, x.Location)
	last := x.Names[len(x.Names)-1]
	fn, ok := valueKeywords[asciiLower(last)]
	if !ok {
		return
	}
	if v := exprFunctions[fn]; v.Allowed {
		return
	}
	if len(x.Names) == 1 || (len(x.Names) == 2 && equalFold(x.Names[0], "alias")) || c.inTableFunction > 0 {
		name := strings.Join(x.Names, ".")
		c.refuse(RuleKeyword, name, x.Location, "the algorithm names "+name,
			fmt.Sprintf(", which DuckDB reads as a call of %s() when no column of that name is in scope, and %s() %s; a column so named must be qualified by its table (t.%s)",
				fn, fn, exprFunctions[fn].Note, last))
	}
}

// ReservedPrefix starts the names the engine gives the columns it adds to
// an algorithm (Analyze); an algorithm may not use a name starting with it,
// in any case.
const ReservedPrefix = "_cleanroom"

// IsReserved reports whether name starts with ReservedPrefix, ignoring
// ASCII case.
func IsReserved(name string) bool {
	return len(name) >= len(ReservedPrefix) && equalFold(name[:len(ReservedPrefix)], ReservedPrefix)
}

// reserved refuses a name that starts with ReservedPrefix.
func (c *checker) reserved(what, name string, loc Location) {
	if IsReserved(name) {
		c.refuse(RuleReserved, name, loc, "the algorithm uses "+what+" "+name,
			", and names starting with "+ReservedPrefix+" are reserved for the columns the engine adds to a query; rename it")
	}
}

func (c *checker) reservedList(what string, names []string, loc Location) {
	for _, n := range names {
		c.reserved(what, n, loc)
	}
}

// qualified joins a catalog, schema and name with dots, omitting the empty
// parts.
func qualified(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

// equalFold compares names as DuckDB does: without case, for ASCII
// letters only.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerByte(a[i]) != lowerByte(b[i]) {
			return false
		}
	}
	return true
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerByte(b[j])
			}
			return string(b)
		}
	}
	return s
}

func lowerByte(b byte) byte {
	if b >= 'A' && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}
