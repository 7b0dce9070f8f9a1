package engine

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// checkBatch verifies that rec has exactly schema's column types and that
// every buffer DuckDB will read is well formed. DuckDB trusts Arrow memory
// as given, so this check is what keeps a malicious dataset from making it
// read outside its buffers.
func checkBatch(schema *arrow.Schema, rec arrow.RecordBatch) error {
	if rec == nil {
		return errors.New("nil batch")
	}
	if int(rec.NumCols()) != schema.NumFields() {
		return fmt.Errorf("batch has %d columns, want %d", rec.NumCols(), schema.NumFields())
	}
	rows := rec.NumRows()
	if rows < 0 {
		return fmt.Errorf("batch has %d rows", rows)
	}
	for i, f := range schema.Fields() {
		col := rec.Column(i)
		if !arrow.TypeEqual(col.DataType(), f.Type) {
			return fmt.Errorf("column %q has type %s, want %s", f.Name, col.DataType(), f.Type)
		}
		d := col.Data()
		if int64(d.Len()) != rows {
			return fmt.Errorf("column %q has %d rows, the batch %d", f.Name, d.Len(), rows)
		}
		if err := checkArrayData(d); err != nil {
			return fmt.Errorf("column %q: %w", f.Name, err)
		}
	}
	return nil
}

// checkArrayData checks one column of a dataset type (see ColumnType).
func checkArrayData(d arrow.ArrayData) error {
	n, off := d.Len(), d.Offset()
	if n < 0 || off < 0 {
		return fmt.Errorf("negative length %d or offset %d", n, off)
	}
	if len(d.Children()) != 0 {
		return errors.New("unexpected child arrays")
	}
	bufs := d.Buffers()
	want := 2
	if d.DataType().ID() == arrow.STRING {
		want = 3
	}
	if len(bufs) != want {
		return fmt.Errorf("%d buffers, want %d", len(bufs), want)
	}
	if n == 0 {
		return nil
	}
	end := int64(off) + int64(n)

	// Validity bitmap: present whenever there are nulls, long enough, and
	// agreeing with the null count DuckDB is given.
	validity := bytesOf(bufs[0])
	if validity != nil && int64(len(validity)) < bitutil.BytesForBits(end) {
		return fmt.Errorf("validity bitmap of %d bytes is too short for %d rows at offset %d", len(validity), n, off)
	}
	if nulls := d.NullN(); nulls != 0 && !(nulls == array.UnknownNullCount && validity == nil) {
		if validity == nil {
			if nulls == n {
				// All null without a bitmap is valid Arrow, but DuckDB
				// would read the missing bitmap: refuse it.
				return errors.New("all values are null but there is no validity bitmap")
			}
			return fmt.Errorf("null count %d but no validity bitmap", nulls)
		}
		actual := n - bitutil.CountSetBits(validity, off, n)
		if nulls != actual && nulls != array.UnknownNullCount {
			return fmt.Errorf("null count is %d but the validity bitmap has %d nulls", nulls, actual)
		}
	}

	values := bytesOf(bufs[1])
	switch t := d.DataType().(type) {
	case *arrow.BooleanType:
		if int64(len(values)) < bitutil.BytesForBits(end) {
			return fmt.Errorf("value bitmap of %d bytes is too short for %d rows at offset %d", len(values), n, off)
		}
	case *arrow.StringType:
		return checkStrings(values, bytesOf(bufs[2]), off, n)
	case *arrow.Decimal128Type:
		if int64(len(values)) < end*16 {
			return fmt.Errorf("value buffer of %d bytes is too short for %d decimals at offset %d", len(values), n, off)
		}
		nums := arrow.Decimal128Traits.CastFromBytes(values[:end*16])[off:end]
		for i, v := range nums {
			if validity != nil && !bitutil.BitIsSet(validity, off+i) {
				continue
			}
			if !v.FitsInPrecision(t.Precision) {
				return fmt.Errorf("row %d: decimal value has more than %d digits", i, t.Precision)
			}
		}
	default:
		fw, ok := t.(arrow.FixedWidthDataType)
		if !ok {
			return fmt.Errorf("type %s is not a dataset column type", t)
		}
		width := int64(fw.BitWidth() / 8)
		if int64(len(values)) < end*width {
			return fmt.Errorf("value buffer of %d bytes is too short for %d values at offset %d", len(values), n, off)
		}
	}
	return nil
}

// checkStrings checks the offsets and UTF-8 of a utf8 column: offsets in
// bounds and non-decreasing, the data between them valid UTF-8, and every
// offset on a character boundary, so each value is valid UTF-8 on its own.
func checkStrings(offsetBytes, data []byte, off, n int) error {
	if int64(len(offsetBytes)) < (int64(off)+int64(n)+1)*4 {
		return fmt.Errorf("offset buffer of %d bytes is too short for %d strings at offset %d", len(offsetBytes), n, off)
	}
	offsets := arrow.Int32Traits.CastFromBytes(offsetBytes)[off : off+n+1]
	first, last := offsets[0], offsets[n]
	if first < 0 || last < first || int64(last) > int64(len(data)) {
		return fmt.Errorf("string offsets %d..%d are outside the %d-byte data buffer", first, last, len(data))
	}
	prev := first
	for i, o := range offsets[1:] {
		if o < prev {
			return fmt.Errorf("row %d: string offsets decrease (%d after %d)", i, o, prev)
		}
		if int(o) < len(data) && !utf8.RuneStart(data[o]) {
			return fmt.Errorf("row %d: string ends inside a UTF-8 character", i)
		}
		prev = o
	}
	if !utf8.Valid(data[first:last]) {
		for i := range n {
			if !utf8.Valid(data[offsets[i]:offsets[i+1]]) {
				return fmt.Errorf("row %d: string is not valid UTF-8", i)
			}
		}
		return errors.New("strings are not valid UTF-8")
	}
	return nil
}

func bytesOf(b *memory.Buffer) []byte {
	if b == nil {
		return nil
	}
	return b.Bytes()
}
