package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestColumnType(t *testing.T) {
	for _, c := range []struct {
		typ  arrow.DataType
		want string
	}{
		{arrow.FixedWidthTypes.Boolean, "BOOLEAN"},
		{arrow.PrimitiveTypes.Int32, "INTEGER"},
		{arrow.PrimitiveTypes.Int64, "BIGINT"},
		{arrow.PrimitiveTypes.Float64, "DOUBLE"},
		{arrow.BinaryTypes.String, "VARCHAR"},
		{arrow.FixedWidthTypes.Date32, "DATE"},
		{timestampUTC, "TIMESTAMPTZ"},
		{&arrow.Decimal128Type{Precision: 38, Scale: 10}, "DECIMAL(38,10)"},
		{&arrow.Decimal128Type{Precision: 1, Scale: 0}, "DECIMAL(1,0)"},
		{arrow.PrimitiveTypes.Int16, ""},
		{arrow.PrimitiveTypes.Float32, ""},
		{arrow.BinaryTypes.LargeString, ""},
		{arrow.BinaryTypes.StringView, ""},
		{arrow.BinaryTypes.Binary, ""},
		{&arrow.TimestampType{Unit: arrow.Microsecond}, ""},
		{&arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, ""},
		{&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Europe/Paris"}, ""},
		{&arrow.Decimal128Type{Precision: 5, Scale: 6}, ""},
		{&arrow.Decimal256Type{Precision: 40, Scale: 0}, ""},
		{arrow.FixedWidthTypes.Date64, ""},
		{&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, ""},
		{arrow.ListOf(arrow.PrimitiveTypes.Int64), ""},
	} {
		got, err := ColumnType(c.typ)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("ColumnType(%s) = %q, %v; want %q", c.typ, got, err, c.want)
		}
	}
}

func TestLoadTableRejectsBadSchemas(t *testing.T) {
	good := schemaOf(col("a", "int64"))
	for _, c := range []struct {
		name, table string
		schema      *arrow.Schema
		want        string
	}{
		{"empty name", "", good, "table name is empty"},
		{"control character", "a\nb", good, "without control characters"},
		{"reserved prefix", reservedPrefix + "_x", good, "reserved"},
		{"no columns", "t", arrow.NewSchema(nil, nil), "no columns"},
		{"unsupported type", "t", arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int16}}, nil), "not a dataset column type"},
		{"case-insensitive duplicate", "t", schemaOf(col("a", "int64"), col("A", "string")), "case-insensitive"},
		{"empty column name", "t", arrow.NewSchema([]arrow.Field{{Name: "", Type: arrow.PrimitiveTypes.Int64}}, nil), "column 1 name is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSession(t, Config{Threads: 1})
			r := &fixedReader{schema: c.schema}
			err := s.LoadTable(context.Background(), c.table, c.schema, r)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// fixedReader yields the given batches whatever their schema, as a
// malicious or broken reader could.
type fixedReader struct {
	schema  *arrow.Schema
	batches []arrow.RecordBatch
	cur     arrow.RecordBatch
}

func (r *fixedReader) Schema() *arrow.Schema { return r.schema }
func (r *fixedReader) Retain()               {}
func (r *fixedReader) Release()              {}
func (r *fixedReader) Err() error            { return nil }
func (r *fixedReader) Next() bool {
	if len(r.batches) == 0 {
		return false
	}
	r.cur, r.batches = r.batches[0], r.batches[1:]
	return true
}
func (r *fixedReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *fixedReader) Record() arrow.RecordBatch      { return r.cur }

func buf(b []byte) *memory.Buffer {
	if b == nil {
		return nil
	}
	return memory.NewBufferBytes(b)
}

func int32Bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4)
}

// rawStrings builds a utf8 array from raw buffers, bypassing builders.
func rawStrings(validity []byte, nulls int, offsets []int32, data string) arrow.Array {
	return array.MakeFromData(array.NewData(arrow.BinaryTypes.String, len(offsets)-1,
		[]*memory.Buffer{buf(validity), buf(int32Bytes(offsets)), buf([]byte(data))}, nil, nulls, 0))
}

func TestLoadTableRefusesMalformedData(t *testing.T) {
	strSchema := schemaOf(col("s", "string"))
	decSchema := schemaOf(col("d", "decimal(9,2)"))
	boolSchema := schemaOf(col("b", "bool"))
	intSchema := schemaOf(col("n", "int64"))
	one := func(schema *arrow.Schema, a arrow.Array) arrow.RecordBatch {
		return array.NewRecordBatch(schema, []arrow.Array{a}, int64(a.Len()))
	}
	decimals := func(v ...decimal128.Num) arrow.Array {
		b := array.NewDecimal128Builder(memory.DefaultAllocator, &arrow.Decimal128Type{Precision: 9, Scale: 2})
		b.AppendValues(v, nil)
		return b.NewArray()
	}
	for _, c := range []struct {
		name   string
		schema *arrow.Schema // what the reader claims
		batch  arrow.RecordBatch
		want   string
	}{
		{"decreasing offsets", strSchema, one(strSchema, rawStrings(nil, 0, []int32{0, 4, 2, 6}, "abcdef")), "offsets decrease"},
		{"negative first offset", strSchema, one(strSchema, rawStrings(nil, 0, []int32{-4, 2}, "abcdef")), "outside the 6-byte data buffer"},
		{"invalid UTF-8", strSchema, one(strSchema, rawStrings(nil, 0, []int32{0, 1, 3}, "a\xff\xfe")), "row 1: string is not valid UTF-8"},
		{"character split between rows", strSchema, one(strSchema, rawStrings(nil, 0, []int32{0, 1, 2}, "é")), "row 0: string ends inside a UTF-8 character"},
		{"null count disagrees with bitmap", strSchema, one(strSchema, rawStrings([]byte{0b11}, 1, []int32{0, 1, 2}, "ab")), "null count is 1 but the validity bitmap has 0"},
		{"nulls without bitmap", strSchema, one(strSchema, rawStrings(nil, 1, []int32{0, 1, 2}, "ab")), "no validity bitmap"},
		{"decimal beyond precision", decSchema, one(decSchema, decimals(decimal128.FromI64(1), decimal128.FromI64(1_000_000_000))), "row 1: decimal value has more than 9 digits"},
		{"short boolean bitmap", boolSchema, one(boolSchema, array.MakeFromData(array.NewData(arrow.FixedWidthTypes.Boolean, 20,
			[]*memory.Buffer{nil, buf([]byte{0xff})}, nil, 0, 0))), "value bitmap of 1 bytes is too short for 20 rows"},
		{"batch type differs from schema", intSchema, one(strSchema, rawStrings(nil, 0, []int32{0, 1}, "a")), `column "n" has type utf8, want int64`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSession(t, Config{Threads: 1})
			r := &fixedReader{schema: c.schema, batches: []arrow.RecordBatch{c.batch}}
			err := s.LoadTable(context.Background(), "t", c.schema, r)
			var re *RefusalError
			if !errors.As(err, &re) || re.Layer != LayerInput || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an input refusal saying %q", err, c.want)
			}
			// No partial state: the table does not exist and the name
			// loads again.
			good := &table{name: "t", schema: intSchema}
			b := array.NewInt64Builder(memory.DefaultAllocator)
			b.AppendValues([]int64{1, 2, 3}, nil)
			good.batches = []arrow.RecordBatch{one(intSchema, b.NewArray())}
			load(t, s, good)
			res, err := s.Run(context.Background(), "SELECT sum(n) AS total, count(*) AS n FROM t", noLimit)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Release()
			if got := res.Batches[0].Column(1).(*array.Int64).Value(0); got != 3 {
				t.Errorf("table t has %d rows after the refused load and a good one, want 3", got)
			}
		})
	}
}

func TestLoadTableRefusesMismatchedSchemaAndDuplicates(t *testing.T) {
	s := newSession(t, Config{Threads: 1})
	imp, conv := scenario(100, 18)
	err := s.LoadTable(context.Background(), "impressions", conv.schema, imp.reader(t))
	var re *RefusalError
	if !errors.As(err, &re) || re.Layer != LayerInput || !strings.Contains(err.Error(), `column 2 is named "campaign", expected "value"`) {
		t.Fatalf("got %v", err)
	}
	load(t, s, imp)
	if err := s.LoadTable(context.Background(), "IMPRESSIONS", imp.schema, imp.reader(t)); err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Fatalf("loading a table twice: %v", err)
	}
}

func TestTableAndColumnNamesAreQuoted(t *testing.T) {
	s := newSession(t, Config{Threads: 1})
	tb := &table{name: `ad-impressions "2026"; DROP`, schema: schemaOf(col(`user id`, "string"), col(`select`, "int64"), col(`a"b`, "int64"))}
	b := array.NewRecordBuilder(memory.DefaultAllocator, tb.schema)
	b.Field(0).(*array.StringBuilder).Append("u")
	b.Field(1).(*array.Int64Builder).Append(7)
	b.Field(2).(*array.Int64Builder).Append(8)
	tb.batches = []arrow.RecordBatch{b.NewRecordBatch()}
	load(t, s, tb)
	res, err := s.Run(context.Background(), `SELECT "user id", "select" + "a""b" AS x FROM "ad-impressions ""2026""; DROP"`, noLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	if res.Rows != 1 || res.Batches[0].Column(1).(*array.Int64).Value(0) != 15 {
		t.Fatalf("got %v", res.Batches)
	}
}
