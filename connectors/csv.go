package connectors

import (
	"bufio"
	"bytes"
	"io"

	"github.com/apache/arrow-go/v18/arrow"

	"cleanroom.dev/cleanroom/contracts"
)

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// csvSplitter splits RFC 4180 CSV into records. Fields are slices into the
// read buffer or into the splitter's own buffers, valid until the next call
// to next. It never holds more than one record (at most maxRecord bytes)
// beyond its fixed read buffer.
type csvSplitter struct {
	r         *bufio.Reader
	maxRecord int
	line      int64 // lines consumed so far
	recLine   int64 // line where the current record starts
	recBytes  int   // bytes of the current record, terminator included
	fields    [][]byte
	quoted    []bool
	long      []byte // a line longer than the read buffer
	out       []byte // unescaped contents of a record with quotes
	ends      []int  // end offsets of the fields in out
	first     bool
}

func newCSVSplitter(r io.Reader, maxRecord int) *csvSplitter {
	return &csvSplitter{r: bufio.NewReaderSize(r, textBufferSize), maxRecord: maxRecord, first: true}
}

// readLine returns the next physical line including its '\n' (absent only
// on the last line), or io.EOF when there is none. It enforces maxRecord
// across the lines of one record.
func (s *csvSplitter) readLine(f Format) ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		s.long = append(s.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if s.recBytes+len(s.long) > s.maxRecord {
				return nil, lineErr(f, s.recLine, "", ErrSyntax, "record longer than %d bytes (raise the record size limit if this is intended)", s.maxRecord)
			}
			line, err = s.r.ReadSlice('\n')
			s.long = append(s.long, line...)
		}
		line = s.long
	}
	if err != nil && err != io.EOF {
		return nil, &InputError{Format: f, Line: s.line + 1, RowGroup: -1, Batch: -1, Kind: ErrSyntax, Detail: "read failed", Err: err}
	}
	if len(line) == 0 {
		return nil, io.EOF
	}
	s.line++
	s.recBytes += len(line)
	if s.recBytes > s.maxRecord {
		return nil, lineErr(f, s.recLine, "", ErrSyntax, "record longer than %d bytes (raise the record size limit if this is intended)", s.maxRecord)
	}
	if s.first {
		s.first = false
		line = bytes.TrimPrefix(line, utf8BOM)
	}
	return line, nil
}

// next reads one record into s.fields and s.quoted. It returns io.EOF at
// the end of the input.
func (s *csvSplitter) next() error {
	s.recLine = s.line + 1
	s.recBytes = 0
	line, err := s.readLine(FormatCSV)
	if err != nil {
		return err
	}
	if bytes.IndexByte(line, '"') < 0 {
		// Fast path: no quoting, the record is this one line.
		line = trimEOL(line)
		s.fields = s.fields[:0]
		s.quoted = s.quoted[:0]
		for {
			i := bytes.IndexByte(line, ',')
			if i < 0 {
				s.fields = append(s.fields, line)
				s.quoted = append(s.quoted, false)
				return nil
			}
			s.fields = append(s.fields, line[:i])
			s.quoted = append(s.quoted, false)
			line = line[i+1:]
		}
	}
	return s.slow(line)
}

func trimEOL(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line
}

// slow splits a record that contains quotes, which may continue over
// several lines.
func (s *csvSplitter) slow(line []byte) error {
	s.out = s.out[:0]
	s.ends = s.ends[:0]
	s.quoted = s.quoted[:0]
	errf := func(format string, args ...any) error {
		return lineErr(FormatCSV, s.recLine, "", ErrSyntax, format, args...)
	}
	field := 1
	for {
		// At the start of a field.
		if len(line) > 0 && line[0] == '"' {
			quoteLine := s.line
			line = line[1:]
			for {
				i := bytes.IndexByte(line, '"')
				if i < 0 {
					s.out = append(s.out, line...)
					var err error
					line, err = s.readLine(FormatCSV)
					if err == io.EOF {
						return errf("field %d: quoted field opened on line %d is never closed", field, quoteLine)
					}
					if err != nil {
						return err
					}
					continue
				}
				s.out = append(s.out, line[:i]...)
				line = line[i+1:]
				if len(line) > 0 && line[0] == '"' { // "" is an escaped quote
					s.out = append(s.out, '"')
					line = line[1:]
					continue
				}
				break
			}
			s.ends = append(s.ends, len(s.out))
			s.quoted = append(s.quoted, true)
			switch {
			case len(line) == 0, line[0] == '\n', line[0] == '\r' && len(line) >= 2 && line[1] == '\n':
				return s.collect()
			case line[0] == ',':
				line = line[1:]
				field++
				continue
			default:
				return errf("field %d: unexpected %s after a closing quote (a quote inside a quoted field is written \"\")", field, quoteValue(line[:1]))
			}
		}
		// Unquoted field: up to the next comma or the end of the line.
		end := bytes.IndexByte(line, ',')
		last := end < 0
		if last {
			line = trimEOL(line)
			end = len(line)
		}
		if bytes.IndexByte(line[:end], '"') >= 0 {
			return errf("field %d: a quote inside an unquoted field (quote the whole field and write the quote as \"\")", field)
		}
		s.out = append(s.out, line[:end]...)
		s.ends = append(s.ends, len(s.out))
		s.quoted = append(s.quoted, false)
		if last {
			return s.collect()
		}
		line = line[end+1:]
		field++
	}
}

func (s *csvSplitter) collect() error {
	s.fields = s.fields[:0]
	start := 0
	for _, end := range s.ends {
		s.fields = append(s.fields, s.out[start:end:end])
		start = end
	}
	return nil
}

// csvSource reads CSV with a header row into batches of the contract
// schema.
type csvSource struct {
	sp        *csvSplitter
	tb        *textBatch
	cols      []contracts.Column
	perm      []int // input field index → contract column index
	batchSize int
	maxBytes  int
	done      bool
}

func newCSVSource(r io.Reader, cols []contracts.Column, schema *arrow.Schema, opts Options) (*csvSource, error) {
	sp := newCSVSplitter(r, opts.MaxRecordBytes)
	err := sp.next()
	if err == io.EOF {
		return nil, newErr(FormatCSV, ErrEmpty, "the CSV input is empty; it must start with a header row naming the columns")
	}
	if err != nil {
		return nil, err
	}
	index := make(map[string]int, len(cols))
	for i, c := range cols {
		index[c.Name] = i
	}
	perm := make([]int, len(sp.fields))
	seen := make([]bool, len(cols))
	for j, f := range sp.fields {
		name := string(f)
		if name == "" {
			return nil, lineErr(FormatCSV, 1, "", ErrExtraColumn, "header field %d is empty; every header field names a contract column (%s)", j+1, columnList(cols))
		}
		i, ok := index[name]
		if !ok {
			for k := range j {
				if string(sp.fields[k]) == name {
					return nil, lineErr(FormatCSV, 1, name, ErrDuplicateColumn, "the header names the column twice (fields %d and %d)", k+1, j+1)
				}
			}
			return nil, lineErr(FormatCSV, 1, name, ErrExtraColumn, "the header has a column the contract does not name (contract columns: %s)", columnList(cols))
		}
		if seen[i] {
			return nil, lineErr(FormatCSV, 1, name, ErrDuplicateColumn, "the header names the column twice")
		}
		seen[i] = true
		perm[j] = i
	}
	for i, ok := range seen {
		if !ok {
			return nil, lineErr(FormatCSV, 1, cols[i].Name, ErrMissingColumn, "the header lacks a column the contract names")
		}
	}
	return &csvSource{
		sp: sp, tb: newTextBatch(opts.Allocator, cols, schema, opts.AssumeUTC), cols: cols, perm: perm,
		batchSize: opts.BatchSize, maxBytes: opts.MaxBatchBytes,
	}, nil
}

func columnList(cols []contracts.Column) string {
	var b bytes.Buffer
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.Name)
	}
	return b.String()
}

func (c *csvSource) next() (arrow.RecordBatch, error) {
	if c.done {
		return nil, nil
	}
	rows, nbytes := 0, 0
	c.tb.reserve(c.batchSize)
	for rows < c.batchSize && nbytes < c.maxBytes {
		err := c.sp.next()
		if err == io.EOF {
			c.done = true
			break
		}
		if err != nil {
			return nil, err
		}
		if len(c.sp.fields) != len(c.perm) {
			return nil, lineErr(FormatCSV, c.sp.recLine, "", ErrSyntax, "the record has %d fields, want %d (as many as the header)", len(c.sp.fields), len(c.perm))
		}
		for j, v := range c.sp.fields {
			i := c.perm[j]
			if len(v) == 0 && (!c.sp.quoted[j] || c.cols[i].Type.Kind != contracts.KindString) {
				c.tb.appendNull(i)
				continue
			}
			if kind, err := c.tb.appendValue(i, v, kindText); err != nil {
				return nil, lineErr(FormatCSV, c.sp.recLine, c.cols[i].Name, kind, "%s", err.Error())
			}
		}
		rows++
		nbytes += c.sp.recBytes
	}
	if rows == 0 {
		return nil, nil
	}
	return c.tb.finish(), nil
}

func (c *csvSource) close() { c.tb.release() }
