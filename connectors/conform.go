package connectors

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/contracts"
)

// conformer turns batches of an Arrow input schema (from Parquet or Arrow
// IPC) into batches of the contract schema, checking and converting each
// column.
type conformer struct {
	format Format
	target *arrow.Schema
	cols   []contracts.Column
	src    []int       // contract column i is input field src[i]
	conv   []converter // one per contract column
	mem    memory.Allocator
}

// converter converts one input column. On a bad value it returns the
// 0-based row within arr and a description.
type converter func(mem memory.Allocator, arr arrow.Array) (arrow.Array, *rowProblem)

type rowProblem struct {
	row    int
	kind   error
	detail string
}

func problem(row int, format string, args ...any) *rowProblem {
	return &rowProblem{row: row, kind: ErrValue, detail: fmt.Sprintf(format, args...)}
}

// newConformer checks an input schema against the contract's columns.
func newConformer(format Format, in *arrow.Schema, cols []contracts.Column, target *arrow.Schema, opts Options) (*conformer, error) {
	byName := make(map[string]int, in.NumFields())
	for j, f := range in.Fields() {
		if _, dup := byName[f.Name]; dup {
			return nil, colErr(format, f.Name, ErrDuplicateColumn, "the input has two columns with this name")
		}
		byName[f.Name] = j
	}
	c := &conformer{format: format, target: target, cols: cols, src: make([]int, len(cols)), conv: make([]converter, len(cols)), mem: opts.Allocator}
	want := make(map[string]bool, len(cols))
	for i, col := range cols {
		want[col.Name] = true
		j, ok := byName[col.Name]
		if !ok {
			return nil, colErr(format, col.Name, ErrMissingColumn, "the input lacks a column the contract names (input columns: %s)", fieldList(in))
		}
		conv, err := converterFor(in.Field(j).Type, col.Type, opts.AssumeUTC)
		if err != "" {
			return nil, colErr(format, col.Name, ErrColumnType, "%s", err)
		}
		c.src[i], c.conv[i] = j, conv
	}
	for _, f := range in.Fields() {
		if !want[f.Name] {
			return nil, colErr(format, f.Name, ErrExtraColumn, "the input has a column the contract does not name (contract columns: %s)", columnList(cols))
		}
	}
	return c, nil
}

func colErr(format Format, column string, kind error, detail string, args ...any) *InputError {
	e := newErr(format, kind, detail, args...)
	e.Column = column
	return e
}

func fieldList(s *arrow.Schema) string {
	names := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// convert returns rec's rows as a batch of the contract schema. On a bad
// value it returns the contract column and the problem.
func (c *conformer) convert(rec arrow.RecordBatch) (arrow.RecordBatch, string, *rowProblem) {
	out := make([]arrow.Array, len(c.cols))
	defer func() {
		for _, a := range out {
			if a != nil {
				a.Release()
			}
		}
	}()
	for i := range c.cols {
		a, p := c.conv[i](c.mem, rec.Column(c.src[i]))
		if p != nil {
			return nil, c.cols[i].Name, p
		}
		out[i] = a
	}
	return array.NewRecordBatch(c.target, out, rec.NumRows()), "", nil
}

// accepted lists, for the error message, the input types accepted for each
// contract type.
var accepted = map[contracts.TypeKind]string{
	contracts.KindBool:      "bool",
	contracts.KindInt32:     "int8, int16, int32, uint8, uint16",
	contracts.KindInt64:     "int8, int16, int32, int64, uint8, uint16, uint32",
	contracts.KindFloat64:   "float16, float32, float64, int8, int16, int32, uint8, uint16, uint32",
	contracts.KindString:    "utf8, large_utf8, utf8_view, or a dictionary of utf8 or large_utf8",
	contracts.KindDate:      "date32, date64",
	contracts.KindTimestamp: "timestamp in s, ms, us or ns with a time zone",
	contracts.KindDecimal:   "decimal32, decimal64 or decimal128 with scale ≤ the contract's and at most as many integer digits",
}

// converterFor returns the converter from an input type to a contract
// type, or why there is none. Only conversions that cannot lose data are
// offered; those that could for some values (date64 to date32, ns to µs)
// check every value.
func converterFor(in arrow.DataType, want contracts.ColumnType, assumeUTC bool) (converter, string) {
	if in.ID() == arrow.NULL {
		return func(mem memory.Allocator, a arrow.Array) (arrow.Array, *rowProblem) {
			return array.MakeArrayOfNull(mem, want.ArrowType(), a.Len()), nil
		}, ""
	}
	no := fmt.Sprintf("the input column is %s; the contract type %s accepts %s", in, want, accepted[want.Kind])
	switch want.Kind {
	case contracts.KindBool:
		if in.ID() == arrow.BOOL {
			return retain, ""
		}
	case contracts.KindInt32:
		switch in.ID() {
		case arrow.INT32:
			return retain, ""
		case arrow.INT8:
			return widen[int8, int32](array.NewInt32Builder), ""
		case arrow.INT16:
			return widen[int16, int32](array.NewInt32Builder), ""
		case arrow.UINT8:
			return widen[uint8, int32](array.NewInt32Builder), ""
		case arrow.UINT16:
			return widen[uint16, int32](array.NewInt32Builder), ""
		}
	case contracts.KindInt64:
		switch in.ID() {
		case arrow.INT64:
			return retain, ""
		case arrow.INT8:
			return widen[int8, int64](array.NewInt64Builder), ""
		case arrow.INT16:
			return widen[int16, int64](array.NewInt64Builder), ""
		case arrow.INT32:
			return widen[int32, int64](array.NewInt64Builder), ""
		case arrow.UINT8:
			return widen[uint8, int64](array.NewInt64Builder), ""
		case arrow.UINT16:
			return widen[uint16, int64](array.NewInt64Builder), ""
		case arrow.UINT32:
			return widen[uint32, int64](array.NewInt64Builder), ""
		}
	case contracts.KindFloat64:
		switch in.ID() {
		case arrow.FLOAT64:
			return retain, ""
		case arrow.FLOAT32:
			return widen[float32, float64](array.NewFloat64Builder), ""
		case arrow.FLOAT16:
			return float16To64, ""
		case arrow.INT8:
			return widen[int8, float64](array.NewFloat64Builder), ""
		case arrow.INT16:
			return widen[int16, float64](array.NewFloat64Builder), ""
		case arrow.INT32:
			return widen[int32, float64](array.NewFloat64Builder), ""
		case arrow.UINT8:
			return widen[uint8, float64](array.NewFloat64Builder), ""
		case arrow.UINT16:
			return widen[uint16, float64](array.NewFloat64Builder), ""
		case arrow.UINT32:
			return widen[uint32, float64](array.NewFloat64Builder), ""
		}
	case contracts.KindString:
		switch in.ID() {
		case arrow.STRING:
			return checkUTF8, ""
		case arrow.LARGE_STRING, arrow.STRING_VIEW:
			return copyStrings, ""
		case arrow.DICTIONARY:
			dt := in.(*arrow.DictionaryType)
			if v := dt.ValueType.ID(); v == arrow.STRING || v == arrow.LARGE_STRING {
				return copyStrings, ""
			}
		}
	case contracts.KindDate:
		switch in.ID() {
		case arrow.DATE32:
			return retain, ""
		case arrow.DATE64:
			return date64To32, ""
		}
	case contracts.KindTimestamp:
		if ts, ok := in.(*arrow.TimestampType); ok {
			if ts.TimeZone == "" && !assumeUTC {
				return nil, fmt.Sprintf("the input column is %s, without a time zone, so its instants are ambiguous; write it as a timestamp with a time zone (UTC), or assume UTC explicitly", in)
			}
			return timestampTo(ts.Unit, want.ArrowType()), ""
		}
	case contracts.KindDecimal:
		var p, s int32
		switch d := in.(type) {
		case *arrow.Decimal128Type:
			p, s = d.Precision, d.Scale
		case *arrow.Decimal64Type:
			p, s = d.Precision, d.Scale
		case *arrow.Decimal32Type:
			p, s = d.Precision, d.Scale
		default:
			return nil, no
		}
		if s > want.Scale || s < 0 || p-s > want.Precision-want.Scale {
			return nil, fmt.Sprintf("the input column is %s; %s can hold it only if its scale is at most %d and it has at most %d integer digits", in, want, want.Scale, want.Precision-want.Scale)
		}
		return decimalTo(want, s), ""
	}
	return nil, no
}

// retain passes an array of the contract's exact type through, unchanged
// and uncopied.
func retain(_ memory.Allocator, a arrow.Array) (arrow.Array, *rowProblem) {
	a.Retain()
	return a, nil
}

// retype returns a zero-copy view of a's buffers under the type dt, which
// must have the same physical layout.
func retype(a arrow.Array, dt arrow.DataType) arrow.Array {
	d := a.Data()
	nd := array.NewData(dt, d.Len(), d.Buffers(), nil, d.NullN(), d.Offset())
	defer nd.Release()
	return array.MakeFromData(nd)
}

type valued[T any] interface {
	arrow.Array
	Value(int) T
}

type appender[O any] interface {
	array.Builder
	UnsafeAppend(O)
}

func widen[I int8 | int16 | int32 | uint8 | uint16 | uint32 | float32, O int32 | int64 | float64, B appender[O]](newBuilder func(memory.Allocator) B) converter {
	return func(mem memory.Allocator, a arrow.Array) (arrow.Array, *rowProblem) {
		in := a.(valued[I])
		b := newBuilder(mem)
		defer b.Release()
		b.Reserve(in.Len())
		for i := range in.Len() {
			if in.IsNull(i) {
				b.UnsafeAppendBoolToBitmap(false)
			} else {
				b.UnsafeAppend(O(in.Value(i)))
			}
		}
		return b.NewArray(), nil
	}
}

func float16To64(mem memory.Allocator, a arrow.Array) (arrow.Array, *rowProblem) {
	in := a.(*array.Float16)
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	b.Reserve(in.Len())
	for i := range in.Len() {
		if in.IsNull(i) {
			b.UnsafeAppendBoolToBitmap(false)
		} else {
			b.UnsafeAppend(float64(in.Value(i).Float32()))
		}
	}
	return b.NewArray(), nil
}

func checkUTF8(_ memory.Allocator, a arrow.Array) (arrow.Array, *rowProblem) {
	s := a.(*array.String)
	if err := s.Validate(); err != nil {
		return nil, &rowProblem{kind: ErrSyntax, detail: "corrupt string column: " + err.Error()}
	}
	if !validUTF8Values(s) {
		for i := range s.Len() {
			if s.IsValid(i) && !utf8.ValidString(s.Value(i)) {
				return nil, problem(i, "invalid UTF-8 in a string")
			}
		}
	}
	a.Retain()
	return a, nil
}

// validUTF8Values reports whether every non-null value of s is valid
// UTF-8, checking the values' bytes in one pass: if the bytes from the
// first value's start to the last one's end are valid UTF-8 and every
// non-null value starts and ends on a character boundary (not before a
// continuation byte 10xxxxxx), each value is valid on its own. False means
// "look value by value": a null slot's bytes, which do not count, may be
// what failed. s must have passed Validate.
func validUTF8Values(s *array.String) bool {
	n := s.Len()
	if n == 0 {
		return true
	}
	data := s.ValueBytes() // the bytes of values 0 to n-1, from the first offset
	if !utf8.Valid(data) {
		return false
	}
	offs := s.ValueOffsets()
	base := int(offs[0])
	boundary := func(off int32) bool {
		o := int(off) - base
		return o >= len(data) || data[o]&0xC0 != 0x80
	}
	for i := range n {
		if s.IsValid(i) && (!boundary(offs[i]) || !boundary(offs[i+1])) {
			return false
		}
	}
	return true
}

// copyStrings converts large, view and dictionary-encoded strings to utf8.
func copyStrings(mem memory.Allocator, a arrow.Array) (arrow.Array, *rowProblem) {
	var value func(i int) string
	switch s := a.(type) {
	case *array.LargeString:
		if err := s.Validate(); err != nil {
			return nil, &rowProblem{kind: ErrSyntax, detail: "corrupt string column: " + err.Error()}
		}
		value = s.Value
	case *array.StringView:
		value = s.Value
	case *array.Dictionary:
		switch d := s.Dictionary().(type) {
		case *array.String:
			value = func(i int) string { return d.Value(s.GetValueIndex(i)) }
		case *array.LargeString:
			value = func(i int) string { return d.Value(s.GetValueIndex(i)) }
		}
	}
	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.Reserve(a.Len())
	total := 0
	for i := range a.Len() {
		if a.IsNull(i) {
			b.AppendNull()
			continue
		}
		v := value(i)
		if !utf8.ValidString(v) {
			return nil, problem(i, "invalid UTF-8 in a string")
		}
		total += len(v)
		if total > math.MaxInt32 {
			return nil, problem(i, "more than 2 GiB of string data in one batch; write the file with smaller batches or row groups")
		}
		b.Append(v)
	}
	return b.NewArray(), nil
}

func date64To32(mem memory.Allocator, a arrow.Array) (arrow.Array, *rowProblem) {
	in := a.(*array.Date64)
	b := array.NewDate32Builder(mem)
	defer b.Release()
	b.Reserve(in.Len())
	const msPerDay = 86_400_000
	for i := range in.Len() {
		if in.IsNull(i) {
			b.UnsafeAppendBoolToBitmap(false)
			continue
		}
		ms := int64(in.Value(i))
		days := ms / msPerDay
		if ms%msPerDay != 0 || days < math.MinInt32 || days > math.MaxInt32 {
			return nil, problem(i, "date64 value %d ms is not a whole day; a date holds days only", ms)
		}
		b.UnsafeAppend(arrow.Date32(days))
	}
	return b.NewArray(), nil
}

// timestampTo converts timestamps of any unit and zone to microseconds in
// UTC. Arrow timestamps with a zone are instants in UTC already; the zone
// only says how to display them.
func timestampTo(unit arrow.TimeUnit, target arrow.DataType) converter {
	if unit == arrow.Microsecond {
		return func(_ memory.Allocator, a arrow.Array) (arrow.Array, *rowProblem) {
			if arrow.TypeEqual(a.DataType(), target) {
				a.Retain()
				return a, nil
			}
			return retype(a, target), nil
		}
	}
	return func(mem memory.Allocator, a arrow.Array) (arrow.Array, *rowProblem) {
		in := a.(*array.Timestamp)
		b := array.NewTimestampBuilder(mem, target.(*arrow.TimestampType))
		defer b.Release()
		b.Reserve(in.Len())
		for i := range in.Len() {
			if in.IsNull(i) {
				b.UnsafeAppendBoolToBitmap(false)
				continue
			}
			v := int64(in.Value(i))
			var us int64
			switch unit {
			case arrow.Second:
				if v > math.MaxInt64/1_000_000 || v < math.MinInt64/1_000_000 {
					return nil, problem(i, "timestamp %d s overflows microseconds", v)
				}
				us = v * 1_000_000
			case arrow.Millisecond:
				if v > math.MaxInt64/1_000 || v < math.MinInt64/1_000 {
					return nil, problem(i, "timestamp %d ms overflows microseconds", v)
				}
				us = v * 1_000
			case arrow.Nanosecond:
				if v%1_000 != 0 {
					return nil, problem(i, "timestamp %d ns has sub-microsecond precision, which the contract's timestamp (microseconds) would lose", v)
				}
				us = v / 1_000
			}
			b.UnsafeAppend(arrow.Timestamp(us))
		}
		return b.NewArray(), nil
	}
}

// decimalTo converts decimals of scale inScale (≤ the target's, with no
// more integer digits) to the target decimal128, checking that every value
// fits the target precision (Arrow does not guarantee that values respect
// their declared precision).
func decimalTo(want contracts.ColumnType, inScale int32) converter {
	target := want.ArrowType().(*arrow.Decimal128Type)
	up := target.Scale - inScale
	return func(mem memory.Allocator, a arrow.Array) (arrow.Array, *rowProblem) {
		var value func(i int) decimal128.Num
		switch d := a.(type) {
		case *array.Decimal128:
			value = d.Value
		case *array.Decimal64:
			value = func(i int) decimal128.Num { return decimal128.FromI64(int64(d.Value(i))) }
		case *array.Decimal32:
			value = func(i int) decimal128.Num { return decimal128.FromI64(int64(d.Value(i))) }
		}
		// Check first: an exact type whose values all fit passes uncopied.
		for i := range a.Len() {
			if a.IsValid(i) && !value(i).IncreaseScaleBy(up).FitsInPrecision(target.Precision) {
				return nil, problem(i, "decimal value %s overflows %s", value(i).ToString(inScale), want)
			}
		}
		if _, ok := a.(*array.Decimal128); ok && up == 0 {
			if arrow.TypeEqual(a.DataType(), target) {
				a.Retain()
				return a, nil
			}
			return retype(a, target), nil
		}
		b := array.NewDecimal128Builder(mem, target)
		defer b.Release()
		b.Reserve(a.Len())
		for i := range a.Len() {
			if a.IsNull(i) {
				b.UnsafeAppendBoolToBitmap(false)
			} else {
				b.UnsafeAppend(value(i).IncreaseScaleBy(up))
			}
		}
		return b.NewArray(), nil
	}
}
