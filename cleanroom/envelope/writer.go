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
	"runtime"
	"sync"
	"sync/atomic"
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
	// Background seals full segments in goroutines of the writer's (one
	// per core, at most maxSealers) while the caller fills the next one,
	// and hashes and writes them, in order, in another: a caller producing
	// the plaintext (reading, checking, encoding) then overlaps with the
	// encryption, the digest and the destination's writes. At most
	// sealers+2 segments are held. The output is the same bytes. An error
	// of the destination is then returned by a later Write or by Close
	// rather than by the Write that filled the segment. The caller must
	// end such a writer with Close or Abort, which stop the goroutines.
	Background bool
}

// maxSealers bounds the goroutines sealing a Background writer's
// segments.
const maxSealers = 4

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
	bg      *background // nil unless WriterOptions.Background
}

// background is the pipeline of a Background writer. The caller sends
// each full segment on work (to a sealer) and on order (to the emitter, in
// segment order); a sealer seals it and hands the ciphertext to the
// segment's sealed channel; the emitter takes the segments in order, waits
// for each to be sealed, hashes and writes it and returns its buffer on
// free. After the goroutines have ended (done closed), err and the
// writer's sum.Size are the caller's to read.
type background struct {
	work    chan *segmentJob
	order   chan *segmentJob
	free    chan []byte
	sealers sync.WaitGroup
	done    chan struct{}
	// failed is set when err is, so that the caller stops early.
	failed atomic.Bool
	err    error
}

type segmentJob struct {
	buf    []byte
	n      int
	seg    uint64
	last   bool
	sealed chan []byte // the ciphertext, sent once
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
	if opts.Background {
		sealers := max(1, min(runtime.GOMAXPROCS(0), maxSealers))
		buffers := sealers + 2
		bg := &background{
			work:  make(chan *segmentJob, buffers),
			order: make(chan *segmentJob, buffers),
			free:  make(chan []byte, buffers),
			done:  make(chan struct{}),
		}
		for range buffers - 1 {
			bg.free <- make([]byte, hdr.SegmentSize, hdr.SegmentSize+TagSize)
		}
		w.bg = bg
		bg.sealers.Add(sealers)
		for range sealers {
			go w.sealLoop()
		}
		go w.emitLoop()
	}
	return w, nil
}

// sealLoop is a sealing goroutine of a Background writer. After an error
// it hands the segments on unsealed.
func (w *Writer) sealLoop() {
	bg := w.bg
	defer bg.sealers.Done()
	aead := w.keys.aead()
	var nonce [nonceSize]byte
	for j := range bg.work {
		if bg.failed.Load() {
			j.sealed <- nil
			continue
		}
		j.sealed <- aead.Seal(j.buf[:0], w.keys.nonce(&nonce, j.seg, j.last), j.buf[:j.n], w.keys.aad[:])
	}
}

// emitLoop is the goroutine of a Background writer that hashes and writes
// the sealed segments in order. After an error it only hands the buffers
// back.
func (w *Writer) emitLoop() {
	bg := w.bg
	defer close(bg.done)
	for j := range bg.order {
		ct := <-j.sealed
		if bg.err == nil && ct != nil {
			if err := w.emitBytes(ct); err != nil {
				bg.err = err
				bg.failed.Store(true)
			}
		}
		if ct == nil {
			// Unsealed after an error: wipe the plaintext. A sealed
			// buffer holds only ciphertext (sealing is in place).
			clear(j.buf[:cap(j.buf)])
		}
		bg.free <- j.buf
	}
}

// submit hands the current segment to the sealers and the emitter and
// takes a free buffer for the next.
func (w *Writer) submit(last bool) error {
	if w.bg.failed.Load() {
		return w.stopBackground()
	}
	if w.seg >= MaxSegments {
		w.err = fmt.Errorf("envelope: the plaintext needs more than %d segments of %d bytes; use a larger segment size", uint64(MaxSegments), w.segSize)
		w.stopBackground()
		return w.err
	}
	j := &segmentJob{buf: w.buf, n: w.n, seg: w.seg, last: last, sealed: make(chan []byte, 1)}
	w.bg.order <- j
	w.bg.work <- j
	w.seg++
	w.n = 0
	w.buf = nil
	if !last {
		w.buf = <-w.bg.free
	}
	return nil
}

// stopBackground ends a Background writer's goroutines, once, waits for
// them and returns the writer's sticky error (the emitter's, if it
// failed).
func (w *Writer) stopBackground() error {
	if w.bg == nil {
		return w.err
	}
	close(w.bg.work)
	close(w.bg.order)
	w.bg.sealers.Wait()
	<-w.bg.done
	if w.bg.err != nil && w.err == nil {
		w.err = w.bg.err
	}
	w.bg = nil
	return w.err
}

// Abort ends a writer without finishing the envelope (what was written is
// a truncated envelope that every decoder rejects): it stops a Background
// writer's goroutines and wipes the keys. Later calls return an error.
// Abort after Close does nothing.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.stopBackground()
	w.closed = true
	if w.err == nil {
		w.err = errAborted
	}
	w.keys.wipe()
	if w.buf != nil {
		clear(w.buf[:cap(w.buf)])
	}
}

var errAborted = errors.New("envelope: write after Abort")

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
			var err error
			if w.bg != nil {
				err = w.submit(false)
			} else {
				err = w.seal(false)
			}
			if err != nil {
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
		w.stopBackground()
		return w.err
	}
	if w.closed {
		return nil
	}
	var err error
	if w.bg != nil {
		if err = w.submit(true); err == nil {
			err = w.stopBackground()
		}
	} else {
		err = w.seal(true)
	}
	w.closed = true
	w.keys.wipe()
	if w.buf != nil {
		clear(w.buf[:cap(w.buf)])
	}
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
	if err := w.emitBytes(b); err != nil {
		w.err = err
		return err
	}
	return nil
}

// emitBytes hashes and writes b; it is emit without the sticky error, for
// the sealing goroutine.
func (w *Writer) emitBytes(b []byte) error {
	if w.hash != nil {
		w.hash.Write(b)
	}
	if _, err := w.dst.Write(b); err != nil {
		return fmt.Errorf("envelope: writing: %w", err)
	}
	w.sum.Size += int64(len(b))
	return nil
}
