package engine

import (
	"cmp"
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/privacy"
)

// planDP applies mode differential_privacy's analysis (sqlcheck.AnalyzeDP)
// to a statement that passed the statement check, writes its per-row
// relation back to SQL with json_deserialize_sql, and checks that DuckDB
// parses that text into exactly the tree it was written from.
func planDP(ctx context.Context, conn driver.Conn, st *sqlcheck.Statement, datasets []sqlcheck.Dataset, dp *contracts.DifferentialPrivacy) (*sqlcheck.DPPlan, string, error) {
	if dp == nil {
		return nil, "", refuse(LayerPolicy, nil, "output mode differential_privacy without its differential_privacy block")
	}
	bounded := func(column string) bool { _, ok := dp.Bound(column); return ok }
	p, err := sqlcheck.AnalyzeDP(st, datasets, bounded)
	if err != nil {
		return nil, "", refuse(LayerPrivacy, nil, "%v", err)
	}
	text, err := deserialize(ctx, conn, p.Input())
	if err != nil {
		return nil, "", err
	}
	again, err := serialize(ctx, conn, "json_serialize_sql(CAST($1 AS VARCHAR))", text)
	if err != nil {
		return nil, "", err
	}
	if err := sameTree(p.Input(), again); err != nil {
		return nil, "", fmt.Errorf("engine: the differential-privacy relation does not parse back into its tree (%v); the rewrite is refused", err)
	}
	return p, text, nil
}

// runDP runs an algorithm in mode differential_privacy (docs/privacy.md
// §6): the per-row relation of its plan, bounded per privacy unit in SQL
// (Bounding), then the noisy aggregates and partition selection of
// coordinator/internal/privacy, charged to the run's epsilon_per_run and
// delta_per_run. Nothing but the released groups leaves: the result has
// the algorithm's column names, group keys as DuckDB computed them
// (integers as int64, decimals as their text), counts as int64 and sums
// and averages as float64.
//
// params are bound to the bounded relation as Run binds them to the query:
// the relation keeps the algorithm's $name references, and the privacy
// analysis saw them as literals.
func (s *Session) runDP(ctx context.Context, conn driver.Conn, query string, st *sqlcheck.Statement, policy Policy, params []Param) (*Result, error) {
	dp := policy.Output.DifferentialPrivacy
	plan, input, err := planDP(ctx, conn, st, privacyDatasets(s.tableNames(), s.tableSchemas(), policy), dp)
	if err != nil {
		return nil, err
	}
	origQuery, err := prepareQuery(conn, query)
	if err != nil {
		return nil, err
	}
	inQuery, err := prepareQuery(conn, input)
	if err != nil {
		return nil, err
	}
	if err := checkPlan(ctx, conn, input); err != nil {
		return nil, err
	}
	orig, inCols := origQuery.columns, inQuery.columns
	if len(orig) != len(plan.Columns) {
		return nil, fmt.Errorf("engine: the algorithm has %d columns, its differential-privacy plan %d", len(orig), len(plan.Columns))
	}
	fields := make([]arrow.Field, len(plan.Columns))
	var aggs []privacy.Aggregate
	for i, c := range plan.Columns {
		f := arrow.Field{Name: orig[i].name, Nullable: true}
		switch {
		case c.Key >= 0:
			t, ok := dpKeyType(inCols[1+c.Key].typ)
			if !ok {
				return nil, refuse(LayerPolicy, nil, "the group key %q is of a type mode differential_privacy does not release; cast it to VARCHAR", orig[i].name)
			}
			f.Type = t
		case c.Aggregate == sqlcheck.DPCountRows || c.Aggregate == sqlcheck.DPCountUnits:
			f.Type, f.Nullable = arrow.PrimitiveTypes.Int64, false
			kind := privacy.CountRows
			if c.Aggregate == sqlcheck.DPCountUnits {
				kind = privacy.CountUnits
			}
			aggs = append(aggs, privacy.Aggregate{Kind: kind})
		default:
			f.Type, f.Nullable = arrow.PrimitiveTypes.Float64, false
			b, _ := dp.Bound(plan.Values[c.Value])
			kind := privacy.Sum
			if c.Aggregate == sqlcheck.DPAvg {
				kind = privacy.Avg
			}
			aggs = append(aggs, privacy.Aggregate{Kind: kind, Column: c.Value, Lower: b.Lower, Upper: b.Upper})
		}
		fields[i] = f
	}
	if len(aggs) == 0 {
		return nil, refuse(LayerPrivacy, nil, "the algorithm releases no aggregate: mode differential_privacy releases noisy COUNT(*), COUNT(DISTINCT privacy unit), SUM and AVG")
	}

	b := Bounding{Input: "(" + input + ")", Unit: sqlcheck.DPUnitColumn,
		MaxGroups: dp.MaxGroupsContributed, MaxRowsPerGroup: dp.MaxContributionsPerGroup, Key: NewBoundingKey()}
	for k := range plan.Keys {
		b.Groups = append(b.Groups, sqlcheck.DPKeyColumn(k))
	}
	for i, col := range plan.Values {
		bd, _ := dp.Bound(col)
		b.Values = append(b.Values, BoundedColumn{Column: sqlcheck.DPValueColumn(i), Lower: bd.Lower, Upper: bd.Upper})
	}
	bsql, err := b.SQL()
	if err != nil {
		return nil, err
	}
	args, err := bindArgs(conn, bsql, params)
	if err != nil {
		return nil, err
	}
	contributions, err := readContributions(ctx, conn, bsql, args, plan.Keys, len(plan.Values))
	if err != nil {
		return nil, s.queryError(ctx, err)
	}

	release := privacy.Params{Epsilon: dp.EpsilonPerRun, Delta: dp.DeltaPerRun,
		MaxGroupsContributed: dp.MaxGroupsContributed, MaxContributionsPerGroup: dp.MaxContributionsPerGroup, Aggregates: aggs}
	public, ok, err := privacy.PublicGroupsFor(dp, plan.KeyNames)
	if err != nil {
		return nil, refuse(LayerPolicy, nil, "%v", err)
	}
	if ok {
		release.PublicGroups = public
	}
	rows, err := privacy.Release(release, contributions)
	if err != nil {
		return nil, err
	}
	if !ok {
		slices.SortFunc(rows, func(x, y privacy.Row) int { return compareKeys(x.Group, y.Group) })
	}
	if int64(len(rows)) > policy.Output.MaxRows {
		return nil, refuse(LayerPolicy, nil, "the result has %d rows after differentially private partition selection, more than max_rows %d", len(rows), policy.Output.MaxRows)
	}
	return dpResult(arrow.NewSchema(fields, nil), plan, rows)
}

// readContributions runs the bounding query and reads each unit's
// contribution to each group.
func readContributions(ctx context.Context, conn driver.Conn, query string, args []any, keys, values int) ([]privacy.Contribution, error) {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	rows, err := conn.(driver.QueryerContext).QueryContext(ctx, query, named)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1+keys+1+2*values)
	var out []privacy.Contribution
	for {
		if err := rows.Next(dest); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		c := privacy.Contribution{Unit: unitValue(dest[0]), Group: make([]any, keys), Values: make([]privacy.Partial, values)}
		for k := range keys {
			v, err := keyValue(dest[1+k])
			if err != nil {
				return nil, refuse(LayerPolicy, nil, "group key %d: %v", k+1, err)
			}
			c.Group[k] = v
		}
		n, ok := dest[1+keys].(int64)
		if !ok {
			return nil, fmt.Errorf("engine: bounding returned a row count of type %T", dest[1+keys])
		}
		c.Rows = n
		for i := range values {
			cnt, ok1 := dest[2+keys+2*i].(int64)
			sum, ok2 := dest[3+keys+2*i].(float64)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("engine: bounding returned partial aggregates of types %T, %T", dest[2+keys+2*i], dest[3+keys+2*i])
			}
			c.Values[i] = privacy.Partial{Count: cnt, Sum: sum}
		}
		out = append(out, c)
	}
	return out, nil
}

// unitValue makes a privacy unit's value comparable: types the privacy
// package encodes stay as they are, anything else (a UUID, a blob) becomes
// its type and text.
func unitValue(v any) any {
	switch x := v.(type) {
	case string, bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64, time.Time:
		return x
	case []byte:
		return "b:" + string(x)
	case duckdb.Decimal:
		return decimalText(x)
	}
	return fmt.Sprintf("%T:%v", v, v)
}

// keyValue is a group key as the privacy package and the result take it.
func keyValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, float64, time.Time:
		return x, nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case float32:
		return float64(x), nil
	case duckdb.Decimal:
		return decimalText(x), nil
	}
	return nil, fmt.Errorf("a value of type %T is not a group key mode differential_privacy releases; cast it to VARCHAR", v)
}

// decimalText writes a decimal with exactly its scale's digits after the
// point, as DuckDB casts it to text and the contract's public groups list
// it.
func decimalText(d duckdb.Decimal) string {
	if d.Value == nil {
		return "0"
	}
	abs := new(big.Int).Abs(d.Value).String()
	sc := int(d.Scale)
	if len(abs) <= sc {
		abs = strings.Repeat("0", sc-len(abs)+1) + abs
	}
	text := abs
	if sc > 0 {
		text = abs[:len(abs)-sc] + "." + abs[len(abs)-sc:]
	}
	if d.Value.Sign() < 0 {
		text = "-" + text
	}
	return text
}

// dpKeyType is the Arrow type a group key of DuckDB type t is released as.
func dpKeyType(t duckdb.TypeInfo) (arrow.DataType, bool) {
	switch t.InternalType() {
	case duckdb.TYPE_VARCHAR, duckdb.TYPE_DECIMAL:
		return arrow.BinaryTypes.String, true
	case duckdb.TYPE_BOOLEAN:
		return arrow.FixedWidthTypes.Boolean, true
	case duckdb.TYPE_TINYINT, duckdb.TYPE_SMALLINT, duckdb.TYPE_INTEGER, duckdb.TYPE_BIGINT,
		duckdb.TYPE_UTINYINT, duckdb.TYPE_USMALLINT, duckdb.TYPE_UINTEGER:
		return arrow.PrimitiveTypes.Int64, true
	case duckdb.TYPE_FLOAT, duckdb.TYPE_DOUBLE:
		return arrow.PrimitiveTypes.Float64, true
	case duckdb.TYPE_DATE:
		return arrow.FixedWidthTypes.Date32, true
	case duckdb.TYPE_TIMESTAMP:
		return &arrow.TimestampType{Unit: arrow.Microsecond}, true
	}
	return nil, false
}

// compareKeys orders group keys: column by column, NULL first.
func compareKeys(x, y []any) int {
	for i := range min(len(x), len(y)) {
		if c := compareValue(x[i], y[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(x), len(y))
}

func compareValue(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case int64:
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, y)
		}
	case float64:
		if y, ok := b.(float64); ok {
			return cmp.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0
			case !x:
				return -1
			}
			return 1
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	}
	return strings.Compare(fmt.Sprintf("%T", a), fmt.Sprintf("%T", b))
}

// dpResult builds the released rows as one Arrow batch of schema.
func dpResult(schema *arrow.Schema, plan *sqlcheck.DPPlan, rows []privacy.Row) (*Result, error) {
	bld := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	defer bld.Release()
	for _, r := range rows {
		agg := 0
		for i, c := range plan.Columns {
			fb := bld.Field(i)
			if c.Key < 0 {
				switch b := fb.(type) {
				case *array.Int64Builder:
					b.Append(r.Values[agg].(int64))
				case *array.Float64Builder:
					b.Append(r.Values[agg].(float64))
				}
				agg++
				continue
			}
			v := r.Group[c.Key]
			if v == nil {
				fb.AppendNull()
				continue
			}
			if err := appendKey(fb, v); err != nil {
				return nil, fmt.Errorf("engine: output column %d: %w", i+1, err)
			}
		}
	}
	rec := bld.NewRecordBatch()
	return &Result{Schema: schema, Batches: []arrow.RecordBatch{rec}, Rows: int64(len(rows))}, nil
}

// appendKey appends a group key's value; the public groups of the
// contract come typed by their column (contracts.PublicGroup), the
// contributions' keys as keyValue made them.
func appendKey(fb array.Builder, v any) error {
	switch b := fb.(type) {
	case *array.StringBuilder:
		if s, ok := v.(string); ok {
			b.Append(s)
			return nil
		}
	case *array.BooleanBuilder:
		if x, ok := v.(bool); ok {
			b.Append(x)
			return nil
		}
	case *array.Int64Builder:
		if x, ok := v.(int64); ok {
			b.Append(x)
			return nil
		}
	case *array.Float64Builder:
		if x, ok := v.(float64); ok {
			b.Append(x)
			return nil
		}
	case *array.Date32Builder:
		if x, ok := v.(time.Time); ok {
			b.Append(arrow.Date32FromTime(x))
			return nil
		}
	case *array.TimestampBuilder:
		if x, ok := v.(time.Time); ok {
			b.Append(arrow.Timestamp(x.UnixMicro()))
			return nil
		}
	}
	return fmt.Errorf("a group key %v (%T) does not fit the column's type %s", v, v, fb.Type())
}
