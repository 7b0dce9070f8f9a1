package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestScanIsRepeatableAndComplete scans a table cut into batches of awkward
// sizes (empty, one row, around DuckDB's vector size), several times in
// one query and in parallel: every scan must see every row exactly once.
func TestScanIsRepeatableAndComplete(t *testing.T) {
	sizes := []int{0, 1, 2047, 2048, 2049, 5000, 3}
	tb := &table{name: "seq", schema: schemaOf(col("n", "int64"), col("s", "string"))}
	var total int64
	for _, size := range sizes {
		b := array.NewRecordBuilder(memory.DefaultAllocator, tb.schema)
		for range size {
			b.Field(0).(*array.Int64Builder).Append(total)
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("row-%d", total))
			total++
		}
		tb.batches = append(tb.batches, b.NewRecordBatch())
		b.Release()
	}
	// Slices of a batch, with a non-zero offset, scan too.
	tb.batches = append(tb.batches, tb.batches[5].NewSlice(100, 300))
	n := total + 200
	var sumN int64
	for _, b := range tb.batches {
		for _, v := range b.Column(0).(*array.Int64).Int64Values() {
			sumN += v
		}
	}
	for _, threads := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			s := newSession(t, Config{Threads: threads})
			load(t, s, tb)
			q := `SELECT (SELECT count(*) FROM seq) AS rows,
				(SELECT sum(n)::BIGINT FROM seq) AS total,
				(SELECT count(*) FROM seq a JOIN seq b USING (n, s)) AS self_join,
				(SELECT count(*) FROM seq WHERE s = 'row-' || n::VARCHAR) AS consistent,
				(SELECT max(n) FROM seq) AS top`
			res, err := s.Run(context.Background(), q, noLimit)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Release()
			got := res.Batches[0]
			want := []int64{n, sumN, total + 200*2 + 200, n, total - 1}
			for i, w := range want {
				if v := got.Column(i).(*array.Int64).Value(0); v != w {
					t.Errorf("%s = %d, want %d", got.ColumnName(i), v, w)
				}
			}
		})
	}
}

func TestEmptyTable(t *testing.T) {
	s := newSession(t, Config{})
	tb := &table{name: "empty", schema: schemaOf(col("n", "int64"), col("s", "string"))}
	load(t, s, tb)
	res, err := s.Run(context.Background(), "SELECT count(*) AS c, max(e1.s) AS m FROM empty e1 CROSS JOIN empty e2", noLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	if c := res.Batches[0].Column(0).(*array.Int64).Value(0); c != 0 || !res.Batches[0].Column(1).IsNull(0) {
		t.Fatalf("got %v", res.Batches[0])
	}
}
