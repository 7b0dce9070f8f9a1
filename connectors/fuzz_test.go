package connectors

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// fuzzRead reads data as format with allCols, small batches and a small
// record limit. Any error must be an *InputError; on success the data must
// survive a write and a second read unchanged.
func fuzzRead(t *testing.T, format Format, data []byte) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	opts := Options{BatchSize: 3, MaxRecordBytes: 1 << 12, Allocator: mem}
	r, err := NewReader(bytes.NewReader(data), format, allCols, opts)
	if err != nil {
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Fatalf("error %q is not an *InputError", err)
		}
		return
	}
	recs, err := readAll(t, r)
	defer releaseAll(recs)
	if err != nil {
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Fatalf("error %q is not an *InputError", err)
		}
		return
	}
	if format == FormatJSONL {
		for _, line := range bytes.Split(data, []byte("\n")) {
			line = bytes.TrimPrefix(line, utf8BOM)
			if len(bytes.TrimSpace(line)) > 0 && !json.Valid(line) {
				t.Fatalf("accepted a line encoding/json rejects: %q", line)
			}
		}
	}
	// Round trip.
	written := mustWrite(t, format, Schema(allCols), recs...)
	again, err := readString(t, format, allCols, string(written), Options{Allocator: mem})
	defer releaseAll(again)
	if err != nil {
		t.Fatalf("re-reading the written %s: %v\n%s", format, err, written)
	}
	a, b := concat(t, Schema(allCols), recs), concat(t, Schema(allCols), again)
	defer a.Release()
	defer b.Release()
	if !array.RecordEqual(a, b) && !sameButNaN(a.Column(3), b.Column(3)) {
		t.Fatalf("round trip changed the data:\n%v\n%v", a, b)
	}
}

// sameButNaN reports that float columns differ only by NaN, which
// RecordEqual does not equate with itself.
func sameButNaN(a, b interface{ String() string }) bool { return a.String() == b.String() }

func FuzzCSV(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, FormatCSV, data) })
}

func FuzzJSONL(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, FormatJSONL, data) })
}
