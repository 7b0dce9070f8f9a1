package envelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// testKey returns a fixed recipient key derived from name.
func testKey(t testing.TB, name string) hpke.PrivateKey {
	t.Helper()
	seed := sha256.Sum256([]byte("cleanroom envelope test key " + name))
	k, err := hpke.MLKEM768X25519().NewPrivateKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	testContract = sha256.Sum256([]byte("contract"))
	testSchema   = sha256.Sum256([]byte("schema"))
)

func testHeader(segSize int) Header {
	return Header{Kind: KindDataset, ContractID: testContract, ObjectID: "impressions", SchemaDigest: testSchema, SegmentSize: segSize}
}

func testExpect() Expect {
	s := testSchema
	return Expect{Kind: KindDataset, ContractID: testContract, ObjectID: "impressions", SchemaDigest: &s}
}

// pseudoRandom returns n deterministic bytes.
func pseudoRandom(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// seal encrypts plaintext, writing it in chunks of the given size (0: one
// Write call).
func seal(t testing.TB, hdr Header, recipients []hpke.PublicKey, plaintext []byte, chunk int) ([]byte, Summary) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, hdr, recipients)
	if err != nil {
		t.Fatal(err)
	}
	if chunk <= 0 {
		chunk = max(len(plaintext), 1)
	}
	for p := plaintext; len(p) > 0; {
		k := min(chunk, len(p))
		n, err := w.Write(p[:k])
		if err != nil || n != k {
			t.Fatalf("Write = %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := w.Summary()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), sum
}

// readAll decrypts with NewReader, reading in small pieces.
func readAll(env []byte, key hpke.PrivateKey, want Expect) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(env), key, want)
	if err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, 37)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestRoundTrip(t *testing.T) {
	key := testKey(t, "coordinator")
	recipients := []hpke.PublicKey{key.PublicKey()}
	const seg = 64
	for _, size := range []int{0, 1, seg - 1, seg, seg + 1, 2 * seg, 3*seg - 1, 3 * seg, 3*seg + 1, 10*seg + 17} {
		for _, chunk := range []int{0, 1, 7, seg, seg + 3} {
			t.Run(fmt.Sprintf("size=%d/chunk=%d", size, chunk), func(t *testing.T) {
				plaintext := pseudoRandom(size, uint64(size))
				env, sum := seal(t, testHeader(seg), recipients, plaintext, chunk)

				wantSegments := int64(max(1, (size+seg-1)/seg))
				if sum.Segments != wantSegments || sum.PlaintextSize != int64(size) || sum.Size != int64(len(env)) || sum.SHA256 != sha256.Sum256(env) {
					t.Fatalf("summary %+v; want %d segments, %d bytes, size %d", sum, wantSegments, size, len(env))
				}
				if want := int64(sum.Header.Len()) + int64(size) + wantSegments*TagSize; int64(len(env)) != want {
					t.Fatalf("envelope has %d bytes, want %d", len(env), want)
				}
				for _, workers := range []int{0, 1, 3} {
					got, hdr, err := OpenWithOptions(env, key, testExpect(), OpenOptions{Workers: workers})
					if err != nil {
						t.Fatalf("Open (workers %d): %v", workers, err)
					}
					if !bytes.Equal(got, plaintext) {
						t.Fatalf("Open (workers %d) returned different plaintext", workers)
					}
					if !bytes.Equal(hdr.Bytes(), sum.Header.Bytes()) {
						t.Fatal("Open returned a different header")
					}
				}
				got, err := readAll(env, key, testExpect())
				if err != nil {
					t.Fatalf("NewReader: %v", err)
				}
				if !bytes.Equal(got, plaintext) {
					t.Fatal("NewReader returned different plaintext")
				}
			})
		}
	}
}

func TestDefaultSegmentSize(t *testing.T) {
	key := testKey(t, "coordinator")
	hdr := testHeader(0)
	plaintext := pseudoRandom(2*DefaultSegmentSize+5, 1)
	env, sum := seal(t, hdr, []hpke.PublicKey{key.PublicKey()}, plaintext, 0)
	if sum.Header.SegmentSize != DefaultSegmentSize || sum.Segments != 3 {
		t.Fatalf("segment size %d, %d segments; want %d, 3", sum.Header.SegmentSize, sum.Segments, DefaultSegmentSize)
	}
	got, _, err := Open(env, key, testExpect())
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("Open: %v", err)
	}
}

func TestSeveralRecipients(t *testing.T) {
	keys := []hpke.PrivateKey{testKey(t, "a"), testKey(t, "b"), testKey(t, "c")}
	var pubs []hpke.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.PublicKey())
	}
	hdr := Header{Kind: KindResult, ContractID: testContract, ObjectID: "run-0001", SchemaDigest: testSchema, SegmentSize: 100}
	plaintext := []byte(strings.Repeat("result rows ", 50))
	env, _ := seal(t, hdr, pubs, plaintext, 0)
	want := Expect{Kind: KindResult, ContractID: testContract, ObjectID: "run-0001"}
	for i, k := range keys {
		got, h, err := Open(env, k, want)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("recipient %d: %v", i, err)
		}
		if len(h.Recipients) != 3 || h.Recipients[i].KeyID != KeyID(pubs[i]) {
			t.Fatalf("recipient %d: stanza order not kept", i)
		}
	}
	if _, _, err := Open(env, testKey(t, "d"), want); !errors.Is(err, ErrNotRecipient) {
		t.Fatalf("Open with a fourth key: %v, want ErrNotRecipient", err)
	}
}

// TestNoPlaintextInCiphertext checks that no 8-byte piece of a distinctive
// plaintext appears in the envelope.
func TestNoPlaintextInCiphertext(t *testing.T) {
	key := testKey(t, "coordinator")
	plaintext := []byte(strings.Repeat("SECRET-ROW user_id=alice@example.com campaign=winter value=1234.56\n", 200))
	env, _ := seal(t, testHeader(256), []hpke.PublicKey{key.PublicKey()}, plaintext, 0)
	for i := 0; i+8 <= len(plaintext); i++ {
		if bytes.Contains(env, plaintext[i:i+8]) {
			t.Fatalf("envelope contains plaintext %q", plaintext[i:i+8])
		}
	}
	for _, s := range []string{"SECRET", "alice", "campaign"} {
		if bytes.Contains(env, []byte(s)) {
			t.Fatalf("envelope contains %q", s)
		}
	}
}

// TestWriterStreams checks that the writer emits each segment as soon as it
// knows the segment is not the last, and holds at most one segment back.
func TestWriterStreams(t *testing.T) {
	key := testKey(t, "coordinator")
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader(64), []hpke.PublicKey{key.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	hdrLen := buf.Len()
	steps := []struct{ write, wantOut int }{
		{64, hdrLen},            // one full segment: maybe the last, held back
		{1, hdrLen + 80},        // more data: segment 0 goes out
		{63, hdrLen + 80},       // segment 1 full, held back
		{64 * 3, hdrLen + 4*80}, // segments 1 to 3 out, 4 held
		{0, hdrLen + 4*80},      // an empty write changes nothing
	}
	for i, s := range steps {
		if _, err := w.Write(make([]byte, s.write)); err != nil {
			t.Fatal(err)
		}
		if buf.Len() != s.wantOut {
			t.Fatalf("step %d: %d bytes written, want %d", i, buf.Len(), s.wantOut)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != hdrLen+5*80 {
		t.Fatalf("after Close: %d bytes, want %d", buf.Len(), hdrLen+5*80)
	}
	if _, err := w.Write([]byte{1}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, errors.New("disk full")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestWriterDestinationError(t *testing.T) {
	key := testKey(t, "coordinator")
	if _, err := NewWriter(&failingWriter{}, testHeader(64), []hpke.PublicKey{key.PublicKey()}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("NewWriter on a failing destination: %v", err)
	}
	w, err := NewWriter(&failingWriter{after: 5000}, testHeader(64), []hpke.PublicKey{key.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 10000)); err == nil {
		t.Fatal("Write to a failing destination succeeded")
	}
	if _, err := w.Write([]byte{1}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Write after a failure: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a failure succeeded")
	}
	if _, err := w.Summary(); err == nil {
		t.Fatal("Summary after a failure succeeded")
	}
}

func TestWriterRefusesBadInput(t *testing.T) {
	key := testKey(t, "coordinator")
	pub := []hpke.PublicKey{key.PublicKey()}
	x25519, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		edit       func(*Header)
		recipients []hpke.PublicKey
		want       string
	}{
		{"kind", func(h *Header) { h.Kind = 3 }, pub, "kind"},
		{"contract", func(h *Header) { h.ContractID = [32]byte{} }, pub, "contract id"},
		{"empty object id", func(h *Header) { h.ObjectID = "" }, pub, "object id"},
		{"long object id", func(h *Header) { h.ObjectID = strings.Repeat("a", 65) }, pub, "object id"},
		{"object id with space", func(h *Header) { h.ObjectID = "a b" }, pub, "object id"},
		{"segment too small", func(h *Header) { h.SegmentSize = 63 }, pub, "segment size"},
		{"segment too large", func(h *Header) { h.SegmentSize = MaxSegmentSize + 1 }, pub, "segment size"},
		{"recipients set", func(h *Header) { h.Recipients = []Stanza{} }, pub, "Recipients"},
		{"no recipients", func(h *Header) {}, nil, "recipients"},
		{"same recipient twice", func(h *Header) {}, append(pub, key.PublicKey()), "same key"},
		{"nil recipient", func(h *Header) {}, []hpke.PublicKey{nil}, "nil"},
		{"X25519 recipient", func(h *Header) {}, []hpke.PublicKey{x25519.PublicKey()}, "ML-KEM-768+X25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := testHeader(64)
			tt.edit(&hdr)
			_, err := NewWriter(io.Discard, hdr, tt.recipients)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewWriter: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestOpenIntoDst(t *testing.T) {
	key := testKey(t, "coordinator")
	plaintext := pseudoRandom(5*64+3, 5)
	env, _ := seal(t, testHeader(64), []hpke.PublicKey{key.PublicKey()}, plaintext, 0)

	dst := make([]byte, 1000)
	got, _, err := OpenWithOptions(env, key, testExpect(), OpenOptions{Dst: dst})
	if err != nil || !bytes.Equal(got, plaintext) || &got[0] != &dst[0] {
		t.Fatalf("Open into Dst: %v (same buffer: %v)", err, err == nil && &got[0] == &dst[0])
	}
	// On failure the buffer is wiped.
	bad := bytes.Clone(env)
	bad[len(bad)-1] ^= 1
	for i := range dst {
		dst[i] = 0xaa
	}
	if got, _, err := OpenWithOptions(bad, key, testExpect(), OpenOptions{Dst: dst}); err == nil || got != nil {
		t.Fatalf("Open of a damaged envelope into Dst: %v", err)
	}
	if !bytes.Equal(dst, make([]byte, len(dst))) {
		t.Fatal("Dst not wiped after a failed Open")
	}
	// A Dst that is too small is not used.
	small := make([]byte, 10)
	if got, _, err := OpenWithOptions(env, key, testExpect(), OpenOptions{Dst: small}); err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("Open with a small Dst: %v", err)
	}
	// In place is refused, without a panic.
	buf := bytes.Clone(env)
	if _, _, err := OpenWithOptions(buf, key, testExpect(), OpenOptions{Dst: buf[:0]}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("Open in place: %v", err)
	}
}

// TestWriterNoDigest checks that a writer told not to hash writes the same
// kind of envelope, which opens, and reports no digest.
func TestWriterNoDigest(t *testing.T) {
	key := testKey(t, "coordinator")
	plaintext := pseudoRandom(3*MinSegmentSize+7, 4)
	var buf bytes.Buffer
	w, err := NewWriterWithOptions(&buf, testHeader(MinSegmentSize), []hpke.PublicKey{key.PublicKey()}, WriterOptions{NoDigest: true})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plaintext)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := w.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if sum.SHA256 != ([32]byte{}) || sum.Size != int64(buf.Len()) || sum.Segments != 4 {
		t.Fatalf("summary %+v", sum)
	}
	got, _, err := Open(buf.Bytes(), key, testExpect())
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("open: %v", err)
	}
}
