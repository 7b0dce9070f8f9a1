package connectors

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/contracts"
)

// Defaults for the zero values of Options.
const (
	DefaultBatchSize      = 64 * 1024 // rows
	DefaultMaxBatchBytes  = 64 << 20  // input bytes per batch, text formats
	DefaultMaxRecordBytes = 16 << 20  // one CSV record or JSON line
	maxMaxBatchBytes      = 1 << 30   // keeps string offsets within int32
	textBufferSize        = 256 << 10 // read buffer of the text readers
	parquetBufferSize     = 128 << 10 // Parquet column stream buffer
)

// Options tune a Reader. The zero value is ready to use.
type Options struct {
	// BatchSize is the most rows a batch holds; 0 means DefaultBatchSize.
	BatchSize int
	// MaxBatchBytes cuts a CSV or JSON lines batch early once it holds this
	// many bytes of input; 0 means DefaultMaxBatchBytes. At most 1 GiB.
	MaxBatchBytes int
	// MaxRecordBytes is the longest CSV record or JSON line accepted; a
	// longer one is an ErrSyntax error. 0 means DefaultMaxRecordBytes.
	MaxRecordBytes int
	// AssumeUTC reads timestamps that carry no time zone (a CSV or JSON
	// timestamp without Z or offset, an Arrow timestamp without a zone, a
	// Parquet timestamp not adjusted to UTC) as UTC. By default they are an
	// error, since their instant is ambiguous.
	AssumeUTC bool
	// Allocator allocates the batches' buffers. nil means a pool of the
	// Reader's own that reuses the buffers of released batches (and keeps
	// at most 64 MiB of them): a batch's values, such as the string an
	// Arrow string array's Value returns, are then overwritten once the
	// batch is released, so copy what must outlive it.
	Allocator memory.Allocator
}

func (o Options) withDefaults() (Options, error) {
	if o.BatchSize < 0 || o.MaxBatchBytes < 0 || o.MaxRecordBytes < 0 {
		return o, errors.New("connectors: negative Options value")
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MaxBatchBytes > maxMaxBatchBytes {
		return o, fmt.Errorf("connectors: Options.MaxBatchBytes %d exceeds 1 GiB", o.MaxBatchBytes)
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.MaxRecordBytes > maxMaxBatchBytes {
		return o, fmt.Errorf("connectors: Options.MaxRecordBytes %d exceeds 1 GiB", o.MaxRecordBytes)
	}
	if o.Allocator == nil {
		o.Allocator = newBufferPool(defaultMaxIdle)
	}
	return o, nil
}

// Reader is a stream of record batches with exactly the contract's schema.
//
// As with any array.RecordReader, the batch RecordBatch returns is valid
// until the next call to Next or Release (Retain it to keep it longer).
// Next returns false at the end of the input or at the first error; Err
// then tells which. An error can follow batches already delivered: the
// caller must treat the whole input as rejected, not keep the rows so far.
// Release frees the reader and closes the file Open opened.
type Reader interface {
	array.RecordReader
	// Format is the format being read.
	Format() Format
	// Rows is the number of rows delivered by Next so far.
	Rows() int64
	// BytesRead is the number of input bytes consumed so far (read ahead
	// by at most a buffer). It may be called from any goroutine, for
	// instance to draw a progress bar.
	BytesRead() int64
}

// Schema returns the Arrow schema batches of cols have: one nullable field
// per column, in order. It equals contracts.Dataset.Schema.
func Schema(cols []contracts.Column) *arrow.Schema {
	return (&contracts.Dataset{Columns: cols}).Schema()
}

func checkColumns(cols []contracts.Column) error {
	if len(cols) == 0 {
		return errors.New("connectors: the dataset has no columns")
	}
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if c.Name == "" {
			return errors.New("connectors: a contract column has an empty name")
		}
		if seen[c.Name] {
			return fmt.Errorf("connectors: contract column %q appears twice", c.Name)
		}
		seen[c.Name] = true
		if c.Type.Kind < contracts.KindBool || c.Type.Kind > contracts.KindDecimal {
			return fmt.Errorf("connectors: contract column %q has an invalid type", c.Name)
		}
		if c.Type.Kind == contracts.KindDecimal && (c.Type.Precision < 1 || c.Type.Precision > contracts.MaxDecimalPrecision || c.Type.Scale < 0 || c.Type.Scale > c.Type.Precision) {
			return fmt.Errorf("connectors: contract column %q has an invalid type %s", c.Name, c.Type)
		}
	}
	return nil
}

// source produces the batches of one input.
type source interface {
	// next returns the next batch, or nil and nil at the end of the input.
	next() (arrow.RecordBatch, error)
	// close releases the source's resources; it is called once.
	close()
}

// Open opens the file at path and returns a Reader of its rows as batches
// of cols. With FormatAuto the format is found with DetectFormat. Open
// checks the file's header, schema or first line against cols before it
// returns, so a missing, extra or mistyped column is reported here.
func Open(path string, format Format, cols []contracts.Column, opts Options) (Reader, error) {
	if format == FormatAuto {
		f, err := DetectFormat(path)
		if err != nil {
			return nil, err
		}
		format = f
	}
	if !format.Readable() {
		return nil, fmt.Errorf("connectors: %s is not a readable format (want csv, jsonl, parquet, arrow or arrows)", format)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory", path)
	}
	var r Reader
	switch format {
	case FormatParquet, FormatArrowFile:
		r, err = newRandomAccess(f, st.Size(), format, cols, opts)
	default:
		r, err = newStreamReader(f, format, cols, opts)
	}
	if err != nil {
		f.Close()
		var ie *InputError
		if errors.As(err, &ie) && ie.Path == "" {
			ie.Path = path
		}
		return nil, err
	}
	rd := r.(*reader)
	rd.path, rd.file = path, f
	return r, nil
}

// NewReader returns a Reader of a stream format (CSV, JSON lines, Arrow IPC
// stream) read from r, such as standard input. It consumes r only as the
// batches are read. Like Open, it checks the header, schema or first line
// before it returns.
func NewReader(r io.Reader, format Format, cols []contracts.Column, opts Options) (Reader, error) {
	if !format.Streamable() {
		return nil, fmt.Errorf("connectors: %s cannot be read from a stream; write it to a file and use Open, or convert it to csv, jsonl or arrows", format)
	}
	return newStreamReader(r, format, cols, opts)
}

func newStreamReader(r io.Reader, format Format, cols []contracts.Column, opts Options) (Reader, error) {
	if err := checkColumns(cols); err != nil {
		return nil, err
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	rd := &reader{format: format, schema: Schema(cols)}
	cr := &countingReader{r: r, n: &rd.bytes}
	var src source
	switch format {
	case FormatCSV:
		src, err = newCSVSource(cr, cols, rd.schema, opts)
	case FormatJSONL:
		src, err = newJSONLSource(cr, cols, rd.schema, opts)
	case FormatArrowStream:
		src, err = newIPCStreamSource(cr, cols, rd.schema, opts)
	default:
		err = fmt.Errorf("connectors: %s is not a stream format", format)
	}
	if err != nil {
		return nil, err
	}
	rd.src = src
	rd.refs.Store(1)
	return rd, nil
}

func newRandomAccess(f *os.File, size int64, format Format, cols []contracts.Column, opts Options) (Reader, error) {
	if err := checkColumns(cols); err != nil {
		return nil, err
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	rd := &reader{format: format, schema: Schema(cols)}
	ra := &countingReaderAt{r: f, size: size, n: &rd.bytes}
	var src source
	switch format {
	case FormatParquet:
		src, err = newParquetSource(ra, cols, rd.schema, opts)
	case FormatArrowFile:
		src, err = newIPCFileSource(ra, cols, rd.schema, opts)
	}
	if err != nil {
		return nil, err
	}
	rd.src = src
	rd.refs.Store(1)
	return rd, nil
}

// reader implements Reader on top of a source.
type reader struct {
	refs   atomic.Int64
	format Format
	schema *arrow.Schema
	path   string
	file   *os.File
	src    source
	cur    arrow.RecordBatch
	err    error
	done   bool
	rows   atomic.Int64
	bytes  atomic.Int64
}

func (r *reader) Format() Format        { return r.format }
func (r *reader) Schema() *arrow.Schema { return r.schema }
func (r *reader) Rows() int64           { return r.rows.Load() }
func (r *reader) BytesRead() int64      { return r.bytes.Load() }
func (r *reader) Err() error            { return r.err }
func (r *reader) Retain()               { r.refs.Add(1) }

func (r *reader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.finish()
}

// finish releases the source and closes the file, once.
func (r *reader) finish() {
	r.done = true
	if r.src != nil {
		r.src.close()
		r.src = nil
	}
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}

func (r *reader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.done {
		return false
	}
	rec, err := r.src.next()
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) && ie.Path == "" {
			ie.Path = r.path
		}
		r.err = err
		r.finish()
		return false
	}
	if rec == nil {
		r.finish()
		return false
	}
	r.rows.Add(rec.NumRows())
	r.cur = rec
	return true
}

func (r *reader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (r *reader) Record() arrow.RecordBatch { return r.cur }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countingReaderAt counts the bytes read through it; it also serves the
// io.Seeker that Parquet and Arrow file readers require (only to learn the
// size).
type countingReaderAt struct {
	r    io.ReaderAt
	size int64
	off  int64
	n    *atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReaderAt) Read(p []byte) (int, error) {
	n, err := c.ReadAt(p, c.off)
	c.off += int64(n)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (c *countingReaderAt) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += c.off
	case io.SeekEnd:
		offset += c.size
	default:
		return 0, errors.New("connectors: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("connectors: negative seek position")
	}
	c.off = offset
	return offset, nil
}
