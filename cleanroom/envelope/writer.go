package envelope

import (
	"crypto/cipher"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Summary describes an envelope that a Writer finished.
type Summary struct {
	// Header is the header as written, with its recipient stanzas.
	Header *Header
	// PlaintextSize is the number of plaintext bytes sealed.
	PlaintextSize int64
	// Size is the number of envelope bytes written (header and segments).
	Size int64
	// Segments is the number of segments written.
	Segments int64
	// SHA256 is the SHA-256 of all envelope bytes written: the ciphertext
	// digest that upload and result statements name. It is zero when the
	// writer was made with WriterOptions.NoDigest.
	SHA256 [32]byte
}

// WriterOptions adjust NewWriterWithOptions. The zero value is NewWriter's
// behaviour.
type WriterOptions struct {
	// NoDigest skips hashing the envelope as it is written, for a caller
	// that hashes the destination itself (the coordinator's blob store
	// names each blob by its SHA-256): Summary.SHA256 is then zero.
	NoDigest bool
}

// Writer encrypts a stream into an envelope. It holds one segment of
// plaintext at a time, so memory stays at about the segment size whatever
// the stream's length. Nothing is written in the clear: the header, then
// each segment sealed as soon as the writer knows it is not the last one.
// Close seals the last segment; an envelope whose writer was not closed is
// rejected by every decoder as truncated.
type Writer struct {
	dst     io.Writer
	hash    hash.Hash
	keys    *segmentKeys
	aead    cipher.AEAD
	nonce   [nonceSize]byte
	buf     []byte // plaintext of the current segment, capacity segSize+TagSize
	n       int    // plaintext bytes in buf
	segSize int
	seg     uint64 // index of the current segment
	sum     Summary
	err     error // sticky: after an error every call returns it
	closed  bool
}

var errClosed = errors.New("envelope: write after Close")

// NewWriter writes the header of a new envelope to dst and returns a Writer
// for its plaintext. hdr gives Kind, ContractID, ObjectID, SchemaDigest and
// SegmentSize (zero means DefaultSegmentSize); the writer draws a fresh
// random data key and salt from crypto/rand and wraps the data key with HPKE
// to each recipient (ML-KEM-768+X25519 keys, at most MaxRecipients, each
// once). The recipients' order is kept in the header.
func NewWriter(dst io.Writer, hdr Header, recipients []hpke.PublicKey) (*Writer, error) {
	return newWriter(dst, hdr, recipients, rand.Reader, WriterOptions{})
}

// NewWriterWithOptions is NewWriter with options.
func NewWriterWithOptions(dst io.Writer, hdr Header, recipients []hpke.PublicKey, opts WriterOptions) (*Writer, error) {
	return newWriter(dst, hdr, recipients, rand.Reader, opts)
}

// newWriter is NewWriterWithOptions with the source of the data key and
// salt given, so that test vectors can be made deterministic. HPKE's own
// randomness always comes from crypto/rand.
func newWriter(dst io.Writer, hdr Header, recipients []hpke.PublicKey, random io.Reader, opts WriterOptions) (*Writer, error) {
	if hdr.SegmentSize == 0 {
		hdr.SegmentSize = DefaultSegmentSize
	}
	if err := hdr.checkDescription(); err != nil {
		return nil, err
	}
	if hdr.Recipients != nil {
		return nil, errors.New("envelope: Header.Recipients is filled in by NewWriter; pass the recipients' keys instead")
	}
	if len(recipients) == 0 || len(recipients) > MaxRecipients {
		return nil, fmt.Errorf("envelope: %d recipients given; an envelope has 1 to %d", len(recipients), MaxRecipients)
	}
	dataKey := make([]byte, dataKeySize)
	defer clear(dataKey)
	if _, err := io.ReadFull(random, dataKey); err != nil {
		return nil, fmt.Errorf("envelope: drawing the data key: %w", err)
	}
	if _, err := io.ReadFull(random, hdr.Salt[:]); err != nil {
		return nil, fmt.Errorf("envelope: drawing the salt: %w", err)
	}
	hdr.Version = Version
	hdr.raw = hdr.appendPreamble(make([]byte, 0, fixedPreambleLen+len(hdr.ObjectID)+2+len(recipients)*stanzaSize))
	hdr.preambleLen = len(hdr.raw)
	stanzas, err := wrapKey(&hdr, dataKey, recipients)
	if err != nil {
		return nil, err
	}
	hdr.Recipients = stanzas
	hdr.raw = appendStanzas(hdr.raw, stanzas)

	return startWriter(dst, &hdr, dataKey, opts)
}

// startWriter writes the complete header hdr to dst and returns a Writer
// that seals segments under dataKey.
func startWriter(dst io.Writer, hdr *Header, dataKey []byte, opts WriterOptions) (*Writer, error) {
	keys, err := deriveSegmentKeys(dataKey, hdr)
	if err != nil {
		return nil, err
	}
	var h hash.Hash
	if !opts.NoDigest {
		h = sha256.New()
	}
	w := &Writer{
		dst:     dst,
		hash:    h,
		keys:    keys,
		aead:    keys.aead(),
		buf:     make([]byte, hdr.SegmentSize, hdr.SegmentSize+TagSize),
		segSize: hdr.SegmentSize,
		sum:     Summary{Header: hdr},
	}
	if err := w.emit(hdr.raw); err != nil {
		keys.wipe()
		return nil, err
	}
	return w, nil
}

// Write encrypts p. It returns len(p) unless writing to the destination
// failed; after an error the Writer refuses all further calls.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errClosed
	}
	written := 0
	for len(p) > 0 {
		if w.n == w.segSize {
			// More data follows a full segment: it is not the last.
			if err := w.seal(false); err != nil {
				return written, err
			}
		}
		k := copy(w.buf[w.n:w.segSize], p)
		w.n += k
		p = p[k:]
		written += k
		w.sum.PlaintextSize += int64(k)
	}
	return written, nil
}

// Close seals the last segment (empty if nothing was written) and wipes the
// writer's keys. It does not close the destination.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	err := w.seal(true)
	w.closed = true
	w.keys.wipe()
	clear(w.buf[:cap(w.buf)])
	if err != nil {
		return err
	}
	w.sum.Segments = int64(w.seg)
	if w.hash != nil {
		w.hash.Sum(w.sum.SHA256[:0])
	}
	return nil
}

// Summary returns the sizes and the SHA-256 of the envelope. It fails unless
// Close returned nil.
func (w *Writer) Summary() (Summary, error) {
	if w.err != nil {
		return Summary{}, w.err
	}
	if !w.closed {
		return Summary{}, errors.New("envelope: Summary called before Close")
	}
	return w.sum, nil
}

// seal encrypts the buffered plaintext as segment w.seg in place and writes
// it.
func (w *Writer) seal(last bool) error {
	if w.seg >= MaxSegments {
		w.err = fmt.Errorf("envelope: the plaintext needs more than %d segments of %d bytes; use a larger segment size", uint64(MaxSegments), w.segSize)
		return w.err
	}
	ct := w.aead.Seal(w.buf[:0], w.keys.nonce(&w.nonce, w.seg, last), w.buf[:w.n], w.keys.aad[:])
	if err := w.emit(ct); err != nil {
		w.keys.wipe()
		return err
	}
	w.seg++
	w.n = 0
	return nil
}

func (w *Writer) emit(b []byte) error {
	if w.hash != nil {
		w.hash.Write(b)
	}
	if _, err := w.dst.Write(b); err != nil {
		w.err = fmt.Errorf("envelope: writing: %w", err)
		return w.err
	}
	w.sum.Size += int64(len(b))
	return nil
}
