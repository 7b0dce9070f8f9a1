package stored

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestWriterStreams checks that a block's Arrow stream reaches the
// destination as it is encoded, not held until the block ends (a block is
// BlockTarget bytes or more), and that the block is then padded to whole
// segments.
func TestWriterStreams(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	for i := range 1000 {
		b.Append(int64(i))
	}
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 1000)
	defer rec.Release()

	var dst bytes.Buffer
	w := NewWriter(&dst, schema)
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if dst.Len() < 8000 {
		t.Fatalf("after a batch of 8000 bytes of values the destination holds %d bytes: the block is held back", dst.Len())
	}
	rows, err := w.Close()
	if err != nil || rows != 1000 {
		t.Fatalf("Close: %d rows, %v", rows, err)
	}
	// One block of one segment, then the index of one entry and the trailer.
	if want := SegmentSize + indexHeaderLen + entryLen + trailerLen; dst.Len() != want {
		t.Fatalf("the plaintext has %d bytes, want %d", dst.Len(), want)
	}
	if !bytes.Equal(dst.Bytes()[SegmentSize:SegmentSize+8], indexMagic[:]) {
		t.Fatal("the index does not start at the segment boundary after the block")
	}
}
