package model

import (
	"testing"
	"unsafe"
)

// TestFunc4 runs a registered function over a frame laid out as the host
// lays it (docs/models.md §3) — fixed-width columns read and written in
// place, NULL in NULL out — on the host, where strings cannot be encoded
// as addresses, so the function returns an int64.
func TestFunc4(t *testing.T) {
	registered = nil
	defer func() { registered = nil }()
	fn := func(a int64, b float64, c int32, d bool) int64 {
		if d {
			return a + int64(b) + int64(c)
		}
		return -1
	}
	Func4(fn)
	if Native() == nil {
		t.Fatal("Native returns nothing")
	}
	const rows = 3
	// Descriptors (5 × 8 bytes), then validity and data per column, all
	// 8-aligned from the buffer's start.
	buf := make([]byte, 512)
	base := uint32(uintptr(unsafe.Pointer(&buf[0])))
	if base%8 != 0 {
		t.Skip("unaligned test buffer")
	}
	at := 40
	widths := []int{8, 8, 4, 1, 8}
	offs := make([][2]int, 5)
	for c, w := range widths {
		offs[c] = [2]int{at, at + 8}
		at += 8 + ((rows*w + 7) &^ 7)
		put32(buf[8*c:], base+uint32(offs[c][0]))
		put32(buf[8*c+4:], base+uint32(offs[c][1]))
	}
	for r := range rows {
		for c := range 4 {
			buf[offs[c][0]+r] = 1
		}
		put64(buf[offs[0][1]+8*r:], uint64(10*(r+1)))
		put64(buf[offs[1][1]+8*r:], 0x4000000000000000) // 2.0
		put32(buf[offs[2][1]+4*r:], 5)
		buf[offs[3][1]+r] = 1
	}
	buf[offs[2][0]+1] = 0 // row 1: c is NULL
	buf[offs[3][1]+2] = 0 // row 2: d is false
	var keep []string
	if code := call(buf, base, rows, base, &keep); code != codeOK {
		t.Fatalf("status %d", code)
	}
	res := offs[4]
	want := []struct {
		valid byte
		v     int64
	}{{1, 17}, {0, 0}, {1, -1}}
	for r, w := range want {
		if got := buf[res[0]+r]; got != w.valid {
			t.Fatalf("row %d: validity %d, want %d", r, got, w.valid)
		}
		if w.valid == 1 {
			if got := int64(le64(buf[res[1]+8*r:])); got != w.v {
				t.Fatalf("row %d: %d, want %d", r, got, w.v)
			}
		}
	}
	// A descriptor pointing outside the buffer is refused, not followed.
	put32(buf[0:], base+4096)
	if code := call(buf, base, rows, base, &keep); code != codeBadFrame {
		t.Fatalf("status %d for a frame outside the buffer, want %d", code, codeBadFrame)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	registered = nil
	defer func() { registered = nil }()
	Func1(func(x float64) float64 { return x })
	defer func() {
		if recover() == nil {
			t.Fatal("a second registration did not panic")
		}
	}()
	Func1(func(x float64) float64 { return x })
}
