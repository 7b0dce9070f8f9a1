//go:build !unix

package coordinator

// allocPlain allocates from the Go heap where mmap is not available.
func allocPlain(size int64) ([]byte, func(), error) { return make([]byte, size), func() {}, nil }
