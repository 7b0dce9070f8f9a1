//go:build !wasip1

package model

// stringAddr has no meaning outside WebAssembly, where the module's
// memory is the address space: results are only encoded by the wasip1
// build.
func stringAddr(s string) (addr, n uint32) { return 0, uint32(len(s)) }
