//go:build !unix

package coordinator

import (
	"io"
	"os"
)

// readPrivate reads the file into the Go heap where mmap is not available.
func readPrivate(f *os.File, size int64) ([]byte, func(), error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, nil, err
	}
	return b, func() {}, nil
}

// allocPlain allocates from the Go heap where mmap is not available.
func allocPlain(size int64) ([]byte, func(), error) { return make([]byte, size), func() {}, nil }
