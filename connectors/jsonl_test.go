package connectors

import (
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/contracts"
)

func TestJSONLValues(t *testing.T) {
	cases := []struct{ typ, value, want string }{
		{"bool", "true", "true"}, {"bool", "false", "false"}, {"bool", `"true"`, "true"}, {"bool", "null", "(null)"},
		{"int32", "-2147483648", "-2147483648"}, {"int32", `"12"`, "12"},
		{"int64", "9223372036854775807", "9223372036854775807"}, {"int64", `"-9223372036854775808"`, "-9223372036854775808"},
		{"float64", "1.5e3", "1500"}, {"float64", "-0", "-0"}, {"float64", "7", "7"}, {"float64", `"NaN"`, "NaN"}, {"float64", `"Infinity"`, "+Inf"}, {"float64", `"-Infinity"`, "-Inf"},
		{"string", `""`, ""}, {"string", `"a\"b\\c\/d\n\t\u00e9\ud83c\udf89"`, "a\"b\\c/d\n\té🎉"}, {"string", `"日本"`, "日本"}, {"string", "null", "(null)"},
		{"date", `"2024-02-29"`, "2024-02-29"},
		{"timestamp", `"2026-01-02T03:04:05.25-01:00"`, "2026-01-02T04:04:05.25Z"},
		{"decimal(10,3)", "-12.5", "-12.5"}, {"decimal(10,3)", `"0.001"`, "0.001"},
	}
	for _, c := range cases {
		cols := []contracts.Column{col("x", c.typ)}
		recs, err := readString(t, FormatJSONL, cols, `{"x": `+c.value+" }\n", Options{})
		if err != nil {
			t.Errorf("%s %s: %v", c.typ, c.value, err)
			continue
		}
		a := recs[0].Column(0)
		got := "(null)"
		if a.IsValid(0) {
			got = a.ValueStr(0)
		}
		if got != c.want {
			t.Errorf("%s %s: got %q, want %q", c.typ, c.value, got, c.want)
		}
		releaseAll(recs)
	}
}

func TestJSONLErrors(t *testing.T) {
	cols := []contracts.Column{col("id", "int64"), col("name", "string"), col("score", "decimal(5,2)")}
	ok := `{"id":1,"name":"a","score":1.5}` + "\n"
	cases := []struct {
		name   string
		input  string
		kind   error
		column string
		line   int64
		frag   []string
	}{
		{"missing key", ok + `{"id":2,"name":"b"}`, ErrMissingColumn, "score", 2, []string{`"score": null`}},
		{"extra key", ok + `{"id":2,"name":"b","score":null,"x":1}`, ErrExtraColumn, "x", 2, nil},
		{"duplicate key", `{"id":2,"id":3,"name":"b","score":null}`, ErrDuplicateColumn, "id", 1, nil},
		{"number for string", `{"id":2,"name":5,"score":null}`, ErrColumnType, "name", 1, []string{"JSON number", "want a JSON string"}},
		{"bool for int", `{"id":true,"name":"b","score":null}`, ErrColumnType, "id", 1, []string{"JSON boolean"}},
		{"nested object", `{"id":1,"name":{"a":1},"score":null}`, ErrColumnType, "name", 1, []string{"nested"}},
		{"array", `{"id":[1],"name":"b","score":null}`, ErrColumnType, "id", 1, []string{"nested"}},
		{"float for int", `{"id":1.5,"name":"b","score":null}`, ErrValue, "id", 1, []string{"invalid int64"}},
		{"overflow", `{"id":9223372036854775808,"name":"b","score":null}`, ErrValue, "id", 1, []string{"overflows int64"}},
		{"decimal exponent", `{"id":1,"name":"b","score":1e2}`, ErrValue, "score", 1, []string{"no exponent"}},
		{"decimal places", `{"id":1,"name":"b","score":1.005}`, ErrValue, "score", 1, []string{"decimal places"}},
		{"empty string for int", `{"id":"","name":"b","score":null}`, ErrValue, "id", 1, nil},
		{"invalid json", ok + ok + `{"id":1,"name":"b",}`, ErrSyntax, "", 3, []string{"quoted key"}},
		{"unquoted key", `{id:1}`, ErrSyntax, "", 1, nil},
		{"not an object", ok + `[1,"a",2]`, ErrSyntax, "", 2, []string{"not a JSON object"}},
		{"scalar line", `42`, ErrSyntax, "", 1, []string{"not a JSON object"}},
		{"two objects", ok[:len(ok)-1] + ok, ErrSyntax, "", 1, []string{"after the object"}},
		{"empty line", ok + "\n" + ok, ErrSyntax, "", 2, []string{"empty line"}},
		{"unterminated string", `{"id":1,"name":"b`, ErrSyntax, "", 1, []string{"unterminated"}},
		{"control char", "{\"id\":1,\"name\":\"a\tb\",\"score\":null}", ErrSyntax, "", 1, []string{"control character"}},
		{"lone surrogate", `{"id":1,"name":"\ud800","score":null}`, ErrSyntax, "", 1, []string{"surrogate"}},
		{"bad escape", `{"id":1,"name":"\x","score":null}`, ErrSyntax, "", 1, []string{"invalid escape"}},
		{"invalid utf-8", "{\"id\":1,\"name\":\"\xff\",\"score\":null}", ErrSyntax, "", 1, []string{"UTF-8"}},
		{"bad number", `{"id":01,"name":"a","score":null}`, ErrSyntax, "", 1, []string{"number"}},
		{"bad literal", `{"id":1,"name":nul,"score":null}`, ErrSyntax, "", 1, nil},
		{"truncated", `{"id":1,"name":"a","score":`, ErrSyntax, "", 1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readString(t, FormatJSONL, cols, c.input, Options{})
			checkErr(t, err, c.kind, c.column, c.line, c.frag...)
		})
	}
}

func TestJSONLEmptyAndWhitespace(t *testing.T) {
	cols := []contracts.Column{col("a", "int64")}
	recs, err := readString(t, FormatJSONL, cols, "", Options{})
	if err != nil || len(recs) != 0 {
		t.Errorf("empty input: %d batches, %v", len(recs), err)
	}
	recs, err = readString(t, FormatJSONL, cols, "\ufeff { \"a\" : 1 } \r\n{\"a\":2}", Options{})
	if err != nil || len(recs) != 1 || recs[0].NumRows() != 2 {
		t.Fatalf("got %v, %v", recs, err)
	}
	releaseAll(recs)
	// The first line is checked when the reader is made.
	_, err = NewReader(strings.NewReader(`{"b":1}`+"\n"), FormatJSONL, cols, Options{})
	checkErr(t, err, ErrExtraColumn, "b", 1)
}
