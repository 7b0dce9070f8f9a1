package connectors

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"

	"cleanroom.dev/cleanroom/contracts"
)

var seqCols = []contracts.Column{col("n", "int64"), col("s", "string")}

// writeSeqParquet writes a Parquet file whose row groups hold the given
// numbers of rows, n counting up from 0 across the file, and returns its
// path.
func writeSeqParquet(t testing.TB, groups []int) string {
	t.Helper()
	schema := Schema(seqCols)
	var recs []arrow.RecordBatch
	next := int64(0)
	for _, rows := range groups {
		nb := array.NewInt64Builder(memory.DefaultAllocator)
		sb := array.NewStringBuilder(memory.DefaultAllocator)
		for range rows {
			nb.Append(next)
			sb.Append("row é " + string(rune('a'+next%26)))
			next++
		}
		n, s := nb.NewArray(), sb.NewArray()
		recs = append(recs, array.NewRecordBatch(schema, []arrow.Array{n, s}, int64(rows)))
		n.Release()
		s.Release()
		nb.Release()
		sb.Release()
	}
	path := parquetFile(t, "seq.parquet", schema, recs)
	return path
}

// withProcs runs f with GOMAXPROCS n (the number of row groups decoded at
// once follows it).
func withProcs(n int, f func()) {
	old := runtime.GOMAXPROCS(n)
	defer runtime.GOMAXPROCS(old)
	f()
}

// readSeq reads the file and checks that n counts up from 0 without a gap;
// it returns the rows read and the error that ended the reading.
func readSeq(t *testing.T, path string, opts Options) (int64, error) {
	t.Helper()
	r, err := Open(path, FormatParquet, seqCols, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var want int64
	for r.Next() {
		n := r.RecordBatch().Column(0).(*array.Int64)
		for i := range n.Len() {
			if n.Value(i) != want {
				t.Fatalf("row %d has n = %d: rows out of order", want, n.Value(i))
			}
			want++
		}
	}
	return want, r.Err()
}

// TestParquetRowGroupsInOrder checks that row groups decoded concurrently
// are delivered in file order, whatever the number of workers, the sizes
// of the row groups (empty ones too) and the batch size.
func TestParquetRowGroupsInOrder(t *testing.T) {
	groups := []int{1000, 1, 0, 5000, 3, 0, 0, 2500}
	for range 25 {
		groups = append(groups, 777)
	}
	var total int64
	for _, g := range groups {
		total += int64(g)
	}
	path := writeSeqParquet(t, groups)
	for _, procs := range []int{1, 2, 3, 8} {
		for _, batch := range []int{0, 7, 1000} {
			withProcs(procs, func() {
				rows, err := readSeq(t, path, Options{BatchSize: batch})
				if err != nil || rows != total {
					t.Fatalf("GOMAXPROCS %d, batch %d: %d rows, %v; want %d", procs, batch, rows, err, total)
				}
			})
		}
	}
}

// TestParquetRowGroupError corrupts one row group in the middle of a file:
// the rows of the groups before it arrive in order, then the error, with
// every worker stopped.
func TestParquetRowGroupError(t *testing.T) {
	groups := make([]int, 20)
	for i := range groups {
		groups[i] = 1000
	}
	path := writeSeqParquet(t, groups)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	const bad = 12
	cc, err := pf.MetaData().RowGroup(bad).ColumnChunk(0)
	if err != nil {
		t.Fatal(err)
	}
	off := cc.DataPageOffset()
	pf.Close()
	for i := range int64(64) {
		data[off+i] = 0xff
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for _, procs := range []int{1, 2, 8} {
		withProcs(procs, func() {
			rows, err := readSeq(t, path, Options{BatchSize: 300})
			var ie *InputError
			if !errors.As(err, &ie) || !errors.Is(err, ErrSyntax) || ie.RowGroup != bad {
				t.Fatalf("GOMAXPROCS %d: %v, want a syntax error of the Parquet input in row group %d", procs, err, bad)
			}
			if rows != bad*1000 {
				t.Fatalf("GOMAXPROCS %d: %d rows before the error, want the %d of the row groups before the corrupt one", procs, rows, bad*1000)
			}
		})
	}
	waitGoroutines(t, before)
}

// TestParquetReleaseEarly stops reading after one batch: the workers
// decoding the row groups ahead stop, and their batches are freed.
func TestParquetReleaseEarly(t *testing.T) {
	groups := make([]int, 16)
	for i := range groups {
		groups[i] = 4000
	}
	path := writeSeqParquet(t, groups)
	before := runtime.NumGoroutine()
	withProcs(4, func() {
		for range 10 {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			r, err := Open(path, FormatParquet, seqCols, Options{BatchSize: 100, Allocator: mem})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Next() {
				t.Fatal(r.Err())
			}
			r.Release()
			mem.AssertSize(t, 0)
		}
	})
	waitGoroutines(t, before)
}

// TestParquetBoundedRowGroups checks that the workers run only a little
// ahead of the reader: while one batch is held, the memory allocated stays
// far below the decoded size of the file.
func TestParquetBoundedRowGroups(t *testing.T) {
	groups := make([]int, 40)
	for i := range groups {
		groups[i] = 25_000
	}
	path := writeSeqParquet(t, groups) // ≈ 40 × 0.6 MB decoded
	withProcs(2, func() {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		r, err := Open(path, FormatParquet, seqCols, Options{Allocator: mem})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Release()
		if !r.Next() {
			t.Fatal(r.Err())
		}
		time.Sleep(200 * time.Millisecond) // room for the workers to run ahead, were they unbounded
		// Two workers, each with a batch queued and one being decoded, its
		// column readers' buffers, and the batch delivered.
		const bound = 10 << 20
		if n := mem.CurrentAlloc(); n > bound {
			t.Fatalf("%d MB allocated while one batch is held; want at most %d MB", n>>20, bound>>20)
		}
		t.Logf("%.1f MB allocated while one batch is held", float64(mem.CurrentAlloc())/(1<<20))
	})
}

func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	for i := 0; runtime.NumGoroutine() > before && i < 200; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after reading, %d before: a worker leaked", n, before)
	}
}
