package sqlcheck

import "encoding/json"

// The types below are DuckDB's parse tree of a SELECT statement, as
// json_serialize_sql serialises it (DuckDB v1.5, the parser's
// ParsedExpression, TableRef, QueryNode and ResultModifier classes). Decode
// fills them strictly: every key of every node is either read into a field
// here or refused, so a node or key this package does not know is never
// skipped unchecked. Values (constants) and types are kept as raw JSON:
// they are data, and name no relation or function.

// Statement is one SELECT statement.
type Statement struct {
	Node QueryNode
	// NamedParams is DuckDB's named_param_map (raw JSON).
	NamedParams json.RawMessage

	// raw is the statement's JSON object as decoded, which the privacy
	// analysis's rewrite copies and edits.
	raw map[string]any
}

// QueryNode is a *SelectNode, *SetOperationNode or *RecursiveCTENode.
type QueryNode interface {
	// Common returns what every query node has: its WITH clause and its
	// result modifiers.
	Common() *QueryCommon
}

// QueryCommon is what every query node has.
type QueryCommon struct {
	// CTEs are the node's WITH clause, in order. They are in scope in the
	// whole node, and each in the CTEs after it.
	CTEs      []*CTE
	Modifiers []Modifier
}

// Common implements QueryNode.
func (c *QueryCommon) Common() *QueryCommon { return c }

// CTE is one common table expression of a WITH clause.
type CTE struct {
	Name         string
	Aliases      []string
	Query        *Statement
	Materialized string // CTE_MATERIALIZE_DEFAULT, _ALWAYS or _NEVER
	KeyTargets   []Expr // USING KEY
}

// SelectNode is SELECT ... FROM ... WHERE ... GROUP BY ... HAVING ...
// QUALIFY ...; also VALUES and FROM-first queries.
type SelectNode struct {
	QueryCommon
	SelectList        []Expr
	From              TableRef // *EmptyRef when there is no FROM
	Where             Expr
	GroupBy           []Expr
	GroupingSets      json.RawMessage // indexes into GroupBy
	AggregateHandling string
	Having            Expr
	Sample            *Sample
	Qualify           Expr

	raw map[string]any // the node's JSON object as decoded
}

// SetOperationNode is UNION, EXCEPT or INTERSECT (with ALL or BY NAME).
type SetOperationNode struct {
	QueryCommon
	Op          string // UNION, EXCEPT, INTERSECT, UNION_BY_NAME
	All         bool
	Left, Right QueryNode
}

// RecursiveCTENode is the body of a recursive CTE: Left is the anchor,
// Right the recursive part, in which Name refers to the CTE itself.
type RecursiveCTENode struct {
	QueryCommon
	Name        string
	UnionAll    bool
	Left, Right QueryNode
	Aliases     []string
	KeyTargets  []Expr
}

// Modifier is an *OrderModifier, *LimitModifier or *DistinctModifier.
type Modifier interface{ modifier() }

// OrderModifier is ORDER BY.
type OrderModifier struct{ Orders []*OrderBy }

// LimitModifier is LIMIT and OFFSET; Percent for LIMIT n%.
type LimitModifier struct {
	Limit, Offset Expr
	Percent       bool
}

// DistinctModifier is DISTINCT or DISTINCT ON (On).
type DistinctModifier struct{ On []Expr }

func (*OrderModifier) modifier()    {}
func (*LimitModifier) modifier()    {}
func (*DistinctModifier) modifier() {}

// OrderBy is one ORDER BY key.
type OrderBy struct {
	Direction string // ORDER_DEFAULT, ASCENDING, DESCENDING
	NullOrder string
	Expr      Expr
}

// Sample is USING SAMPLE or TABLESAMPLE (raw JSON fields).
type Sample struct {
	Size         json.RawMessage
	IsPercentage bool
	Method       string
	Seed         json.RawMessage
}

// Location is a byte offset into the algorithm's text, as DuckDB's parser
// recorded it; NoLocation when it did not.
type Location int64

// NoLocation is a node without a recorded position.
const NoLocation Location = -1

// TableRef is one item of a FROM clause: *BaseTable, *JoinRef,
// *SubqueryRef, *TableFunctionRef, *EmptyRef, *ValuesRef, *PivotRef or
// *ShowRef.
type TableRef interface {
	// Ref returns what every table reference has.
	Ref() *RefCommon
}

// RefCommon is what every table reference has.
type RefCommon struct {
	Alias    string
	Sample   *Sample
	Location Location
}

// Ref implements TableRef.
func (r *RefCommon) Ref() *RefCommon { return r }

// BaseTable is a relation named in FROM: a table, view or CTE (or, to
// DuckDB's replacement scans, a file name).
type BaseTable struct {
	RefCommon
	Catalog, Schema, Name string
	ColumnAliases         []string
	At                    *AtClause // AT (VERSION => ...), time travel
}

// AtClause is a table's AT (unit => expr) clause.
type AtClause struct {
	Unit string
	Expr Expr
}

// JoinRef is a join of two table references, lateral or not.
type JoinRef struct {
	RefCommon
	Left, Right         TableRef
	Condition           Expr
	JoinType            string // INNER, LEFT, ...
	RefType             string // REGULAR, NATURAL, CROSS, POSITIONAL, ASOF, DEPENDENT
	Using               []string
	DelimFlipped        bool
	DuplicateEliminated []Expr
}

// SubqueryRef is a subquery in FROM.
type SubqueryRef struct {
	RefCommon
	Query         *Statement
	ColumnAliases []string
}

// TableFunctionRef is a table function in FROM.
type TableFunctionRef struct {
	RefCommon
	Function      *FunctionExpr
	ColumnAliases []string
	Ordinality    string // WITH_ORDINALITY or WITHOUT_ORDINALITY
}

// EmptyRef is the FROM of a query without one.
type EmptyRef struct{ RefCommon }

// ValuesRef is a VALUES list.
type ValuesRef struct {
	RefCommon
	Names []string
	Types json.RawMessage
	Rows  [][]Expr
}

// PivotRef is PIVOT or UNPIVOT in FROM.
type PivotRef struct {
	RefCommon
	Source        TableRef
	Aggregates    []Expr
	UnpivotNames  []string
	Pivots        []*PivotColumn
	Groups        []string
	ColumnAliases []string
	IncludeNulls  bool
}

// PivotColumn is one FOR ... IN (...) of a PIVOT or UNPIVOT.
type PivotColumn struct {
	Exprs        []Expr
	UnpivotNames []string
	Entries      []*PivotEntry
	Enum         string
}

// PivotEntry is one entry of a PIVOT's IN list: constant values or a star
// expression.
type PivotEntry struct {
	Values json.RawMessage
	Star   Expr
	Alias  string
}

// ShowRef is DESCRIBE, SHOW or SUMMARIZE used as a table.
type ShowRef struct {
	RefCommon
	ShowType              string
	Catalog, Schema, Name string
	Query                 QueryNode
}

// Expr is a parsed expression. Every Expr has an *ExprCommon.
type Expr interface {
	// Node returns what every expression has.
	Node() *ExprCommon
}

// ExprCommon is what every expression has: DuckDB's expression class and
// type, its alias and position.
type ExprCommon struct {
	Class, Type string
	Alias       string
	Location    Location

	raw map[string]any // the expression's JSON object as decoded
}

// Node implements Expr.
func (e *ExprCommon) Node() *ExprCommon { return e }

// BetweenExpr is Input BETWEEN Lower AND Upper.
type BetweenExpr struct {
	ExprCommon
	Input, Lower, Upper Expr
}

// CaseExpr is CASE WHEN ... THEN ... ELSE ... END.
type CaseExpr struct {
	ExprCommon
	Checks []*CaseCheck
	Else   Expr
}

// CaseCheck is one WHEN ... THEN ... of a CASE.
type CaseCheck struct{ When, Then Expr }

// CastExpr is CAST(Child AS type) or TRY_CAST; typed literals are casts.
type CastExpr struct {
	ExprCommon
	Child Expr
	To    json.RawMessage // DuckDB's LogicalType
	Try   bool
}

// CollateExpr is Child COLLATE Collation.
type CollateExpr struct {
	ExprCommon
	Child     Expr
	Collation string
}

// ColumnRef is a (possibly qualified) column name.
type ColumnRef struct {
	ExprCommon
	Names []string
}

// ComparisonExpr is a comparison; Type says which.
type ComparisonExpr struct {
	ExprCommon
	Left, Right Expr
}

// ConjunctionExpr is AND or OR.
type ConjunctionExpr struct {
	ExprCommon
	Children []Expr
}

// ConstantExpr is a literal.
type ConstantExpr struct {
	ExprCommon
	Value json.RawMessage // DuckDB's Value
}

// FunctionExpr is a call of a scalar, aggregate or table function or a
// macro, and also an operator written as a symbol (+, ||, ~~ ...).
type FunctionExpr struct {
	ExprCommon
	Name, Schema, Catalog string
	Children              []Expr
	Filter                Expr // FILTER (WHERE ...)
	OrderBy               *OrderModifier
	Distinct              bool
	IsOperator            bool
	ExportState           bool
}

// LambdaExpr is Params -> Body (or lambda Params: Body).
type LambdaExpr struct {
	ExprCommon
	Params, Body Expr
}

// OperatorExpr is a built-in operator over Children: NOT, IS NULL, IN,
// COALESCE, TRY, [] ... ; Type says which.
type OperatorExpr struct {
	ExprCommon
	Children []Expr
}

// ParameterExpr is a prepared-statement parameter: $name, $1 or ?.
type ParameterExpr struct {
	ExprCommon
	Identifier string
}

// PositionalRef is #n.
type PositionalRef struct {
	ExprCommon
	Index json.Number
}

// StarExpr is *, t.*, COLUMNS(...), with EXCLUDE, REPLACE and RENAME.
type StarExpr struct {
	ExprCommon
	Relation         string
	Exclude          json.RawMessage
	Replace          []*StarReplace
	Columns          bool
	Expr             Expr // the argument of COLUMNS(...)
	QualifiedExclude json.RawMessage
	Rename           json.RawMessage
}

// StarReplace is one REPLACE (Expr AS Name) of a star expression.
type StarReplace struct {
	Name string
	Expr Expr
}

// SubqueryExpr is a subquery used as an expression: scalar, EXISTS, IN,
// ANY or ALL.
type SubqueryExpr struct {
	ExprCommon
	SubqueryType string
	Query        *Statement
	Child        Expr // the left operand of IN, ANY, ALL
	Comparison   string
}

// WindowExpr is a window function call: Name(...) OVER (...).
type WindowExpr struct {
	ExprCommon
	Name, Schema, Catalog  string
	Children, Partitions   []Expr
	Orders, ArgOrders      []*OrderBy
	Start, End             string
	StartExpr, EndExpr     Expr
	OffsetExpr, DefaultExp Expr
	Filter                 Expr
	IgnoreNulls, Distinct  bool
	Exclude                string
}
