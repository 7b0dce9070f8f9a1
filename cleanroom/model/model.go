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
	"fmt"
	"math"
	"unicode/utf8"
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

// get decodes row i of column c as a T.
func get[T Value](f *frame, c *column, i int) (T, bool) {
	var v T
	switch p := any(&v).(type) {
	case *bool:
		*p = c.data[i] != 0
	case *int32:
		*p = int32(le32(c.data[4*i:]))
	case *Date:
		*p = Date(int32(le32(c.data[4*i:])))
	case *int64:
		*p = int64(le64(c.data[8*i:]))
	case *Timestamp:
		*p = Timestamp(int64(le64(c.data[8*i:])))
	case *float64:
		*p = math.Float64frombits(le64(c.data[8*i:]))
	case *string:
		addr, n := le32(c.data[8*i:]), le32(c.data[8*i+4:])
		off := uint64(addr) - uint64(f.base)
		if addr < f.base || off+uint64(n) > uint64(len(f.mem)) {
			return v, false
		}
		*p = string(f.mem[off : off+uint64(n)])
	}
	return v, true
}

// set encodes v as row i of column c.
func set[T Value](f *frame, c *column, i int, v T) {
	c.valid[i] = 1
	switch x := any(v).(type) {
	case bool:
		if x {
			c.data[i] = 1
		} else {
			c.data[i] = 0
		}
	case int32:
		put32(c.data[4*i:], uint32(x))
	case Date:
		put32(c.data[4*i:], uint32(x))
	case int64:
		put64(c.data[8*i:], uint64(x))
	case Timestamp:
		put64(c.data[8*i:], uint64(x))
	case float64:
		put64(c.data[8*i:], math.Float64bits(x))
	case string:
		if !utf8.ValidString(x) {
			c.valid[i] = 0
			return
		}
		*f.keep = append(*f.keep, x)
		addr, n := stringAddr(x)
		put32(c.data[8*i:], addr)
		put32(c.data[8*i+4:], n)
	}
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

// decodeFrame reads the column descriptors at address at of buf (whose
// first byte has address base): k+1 pairs of little-endian uint32
// (validity address, data address), checked to lie inside buf.
func decodeFrame(buf []byte, base uint32, rows int, at uint32, widths []int, keep *[]string) (*frame, error) {
	f := &frame{rows: rows, mem: buf, base: base, keep: keep}
	slice := func(addr uint32, n int) ([]byte, error) {
		off := int64(addr) - int64(base)
		if off < 0 || off+int64(n) > int64(len(buf)) {
			return nil, fmt.Errorf("address %d (+%d) is outside the call buffer", addr, n)
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

// present reports whether every argument of row i is non-NULL.
func (f *frame) present(i int) bool {
	for c := 0; c < len(f.cols)-1; c++ {
		if f.cols[c].valid[i] == 0 {
			return false
		}
	}
	return true
}
