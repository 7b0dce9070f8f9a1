package connectors

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var readableFormats = []Format{FormatCSV, FormatJSONL, FormatParquet, FormatArrowFile, FormatArrowStream}

// TestRoundTrip writes a batch with every type, nulls and awkward strings
// in each readable format, reads it back, and checks that every format
// yields identical batches.
func TestRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	want := allRecord(t, mem)
	defer want.Release()
	dir := t.TempDir()
	for _, format := range readableFormats {
		t.Run(format.String(), func(t *testing.T) {
			data := mustWrite(t, format, want.Schema(), want)
			path := filepath.Join(dir, "data."+map[Format]string{FormatCSV: "csv", FormatJSONL: "jsonl", FormatParquet: "parquet", FormatArrowFile: "arrow", FormatArrowStream: "arrows"}[format])
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, batch := range []int{0, 1, 2, 3} {
				r, err := Open(path, FormatAuto, allCols, Options{BatchSize: batch, Allocator: mem})
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				if r.Format() != format {
					t.Errorf("detected %s, want %s", r.Format(), format)
				}
				recs, err := readAll(t, r)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				for _, rec := range recs {
					if batch > 0 && rec.NumRows() > int64(batch) {
						t.Errorf("batch of %d rows, want at most %d", rec.NumRows(), batch)
					}
				}
				got := concat(t, want.Schema(), recs)
				releaseAll(recs)
				if !array.RecordEqual(got, want) {
					t.Errorf("batch size %d: read back\n%v\nwant\n%v", batch, got, want)
				}
				if r.Rows() != want.NumRows() {
					t.Errorf("Rows() = %d, want %d", r.Rows(), want.NumRows())
				}
				if r.BytesRead() < int64(len(data))/2 {
					t.Errorf("BytesRead() = %d of %d", r.BytesRead(), len(data))
				}
				got.Release()
			}
			if format.Streamable() {
				recs, err := readString(t, format, allCols, string(data), Options{Allocator: mem})
				if err != nil {
					t.Fatal(err)
				}
				got := concat(t, want.Schema(), recs)
				releaseAll(recs)
				if !array.RecordEqual(got, want) {
					t.Errorf("from a stream: read back\n%v\nwant\n%v", got, want)
				}
				got.Release()
			}
		})
	}
}

// TestSameDataEveryFormat reads one hand-written dataset, given as CSV,
// JSON lines, Parquet and Arrow, and requires identical batches.
func TestSameDataEveryFormat(t *testing.T) {
	cols := allCols
	csv := "ts,i32,b,i64,f,s,d,dec,small\n" + // columns in a different order from the contract
		"2026-01-02T15:04:05.123456Z,1,true,-5,1.25,plain,2026-01-02,12.5,1.1\n" +
		"2026-01-02T16:04:05+01:00,,false,,,\"\",1970-01-01,-0.0001,\n" +
		",-2,,9223372036854775807,-0,\"a,\"\"b\"\"\",,,-999.99\n"
	jsonl := `{"b":true,"i32":1,"i64":-5,"f":1.25,"s":"plain","d":"2026-01-02","ts":"2026-01-02T15:04:05.123456Z","dec":12.5,"small":"1.1"}
{"b":false,"i32":null,"i64":null,"f":null,"s":"","d":"1970-01-01","ts":"2026-01-02T16:04:05+01:00","dec":"-0.0001","small":null}
{"small":-999.99,"b":null,"i32":-2,"i64":9223372036854775807,"f":-0.0,"s":"a,\"b\"","d":null,"ts":null,"dec":null}
`
	fromCSV, err := readString(t, FormatCSV, cols, csv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := concat(t, Schema(cols), fromCSV)
	defer want.Release()
	releaseAll(fromCSV)
	fromJSON, err := readString(t, FormatJSONL, cols, jsonl, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := concat(t, Schema(cols), fromJSON)
	releaseAll(fromJSON)
	if !array.RecordEqual(got, want) {
		t.Fatalf("JSON lines gives\n%v\nCSV gives\n%v", got, want)
	}
	got.Release()
	dir := t.TempDir()
	for _, format := range []Format{FormatParquet, FormatArrowFile, FormatArrowStream} {
		path := filepath.Join(dir, "x."+format.String())
		if err := os.WriteFile(path, mustWrite(t, format, want.Schema(), want), 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Open(path, format, cols, Options{})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := readAll(t, r)
		if err != nil {
			t.Fatal(err)
		}
		got := concat(t, Schema(cols), recs)
		releaseAll(recs)
		if !array.RecordEqual(got, want) {
			t.Errorf("%s gives\n%v\nwant\n%v", format, got, want)
		}
		got.Release()
	}
	// And the writers reproduce the text formats' canonical forms.
	var buf bytes.Buffer
	if _, err := WriteRecords(&buf, FormatCSV, want.Schema(), nil, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestZeroRows reads inputs that have a schema but no rows.
func TestZeroRows(t *testing.T) {
	rec := allRecord(t, memory.DefaultAllocator)
	defer rec.Release()
	empty := rec.NewSlice(0, 0)
	defer empty.Release()
	dir := t.TempDir()
	for _, format := range []Format{FormatParquet, FormatArrowFile, FormatArrowStream} {
		for _, recs := range [][]arrow.RecordBatch{nil, {empty}} {
			path := filepath.Join(dir, "empty."+format.String())
			if err := os.WriteFile(path, mustWrite(t, format, rec.Schema(), recs...), 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := Open(path, format, allCols, Options{})
			if err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			got, err := readAll(t, r)
			if err != nil || len(got) != 0 {
				t.Errorf("%s with %d empty batches: %d batches, %v", format, len(recs), len(got), err)
			}
		}
	}
}
