package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
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

// memSource is a Source over record batches in memory, counting the blocks
// it hands out and those the engine gives back.
type memSource struct {
	blocks            [][]arrow.RecordBatch
	rows              int64
	fetched, released atomic.Int64
}

func (m *memSource) Rows() int64 { return m.rows }
func (m *memSource) Blocks() int { return len(m.blocks) }
func (m *memSource) ReadBlock(i int) ([]arrow.RecordBatch, func(), error) {
	for _, b := range m.blocks[i] {
		b.Retain()
	}
	m.fetched.Add(1)
	return m.blocks[i], func() { m.released.Add(1) }, nil
}

// TestSourceScanIsCompleteAndReleasesBlocks scans a dataset read from a
// Source — one block of many windows first (its windows are shared by the
// workers), then blocks of awkward sizes, an empty one among them — several
// times in one query, with 1, 2 and 4 threads: every scan must see every
// row exactly once, and every block read must be handed back once.
func TestSourceScanIsCompleteAndReleasesBlocks(t *testing.T) {
	schema := schemaOf(col("n", "int64"), col("s", "string"))
	var total, sumN int64
	batch := func(rows int) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		for range rows {
			b.Field(0).(*array.Int64Builder).Append(total)
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("row-%d", total))
			sumN += total
			total++
		}
		return b.NewRecordBatch()
	}
	src := &memSource{blocks: [][]arrow.RecordBatch{
		{batch(40 * 2048)},
		{batch(1), batch(2049)},
		{},
		{batch(0), batch(5000)},
		{batch(2047)},
	}}
	defer func() {
		for _, bs := range src.blocks {
			for _, b := range bs {
				b.Release()
			}
		}
	}()
	src.rows = total
	for _, threads := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			src.fetched.Store(0)
			src.released.Store(0)
			s, err := New(Config{Threads: threads})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.LoadSource(context.Background(), "seq", schema, src); err != nil {
				t.Fatal(err)
			}
			q := `SELECT (SELECT count(*) FROM seq) AS rows,
				(SELECT sum(n)::BIGINT FROM seq) AS total,
				(SELECT count(*) FROM seq a JOIN seq b USING (n, s)) AS self_join,
				(SELECT count(*) FROM seq WHERE s = 'row-' || n::VARCHAR) AS consistent,
				(SELECT count(DISTINCT n) FROM seq) AS distinct_rows`
			res, err := s.Run(context.Background(), q, noLimit)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Release()
			got := res.Batches[0]
			for i, w := range []int64{total, sumN, total, total, total} {
				if v := got.Column(i).(*array.Int64).Value(0); v != w {
					t.Errorf("%s = %d, want %d", got.ColumnName(i), v, w)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			scans := int64(6 * len(src.blocks))
			if f, r := src.fetched.Load(), src.released.Load(); f != scans || r != f {
				t.Errorf("blocks read %d times and handed back %d times; want %d and %d", f, r, scans, scans)
			}
		})
	}
}
