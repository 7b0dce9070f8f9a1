// Package wasmtest makes WebAssembly modules for tests: a small encoder of
// the binary format (WebAssembly core specification, chapter 5, "Binary
// Format") for hand-written hostile modules, and a builder of
// Go model packages with the standard toolchain (GOOS=wasip1 GOARCH=wasm),
// so no other toolchain is needed.
package wasmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Value types.
const (
	I32 byte = 0x7f
	I64 byte = 0x7e
	F64 byte = 0x7c
)

// Import is an imported function.
type Import struct {
	Module, Name    string
	Params, Results []byte
}

// Func is a function defined by the module, exported under Export when
// that is not empty. Body is its code without the final end (0x0b).
type Func struct {
	Export          string
	Params, Results []byte
	Locals          []byte // one entry per local
	Body            []byte
}

// Module is a module with one memory.
type Module struct {
	Imports      []Import
	Funcs        []Func
	MemoryMin    uint32
	MemoryMax    uint32 // 0: no maximum
	ExportMemory string // "" exports none
}

func uleb(b *bytes.Buffer, v uint64) {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b.WriteByte(c)
		if v == 0 {
			return
		}
	}
}

func name(b *bytes.Buffer, s string) {
	uleb(b, uint64(len(s)))
	b.WriteString(s)
}

func vec(b *bytes.Buffer, items []byte) {
	uleb(b, uint64(len(items)))
	b.Write(items)
}

// Encode returns the module's binary encoding.
func (m Module) Encode() []byte {
	var out bytes.Buffer
	out.Write([]byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00})
	section := func(id byte, body func(b *bytes.Buffer)) {
		var b bytes.Buffer
		body(&b)
		out.WriteByte(id)
		uleb(&out, uint64(b.Len()))
		out.Write(b.Bytes())
	}
	// One type per import and per function, in that order.
	section(1, func(b *bytes.Buffer) {
		uleb(b, uint64(len(m.Imports)+len(m.Funcs)))
		for _, im := range m.Imports {
			b.WriteByte(0x60)
			vec(b, im.Params)
			vec(b, im.Results)
		}
		for _, f := range m.Funcs {
			b.WriteByte(0x60)
			vec(b, f.Params)
			vec(b, f.Results)
		}
	})
	if len(m.Imports) > 0 {
		section(2, func(b *bytes.Buffer) {
			uleb(b, uint64(len(m.Imports)))
			for i, im := range m.Imports {
				name(b, im.Module)
				name(b, im.Name)
				b.WriteByte(0x00)
				uleb(b, uint64(i))
			}
		})
	}
	section(3, func(b *bytes.Buffer) {
		uleb(b, uint64(len(m.Funcs)))
		for i := range m.Funcs {
			uleb(b, uint64(len(m.Imports)+i))
		}
	})
	section(5, func(b *bytes.Buffer) {
		uleb(b, 1)
		if m.MemoryMax > 0 {
			b.WriteByte(0x01)
			uleb(b, uint64(m.MemoryMin))
			uleb(b, uint64(m.MemoryMax))
		} else {
			b.WriteByte(0x00)
			uleb(b, uint64(m.MemoryMin))
		}
	})
	section(7, func(b *bytes.Buffer) {
		var n uint64
		var e bytes.Buffer
		if m.ExportMemory != "" {
			name(&e, m.ExportMemory)
			e.WriteByte(0x02)
			uleb(&e, 0)
			n++
		}
		for i, f := range m.Funcs {
			if f.Export == "" {
				continue
			}
			name(&e, f.Export)
			e.WriteByte(0x00)
			uleb(&e, uint64(len(m.Imports)+i))
			n++
		}
		uleb(b, n)
		b.Write(e.Bytes())
	})
	section(10, func(b *bytes.Buffer) {
		uleb(b, uint64(len(m.Funcs)))
		for _, f := range m.Funcs {
			var code bytes.Buffer
			uleb(&code, uint64(len(f.Locals)))
			for _, t := range f.Locals {
				uleb(&code, 1)
				code.WriteByte(t)
			}
			code.Write(f.Body)
			code.WriteByte(0x0b)
			uleb(b, uint64(code.Len()))
			b.Write(code.Bytes())
		}
	})
	return out.Bytes()
}

// Code snippets for function bodies.
var (
	// ReturnZero is a body returning i32 0.
	ReturnZero = []byte{0x41, 0x00}
	// ReturnOne is a body returning i32 1.
	ReturnOne = []byte{0x41, 0x01}
)

// I32Const returns the instruction i32.const v.
func I32Const(v int32) []byte {
	var b bytes.Buffer
	b.WriteByte(0x41)
	// signed LEB128
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			b.WriteByte(c)
			return b.Bytes()
		}
		b.WriteByte(c | 0x80)
	}
}

// Model returns a raw model module of the ABI (docs/models.md) whose
// cleanroom_model_call has body call; alloc returns address 1024 in a
// memory of 16 pages. Options change it further.
func Model(call []byte, opts ...func(*Module)) []byte {
	m := Module{
		MemoryMin:    16,
		ExportMemory: "memory",
		Funcs: []Func{
			{Export: "cleanroom_model_abi", Results: []byte{I32}, Body: ReturnOne},
			{Export: "cleanroom_model_alloc", Params: []byte{I32}, Results: []byte{I32}, Body: I32Const(1024)},
			{Export: "cleanroom_model_call", Params: []byte{I32, I32}, Results: []byte{I32}, Body: call},
		},
	}
	for _, o := range opts {
		o(&m)
	}
	return m.Encode()
}

var (
	goBuildMu sync.Mutex
	goBuilt   = map[string][]byte{}
)

// BuildGo builds the Go model package pkg (an import path or a directory
// relative to the module root) with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared -trimpath, once per test process, and returns the
// module's bytes. The Go build cache makes later builds quick.
func BuildGo(tb testing.TB, pkg string) []byte {
	tb.Helper()
	goBuildMu.Lock()
	defer goBuildMu.Unlock()
	if b, ok := goBuilt[pkg]; ok {
		return b
	}
	out := filepath.Join(tb.TempDir(), "model.wasm")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = moduleRoot(tb)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building %s for wasip1/wasm: %v\n%s", pkg, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	goBuilt[pkg] = b
	return b
}

// moduleRoot finds the directory of go.mod above the working directory.
func moduleRoot(tb testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("wasmtest: no go.mod above the working directory")
		}
		dir = parent
	}
}
