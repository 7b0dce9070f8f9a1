package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"cleanroom.dev/cleanroom/contracts"
)

// arrowSource reads batches from an Arrow-typed input (Arrow IPC or
// Parquet), cuts them to at most batchSize rows (zero-copy) and conforms
// them to the contract schema.
type arrowSource struct {
	format     Format
	conf       *conformer
	fetch      func() (arrow.RecordBatch, error) // caller owns the batch; nil at the end
	closeFn    func()
	batchSize  int64
	cur        arrow.RecordBatch
	batch      int   // index of cur among the input's batches
	off        int64 // rows of cur already returned
	rowsBefore int64 // input rows before cur
	// locate fills in the location of a bad value.
	locate func(e *InputError, row int64, batch int, rowInBatch int64)
}

// corrupt reports a failure of the Arrow or Parquet decoder.
func corrupt(f Format, err error) *InputError {
	e := newErr(f, ErrSyntax, "cannot decode the %s input (is the file complete and really %s?)", f, f)
	e.Err = err
	return e
}

// guard runs fn and turns a panic inside the decoders, which are fed
// untrusted bytes, into an error.
func guard(f Format, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corrupt(f, fmt.Errorf("%v", r))
		}
	}()
	return fn()
}

func (s *arrowSource) next() (arrow.RecordBatch, error) {
	for s.cur == nil {
		var rec arrow.RecordBatch
		err := guard(s.format, func() error {
			var err error
			rec, err = s.fetch()
			return err
		})
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				err = corrupt(s.format, err)
			}
			return nil, err
		}
		if rec == nil {
			return nil, nil
		}
		if rec.NumRows() == 0 {
			rec.Release()
			s.batch++
			continue
		}
		s.cur, s.off = rec, 0
	}
	n := min(s.batchSize, s.cur.NumRows()-s.off)
	slice := s.cur
	if s.off != 0 || n != s.cur.NumRows() {
		slice = s.cur.NewSlice(s.off, s.off+n)
		defer slice.Release()
	}
	var out arrow.RecordBatch
	var col string
	var p *rowProblem
	if err := guard(s.format, func() error {
		out, col, p = s.conf.convert(slice)
		return nil
	}); err != nil {
		return nil, err
	}
	if p != nil {
		e := newErr(s.format, p.kind, "%s", p.detail)
		e.Column = col
		rowInBatch := s.off + int64(p.row)
		s.locate(e, s.rowsBefore+rowInBatch, s.batch, rowInBatch)
		return nil, e
	}
	s.off += n
	if s.off == s.cur.NumRows() {
		s.rowsBefore += s.cur.NumRows()
		s.cur.Release()
		s.cur = nil
		s.batch++
	}
	return out, nil
}

func (s *arrowSource) close() {
	if s.cur != nil {
		s.cur.Release()
		s.cur = nil
	}
	if s.closeFn != nil {
		s.closeFn()
	}
}

func locateBatch(e *InputError, _ int64, batch int, rowInBatch int64) {
	e.Batch, e.Row = batch, rowInBatch+1
}

func newIPCStreamSource(r io.Reader, cols []contracts.Column, target *arrow.Schema, opts Options) (source, error) {
	var rd *ipc.Reader
	err := guard(FormatArrowStream, func() error {
		var err error
		rd, err = ipc.NewReader(r, ipc.WithAllocator(opts.Allocator))
		return err
	})
	if err != nil {
		return nil, asCorrupt(FormatArrowStream, err)
	}
	conf, err := newConformer(FormatArrowStream, rd.Schema(), cols, target, opts)
	if err != nil {
		rd.Release()
		return nil, err
	}
	return &arrowSource{
		format: FormatArrowStream, conf: conf, batchSize: int64(opts.BatchSize), locate: locateBatch,
		fetch: func() (arrow.RecordBatch, error) {
			if !rd.Next() {
				return nil, rd.Err()
			}
			rec := rd.RecordBatch()
			rec.Retain()
			return rec, nil
		},
		closeFn: rd.Release,
	}, nil
}

func asCorrupt(f Format, err error) error {
	var ie *InputError
	if errors.As(err, &ie) {
		return err
	}
	return corrupt(f, err)
}

func newIPCFileSource(ra *countingReaderAt, cols []contracts.Column, target *arrow.Schema, opts Options) (source, error) {
	var fr *ipc.FileReader
	err := guard(FormatArrowFile, func() error {
		var err error
		fr, err = ipc.NewFileReader(ra, ipc.WithAllocator(opts.Allocator))
		return err
	})
	if err != nil {
		return nil, asCorrupt(FormatArrowFile, err)
	}
	conf, err := newConformer(FormatArrowFile, fr.Schema(), cols, target, opts)
	if err != nil {
		fr.Close()
		return nil, err
	}
	i := 0
	return &arrowSource{
		format: FormatArrowFile, conf: conf, batchSize: int64(opts.BatchSize), locate: locateBatch,
		fetch: func() (arrow.RecordBatch, error) {
			if i >= fr.NumRecords() {
				return nil, nil
			}
			i++
			return fr.RecordBatchAt(i - 1)
		},
		closeFn: func() { fr.Close() },
	}, nil
}

func newParquetSource(ra *countingReaderAt, cols []contracts.Column, target *arrow.Schema, opts Options) (source, error) {
	props := parquet.NewReaderProperties(opts.Allocator)
	props.BufferedStreamEnabled = true
	props.BufferSize = parquetBufferSize
	var pf *file.Reader
	var fr *pqarrow.FileReader
	var in *arrow.Schema
	err := guard(FormatParquet, func() error {
		var err error
		if pf, err = file.NewParquetReader(ra, file.WithReadProps(props)); err != nil {
			return err
		}
		if fr, err = pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(opts.BatchSize)}, opts.Allocator); err != nil {
			return err
		}
		in, err = fr.Schema()
		return err
	})
	if err != nil {
		if pf != nil {
			pf.Close()
		}
		return nil, asCorrupt(FormatParquet, err)
	}
	conf, err := newConformer(FormatParquet, in, cols, target, opts)
	if err != nil {
		pf.Close()
		return nil, err
	}
	// Row group boundaries, to locate a bad value.
	md := pf.MetaData()
	starts := make([]int64, md.NumRowGroups())
	var total int64
	for g := range starts {
		starts[g] = total
		total += md.RowGroup(g).NumRows()
	}
	locate := func(e *InputError, row int64, _ int, _ int64) {
		g := sort.Search(len(starts), func(g int) bool { return starts[g] > row }) - 1
		if g >= 0 {
			e.RowGroup, e.Row = g, row-starts[g]+1
		}
	}
	groups := newRowGroupReader(fr, md.NumRowGroups(), parquetWorkers(md.NumRowGroups()))
	return &arrowSource{
		format: FormatParquet, conf: conf, batchSize: int64(opts.BatchSize), locate: locate,
		fetch: groups.next,
		closeFn: func() {
			groups.close()
			pf.Close()
		},
	}, nil
}

// parquetWorkers is how many row groups of a file of n are decoded at
// once: one per core, at most maxParquetWorkers.
func parquetWorkers(n int) int {
	return max(1, min(n, runtime.GOMAXPROCS(0), maxParquetWorkers))
}

// maxParquetWorkers bounds the row groups decoded at once, and so the
// batches held (two per worker).
const maxParquetWorkers = 8

// rowGroupReader decodes a Parquet file's row groups concurrently and
// delivers their batches in file order. Worker k decodes row groups k,
// k+W, k+2W... one batch at a time into its own channel of one batch, so
// at most two batches per worker are held besides the one delivered. A
// decoder's panic (the input is untrusted) is recovered in the worker that
// hit it and delivered as an error in its place.
type rowGroupReader struct {
	out    []chan rowGroupItem // one per worker
	stop   chan struct{}
	wg     sync.WaitGroup
	groups int
	g      int   // the row group being delivered
	err    error // the error that ended the reading, returned again
}

// rowGroupItem is a batch of a row group, the end of one (rec and err nil),
// or an error that ends the reading.
type rowGroupItem struct {
	rec arrow.RecordBatch
	err error
}

func newRowGroupReader(fr *pqarrow.FileReader, groups, workers int) *rowGroupReader {
	r := &rowGroupReader{out: make([]chan rowGroupItem, workers), stop: make(chan struct{}), groups: groups}
	for k := range r.out {
		r.out[k] = make(chan rowGroupItem, 1)
		r.wg.Add(1)
		go r.work(fr, k, workers)
	}
	return r
}

// work decodes row groups k, k+workers, ... into r.out[k].
func (r *rowGroupReader) work(fr *pqarrow.FileReader, k, workers int) {
	defer r.wg.Done()
	out := r.out[k]
	send := func(it rowGroupItem) bool {
		select {
		case out <- it:
			return true
		case <-r.stop:
			if it.rec != nil {
				it.rec.Release()
			}
			return false
		}
	}
	for g := k; g < r.groups; g += workers {
		var rr pqarrow.RecordReader
		err := guard(FormatParquet, func() error {
			var err error
			rr, err = fr.GetRecordReader(context.Background(), nil, []int{g})
			return err
		})
		if err != nil {
			send(rowGroupItem{err: inRowGroup(err, g)})
			return
		}
		for {
			var rec arrow.RecordBatch
			err := guard(FormatParquet, func() error {
				if !rr.Next() {
					return rr.Err()
				}
				rec = rr.RecordBatch()
				rec.Retain()
				return nil
			})
			if err != nil || rec == nil {
				rr.Release()
				if err != nil {
					send(rowGroupItem{err: inRowGroup(err, g)})
					return
				}
				break
			}
			if !send(rowGroupItem{rec: rec}) {
				rr.Release()
				return
			}
		}
		if !send(rowGroupItem{}) {
			return
		}
	}
}

// inRowGroup returns a decoder's error as an InputError located at row
// group g.
func inRowGroup(err error, g int) *InputError {
	var ie *InputError
	if !errors.As(err, &ie) {
		ie = corrupt(FormatParquet, err)
	}
	if ie.RowGroup < 0 {
		ie.RowGroup = g
	}
	return ie
}

// next returns the next batch in file order, nil at the end.
func (r *rowGroupReader) next() (arrow.RecordBatch, error) {
	if r.err != nil {
		return nil, r.err
	}
	for r.g < r.groups {
		it := <-r.out[r.g%len(r.out)]
		if it.err != nil {
			r.err = it.err
			return nil, it.err
		}
		if it.rec != nil {
			return it.rec, nil
		}
		r.g++
	}
	return nil, nil
}

// close stops the workers, waits for them and releases what they sent and
// was not delivered.
func (r *rowGroupReader) close() {
	close(r.stop)
	r.wg.Wait()
	for _, ch := range r.out {
		for {
			select {
			case it := <-ch:
				if it.rec != nil {
					it.rec.Release()
				}
				continue
			default:
			}
			break
		}
	}
}

var _ = array.NewRecordBatch
