package connectors

import (
	"io"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"

	"cleanroom.dev/cleanroom/contracts"
)

// jsonlSource reads JSON lines: one flat JSON object per line whose keys
// are exactly the contract's column names.
type jsonlSource struct {
	sp        *csvSplitter // used only for its bounded line reading
	tb        *textBatch
	cols      []contracts.Column
	index     map[string]int
	seen      []int64 // line on which each column was last set
	str       []byte  // decoded string value
	key       []byte  // decoded key
	batchSize int
	maxBytes  int
	rows      int // rows in the builders, not yet returned
	nbytes    int // their input bytes
	done      bool
}

func newJSONLSource(r io.Reader, cols []contracts.Column, schema *arrow.Schema, opts Options) (*jsonlSource, error) {
	j := &jsonlSource{
		sp:   newCSVSplitter(r, opts.MaxRecordBytes),
		tb:   newTextBatch(opts.Allocator, cols, schema, opts.AssumeUTC),
		cols: cols, index: make(map[string]int, len(cols)), seen: make([]int64, len(cols)),
		batchSize: opts.BatchSize, maxBytes: opts.MaxBatchBytes,
	}
	for i, c := range cols {
		j.index[c.Name] = i
	}
	// Read the first line now, so that input of the wrong shape fails at
	// open, as with the other formats.
	j.tb.reserve(j.batchSize)
	if err := j.readRow(); err != nil {
		j.close()
		return nil, err
	}
	return j, nil
}

func (j *jsonlSource) close() { j.tb.release() }

func (j *jsonlSource) next() (arrow.RecordBatch, error) {
	for !j.done && j.rows < j.batchSize && j.nbytes < j.maxBytes {
		if err := j.readRow(); err != nil {
			return nil, err
		}
	}
	if j.rows == 0 {
		return nil, nil
	}
	rec := j.tb.finish()
	j.rows, j.nbytes = 0, 0
	if !j.done {
		j.tb.reserve(j.batchSize)
	}
	return rec, nil
}

// readRow parses one line into the builders, or sets done at the end.
func (j *jsonlSource) readRow() error {
	j.sp.recLine = j.sp.line + 1
	j.sp.recBytes = 0
	line, err := j.sp.readLine(FormatJSONL)
	if err == io.EOF {
		j.done = true
		return nil
	}
	if err != nil {
		return err
	}
	if err := j.parseLine(trimEOL(line), j.sp.recLine); err != nil {
		return err
	}
	j.rows++
	j.nbytes += j.sp.recBytes
	return nil
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// parseLine parses a flat JSON object (RFC 8259) and appends its values.
func (j *jsonlSource) parseLine(b []byte, line int64) error {
	syntax := func(format string, args ...any) error {
		return lineErr(FormatJSONL, line, "", ErrSyntax, format, args...)
	}
	if !utf8.Valid(b) {
		return syntax("the line is not valid UTF-8")
	}
	i := 0
	ws := func() {
		for i < len(b) && isJSONSpace(b[i]) {
			i++
		}
	}
	ws()
	if i == len(b) {
		return syntax("empty line; each line must hold one JSON object")
	}
	if b[i] != '{' {
		return syntax("the line is not a JSON object; each line must hold one object whose keys are the column names")
	}
	i++
	ws()
	empty := true
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		empty = false
	}
	for !empty {
		if i >= len(b) || b[i] != '"' {
			return syntax("invalid JSON at byte %d: want a quoted key", i+1)
		}
		key, n, err := decodeJSONString(b[i:], j.key[:0])
		if err != "" {
			return syntax("invalid JSON key at byte %d: %s", i+1, err)
		}
		j.key = key[:0]
		i += n
		col, ok := j.index[string(key)]
		if !ok {
			return lineErr(FormatJSONL, line, string(key), ErrExtraColumn, "the object has a key the contract does not name (contract columns: %s)", columnList(j.cols))
		}
		if j.seen[col] == line {
			return lineErr(FormatJSONL, line, string(key), ErrDuplicateColumn, "the object has the key twice")
		}
		j.seen[col] = line
		ws()
		if i >= len(b) || b[i] != ':' {
			return syntax("invalid JSON at byte %d: want ':' after the key", i+1)
		}
		i++
		ws()
		if i >= len(b) {
			return syntax("invalid JSON: the line ends before the value of %q", j.cols[col].Name)
		}
		var v []byte
		var k valueKind
		null := false
		switch c := b[i]; {
		case c == '"':
			s, n, err := decodeJSONString(b[i:], j.str[:0])
			if err != "" {
				return syntax("invalid JSON string at byte %d: %s", i+1, err)
			}
			j.str = s[:0]
			v, k = s, kindText
			i += n
		case c == '-' || (c >= '0' && c <= '9'):
			n := scanJSONNumber(b[i:])
			if n == 0 {
				return syntax("invalid JSON number at byte %d", i+1)
			}
			v, k = b[i:i+n], kindNumber
			i += n
		case c == 't' && hasLiteral(b[i:], "true"), c == 'f' && hasLiteral(b[i:], "false"):
			n := 4
			if c == 'f' {
				n = 5
			}
			v, k = b[i:i+n], kindBool
			i += n
		case c == 'n' && hasLiteral(b[i:], "null"):
			i += 4
			null = true
		case c == '{' || c == '[':
			return lineErr(FormatJSONL, line, j.cols[col].Name, ErrColumnType, "nested objects and arrays are not supported; want %s", wantJSON(j.cols[col].Type))
		default:
			return syntax("invalid JSON value at byte %d", i+1)
		}
		if null {
			j.tb.appendNull(col)
		} else if kind, err := j.tb.appendValue(col, v, k); err != nil {
			return lineErr(FormatJSONL, line, j.cols[col].Name, kind, "%s", err.Error())
		}
		ws()
		if i < len(b) && b[i] == ',' {
			i++
			ws()
			continue
		}
		if i < len(b) && b[i] == '}' {
			i++
			break
		}
		return syntax("invalid JSON at byte %d: want ',' or '}'", i+1)
	}
	ws()
	if i != len(b) {
		return syntax("unexpected text after the object at byte %d; each line must hold exactly one object", i+1)
	}
	for col, at := range j.seen {
		if at != line {
			return lineErr(FormatJSONL, line, j.cols[col].Name, ErrMissingColumn, "the object lacks the key (write \"%s\": null for a missing value)", j.cols[col].Name)
		}
	}
	return nil
}

func hasLiteral(b []byte, lit string) bool {
	return len(b) >= len(lit) && string(b[:len(lit)]) == lit
}

// scanJSONNumber returns the length of the JSON number at the start of b,
// or 0 if there is none:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanJSONNumber(b []byte) int {
	i := 0
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0
		}
	}
	// A number must be followed by a delimiter.
	if i < len(b) && !isJSONSpace(b[i]) && b[i] != ',' && b[i] != '}' {
		return 0
	}
	return i
}

// decodeJSONString decodes the JSON string at the start of b (which starts
// with '"'), appending its value to dst. It returns the value, the number of
// bytes consumed and, on failure, a description. Lone UTF-16 surrogates are
// rejected: they have no UTF-8 form.
func decodeJSONString(b []byte, dst []byte) ([]byte, int, string) {
	i := 1
	for {
		start := i
		for i < len(b) && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
			i++
		}
		dst = append(dst, b[start:i]...)
		if i >= len(b) {
			return nil, 0, "unterminated string"
		}
		switch c := b[i]; {
		case c == '"':
			return dst, i + 1, ""
		case c < 0x20:
			return nil, 0, "control character in a string (escape it)"
		}
		// A backslash escape.
		if i+1 >= len(b) {
			return nil, 0, "unterminated escape"
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			dst = append(dst, e)
			i += 2
		case 'b':
			dst = append(dst, '\b')
			i += 2
		case 'f':
			dst = append(dst, '\f')
			i += 2
		case 'n':
			dst = append(dst, '\n')
			i += 2
		case 'r':
			dst = append(dst, '\r')
			i += 2
		case 't':
			dst = append(dst, '\t')
			i += 2
		case 'u':
			r, ok := hex4(b[i+2:])
			if !ok {
				return nil, 0, "invalid \\u escape"
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
					r2, ok = hex4(b[i+2:])
				}
				dec := utf16.DecodeRune(r, r2)
				if !ok || dec == utf8.RuneError {
					return nil, 0, "lone UTF-16 surrogate in a \\u escape"
				}
				r = dec
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return nil, 0, "invalid escape"
		}
	}
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
