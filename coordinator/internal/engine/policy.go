package engine

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/contracts"
)

// applyPolicy reads the query's result and keeps what policy releases. It
// stops reading as soon as the kept rows exceed MaxRows.
func applyPolicy(rr array.RecordReader, policy contracts.Output) (*Result, error) {
	schema := rr.Schema()
	col := -1
	if policy.MinGroupSize > 0 {
		var err error
		if col, err = groupSizeColumn(schema, policy.GroupSizeColumn); err != nil {
			return nil, err
		}
	}
	res := &Result{Schema: schema}
	ok := false
	defer func() {
		if !ok {
			res.Release()
		}
	}()
	for rr.Next() {
		rec := rr.RecordBatch()
		kept, suppressed, err := filterBatch(rec, col, policy.MinGroupSize)
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

// filterBatch returns the rows of rec whose column col is at least k, as a
// batch in Go memory (nil if none), and the number of rows dropped. Nulls
// are dropped. col < 0 keeps every row.
func filterBatch(rec arrow.RecordBatch, col int, k int64) (arrow.RecordBatch, int64, error) {
	n := int(rec.NumRows())
	keep := make([]bool, n)
	kept := 0
	for i := range n {
		keep[i] = col < 0 || atLeast(rec.Column(col), i, k)
		if keep[i] {
			kept++
		}
	}
	suppressed := int64(n - kept)
	if kept == 0 {
		return nil, suppressed, nil
	}
	// Copy the kept runs into fresh Go-allocated arrays, so the result does
	// not depend on DuckDB's memory.
	cols := make([]arrow.Array, rec.NumCols())
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
		out, err := array.Concatenate(parts, memory.DefaultAllocator)
		for _, p := range parts {
			p.Release()
		}
		if err != nil {
			return nil, 0, fmt.Errorf("engine: copying result column %q: %w", rec.Schema().Field(c).Name, err)
		}
		cols[c] = out
	}
	return array.NewRecordBatch(rec.Schema(), cols, int64(kept)), suppressed, nil
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
