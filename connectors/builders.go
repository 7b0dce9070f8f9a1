package connectors

import (
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/contracts"
)

// valueKind says what kind of token a text value came from.
type valueKind uint8

const (
	kindText   valueKind = iota // a CSV field or a JSON string
	kindNumber                  // a JSON number (its literal text)
	kindBool                    // a JSON true or false (its literal text)
)

// textBatch builds record batches of the contract schema from text values
// (CSV fields, JSON tokens).
type textBatch struct {
	schema    *arrow.Schema
	rb        *array.RecordBuilder
	cols      []colBuilder
	assumeUTC bool
}

type colBuilder struct {
	typ   contracts.ColumnType
	b     array.Builder
	bools *array.BooleanBuilder
	i32   *array.Int32Builder
	i64   *array.Int64Builder
	f64   *array.Float64Builder
	str   *array.StringBuilder
	date  *array.Date32Builder
	ts    *array.TimestampBuilder
	dec   *array.Decimal128Builder
	// lastData is the string bytes of the previous batch, to reserve the
	// next batch's data buffer at once instead of growing it by copies.
	lastData int
}

func newTextBatch(mem memory.Allocator, cols []contracts.Column, schema *arrow.Schema, assumeUTC bool) *textBatch {
	t := &textBatch{schema: schema, rb: array.NewRecordBuilder(mem, schema), cols: make([]colBuilder, len(cols)), assumeUTC: assumeUTC}
	for i, c := range cols {
		cb := &t.cols[i]
		cb.typ = c.Type
		cb.b = t.rb.Field(i)
		switch b := cb.b.(type) {
		case *array.BooleanBuilder:
			cb.bools = b
		case *array.Int32Builder:
			cb.i32 = b
		case *array.Int64Builder:
			cb.i64 = b
		case *array.Float64Builder:
			cb.f64 = b
		case *array.StringBuilder:
			cb.str = b
		case *array.Date32Builder:
			cb.date = b
		case *array.TimestampBuilder:
			cb.ts = b
		case *array.Decimal128Builder:
			cb.dec = b
		}
	}
	return t
}

func (t *textBatch) reserve(n int) {
	t.rb.Reserve(min(n, DefaultBatchSize)) // larger batches grow as they fill
	for i := range t.cols {
		if cb := &t.cols[i]; cb.str != nil && cb.lastData > 0 {
			cb.str.ReserveData(cb.lastData + cb.lastData/8)
		}
	}
}

// finish returns the rows appended so far as a record batch and resets the
// builders.
func (t *textBatch) finish() arrow.RecordBatch {
	for i := range t.cols {
		if cb := &t.cols[i]; cb.str != nil {
			cb.lastData = cb.str.DataLen()
		}
	}
	return t.rb.NewRecordBatch()
}

func (t *textBatch) release() { t.rb.Release() }

func (t *textBatch) appendNull(i int) { t.cols[i].b.AppendNull() }

// typeMismatch describes a JSON token of the wrong kind for a column, or is
// empty when the token is acceptable.
func typeMismatch(typ contracts.ColumnType, k valueKind) string {
	switch k {
	case kindNumber:
		switch typ.Kind {
		case contracts.KindInt32, contracts.KindInt64, contracts.KindFloat64, contracts.KindDecimal:
			return ""
		}
		return "got a JSON number, want " + wantJSON(typ)
	case kindBool:
		if typ.Kind == contracts.KindBool {
			return ""
		}
		return "got a JSON boolean, want " + wantJSON(typ)
	}
	return ""
}

func wantJSON(typ contracts.ColumnType) string {
	switch typ.Kind {
	case contracts.KindBool:
		return "true, false or null"
	case contracts.KindString:
		return "a JSON string or null"
	case contracts.KindDate:
		return "a string such as \"2026-01-02\" or null"
	case contracts.KindTimestamp:
		return "an RFC 3339 string such as \"2026-01-02T15:04:05Z\" or null"
	}
	return "a number or null"
}

// appendValue parses v, a token of kind k, as column i's type and appends
// it. The returned error is an ErrColumnType or ErrValue detail, without
// location.
func (t *textBatch) appendValue(i int, v []byte, k valueKind) (kind error, err error) {
	cb := &t.cols[i]
	if k != kindText {
		if msg := typeMismatch(cb.typ, k); msg != "" {
			return ErrColumnType, valueErrf("%s", msg)
		}
	}
	switch cb.typ.Kind {
	case contracts.KindString:
		if !utf8.Valid(v) {
			return ErrValue, valueErrf("invalid UTF-8 in string %s", quoteValue(v))
		}
		cb.str.BinaryBuilder.Append(v)
		return nil, nil
	case contracts.KindBool:
		x, err := parseBool(v)
		if err != nil {
			return ErrValue, err
		}
		cb.bools.Append(x)
	case contracts.KindInt32:
		x, err := parseInt(v, 32)
		if err != nil {
			return ErrValue, err
		}
		cb.i32.Append(int32(x))
	case contracts.KindInt64:
		x, err := parseInt(v, 64)
		if err != nil {
			return ErrValue, err
		}
		cb.i64.Append(x)
	case contracts.KindFloat64:
		x, err := parseFloat(v)
		if err != nil {
			return ErrValue, err
		}
		cb.f64.Append(x)
	case contracts.KindDate:
		x, err := parseDate(v)
		if err != nil {
			return ErrValue, err
		}
		cb.date.Append(arrow.Date32(x))
	case contracts.KindTimestamp:
		x, err := parseTimestamp(v, t.assumeUTC)
		if err != nil {
			return ErrValue, err
		}
		cb.ts.Append(arrow.Timestamp(x))
	case contracts.KindDecimal:
		x, err := parseDecimal(v, cb.typ.Precision, cb.typ.Scale)
		if err != nil {
			return ErrValue, err
		}
		cb.dec.Append(x)
	}
	return nil, nil
}
