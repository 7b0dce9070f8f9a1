package engine

/*
#include <stdlib.h>
#include <stdint.h>
#include "scan.h"

void cleanroom_scan_bind(void *);
void cleanroom_scan_init(void *);
void cleanroom_scan_local_init(void *);
void cleanroom_scan_delete(void *);
void cleanroom_scan_local_delete(void *);
*/
import "C"

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"runtime/cgo"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/cdata"
	"github.com/duckdb/duckdb-go/v2"
	"github.com/duckdb/duckdb-go/v2/arrowmapping"
	"github.com/duckdb/duckdb-go/v2/mapping"
)

// scanFunction is the table function through which DuckDB reads the
// datasets: each dataset is a view "SELECT * FROM _cleanroom_scan(i)". It is
// refused by the statement check's table-function list, so an algorithm
// cannot call it directly; the plan check accepts it behind the views.
const scanFunction = "_cleanroom_scan"

// windowRows is the number of rows handed to DuckDB per call: DuckDB's
// vector size.
var windowRows = int64(mapping.VectorSize())

// dataset is a loaded dataset: either checked, immutable Arrow batches
// held until the session closes (held), or a Source whose blocks are read,
// checked and released at every scan.
type dataset struct {
	name   string
	schema *arrow.Schema
	rows   int64
	s      *scanner

	held []arrow.RecordBatch // a dataset held in memory: one block per batch
	src  Source              // a dataset read from its source at every scan

	c      *C.cleanroom_dataset // the dataset as the C scan sees it; nil until export
	handle cgo.Handle           // the handle in c.source, for a Source
}

// A Source is a dataset that the engine reads block by block, in parallel,
// every time a query scans it, instead of holding it: nothing of it stays
// in memory but the blocks being scanned. Its methods are called from
// DuckDB's worker threads, concurrently.
type Source interface {
	// Rows returns the number of rows of the dataset: the sum of the rows
	// of its blocks.
	Rows() int64
	// Blocks returns the number of blocks.
	Blocks() int
	// ReadBlock returns the record batches of block i, 0 ≤ i < Blocks(),
	// read afresh. The engine checks them as LoadTable checks a dataset's
	// batches, and calls release once DuckDB no longer reads them (the
	// batches are not released by the engine). An error ends the query;
	// it should name the dataset and the block.
	ReadBlock(i int) (batches []arrow.RecordBatch, release func(), err error)
}

// liveBlock is the Go side of a block read from a Source.
type liveBlock struct {
	batches []arrow.RecordBatch
	release func()
}

func (d *dataset) release() {
	if d.c != nil {
		if d.c.blocks != nil {
			for i := range int(d.c.nblocks) {
				freeBlock(*blockAddr(d.c.blocks, i))
			}
			C.free(unsafe.Pointer(d.c.blocks))
		}
		C.free(unsafe.Pointer(d.c))
		d.c = nil
	}
	if d.handle != 0 {
		d.handle.Delete()
		d.handle = 0
	}
	for _, b := range d.held {
		b.Release()
	}
	d.held = nil
}

// export lays the dataset out for the C side of the scan: a held dataset's
// batches exported once through the Arrow C data interface, one block per
// batch; a Source's blocks are exported as they are read.
func (d *dataset) export() {
	c := (*C.cleanroom_dataset)(C.calloc(1, C.size_t(unsafe.Sizeof(C.cleanroom_dataset{}))))
	if d.src != nil {
		d.handle = cgo.NewHandle(d)
		c.source = C.uintptr_t(d.handle)
		c.nblocks = C.int64_t(d.src.Blocks())
		d.c = c
		return
	}
	c.blocks = (**C.cleanroom_block)(C.calloc(C.size_t(max(len(d.held), 1)), C.size_t(unsafe.Sizeof(uintptr(0)))))
	for i, b := range d.held {
		blk := newBlock([]arrow.RecordBatch{b}, 0)
		blk.refs = 1 // the dataset's own reference
		*blockAddr(c.blocks, i) = blk
		c.nblocks = C.int64_t(i + 1)
	}
	d.c = c
}

// newBlock exports batches into a new C block with its windows and no
// reference.
func newBlock(batches []arrow.RecordBatch, handle cgo.Handle) *C.cleanroom_block {
	blk := (*C.cleanroom_block)(C.calloc(1, C.size_t(unsafe.Sizeof(C.cleanroom_block{}))))
	blk.batches = (**C.struct_ArrowArray)(C.calloc(C.size_t(max(len(batches), 1)), C.size_t(unsafe.Sizeof(uintptr(0)))))
	var windows []window
	for i, b := range batches {
		a := (*C.struct_ArrowArray)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_ArrowArray{}))))
		cdata.ExportArrowRecordBatch(b, (*cdata.CArrowArray)(unsafe.Pointer(a)), nil)
		*cIndexAddr(blk.batches, i) = a
		blk.nbatches = C.int64_t(i + 1)
		for off := int64(0); off < b.NumRows(); off += windowRows {
			windows = append(windows, window{batch: i, off: off, count: min(windowRows, b.NumRows()-off)})
		}
	}
	blk.windows = (*C.cleanroom_window)(C.calloc(C.size_t(max(len(windows), 1)), C.size_t(unsafe.Sizeof(C.cleanroom_window{}))))
	ws := unsafe.Slice(blk.windows, max(len(windows), 1))
	for i, w := range windows {
		ws[i] = C.cleanroom_window{batch: C.int64_t(w.batch), off: C.int64_t(w.off), count: C.int64_t(w.count)}
	}
	blk.nwindows = C.int64_t(len(windows))
	blk.handle = C.uintptr_t(handle)
	return blk
}

// freeBlock releases a block's exported batches and its C memory, and
// hands a block read from a Source back to it.
func freeBlock(blk *C.cleanroom_block) {
	for i := range int(blk.nbatches) {
		cdata.ReleaseCArrowArray((*cdata.CArrowArray)(unsafe.Pointer(cIndex(blk.batches, i))))
		C.free(unsafe.Pointer(cIndex(blk.batches, i)))
	}
	C.free(unsafe.Pointer(blk.batches))
	C.free(unsafe.Pointer(blk.windows))
	if blk.handle != 0 {
		h := cgo.Handle(blk.handle)
		lb := h.Value().(*liveBlock)
		h.Delete()
		for _, b := range lb.batches {
			b.Release()
		}
		if lb.release != nil {
			lb.release()
		}
	}
	C.free(unsafe.Pointer(blk))
}

//export cleanroom_block_free
func cleanroom_block_free(blk *C.cleanroom_block) {
	freeBlock(blk)
}

// cleanroom_scan_fetch reads block i of a Source dataset for a worker
// thread: it checks its batches and exports them. It returns 1 with the
// block (holding one reference, the worker's), or 0 with an error message
// in C memory, after recording the error for Run.
//
//export cleanroom_scan_fetch
func cleanroom_scan_fetch(source C.uintptr_t, i C.int64_t, out **C.cleanroom_block, msg **C.char) (ok C.int) {
	d := cgo.Handle(source).Value().(*dataset)
	fail := func(err error) C.int {
		d.s.fail(err)
		*msg = C.CString(err.Error())
		return 0
	}
	defer func() {
		if r := recover(); r != nil {
			ok = fail(&SourceError{Table: d.name, Err: fmt.Errorf("reading block %d: %v", i, r)})
		}
	}()
	batches, release, err := d.src.ReadBlock(int(i))
	if err != nil {
		return fail(&SourceError{Table: d.name, Err: err})
	}
	for _, b := range batches {
		if err := checkBatch(d.schema, b); err != nil {
			for _, b := range batches {
				b.Release()
			}
			if release != nil {
				release()
			}
			return fail(refuse(LayerInput, nil, "dataset %q, block %d: %v", d.name, i, err))
		}
	}
	blk := newBlock(batches, cgo.NewHandle(&liveBlock{batches: batches, release: release}))
	blk.refs = 1
	*out = blk
	return 1
}

// SourceError is a dataset read from a Source that could not be read
// during a query: the query fails with it. It names the dataset.
type SourceError struct {
	Table string
	Err   error
}

func (e *SourceError) Error() string {
	return e.Err.Error()
}

func (e *SourceError) Unwrap() error { return e.Err }

type window struct {
	batch      int
	off, count int64
}

func blockAddr(p **C.cleanroom_block, i int) **C.cleanroom_block {
	return &unsafe.Slice(p, i+1)[i]
}

func cIndexAddr(p **C.struct_ArrowArray, i int) **C.struct_ArrowArray {
	return &unsafe.Slice(p, i+1)[i]
}

func cIndex(p **C.struct_ArrowArray, i int) *C.struct_ArrowArray {
	return *cIndexAddr(p, i)
}

// scanner is the state behind the scan table function of one database.
type scanner struct {
	connector *duckdb.Connector
	threads   int

	mu       sync.Mutex
	err      error // the first error of a Source read or check
	datasets []*dataset
	idle     []*rawConn // connections for Arrow conversion, not in use
	all      []*rawConn
}

// rawConn is a driver connection and its DuckDB C API handle.
type rawConn struct {
	conn   driver.Conn
	handle mapping.Connection
}

// connHandle returns the C API connection handle of a driver connection.
// duckdb-go does not export it; the field is read by reflection and its
// absence is an error (checked by the tests against the pinned driver).
func connHandle(c driver.Conn) (mapping.Connection, error) {
	dc, ok := c.(*duckdb.Conn)
	if !ok {
		return mapping.Connection{}, fmt.Errorf("engine: not a DuckDB connection: %T", c)
	}
	f := reflect.ValueOf(dc).Elem().FieldByName("conn")
	if !f.IsValid() || f.Type() != reflect.TypeOf(mapping.Connection{}) {
		return mapping.Connection{}, errors.New("engine: this duckdb-go version does not hold its C connection handle where expected")
	}
	h := *(*mapping.Connection)(unsafe.Pointer(f.UnsafeAddr()))
	if h.Ptr == nil {
		return mapping.Connection{}, errors.New("engine: the DuckDB connection is closed")
	}
	return h, nil
}

// getConn returns an idle conversion connection or opens one.
func (s *scanner) getConn() (*rawConn, error) {
	s.mu.Lock()
	if n := len(s.idle); n > 0 {
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	conn, err := s.connector.Connect(context.Background())
	if err != nil {
		return nil, err
	}
	h, err := connHandle(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := &rawConn{conn: conn, handle: h}
	s.mu.Lock()
	s.all = append(s.all, c)
	s.mu.Unlock()
	return c, nil
}

func (s *scanner) putConn(c *rawConn) {
	s.mu.Lock()
	s.idle = append(s.idle, c)
	s.mu.Unlock()
}

// close closes the conversion connections.
func (s *scanner) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.all {
		c.conn.Close()
	}
	s.all, s.idle = nil, nil
}

// releaseDatasets releases every dataset's batches; only once DuckDB can no
// longer read them.
func (s *scanner) releaseDatasets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.datasets {
		d.release()
	}
	s.datasets = nil
}

// fail records the first error reading or checking a Source's block.
func (s *scanner) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// firstError returns the first error reading or checking a Source's block.
func (s *scanner) firstError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *scanner) add(d *dataset) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.datasets = append(s.datasets, d)
	return len(s.datasets) - 1
}

func (s *scanner) get(i int64) (*dataset, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= int64(len(s.datasets)) || s.datasets[i] == nil {
		return nil, fmt.Errorf("no dataset %d", i)
	}
	return s.datasets[i], nil
}

// register registers the scan table function on conn. The scanner must
// stay alive until the database is closed.
func (s *scanner) register(conn driver.Conn) error {
	h, err := connHandle(conn)
	if err != nil {
		return err
	}
	f := mapping.CreateTableFunction()
	defer mapping.DestroyTableFunction(&f)
	mapping.TableFunctionSetName(f, scanFunction)
	bigint := mapping.CreateLogicalType(mapping.TypeBigInt)
	mapping.TableFunctionAddParameter(f, bigint)
	mapping.DestroyLogicalType(&bigint)
	mapping.TableFunctionSetExtraInfo(f, newHandle(s), deleteCallback)
	mapping.TableFunctionSupportsProjectionPushdown(f, true)
	mapping.TableFunctionSetBind(f, unsafe.Pointer(C.cleanroom_scan_bind))
	mapping.TableFunctionSetInit(f, unsafe.Pointer(C.cleanroom_scan_init))
	mapping.TableFunctionSetLocalInit(f, unsafe.Pointer(C.cleanroom_scan_local_init))
	mapping.TableFunctionSetFunction(f, unsafe.Pointer(C.cleanroom_scan_function))
	if mapping.RegisterTableFunction(h, f) == mapping.StateError {
		return errors.New("engine: DuckDB refused to register the dataset scan function")
	}
	return nil
}

// newHandle stores a cgo handle for v in C memory, for DuckDB to hold as a
// callback's data; cleanroom_scan_delete frees it.
func newHandle(v any) unsafe.Pointer {
	p := C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0))))
	*(*C.uintptr_t)(p) = C.uintptr_t(cgo.NewHandle(v))
	return p
}

func handleValue[T any](p unsafe.Pointer) T {
	return cgo.Handle(*(*C.uintptr_t)(p)).Value().(T)
}

//export cleanroom_scan_delete
func cleanroom_scan_delete(p unsafe.Pointer) {
	cgo.Handle(*(*C.uintptr_t)(p)).Delete()
	C.free(p)
}

// deleteCallback is cleanroom_scan_delete as a C function pointer.
var deleteCallback = unsafe.Pointer(C.cleanroom_scan_delete)

// scanBinding is the bind data of one reference to a dataset.
type scanBinding struct {
	s *scanner
	d *dataset
}

//export cleanroom_scan_bind
func cleanroom_scan_bind(p unsafe.Pointer) {
	info := mapping.BindInfo{Ptr: p}
	defer func() {
		if r := recover(); r != nil {
			mapping.BindSetError(info, fmt.Sprintf("engine: dataset scan: %v", r))
		}
	}()
	s := handleValue[*scanner](mapping.BindGetExtraInfo(info))
	v := mapping.BindGetParameter(info, 0)
	i := mapping.GetInt64(v)
	mapping.DestroyValue(&v)
	d, err := s.get(i)
	if err != nil {
		mapping.BindSetError(info, err.Error())
		return
	}
	for _, f := range d.schema.Fields() {
		lt, err := logicalType(f.Type)
		if err != nil {
			mapping.BindSetError(info, err.Error())
			return
		}
		mapping.BindAddResultColumn(info, f.Name, lt)
		mapping.DestroyLogicalType(&lt)
	}
	mapping.BindSetCardinality(info, mapping.IdxT(d.rows), true)
	mapping.BindSetBindData(info, newHandle(&scanBinding{s: s, d: d}), deleteCallback)
}

// logicalType is the DuckDB type of a dataset column (see ColumnType).
func logicalType(t arrow.DataType) (mapping.LogicalType, error) {
	switch t := t.(type) {
	case *arrow.BooleanType:
		return mapping.CreateLogicalType(mapping.TypeBoolean), nil
	case *arrow.Int32Type:
		return mapping.CreateLogicalType(mapping.TypeInteger), nil
	case *arrow.Int64Type:
		return mapping.CreateLogicalType(mapping.TypeBigInt), nil
	case *arrow.Float64Type:
		return mapping.CreateLogicalType(mapping.TypeDouble), nil
	case *arrow.StringType:
		return mapping.CreateLogicalType(mapping.TypeVarchar), nil
	case *arrow.Date32Type:
		return mapping.CreateLogicalType(mapping.TypeDate), nil
	case *arrow.TimestampType:
		return mapping.CreateLogicalType(mapping.TypeTimestampTZ), nil
	case *arrow.Decimal128Type:
		return mapping.CreateDecimalType(uint8(t.Precision), uint8(t.Scale)), nil
	}
	return mapping.LogicalType{}, fmt.Errorf("engine: no DuckDB type for %s", t)
}

//export cleanroom_scan_init
func cleanroom_scan_init(p unsafe.Pointer) {
	info := mapping.InitInfo{Ptr: p}
	defer func() {
		if r := recover(); r != nil {
			mapping.InitSetError(info, fmt.Sprintf("engine: dataset scan: %v", r))
		}
	}()
	b := handleValue[*scanBinding](mapping.InitGetBindData(info))
	n := int(mapping.InitGetColumnCount(info))
	st := (*C.cleanroom_scan_state)(C.calloc(1, C.size_t(unsafe.Sizeof(C.cleanroom_scan_state{}))))
	st.d = b.d.c
	if C.cleanroom_scan_state_share(st) == 0 {
		C.cleanroom_scan_state_free(unsafe.Pointer(st))
		mapping.InitSetError(info, "engine: dataset scan: out of memory")
		return
	}
	st.ncols = C.int64_t(n)
	st.cols = (*C.int64_t)(C.calloc(C.size_t(max(n, 1)), 8))
	cols := unsafe.Slice(st.cols, max(n, 1))
	var fields []arrow.Field
	for i := range n {
		c := mapping.InitGetColumnIndex(info, mapping.IdxT(i))
		if c >= mapping.IdxT(b.d.schema.NumFields()) {
			cols[i] = -1 // DuckDB's row id: never filled
			continue
		}
		cols[i] = C.int64_t(c)
		fields = append(fields, b.d.schema.Field(int(c)))
	}
	st.nconv = C.int64_t(len(fields))
	if len(fields) > 0 {
		c, err := b.s.getConn()
		if err != nil {
			C.cleanroom_scan_state_free(unsafe.Pointer(st))
			mapping.InitSetError(info, err.Error())
			return
		}
		conv, ed := arrowmapping.SchemaFromArrow(c.handle, arrow.NewSchema(fields, nil))
		b.s.putConn(c)
		if err := errorData(ed); err != nil {
			C.cleanroom_scan_state_free(unsafe.Pointer(st))
			mapping.InitSetError(info, err.Error())
			return
		}
		st.conv = conv.Ptr
	}
	mapping.InitSetMaxThreads(info, mapping.IdxT(b.s.threads))
	mapping.InitSetInitData(info, unsafe.Pointer(st), unsafe.Pointer(C.cleanroom_scan_state_free))
}

// scanLocal is the Go side of a worker thread's state: the conversion
// connection it borrows.
type scanLocal struct {
	s *scanner
	c *rawConn
}

//export cleanroom_scan_local_init
func cleanroom_scan_local_init(p unsafe.Pointer) {
	info := mapping.InitInfo{Ptr: p}
	defer func() {
		if r := recover(); r != nil {
			mapping.InitSetError(info, fmt.Sprintf("engine: dataset scan: %v", r))
		}
	}()
	b := handleValue[*scanBinding](mapping.InitGetBindData(info))
	c, err := b.s.getConn()
	if err != nil {
		mapping.InitSetError(info, err.Error())
		return
	}
	l := (*C.cleanroom_scan_local)(C.calloc(1, C.size_t(unsafe.Sizeof(C.cleanroom_scan_local{}))))
	l.conn = c.handle.Ptr
	l.handle = C.uintptr_t(cgo.NewHandle(&scanLocal{s: b.s, c: c}))
	mapping.InitSetInitData(info, unsafe.Pointer(l), unsafe.Pointer(C.cleanroom_scan_local_delete))
}

//export cleanroom_scan_local_delete
func cleanroom_scan_local_delete(p unsafe.Pointer) {
	l := (*C.cleanroom_scan_local)(p)
	h := cgo.Handle(l.handle)
	local := h.Value().(*scanLocal)
	local.s.putConn(local.c)
	if l.block != nil {
		C.cleanroom_block_unref(l.block)
		l.block = nil
	}
	h.Delete()
	C.free(p)
}

// errorData turns DuckDB error data into an error, destroying it.
func errorData(ed mapping.ErrorData) error {
	defer mapping.DestroyErrorData(&ed)
	if !mapping.ErrorDataHasError(ed) {
		return nil
	}
	return errors.New(mapping.ErrorDataMessage(ed))
}
