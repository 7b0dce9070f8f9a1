package connectors

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kinds of input error. An *InputError wraps exactly one of them, so
// callers can test the kind with errors.Is.
var (
	// ErrMissingColumn: a contract column is absent from the input.
	ErrMissingColumn = errors.New("missing column")
	// ErrExtraColumn: the input has a column the contract does not name.
	ErrExtraColumn = errors.New("column not in the contract")
	// ErrDuplicateColumn: the input names a column twice.
	ErrDuplicateColumn = errors.New("duplicate column")
	// ErrColumnType: an Arrow or Parquet column's type cannot be converted
	// to the contract type without possible loss, or a JSON value has the
	// wrong JSON type.
	ErrColumnType = errors.New("wrong column type")
	// ErrValue: a value cannot be parsed, or does not fit the contract type
	// exactly (overflow, too many decimal places, sub-microsecond time).
	ErrValue = errors.New("invalid value")
	// ErrSyntax: the input is not well-formed CSV, JSON lines, Parquet or
	// Arrow (wrong number of fields, bad quoting, invalid JSON, a line or
	// record longer than Options.MaxRecordBytes, a corrupt file).
	ErrSyntax = errors.New("malformed input")
	// ErrEmpty: a CSV input has no header row.
	ErrEmpty = errors.New("empty input")
)

// InputError reports input that does not match the contract's columns or
// cannot be read. Its message has the shape
//
//	PATH: FORMAT line L, column "C": DETAIL
//	PATH: parquet row group G, row R, column "C": DETAIL
//	PATH: arrow batch B, row R, column "C": DETAIL
//
// where each part is present only when known. Lines and rows are 1-based;
// row groups and batches are 0-based, as Parquet and Arrow tools number
// them.
type InputError struct {
	Path     string // file name, empty for a stream
	Format   Format
	Line     int64  // 1-based line where the CSV record or JSON line starts; 0 if not applicable
	RowGroup int    // 0-based Parquet row group; -1 if not applicable
	Batch    int    // 0-based Arrow record batch; -1 if not applicable
	Row      int64  // 1-based row within the row group or batch (Parquet, Arrow); 0 if not applicable
	Column   string // contract or input column name; empty if the error concerns no one column
	Kind     error  // one of ErrMissingColumn, ErrExtraColumn, ... ErrEmpty
	Detail   string // what exactly was wrong and what to do
	Err      error  // underlying cause (an I/O or decoder error), may be nil
}

func (e *InputError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	var loc []string
	if e.Line > 0 {
		loc = append(loc, "line "+strconv.FormatInt(e.Line, 10))
	}
	if e.RowGroup >= 0 {
		loc = append(loc, "row group "+strconv.Itoa(e.RowGroup))
	}
	if e.Batch >= 0 {
		loc = append(loc, "batch "+strconv.Itoa(e.Batch))
	}
	if e.Row > 0 {
		loc = append(loc, "row "+strconv.FormatInt(e.Row, 10))
	}
	if e.Column != "" {
		loc = append(loc, "column "+strconv.Quote(e.Column))
	}
	if len(loc) > 0 {
		if e.Format != FormatAuto {
			b.WriteString(e.Format.String())
			b.WriteByte(' ')
		}
		b.WriteString(strings.Join(loc, ", "))
		b.WriteString(": ")
	}
	if e.Detail != "" {
		b.WriteString(e.Detail)
	} else if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the kind and the underlying cause, so errors.Is matches
// both.
func (e *InputError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// newErr returns an InputError with no location.
func newErr(f Format, kind error, format string, args ...any) *InputError {
	return &InputError{Format: f, RowGroup: -1, Batch: -1, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// lineErr returns an InputError located at a text line.
func lineErr(f Format, line int64, column string, kind error, format string, args ...any) *InputError {
	e := newErr(f, kind, format, args...)
	e.Line, e.Column = line, column
	return e
}

// valueError is a value parser's complaint, without location; readers wrap
// it into an InputError of kind ErrValue.
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

func valueErrf(format string, args ...any) error { return &valueError{fmt.Sprintf(format, args...)} }
