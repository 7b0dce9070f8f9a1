package scenario

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
)

// ErrMismatch is wrapped by Check's error when the result differs from the
// expected results (as opposed to a file that cannot be read).
var ErrMismatch = errors.New("result does not match the expected results")

// ExpectedColumns are the columns of the expected-results file: the query's
// result columns followed by ReleasedColumn (bool).
func ExpectedColumns(result []contracts.Column) []contracts.Column {
	return append(slices.Clone(result), MustColumns(ReleasedColumn, "bool")...)
}

// WriteExpected writes the expected-results file (ExpectedFile) into o.
// Each row is the query's result row followed by whether it is released;
// rows are given in the query's order. Values must match the result
// columns' Arrow types: string, int64, bool or a decimal128.Num for the
// scenario's columns.
func WriteExpected(o *Output, result []contracts.Column, rows [][]any) error {
	schema := connectors.Schema(ExpectedColumns(result))
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for ri, row := range rows {
		if len(row) != len(schema.Fields()) {
			return fmt.Errorf("scenario: expected row %d has %d values, want %d", ri, len(row), len(schema.Fields()))
		}
		for j, v := range row {
			if err := appendValue(b.Field(j), v); err != nil {
				return fmt.Errorf("scenario: expected row %d, column %s: %w", ri, schema.Field(j).Name, err)
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return o.WriteRecords(ExpectedFile, connectors.FormatCSV, schema, []arrow.RecordBatch{rec})
}

// Table is a small result or expected-results file read into memory, each
// value in its canonical text form (as Arrow prints it for the column's
// contract type, so equal values have equal text).
type Table struct {
	Columns []string
	Rows    [][]string
}

// ReadTable reads a small file (any format connectors reads, detected from
// its name and content) whose columns must be exactly cols.
func ReadTable(path string, cols []contracts.Column) (*Table, error) {
	r, err := connectors.Open(path, connectors.FormatAuto, cols, connectors.Options{})
	if err != nil {
		return nil, err
	}
	defer r.Release()
	t := &Table{}
	for _, c := range cols {
		t.Columns = append(t.Columns, c.Name)
	}
	for r.Next() {
		rec := r.RecordBatch()
		for i := range int(rec.NumRows()) {
			row := make([]string, rec.NumCols())
			for j := range row {
				row[j] = strings.Clone(rec.Column(j).ValueStr(i)) // Arrow strings alias the batch
			}
			t.Rows = append(t.Rows, row)
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// Expectation is an expected-results file split by the output policy.
type Expectation struct {
	Columns    []string
	All        [][]string // every row the query returns, in order
	Released   [][]string // the rows the clean room must release, in order
	Suppressed [][]string // the rows it must drop
	keys       int        // leading string columns: the group a row is about
}

func keyColumns(cols []contracts.Column) int {
	n := 0
	for n < len(cols) && cols[n].Type.Kind == contracts.KindString {
		n++
	}
	return n
}

// ReadExpected reads an expected-results file written by WriteExpected.
func ReadExpected(path string, result []contracts.Column) (*Expectation, error) {
	t, err := ReadTable(path, ExpectedColumns(result))
	if err != nil {
		return nil, err
	}
	e := &Expectation{Columns: t.Columns[:len(result)], keys: keyColumns(result)}
	for _, row := range t.Rows {
		e.All = append(e.All, row[:len(result)])
		switch row[len(result)] {
		case "true":
			e.Released = append(e.Released, row[:len(result)])
		case "false":
			e.Suppressed = append(e.Suppressed, row[:len(result)])
		default:
			return nil, fmt.Errorf("%s: column %s must be true or false, not %q", path, ReleasedColumn, row[len(result)])
		}
	}
	return e, nil
}

// Check compares a released result (resultPath, any format connectors
// reads: the output of `cleanroom result show --format csv|parquet|arrow`)
// with the expected-results file. Every released row must be there, in
// order, with equal values, and nothing else; if suppressed ≥ 0 it must
// equal the number of groups the expectation says are suppressed. The
// error wraps ErrMismatch and lists every difference.
func Check(expectedPath, resultPath string, result []contracts.Column, suppressed int64) error {
	exp, err := ReadExpected(expectedPath, result)
	if err != nil {
		return fmt.Errorf("reading the expected results: %w", err)
	}
	got, err := ReadTable(resultPath, result)
	if err != nil {
		return fmt.Errorf("reading the result: %w", err)
	}
	return exp.Compare(got, suppressed)
}

// Compare checks got against the expectation as Check does.
func (e *Expectation) Compare(got *Table, suppressed int64) error {
	return e.compare(got, e.Released, suppressed)
}

// CompareAll checks that got holds every row the query returns, suppressed
// or not, in order: what the query returns on a database without the output
// policy.
func (e *Expectation) CompareAll(got *Table) error {
	return e.compare(got, e.All, -1)
}

func (e *Expectation) compare(got *Table, want [][]string, suppressed int64) error {
	var problems []string
	add := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		} else if len(problems) == 20 {
			problems = append(problems, "…")
		}
	}
	if !slices.Equal(got.Columns, e.Columns) {
		add("columns are %s, expected %s", strings.Join(got.Columns, ", "), strings.Join(e.Columns, ", "))
	}
	for i := range max(len(got.Rows), len(want)) {
		switch {
		case i >= len(got.Rows):
			add("row %d is missing: expected %s", i+1, e.describe(want[i]))
		case i >= len(want):
			add("row %d is not expected: %s", i+1, e.describe(got.Rows[i]))
		case e.key(got.Rows[i]) != e.key(want[i]):
			add("row %d is %s, expected %s", i+1, e.describe(got.Rows[i]), e.describe(want[i]))
		default:
			for j, v := range got.Rows[i] {
				if j < len(e.Columns) && v != want[i][j] {
					add("row %d (%s): %s is %s, expected %s", i+1, e.key(want[i]), e.Columns[j], v, want[i][j])
				}
			}
		}
	}
	if suppressed >= 0 && suppressed != int64(len(e.Suppressed)) {
		add("%d rows were suppressed, expected %d", suppressed, len(e.Suppressed))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrMismatch, strings.Join(problems, "\n  "))
	}
	return nil
}

// key names a row by its group: its leading string columns.
func (e *Expectation) key(row []string) string {
	parts := make([]string, 0, e.keys)
	for j := range min(e.keys, len(row)) {
		parts = append(parts, e.Columns[j]+" "+row[j])
	}
	return strings.Join(parts, ", ")
}

func (e *Expectation) describe(row []string) string {
	parts := make([]string, len(row))
	for j, v := range row {
		parts[j] = e.Columns[j] + "=" + v
	}
	return strings.Join(parts, " ")
}

func appendValue(b array.Builder, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	switch b := b.(type) {
	case *array.StringBuilder:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string, got %T", v)
		}
		b.Append(s)
	case *array.Int64Builder:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("want an int64, got %T", v)
		}
		b.Append(n)
	case *array.BooleanBuilder:
		x, ok := v.(bool)
		if !ok {
			return fmt.Errorf("want a bool, got %T", v)
		}
		b.Append(x)
	case *array.Decimal128Builder:
		return appendDecimal(b, v)
	default:
		return fmt.Errorf("unsupported column type %s", b.Type())
	}
	return nil
}

// appendDecimal appends a decimal given as a decimal128.Num or as an int64
// count of the column's smallest unit (cents for decimal(38,2)).
func appendDecimal(b *array.Decimal128Builder, v any) error {
	switch x := v.(type) {
	case decimal128.Num:
		b.Append(x)
	case int64:
		b.Append(decimal128.FromI64(x))
	default:
		return fmt.Errorf("want a decimal128.Num or an int64 of the smallest unit, got %T", v)
	}
	return nil
}
