package envelope

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// pairWriters returns a writer made as NewWriter makes one and a
// Background writer of the same header and data key, so that both must
// write the same bytes.
func pairWriters(t *testing.T, segSize int, dst1, dst2 io.Writer) (*Writer, *Writer) {
	t.Helper()
	random := pseudoRandom(dataKeySize+saltSize, 17)
	pubs := []hpke.PublicKey{testKey(t, "coordinator").PublicKey()}
	w1, err := newWriter(dst1, testHeader(segSize), pubs, bytes.NewReader(random), WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hdr := *w1.sum.Header
	w2, err := startWriter(dst2, &hdr, random[:dataKeySize], WriterOptions{Background: true})
	if err != nil {
		t.Fatal(err)
	}
	return w1, w2
}

// TestBackgroundWriter checks that a Background writer writes exactly the
// bytes, summary and digest of the plain writer, whatever the sizes and
// the way the plaintext is cut into writes, and that it decrypts.
func TestBackgroundWriter(t *testing.T) {
	const seg = 64
	for _, size := range []int{0, 1, seg - 1, seg, seg + 1, 2 * seg, 10*seg + 7, 1000 * seg} {
		for _, chunk := range []int{1, 7, seg, 3*seg + 5, 1 << 20} {
			plain := pseudoRandom(size, uint64(size))
			var b1, b2 bytes.Buffer
			w1, w2 := pairWriters(t, seg, &b1, &b2)
			for _, w := range []*Writer{w1, w2} {
				for p := plain; len(p) > 0; {
					k := min(chunk, len(p))
					if n, err := w.Write(p[:k]); n != k || err != nil {
						t.Fatalf("size %d chunk %d: Write = %d, %v", size, chunk, n, err)
					}
					p = p[k:]
				}
				if err := w.Close(); err != nil {
					t.Fatalf("size %d chunk %d: Close: %v", size, chunk, err)
				}
			}
			if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
				t.Fatalf("size %d chunk %d: the Background writer wrote other bytes", size, chunk)
			}
			s1, _ := w1.Summary()
			s2, err := w2.Summary()
			if err != nil {
				t.Fatal(err)
			}
			if s1.Size != s2.Size || s1.Segments != s2.Segments || s1.PlaintextSize != s2.PlaintextSize || s1.SHA256 != s2.SHA256 ||
				s2.SHA256 != sha256.Sum256(b2.Bytes()) || s2.Size != int64(b2.Len()) {
				t.Fatalf("size %d chunk %d: summaries differ: %+v and %+v", size, chunk, s1, s2)
			}
			if w2.bg != nil {
				t.Fatal("the sealing goroutine is still attached after Close")
			}
			if chunk == seg {
				got, err := io.ReadAll(mustReader(t, b2.Bytes()))
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("size %d: decrypting the Background writer's envelope: %v", size, err)
				}
			}
		}
	}
}

func mustReader(t *testing.T, env []byte) io.Reader {
	t.Helper()
	r, err := NewReader(bytes.NewReader(env), testKey(t, "coordinator"), testExpect())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// failAfter accepts n bytes, then fails every write.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// TestBackgroundWriterErrors checks that a destination's error in the
// sealing goroutine reaches the caller (from a later Write or from Close),
// sticks, and that the goroutine ends whether the writer is closed or
// aborted.
func TestBackgroundWriterErrors(t *testing.T) {
	boom := errors.New("disk full")
	before := runtime.NumGoroutine()
	for _, end := range []string{"close", "abort", "write"} {
		for _, failAt := range []int{0, 100, 5000} {
			var ok bytes.Buffer
			_, w := pairWriters(t, 64, &ok, &failAfter{n: 1 << 30, err: boom})
			w.dst = &failAfter{n: failAt, err: boom}
			var werr error
			plain := pseudoRandom(64*200, 3)
			for p := plain; len(p) > 0 && werr == nil; p = p[min(100, len(p)):] {
				_, werr = w.Write(p[:min(100, len(p))])
			}
			switch end {
			case "close":
				err := w.Close()
				if !errors.Is(err, boom) {
					t.Fatalf("fail at %d: Close = %v, want the destination's error", failAt, err)
				}
			case "abort":
				w.Abort()
				if _, err := w.Write([]byte{1}); err == nil {
					t.Fatal("Write after Abort succeeded")
				}
			case "write":
				if !errors.Is(werr, boom) {
					t.Fatalf("fail at %d: Write = %v, want the destination's error", failAt, werr)
				}
				w.Abort()
			}
			if _, err := w.Write([]byte{1}); err == nil {
				t.Fatal("Write after the error succeeded")
			}
			if _, err := w.Summary(); err == nil {
				t.Fatal("Summary after the error succeeded")
			}
			if w.bg != nil {
				t.Fatal("the sealing goroutine is still attached")
			}
		}
	}
	// Aborting a healthy writer mid-stream stops its goroutine too.
	for range 20 {
		var b1, b2 bytes.Buffer
		_, w := pairWriters(t, 64, &b1, &b2)
		w.Write(pseudoRandom(64*10, 4))
		w.Abort()
		w.Abort()
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after the writers ended, %d before", n, before)
	}
}

// gate blocks every write until open is closed, counting the calls.
type gate struct {
	entered chan struct{}
	open    chan struct{}
	calls   atomic.Int64
}

func (g *gate) Write(p []byte) (int, error) {
	if g.calls.Add(1) == 1 {
		close(g.entered)
	}
	<-g.open
	return len(p), nil
}

// TestBackgroundWriterBounded checks that a Background writer whose
// destination does not accept anything stops accepting plaintext after a
// few segments, instead of queueing it.
func TestBackgroundWriterBounded(t *testing.T) {
	const seg = 1024
	random := pseudoRandom(dataKeySize+saltSize, 5)
	pubs := []hpke.PublicKey{testKey(t, "coordinator").PublicKey()}
	var hb bytes.Buffer
	w0, err := newWriter(&hb, testHeader(seg), pubs, bytes.NewReader(random), WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hdr := *w0.sum.Header
	g := &gate{entered: make(chan struct{}), open: make(chan struct{})}
	w, err := startWriter(io.Discard, &hdr, random[:dataKeySize], WriterOptions{Background: true})
	if err != nil {
		t.Fatal(err)
	}
	w.dst = g // the header went to io.Discard; segments go to the gate
	var accepted atomic.Int64
	done := make(chan error, 1)
	go func() {
		b := make([]byte, 100)
		for range 1000 { // 100 segments
			if _, err := w.Write(b); err != nil {
				done <- err
				return
			}
			accepted.Add(int64(len(b)))
		}
		done <- w.Close()
	}()
	<-g.entered
	// The writer runs ahead of its destination: it accepts the next
	// segments while the first is being written.
	for i := 0; accepted.Load() <= 2*seg; i++ {
		if i == 10_000 {
			t.Fatalf("%d bytes accepted while the first segment is being written: the writer does not run ahead", accepted.Load())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for the writer to run further ahead, were it unbounded
	// One segment in the destination, the others of the sealers+2 buffers
	// queued or being sealed, one being filled, and the write waiting for a
	// free buffer.
	if n := accepted.Load(); n > (maxSealers+3)*seg {
		t.Fatalf("%d bytes accepted while the destination accepted nothing; want at most %d", n, (maxSealers+3)*seg)
	}
	close(g.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if accepted.Load() != 100_000 {
		t.Fatalf("accepted %d bytes", accepted.Load())
	}
}
