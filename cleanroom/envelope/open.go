package envelope

import (
	"bytes"
	"crypto/cipher"
	"crypto/hpke"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Expect pins what a decrypter requires an envelope to be. Kind, ContractID
// and ObjectID must be set; a mismatch in any of them, or in SchemaDigest
// when it is set, is refused with a *MismatchError before any decryption.
type Expect struct {
	Kind       Kind
	ContractID [32]byte
	ObjectID   string
	// SchemaDigest, when not nil, must equal the header's schema digest.
	SchemaDigest *[32]byte
}

// check compares the header with the expectation, in the order of the
// header's fields.
func (want Expect) check(h *Header) error {
	if !want.Kind.valid() {
		return fmt.Errorf("envelope: Expect.Kind %d is not set to dataset or result", want.Kind)
	}
	if want.ContractID == ([32]byte{}) {
		return errors.New("envelope: Expect.ContractID is not set")
	}
	if want.ObjectID == "" {
		return errors.New("envelope: Expect.ObjectID is not set")
	}
	if h.Kind != want.Kind {
		return &MismatchError{Field: "kind", Want: want.Kind.String(), Got: h.Kind.String()}
	}
	if h.ContractID != want.ContractID {
		return &MismatchError{Field: "contract id", Want: hex.EncodeToString(want.ContractID[:]), Got: hex.EncodeToString(h.ContractID[:])}
	}
	if h.ObjectID != want.ObjectID {
		return &MismatchError{Field: h.Kind.String() + " id", Want: fmt.Sprintf("%q", want.ObjectID), Got: fmt.Sprintf("%q", h.ObjectID)}
	}
	if want.SchemaDigest != nil && h.SchemaDigest != *want.SchemaDigest {
		return &MismatchError{Field: "schema digest", Want: hex.EncodeToString(want.SchemaDigest[:]), Got: hex.EncodeToString(h.SchemaDigest[:])}
	}
	return nil
}

// Layout is the segment structure of an envelope body, computed from its
// length and the segment size alone.
type Layout struct {
	Segments      int64 // number of segments, at least 1
	PlaintextSize int64 // total plaintext bytes
	LastSegment   int64 // plaintext bytes in the last segment
}

// BodyLayout returns the layout of an envelope body (the bytes after the
// header) of bodyLen bytes with the given segment size, or an error when no
// envelope writer can produce a body of that length: shorter than one tag,
// a last segment without plaintext (only an empty plaintext ends with an
// empty segment), a last segment shorter than a tag, or more than
// MaxSegments segments. headerLen only places offsets in error messages.
func BodyLayout(bodyLen int64, segmentSize int, headerLen int) (Layout, error) {
	if segmentSize < MinSegmentSize || segmentSize > MaxSegmentSize {
		return Layout{}, fmt.Errorf("envelope: segment size %d is outside %d..%d", segmentSize, MinSegmentSize, MaxSegmentSize)
	}
	if bodyLen < TagSize {
		return Layout{}, fmt.Errorf("%w: the body after the %d-byte header has %d bytes, fewer than the %d-byte tag of one segment",
			ErrTruncated, headerLen, bodyLen, TagSize)
	}
	full := int64(segmentSize) + TagSize
	n := (bodyLen + full - 1) / full
	last := bodyLen - (n-1)*full
	if n > 1 && last <= TagSize {
		return Layout{}, &FormatError{Offset: int64(headerLen) + (n-1)*full, Field: fmt.Sprintf("segment %d", n-1),
			Reason: fmt.Sprintf("the file ends with a %d-byte piece of a segment; a last segment holds 1 to %d bytes of data and a %d-byte tag (the file is truncated or has bytes appended)",
				last, segmentSize, TagSize)}
	}
	if n > MaxSegments {
		return Layout{}, &FormatError{Offset: int64(headerLen), Field: "body",
			Reason: fmt.Sprintf("%d segments exceed the maximum of %d", n, uint64(MaxSegments))}
	}
	return Layout{Segments: n, PlaintextSize: bodyLen - n*TagSize, LastSegment: last - TagSize}, nil
}

// OpenOptions tune Open. The zero value is the default.
type OpenOptions struct {
	// Workers is the number of goroutines that decrypt segments; zero
	// means runtime.GOMAXPROCS(0).
	Workers int
	// Dst, when its capacity is at least the plaintext size, receives the
	// plaintext: Open returns Dst[:size] and allocates no plaintext buffer
	// (so a caller can decrypt into memory it manages, such as Arrow
	// buffers, or reuse one). Its previous content is overwritten; on
	// error it is wiped. A smaller Dst is ignored. Dst must not overlap
	// the ciphertext (in-place decryption is refused).
	Dst []byte
}

// Open checks, authenticates and decrypts a whole envelope held in memory.
// It parses the header, refuses it unless it matches want, unwraps the data
// key with key, then verifies and decrypts all segments in parallel (one
// worker per CPU) into a single plaintext buffer. It returns the plaintext
// only if every segment authenticates and the envelope is complete; on any
// error it returns no plaintext and wipes what it had decrypted.
func Open(ciphertext []byte, key hpke.PrivateKey, want Expect) ([]byte, *Header, error) {
	return OpenWithOptions(ciphertext, key, want, OpenOptions{})
}

// OpenWithOptions is Open with options.
func OpenWithOptions(ciphertext []byte, key hpke.PrivateKey, want Expect, opts OpenOptions) ([]byte, *Header, error) {
	hdr, err := ParseHeader(bytes.NewReader(ciphertext))
	if err != nil {
		return nil, nil, err
	}
	if err := want.check(hdr); err != nil {
		return nil, nil, err
	}
	body := ciphertext[hdr.Len():]
	layout, err := BodyLayout(int64(len(body)), hdr.SegmentSize, hdr.Len())
	if err != nil {
		return nil, nil, err
	}
	keys, err := recipientKeys(hdr, key)
	if err != nil {
		return nil, nil, err
	}
	defer keys.wipe()

	if overlap(opts.Dst[:cap(opts.Dst)], ciphertext) {
		return nil, nil, errors.New("envelope: OpenOptions.Dst overlaps the ciphertext; decrypting in place is not supported")
	}
	d := &decryption{body: body}
	plaintext, err := d.decrypt(keys, hdr, layout, opts)
	if err != nil {
		return nil, nil, err
	}
	return plaintext, hdr, nil
}

// OpenFile is OpenWithOptions for an envelope of size bytes read from r
// (a file, say) instead of held in memory. Each worker reads its segments
// into a private buffer of one segment and authenticates and decrypts them
// there, so no copy of the whole ciphertext is made, and bytes that change
// in the file between the tag check and the decryption cannot reach the
// plaintext. The guarantees are Open's.
func OpenFile(r io.ReaderAt, size int64, key hpke.PrivateKey, want Expect, opts OpenOptions) ([]byte, *Header, error) {
	s, err := OpenSegments(r, size, key, want)
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	d := &decryption{src: r, bodyLen: size - int64(s.hdr.Len())}
	plaintext, err := d.decrypt(s.keys, s.hdr, s.layout, opts)
	if err != nil {
		return nil, nil, err
	}
	return plaintext, s.hdr, nil
}

// decrypt runs the parallel decryption of the body into opts.Dst or a new
// buffer, and wipes it on failure.
func (d *decryption) decrypt(keys *segmentKeys, hdr *Header, layout Layout, opts OpenOptions) ([]byte, error) {
	var plaintext []byte
	if int64(cap(opts.Dst)) >= layout.PlaintextSize {
		plaintext = opts.Dst[:layout.PlaintextSize]
	} else {
		plaintext = make([]byte, layout.PlaintextSize)
	}
	d.keys, d.plaintext, d.segSize, d.segments, d.headerLen = keys, plaintext, hdr.SegmentSize, layout.Segments, int64(hdr.Len())
	if d.body != nil {
		d.bodyLen = int64(len(d.body))
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if int64(workers) > layout.Segments {
		workers = int(layout.Segments)
	}
	if err := d.run(workers); err != nil {
		clear(plaintext[:cap(plaintext)])
		return nil, err
	}
	return plaintext, nil
}

// decryption is one parallel decryption of an envelope body, held in
// memory (body) or read from src.
type decryption struct {
	keys      *segmentKeys
	body      []byte
	src       io.ReaderAt
	bodyLen   int64
	plaintext []byte
	segSize   int
	segments  int64
	headerLen int64

	next   atomic.Int64 // next segment to claim
	failed atomic.Bool
	mu     sync.Mutex
	errSeg int64 // lowest failing segment seen
	err    error
}

func (d *decryption) run(workers int) error {
	if workers <= 1 {
		d.work()
		return d.err
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(d.work)
	}
	wg.Wait()
	return d.err
}

// work claims segments until none is left or one has failed. It allocates
// only its AEAD, nothing per segment.
func (d *decryption) work() {
	aead := d.keys.aead()
	nonce := new([nonceSize]byte)
	full := int64(d.segSize) + TagSize
	var buf []byte
	if d.src != nil {
		buf = make([]byte, full)
	}
	for !d.failed.Load() {
		i := d.next.Add(1) - 1
		if i >= d.segments {
			return
		}
		start := i * full
		end := min(start+full, d.bodyLen)
		out := i * int64(d.segSize)
		outEnd := out + (end - start - TagSize)
		var seg []byte
		var err error
		if d.src != nil {
			seg = buf[:end-start]
			if _, rerr := d.src.ReadAt(seg, d.headerLen+start); rerr != nil {
				err = fmt.Errorf("envelope: reading segment %d (bytes %d to %d): %w", i, d.headerLen+start, d.headerLen+end, rerr)
			}
		} else {
			seg = d.body[start:end]
		}
		if err == nil {
			err = openSegment(aead, d.keys, nonce, d.plaintext[out:out:outEnd], seg, uint64(i), i == d.segments-1, d.headerLen+start)
		}
		if err != nil {
			d.mu.Lock()
			if d.err == nil || i < d.errSeg {
				d.err, d.errSeg = err, i
			}
			d.mu.Unlock()
			d.failed.Store(true)
			return
		}
	}
}

// openSegment authenticates and decrypts segment i into dst (which has room
// for it). On failure it finds out, for the message, whether the segment
// would authenticate with the other value of the last-segment flag: then
// the envelope was cut at a segment boundary, or the segment was moved.
func openSegment(aead cipher.AEAD, k *segmentKeys, nonce *[nonceSize]byte, dst, seg []byte, i uint64, last bool, offset int64) error {
	if _, err := aead.Open(dst, k.nonce(nonce, i, last), seg, k.aad[:]); err == nil {
		return nil
	}
	if _, err := aead.Open(dst, k.nonce(nonce, i, !last), seg, k.aad[:]); err == nil {
		clear(dst[:cap(dst)])
		if last {
			return fmt.Errorf("%w: the file ends after segment %d (byte offset %d), which is not the last segment: data is missing",
				ErrTruncated, i, offset+int64(len(seg)))
		}
		return fmt.Errorf("%w: segment %d (byte offset %d) is the envelope's last segment but more data follows it: bytes were appended or segments moved",
			ErrAuthentication, i, offset)
	}
	return fmt.Errorf("%w: segment %d (bytes %d to %d) does not authenticate: the envelope was modified, reordered, spliced or cut inside a segment",
		ErrAuthentication, i, offset, offset+int64(len(seg)))
}

// overlap reports whether a and b share memory.
func overlap(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, b0 := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return a0 < b0+uintptr(len(b)) && b0 < a0+uintptr(len(a))
}
