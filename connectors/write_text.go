package connectors

import (
	"bufio"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// appendFloat appends f in its shortest exact decimal form, without an
// exponent when 1e-6 ≤ |f| < 1e21 (as JavaScript and encoding/json print
// numbers). NaN and infinities are written NaN, +Inf and -Inf.
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(b, f, 'g', -1, bits)
	}
	return strconv.AppendFloat(b, f, 'f', -1, bits)
}

// appendDate appends days since 1970-01-01 as YYYY-MM-DD.
func appendDate(b []byte, days int64) []byte {
	y, m, d := civilFromDays(days)
	if y < 0 {
		b = append(b, '-')
		y = -y
	}
	b = appendPadded(b, y, 4)
	b = append(b, '-')
	b = appendPadded(b, m, 2)
	b = append(b, '-')
	return appendPadded(b, d, 2)
}

func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// appendTimestamp appends an instant as RFC 3339 in UTC, with as many
// fractional digits as needed (none for whole seconds) and a Z, or without
// a zone for a timestamp type that has none.
func appendTimestamp(b []byte, v int64, unit arrow.TimeUnit, zone bool) []byte {
	var t time.Time
	switch unit {
	case arrow.Second:
		t = time.Unix(v, 0)
	case arrow.Millisecond:
		t = time.UnixMilli(v)
	case arrow.Microsecond:
		t = time.UnixMicro(v)
	default:
		t = time.Unix(0, v)
	}
	if zone {
		return t.UTC().AppendFormat(b, time.RFC3339Nano)
	}
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.999999999")
}

// cellKind is how a column's values are rendered in text formats.
type cellKind uint8

const (
	cellText    cellKind = iota // a string: quoted in JSON
	cellNumber                  // a JSON number, right-aligned in tables
	cellBool                    // a JSON boolean
	cellDecimal                 // exact decimal: a string in JSON, right-aligned in tables
	cellOther                   // anything else: JSON via the array's own marshalling
)

// textCell renders value i of a in text and says how it should be treated.
// It reports null as ok == false.
type textCell func(b []byte, i int) ([]byte, bool)

func cellFor(a arrow.Array) (textCell, cellKind) {
	switch a := a.(type) {
	case *array.Boolean:
		return func(b []byte, i int) ([]byte, bool) { return strconv.AppendBool(b, a.Value(i)), a.IsValid(i) }, cellBool
	case *array.Int8:
		return intCell(a, func(i int) int64 { return int64(a.Value(i)) }), cellNumber
	case *array.Int16:
		return intCell(a, func(i int) int64 { return int64(a.Value(i)) }), cellNumber
	case *array.Int32:
		return intCell(a, func(i int) int64 { return int64(a.Value(i)) }), cellNumber
	case *array.Int64:
		return intCell(a, a.Value), cellNumber
	case *array.Uint8:
		return uintCell(a, func(i int) uint64 { return uint64(a.Value(i)) }), cellNumber
	case *array.Uint16:
		return uintCell(a, func(i int) uint64 { return uint64(a.Value(i)) }), cellNumber
	case *array.Uint32:
		return uintCell(a, func(i int) uint64 { return uint64(a.Value(i)) }), cellNumber
	case *array.Uint64:
		return uintCell(a, a.Value), cellNumber
	case *array.Float32:
		return func(b []byte, i int) ([]byte, bool) { return appendFloat(b, float64(a.Value(i)), 32), a.IsValid(i) }, cellNumber
	case *array.Float64:
		return func(b []byte, i int) ([]byte, bool) { return appendFloat(b, a.Value(i), 64), a.IsValid(i) }, cellNumber
	case *array.String:
		return func(b []byte, i int) ([]byte, bool) { return append(b, a.Value(i)...), a.IsValid(i) }, cellText
	case *array.LargeString:
		return func(b []byte, i int) ([]byte, bool) { return append(b, a.Value(i)...), a.IsValid(i) }, cellText
	case *array.StringView:
		return func(b []byte, i int) ([]byte, bool) { return append(b, a.Value(i)...), a.IsValid(i) }, cellText
	case *array.Date32:
		return func(b []byte, i int) ([]byte, bool) { return appendDate(b, int64(a.Value(i))), a.IsValid(i) }, cellText
	case *array.Date64:
		return func(b []byte, i int) ([]byte, bool) {
			return appendDate(b, int64(a.Value(i))/86_400_000), a.IsValid(i)
		}, cellText
	case *array.Timestamp:
		ts := a.DataType().(*arrow.TimestampType)
		return func(b []byte, i int) ([]byte, bool) {
			return appendTimestamp(b, int64(a.Value(i)), ts.Unit, ts.TimeZone != ""), a.IsValid(i)
		}, cellText
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		return func(b []byte, i int) ([]byte, bool) {
			if a.IsNull(i) {
				return b, false
			}
			return append(b, a.Value(i).ToString(scale)...), true
		}, cellDecimal
	}
	return func(b []byte, i int) ([]byte, bool) {
		if a.IsNull(i) {
			return b, false
		}
		return append(b, a.ValueStr(i)...), true
	}, cellOther
}

func intCell(a arrow.Array, v func(int) int64) textCell {
	return func(b []byte, i int) ([]byte, bool) { return strconv.AppendInt(b, v(i), 10), a.IsValid(i) }
}

func uintCell(a arrow.Array, v func(int) uint64) textCell {
	return func(b []byte, i int) ([]byte, bool) { return strconv.AppendUint(b, v(i), 10), a.IsValid(i) }
}

// writeCSV writes RFC 4180 CSV: a header, then one record per row.
func writeCSV(w *bufio.Writer, rr array.RecordReader) (int64, error) {
	fields := rr.Schema().Fields()
	var line []byte
	for j, f := range fields {
		if j > 0 {
			line = append(line, ',')
		}
		line = appendCSVField(line, []byte(f.Name), true)
	}
	line = append(line, '\n')
	if _, err := w.Write(line); err != nil {
		return 0, err
	}
	var rows int64
	cells := make([]textCell, len(fields))
	kinds := make([]cellKind, len(fields))
	var val []byte
	for rr.Next() {
		rec := rr.RecordBatch()
		for j := range fields {
			cells[j], kinds[j] = cellFor(rec.Column(j))
		}
		for i := range int(rec.NumRows()) {
			line = line[:0]
			for j := range fields {
				if j > 0 {
					line = append(line, ',')
				}
				var ok bool
				val, ok = cells[j](val[:0], i)
				if ok {
					line = appendCSVField(line, val, kinds[j] == cellText || kinds[j] == cellOther)
				}
			}
			line = append(line, '\n')
			if _, err := w.Write(line); err != nil {
				return rows, err
			}
			rows++
		}
	}
	return rows, rr.Err()
}

// appendCSVField appends v, quoted when it holds a comma, quote, CR or LF,
// or when it is empty and emptyQuoted (an empty string, not a null).
func appendCSVField(b, v []byte, emptyQuoted bool) []byte {
	if len(v) == 0 {
		if emptyQuoted {
			return append(b, '"', '"')
		}
		return b
	}
	if !strings.ContainsAny(string(v), ",\"\r\n") {
		return append(b, v...)
	}
	b = append(b, '"')
	for _, c := range v {
		if c == '"' {
			b = append(b, '"')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

// writeJSON writes one JSON object per row: as an array (asArray) or as
// JSON lines.
func writeJSON(w *bufio.Writer, rr array.RecordReader, asArray bool) (int64, error) {
	fields := rr.Schema().Fields()
	keys := make([][]byte, len(fields))
	for j, f := range fields {
		keys[j] = append(appendJSONString(nil, f.Name), ':')
	}
	var rows int64
	cells := make([]textCell, len(fields))
	kinds := make([]cellKind, len(fields))
	var line, val []byte
	if asArray {
		if _, err := w.WriteString("["); err != nil {
			return 0, err
		}
	}
	for rr.Next() {
		rec := rr.RecordBatch()
		cols := rec.Columns()
		for j := range fields {
			cells[j], kinds[j] = cellFor(cols[j])
		}
		for i := range int(rec.NumRows()) {
			line = line[:0]
			if asArray {
				if rows > 0 {
					line = append(line, ',')
				}
				line = append(line, '\n')
			}
			line = append(line, '{')
			for j := range fields {
				if j > 0 {
					line = append(line, ',')
				}
				line = append(line, keys[j]...)
				var ok bool
				val, ok = cells[j](val[:0], i)
				switch {
				case !ok:
					line = append(line, "null"...)
				case kinds[j] == cellNumber:
					line = appendJSONNumber(line, val)
				case kinds[j] == cellBool:
					line = append(line, val...)
				case kinds[j] == cellOther:
					enc, err := json.Marshal(cols[j].GetOneForMarshal(i))
					if err != nil {
						enc = appendJSONString(nil, string(val))
					}
					line = append(line, enc...)
				default:
					line = appendJSONString(line, string(val))
				}
			}
			line = append(line, '}')
			if !asArray {
				line = append(line, '\n')
			}
			if _, err := w.Write(line); err != nil {
				return rows, err
			}
			rows++
		}
	}
	if err := rr.Err(); err != nil {
		return rows, err
	}
	if asArray {
		end := "\n]\n"
		if rows == 0 {
			end = "]\n"
		}
		if _, err := w.WriteString(end); err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// appendJSONNumber appends a rendered number; NaN and infinities, which
// JSON numbers cannot express, become the strings "NaN", "Infinity" and
// "-Infinity".
func appendJSONNumber(b, v []byte) []byte {
	switch string(v) {
	case "NaN":
		return append(b, `"NaN"`...)
	case "+Inf":
		return append(b, `"Infinity"`...)
	case "-Inf":
		return append(b, `"-Infinity"`...)
	}
	return append(b, v...)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
