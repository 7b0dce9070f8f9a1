package arrowipc

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// int64Stream returns an Arrow IPC stream of batches of rows int64 values
// each.
func int64Stream(t *testing.T, batches, rows int) ([]byte, *arrow.Schema) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	for i := range rows {
		b.Append(int64(i))
	}
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(rows))
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	for range batches {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), schema
}

// TestCheckedReaderReusesBody checks that the message bodies of a stream
// are read into one buffer, not one allocated per message, and that Each
// still sees every batch's values.
func TestCheckedReaderReusesBody(t *testing.T) {
	stream, schema := int64Stream(t, 4, 10000)
	r := newCheckedReader(bytes.NewReader(stream), 1<<20, maxIPCMessage)
	defer r.Release()
	if _, err := r.Message(); err != nil { // the schema
		t.Fatal(err)
	}
	var first *byte
	for i := range 4 {
		msg, err := r.Message()
		if err != nil {
			t.Fatal(err)
		}
		if msg.BodyLen() < 80000 {
			t.Fatalf("message %d has a body of %d bytes", i, msg.BodyLen())
		}
		if i == 0 {
			first = &r.body[0]
		} else if &r.body[0] != first {
			t.Fatalf("message %d was read into a new buffer", i)
		}
	}
	if _, err := r.Message(); err != io.EOF {
		t.Fatalf("after the last batch: %v, want io.EOF", err)
	}

	var sum int64
	rows, err := Each(bytes.NewReader(stream), schema, func(rec arrow.RecordBatch) error {
		for _, v := range rec.Column(0).(*array.Int64).Int64Values() {
			sum += v
		}
		return nil
	})
	if err != nil || rows != 40000 || sum != 4*(10000*9999/2) {
		t.Fatalf("Each: %d rows, sum %d, %v", rows, sum, err)
	}
}

// TestCheckedReaderClaimedBody checks that a body the metadata claims but
// the stream does not hold is refused, saying where the stream ends.
func TestCheckedReaderClaimedBody(t *testing.T) {
	stream, _ := int64Stream(t, 1, 10000)
	// Cut the stream inside the batch's body: the metadata still claims
	// the whole body.
	schemaLen := 8 + int(binary.LittleEndian.Uint32(stream[4:]))
	metaLen := 8 + int(binary.LittleEndian.Uint32(stream[schemaLen+4:]))
	cut := stream[:schemaLen+metaLen+1000]
	r := newCheckedReader(bytes.NewReader(cut), 1<<20, maxIPCMessage)
	defer r.Release()
	if _, err := r.Message(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Message()
	if err == nil || !strings.Contains(err.Error(), "inside a message body") {
		t.Fatalf("got %v, want the stream's end inside a message body", err)
	}
}
