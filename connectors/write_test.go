package connectors

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestWriteGolden pins the text writers' output for a batch of every type.
func TestWriteGolden(t *testing.T) {
	rec := allRecord(t, memory.DefaultAllocator)
	defer rec.Release()
	for format, name := range map[Format]string{FormatCSV: "all.csv", FormatJSON: "all.json", FormatJSONL: "all.jsonl", FormatTable: "all.txt"} {
		got := mustWrite(t, format, rec.Schema(), rec)
		path := filepath.Join("testdata", "golden", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s output differs from %s:\n%s", format, path, got)
		}
	}
}

func TestWriteJSONIsValid(t *testing.T) {
	rec := allRecord(t, memory.DefaultAllocator)
	defer rec.Release()
	var rows []map[string]any
	if err := json.Unmarshal(mustWrite(t, FormatJSON, rec.Schema(), rec), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != int(rec.NumRows()) || rows[0]["s"] != `héllo, "wörld"` || rows[1]["dec"] != "-0.0001" {
		t.Errorf("decoded %v", rows)
	}
	// An empty result is an empty array.
	empty := rec.NewSlice(0, 0)
	defer empty.Release()
	if got := string(mustWrite(t, FormatJSON, rec.Schema(), empty)); got != "[]\n" {
		t.Errorf("empty result written as %q", got)
	}
}

// TestWriteResultTypes writes types a query result can have beyond the
// contract types.
func TestWriteResultTypes(t *testing.T) {
	f32 := build(t, arrow.PrimitiveTypes.Float32, 0.5, nil)
	u64 := build(t, arrow.PrimitiveTypes.Uint64, 1<<62, 3)
	ls := build(t, arrow.BinaryTypes.LargeString, "x\x1b[31mred", "tab\there")
	nan := build(t, arrow.PrimitiveTypes.Float64, 1e21, 1e-7)
	defer func() {
		for _, a := range []arrow.Array{f32, u64, ls, nan} {
			a.Release()
		}
	}()
	schema := arrow.NewSchema([]arrow.Field{{Name: "f32", Type: f32.DataType(), Nullable: true}, {Name: "u64", Type: u64.DataType()}, {Name: "ls", Type: ls.DataType()}, {Name: "big", Type: nan.DataType()}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{f32, u64, ls, nan}, 2)
	defer rec.Release()
	table := string(mustWrite(t, FormatTable, schema, rec))
	want := " f32                  u64  ls              big\n" +
		"----  -------------------  ------------  -----\n" +
		" 0.5  4611686018427387904  x\\x1b[31mred  1e+21\n" +
		"NULL                    3  tab\\there     1e-07\n" +
		"(2 rows)\n"
	if table != want {
		t.Errorf("table:\n%s\nwant:\n%s", table, want)
	}
	if strings.ContainsRune(table, 0x1b) {
		t.Error("the table passes an escape character to the terminal")
	}
	csv := string(mustWrite(t, FormatCSV, schema, rec))
	if csv != "f32,u64,ls,big\n0.5,4611686018427387904,x\x1b[31mred,1e+21\n,3,tab\there,1e-07\n" {
		t.Errorf("csv: %q", csv)
	}
	for _, format := range []Format{FormatParquet, FormatArrowFile, FormatArrowStream, FormatJSON} {
		if len(mustWrite(t, format, schema, rec)) == 0 {
			t.Errorf("%s: nothing written", format)
		}
	}
	if _, err := WriteRecords(&bytes.Buffer{}, FormatAuto, schema, []arrow.RecordBatch{rec}, WriteOptions{}); err == nil {
		t.Error("wrote format auto")
	}
}

func TestWriteTableEmptyAndOne(t *testing.T) {
	rec := allRecord(t, memory.DefaultAllocator)
	defer rec.Release()
	one := rec.NewSlice(1, 2)
	defer one.Release()
	if got := string(mustWrite(t, FormatTable, rec.Schema(), one)); !strings.HasSuffix(got, "\n(1 row)\n") {
		t.Errorf("one row: %q", got)
	}
	if got := string(mustWrite(t, FormatTable, rec.Schema())); !strings.HasSuffix(got, "\n(0 rows)\n") || strings.Count(got, "\n") != 3 {
		t.Errorf("no rows: %q", got)
	}
}
