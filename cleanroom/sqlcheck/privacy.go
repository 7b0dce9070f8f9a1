package sqlcheck

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Dataset is what the privacy analysis knows of one of the contract's
// datasets.
type Dataset struct {
	Name    string
	Columns []Column
	// PrivacyUnit is the column that identifies a person; "" for a
	// dataset that is not protected.
	PrivacyUnit string
	// Dimensions, when not nil, are the only columns a group key of the
	// result may derive from.
	Dimensions []string
	// Aggregations, when not nil, lists for each column the aggregate
	// functions that may aggregate it (lower-case names); a column not
	// listed may not be aggregated. When nil, every column but the
	// privacy unit may be aggregated by the AggregateSummary functions.
	Aggregations map[string][]string
}

// Column is one column of a dataset: its name and its contract type.
type Column struct{ Name, Type string }

// Analysis is what Analyze found in an algorithm that mode aggregate
// accepts, and the rewrite that makes the engine count privacy units.
type Analysis struct {
	// Protected lists the protected datasets the algorithm reads, each
	// once, sorted. When it is empty, nothing is rewritten: the result
	// holds nothing of a protected dataset.
	Protected []string
	// Counts are the columns the rewrite appends to the result, in order:
	// each counts the distinct privacy units behind a result row, of one
	// reading of a protected dataset (or, for an aggregate with a FILTER,
	// of the rows that aggregate reads). A row is released only when every
	// count is at least k.
	Counts []Count
	// Limit and Offset are the result's LIMIT and OFFSET, which the
	// rewrite removes from the query: the engine applies them to the rows
	// left after suppression. Limit is -1 when there is none.
	Limit, Offset int64

	st    *Statement
	edits map[*SelectNode]*nodeEdit
}

// Count is one column of privacy-unit counts the rewrite adds.
type Count struct {
	// Column is its name in the rewritten query's result.
	Column string
	// Dataset is the protected dataset whose units it counts.
	Dataset string
	// Filter is the output column of the aggregate whose FILTER the count
	// follows, or "" for a count of the whole group.
	Filter string
}

// Hidden columns: the rewrite names what it adds with ReservedPrefix, which
// no algorithm may use, so they cannot meet a name of the algorithm.
const (
	unitColumnPrefix  = ReservedPrefix + "_unit_"  // + relation "_" carrier
	countColumnPrefix = ReservedPrefix + "_units_" // + index
)

// Analyze applies the rules of mode aggregate (SPEC §7.1) to one
// statement that Check accepted, over the contract's datasets, and returns
// how the engine must rewrite it, or the *Refusal of the first rule it
// breaks. The rules, and what each refusal names, are in docs/privacy.md:
//
//   - RulePrivacyUnit: a privacy unit appears only as a join key (an
//     equality with another relation's column), inside COUNT(DISTINCT …),
//     and carried unchanged through a CTE or subquery — never in a filter,
//     an expression, a group key of the result, an ORDER BY or an output.
//     A column a join equates with a privacy unit is one too.
//   - RuleAggregation: a result that reads a protected dataset is an
//     aggregation (GROUP BY, aggregates, or SELECT DISTINCT), whose output
//     columns are group keys and aggregates.
//   - RuleDimensions: where a dataset lists dimensions, the result's group
//     keys derive only from them.
//   - RuleAggregateFunctions: an aggregate that returns a member's value
//     aggregates a protected column only where the contract allows it; a
//     dataset that lists its aggregations allows only those.
//   - RuleAnalysable: what the analysis cannot follow soundly over
//     protected data is refused: window functions, set operations,
//     GROUPING SETS/ROLLUP/CUBE, a CTE or subquery that aggregates without
//     grouping by every privacy unit it reads, lateral joins, subqueries
//     used as expressions that read a protected dataset, and more.
//
// Analyze never changes st; Rewritten returns the edited copy.
func Analyze(st *Statement, datasets []Dataset) (*Analysis, error) {
	a := &analyzer{datasets: datasets, edits: map[*SelectNode]*nodeEdit{}, occDataset: map[int]string{}}
	res := &Analysis{st: st, Limit: -1, edits: a.edits}
	if st == nil || st.Node == nil {
		return nil, unreadable("", "no statement")
	}
	a.result = res
	a.query(st.Node, nil, nil, roleResult)
	if a.refusal != nil {
		return nil, a.refusal
	}
	slices.Sort(res.Protected)
	res.Protected = slices.Compact(res.Protected)
	return res, nil
}

// role is what a query node is to the analysis.
type role int

const (
	roleResult   role = iota + 1 // the statement's query: its rows are the result
	roleRelation                 // a CTE body or a subquery in FROM
	roleExpr                     // a subquery used as an expression
)

type analyzer struct {
	datasets []Dataset
	refusal  *Refusal
	result   *Analysis
	edits    map[*SelectNode]*nodeEdit
	occ      int // occurrences of protected datasets (readings)
	// occDataset names the dataset of each occurrence.
	occDataset map[int]string
	// outerRefs collects the values of outer columns a subquery reads.
	outerRefs []val
	inst      int      // relation instances
	def       int      // relation definitions (CTE bodies, subqueries)
	inExpr    int      // depth of subqueries used as expressions
	inSetOp   []string // the set operations and recursive CTEs the analysis is inside
}

func (a *analyzer) refuse(rule Rule, construct string, loc Location, what, why string) {
	if a.refusal == nil {
		a.refusal = &Refusal{Rule: rule, Construct: construct, Location: loc,
			Reason: what + at(loc) + why + " (rule: " + rule.String() + " of mode aggregate)"}
	}
}

func (a *analyzer) dataset(name string) *Dataset {
	for i := range a.datasets {
		if equalFold(a.datasets[i].Name, name) {
			return &a.datasets[i]
		}
	}
	return nil
}

// source is a protected dataset column a value derives from.
type source struct{ dataset, column string }

// column is one column of a relation.
type column struct {
	name   string // "" when DuckDB would make one up from the expression
	unit   int    // the occurrence whose privacy unit this is, or -1
	srcs   []source
	hidden bool // a column the rewrite adds
	// exact: the column holds its reading's privacy unit itself, row for
	// row (not a column a join equates with it, which an outer join can
	// leave NULL).
	exact bool
}

// carrier is a reading of a protected dataset seen through a relation:
// ref names, in the enclosing query node, the column that carries its
// privacy unit.
type carrier struct {
	dataset string
	occ     int
	ref     []string
}

// shape is what a query node yields as a relation: its columns and the
// readings of protected datasets behind its rows, with the (hidden)
// column that carries each one's privacy unit.
type shape struct {
	cols     []column
	known    bool // every column's name is known
	carriers []shapeCarrier
}

type shapeCarrier struct {
	dataset string
	occ     int
	column  string
	same    int // an earlier carrier whose unit equals this one's in every row, or -1
}

// relation is a relation instance in a FROM clause.
type relation struct {
	qual      string // its alias, or table name; "" when it has none
	inst      int
	cols      []column
	known     bool
	carriers  []carrier
	base      *Dataset // a dataset read directly
	what      string   // for messages: "impressions", "the CTE t", "a subquery"
	protected bool
	same      [][2]int // occurrences whose units are equal in every row
}

// mergedColumn is a column a USING or NATURAL join merges.
type mergedColumn struct {
	name string
	val  val
}

// nameScope is what names resolve against in one query node.
type nameScope struct {
	rels []*relation
	// lateralRels are FROM items before the current join, which a lateral
	// subquery or table function inside it sees.
	lateralRels []*relation
	merged      []mergedColumn
	outer       *nameScope // enclosing scope: correlated (expression subquery) or lateral
	lateral     bool       // outer is the FROM siblings of a lateral subquery
	// outerAgg: the enclosing query node is an aggregation and the
	// subquery sits outside its aggregates.
	outerAgg bool
	lambdas  []lambdaParam
	aliases  []selectAlias
	uf       unionFind
	// same joins the readings whose privacy units are equal in every row
	// (an inner join or WHERE equality of two units of one type), which
	// the rewrite may count once.
	same unionFind
	ctes *cteScope // the CTEs in scope (for subqueries used as expressions)
}

type lambdaParam struct {
	name string
	val  val
}

type selectAlias struct {
	name string
	val  val
}

// val is what the analysis knows of an expression's value.
type val struct {
	unit    int      // the occurrence whose privacy unit it is (a bare column reference), or -1
	via     string   // when the unit comes through a join equality: the column it equates
	srcs    []source // protected columns it derives from
	bare    bool     // a bare column reference
	id      string   // the column's identity (bare references)
	inst    int      // the relation instance of a bare reference
	agg     bool     // it holds an aggregate
	name    string   // the referenced column's name (bare references)
	dataset string   // the dataset of the unit (for messages)
	ref     []string // the column reference's names, when it names an input column of its own node
}

func noVal() val { return val{unit: -1, inst: -1} }

func (v val) protected() bool { return v.unit >= 0 || len(v.srcs) > 0 }

func mergeSrcs(a, b []source) []source {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// unionFind joins column identities a join or WHERE equality makes equal.
type unionFind map[string]string

func (u unionFind) find(x string) string {
	for {
		p, ok := u[x]
		if !ok || p == x {
			return x
		}
		if gp, ok := u[p]; ok {
			u[x] = gp
		}
		x = p
	}
}

func (u unionFind) union(x, y string) {
	rx, ry := u.find(x), u.find(y)
	if rx != ry {
		u[rx] = ry
	}
}

// nodeEdit is the rewrite of one SELECT node.
type nodeEdit struct {
	appendItems []map[string]any
	dropLimit   bool
	groupAll    bool // DISTINCT becomes GROUP BY ALL
}

// cteScope is the CTEs visible at a point, innermost first.
type cteScope struct {
	name   string
	shape  *shape // nil for a recursive CTE's own name
	parent *cteScope
}

func (c *cteScope) find(name string) (*cteScope, bool) {
	for ; c != nil; c = c.parent {
		if equalFold(c.name, name) {
			return c, true
		}
	}
	return nil, false
}

// qctx is the context a query node is analysed in.
type qctx struct {
	ctes  *cteScope
	outer *nameScope
	role  role
}

func (a *analyzer) query(q QueryNode, ctes *cteScope, outer *nameScope, r role) *shape {
	if a.refusal != nil {
		return &shape{}
	}
	switch n := q.(type) {
	case *SelectNode:
		return a.selectNode(n, &qctx{ctes: ctes, outer: outer, role: r})
	case *SetOperationNode:
		ctes = a.ctes(n.CTEs, ctes, outer)
		a.inSetOp = append(a.inSetOp, setOpName(n))
		left := a.query(n.Left, ctes, outer, roleRelation)
		a.query(n.Right, ctes, outer, roleRelation)
		a.inSetOp = a.inSetOp[:len(a.inSetOp)-1]
		return &shape{cols: left.cols, known: left.known}
	case *RecursiveCTENode:
		a.inSetOp = append(a.inSetOp, "a recursive CTE")
		a.query(n.Left, ctes, outer, roleRelation)
		a.query(n.Right, ctes, outer, roleRelation)
		a.inSetOp = a.inSetOp[:len(a.inSetOp)-1]
		return &shape{}
	}
	a.refuse(RuleUnreadable, fmt.Sprintf("%T", q), NoLocation, fmt.Sprintf("the privacy analysis does not know the query node %T", q), "")
	return &shape{}
}

func setOpName(n *SetOperationNode) string {
	op := strings.ReplaceAll(n.Op, "_", " ")
	if n.All {
		op += " ALL"
	}
	return op
}

// ctes analyses a WITH clause and returns the scope of its node.
func (a *analyzer) ctes(list []*CTE, ctes *cteScope, outer *nameScope) *cteScope {
	for _, cte := range list {
		if cte == nil || a.refusal != nil {
			continue
		}
		var sh *shape
		if cte.Query != nil {
			if r, ok := cte.Query.Node.(*RecursiveCTENode); ok {
				inner := a.ctes(r.CTEs, ctes, outer)
				a.inSetOp = append(a.inSetOp, "the recursive CTE "+cte.Name)
				left := a.query(r.Left, inner, outer, roleRelation)
				a.query(r.Right, &cteScope{name: cte.Name, shape: &shape{cols: left.cols, known: left.known}, parent: inner}, outer, roleRelation)
				a.inSetOp = a.inSetOp[:len(a.inSetOp)-1]
				sh = &shape{cols: left.cols, known: left.known}
			} else {
				sh = a.query(cte.Query.Node, ctes, outer, roleRelation)
			}
		}
		if sh == nil {
			sh = &shape{}
		}
		if len(cte.Aliases) > 0 {
			sh = renamed(sh, cte.Aliases)
		}
		ctes = &cteScope{name: cte.Name, shape: sh, parent: ctes}
	}
	return ctes
}

// renamed returns a shape whose first columns take the given names.
func renamed(sh *shape, names []string) *shape {
	out := *sh
	out.cols = slices.Clone(sh.cols)
	for i, n := range names {
		if i < len(out.cols) && !out.cols[i].hidden {
			out.cols[i].name = n
		}
	}
	if len(names) >= countVisible(sh.cols) {
		out.known = true
	}
	return &out
}

func countVisible(cols []column) int {
	n := 0
	for _, c := range cols {
		if !c.hidden {
			n++
		}
	}
	return n
}

// join is a join of the FROM clause, kept for its condition.
type join struct {
	ref  *JoinRef
	rels []*relation // the relations its condition sees
}

func (a *analyzer) selectNode(n *SelectNode, q *qctx) *shape {
	ctes := a.ctes(n.CTEs, q.ctes, q.outer)
	sc := &nameScope{outer: q.outer, uf: unionFind{}, same: unionFind{}, ctes: ctes}
	var joins []*join
	a.from(n.From, sc, &joins, ctes, q)
	if a.refusal != nil {
		return &shape{}
	}
	protected := false
	var carriers []carrier
	for _, r := range sc.rels {
		if r.protected {
			protected = true
		}
		carriers = append(carriers, r.carriers...)
	}
	what := "the query"
	switch q.role {
	case roleRelation:
		what = "a CTE or subquery"
	case roleExpr:
		what = "a subquery"
	}

	// The equalities of joins and of the WHERE clause, before anything
	// is used: a column they equate with a privacy unit is one too.
	for _, j := range joins {
		a.equalities(j.ref.Condition, &nameScope{rels: j.rels, outer: sc.outer, uf: sc.uf, same: sc.same}, j.ref.JoinType == "INNER")
	}
	a.equalities(n.Where, sc, true)
	for _, j := range joins {
		a.condition(j.ref.Condition, &ectx{sc: &nameScope{rels: j.rels, merged: sc.merged, outer: sc.outer, uf: sc.uf, ctes: ctes},
			clause: "a join condition", filter: true})
	}

	aggregating := len(n.GroupBy) > 0 || n.AggregateHandling == "FORCE_AGGREGATES" ||
		hasAggregate(n.SelectList) || hasAggregate([]Expr{n.Having}) || hasAggregate(orderExprs(n.Modifiers))
	var distinct *DistinctModifier
	var limit *LimitModifier
	for _, m := range n.Modifiers {
		switch m := m.(type) {
		case *DistinctModifier:
			distinct = m
		case *LimitModifier:
			limit = m
		}
	}
	if protected {
		switch {
		case n.AggregateHandling != "STANDARD_HANDLING" && n.AggregateHandling != "FORCE_AGGREGATES":
			a.refuse(RuleAnalysable, n.AggregateHandling, NoLocation, what+" has aggregate handling "+n.AggregateHandling, ", which the analysis does not know")
		case len(n.GroupBy) > 0 && !plainGrouping(n.GroupingSets, len(n.GroupBy)):
			a.refuse(RuleAnalysable, "GROUPING SETS", n.GroupBy[0].Node().Location, what+" groups with GROUPING SETS, ROLLUP or CUBE over a protected dataset",
				": a subtotal row aggregates several groups, so subtracting the released groups from it would reveal the suppressed ones; group by one set of keys")
		case n.Qualify != nil:
			a.refuse(RuleAnalysable, "QUALIFY", n.Qualify.Node().Location, what+" filters with QUALIFY over a protected dataset",
				": QUALIFY filters on window functions, which compute a row's value from other persons' rows")
		case distinct != nil && len(distinct.On) > 0:
			a.refuse(RuleAnalysable, "DISTINCT ON", distinct.On[0].Node().Location, what+" uses DISTINCT ON over a protected dataset",
				": it keeps one row of each set by its order, which the analysis cannot follow; use GROUP BY")
		case distinct != nil && aggregating && q.role == roleResult:
			a.refuse(RuleAnalysable, "DISTINCT", NoLocation, "the query applies DISTINCT to the rows of an aggregation over a protected dataset",
				": it would merge groups whose persons the engine counts apart; remove DISTINCT (GROUP BY already makes the rows distinct)")
		}
		if w := findWindow(append(append(append(slices.Clone(n.SelectList), n.Having, n.Where), orderExprs(n.Modifiers)...), n.GroupBy...)); w != nil {
			a.refuse(RuleAnalysable, w.Name+" OVER (...)", w.Location, fmt.Sprintf("%s calls the window function %s over a protected dataset", what, w.Name),
				": a window computes a row's value from other rows — other persons', or groups the engine suppresses — so the analysis refuses it")
		}
		if q.role == roleResult && !aggregating && distinct == nil {
			a.refuse(RuleAggregation, firstProtectedName(sc), NoLocation,
				"the query returns rows of the protected dataset "+strings.Join(protectedNames(sc), ", ")+" without aggregating them",
				": in mode aggregate a query over a protected dataset must be an aggregation — GROUP BY keys and aggregates such as count(*), count(DISTINCT unit), sum, avg — so that each released row stands for a group the engine counts")
		}
	}
	if a.refusal != nil {
		return &shape{}
	}

	// In a result that aggregates (or a DISTINCT result, read as GROUP BY
	// ALL), a column outside the aggregates is a group key.
	keyed := q.role == roleResult && protected && (aggregating || distinct != nil)
	perUnit := q.role == roleRelation && protected && (aggregating || distinct != nil)

	// The result's aggregates with a FILTER, which the rewrite counts, and
	// the readings it counts itself.
	var filtered []*FunctionExpr
	var countedUnits []int
	collect, counted := (*[]*FunctionExpr)(nil), (*[]int)(nil)
	if keyed {
		collect, counted = &filtered, &countedUnits
	}

	// The select list, expanding stars.
	var cols []column
	var items []val
	for _, e := range n.SelectList {
		if a.refusal != nil {
			return &shape{}
		}
		if st, ok := e.(*StarExpr); ok && !st.Columns {
			expanded := a.star(st, sc, protected)
			for _, c := range expanded {
				v := noVal()
				v.unit, v.srcs, v.bare, v.name = c.unit, c.srcs, true, c.name
				if c.unit >= 0 {
					v.dataset = a.occDataset[c.unit]
					if c.exact {
						v.id = "u" + strconv.Itoa(c.unit)
					}
				}
				if keyed {
					a.keyUse(v, st.Location, "an output column")
				}
				cols = append(cols, column{name: c.name, unit: c.unit, srcs: c.srcs, hidden: c.hidden, exact: c.exact})
				items = append(items, v)
			}
			continue
		}
		ec := &ectx{sc: sc, clause: "the select list", keyed: keyed, allowAlias: true, collect: collect, counted: counted}
		v := a.expr(e, ec)
		switch {
		case v.unit >= 0 && q.role == roleRelation:
			// carried
		case v.unit >= 0 && q.role == roleExpr:
			a.unitUse(v, e.Node().Location, "as the value of a subquery")
		case v.unit >= 0:
			a.unitUse(v, e.Node().Location, "as an output column")
		}
		name := e.Node().Alias
		if name == "" {
			if cr, ok := e.(*ColumnRef); ok && len(cr.Names) > 0 {
				name = cr.Names[len(cr.Names)-1]
			}
		}
		c := column{name: name, unit: -1, srcs: v.srcs}
		if v.unit >= 0 {
			c.unit = v.unit
			c.exact = v.id == "u"+strconv.Itoa(v.unit)
		}
		cols = append(cols, c)
		items = append(items, v)
		if e.Node().Alias != "" {
			sc.aliases = append(sc.aliases, selectAlias{name: e.Node().Alias, val: v})
		}
	}

	// WHERE.
	a.condition(n.Where, &ectx{sc: sc, clause: "a filter (WHERE)", filter: true, allowAlias: true})

	// GROUP BY.
	var keys []val
	if n.AggregateHandling == "FORCE_AGGREGATES" || (distinct != nil && !aggregating) {
		for i, v := range items {
			if !v.agg {
				keys = append(keys, v)
				if keyed {
					a.keyUse(v, n.SelectList[min(i, len(n.SelectList)-1)].Node().Location, "a group key")
				}
			}
		}
	}
	for _, g := range n.GroupBy {
		if a.refusal != nil {
			return &shape{}
		}
		v := noVal()
		if pos, ok := position(g); ok {
			if pos >= 1 && pos <= len(items) {
				v = items[pos-1]
			}
		} else {
			v = a.expr(g, &ectx{sc: sc, clause: "GROUP BY", allowAlias: true})
		}
		switch {
		case keyed:
			a.keyUse(v, g.Node().Location, "a group key")
		case v.unit >= 0 && !perUnit:
			a.unitUse(v, g.Node().Location, "as a group key")
		}
		keys = append(keys, v)
	}

	// HAVING and ORDER BY.
	a.condition(n.Having, &ectx{sc: sc, clause: "HAVING", keyed: keyed, filter: true, allowAlias: true, aliasUnion: true, collect: collect, counted: counted})
	for _, m := range n.Modifiers {
		switch m := m.(type) {
		case *OrderModifier:
			for _, o := range m.Orders {
				if o == nil || a.refusal != nil {
					continue
				}
				if _, ok := position(o.Expr); ok {
					continue // an output column, checked above
				}
				if st, ok := o.Expr.(*StarExpr); ok && st.Relation == "" && st.Expr == nil && len(st.Replace) == 0 {
					continue // ORDER BY ALL: the output columns
				}
				v := a.expr(o.Expr, &ectx{sc: sc, clause: "ORDER BY", keyed: keyed, allowAlias: true, aliasUnion: true, collect: collect, counted: counted})
				if v.unit >= 0 {
					a.unitUse(v, o.Expr.Node().Location, "in ORDER BY")
				}
			}
		case *LimitModifier:
			if m.Percent && protected {
				a.refuse(RuleAnalysable, "LIMIT %", NoLocation, what+" limits a protected result by a percentage", ", which the analysis does not follow; give a number of rows")
			}
			a.expr(m.Limit, &ectx{sc: &nameScope{}, clause: "LIMIT"})
			a.expr(m.Offset, &ectx{sc: &nameScope{}, clause: "OFFSET"})
		case *DistinctModifier:
			for _, e := range m.On {
				a.expr(e, &ectx{sc: sc, clause: "DISTINCT ON"})
			}
		}
	}
	if a.refusal != nil {
		return &shape{}
	}

	// Correlated references and lateral joins were checked as they
	// resolved; what remains is each role's own rule.
	switch {
	case q.role == roleResult && protected:
		a.rewriteResult(n, sc, carriers, countedUnits, filtered, limit, distinct != nil && !aggregating)
		return &shape{}
	case perUnit:
		for _, c := range carriers {
			if !a.covered(c, keys, sc) {
				d := a.dataset(c.dataset)
				a.refuse(RuleAnalysable, "GROUP BY", groupLoc(n), fmt.Sprintf("a CTE or subquery aggregates rows of the protected dataset %s without grouping by its privacy unit %s", c.dataset, d.PrivacyUnit),
					": a row that merges several persons' rows could not be counted person by person; group by the privacy unit of every protected dataset it reads (one row per person), or aggregate only in the final SELECT")
				return &shape{}
			}
		}
	}
	sh := &shape{cols: cols, known: allNamed(cols)}
	if q.role == roleRelation && protected {
		a.def++
		e := &nodeEdit{groupAll: distinct != nil && !aggregating}
		for i, c := range carriers {
			name := unitColumnPrefix + strconv.Itoa(a.def) + "_" + strconv.Itoa(i)
			var item map[string]any
			switch key := sameKey(c, keys, sc); {
			case !perUnit:
				item = columnRefJSON(c.ref, name)
			case key != nil:
				// A group key that is this reading's unit, or a unit equal
				// to it in every row: its value, no aggregate needed.
				item = columnRefJSON(key, name)
			default:
				// One person per group: min is that person.
				item = functionJSON("min", []any{columnRefJSON(c.ref, "")}, false, nil, name)
			}
			e.appendItems = append(e.appendItems, item)
			sh.cols = append(sh.cols, column{name: name, unit: c.occ, hidden: true, exact: true})
			same := -1
			for j := range i {
				if sc.same.find("u"+strconv.Itoa(carriers[j].occ)) == sc.same.find("u"+strconv.Itoa(c.occ)) {
					same = j
					break
				}
			}
			sh.carriers = append(sh.carriers, shapeCarrier{dataset: c.dataset, occ: c.occ, column: name, same: same})
		}
		a.edits[n] = e
	}
	return sh
}

func allNamed(cols []column) bool {
	for _, c := range cols {
		if c.name == "" {
			return false
		}
	}
	return true
}

func groupLoc(n *SelectNode) Location {
	if len(n.GroupBy) > 0 {
		return n.GroupBy[0].Node().Location
	}
	return NoLocation
}

// plainGrouping reports whether the grouping sets are the one set of every
// GROUP BY expression, as a plain GROUP BY makes.
func plainGrouping(sets []byte, n int) bool {
	want := "[["
	for i := range n {
		if i > 0 {
			want += ","
		}
		want += strconv.Itoa(i)
	}
	return string(sets) == want+"]]"
}

func protectedNames(sc *nameScope) []string {
	var out []string
	for _, r := range sc.rels {
		for _, c := range r.carriers {
			if !slices.Contains(out, c.dataset) {
				out = append(out, c.dataset)
			}
		}
	}
	return out
}

func firstProtectedName(sc *nameScope) string {
	if n := protectedNames(sc); len(n) > 0 {
		return n[0]
	}
	return ""
}

// sameKey returns the column reference of a group key that holds the
// carrier's unit, or a unit equal to it in every row; nil if none.
func sameKey(c carrier, keys []val, sc *nameScope) []string {
	want := sc.same.find("u" + strconv.Itoa(c.occ))
	for _, k := range keys {
		if k.bare && k.ref != nil && k.unit >= 0 && k.id == "u"+strconv.Itoa(k.unit) && sc.same.find(k.id) == want {
			return k.ref
		}
	}
	return nil
}

// covered reports whether a group key of a per-person aggregation is the
// carrier's privacy unit, or a column a join equates with it.
func (a *analyzer) covered(c carrier, keys []val, sc *nameScope) bool {
	u := sc.uf.find("u" + strconv.Itoa(c.occ))
	for _, k := range keys {
		if k.unit == c.occ || (k.id != "" && sc.uf.find(k.id) == u) {
			return true
		}
	}
	return false
}

// position reads an integer constant as a 1-based position (GROUP BY 1,
// ORDER BY 2), as DuckDB's binder does.
func position(e Expr) (int, bool) {
	c, ok := e.(*ConstantExpr)
	if !ok {
		return 0, false
	}
	n, ok := integerConstant(c)
	if !ok {
		return 0, false
	}
	return int(n), true
}

// integerConstant reads an integer literal.
func integerConstant(c *ConstantExpr) (int64, bool) {
	var v struct {
		Type struct {
			ID string `json:"id"`
		} `json:"type"`
		IsNull bool `json:"is_null"`
		Value  any  `json:"value"`
	}
	if err := jsonUnmarshal(c.Value, &v); err != nil || v.IsNull {
		return 0, false
	}
	switch v.Type.ID {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT":
	default:
		return 0, false
	}
	switch x := v.Value.(type) {
	case float64:
		if x == float64(int64(x)) && x >= -1<<53 && x <= 1<<53 {
			return int64(x), true
		}
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// orderExprs returns the ORDER BY expressions of modifiers.
func orderExprs(ms []Modifier) []Expr {
	var out []Expr
	for _, m := range ms {
		if o, ok := m.(*OrderModifier); ok {
			for _, ob := range o.Orders {
				if ob != nil {
					out = append(out, ob.Expr)
				}
			}
		}
	}
	return out
}

// from adds the relations of a FROM item to sc.
func (a *analyzer) from(t TableRef, sc *nameScope, joins *[]*join, ctes *cteScope, q *qctx) {
	if a.refusal != nil || t == nil {
		return
	}
	common := t.Ref()
	switch r := t.(type) {
	case *EmptyRef:
	case *BaseTable:
		a.baseTable(r, sc, ctes, q)
	case *SubqueryRef:
		lat := &nameScope{rels: append(slices.Clone(sc.lateralRels), sc.rels...), merged: sc.merged, outer: q.outer, lateral: true}
		sh := a.query(r.Query.Node, ctes, lat, roleRelation)
		if len(r.ColumnAliases) > 0 {
			sh = renamed(sh, r.ColumnAliases)
		}
		rel := a.instantiate(sh, common.Alias, "a subquery", common.Location)
		a.addRelation(sc, rel, q, common.Location)
	case *TableFunctionRef:
		lat := &nameScope{rels: append(slices.Clone(sc.lateralRels), sc.rels...), merged: sc.merged, outer: q.outer, lateral: true}
		var name string
		if r.Function != nil {
			name = r.Function.Name
			for _, c := range r.Function.Children {
				a.expr(c, &ectx{sc: &nameScope{outer: lat, uf: unionFind{}}, clause: "a table function's arguments"})
			}
		}
		rel := &relation{qual: common.Alias, known: len(r.ColumnAliases) > 0, what: "the table function " + name}
		if rel.qual == "" {
			rel.qual = name
		}
		switch asciiLower(name) {
		case "range", "generate_series":
			rel.known = true
			rel.cols = []column{{name: asciiLower(name), unit: -1}}
		}
		for i, n := range r.ColumnAliases {
			if i < len(rel.cols) {
				rel.cols[i].name = n
			} else {
				rel.cols = append(rel.cols, column{name: n, unit: -1})
			}
		}
		if r.Ordinality == "WITH_ORDINALITY" {
			rel.known = false
		}
		a.addRelation(sc, rel, q, common.Location)
	case *ValuesRef:
		for _, row := range r.Rows {
			for _, e := range row {
				a.expr(e, &ectx{sc: &nameScope{outer: &nameScope{rels: append(slices.Clone(sc.lateralRels), sc.rels...), outer: q.outer, lateral: true}, uf: unionFind{}}, clause: "VALUES"})
			}
		}
		rel := &relation{qual: common.Alias, known: true, what: "a VALUES list"}
		ncols := 0
		if len(r.Rows) > 0 {
			ncols = len(r.Rows[0])
		}
		for i := range ncols {
			name := "col" + strconv.Itoa(i)
			if i < len(r.Names) && r.Names[i] != "" {
				name = r.Names[i]
			}
			rel.cols = append(rel.cols, column{name: name, unit: -1})
		}
		a.addRelation(sc, rel, q, common.Location)
	case *PivotRef:
		inner := &nameScope{outer: q.outer, uf: unionFind{}, same: unionFind{}}
		var js []*join
		a.from(r.Source, inner, &js, ctes, q)
		for _, rel := range inner.rels {
			if rel.protected {
				a.refuse(RuleAnalysable, "PIVOT", common.Location, "the algorithm pivots rows of the protected dataset "+strings.Join(protectedNames(inner), ", "),
					": the analysis cannot follow PIVOT or UNPIVOT soundly; aggregate with GROUP BY")
				return
			}
		}
		a.addRelation(sc, &relation{qual: common.Alias, what: "a PIVOT"}, q, common.Location)
	case *JoinRef:
		a.joinRef(r, sc, joins, ctes, q)
	default:
		a.refuse(RuleUnreadable, fmt.Sprintf("%T", t), common.Location, fmt.Sprintf("the privacy analysis does not know the table reference %T", t), "")
	}
}

func (a *analyzer) baseTable(r *BaseTable, sc *nameScope, ctes *cteScope, q *qctx) {
	qual := r.Alias
	if qual == "" {
		qual = r.Name
	}
	if c, ok := ctes.find(r.Name); ok {
		sh := c.shape
		if sh == nil {
			sh = &shape{}
		}
		if len(r.ColumnAliases) > 0 {
			sh = renamed(sh, r.ColumnAliases)
		}
		rel := a.instantiate(sh, qual, "the CTE "+c.name, r.Location)
		a.addRelation(sc, rel, q, r.Location)
		return
	}
	d := a.dataset(r.Name)
	if d == nil {
		// Check accepts only datasets and CTEs: nothing else reaches here.
		a.refuse(RuleRelation, r.Name, r.Location, "the privacy analysis does not know the relation "+r.Name, "")
		return
	}
	a.inst++
	rel := &relation{qual: qual, inst: a.inst, known: true, base: d, what: d.Name}
	occ := -1
	if d.PrivacyUnit != "" {
		a.occ++
		occ = a.occ
		rel.protected = true
	}
	for i, col := range d.Columns {
		name := col.Name
		if i < len(r.ColumnAliases) {
			name = r.ColumnAliases[i]
		}
		c := column{name: name, unit: -1}
		if occ >= 0 {
			if equalFold(col.Name, d.PrivacyUnit) {
				c.unit, c.exact = occ, true
				rel.carriers = []carrier{{dataset: d.Name, occ: occ, ref: []string{qual, name}}}
			} else {
				c.srcs = []source{{d.Name, col.Name}}
			}
		}
		rel.cols = append(rel.cols, c)
	}
	a.addRelation(sc, rel, q, r.Location)
}

// uniqueName reports whether one column has name (ignoring case).
func uniqueName(cols []column, name string) bool {
	n := 0
	for _, c := range cols {
		if equalFold(c.name, name) {
			n++
		}
	}
	return n == 1
}

// instantiate makes a relation instance of a shape: each reading of a
// protected dataset behind it becomes a new occurrence.
func (a *analyzer) instantiate(sh *shape, qual, what string, loc Location) *relation {
	a.inst++
	rel := &relation{qual: qual, inst: a.inst, known: sh.known, what: what}
	remap := map[int]int{}
	for i, c := range sh.carriers {
		a.occ++
		remap[c.occ] = a.occ
		ref := []string{c.column}
		if qual != "" {
			ref = []string{qual, c.column}
			// A visible column that is the unit itself carries it as well,
			// and counting that one lets DuckDB share the count with the
			// algorithm's own count(DISTINCT unit).
			for _, col := range sh.cols {
				if col.exact && !col.hidden && col.unit == c.occ && col.name != "" && uniqueName(sh.cols, col.name) {
					ref = []string{qual, col.name}
					break
				}
			}
		}
		rel.carriers = append(rel.carriers, carrier{dataset: c.dataset, occ: a.occ, ref: ref})
		rel.protected = true
		if c.same >= 0 && c.same < i {
			rel.same = append(rel.same, [2]int{remap[sh.carriers[c.same].occ], a.occ})
		}
	}
	for _, c := range sh.cols {
		if c.unit >= 0 {
			if n, ok := remap[c.unit]; ok {
				c.unit = n
			} else {
				c.unit = -1
			}
		}
		if len(c.srcs) > 0 {
			rel.protected = true
		}
		rel.cols = append(rel.cols, c)
	}
	return rel
}

func (a *analyzer) addRelation(sc *nameScope, rel *relation, q *qctx, loc Location) {
	if rel.inst == 0 {
		a.inst++
		rel.inst = a.inst
	}
	if rel.protected && a.inExpr > 0 {
		a.refuse(RuleAnalysable, rel.what, loc, "a subquery used as an expression (IN, EXISTS, a scalar subquery) reads the protected dataset "+strings.Join(datasetsOf(rel), ", "),
			": its rows would decide the result without being behind the output row, where the engine counts persons; write it as a join")
		return
	}
	if rel.protected && len(a.inSetOp) > 0 {
		op := a.inSetOp[len(a.inSetOp)-1]
		a.refuse(RuleAnalysable, op, loc, "the algorithm reads the protected dataset "+strings.Join(datasetsOf(rel), ", ")+" inside "+op,
			": a set operation or recursion mixes rows of different readings, and the engine cannot count the persons behind them; join and aggregate in one SELECT instead")
		return
	}
	for _, c := range rel.carriers {
		a.occDataset[c.occ] = c.dataset
	}
	for _, p := range rel.same {
		if sc.same != nil {
			sc.same.union("u"+strconv.Itoa(p[0]), "u"+strconv.Itoa(p[1]))
		}
	}
	sc.rels = append(sc.rels, rel)
}

func datasetsOf(rel *relation) []string {
	var out []string
	for _, c := range rel.carriers {
		if !slices.Contains(out, c.dataset) {
			out = append(out, c.dataset)
		}
	}
	if len(out) == 0 {
		out = append(out, rel.what)
	}
	return out
}

func (a *analyzer) joinRef(r *JoinRef, sc *nameScope, joins *[]*join, ctes *cteScope, q *qctx) {
	left := &nameScope{outer: sc.outer, uf: sc.uf, same: sc.same, lateralRels: append(slices.Clone(sc.lateralRels), sc.rels...)}
	a.from(r.Left, left, joins, ctes, q)
	// The right side sees the left laterally.
	right := &nameScope{rels: slices.Clone(left.rels), merged: left.merged, outer: sc.outer, uf: sc.uf, same: sc.same, lateralRels: left.lateralRels}
	n := len(right.rels)
	a.from(r.Right, right, joins, ctes, q)
	if a.refusal != nil {
		return
	}
	rightRels := right.rels[n:]
	anyProtected := func(rels []*relation) bool {
		for _, rel := range rels {
			if rel.protected {
				return true
			}
		}
		return false
	}
	protected := anyProtected(left.rels) || anyProtected(rightRels)
	switch {
	case !protected:
	case r.RefType == "POSITIONAL" || r.RefType == "ASOF" || r.RefType == "DEPENDENT":
		a.refuse(RuleAnalysable, r.RefType+" JOIN", r.Location, "the algorithm joins a protected dataset with a "+r.RefType+" join",
			": it pairs rows by their position or order, which the analysis does not follow; join on keys with ON or USING")
		return
	case (r.JoinType == "SEMI" || r.JoinType == "ANTI" || r.JoinType == "MARK" || r.JoinType == "SINGLE") && anyProtected(rightRels):
		a.refuse(RuleAnalysable, r.JoinType+" JOIN", r.Location, "the algorithm filters with a "+r.JoinType+" join on the protected dataset "+strings.Join(protectedNames(&nameScope{rels: rightRels}), ", "),
			": its rows would decide the result without being behind the output row, where the engine counts persons; use an inner join")
		return
	}
	all := append(slices.Clone(left.rels), rightRels...)
	j := &join{ref: r, rels: append(slices.Clone(left.lateralRels), all...)}
	*joins = append(*joins, j)
	merged := append(slices.Clone(left.merged), right.merged[len(left.merged):]...)
	// USING and NATURAL: the merged columns.
	using := r.Using
	if r.RefType == "NATURAL" {
		if !allKnown(left.rels) || !allKnown(rightRels) {
			if protected {
				a.refuse(RuleAnalysable, "NATURAL JOIN", r.Location, "the algorithm joins a protected dataset with NATURAL JOIN over relations whose columns the analysis cannot name",
					": name the join columns with ON or USING")
				return
			}
		} else {
			for _, lr := range left.rels {
				for _, lc := range lr.cols {
					if lc.hidden || lc.name == "" {
						continue
					}
					for _, rr := range rightRels {
						for _, rc := range rr.cols {
							if !rc.hidden && equalFold(rc.name, lc.name) && !slices.ContainsFunc(using, func(s string) bool { return equalFold(s, lc.name) }) {
								using = append(using, lc.name)
							}
						}
					}
				}
			}
		}
	}
	for _, name := range using {
		lv, lok := a.lookup(name, &nameScope{rels: left.rels, merged: left.merged})
		rv, rok := a.lookup(name, &nameScope{rels: rightRels})
		if !lok || !rok {
			if protected {
				a.refuse(RuleAnalysable, "USING ("+name+")", r.Location, "the algorithm joins on "+name+", which the analysis cannot find on both sides", "")
			}
			continue
		}
		if lv.id != "" && rv.id != "" {
			sc.uf.union(lv.id, rv.id)
		}
		m := mergedColumn{name: name}
		switch r.JoinType {
		case "RIGHT":
			m.val = rv
		case "FULL", "OUTER":
			m.val = noVal()
			m.val.srcs = mergeSrcs(lv.srcs, rv.srcs)
			if lv.unit >= 0 || rv.unit >= 0 {
				m.val.unit, m.val.via = max(lv.unit, rv.unit), "the FULL JOIN's merged "+name
			}
		default:
			m.val = lv
		}
		merged = append(merged, m)
	}
	if r.JoinType == "SEMI" || r.JoinType == "ANTI" {
		sc.rels = append(sc.rels, left.rels...)
	} else {
		sc.rels = append(sc.rels, all...)
	}
	sc.merged = merged
}

func allKnown(rels []*relation) bool {
	for _, r := range rels {
		if !r.known {
			return false
		}
	}
	return true
}

// star expands * or t.* over the scope, with EXCLUDE.
func (a *analyzer) star(st *StarExpr, sc *nameScope, protected bool) []column {
	if protected && (len(st.Replace) > 0 || string(st.Rename) != "[]" && len(st.Rename) > 0 || string(st.QualifiedExclude) != "[]" && len(st.QualifiedExclude) > 0) {
		a.refuse(RuleAnalysable, "* REPLACE/RENAME", st.Location, "the algorithm uses * with REPLACE, RENAME or a qualified EXCLUDE over a protected dataset",
			", which the analysis does not follow; name the columns")
		return nil
	}
	var exclude []string
	_ = jsonUnmarshal(st.Exclude, &exclude)
	var out []column
	found := false
	for _, r := range sc.rels {
		if st.Relation != "" && !equalFold(r.qual, st.Relation) {
			continue
		}
		found = true
		if !r.known && r.protected {
			a.refuse(RuleAnalysable, "*", st.Location, "the algorithm selects * from "+r.what+", some of whose columns have no name",
				": name every column of a CTE or subquery over a protected dataset with AS")
			return nil
		}
		for _, c := range r.cols {
			if slices.ContainsFunc(exclude, func(x string) bool { return equalFold(x, c.name) }) {
				continue
			}
			out = append(out, c)
		}
	}
	if !found && st.Relation != "" && sc.outer != nil {
		return a.star(st, sc.outer, protected)
	}
	return out
}

// ectx is the context an expression is analysed in.
type ectx struct {
	sc         *nameScope
	clause     string           // for messages: "a filter (WHERE)", "the select list", ...
	keyed      bool             // a column outside aggregates is a group key of the result
	filter     bool             // the expression filters rows (WHERE, ON, HAVING, FILTER)
	inAgg      string           // the aggregate the expression is inside, or ""
	collect    *[]*FunctionExpr // the result's aggregates with a FILTER, which the rewrite counts
	counted    *[]int           // the readings whose units the result counts itself, count(DISTINCT unit)
	allowAlias bool             // select-list aliases resolve (after input columns)
	aliasUnion bool             // a name that is both an alias and a column is read as both
}

// equalities records the equalities of a condition's top-level
// conjuncts between two column references.
func (a *analyzer) equalities(e Expr, sc *nameScope, identical bool) {
	for _, c := range conjuncts(e) {
		l, r, ok := columnEquality(c)
		if !ok {
			continue
		}
		lv, lok := a.lookup2(l, sc)
		rv, rok := a.lookup2(r, sc)
		if lok && rok && lv.id != "" && rv.id != "" {
			sc.uf.union(lv.id, rv.id)
			// Two privacy units of one type, equal in every row the join
			// or WHERE clause keeps (an inner join's unmatched rows do not
			// exist; in a nested inner join under an outer join both are
			// NULL together).
			lo, lu := unitID(lv.id)
			ro, ru := unitID(rv.id)
			if identical && lu && ru && c.Node().Type == "COMPARE_EQUAL" {
				if t := a.unitType(lo); t != "" && t != "float64" && t == a.unitType(ro) {
					sc.same.union(lv.id, rv.id)
				}
			}
		}
	}
}

// unitType is the contract type of an occurrence's privacy unit.
func (a *analyzer) unitType(occ int) string {
	d := a.dataset(a.occDataset[occ])
	if d == nil {
		return ""
	}
	for _, c := range d.Columns {
		if equalFold(c.Name, d.PrivacyUnit) {
			return c.Type
		}
	}
	return ""
}

func conjuncts(e Expr) []Expr {
	if c, ok := e.(*ConjunctionExpr); ok && c.Type == "CONJUNCTION_AND" {
		var out []Expr
		for _, ch := range c.Children {
			out = append(out, conjuncts(ch)...)
		}
		return out
	}
	if e == nil {
		return nil
	}
	return []Expr{e}
}

// columnEquality returns the two column references of l = r (or
// l IS NOT DISTINCT FROM r).
func columnEquality(e Expr) (*ColumnRef, *ColumnRef, bool) {
	c, ok := e.(*ComparisonExpr)
	if !ok || (c.Type != "COMPARE_EQUAL" && c.Type != "COMPARE_NOT_DISTINCT_FROM") {
		return nil, nil, false
	}
	l, lok := c.Left.(*ColumnRef)
	r, rok := c.Right.(*ColumnRef)
	return l, r, lok && rok
}

// condition analyses a filter: an equality between a privacy unit and
// another relation's column is a join key; everything else is an
// expression.
func (a *analyzer) condition(e Expr, cx *ectx) {
	for _, c := range conjuncts(e) {
		if a.refusal != nil {
			return
		}
		if l, r, ok := columnEquality(c); ok {
			lv := a.expr(l, &ectx{sc: cx.sc, clause: cx.clause, keyed: cx.keyed, filter: true, inAgg: cx.inAgg, allowAlias: cx.allowAlias, aliasUnion: cx.aliasUnion})
			rv := a.expr(r, &ectx{sc: cx.sc, clause: cx.clause, keyed: cx.keyed, filter: true, inAgg: cx.inAgg, allowAlias: cx.allowAlias, aliasUnion: cx.aliasUnion})
			if lv.unit >= 0 || rv.unit >= 0 {
				if lv.inst >= 0 && rv.inst >= 0 && lv.inst != rv.inst && !cx.keyed {
					continue // a join key
				}
				u := lv
				if u.unit < 0 {
					u = rv
				}
				a.unitUse(u, c.Node().Location, "in "+cx.clause+", compared with a column of the same relation")
			}
			continue
		}
		v := a.expr(c, cx)
		if v.unit >= 0 {
			a.unitUse(v, c.Node().Location, "as "+cx.clause)
		}
	}
}

// unitUse refuses a privacy unit used where it may not be.
func (a *analyzer) unitUse(v val, loc Location, how string) {
	name := v.name
	if name == "" {
		name = "a column"
	}
	what := fmt.Sprintf("the algorithm uses %s, the privacy unit of %s, %s", name, v.dataset, how)
	if v.via != "" {
		what = fmt.Sprintf("the algorithm uses %s, which %s makes equal to the privacy unit of %s, %s", name, v.via, v.dataset, how)
	}
	a.refuse(RulePrivacyUnit, name, loc, what,
		": a privacy unit may appear only as a join key (an equality with another relation's column) and inside COUNT(DISTINCT …), and pass unchanged through CTEs and subqueries — never in a filter, an expression, a group key, an ORDER BY or an output column")
}

// keyUse checks a group key of the result (or a column outside the
// aggregates of its select list, HAVING or ORDER BY, which DuckDB requires
// to be one): not a privacy unit, and only dimensions where a dataset
// lists them.
func (a *analyzer) keyUse(v val, loc Location, as string) {
	if a.refusal != nil {
		return
	}
	if v.unit >= 0 {
		a.unitUse(v, loc, "as "+as+" of the result")
		return
	}
	for _, s := range v.srcs {
		d := a.dataset(s.dataset)
		if d == nil || d.Dimensions == nil {
			continue
		}
		if !slices.ContainsFunc(d.Dimensions, func(x string) bool { return equalFold(x, s.column) }) {
			a.refuse(RuleDimensions, s.dataset+"."+s.column, loc,
				fmt.Sprintf("the algorithm uses %s of the protected dataset %s as %s of the result, or derives one from it", s.column, s.dataset, as),
				fmt.Sprintf(": the contract lists the dimensions of %s (%s), the only columns its group keys may derive from", s.dataset, strings.Join(d.Dimensions, ", ")))
			return
		}
	}
}

// expr analyses an expression and returns what its value is. A privacy
// unit inside it is refused here unless the whole expression is a bare
// reference to it, which the caller judges.
func (a *analyzer) expr(e Expr, cx *ectx) val {
	if a.refusal != nil || e == nil {
		return noVal()
	}
	switch x := e.(type) {
	case *ColumnRef:
		v := a.columnRef(x, cx)
		if cx.keyed && cx.inAgg == "" && v.protected() {
			a.keyUse(v, x.Location, "a group key")
		}
		return v
	case *ConstantExpr, *ParameterExpr:
		return noVal()
	case *PositionalRef:
		if a.scopeProtected(cx.sc) {
			a.refuse(RuleAnalysable, "#"+string(x.Index), x.Location, "the algorithm refers to a column by its position (#n) over a protected dataset", ", which the analysis does not follow; name the column")
		}
		return noVal()
	case *BetweenExpr:
		return a.composite(cx, "BETWEEN", x.Location, x.Input, x.Lower, x.Upper)
	case *CaseExpr:
		var parts []Expr
		for _, ck := range x.Checks {
			if ck != nil {
				parts = append(parts, ck.When, ck.Then)
			}
		}
		return a.composite(cx, "CASE", x.Location, append(parts, x.Else)...)
	case *CastExpr:
		return a.composite(cx, "CAST", x.Location, x.Child)
	case *CollateExpr:
		return a.composite(cx, "COLLATE", x.Location, x.Child)
	case *ComparisonExpr:
		return a.composite(cx, "a comparison", x.Location, x.Left, x.Right)
	case *ConjunctionExpr:
		return a.composite(cx, strings.TrimPrefix(x.Type, "CONJUNCTION_"), x.Location, x.Children...)
	case *OperatorExpr:
		return a.composite(cx, operatorName(x.Type), x.Location, x.Children...)
	case *LambdaExpr:
		return a.composite(cx, "a lambda", x.Location, x.Body)
	case *StarExpr:
		if a.scopeProtected(cx.sc) {
			a.refuse(RuleAnalysable, "*", x.Location, "the algorithm uses * or COLUMNS(...) inside an expression over a protected dataset", ", which the analysis does not follow; name the columns")
		}
		return noVal()
	case *FunctionExpr:
		return a.function(x, cx)
	case *WindowExpr:
		if a.scopeProtected(cx.sc) {
			a.refuse(RuleAnalysable, x.Name+" OVER (...)", x.Location, "the algorithm calls the window function "+x.Name+" over a protected dataset",
				": a window computes a row's value from other rows — other persons', or groups the engine suppresses — so the analysis refuses it")
			return noVal()
		}
		parts := append(append(slices.Clone(x.Children), x.Partitions...), x.StartExpr, x.EndExpr, x.OffsetExpr, x.DefaultExp, x.Filter)
		for _, o := range append(slices.Clone(x.Orders), x.ArgOrders...) {
			if o != nil {
				parts = append(parts, o.Expr)
			}
		}
		return a.composite(cx, "a window", x.Location, parts...)
	case *SubqueryExpr:
		return a.subquery(x, cx)
	}
	a.refuse(RuleUnreadable, fmt.Sprintf("%T", e), NoLocation, fmt.Sprintf("the privacy analysis does not know the expression %T", e), "")
	return noVal()
}

func operatorName(t string) string {
	switch t {
	case "OPERATOR_NOT":
		return "NOT"
	case "OPERATOR_IS_NULL":
		return "IS NULL"
	case "OPERATOR_IS_NOT_NULL":
		return "IS NOT NULL"
	case "COMPARE_IN":
		return "IN (...)"
	case "COMPARE_NOT_IN":
		return "NOT IN (...)"
	case "OPERATOR_COALESCE":
		return "COALESCE"
	}
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(t, "OPERATOR_"), "_", " "))
}

// scopeProtected reports whether a query node's scope holds a protected
// relation.
func (a *analyzer) scopeProtected(sc *nameScope) bool {
	for _, r := range sc.rels {
		if r.protected {
			return true
		}
	}
	return false
}

// composite analyses the parts of an expression built from them: none may
// be a privacy unit.
func (a *analyzer) composite(cx *ectx, construct string, loc Location, parts ...Expr) val {
	out := noVal()
	for _, p := range parts {
		if p == nil {
			continue
		}
		v := a.expr(p, cx)
		if v.unit >= 0 {
			where := "inside " + construct
			if cx.inAgg != "" {
				where += " inside the aggregate " + cx.inAgg
			}
			a.unitUse(v, locOr(p.Node().Location, loc), where+" in "+cx.clause)
			return noVal()
		}
		out.srcs = mergeSrcs(out.srcs, v.srcs)
		out.agg = out.agg || v.agg
	}
	return out
}

func locOr(l, m Location) Location {
	if l >= 0 {
		return l
	}
	return m
}

// function analyses a call: an aggregate follows the aggregate rules,
// anything else is an expression over its arguments.
func (a *analyzer) function(f *FunctionExpr, cx *ectx) val {
	name := asciiLower(f.Name)
	kind, isAgg := aggregates[name]
	if !isAgg || f.IsOperator {
		// A lambda's parameters stand for the elements of the other
		// arguments.
		var lambdas []*LambdaExpr
		var parts []Expr
		for _, c := range f.Children {
			if l, ok := c.(*LambdaExpr); ok {
				lambdas = append(lambdas, l)
			} else {
				parts = append(parts, c)
			}
		}
		v := a.composite(cx, f.Name+"(...)", f.Location, parts...)
		for _, l := range lambdas {
			inner := *cx
			sc := *cx.sc
			sc.lambdas = slices.Clone(cx.sc.lambdas)
			for _, p := range lambdaParams(l.Params) {
				sc.lambdas = append(sc.lambdas, lambdaParam{name: p, val: val{unit: -1, inst: -1, srcs: v.srcs}})
			}
			inner.sc = &sc
			lv := a.composite(&inner, "a lambda", l.Location, l.Body)
			v.srcs = mergeSrcs(v.srcs, lv.srcs)
			v.agg = v.agg || lv.agg
		}
		if f.OrderBy != nil || f.Filter != nil {
			parts = parts[:0]
			if f.OrderBy != nil {
				parts = append(parts, orderExprs([]Modifier{f.OrderBy})...)
			}
			a.composite(cx, f.Name+"(...)", f.Location, append(parts, f.Filter)...)
		}
		return v
	}
	protected := a.scopeProtected(cx.sc)
	if kind == AggregateWindow {
		if protected {
			a.refuse(RuleAnalysable, f.Name, f.Location, "the algorithm calls the window function "+f.Name+" over a protected dataset",
				": a window computes a row's value from other rows, so the analysis refuses it")
		}
		return noVal()
	}
	if f.ExportState && protected {
		a.refuse(RuleAggregateFunctions, f.Name+" EXPORT_STATE", f.Location, "the algorithm exports the state of the aggregate "+f.Name+" over a protected dataset",
			": an aggregate's state holds its members' values")
		return noVal()
	}
	inner := *cx
	inner.inAgg = f.Name
	inner.keyed = false
	inner.filter = false
	inner.collect, inner.counted = nil, nil
	out := noVal()
	out.agg = true
	// COUNT(DISTINCT unit): the one aggregate a privacy unit may be in.
	if name == "count" && f.Distinct && len(f.Children) == 1 {
		if cr, ok := f.Children[0].(*ColumnRef); ok {
			v := a.columnRef(cr, &inner)
			if v.unit >= 0 {
				if cx.counted != nil && f.Filter == nil && (f.OrderBy == nil || len(f.OrderBy.Orders) == 0) && v.id == "u"+strconv.Itoa(v.unit) {
					*cx.counted = append(*cx.counted, v.unit)
				}
				a.aggFilter(f, cx)
				return out
			}
		}
	}
	var srcs []source
	for _, c := range f.Children {
		v := a.expr(c, &inner)
		if v.unit >= 0 {
			a.unitUse(v, c.Node().Location, "inside the aggregate "+f.Name+" (not COUNT(DISTINCT …))")
			return noVal()
		}
		srcs = mergeSrcs(srcs, v.srcs)
	}
	if f.OrderBy != nil {
		for _, o := range f.OrderBy.Orders {
			if o == nil {
				continue
			}
			v := a.expr(o.Expr, &inner)
			if v.unit >= 0 {
				a.unitUse(v, o.Expr.Node().Location, "in the ORDER BY of the aggregate "+f.Name)
				return noVal()
			}
			srcs = mergeSrcs(srcs, v.srcs)
		}
	}
	for _, s := range srcs {
		d := a.dataset(s.dataset)
		if d == nil {
			continue
		}
		if d.Aggregations != nil {
			fns, listed := lookupFold(d.Aggregations, s.column)
			if !listed || !slices.ContainsFunc(fns, func(x string) bool { return equalFold(x, name) }) {
				allowed := "none"
				if listed {
					allowed = strings.Join(fns, ", ")
				}
				a.refuse(RuleAggregateFunctions, f.Name+"("+s.column+")", f.Location,
					fmt.Sprintf("the algorithm aggregates %s of the protected dataset %s with %s", s.column, s.dataset, f.Name),
					fmt.Sprintf(": the contract lists the aggregations of %s, and allows on %s only: %s", s.dataset, s.column, allowed))
				return noVal()
			}
			continue
		}
		if kind == AggregateMember {
			a.refuse(RuleAggregateFunctions, f.Name+"("+s.column+")", f.Location,
				fmt.Sprintf("the algorithm aggregates %s of the protected dataset %s with %s, which returns a member's value", s.column, s.dataset, f.Name),
				fmt.Sprintf(": aggregates such as MIN, MAX, ANY_VALUE, FIRST, ARG_MAX, MEDIAN, MODE, STRING_AGG, LIST and HISTOGRAM may aggregate a protected column only where the contract allows them by name (datasets[].aggregations of %s)", s.dataset))
			return noVal()
		}
	}
	out.srcs = srcs
	a.aggFilter(f, cx)
	return out
}

func lookupFold(m map[string][]string, key string) ([]string, bool) {
	for k, v := range m {
		if equalFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// aggFilter analyses an aggregate's FILTER (WHERE ...): a filter of the
// rows the aggregate reads, which the rewrite counts apart.
func (a *analyzer) aggFilter(f *FunctionExpr, cx *ectx) {
	if f.Filter == nil {
		return
	}
	if cx.collect != nil {
		*cx.collect = append(*cx.collect, f)
	}
	inner := *cx
	inner.collect = nil
	inner.clause = "the FILTER of the aggregate " + f.Name
	inner.filter = true
	inner.keyed = false
	inner.inAgg = f.Name
	a.condition(f.Filter, &inner)
}

func lambdaParams(e Expr) []string {
	switch p := e.(type) {
	case *ColumnRef:
		if len(p.Names) == 1 {
			return p.Names
		}
	case *FunctionExpr:
		var out []string
		for _, c := range p.Children {
			out = append(out, lambdaParams(c)...)
		}
		return out
	}
	return nil
}

// subquery analyses a subquery used as an expression: it may read no
// protected dataset; a privacy unit may be the left side of IN (a semi
// join on it) in a filter.
func (a *analyzer) subquery(x *SubqueryExpr, cx *ectx) val {
	out := noVal()
	if x.Child != nil {
		v := a.expr(x.Child, cx)
		if v.unit >= 0 && !(cx.filter && x.SubqueryType == "ANY" && x.Comparison == "COMPARE_EQUAL" && cx.inAgg == "") {
			a.unitUse(v, x.Child.Node().Location, "as the left side of "+x.SubqueryType+" (...) in "+cx.clause)
			return noVal()
		}
		if v.unit < 0 {
			out.srcs = v.srcs
		}
	}
	if x.Query == nil {
		return out
	}
	outer := *cx.sc
	inner := &outer
	if cx.keyed && cx.inAgg == "" {
		inner = &nameScope{rels: cx.sc.rels, merged: cx.sc.merged, outer: cx.sc.outer, outerAgg: true, lambdas: cx.sc.lambdas, uf: cx.sc.uf}
	}
	a.inExpr++
	before := len(a.outerRefs)
	a.query(x.Query.Node, cx.sc.ctes, inner, roleExpr)
	a.inExpr--
	for _, v := range a.outerRefs[before:] {
		out.srcs = mergeSrcs(out.srcs, v.srcs)
	}
	a.outerRefs = a.outerRefs[:before]
	return out
}
