package stored

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/cleanroom/envelope"
)

var testContract = sha256.Sum256([]byte("stored test contract"))

var testSchema = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String}}, nil)

// storeDataset writes a stored envelope of rows rows, in batches of batch
// rows, sealed to key, for dataset id.
func storeDataset(t *testing.T, key hpke.PrivateKey, id string, rows, batch int) []byte {
	t.Helper()
	var out bytes.Buffer
	ew, err := envelope.NewWriter(&out, envelope.Header{Kind: envelope.KindDataset, ContractID: testContract, ObjectID: id, SegmentSize: SegmentSize},
		[]hpke.PublicKey{key.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(ew, testSchema)
	b := array.NewRecordBuilder(memory.DefaultAllocator, testSchema)
	defer b.Release()
	for off := 0; off < rows; off += batch {
		for i := off; i < min(off+batch, rows); i++ {
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("%s-%d", id, i))
		}
		rec := b.NewRecordBatch()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// trackedAlloc allocates from the Go heap and records, for every buffer
// freed, whether it was all zeros when freed.
type trackedAlloc struct {
	mu      sync.Mutex
	allocs  int
	live    int
	freed   int
	unwiped int
}

func (a *trackedAlloc) alloc(size int64) ([]byte, func(), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allocs++
	a.live++
	b := make([]byte, size)
	return b, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.live--
		a.freed++
		if bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) {
			a.unwiped++
		}
	}, nil
}

func openTest(t *testing.T, key hpke.PrivateKey, id string, env []byte, bufs *Buffers) *Dataset {
	t.Helper()
	d, err := Open(bytes.NewReader(env), int64(len(env)), key, envelope.Expect{Kind: envelope.KindDataset, ContractID: testContract, ObjectID: id}, nil, testSchema, bufs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func testKey(t *testing.T) hpke.PrivateKey {
	t.Helper()
	k, err := hpke.MLKEM768X25519().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// readAll reads every block of d one at a time, releasing each before the
// next, and returns a digest of its rows.
func readAll(t *testing.T, d *Dataset) ([32]byte, int64) {
	t.Helper()
	h := sha256.New()
	var rows int64
	for i := range d.Blocks() {
		recs, release, err := d.ReadBlock(i)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			ids := r.Column(0).(*array.Int64)
			ss := r.Column(1).(*array.String)
			for j := range int(r.NumRows()) {
				fmt.Fprintf(h, "%d,%s;", ids.Value(j), ss.Value(j))
			}
			rows += r.NumRows()
			r.Release()
		}
		release()
	}
	return [32]byte(h.Sum(nil)), rows
}

// TestBuffersSharedAcrossDatasets reads two datasets, one block at a time,
// with one pool: one buffer serves every block
// of both, as large as the largest block; Close wipes it before freeing it,
// and reads after Close fail.
func TestBuffersSharedAcrossDatasets(t *testing.T) {
	key := testKey(t)
	// A small dataset of one block of a few segments; a large one of
	// several blocks of BlockTarget or more.
	small := storeDataset(t, key, "small", 30_000, 1_000)
	large := storeDataset(t, key, "large", 400_000, 100_000)
	var a trackedAlloc
	bufs := NewBuffers(a.alloc)
	ds := openTest(t, key, "small", small, bufs)
	dl := openTest(t, key, "large", large, bufs)
	if dl.Blocks() < 2 {
		t.Fatalf("want several blocks in the large dataset, got %d", dl.Blocks())
	}
	largestOf := func(d *Dataset) (n int64) {
		for _, b := range d.blocks {
			n = max(n, b.count*SegmentSize)
		}
		return n
	}
	largest := max(largestOf(ds), largestOf(dl))
	if largestOf(ds) == largestOf(dl) {
		t.Fatalf("test data: both datasets' largest blocks are %d bytes; want different sizes", largest)
	}
	for _, d := range []*Dataset{ds, dl, ds} {
		if _, rows := readAll(t, d); rows != d.Rows() {
			t.Fatalf("read %d rows, the index records %d", rows, d.Rows())
		}
	}
	n, size, peak := bufs.Allocated()
	if a.allocs != 1 || n != 1 || size != largest || peak != largest {
		t.Fatalf("reading %d blocks one at a time from two datasets allocated %d buffers (%d now, %d bytes, peak %d); want one of %d bytes (the largest block)",
			ds.Blocks()*2+dl.Blocks(), a.allocs, n, size, peak, largest)
	}
	bufs.Close()
	if a.live != 0 || a.unwiped != 0 {
		t.Fatalf("after Close: %d buffers not freed, %d freed without being wiped", a.live, a.unwiped)
	}
	if _, _, err := ds.ReadBlock(0); err == nil || !strings.Contains(err.Error(), "dataset small") {
		t.Fatalf("a read after the buffers' Close: %v", err)
	}
}

// TestBuffersConcurrent reads the blocks of two datasets on several
// goroutines at once, each holding one block at a time: the rows are
// every dataset's, and the pool never holds more buffers than blocks were
// in use at once.
func TestBuffersConcurrent(t *testing.T) {
	key := testKey(t)
	env1 := storeDataset(t, key, "one", 400_000, 20_000)
	env2 := storeDataset(t, key, "two", 300_000, 20_000)
	var a trackedAlloc
	bufs := NewBuffers(a.alloc)
	defer bufs.Close()
	d1 := openTest(t, key, "one", env1, bufs)
	d2 := openTest(t, key, "two", env2, bufs)
	want1, _ := readAll(t, d1)
	want2, _ := readAll(t, d2)
	const workers = 3
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for _, d := range []*Dataset{d1, d2} {
				for i := w; i < d.Blocks(); i += workers {
					recs, release, err := d.ReadBlock(i)
					if err != nil {
						t.Error(err)
						return
					}
					for _, r := range recs {
						r.Release()
					}
					release()
				}
			}
		})
	}
	wg.Wait()
	if n, _, _ := bufs.Allocated(); n > workers {
		t.Fatalf("%d readers holding one block each made the pool allocate %d buffers", workers, n)
	}
	if got, _ := readAll(t, d1); got != want1 {
		t.Fatal("dataset one reads differently after concurrent reads")
	}
	if got, _ := readAll(t, d2); got != want2 {
		t.Fatal("dataset two reads differently after concurrent reads")
	}
}

// TestBuffersSmallerDropped opens a dataset of small blocks, reads it, then
// opens one with larger blocks: the buffer too small for them is wiped and
// freed, not kept beside the new one.
func TestBuffersSmallerDropped(t *testing.T) {
	key := testKey(t)
	small := storeDataset(t, key, "small", 20_000, 1_000) // one block of a few segments
	large := storeDataset(t, key, "large", 400_000, 100_000)
	var a trackedAlloc
	bufs := NewBuffers(a.alloc)
	defer bufs.Close()
	ds := openTest(t, key, "small", small, bufs)
	readAll(t, ds)
	dl := openTest(t, key, "large", large, bufs)
	readAll(t, dl)
	readAll(t, ds)
	if n, _, _ := bufs.Allocated(); n != 1 || a.allocs != 2 || a.freed != 1 || a.unwiped != 0 {
		t.Fatalf("pool holds %d buffers after %d allocations, %d freed (%d not wiped); want 1 held, 2 allocated, 1 freed wiped", n, a.allocs, a.freed, a.unwiped)
	}
}

// TestReadBlockRefusesTamperedSegment flips a byte in a block's segment:
// the read fails naming the dataset and block, and the buffer goes back to
// the pool wiped of the segments decrypted before it.
func TestReadBlockRefusesTamperedSegment(t *testing.T) {
	key := testKey(t)
	env := storeDataset(t, key, "tampered", 300_000, 10_000)
	hdr, err := envelope.ParseHeader(bytes.NewReader(env))
	if err != nil {
		t.Fatal(err)
	}
	var a trackedAlloc
	bufs := NewBuffers(a.alloc)
	defer bufs.Close()
	bad := bytes.Clone(env)
	d := openTest(t, key, "tampered", bad, bufs)
	// The third segment of block 0.
	bad[hdr.Len()+2*(SegmentSize+envelope.TagSize)+100] ^= 1
	_, _, err = d.ReadBlock(0)
	if err == nil || !strings.Contains(err.Error(), "dataset tampered, block 0") {
		t.Fatalf("tampered segment: %v", err)
	}
	bufs.mu.Lock()
	b := bufs.free[0]
	bufs.mu.Unlock()
	if bytes.ContainsFunc(b.b, func(r rune) bool { return r != 0 }) {
		t.Fatal("a failed read left the plaintext of the segments before the bad one in the buffer")
	}
}
