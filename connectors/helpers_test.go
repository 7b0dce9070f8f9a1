package connectors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/contracts"
)

func col(name, typ string) contracts.Column {
	t, err := contracts.ParseColumnType(typ)
	if err != nil {
		panic(err)
	}
	return contracts.Column{Name: name, Type: t}
}

// allCols has one column of every contract type.
var allCols = []contracts.Column{
	col("b", "bool"), col("i32", "int32"), col("i64", "int64"), col("f", "float64"),
	col("s", "string"), col("d", "date"), col("ts", "timestamp"), col("dec", "decimal(38,4)"),
	col("small", "decimal(5,2)"),
}

// allRecord is a batch of allCols with edge values, unicode, characters
// that need quoting, and a null in every column.
func allRecord(t testing.TB, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	rb := array.NewRecordBuilder(mem, Schema(allCols))
	defer rb.Release()
	dec := func(s string, p, sc int32) decimal128.Num {
		n, err := parseDecimal([]byte(s), p, sc)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	rb.Field(0).(*array.BooleanBuilder).AppendValues([]bool{true, false, false, true}, []bool{true, true, false, true})
	rb.Field(1).(*array.Int32Builder).AppendValues([]int32{-2147483648, 2147483647, 0, 7}, []bool{true, true, true, false})
	rb.Field(2).(*array.Int64Builder).AppendValues([]int64{-9223372036854775808, 9223372036854775807, 0, 42}, []bool{true, true, false, true})
	rb.Field(3).(*array.Float64Builder).AppendValues([]float64{0.1, -1.5e300, 5e-324, 0}, []bool{true, true, true, false})
	rb.Field(4).(*array.StringBuilder).AppendValues([]string{"héllo, \"wörld\"", "", "line1\nline2\r\nline3", "日本語 🎉"}, []bool{true, true, true, false})
	rb.Field(4).(*array.StringBuilder).Append(",")
	rb.Field(5).(*array.Date32Builder).AppendValues([]arrow.Date32{0, -719162, 2932896, 19000}, []bool{true, true, true, false})
	rb.Field(6).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{0, 1767366245123456, -62135596800000000, 253402300799999999}, []bool{true, true, true, false})
	rb.Field(7).(*array.Decimal128Builder).AppendValues([]decimal128.Num{
		dec("1234567890123456789012345678901234.5678", 38, 4), dec("-0.0001", 38, 4), dec("0", 38, 4), {},
	}, []bool{true, true, true, false})
	rb.Field(8).(*array.Decimal128Builder).AppendValues([]decimal128.Num{dec("-999.99", 5, 2), dec("1.5", 5, 2), {}, dec("0.01", 5, 2)}, []bool{true, true, false, true})
	// A fifth row: all null but the string ",".
	for i := range allCols {
		if i != 4 {
			rb.Field(i).AppendNull()
		}
	}
	return rb.NewRecordBatch()
}

// readAll reads every batch and returns them retained, with the reader's
// error.
func readAll(t testing.TB, r Reader) ([]arrow.RecordBatch, error) {
	t.Helper()
	defer r.Release()
	var recs []arrow.RecordBatch
	for r.Next() {
		rec := r.RecordBatch()
		if !rec.Schema().Equal(r.Schema()) {
			t.Fatalf("batch schema %v differs from the reader's %v", rec.Schema(), r.Schema())
		}
		rec.Retain()
		recs = append(recs, rec)
	}
	return recs, r.Err()
}

// parquetFile writes recs as a Parquet file named name in a temporary
// directory, releases them and returns the file's path.
func parquetFile(t testing.TB, name string, schema *arrow.Schema, recs []arrow.RecordBatch) string {
	data := mustWrite(t, FormatParquet, schema, recs...)
	releaseAll(recs)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// table concatenates batches for comparison.
func concat(t testing.TB, schema *arrow.Schema, recs []arrow.RecordBatch) arrow.RecordBatch {
	t.Helper()
	if len(recs) == 0 {
		return array.NewRecordBatch(schema, func() []arrow.Array {
			a := make([]arrow.Array, schema.NumFields())
			for i, f := range schema.Fields() {
				a[i] = array.MakeArrayOfNull(memory.DefaultAllocator, f.Type, 0)
			}
			return a
		}(), 0)
	}
	cols := make([]arrow.Array, schema.NumFields())
	var rows int64
	for _, r := range recs {
		rows += r.NumRows()
	}
	for j := range cols {
		parts := make([]arrow.Array, len(recs))
		for i, r := range recs {
			parts[i] = r.Column(j)
		}
		a, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Release()
		cols[j] = a
	}
	return array.NewRecordBatch(schema, cols, rows)
}

// readString reads a stream format from a string.
func readString(t testing.TB, format Format, cols []contracts.Column, input string, opts Options) ([]arrow.RecordBatch, error) {
	t.Helper()
	r, err := NewReader(strings.NewReader(input), format, cols, opts)
	if err != nil {
		return nil, err
	}
	return readAll(t, r)
}

// checkErr asserts err is an *InputError of kind with the wanted location
// and message fragments.
func checkErr(t *testing.T, err error, kind error, column string, line int64, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %v", kind)
	}
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %q (%T) is not an *InputError", err, err)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q: kind %v, want %v", err, ie.Kind, kind)
	}
	if ie.Column != column {
		t.Errorf("error %q: column %q, want %q", err, ie.Column, column)
	}
	if ie.Line != line {
		t.Errorf("error %q: line %d, want %d", err, ie.Line, line)
	}
	msg := err.Error()
	if column != "" && !strings.Contains(msg, `column "`+column+`"`) {
		t.Errorf("error %q does not name column %q", msg, column)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q lacks %q", msg, f)
		}
	}
}

func mustWrite(t testing.TB, format Format, schema *arrow.Schema, recs ...arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := WriteRecords(&buf, format, schema, recs, WriteOptions{}); err != nil {
		t.Fatalf("write %s: %v", format, err)
	}
	return buf.Bytes()
}
