package envelope

import (
	"bytes"
	"crypto/hpke"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestOpenFile checks that decrypting from an io.ReaderAt gives exactly
// what Open gives, and refuses what Open refuses.
func TestOpenFile(t *testing.T) {
	key := testKey(t, "coordinator")
	for _, size := range []int{0, 1, 255, 256, 257, 4*256 + 3} {
		plain := pseudoRandom(size, uint64(size))
		env, _ := seal(t, testHeader(256), []hpke.PublicKey{key.PublicKey()}, plain, 100)
		want, _, err := Open(env, key, testExpect())
		if err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{1, 3} {
			got, hdr, err := OpenFile(bytes.NewReader(env), int64(len(env)), key, testExpect(), OpenOptions{Workers: workers})
			if err != nil {
				t.Fatalf("size %d, %d workers: %v", size, workers, err)
			}
			if !bytes.Equal(got, want) || hdr.ObjectID != testExpect().ObjectID {
				t.Fatalf("size %d: OpenFile and Open differ", size)
			}
		}
		if size == 0 {
			continue
		}
		// A flipped byte in any segment, a truncation and a file shorter than
		// announced are refused with no plaintext.
		for i := len(env) - 1; i >= len(env)-size && i > 0; i -= 97 {
			bad := bytes.Clone(env)
			bad[i] ^= 1
			if p, _, err := OpenFile(bytes.NewReader(bad), int64(len(bad)), key, testExpect(), OpenOptions{}); err == nil || p != nil {
				t.Fatalf("size %d: a flip at byte %d was accepted", size, i)
			} else if !errors.Is(err, ErrAuthentication) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("size %d: flip at %d: unclassified error %v", size, i, err)
			}
		}
		short := env[:len(env)-1]
		if _, _, err := OpenFile(bytes.NewReader(short), int64(len(short)), key, testExpect(), OpenOptions{}); err == nil {
			t.Fatalf("size %d: a truncated file was accepted", size)
		}
		if _, _, err := OpenFile(bytes.NewReader(short), int64(len(env)), key, testExpect(), OpenOptions{}); err == nil ||
			!(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reading segment")) {
			t.Fatalf("size %d: a file shorter than its stated size: %v", size, err)
		}
	}
}
