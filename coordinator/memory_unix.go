//go:build unix

package coordinator

import (
	"fmt"
	"syscall"
)

// allocPlain allocates size bytes of private anonymous memory outside the
// Go heap for decrypted data: the kernel hands out zeroed pages as they
// are first written (by the parallel decryption workers, so page faults are
// spread over all cores), with no single-threaded clearing first. (Huge
// pages were tried: with the usual "madvise" defragmentation setting their
// first faults can stall for compaction, making runs slower and erratic.)
// The memory must be released with the returned function, after which
// nothing may use it.
func allocPlain(size int64) ([]byte, func(), error) {
	if size == 0 {
		return []byte{}, func() {}, nil
	}
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, nil, fmt.Errorf("allocating %d bytes for a dataset: %w", size, err)
	}
	return b, func() { syscall.Munmap(b) }, nil
}
