// Package scripttest holds the testscript commands the command-line tests
// of cleanroom and cleanroomd share.
package scripttest

import (
	"os"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"
)

// FlipByte writes a copy of a file with one bit flipped:
//
//	flipbyte FILE OFFSET OUT
//
// A negative OFFSET counts from the end. OUT may be FILE.
func FlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: flipbyte FILE OFFSET OUT")
	}
	data := []byte(ts.ReadFile(args[0]))
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	if off < 0 {
		off += len(data)
	}
	if off < 0 || off >= len(data) {
		ts.Fatalf("flipbyte: offset %s outside %d bytes", args[1], len(data))
	}
	data[off] ^= 0x01
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), data, 0o600))
}
