package connectors

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/klauspost/compress/s2"
)

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func same(a, b []byte) bool { return unsafe.SliceData(a) == unsafe.SliceData(b) }

// TestBufferPoolReuse: a freed buffer is handed out again for a request of
// its size class, zeroed, aligned and no longer than asked.
func TestBufferPoolReuse(t *testing.T) {
	for _, size := range []int{minPooledSize, 5000, 100_000, 1 << 20, maxPooledSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			p := newBufferPool(defaultMaxIdle)
			a := p.Allocate(size)
			if len(a) != size || cap(a) != size || uintptr(unsafe.Pointer(unsafe.SliceData(a)))%alignment != 0 {
				t.Fatalf("len %d cap %d, want %d, 64-byte aligned", len(a), cap(a), size)
			}
			fill(a, 0xAA)
			p.Free(a)
			b := p.Allocate(max(minPooledSize, size-size/8))
			if !same(a, b) || p.reused != 1 {
				t.Fatalf("a freed buffer of the class is not reused (reused %d)", p.reused)
			}
			if !allZero(b) {
				t.Fatal("a reused buffer is not zeroed")
			}
			p.Free(b)
			if p.outstanding() != 0 {
				t.Fatalf("%d buffers out after all were freed", p.outstanding())
			}
		})
	}
}

// TestBufferPoolUnpooled: buffers smaller or larger than the classes are
// plain allocations, never kept.
func TestBufferPoolUnpooled(t *testing.T) {
	for _, size := range []int{0, 1, minPooledSize - 1, maxPooledSize + 1} {
		p := newBufferPool(1 << 30)
		a := p.Allocate(size)
		if len(a) != size {
			t.Fatalf("Allocate(%d): len %d", size, len(a))
		}
		fill(a, 1)
		p.Free(a)
		if p.idle != 0 || p.outstanding() != 0 {
			t.Fatalf("Allocate(%d): kept (%d idle bytes, %d out)", size, p.idle, p.outstanding())
		}
		if b := p.Allocate(size); size > 0 && (same(a, b) || !allZero(b)) {
			t.Fatalf("Allocate(%d): an unpooled buffer handed out again", size)
		}
	}
}

// TestBufferPoolHeldNotReused: a buffer not freed, freed twice, or not
// the pool's, is never handed out (again).
func TestBufferPoolHeldNotReused(t *testing.T) {
	p := newBufferPool(defaultMaxIdle)
	held := p.Allocate(8192)
	other := p.Allocate(8192)
	if same(held, other) {
		t.Fatal("two live buffers share memory")
	}
	p.Free(other)
	p.Free(other) // a second Free is ignored
	x, y := p.Allocate(8192), p.Allocate(8192)
	if same(x, y) || same(x, held) || same(y, held) {
		t.Fatal("a buffer freed twice, or still held, was handed out twice")
	}
	foreign := alignedBytes(8192)
	p.Free(foreign) // not the pool's: ignored
	if z := p.Allocate(8192); same(z, foreign) {
		t.Fatal("a buffer the pool never allocated was handed out")
	}
}

// TestBufferPoolBounded: the pool keeps at most maxIdle bytes.
func TestBufferPoolBounded(t *testing.T) {
	const maxIdle = 1 << 20
	p := newBufferPool(maxIdle)
	var bufs [][]byte
	for range 100 {
		bufs = append(bufs, p.Allocate(64<<10))
	}
	for _, b := range bufs {
		p.Free(b)
	}
	if p.idle > maxIdle || p.idle != maxIdle {
		t.Fatalf("%d bytes kept, want %d (the bound)", p.idle, maxIdle)
	}
	if p.outstanding() != 0 {
		t.Fatalf("%d buffers out after all were freed", p.outstanding())
	}
}

// TestBufferPoolReallocate: growing keeps the bytes and zeroes the rest,
// in place within the class (also after a shrink), to a new buffer beyond
// it, freeing the old.
func TestBufferPoolReallocate(t *testing.T) {
	p := newBufferPool(defaultMaxIdle)
	// Dirty a whole class buffer, then take it again small.
	d := p.Allocate(16384)
	fill(d, 0xFF)
	p.Free(d)
	a := p.Allocate(9000)
	if !same(a, d) || !allZero(a) {
		t.Fatal("want the dirty buffer back, zeroed")
	}
	fill(a, 7)
	a = p.Reallocate(12000, a) // in place
	if !same(a, d) || len(a) != 12000 || !bytes.Equal(a[:9000], bytes.Repeat([]byte{7}, 9000)) || !allZero(a[9000:]) {
		t.Fatal("in-place growth did not keep the prefix and zero the rest")
	}
	fill(a, 8)
	a = p.Reallocate(100, a) // shrink
	a = p.Reallocate(16000, a)
	if !same(a, d) || !bytes.Equal(a[:100], bytes.Repeat([]byte{8}, 100)) || !allZero(a[100:]) {
		t.Fatal("growth after a shrink did not zero the bytes beyond the shrunk length")
	}
	fill(a, 9)
	b := p.Reallocate(40000, a) // beyond the class
	if same(a, b) || len(b) != 40000 || !bytes.Equal(b[:16000], bytes.Repeat([]byte{9}, 16000)) || !allZero(b[16000:]) {
		t.Fatal("growth beyond the class did not copy the bytes and zero the rest")
	}
	if c := p.Allocate(16384); !same(c, d) || !allZero(c) {
		t.Fatal("the buffer left by a growth was not freed for reuse")
	}
}

// TestReaderPoolsBuffers: a Reader given no allocator reuses the buffers
// of the batches released, and the values it delivers are those written.
func TestReaderPoolsBuffers(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := o.Allocator.(*bufferPool); !ok {
		t.Fatalf("default allocator %T, want a buffer pool", o.Allocator)
	}
	groups := make([]int, 12)
	for i := range groups {
		groups[i] = 3000
	}
	path := writeSeqParquet(t, groups)
	for _, procs := range []int{1, 4} {
		withProcs(procs, func() {
			pool := newBufferPool(defaultMaxIdle)
			mem := memory.NewCheckedAllocator(pool)
			r, err := Open(path, FormatParquet, seqCols, Options{BatchSize: 1000, Allocator: mem})
			if err != nil {
				t.Fatal(err)
			}
			var next int64
			for r.Next() {
				rec := r.RecordBatch()
				n, s := rec.Column(0).(*array.Int64), rec.Column(1).(*array.String)
				for i := range n.Len() {
					if n.Value(i) != next || s.Value(i) != "row é "+string(rune('a'+next%26)) {
						t.Fatalf("row %d: %d %q", next, n.Value(i), s.Value(i))
					}
					next++
				}
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			r.Release()
			mem.AssertSize(t, 0)
			if next != 36000 || pool.reused == 0 || pool.outstanding() != 0 {
				t.Fatalf("%d rows, %d buffers reused, %d fresh, %d out", next, pool.reused, pool.fresh, pool.outstanding())
			}
			t.Logf("GOMAXPROCS %d: %d buffers reused, %d fresh", procs, pool.reused, pool.fresh)
		})
	}
}

// TestProfileKeepsStrings: a Profile's smallest and largest strings stay
// right after the batches they came from are released and their buffers
// reused.
func TestProfileKeepsStrings(t *testing.T) {
	schema := Schema(seqCols)
	var recs []arrow.RecordBatch
	for g := range 6 {
		nb := array.NewInt64Builder(memory.DefaultAllocator)
		sb := array.NewStringBuilder(memory.DefaultAllocator)
		for i := range 2000 {
			nb.Append(int64(i))
			v := fmt.Sprintf("m-%d-%05d", g, i) // g 0 holds the least, g 5 the greatest
			sb.Append(v)
		}
		n, s := nb.NewArray(), sb.NewArray()
		recs = append(recs, array.NewRecordBatch(schema, []arrow.Array{n, s}, 2000))
		n.Release()
		s.Release()
		nb.Release()
		sb.Release()
	}
	// The least first: its buffer is reused by the next batches.
	path := parquetFile(t, "p.parquet", schema, recs)
	withProcs(1, func() {
		rd, err := Open(path, FormatParquet, seqCols, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Release()
		p := NewProfiler(seqCols)
		for rd.Next() {
			p.Add(rd.RecordBatch())
		}
		if err := rd.Err(); err != nil {
			t.Fatal(err)
		}
		cp := p.Profile().Columns[1]
		if cp.Min != `"m-0-00000"` || cp.Max != `"m-5-01999"` {
			t.Fatalf("min %s max %s, want \"m-0-00000\" and \"m-5-01999\"", cp.Min, cp.Max)
		}
	})
}

// writeSnappyParquet writes rows of seqCols as one Snappy-compressed row
// group, strings plain-encoded, as DuckDB and Spark write them, and returns
// the file and the byte range of the string column's chunk.
func writeSnappyParquet(t *testing.T, rows int) (data []byte, start, end int64) {
	t.Helper()
	nb := array.NewInt64Builder(memory.DefaultAllocator)
	sb := array.NewStringBuilder(memory.DefaultAllocator)
	defer nb.Release()
	defer sb.Release()
	for i := range rows {
		nb.Append(int64(i))
		sb.Append(fmt.Sprintf("value %d é", i))
	}
	n, s := nb.NewArray(), sb.NewArray()
	defer n.Release()
	defer s.Release()
	rec := array.NewRecordBatch(Schema(seqCols), []arrow.Array{n, s}, int64(rows))
	defer rec.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(false))
	fw, err := pqarrow.NewFileWriter(rec.Schema(), &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	cc, err := pf.MetaData().RowGroup(0).ColumnChunk(1)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Compression() != compress.Codecs.Snappy {
		t.Fatalf("column chunk compressed with %s", cc.Compression())
	}
	return buf.Bytes(), cc.DataPageOffset(), cc.DataPageOffset() + cc.TotalCompressedSize()
}

// TestCorruptSnappyPage damages the bytes of a Snappy-compressed string
// column one at a time (every 13th): every damage is refused as a syntax error of the
// Parquet input or read as some other valid values, never a panic, and the
// pool has every buffer back afterwards. A damaged Snappy block is
// reported as such.
func TestCorruptSnappyPage(t *testing.T) {
	data, start, end := writeSnappyParquet(t, 3000)
	dir := t.TempDir()
	snappyErrors := 0
	var example string
	for off := start; off < end; off += 13 {
		d := bytes.Clone(data)
		d[off] = 0xfe // a copy tag whose offset reaches before the block
		path := filepath.Join(dir, "bad.parquet")
		if err := os.WriteFile(path, d, 0o600); err != nil {
			t.Fatal(err)
		}
		pool := newBufferPool(defaultMaxIdle)
		r, err := Open(path, FormatParquet, seqCols, Options{BatchSize: 1000, Allocator: pool})
		if err == nil {
			var recs []arrow.RecordBatch
			recs, err = readAll(t, r)
			releaseAll(recs)
		}
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrValue) {
				t.Fatalf("byte %d: %v, want an input error", off, err)
			}
			if errors.Is(err, s2.ErrCorrupt) {
				snappyErrors++
				example = err.Error()
				if msg := err.Error(); !strings.Contains(msg, "parquet row group 0: cannot decode the parquet input") || !strings.Contains(msg, "corrupt input") {
					t.Fatalf("byte %d: unclear error %q", off, msg)
				}
			}
		}
		if n := pool.outstanding(); n != 0 {
			t.Fatalf("byte %d: %d buffers not freed after the reader was released", off, n)
		}
	}
	if snappyErrors == 0 {
		t.Fatal("no damage was reported as a corrupt Snappy block")
	}
	t.Logf("%d reported as corrupt Snappy blocks, such as: %s", snappyErrors, example)
}
