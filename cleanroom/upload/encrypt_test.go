package upload

import (
	"bytes"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/contracts"
)

var (
	ipcSchema  = arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	ipcDataset = &contracts.Dataset{ID: "numbers"}
)

// countingReader yields batches of 1000 rows from a checked allocator,
// then fails with err (nil: ends cleanly).
type countingReader struct {
	mem         *memory.CheckedAllocator
	total, next int
	err         error
	cur         arrow.RecordBatch
}

func (r *countingReader) Schema() *arrow.Schema { return ipcSchema }
func (r *countingReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.next == r.total {
		return false
	}
	b := array.NewInt64Builder(r.mem)
	defer b.Release()
	for i := range 1000 {
		b.Append(int64(r.next*1000 + i))
	}
	col := b.NewArray()
	defer col.Release()
	r.cur = array.NewRecordBatch(ipcSchema, []arrow.Array{col}, 1000)
	r.next++
	return true
}
func (r *countingReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *countingReader) Record() arrow.RecordBatch      { return r.cur }
func (r *countingReader) Err() error {
	if r.next == r.total {
		return r.err
	}
	return nil
}
func (r *countingReader) Retain() {}
func (r *countingReader) Release() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// TestWriteIPC: the batches read ahead on another goroutine come out as
// one stream, in order; a reader's error and a writer's error are
// returned; the reader stops soon after a write fails; and no batch is
// leaked on any path.
func TestWriteIPC(t *testing.T) {
	t.Run("whole", func(t *testing.T) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		r := &countingReader{mem: mem, total: 50}
		var buf bytes.Buffer
		rows, err := writeIPC(&buf, ipcSchema, r, ipcDataset, nil)
		r.Release()
		if err != nil || rows != 50_000 {
			t.Fatalf("%d rows, %v", rows, err)
		}
		mem.AssertSize(t, 0)
		ir, err := ipc.NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		defer ir.Release()
		want := int64(0)
		for ir.Next() {
			col := ir.RecordBatch().Column(0).(*array.Int64)
			for i := range col.Len() {
				if col.Value(i) != want {
					t.Fatalf("row %d holds %d: out of order", want, col.Value(i))
				}
				want++
			}
		}
		if want != 50_000 {
			t.Fatalf("the stream holds %d rows", want)
		}
	})
	t.Run("reader error", func(t *testing.T) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		bad := errors.New("line 5000: not a number")
		r := &countingReader{mem: mem, total: 5, err: bad}
		_, err := writeIPC(new(bytes.Buffer), ipcSchema, r, ipcDataset, nil)
		r.Release()
		if !errors.Is(err, bad) {
			t.Fatalf("got %v, want the reader's error", err)
		}
		mem.AssertSize(t, 0)
	})
	t.Run("writer error", func(t *testing.T) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		r := &countingReader{mem: mem, total: 1000}
		_, err := writeIPC(&failingWriter{after: 20_000}, ipcSchema, r, ipcDataset, nil)
		r.Release()
		if err == nil {
			t.Fatal("a failing writer: no error")
		}
		if r.next > 10 {
			t.Errorf("the reader went on to batch %d after the write failed", r.next)
		}
		mem.AssertSize(t, 0)
	})
}
