package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
)

// Benchmarks of the envelope next to the limit it is measured against: raw
// AES-256-GCM on segments of the same size, on one core and on all cores.
// SPEC target (§12): parallel Open ≥ 90 % of raw AES-256-GCM × cores.
//
//	go test ./cleanroom/envelope -run XXX -bench . -benchtime 20x

const benchSize = 64 << 20

func benchAEAD(b *testing.B) cipher.AEAD {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// BenchmarkAESGCM measures crypto/cipher AES-256-GCM sealing and opening of
// DefaultSegmentSize segments: "1core" in one goroutine, "allcores" in
// GOMAXPROCS goroutines. The byte counts are per segment.
func BenchmarkAESGCM(b *testing.B) {
	nonce := make([]byte, 12)
	aad := make([]byte, 32)
	sealed := benchAEAD(b).Seal(nil, nonce, make([]byte, DefaultSegmentSize), aad)
	b.Run("seal/1core", func(b *testing.B) {
		g := benchAEAD(b)
		buf := make([]byte, DefaultSegmentSize, DefaultSegmentSize+TagSize)
		b.SetBytes(DefaultSegmentSize)
		for b.Loop() {
			g.Seal(buf[:0], nonce, buf, aad)
		}
	})
	b.Run("open/1core", func(b *testing.B) {
		g := benchAEAD(b)
		dst := make([]byte, 0, DefaultSegmentSize)
		b.SetBytes(DefaultSegmentSize)
		for b.Loop() {
			if _, err := g.Open(dst, nonce, sealed, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open/allcores", func(b *testing.B) {
		b.SetBytes(DefaultSegmentSize)
		b.RunParallel(func(pb *testing.PB) {
			g := benchAEAD(b)
			dst := make([]byte, 0, DefaultSegmentSize)
			for pb.Next() {
				if _, err := g.Open(dst, nonce, sealed, aad); err != nil {
					panic(err)
				}
			}
		})
	})
}

// BenchmarkSegmentSHA256 measures SHA-256 over DefaultSegmentSize segments,
// on one core and on all: what checking a per-segment ciphertext
// commitment at every run would add to the decryption (the design the
// coordinator does not use; docs/envelope.md, "Stored envelopes").
func BenchmarkSegmentSHA256(b *testing.B) {
	seg := make([]byte, DefaultSegmentSize+TagSize)
	b.Run("1core", func(b *testing.B) {
		b.SetBytes(int64(len(seg)))
		for b.Loop() {
			sha256.Sum256(seg)
		}
	})
	b.Run("allcores", func(b *testing.B) {
		b.SetBytes(int64(len(seg)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sha256.Sum256(seg)
			}
		})
	})
}

func benchEnvelope(b *testing.B, size int) (hpke.PrivateKey, []byte) {
	key := testKey(b, "coordinator")
	env, _ := seal(b, testHeader(0), []hpke.PublicKey{key.PublicKey()}, make([]byte, size), 0)
	return key, env
}

// BenchmarkOpen measures Open of a 64 MiB envelope (default segments) with
// one worker and with GOMAXPROCS workers, including the header checks and
// the HPKE unwrap, with and without the plaintext allocation.
func BenchmarkOpen(b *testing.B) {
	key, env := benchEnvelope(b, benchSize)
	for _, w := range []struct {
		name    string
		workers int
	}{{"1core", 1}, {"allcores", runtime.GOMAXPROCS(0)}} {
		b.Run(w.name, func(b *testing.B) {
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := OpenWithOptions(env, key, testExpect(), OpenOptions{Workers: w.workers}); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Into a buffer the caller provides: the decryption alone,
		// without the page faults of a fresh 64 MiB allocation.
		b.Run(w.name+"/dst", func(b *testing.B) {
			dst := make([]byte, benchSize)
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := OpenWithOptions(env, key, testExpect(), OpenOptions{Workers: w.workers, Dst: dst}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriter measures streaming encryption of 64 MiB (one core by
// design: the writer seals segments in order, in bounded memory),
// including the SHA-256 of the output.
func BenchmarkWriter(b *testing.B) {
	key := testKey(b, "coordinator")
	recipients := []hpke.PublicKey{key.PublicKey()}
	chunk := make([]byte, 256<<10)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		w, err := NewWriter(io.Discard, testHeader(0), recipients)
		if err != nil {
			b.Fatal(err)
		}
		for range benchSize / len(chunk) {
			w.Write(chunk)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriterAllCores runs one writer per core, for the aggregate
// encryption throughput of a machine sealing several datasets or results.
func BenchmarkWriterAllCores(b *testing.B) {
	key := testKey(b, "coordinator")
	recipients := []hpke.PublicKey{key.PublicKey()}
	const size = 16 << 20
	b.SetBytes(size)
	b.RunParallel(func(pb *testing.PB) {
		chunk := make([]byte, 256<<10)
		for pb.Next() {
			w, err := NewWriter(io.Discard, testHeader(0), recipients)
			if err != nil {
				panic(err)
			}
			for range size / len(chunk) {
				w.Write(chunk)
			}
			if err := w.Close(); err != nil {
				panic(err)
			}
		}
	})
}

// BenchmarkReader measures streaming single-pass decryption of 64 MiB.
func BenchmarkReader(b *testing.B) {
	key, env := benchEnvelope(b, benchSize)
	buf := make([]byte, 256<<10)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(env), key, testExpect())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNoAllocationsPerSegment checks that the hot paths allocate nothing
// per segment: the allocations of Open and of a Reader do not grow with the
// number of segments, and Writer.Write allocates nothing.
func TestNoAllocationsPerSegment(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts in -short mode are skipped")
	}
	key := testKey(t, "coordinator")
	recipients := []hpke.PublicKey{key.PublicKey()}
	allocs := func(segments int) (open, read float64) {
		env, _ := seal(t, testHeader(MinSegmentSize), recipients, make([]byte, segments*MinSegmentSize), 0)
		open = testing.AllocsPerRun(5, func() {
			if _, _, err := OpenWithOptions(env, key, testExpect(), OpenOptions{Workers: 1}); err != nil {
				t.Fatal(err)
			}
		})
		read = testing.AllocsPerRun(5, func() {
			r, err := NewReader(bytes.NewReader(env), key, testExpect())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, struct{ io.Reader }{r}); err != nil {
				t.Fatal(err)
			}
		})
		return open, read
	}
	open2, read2 := allocs(2)
	open200, read200 := allocs(200)
	t.Logf("allocs: Open %v/%v, Reader %v/%v", open2, open200, read2, read200)
	// One allocation per segment would add 198; the slack absorbs the
	// runtime's own now and then (a GC emptying a pool in one of the five
	// runs adds one to the rounded average, for either size).
	const slack = 2
	if open200 > open2+slack {
		t.Errorf("Open allocates %v times for 2 segments, %v for 200", open2, open200)
	}
	if read200 > read2+slack {
		t.Errorf("Reader allocates %v times for 2 segments, %v for 200", read2, read200)
	}

	w, err := NewWriter(io.Discard, testHeader(MinSegmentSize), recipients)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 10*MinSegmentSize+3)
	if n := testing.AllocsPerRun(20, func() { w.Write(chunk) }); n != 0 {
		t.Errorf("Writer.Write allocates %v times per call", n)
	}
}

// TestOpenParallelManySegments decrypts an envelope with more segments than
// workers, with every worker count up to twice the CPUs, so that the work
// distribution is exercised under the race detector.
func TestOpenParallelManySegments(t *testing.T) {
	key := testKey(t, "coordinator")
	plaintext := pseudoRandom(97*MinSegmentSize+5, 9)
	env, _ := seal(t, testHeader(MinSegmentSize), []hpke.PublicKey{key.PublicKey()}, plaintext, 0)
	var wg sync.WaitGroup
	for w := 1; w <= 2*runtime.GOMAXPROCS(0)+1; w++ {
		wg.Go(func() {
			got, _, err := OpenWithOptions(env, key, testExpect(), OpenOptions{Workers: w})
			if err != nil || !bytes.Equal(got, plaintext) {
				t.Error(fmt.Sprintf("workers %d: %v", w, err))
			}
		})
	}
	wg.Wait()
}
