package scenario

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/internal/durable"
)

// Output is one generator run's set of files in a directory. Files are
// written under temporary names and appear under their real names only when
// Commit succeeds, all together; Abort (or a failed Commit) removes
// everything the run wrote. So a failed or interrupted run never leaves a
// partial dataset that looks complete.
type Output struct {
	dir     string
	files   []*fileSink
	closed  bool
	aborted bool
}

// NewOutput prepares an output in dir, creating the directory if needed.
func NewOutput(dir string) (*Output, error) {
	if dir == "" {
		return nil, errors.New("no output directory given (use --out DIR)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output directory: %w", err)
	}
	return &Output{dir: dir}, nil
}

// Dataset starts writing one dataset, NAME.csv and/or NAME.parquet, each
// file streamed batch by batch by its own goroutine through
// connectors.Write. At most one batch per file is in flight, so memory is
// bounded whatever the number of rows.
func (o *Output) Dataset(name string, schema *arrow.Schema, formats []connectors.Format) (*DatasetWriter, error) {
	if o.closed {
		return nil, errors.New("scenario: output already committed or aborted")
	}
	d := &DatasetWriter{name: name, schema: schema}
	for _, f := range formats {
		s, err := o.newSink(name+"."+f.String(), f, schema)
		if err != nil {
			return nil, err
		}
		d.sinks = append(d.sinks, s)
	}
	return d, nil
}

// WriteRecords writes a small table (the expected results) to NAME in
// format, in one go.
func (o *Output) WriteRecords(name string, format connectors.Format, schema *arrow.Schema, recs []arrow.RecordBatch) error {
	s, err := o.newSink(name, format, schema)
	if err != nil {
		return err
	}
	for _, r := range recs {
		r.Retain()
		if err := s.put(r); err != nil {
			break
		}
	}
	return s.finish()
}

// Paths returns the final paths of every file of the output, in the order
// they were started.
func (o *Output) Paths() []string {
	var p []string
	for _, f := range o.files {
		p = append(p, f.path)
	}
	return p
}

// Commit makes every file durable and renames it to its final name, then
// syncs the directory. Every dataset writer must have been closed.
func (o *Output) Commit() error {
	if o.closed {
		return errors.New("scenario: output already committed or aborted")
	}
	for _, f := range o.files {
		if !f.finished {
			o.Abort()
			return fmt.Errorf("scenario: %s was not finished", f.path)
		}
	}
	o.closed = true
	for _, f := range o.files {
		if err := os.Rename(f.tmp, f.path); err != nil {
			o.closed = false
			o.Abort()
			return fmt.Errorf("publishing %s: %w", f.path, err)
		}
		f.renamed = true
	}
	return durable.SyncDir(o.dir)
}

// Abort stops every unfinished file and removes what the run wrote,
// including files already renamed by a Commit that failed part way.
func (o *Output) Abort() {
	if o.closed {
		return
	}
	o.closed, o.aborted = true, true
	for _, f := range o.files {
		if !f.finished {
			f.finish()
		}
		os.Remove(f.tmp)
		if f.renamed {
			os.Remove(f.path)
		}
	}
}

func (o *Output) newSink(name string, format connectors.Format, schema *arrow.Schema) (*fileSink, error) {
	path := filepath.Join(o.dir, name)
	f, err := os.CreateTemp(o.dir, "."+name+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	s := &fileSink{
		path: path, tmp: f.Name(), f: f,
		ch:   make(chan arrow.RecordBatch, 1),
		done: make(chan struct{}),
	}
	o.files = append(o.files, s)
	go s.run(format, schema)
	return s, nil
}

// DatasetWriter streams one dataset's batches into its files.
type DatasetWriter struct {
	name   string
	schema *arrow.Schema
	sinks  []*fileSink
	rows   int64
	closed bool
}

// Write hands rec to every file of the dataset. It takes over the caller's
// reference: the batch is released once written.
func (d *DatasetWriter) Write(rec arrow.RecordBatch) error {
	if d.closed {
		rec.Release()
		return fmt.Errorf("scenario: dataset %s already closed", d.name)
	}
	if !rec.Schema().Equal(d.schema) {
		rec.Release()
		return fmt.Errorf("scenario: dataset %s: batch schema %s differs from %s", d.name, rec.Schema(), d.schema)
	}
	d.rows += rec.NumRows()
	var err error
	for _, s := range d.sinks {
		rec.Retain()
		if e := s.put(rec); e != nil && err == nil {
			err = e
		}
	}
	rec.Release()
	return err
}

// Rows is the number of rows written so far.
func (d *DatasetWriter) Rows() int64 { return d.rows }

// Close waits until every file of the dataset is written and returns the
// first error. The files stay under temporary names until Output.Commit.
func (d *DatasetWriter) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	var err error
	for _, s := range d.sinks {
		if e := s.finish(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// fileSink writes one file from the batches it is handed, in a goroutine.
type fileSink struct {
	path, tmp string
	f         *os.File
	ch        chan arrow.RecordBatch
	done      chan struct{}
	mu        sync.Mutex
	err       error
	finished  bool
	renamed   bool
}

func (s *fileSink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// put sends rec (whose reference it takes) to the writer. Once the writer
// has failed, put releases rec and returns the error.
func (s *fileSink) put(rec arrow.RecordBatch) error {
	if err := s.failed(); err != nil {
		rec.Release()
		return err
	}
	s.ch <- rec
	return nil
}

// finish closes the stream, waits for the writer, syncs and closes the
// file.
func (s *fileSink) finish() error {
	if s.finished {
		return s.failed()
	}
	s.finished = true
	close(s.ch)
	<-s.done
	return s.failed()
}

func (s *fileSink) run(format connectors.Format, schema *arrow.Schema) {
	defer close(s.done)
	bw := bufio.NewWriterSize(s.f, 1<<20)
	rr := &chanReader{schema: schema, ch: s.ch}
	_, err := connectors.Write(bw, format, rr, connectors.WriteOptions{})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.mu.Lock()
		s.err = fmt.Errorf("writing %s: %w", s.path, err)
		s.mu.Unlock()
	}
	rr.drain() // never leave the producer blocked on a failed writer
}

// chanReader is an array.RecordReader over batches arriving on a channel.
type chanReader struct {
	schema *arrow.Schema
	ch     chan arrow.RecordBatch
	cur    arrow.RecordBatch
}

var _ array.RecordReader = (*chanReader)(nil)

func (r *chanReader) Retain()               {}
func (r *chanReader) Release()              {}
func (r *chanReader) Schema() *arrow.Schema { return r.schema }
func (r *chanReader) Err() error            { return nil }

func (r *chanReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	rec, ok := <-r.ch
	if !ok {
		return false
	}
	r.cur = rec
	return true
}

func (r *chanReader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (r *chanReader) Record() arrow.RecordBatch { return r.cur }

func (r *chanReader) drain() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	for rec := range r.ch {
		rec.Release()
	}
}
