package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
	"cleanroom.dev/cleanroom/contracts"
)

// rowFilter decides which rows of a query's result are released.
type rowFilter struct {
	counts  []int // columns that must each be at least k
	k       int64
	visible int   // the leading columns released; the rest are the engine's
	offset  int64 // rows, of those kept, to skip
	limit   int64 // rows to release at most; -1 for no limit
	passed  int64 // rows that passed k so far
}

// applyPolicy reads the query's result and keeps what the output policy
// releases: in mode custom, rows whose GroupSizeColumn is at least k; in
// mode aggregate, rows whose every privacy-unit count (the analysis's
// Counts, the result's last columns) is at least k, then the query's
// OFFSET and LIMIT, without the counts, under names (the algorithm's
// column names, when the query ran rewritten). It stops reading as soon as
// the kept rows exceed MaxRows.
func applyPolicy(rr array.RecordReader, policy contracts.Output, analysis *sqlcheck.Analysis, names []string) (*Result, error) {
	schema := rr.Schema()
	f := &rowFilter{k: policy.MinGroupSize, visible: schema.NumFields(), limit: -1}
	switch {
	case policy.Mode == contracts.ModeCustom && policy.MinGroupSize > 0:
		col, err := groupSizeColumn(schema, policy.GroupSizeColumn)
		if err != nil {
			return nil, err
		}
		f.counts = []int{col}
	case policy.Mode == contracts.ModeAggregate && analysis != nil && len(analysis.Counts) > 0:
		// The count columns, each once (readings with equal units share
		// one), in the order the rewrite added them.
		var columns []string
		for _, c := range analysis.Counts {
			if !slices.Contains(columns, c.Column) {
				columns = append(columns, c.Column)
			}
		}
		n := len(columns)
		f.visible = schema.NumFields() - n
		if f.visible < 0 {
			return nil, fmt.Errorf("engine: the rewritten query returned %d columns, fewer than its %d privacy-unit counts", schema.NumFields(), n)
		}
		for i, name := range columns {
			field := schema.Field(f.visible + i)
			if field.Name != name || !arrow.IsInteger(field.Type.ID()) {
				return nil, fmt.Errorf("engine: the rewritten query's column %d is %s %s, not the privacy-unit count %s", f.visible+i, field.Name, field.Type, name)
			}
			f.counts = append(f.counts, f.visible+i)
		}
		f.offset, f.limit = analysis.Offset, analysis.Limit
		for _, field := range schema.Fields()[:f.visible] {
			if nestedType(field.Type) {
				return nil, refuse(LayerPolicy, nil, "the result column %q has the nested type %s; in mode aggregate a result over a protected dataset may not carry lists, arrays, structs, maps or unions, which can hold members' values",
					field.Name, field.Type)
			}
			if sqlcheck.IsReserved(field.Name) {
				return nil, refuse(LayerPolicy, nil, "the result has a column %q, a name reserved for the engine's own columns", field.Name)
			}
		}
	}
	out := schema
	if f.visible < schema.NumFields() || names != nil {
		fields := slices.Clone(schema.Fields()[:f.visible])
		for i := range fields {
			if i < len(names) {
				fields[i].Name = names[i]
			}
		}
		md := schema.Metadata()
		out = arrow.NewSchema(fields, &md)
	}
	res := &Result{Schema: out}
	ok := false
	defer func() {
		if !ok {
			res.Release()
		}
	}()
	for rr.Next() {
		rec := rr.RecordBatch()
		kept, suppressed, err := f.batch(rec, out)
		if err != nil {
			return nil, err
		}
		res.Suppressed += suppressed
		if kept == nil {
			continue
		}
		res.Rows += kept.NumRows()
		res.Batches = append(res.Batches, kept)
		if res.Rows > policy.MaxRows {
			return nil, refuse(LayerPolicy, nil, "the result has more than max_rows (%d) rows after suppressing groups below min_group_size (%d); results are refused, never truncated",
				policy.MaxRows, policy.MinGroupSize)
		}
	}
	if err := rr.Err(); err != nil {
		return nil, err
	}
	ok = true
	return res, nil
}

// groupSizeColumn finds the policy's group size column in the result: it
// must exist once, by exact name, with an integer type.
func groupSizeColumn(schema *arrow.Schema, name string) (int, error) {
	idx := schema.FieldIndices(name)
	var names []string
	for _, f := range schema.Fields() {
		names = append(names, f.Name)
	}
	switch {
	case len(idx) == 0:
		hint := ""
		for _, n := range names {
			if strings.EqualFold(n, name) {
				hint = fmt.Sprintf(" (the result has %q: names must match exactly)", n)
			}
		}
		return 0, refuse(LayerPolicy, nil, "the result has no column %q, which the output policy's group_size_column names%s; its columns are %s",
			name, hint, strings.Join(names, ", "))
	case len(idx) > 1:
		return 0, refuse(LayerPolicy, nil, "the result has %d columns named %q, the output policy's group_size_column; it must be unique", len(idx), name)
	}
	if !arrow.IsInteger(schema.Field(idx[0]).Type.ID()) {
		return 0, refuse(LayerPolicy, nil, "the result column %q (the output policy's group_size_column) has type %s; it must be an integer, e.g. count(DISTINCT ...) or a CAST to BIGINT",
			name, schema.Field(idx[0]).Type)
	}
	return idx[0], nil
}

// batch returns the rows of rec the filter releases, with the schema out
// (rec's leading columns), as a batch in Go memory (nil if none), and the
// number of rows suppressed for k. Nulls in a count are suppressed.
func (f *rowFilter) batch(rec arrow.RecordBatch, out *arrow.Schema) (arrow.RecordBatch, int64, error) {
	n := int(rec.NumRows())
	keep := make([]bool, n)
	kept := 0
	var suppressed int64
	for i := range n {
		pass := true
		for _, c := range f.counts {
			if !atLeast(rec.Column(c), i, f.k) {
				pass = false
				break
			}
		}
		if !pass {
			suppressed++
			continue
		}
		f.passed++
		if f.passed <= f.offset || (f.limit >= 0 && f.passed > f.offset+f.limit) {
			continue
		}
		keep[i] = true
		kept++
	}
	if kept == 0 {
		return nil, suppressed, nil
	}
	// Copy the kept runs into fresh Go-allocated arrays, so the result does
	// not depend on DuckDB's memory.
	cols := make([]arrow.Array, f.visible)
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for c := range cols {
		var parts []arrow.Array
		for i := 0; i < n; {
			if !keep[i] {
				i++
				continue
			}
			j := i
			for j < n && keep[j] {
				j++
			}
			parts = append(parts, array.NewSlice(rec.Column(c), int64(i), int64(j)))
			i = j
		}
		res, err := array.Concatenate(parts, memory.DefaultAllocator)
		for _, p := range parts {
			p.Release()
		}
		if err != nil {
			return nil, 0, fmt.Errorf("engine: copying result column %q: %w", rec.Schema().Field(c).Name, err)
		}
		cols[c] = res
	}
	return array.NewRecordBatch(out, cols, int64(kept)), suppressed, nil
}

// atLeast reports whether integer array a holds a non-null value ≥ k at i.
func atLeast(a arrow.Array, i int, k int64) bool {
	if a.IsNull(i) {
		return false
	}
	switch a := a.(type) {
	case *array.Int8:
		return int64(a.Value(i)) >= k
	case *array.Int16:
		return int64(a.Value(i)) >= k
	case *array.Int32:
		return int64(a.Value(i)) >= k
	case *array.Int64:
		return a.Value(i) >= k
	case *array.Uint8:
		return int64(a.Value(i)) >= k
	case *array.Uint16:
		return int64(a.Value(i)) >= k
	case *array.Uint32:
		return int64(a.Value(i)) >= k
	case *array.Uint64:
		return k <= 0 || a.Value(i) >= uint64(k)
	}
	return false
}
