// Package model lets a model author write a Cleanroom model — a
// WebAssembly scalar function that a contract's SQL calls by name — as a
// plain Go function, and hides the model ABI of docs/models.md behind it.
//
// A model is a main package that registers exactly one function in init
// and is built as a WASI reactor:
//
//	package main
//
//	import "cleanroom.dev/cleanroom/cleanroom/model"
//
//	func score(age int64, hba1c float64) float64 { return 0.1*float64(age) + hba1c }
//
//	func init() { model.Func2(score) }
//
//	func main() {}
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o score.wasm .
//
// The Go types of the arguments and the result must be those of the
// contract's model entry: bool, int32, int64, float64, string, Date
// (date) and Timestamp (timestamp). A row whose arguments include a NULL
// gets a NULL result without the function being called. The function must
// be a pure function of its arguments: it has no file system, network,
// clock or randomness, and the coordinator gives no guarantee about which
// rows one instance of the module sees, or in which order.
//
// On every other platform than wasip1 the package builds, and Func1...
// Func6 only record the function, so a model's Go code can be tested and
// benchmarked natively (Native returns what was registered).
package model

import (
	"errors"
	"unicode/utf8"
	"unsafe"
)

// Date is a calendar date: days since 1970-01-01.
type Date int32

// Timestamp is an instant: microseconds since 1970-01-01T00:00:00Z.
type Timestamp int64

// Value is the set of Go types a model's arguments and result may have.
type Value interface {
	bool | int32 | int64 | float64 | string | Date | Timestamp
}

// ABIVersion is the version of the model ABI this package implements; the
// module exports it as cleanroom_model_abi.
const ABIVersion = 1

// Error codes a module built with this package returns from
// cleanroom_model_call (docs/models.md).
const (
	codeOK = iota
	codeNoFunction
	codeBadFrame
	codePanic
)

// registered is the one function of the module, nil until a Func
// registers one.
var registered *function

type function struct {
	native any
	widths []int // encoded width of each argument, then of the result
	score  func(f *frame) int32
}

// Native returns the Go function the module registered (nil when none),
// so a model's native build can be compared with its WebAssembly build.
func Native() any {
	if registered == nil {
		return nil
	}
	return registered.native
}

func register(fn any, widths []int, score func(f *frame) int32) {
	if registered != nil {
		panic("model: a module registers exactly one function")
	}
	registered = &function{native: fn, widths: widths, score: score}
}

// call scores the rows of the frame whose descriptors are at address at
// of buf (whose first byte has address base), and returns the ABI's
// status code.
func call(buf []byte, base uint32, rows int32, at uint32, keep *[]string) (code int32) {
	if registered == nil {
		return codeNoFunction
	}
	defer func() {
		if recover() != nil {
			code = codePanic
		}
	}()
	if rows < 0 {
		return codeBadFrame
	}
	f, err := decodeFrame(buf, base, int(rows), at, registered.widths, keep)
	if err != nil {
		return codeBadFrame
	}
	return registered.score(f)
}

// column reads and writes one column of a frame.
type column struct {
	valid []byte // one byte per row: 1 present, 0 NULL
	data  []byte // the values, width bytes each
}

// frame is a decoded call frame: the argument columns, then the result.
type frame struct {
	rows int
	mem  []byte // the module's call buffer, addressed from base
	base uint32
	cols []column
	// keep holds the result strings until the next call.
	keep *[]string
}

// width returns the encoded width of a value of type T.
func width[T Value]() int {
	var z T
	switch any(z).(type) {
	case bool:
		return 1
	case int32, Date:
		return 4
	case string:
		return 8
	default:
		return 8
	}
}

// args returns column c's values as a []T. A fixed-width column is the
// call buffer itself, read in place (the ABI aligns every region to 8
// bytes, and WebAssembly is little-endian, so the bytes are the Go
// values); a string column is decoded into buf, each string pointing into
// the call buffer: it is valid during the call only.
func args[T Value](f *frame, c *column, buf *[]T) ([]T, bool) {
	var zero T
	if _, ok := any(zero).(string); !ok {
		if f.rows == 0 {
			return nil, true
		}
		return unsafe.Slice((*T)(unsafe.Pointer(&c.data[0])), f.rows), true
	}
	dst := buffer(buf, f.rows)
	d := *(*[]string)(unsafe.Pointer(&dst))
	for i := range d {
		addr, n := le32(c.data[8*i:]), le32(c.data[8*i+4:])
		off := uint64(addr) - uint64(f.base)
		switch {
		case c.valid[i] == 0 || n == 0:
			d[i] = ""
		case addr < f.base || off+uint64(n) > uint64(len(f.mem)):
			return nil, false
		default:
			d[i] = unsafe.String(&f.mem[off], n)
		}
	}
	return dst, true
}

// results returns where the function's results go: the result column in
// place for a fixed-width type, buf for strings (see strings).
func results[T Value](f *frame, c *column, buf *[]T) []T {
	var zero T
	if _, ok := any(zero).(string); !ok {
		if f.rows == 0 {
			return nil
		}
		return unsafe.Slice((*T)(unsafe.Pointer(&c.data[0])), f.rows)
	}
	return buffer(buf, f.rows)
}

// finish encodes string results (address and length of each, kept alive
// until the next call); a string that is not valid UTF-8 becomes NULL.
// Fixed-width results are already in place.
func finish[T Value](f *frame, c *column, r []T) {
	var zero T
	if _, ok := any(zero).(string); !ok {
		return
	}
	s := *(*[]string)(unsafe.Pointer(&r))
	for i, v := range s {
		if c.valid[i] == 0 {
			continue
		}
		if !utf8.ValidString(v) {
			c.valid[i] = 0
			continue
		}
		*f.keep = append(*f.keep, v)
		addr, n := stringAddr(v)
		put32(c.data[8*i:], addr)
		put32(c.data[8*i+4:], n)
	}
}

// buffer returns b resized to n, reusing its memory.
func buffer[T any](b *[]T, n int) []T {
	if cap(*b) < n {
		*b = make([]T, n)
	}
	*b = (*b)[:n]
	return *b
}

func le32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(le32(b)) | uint64(le32(b[4:]))<<32
}

func put32(b []byte, v uint32) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func put64(b []byte, v uint64) {
	put32(b, uint32(v))
	put32(b[4:], uint32(v>>32))
}

var errOutside = errors.New("an address of the frame is outside the call buffer")

// decodeFrame reads the column descriptors at address at of buf (whose
// first byte has address base): k+1 pairs of little-endian uint32
// (validity address, data address), checked to lie inside buf.
func decodeFrame(buf []byte, base uint32, rows int, at uint32, widths []int, keep *[]string) (*frame, error) {
	f := &frame{rows: rows, mem: buf, base: base, keep: keep}
	slice := func(addr uint32, n int) ([]byte, error) {
		off := int64(addr) - int64(base)
		if off < 0 || off+int64(n) > int64(len(buf)) {
			return nil, errOutside
		}
		return buf[off : off+int64(n)], nil
	}
	desc, err := slice(at, 8*len(widths))
	if err != nil {
		return nil, err
	}
	for i, w := range widths {
		valid, err := slice(le32(desc[8*i:]), rows)
		if err != nil {
			return nil, err
		}
		data, err := slice(le32(desc[8*i+4:]), rows*w)
		if err != nil {
			return nil, err
		}
		f.cols = append(f.cols, column{valid: valid, data: data})
	}
	return f, nil
}
