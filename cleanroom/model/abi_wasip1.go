//go:build wasip1

package model

import "unsafe"

// The exports of the model ABI (docs/models.md). The module is built with
// -buildmode=c-shared, which adds the reactor's _initialize export; the
// host calls it once before anything else.

// buf is the call buffer the host writes frames into; keep holds the
// result strings of the last call, which the host reads after it returns.
var (
	buf  []byte
	keep []string
)

//go:wasmexport cleanroom_model_abi
func exportABI() int32 { return ABIVersion }

//go:wasmexport cleanroom_model_alloc
func exportAlloc(size int32) int32 {
	if size <= 0 {
		return 0
	}
	// Go's allocator aligns every allocation of 8 bytes or more to 8.
	buf = make([]byte, size)
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
}

//go:wasmexport cleanroom_model_call
func exportCall(rows, frame int32) int32 {
	keep = keep[:0]
	if len(buf) == 0 {
		return codeBadFrame
	}
	base := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	return call(buf, base, rows, uint32(frame), &keep)
}

func stringAddr(s string) (addr, n uint32) {
	return uint32(uintptr(unsafe.Pointer(unsafe.StringData(s)))), uint32(len(s))
}
