package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/coordinator/internal/tee"
)

// TestChunkPipeBound checks that the receiving goroutine runs ahead of the
// verifier by up to the pipe's chunks, without a reader (a synchronous
// pipe blocks at the first), and by no more: with every buffer in flight,
// get has none to give and waits, here until the reader stops.
func TestChunkPipeBound(t *testing.T) {
	const chunks, size = 4, 8
	p := newChunkPipe(chunks, size)
	for i := range chunks {
		b := p.get()
		if b == nil || len(b) != size {
			t.Fatalf("get %d returned %d bytes, want a %d-byte buffer", i, len(b), size)
		}
		b[0] = byte(i)
		if !p.send(b[:1]) {
			t.Fatalf("send %d failed with no reader stopped", i)
		}
	}
	p.closeRead()
	if b := p.get(); b != nil {
		t.Fatalf("get returned a buffer beyond the %d in flight", chunks)
	}
	if p.made != chunks {
		t.Fatalf("%d buffers made, want %d", p.made, chunks)
	}
	if p.send([]byte{9}) {
		t.Fatal("send succeeded after the reader stopped")
	}
}

// TestChunkPipeOrder reads what a writer sends through a pipe of fewer
// buffers than chunks, in order, then the writer's error.
func TestChunkPipeOrder(t *testing.T) {
	p := newChunkPipe(2, 3)
	want := []byte("the chunks arrive in order and whole")
	errEnd := errors.New("connection reset")
	go func() {
		for rest := want; len(rest) > 0; {
			b := p.get()
			n := copy(b, rest)
			rest = rest[n:]
			p.send(b[:n])
		}
		p.closeWrite(errEnd)
	}()
	got, err := io.ReadAll(iotest.OneByteReader(p))
	if !errors.Is(err, errEnd) {
		t.Fatalf("read ended with %v, want the writer's error", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
	if p.made > 2 {
		t.Fatalf("%d buffers made for a pipe of 2", p.made)
	}
}

// TestReceiveEnvelopeReads receives an envelope from bodies that return
// a few bytes at a time (as a TLS connection returns records), and from one
// that fails midway: the digest and rows are the envelope's, and the failure
// is a refusal that names the reading.
func TestReceiveEnvelopeReads(t *testing.T) {
	ctx := context.Background()
	c, err := Open(ctx, Config{DataDir: filepath.Join(t.TempDir(), "coord"), Attestation: tee.ModeSimulated})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	ct, provider := allTypesContract(t)
	ds := ct.Dataset("patients")
	batch := sampleBatch(t, ds.Schema(), 5000)
	defer batch.Release()
	rr, err := array.NewRecordReader(ds.Schema(), []arrow.RecordBatch{batch, batch, batch})
	if err != nil {
		t.Fatal(err)
	}
	var sealed bytes.Buffer
	if _, err := upload.Encrypt(&sealed, rr, ct, ds.ID, c.tee.PublicKey(), provider, upload.EncryptOptions{}); err != nil {
		t.Fatal(err)
	}
	env := sealed.Bytes()
	for name, body := range map[string]io.Reader{
		"whole":       bytes.NewReader(env),
		"half reads":  iotest.HalfReader(bytes.NewReader(env)),
		"small reads": &smallReader{r: bytes.NewReader(env), n: 1000},
	} {
		t.Run(name, func(t *testing.T) {
			w, err := c.blobs.Create(0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			got, err := c.receiveEnvelope(ctx, body, w, ct, ds, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.digest != sha256.Sum256(env) || got.size != int64(len(env)) || got.rows != 15000 {
				t.Fatalf("received %d bytes, %d rows, digest %x; want %d, 15000, %x", got.size, got.rows, got.digest, len(env), sha256.Sum256(env))
			}
		})
	}
	t.Run("fails midway", func(t *testing.T) {
		w, err := c.blobs.Create(0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		body := io.MultiReader(bytes.NewReader(env[:len(env)/2]), iotest.ErrReader(errors.New("connection reset by peer")))
		_, err = c.receiveEnvelope(ctx, body, w, ct, ds, nil)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("reading the upload of dataset patients: connection reset by peer")) {
			t.Fatalf("got %v, want the reading error", err)
		}
	})
}

// smallReader returns at most n bytes per Read.
type smallReader struct {
	r io.Reader
	n int
}

func (s *smallReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), s.n)]) }
