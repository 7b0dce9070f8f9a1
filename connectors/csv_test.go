package connectors

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"cleanroom.dev/cleanroom/contracts"
)

func TestCSVValues(t *testing.T) {
	type tc struct {
		typ   string
		field string // as written in the CSV
		want  string // the Arrow value's string form, "(null)" for null
	}
	cases := []tc{
		{"bool", "true", "true"}, {"bool", "FALSE", "false"}, {"bool", "1", "true"}, {"bool", "f", "false"}, {"bool", "", "(null)"}, {"bool", `""`, "(null)"},
		{"int32", "-2147483648", "-2147483648"}, {"int32", "+17", "17"}, {"int32", "007", "7"}, {"int32", "", "(null)"},
		{"int64", "-9223372036854775808", "-9223372036854775808"}, {"int64", "9223372036854775807", "9223372036854775807"},
		{"float64", "1.5", "1.5"}, {"float64", "-1e-3", "-0.001"}, {"float64", "NaN", "NaN"}, {"float64", "-Inf", "-Inf"}, {"float64", "0x1p-2", "0.25"}, {"float64", "1e-400", "0"},
		{"string", "", "(null)"}, {"string", `""`, ""}, {"string", `" spaced "`, " spaced "}, {"string", "ünï", "ünï"}, {"string", `"a""b"`, `a"b`}, {"string", "\"x\r\ny\"", "x\r\ny"},
		{"date", "2024-02-29", "2024-02-29"}, {"date", "0001-01-01", "0001-01-01"}, {"date", "", "(null)"},
		{"timestamp", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"},
		{"timestamp", "2026-01-02 03:04:05.5+02:00", "2026-01-02T01:04:05.5Z"},
		{"timestamp", "2026-01-02t03:04:05.1z", "2026-01-02T03:04:05.1Z"},
		{"timestamp", "2026-01-02T03:04:05.123456000Z", "2026-01-02T03:04:05.123456Z"},
		{"timestamp", "1969-12-31T23:59:59.999999-00:30", "1970-01-01T00:29:59.999999Z"},
		{"decimal(5,2)", "123.45", "123.45"}, {"decimal(5,2)", "-0.5", "-0.5"}, {"decimal(5,2)", ".5", "0.5"}, {"decimal(5,2)", "7.", "7"},
		{"decimal(5,2)", "1.2300", "1.23"}, {"decimal(5,2)", "000999.99", "999.99"}, {"decimal(5,0)", "-99999", "-99999"},
		{"decimal(38,0)", "99999999999999999999999999999999999999", "99999999999999999999999999999999999999"},
		{"decimal(38,10)", "-1234567890123456789012345678.0123456789", "-1234567890123456789012345678.0123456789"},
	}
	for _, c := range cases {
		cols := []contracts.Column{col("x", c.typ)}
		recs, err := readString(t, FormatCSV, cols, "x\n"+c.field+"\n", Options{})
		if err != nil {
			t.Errorf("%s %q: %v", c.typ, c.field, err)
			continue
		}
		if len(recs) != 1 || recs[0].NumRows() != 1 {
			t.Errorf("%s %q: got %d batches", c.typ, c.field, len(recs))
			continue
		}
		a := recs[0].Column(0)
		got := "(null)"
		if a.IsValid(0) {
			got = a.ValueStr(0)
		}
		if got != c.want {
			t.Errorf("%s %q: got %q, want %q", c.typ, c.field, got, c.want)
		}
		releaseAll(recs)
	}
}

func TestCSVErrors(t *testing.T) {
	cols := []contracts.Column{col("id", "int64"), col("name", "string"), col("at", "timestamp")}
	cases := []struct {
		name   string
		input  string
		kind   error
		column string
		line   int64
		frag   []string
	}{
		{"empty file", "", ErrEmpty, "", 0, []string{"header"}},
		{"missing column", "id,name\n1,a\n", ErrMissingColumn, "at", 1, nil},
		{"extra column", "id,name,at,x\n", ErrExtraColumn, "x", 1, []string{"id, name, at"}},
		{"duplicate column", "id,name,at,name\n", ErrDuplicateColumn, "name", 1, nil},
		{"unknown column first", "x,id,name,at\n", ErrExtraColumn, "x", 1, nil},
		{"empty header field", "id,name,at,\n", ErrExtraColumn, "", 1, []string{"header field 4 is empty"}},
		{"case differs", "ID,name,at\n", ErrExtraColumn, "ID", 1, nil},
		{"bad int", "id,name,at\n1,a,\nx1,b,\n", ErrValue, "id", 3, []string{`invalid int64 "x1"`}},
		{"overflow", "id,name,at\n9223372036854775808,a,\n", ErrValue, "id", 2, []string{"overflows int64"}},
		{"spaces", "id,name,at\n 1,a,\n", ErrValue, "id", 2, nil},
		{"bad timestamp", "id,name,at\n1,a,2026-13-01T00:00:00Z\n", ErrValue, "at", 2, []string{"invalid timestamp", "RFC 3339"}},
		{"no offset", "id,name,at\n1,a,2026-01-01T00:00:00\n", ErrValue, "at", 2, []string{"no UTC offset"}},
		{"sub-microsecond", "id,name,at\n1,a,2026-01-01T00:00:00.1234567Z\n", ErrValue, "at", 2, []string{"sub-microsecond"}},
		{"too few fields", "id,name,at\n1,a,\n2,b\n", ErrSyntax, "", 3, []string{"2 fields, want 3"}},
		{"too many fields", "id,name,at\n1,a,,\n", ErrSyntax, "", 2, []string{"4 fields, want 3"}},
		{"blank line", "id,name,at\n1,a,\n\n", ErrSyntax, "", 3, []string{"1 fields, want 3"}},
		{"bare quote", "id,name,at\n1,a\"b,\n", ErrSyntax, "", 2, []string{"quote inside an unquoted field"}},
		{"text after quote", "id,name,at\n1,\"a\"b,\n", ErrSyntax, "", 2, []string{"after a closing quote"}},
		{"unclosed quote", "id,name,at\n1,a,\n2,\"b,\n3,c,\n", ErrSyntax, "", 3, []string{"never closed"}},
		{"error after multi-line record", "id,name,at\n1,\"a\nb\",\nx,c,\n", ErrValue, "id", 4, nil},
		{"invalid utf-8", "id,name,at\n1,\xff,\n", ErrValue, "name", 2, []string{"UTF-8"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readString(t, FormatCSV, cols, c.input, Options{})
			checkErr(t, err, c.kind, c.column, c.line, c.frag...)
		})
	}
}

func TestCSVValueErrors(t *testing.T) {
	cases := []struct{ typ, field, frag string }{
		{"bool", "yes", "invalid bool"},
		{"int32", "2147483648", "overflows int32"},
		{"int32", "-2147483649", "overflows int32"},
		{"int32", "1.0", "invalid int32"},
		{"int32", "-", "invalid int32"},
		{"int64", "99999999999999999999999", "overflows int64"},
		{"int64", "0x10", "invalid int64"},
		{"float64", "1e400", "overflows float64"},
		{"float64", "1,5", ""}, // splits into two fields: a syntax error
		{"float64", "abc", "invalid float64"},
		{"date", "2023-02-29", "invalid date"},
		{"date", "2023-1-2", "invalid date"},
		{"date", "2023-01-02T00:00:00Z", "invalid date"},
		{"timestamp", "2026-01-02", "invalid timestamp"},
		{"timestamp", "2026-01-02T24:00:00Z", "invalid timestamp"},
		{"timestamp", "2026-01-02T10:00:00+24:00", "invalid UTC offset"},
		{"timestamp", "2026-01-02T10:00:00.Z", "invalid timestamp"},
		{"timestamp", "2026-01-02T10:00:00.1234560000Z", "more than 9"},
		{"decimal(5,2)", "1234.5", "overflows decimal(5,2)"},
		{"decimal(5,2)", "1.234", "more than 2 decimal places"},
		{"decimal(5,2)", "1e2", "invalid decimal(5,2)"},
		{"decimal(5,2)", ".", "invalid decimal(5,2)"},
		{"decimal(5,2)", "+", "invalid decimal(5,2)"},
		{"decimal(38,0)", "100000000000000000000000000000000000000", "overflows decimal(38,0)"},
	}
	for _, c := range cases {
		cols := []contracts.Column{col("x", c.typ), col("y", "string")}
		_, err := readString(t, FormatCSV, cols, "x,y\n"+c.field+",\n", Options{})
		if c.frag == "" {
			checkErr(t, err, ErrSyntax, "", 2)
			continue
		}
		checkErr(t, err, ErrValue, "x", 2, c.frag)
	}
}

func TestCSVHeaderOnly(t *testing.T) {
	cols := []contracts.Column{col("a", "int64"), col("b", "string")}
	for _, in := range []string{"a,b", "a,b\n", "a,b\r\n", "\ufeffb,a\n"} {
		r, err := NewReader(strings.NewReader(in), FormatCSV, cols, Options{})
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		recs, err := readAll(t, r)
		if err != nil || len(recs) != 0 || r.Rows() != 0 {
			t.Errorf("%q: %d batches, %v; want none and no error", in, len(recs), err)
		}
	}
}

func TestCSVLineEndingsAndBOM(t *testing.T) {
	cols := []contracts.Column{col("a", "int64"), col("b", "string")}
	want := "a,b\n1,x\n2,\"y\"\"\"\n3,\n"
	for _, in := range []string{
		"a,b\n1,x\n2,\"y\"\"\"\n3,\n",
		"a,b\r\n1,x\r\n2,\"y\"\"\"\r\n3,\r\n",
		"\ufeffa,b\n1,x\n2,\"y\"\"\"\n3,",
		"b,a\nx,1\n\"y\"\"\",2\n,3\n",
	} {
		recs, err := readString(t, FormatCSV, cols, in, Options{BatchSize: 2})
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		got := string(mustWrite(t, FormatCSV, Schema(cols), recs...))
		if got != want {
			t.Errorf("%q read and written back as %q, want %q", in, got, want)
		}
		releaseAll(recs)
	}
}

func TestCSVLimits(t *testing.T) {
	cols := []contracts.Column{col("s", "string")}
	long := strings.Repeat("x", 1000)
	// A long line is fine under the limit, even across the read buffer.
	recs, err := readString(t, FormatCSV, cols, "s\n"+strings.Repeat("y", textBufferSize*2+7)+"\n"+long+"\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := recs[0].Column(0).(*array.String).ValueLen(0); n != textBufferSize*2+7 {
		t.Errorf("long value has %d bytes", n)
	}
	releaseAll(recs)
	_, err = readString(t, FormatCSV, cols, "s\nshort\n"+long+"\n", Options{MaxRecordBytes: 999})
	checkErr(t, err, ErrSyntax, "", 3, "longer than 999 bytes")
	_, err = readString(t, FormatCSV, cols, "s\n\"a\n"+long+"\"\n", Options{MaxRecordBytes: 999})
	checkErr(t, err, ErrSyntax, "", 2, "longer than 999 bytes")
	// MaxBatchBytes cuts batches early.
	recs, err = readString(t, FormatCSV, cols, "s\n"+strings.Repeat(long+"\n", 10), Options{MaxBatchBytes: 2500})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || recs[0].NumRows() != 3 {
		t.Errorf("got %d batches, first of %d rows; want 4, 3", len(recs), recs[0].NumRows())
	}
	releaseAll(recs)
}

func TestAssumeUTC(t *testing.T) {
	cols := []contracts.Column{col("t", "timestamp")}
	recs, err := readString(t, FormatCSV, cols, "t\n2026-01-02T03:04:05\n", Options{AssumeUTC: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := recs[0].Column(0).ValueStr(0); got != "2026-01-02T03:04:05Z" {
		t.Errorf("got %s", got)
	}
	releaseAll(recs)
}
