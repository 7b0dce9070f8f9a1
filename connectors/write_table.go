package connectors

import (
	"bufio"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// writeTable writes an aligned text table: a header row, a rule, the rows
// and a row count. Numbers are right-aligned, everything else left-aligned;
// null is NULL. Control characters in values are escaped (\n, \t, \x1b …)
// so that a value cannot move the cursor or send terminal escape
// sequences. Widths count runes.
func writeTable(w *bufio.Writer, rr array.RecordReader) (int64, error) {
	fields := rr.Schema().Fields()
	n := len(fields)
	widths := make([]int, n)
	right := make([]bool, n)
	header := make([]string, n)
	for j, f := range fields {
		header[j] = sanitize(f.Name)
		widths[j] = utf8.RuneCountInString(header[j])
	}
	var rows [][]string
	cells := make([]textCell, n)
	var val []byte
	for rr.Next() {
		rec := rr.RecordBatch()
		for j := range fields {
			var kind cellKind
			cells[j], kind = cellFor(rec.Column(j))
			right[j] = kind == cellNumber || kind == cellDecimal
		}
		for i := range int(rec.NumRows()) {
			row := make([]string, n)
			for j := range fields {
				var ok bool
				val, ok = cells[j](val[:0], i)
				if !ok {
					row[j] = "NULL"
				} else {
					row[j] = sanitize(string(val))
				}
				widths[j] = max(widths[j], utf8.RuneCountInString(row[j]))
			}
			rows = append(rows, row)
		}
	}
	if err := rr.Err(); err != nil {
		return 0, err
	}
	line := func(cells []string, alignRight []bool) {
		for j, c := range cells {
			if j > 0 {
				w.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[j]-utf8.RuneCountInString(c))
			switch {
			case alignRight != nil && alignRight[j]:
				w.WriteString(pad)
				w.WriteString(c)
			case j == len(cells)-1:
				w.WriteString(c) // no trailing spaces
			default:
				w.WriteString(c)
				w.WriteString(pad)
			}
		}
		w.WriteByte('\n')
	}
	line(header, right)
	rule := make([]string, n)
	for j := range rule {
		rule[j] = strings.Repeat("-", widths[j])
	}
	line(rule, nil)
	for _, r := range rows {
		line(r, right)
	}
	switch len(rows) {
	case 1:
		w.WriteString("(1 row)\n")
	default:
		w.WriteString("(" + strconv.Itoa(len(rows)) + " rows)\n")
	}
	return int64(len(rows)), nil
}

// sanitize escapes control and other non-printing characters and invalid
// UTF-8, leaving printable text (including non-ASCII letters) as is.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i]), 16))
		case r == ' ' || unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r) // 'x' with Go escapes
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}
