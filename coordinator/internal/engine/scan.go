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

// dataset is a loaded dataset: checked, immutable Arrow batches held until
// the session closes.
type dataset struct {
	name    string
	schema  *arrow.Schema
	batches []arrow.RecordBatch
	windows []window // the scan order: every batch cut into windows of windowRows
	rows    int64
	c       *C.cleanroom_dataset // the batches exported for the C scan; nil until export
}

type window struct {
	batch      int
	off, count int64
}

func (d *dataset) release() {
	if d.c != nil {
		for i := range int(d.c.nbatches) {
			cdata.ReleaseCArrowArray((*cdata.CArrowArray)(unsafe.Pointer(cIndex(d.c.batches, i))))
			C.free(unsafe.Pointer(cIndex(d.c.batches, i)))
		}
		C.free(unsafe.Pointer(d.c.batches))
		C.free(unsafe.Pointer(d.c.windows))
		C.free(unsafe.Pointer(d.c))
		d.c = nil
	}
	for _, b := range d.batches {
		b.Release()
	}
	d.batches = nil
}

// export exports every batch once through the Arrow C data interface and
// lays out the windows in C memory, for the C side of the scan.
func (d *dataset) export() {
	c := (*C.cleanroom_dataset)(C.calloc(1, C.size_t(unsafe.Sizeof(C.cleanroom_dataset{}))))
	c.batches = (**C.struct_ArrowArray)(C.calloc(C.size_t(max(len(d.batches), 1)), C.size_t(unsafe.Sizeof(uintptr(0)))))
	for i, b := range d.batches {
		a := (*C.struct_ArrowArray)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_ArrowArray{}))))
		cdata.ExportArrowRecordBatch(b, (*cdata.CArrowArray)(unsafe.Pointer(a)), nil)
		*cIndexAddr(c.batches, i) = a
		c.nbatches = C.int64_t(i + 1)
	}
	c.windows = (*C.cleanroom_window)(C.calloc(C.size_t(max(len(d.windows), 1)), C.size_t(unsafe.Sizeof(C.cleanroom_window{}))))
	ws := unsafe.Slice(c.windows, max(len(d.windows), 1))
	for i, w := range d.windows {
		ws[i] = C.cleanroom_window{batch: C.int64_t(w.batch), off: C.int64_t(w.off), count: C.int64_t(w.count)}
	}
	c.nwindows = C.int64_t(len(d.windows))
	d.c = c
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
