package connectors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/contracts"
)

// build makes a one-column array of type dt from values (nil = null).
func build(t testing.TB, dt arrow.DataType, values ...any) arrow.Array {
	t.Helper()
	b := array.NewBuilder(memory.DefaultAllocator, dt)
	defer b.Release()
	for _, v := range values {
		if v == nil {
			b.AppendNull()
			continue
		}
		switch b := b.(type) {
		case *array.Int8Builder:
			b.Append(int8(v.(int)))
		case *array.Int16Builder:
			b.Append(int16(v.(int)))
		case *array.Int32Builder:
			b.Append(int32(v.(int)))
		case *array.Int64Builder:
			b.Append(int64(v.(int)))
		case *array.Uint8Builder:
			b.Append(uint8(v.(int)))
		case *array.Uint16Builder:
			b.Append(uint16(v.(int)))
		case *array.Uint32Builder:
			b.Append(uint32(v.(int)))
		case *array.Uint64Builder:
			b.Append(uint64(v.(int)))
		case *array.Float16Builder:
			b.Append(float16.New(float32(v.(float64))))
		case *array.Float32Builder:
			b.Append(float32(v.(float64)))
		case *array.Float64Builder:
			b.Append(v.(float64))
		case *array.BooleanBuilder:
			b.Append(v.(bool))
		case *array.StringBuilder:
			b.Append(v.(string))
		case *array.LargeStringBuilder:
			b.Append(v.(string))
		case *array.StringViewBuilder:
			b.Append(v.(string))
		case *array.BinaryBuilder:
			b.Append([]byte(v.(string)))
		case *array.BinaryDictionaryBuilder:
			if err := b.AppendString(v.(string)); err != nil {
				t.Fatal(err)
			}
		case *array.Date32Builder:
			b.Append(arrow.Date32(v.(int)))
		case *array.Date64Builder:
			b.Append(arrow.Date64(v.(int)))
		case *array.TimestampBuilder:
			b.Append(arrow.Timestamp(v.(int)))
		case *array.Decimal128Builder:
			b.Append(decimal128.FromI64(int64(v.(int))))
		case *array.Decimal64Builder:
			b.Append(decimal.Decimal64(v.(int)))
		case *array.Decimal32Builder:
			b.Append(decimal.Decimal32(v.(int)))
		default:
			t.Fatalf("no test builder for %s", dt)
		}
	}
	return b.NewArray()
}

// writeInput writes columns as an Arrow IPC file or Parquet file and
// returns its path.
func writeInput(t testing.TB, format Format, names []string, batches ...[]arrow.Array) string {
	t.Helper()
	fields := make([]arrow.Field, len(names))
	for i, n := range names {
		fields[i] = arrow.Field{Name: n, Type: batches[0][i].DataType(), Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	var recs []arrow.RecordBatch
	for _, cols := range batches {
		rec := array.NewRecordBatch(schema, cols, int64(cols[0].Len()))
		defer rec.Release()
		recs = append(recs, rec)
	}
	path := filepath.Join(t.TempDir(), "in."+format.String())
	if err := os.WriteFile(path, mustWrite(t, format, schema, recs...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestArrowInputTypes(t *testing.T) {
	utc := func(u arrow.TimeUnit) arrow.DataType { return &arrow.TimestampType{Unit: u, TimeZone: "UTC"} }
	dict := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}
	cases := []struct {
		name    string
		in      arrow.DataType
		values  []any
		want    string // contract type
		result  string // the output column's String() (timestamps in µs), or "" for an error
		kind    error
		frag    string
		parquet bool // also try as Parquet
		opts    Options
	}{
		{"int8→int32", arrow.PrimitiveTypes.Int8, []any{-128, nil, 127}, "int32", "[-128 (null) 127]", nil, "", true, Options{}},
		{"uint16→int32", arrow.PrimitiveTypes.Uint16, []any{65535, 0}, "int32", "[65535 0]", nil, "", true, Options{}},
		{"int32→int64", arrow.PrimitiveTypes.Int32, []any{-5, nil}, "int64", "[-5 (null)]", nil, "", true, Options{}},
		{"uint32→int64", arrow.PrimitiveTypes.Uint32, []any{4294967295}, "int64", "[4294967295]", nil, "", true, Options{}},
		{"int16→float64", arrow.PrimitiveTypes.Int16, []any{-3}, "float64", "[-3]", nil, "", true, Options{}},
		{"float32→float64", arrow.PrimitiveTypes.Float32, []any{0.5, nil}, "float64", "[0.5 (null)]", nil, "", true, Options{}},
		{"float16→float64", arrow.FixedWidthTypes.Float16, []any{0.25}, "float64", "[0.25]", nil, "", false, Options{}},
		{"int64↛int32", arrow.PrimitiveTypes.Int64, []any{1}, "int32", "", ErrColumnType, "int64", true, Options{}},
		{"uint32↛int32", arrow.PrimitiveTypes.Uint32, []any{1}, "int32", "", ErrColumnType, "uint32", false, Options{}},
		{"uint64↛int64", arrow.PrimitiveTypes.Uint64, []any{1}, "int64", "", ErrColumnType, "uint64", false, Options{}},
		{"int64↛float64", arrow.PrimitiveTypes.Int64, []any{1}, "float64", "", ErrColumnType, "accepts float16", true, Options{}},
		{"float64↛decimal", arrow.PrimitiveTypes.Float64, []any{1.0}, "decimal(5,2)", "", ErrColumnType, "float64", true, Options{}},
		{"bool↛int64", arrow.FixedWidthTypes.Boolean, []any{true}, "int64", "", ErrColumnType, "bool", true, Options{}},
		{"large_utf8→string", arrow.BinaryTypes.LargeString, []any{"a", nil, "é"}, "string", `["a" (null) "é"]`, nil, "", true, Options{}},
		{"utf8_view→string", arrow.BinaryTypes.StringView, []any{"a long string beyond the inline twelve", "b"}, "string", `["a long string beyond the inline twelve" "b"]`, nil, "", false, Options{}},
		{"dictionary→string", dict, []any{"x", "y", "x", nil}, "string", `["x" "y" "x" (null)]`, nil, "", true, Options{}},
		{"binary↛string", arrow.BinaryTypes.Binary, []any{"x"}, "string", "", ErrColumnType, "binary", true, Options{}},
		{"invalid utf-8", arrow.BinaryTypes.String, []any{"ok", "\xff"}, "string", "", ErrValue, "UTF-8", false, Options{}},
		{"date64→date", arrow.FixedWidthTypes.Date64, []any{3 * 86400000, nil}, "date", "[1970-01-04 (null)]", nil, "", false, Options{}},
		{"date64 not whole day", arrow.FixedWidthTypes.Date64, []any{0, 1}, "date", "", ErrValue, "not a whole day", false, Options{}},
		{"timestamp[s]", utc(arrow.Second), []any{1, nil}, "timestamp", "[1000000 (null)]", nil, "", false, Options{}},
		{"timestamp[ms]", utc(arrow.Millisecond), []any{1500}, "timestamp", "[1500000]", nil, "", true, Options{}},
		{"timestamp[ns]", utc(arrow.Nanosecond), []any{2000, -1000}, "timestamp", "[2 -1]", nil, "", true, Options{}},
		{"timestamp[ns] sub-µs", utc(arrow.Nanosecond), []any{2000, 1500}, "timestamp", "", ErrValue, "sub-microsecond", true, Options{}},
		{"timestamp other zone", &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Europe/Paris"}, []any{0}, "timestamp", "[0]", nil, "", false, Options{}},
		{"timestamp[s] overflow", utc(arrow.Second), []any{0, 1 << 62}, "timestamp", "", ErrValue, "overflows", false, Options{}},
		{"naive timestamp", &arrow.TimestampType{Unit: arrow.Microsecond}, []any{0}, "timestamp", "", ErrColumnType, "without a time zone", true, Options{}},
		{"naive timestamp, AssumeUTC", &arrow.TimestampType{Unit: arrow.Microsecond}, []any{0}, "timestamp", "[0]", nil, "", true, Options{AssumeUTC: true}},
		{"date32↛timestamp", arrow.FixedWidthTypes.Date32, []any{0}, "timestamp", "", ErrColumnType, "date32", true, Options{}},
		{"decimal same", &arrow.Decimal128Type{Precision: 5, Scale: 2}, []any{-12345, nil}, "decimal(5,2)", "[-123.45 (null)]", nil, "", true, Options{}},
		{"decimal rescale", &arrow.Decimal128Type{Precision: 5, Scale: 2}, []any{-12345}, "decimal(7,4)", "[-123.45]", nil, "", true, Options{}},
		{"decimal narrower", &arrow.Decimal128Type{Precision: 3, Scale: 1}, []any{999}, "decimal(5,2)", "[99.9]", nil, "", true, Options{}},
		{"decimal64", &arrow.Decimal64Type{Precision: 12, Scale: 2}, []any{100}, "decimal(20,2)", "[1]", nil, "", false, Options{}},
		{"decimal32", &arrow.Decimal32Type{Precision: 9, Scale: 0}, []any{-7}, "decimal(9,0)", "[-7]", nil, "", false, Options{}},
		{"decimal scale too big", &arrow.Decimal128Type{Precision: 5, Scale: 3}, []any{1}, "decimal(5,2)", "", ErrColumnType, "scale is at most 2", true, Options{}},
		{"decimal integer digits", &arrow.Decimal128Type{Precision: 10, Scale: 2}, []any{1}, "decimal(5,2)", "", ErrColumnType, "at most 3 integer digits", true, Options{}},
		{"decimal value beyond its precision", &arrow.Decimal128Type{Precision: 5, Scale: 2}, []any{1, 10000000}, "decimal(5,2)", "", ErrValue, "overflows", false, Options{}},
		{"null type", arrow.Null, []any{nil, nil}, "date", "[(null) (null)]", nil, "", false, Options{}},
	}
	for _, c := range cases {
		formats := []Format{FormatArrowFile, FormatArrowStream}
		if c.parquet {
			formats = append(formats, FormatParquet)
		}
		for _, format := range formats {
			t.Run(c.name+"/"+format.String(), func(t *testing.T) {
				in := build(t, c.in, c.values...)
				defer in.Release()
				other := build(t, arrow.PrimitiveTypes.Int64, func() []any {
					v := make([]any, len(c.values))
					for i := range v {
						v[i] = i
					}
					return v
				}()...)
				defer other.Release()
				path := writeInput(t, format, []string{"n", "x"}, []arrow.Array{other, in})
				cols := []contracts.Column{col("x", c.want), col("n", "int64")}
				mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
				defer mem.AssertSize(t, 0)
				opts := c.opts
				opts.Allocator = mem
				r, err := Open(path, format, cols, opts)
				var recs []arrow.RecordBatch
				if err == nil {
					recs, err = readAll(t, r)
					defer releaseAll(recs)
				}
				if c.kind != nil {
					if err == nil {
						t.Fatalf("no error; want %v", c.kind)
					}
					ie, _ := err.(*InputError)
					if ie == nil || ie.Column != "x" || !strings.Contains(err.Error(), c.frag) || !strings.Contains(err.Error(), path) {
						t.Fatalf("error %q; want %v on column x with %q and the path", err, c.kind, c.frag)
					}
					if c.kind == ErrValue && ie.Row != 2 {
						t.Errorf("error %q: row %d, want 2", err, ie.Row)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) != 1 {
					t.Fatalf("%d batches", len(recs))
				}
				if got := recs[0].Column(0).String(); got != c.result {
					t.Errorf("got %s, want %s", got, c.result)
				}
			})
		}
	}
}

func TestArrowInputColumns(t *testing.T) {
	i64 := build(t, arrow.PrimitiveTypes.Int64, 1, 2)
	defer i64.Release()
	str := build(t, arrow.BinaryTypes.String, "a", "b")
	defer str.Release()
	cols := []contracts.Column{col("id", "int64"), col("name", "string")}
	cases := []struct {
		name   string
		names  []string
		arrs   []arrow.Array
		kind   error
		column string
	}{
		{"missing", []string{"id"}, []arrow.Array{i64}, ErrMissingColumn, "name"},
		{"extra", []string{"id", "name", "more"}, []arrow.Array{i64, str, str}, ErrExtraColumn, "more"},
		{"duplicate", []string{"id", "name", "id"}, []arrow.Array{i64, str, i64}, ErrDuplicateColumn, "id"},
		{"wrong type", []string{"name", "id"}, []arrow.Array{i64, str}, ErrColumnType, "id"},
	}
	for _, c := range cases {
		for _, format := range []Format{FormatArrowFile, FormatParquet} {
			if c.name == "duplicate" && format == FormatParquet {
				continue // Parquet writers refuse duplicate names themselves
			}
			t.Run(c.name+"/"+format.String(), func(t *testing.T) {
				path := writeInput(t, format, c.names, c.arrs)
				_, err := Open(path, format, cols, Options{})
				checkErr(t, err, c.kind, c.column, 0, format.String()+` column "`+c.column+`"`)
			})
		}
	}
	// Column order in the input does not matter.
	path := writeInput(t, FormatParquet, []string{"name", "id"}, []arrow.Array{str, i64})
	r, err := Open(path, FormatParquet, cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := readAll(t, r)
	if err != nil || len(recs) != 1 || recs[0].Column(0).String() != "[1 2]" {
		t.Fatalf("got %v, %v", recs, err)
	}
	releaseAll(recs)
}

// TestArrowInputLocations checks that a bad value is located by batch and
// row (Arrow) or row group and row (Parquet).
func TestArrowInputLocations(t *testing.T) {
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	good := build(t, ts, 1000, 2000, 3000)
	defer good.Release()
	bad := build(t, ts, 1000, 2000, 3001)
	defer bad.Release()
	cols := []contracts.Column{col("t", "timestamp")}
	for _, c := range []struct {
		format Format
		frag   string
	}{
		{FormatArrowFile, `arrow batch 2, row 3, column "t"`},
		{FormatArrowStream, `arrows batch 2, row 3, column "t"`},
		{FormatParquet, `parquet row group 2, row 3, column "t"`},
	} {
		path := writeInput(t, c.format, []string{"t"}, []arrow.Array{good}, []arrow.Array{good}, []arrow.Array{bad})
		for _, batch := range []int{0, 2} {
			r, err := Open(path, c.format, cols, Options{BatchSize: batch})
			if err != nil {
				t.Fatal(err)
			}
			recs, err := readAll(t, r)
			releaseAll(recs)
			if err == nil || !strings.Contains(err.Error(), c.frag) {
				t.Errorf("%s, batch size %d: error %v; want %q", c.format, batch, err, c.frag)
			}
		}
	}
}

// TestCheckUTF8 checks the one-pass UTF-8 check of string columns against
// the value-by-value one: values valid only when concatenated, invalid
// bytes in null slots, and sliced arrays.
func TestCheckUTF8(t *testing.T) {
	// mk builds a utf8 array from raw offsets and bytes (no validation), with
	// the rows in nulls null.
	mk := func(data string, offsets []int32, nulls ...int) *array.String {
		n := len(offsets) - 1
		valid := make([]byte, (n+7)/8)
		for i := range n {
			valid[i/8] |= 1 << (i % 8)
		}
		for _, i := range nulls {
			valid[i/8] &^= 1 << (i % 8)
		}
		offs := arrow.Int32Traits.CastToBytes(offsets)
		d := array.NewData(arrow.BinaryTypes.String, n,
			[]*memory.Buffer{memory.NewBufferBytes(valid), memory.NewBufferBytes(offs), memory.NewBufferBytes([]byte(data))}, nil, len(nulls), 0)
		defer d.Release()
		return array.NewStringData(d)
	}
	for _, tc := range []struct {
		name   string
		arr    *array.String
		slice  [2]int64 // if not zero, check arr[slice[0]:slice[1]]
		badRow int      // -1: accepted
	}{
		{"ascii", mk("abcdef", []int32{0, 1, 3, 6}), [2]int64{}, -1},
		{"multibyte", mk("aébç", []int32{0, 3, 6}), [2]int64{}, -1},
		{"char split across two values", mk("a\xc3\xa9b", []int32{0, 2, 4}), [2]int64{}, 0},
		{"char split, second value bad only", mk("ab\xa9", []int32{0, 2, 3}), [2]int64{}, 1},
		{"invalid byte", mk("ok\xff", []int32{0, 2, 3}), [2]int64{}, 1},
		{"invalid bytes in a null slot", mk("a\xffb", []int32{0, 1, 2, 3}, 1), [2]int64{}, -1},
		{"split char around a null slot", mk("a\xc3\xa9", []int32{0, 2, 3, 3}, 1), [2]int64{}, 0},
		{"slice excludes the bad value", mk("\xffabc", []int32{0, 1, 2, 4}), [2]int64{1, 3}, -1},
		{"slice starting inside a char", mk("é\xa9x", []int32{0, 2, 3, 4}), [2]int64{1, 3}, 0},
		{"empty values", mk("", []int32{0, 0, 0}), [2]int64{}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a arrow.Array = tc.arr
			if tc.slice != [2]int64{} {
				a = array.NewSlice(tc.arr, tc.slice[0], tc.slice[1])
				defer a.Release()
			}
			out, p := checkUTF8(memory.DefaultAllocator, a)
			switch {
			case tc.badRow < 0 && p != nil:
				t.Fatalf("rejected: row %d: %s", p.row, p.detail)
			case tc.badRow >= 0 && p == nil:
				out.Release()
				t.Fatalf("accepted, want row %d rejected", tc.badRow)
			case p != nil && (p.row != tc.badRow || !strings.Contains(p.detail, "UTF-8")):
				t.Fatalf("row %d: %s; want row %d, invalid UTF-8", p.row, p.detail, tc.badRow)
			case p == nil:
				out.Release()
			}
		})
	}
}
