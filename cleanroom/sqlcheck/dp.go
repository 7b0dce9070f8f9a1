package sqlcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// DPAggregate is one of the aggregates mode differential_privacy releases
// (SPEC §7.1).
type DPAggregate int

// The aggregates of mode differential_privacy.
const (
	DPCountRows  DPAggregate = iota + 1 // COUNT(*)
	DPCountUnits                        // COUNT(DISTINCT privacy unit)
	DPSum                               // SUM(bounded column)
	DPAvg                               // AVG(bounded column)
)

func (k DPAggregate) String() string {
	switch k {
	case DPCountRows:
		return "COUNT(*)"
	case DPCountUnits:
		return "COUNT(DISTINCT unit)"
	case DPSum:
		return "SUM"
	case DPAvg:
		return "AVG"
	}
	return "DPAggregate(" + strconv.Itoa(int(k)) + ")"
}

// DPColumn is one output column of a differentially private result: a
// group key (Key ≥ 0, the index of its column in the input relation) or
// an aggregate (Key = -1).
type DPColumn struct {
	Key       int
	Aggregate DPAggregate
	// Value is, for DPSum and DPAvg, the index of the aggregated column in
	// DPPlan.Values.
	Value int
}

// DPPlan is how mode differential_privacy runs an algorithm that
// AnalyzeDP accepts: the engine runs Input, which returns one row per row
// the algorithm aggregates — the privacy unit behind it (DPUnitColumn),
// the row's group keys (DPKeyColumn(i)) and the values it sums or averages
// (DPValueColumn(i)) — bounds each unit's contribution to it in SQL, and
// releases the columns with noise.
type DPPlan struct {
	// Columns are the algorithm's output columns, in order.
	Columns []DPColumn
	// Keys is the number of group keys.
	Keys int
	// KeyNames are the group keys' column names in the algorithm's
	// output (an alias, or the column's own name), the names the
	// contract's public_groups lists.
	KeyNames []string
	// Values are the bounded columns the aggregates read, by the column
	// name their bounds are listed under.
	Values []string

	input []byte
}

// Input returns the JSON tree of the per-row relation, in the form
// json_deserialize_sql reads.
func (p *DPPlan) Input() []byte { return p.input }

// Names of the per-row relation's columns.
const DPUnitColumn = ReservedPrefix + "_dp_unit"

// DPKeyColumn names group key i in the per-row relation.
func DPKeyColumn(i int) string { return ReservedPrefix + "_dp_key_" + strconv.Itoa(i) }

// DPValueColumn names value i in the per-row relation.
func DPValueColumn(i int) string { return ReservedPrefix + "_dp_value_" + strconv.Itoa(i) }

// AnalyzeDP applies the rules of mode differential_privacy to one
// statement that Check accepted: first every rule of mode aggregate
// (Analyze), then the mode's own —
//
//   - every dataset the algorithm reads has a privacy unit, and all the
//     readings behind the result are joined on their privacy units, so
//     that each row it aggregates belongs to one person;
//   - the result is one SELECT with GROUP BY (or a global aggregate)
//     whose output columns are its group keys, each grouped by, and the
//     aggregates COUNT(*), COUNT(DISTINCT privacy unit), and SUM and AVG
//     of a column that bounded reports bounds for (no DISTINCT, FILTER or
//     ORDER BY inside them);
//   - no HAVING, QUALIFY, ORDER BY, LIMIT, OFFSET or DISTINCT on the
//     result: they would act on exact values (the engine releases the
//     groups sorted by their keys).
//
// A refusal is a *Refusal whose rule is one of mode aggregate's or
// RuleAggregation, RulePrivacyUnit and RuleAnalysable for the above.
func AnalyzeDP(st *Statement, datasets []Dataset, bounded func(column string) bool) (*DPPlan, error) {
	a, err := Analyze(st, datasets)
	if err != nil {
		if r, ok := err.(*Refusal); ok {
			c := *r
			c.Reason = strings.Replace(c.Reason, " of mode aggregate)", " of mode aggregate, which mode differential_privacy applies too)", 1)
			return nil, &c
		}
		return nil, err
	}
	refuse := func(rule Rule, construct string, loc Location, what, why string) error {
		return &Refusal{Rule: rule, Construct: construct, Location: loc,
			Reason: what + at(loc) + why + " (rule: " + rule.String() + " of mode differential_privacy)"}
	}
	if unprotected := unprotectedReads(st, datasets); len(unprotected) > 0 {
		return nil, refuse(RulePrivacyUnit, unprotected[0], NoLocation, "the algorithm reads the dataset "+unprotected[0]+", which has no privacy unit",
			": mode differential_privacy bounds every person's contribution, so every dataset it reads must name the column that identifies a person (privacy_unit)")
	}
	n := a.resultNode
	if n == nil || len(a.unitRefs) == 0 {
		return nil, refuse(RuleAggregation, "SELECT", NoLocation, "the result reads no protected dataset",
			": mode differential_privacy releases aggregates over persons, so the query must aggregate rows of the protected datasets")
	}
	if len(a.unitRefs) > 1 {
		return nil, refuse(RulePrivacyUnit, "JOIN", NoLocation, "the result's rows come from protected readings that are not joined on their privacy units",
			": mode differential_privacy attributes each row to one person, so join the protected datasets on their privacy units (e.g. USING (user_id))")
	}
	if n.Having != nil {
		return nil, refuse(RuleAnalysable, "HAVING", n.Having.Node().Location, "the result filters its groups with HAVING",
			": in mode differential_privacy a filter on exact aggregates would reveal them; the groups released are chosen by differentially private partition selection (or the contract's public_groups)")
	}
	if n.Qualify != nil {
		return nil, refuse(RuleAnalysable, "QUALIFY", n.Qualify.Node().Location, "the result filters with QUALIFY", ", which mode differential_privacy does not allow")
	}
	if n.Sample != nil {
		return nil, refuse(RuleAnalysable, "USING SAMPLE", NoLocation, "the result samples its rows", ", which mode differential_privacy does not allow (its guarantee assumes every row is read)")
	}
	for _, m := range n.Modifiers {
		var what string
		switch m.(type) {
		case *OrderModifier:
			what = "ORDER BY"
		case *LimitModifier:
			what = "LIMIT"
		case *DistinctModifier:
			what = "DISTINCT"
		}
		return nil, refuse(RuleAnalysable, what, NoLocation, "the result has "+what,
			": in mode differential_privacy it would act on exact values; the engine releases the groups sorted by their keys, so leave it out")
	}
	if n.AggregateHandling != "STANDARD_HANDLING" && n.AggregateHandling != "" {
		return nil, refuse(RuleAggregation, "GROUP BY ALL", NoLocation, "the result groups with GROUP BY ALL",
			": in mode differential_privacy list the group keys in GROUP BY")
	}
	p := &DPPlan{}
	// The group keys: each GROUP BY expression, by position, by alias or
	// as written.
	isAgg := make([]bool, len(n.SelectList))
	for i, e := range n.SelectList {
		isAgg[i] = hasAggregate([]Expr{e})
	}
	keyOf := make([]int, len(n.SelectList)) // select item → key index, or -1
	for i := range keyOf {
		keyOf[i] = -1
	}
	for _, g := range n.GroupBy {
		item := -1
		if pos, ok := position(g); ok {
			if pos >= 1 && pos <= len(n.SelectList) {
				item = pos - 1
			}
		} else {
			for i, e := range n.SelectList {
				if isAgg[i] {
					continue
				}
				if cr, ok := g.(*ColumnRef); ok && len(cr.Names) == 1 && e.Node().Alias != "" && equalFold(cr.Names[0], e.Node().Alias) {
					item = i
					break
				}
				if sameExpr(g, e) {
					item = i
					break
				}
			}
		}
		if item < 0 || isAgg[item] {
			return nil, refuse(RuleAggregation, "GROUP BY", g.Node().Location, "a group key is not an output column",
				": in mode differential_privacy every group key must be an output column of the result, so that each released row says which group it is")
		}
		if keyOf[item] < 0 {
			keyOf[item] = p.Keys
			p.Keys++
		}
	}
	var keyItems, valueItems []any
	for i, e := range n.SelectList {
		name := outputName(e)
		if !isAgg[i] {
			if keyOf[i] < 0 {
				return nil, refuse(RuleAggregation, name, e.Node().Location, "the output column "+strconv.Quote(name)+" is neither a group key nor an aggregate",
					": in mode differential_privacy every output column is a group key (in GROUP BY) or one of COUNT(*), COUNT(DISTINCT privacy unit), SUM and AVG")
			}
			p.Columns = append(p.Columns, DPColumn{Key: keyOf[i], Value: -1})
			continue
		}
		f, ok := e.(*FunctionExpr)
		if !ok || f.IsOperator || f.Filter != nil || (f.OrderBy != nil && len(f.OrderBy.Orders) > 0) || f.ExportState {
			return nil, refuse(RuleAggregateFunctions, name, e.Node().Location, "the output column "+strconv.Quote(name)+" is not a plain aggregate",
				": in mode differential_privacy each aggregate output is exactly COUNT(*), COUNT(DISTINCT privacy unit), SUM(column) or AVG(column), with no expression around it and no FILTER or ORDER BY in it")
		}
		col := DPColumn{Key: -1, Value: -1}
		switch name := strings.ToLower(f.Name); {
		case name == "count_star" && len(f.Children) == 0 && !f.Distinct:
			col.Aggregate = DPCountRows
		case name == "count" && f.Distinct && len(f.Children) == 1 && a.unitCounts[f]:
			col.Aggregate = DPCountUnits
		case (name == "sum" || name == "avg" || name == "mean") && len(f.Children) == 1 && !f.Distinct:
			col.Aggregate = DPSum
			if name != "sum" {
				col.Aggregate = DPAvg
			}
			cr, ok := f.Children[0].(*ColumnRef)
			if !ok || len(cr.Names) == 0 {
				return nil, refuse(RuleAggregateFunctions, f.Name, f.Location, strings.ToUpper(f.Name)+" of an expression",
					": in mode differential_privacy SUM and AVG read a column, which the contract's bounds clamp; compute the expression in a CTE and name it after a bounded column")
			}
			column := cr.Names[len(cr.Names)-1]
			if !bounded(column) {
				return nil, refuse(RuleAggregateFunctions, column, cr.Location, strings.ToUpper(f.Name)+" of the column "+column+", which has no bounds",
					": in mode differential_privacy every summed or averaged column is clamped to output.differential_privacy.bounds; list its bounds there")
			}
			col.Value = len(p.Values)
			p.Values = append(p.Values, column)
			valueItems = append(valueItems, columnRefJSON(cr.Names, DPValueColumn(col.Value)))
		default:
			return nil, refuse(RuleAggregateFunctions, f.Name, f.Location, "the aggregate "+f.Name+" is not one mode differential_privacy releases",
				": the mode releases COUNT(*), COUNT(DISTINCT privacy unit), SUM(bounded column) and AVG(bounded column)")
		}
		p.Columns = append(p.Columns, col)
	}
	p.KeyNames = make([]string, p.Keys)
	keyItems = make([]any, p.Keys)
	for i, e := range n.SelectList {
		if k := keyOf[i]; k >= 0 && keyItems[k] == nil {
			item := deepCopy(e.Node().raw, nil).(map[string]any)
			item["alias"] = DPKeyColumn(k)
			keyItems[k] = item
			p.KeyNames[k] = outputName(e)
		}
	}

	// The per-row relation: the rewritten statement (whose CTEs and
	// subqueries carry the privacy units), with the result's SELECT
	// replaced by the unit, the keys and the values, ungrouped.
	tree := a.Rewritten()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(tree))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("sqlcheck: reading the rewritten tree: %w", err)
	}
	sts, _ := doc["statements"].([]any)
	if len(sts) != 1 {
		return nil, fmt.Errorf("sqlcheck: the rewritten tree has %d statements", len(sts))
	}
	node, _ := sts[0].(map[string]any)["node"].(map[string]any)
	if node == nil || node["type"] != "SELECT_NODE" {
		return nil, fmt.Errorf("sqlcheck: the rewritten result is not a SELECT node")
	}
	list := []any{columnRefJSON(a.unitRefs[0], DPUnitColumn)}
	list = append(list, keyItems...)
	list = append(list, valueItems...)
	castDoubles(list)
	node["select_list"] = list
	node["group_expressions"] = []any{}
	node["group_sets"] = []any{}
	node["aggregate_handling"] = "STANDARD_HANDLING"
	node["having"] = nil
	node["qualify"] = nil
	node["modifiers"] = []any{}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("sqlcheck: encoding the per-row relation: %w", err)
	}
	p.input = bytes.TrimSpace(b.Bytes())
	return p, nil
}

// outputName is the name DuckDB gives a select item that is a column
// reference or has an alias; "" otherwise (the engine names the columns
// after the algorithm's prepared result).
func outputName(e Expr) string {
	if a := e.Node().Alias; a != "" {
		return a
	}
	if cr, ok := e.(*ColumnRef); ok && len(cr.Names) > 0 {
		return cr.Names[len(cr.Names)-1]
	}
	return ""
}

// sameExpr reports whether two expressions are the same tree, but for
// their aliases and positions.
func sameExpr(x, y Expr) bool {
	a := stripped(deepCopy(x.Node().raw, nil))
	b := stripped(deepCopy(y.Node().raw, nil))
	return reflect.DeepEqual(a, b)
}

func stripped(v any) any {
	switch n := v.(type) {
	case map[string]any:
		delete(n, "query_location")
		delete(n, "alias")
		for _, e := range n {
			stripped(e)
		}
	case []any:
		for _, e := range n {
			stripped(e)
		}
	}
	return v
}

// unprotectedReads lists the datasets without a privacy unit whose names
// the statement reads as tables (a CTE of the same name counts too: the
// check errs on the side of refusing).
func unprotectedReads(st *Statement, datasets []Dataset) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch n := v.(type) {
		case map[string]any:
			if n["type"] == "BASE_TABLE" {
				name, _ := n["table_name"].(string)
				for _, d := range datasets {
					if d.PrivacyUnit == "" && equalFold(d.Name, name) {
						out = append(out, d.Name)
					}
				}
			}
			for _, e := range n {
				walk(e)
			}
		case []any:
			for _, e := range n {
				walk(e)
			}
		}
	}
	if st != nil {
		walk(st.raw)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
