package stored

import (
	"bytes"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"

	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/coordinator/internal/arrowipc"
)

// ErrOldLayout is a stored envelope whose plaintext is not in this
// package's layout: one stored before runs decrypted on demand, whose
// plaintext is a single Arrow IPC stream.
var ErrOldLayout = errors.New("the stored envelope predates the block layout of stored datasets (its plaintext does not end with a block index); the provider must upload the dataset again")

// Alloc allocates a buffer of size bytes for decrypted data, and the
// function that frees it.
type Alloc func(size int64) ([]byte, func(), error)

// Buffers is the pool of buffers that the datasets of one run decrypt
// their blocks into: a block read takes a free buffer or allocates one, and
// its release hands the buffer back for the next block of any of the
// datasets, so that a run holds as many buffers as it has blocks in use at
// once, not as many per dataset. Every buffer is as large as the largest
// block of the datasets opened with the pool (so that any free buffer fits
// any block); one allocated before a dataset with larger blocks was opened
// is wiped and freed instead of being reused. Close wipes and frees them
// all. A Buffers is safe for concurrent use.
type Buffers struct {
	alloc Alloc

	mu     sync.Mutex
	size   int64     // the size of the buffers allocated from now on
	free   []*buffer // not in use
	all    []*buffer
	peak   int64 // the most bytes allocated at once
	closed bool
}

// buffer is a plaintext buffer of the pool, with the ciphertext buffer of
// one segment its reads use (ciphertext is read and authenticated one
// segment at a time, so that no block-sized ciphertext buffer is held).
type buffer struct {
	b    []byte
	free func()
	ct   []byte
	used int64 // b[:used] is all that reads have written, for wiping
}

// NewBuffers returns an empty pool whose buffers alloc allocates.
func NewBuffers(alloc Alloc) *Buffers { return &Buffers{alloc: alloc} }

// reserve makes the buffers allocated from now on at least size bytes.
func (p *Buffers) reserve(size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.size = max(p.size, size)
}

// get returns a free buffer of at least size bytes, or allocates one.
func (p *Buffers) get(size int64) (*buffer, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("reading a block after the run's buffers were closed")
	}
	var small []*buffer
	for len(p.free) > 0 {
		b := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		if int64(len(b.b)) >= size {
			p.mu.Unlock()
			p.drop(small)
			return b, nil
		}
		small = append(small, b)
	}
	size = max(size, p.size)
	p.mu.Unlock()
	p.drop(small)
	plain, free, err := p.alloc(size)
	if err != nil {
		return nil, err
	}
	b := &buffer{b: plain, free: free, ct: make([]byte, SegmentSize+envelope.TagSize)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		free()
		return nil, errors.New("reading a block after the run's buffers were closed")
	}
	p.all = append(p.all, b)
	p.peak = max(p.peak, p.bytesLocked())
	return b, nil
}

// drop wipes and frees buffers taken out of the free list.
func (p *Buffers) drop(bs []*buffer) {
	if len(bs) == 0 {
		return
	}
	for _, b := range bs {
		clear(b.b[:b.used])
		b.free()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = slices.DeleteFunc(p.all, func(b *buffer) bool { return slices.Contains(bs, b) })
}

// put hands back b, of which a read wrote b.b[:n].
func (p *Buffers) put(b *buffer, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		b.used = max(b.used, n)
		p.free = append(p.free, b)
	}
}

func (p *Buffers) bytesLocked() int64 {
	var n int64
	for _, b := range p.all {
		n += int64(len(b.b))
	}
	return n
}

// Allocated returns the number and the bytes of the buffers allocated
// now, and the most bytes allocated at once.
func (p *Buffers) Allocated() (n int, bytes, peak int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.all), p.bytesLocked(), p.peak
}

// Close wipes and frees every buffer. Nothing may use the batches of a
// block read into them afterwards; reads after Close fail.
func (p *Buffers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, b := range p.all {
		if slices.Contains(p.free, b) {
			clear(b.b[:b.used])
		} else {
			clear(b.b) // in use: all of it
		}
		b.free()
	}
	p.all, p.free = nil, nil
}

// Dataset is a stored dataset opened for a run: its header checked, its
// data key unwrapped, its index read and authenticated. Its blocks are
// read with ReadBlock, by any number of goroutines at once, into buffers
// of the run's Buffers.
type Dataset struct {
	what   string // "dataset ID", for errors
	schema *arrow.Schema
	segs   *envelope.Segments
	blocks []block
	rows   int64
	bufs   *Buffers
}

// Open opens the stored envelope of size bytes in r for dataset id with
// schema: it parses the header and refuses it unless it matches want and
// check accepts it (the caller compares its digest with the log), unwraps
// the data key with key, then reads, authenticates and checks the index.
// Its blocks are read into buffers of bufs, which must outlive it.
// Errors name the dataset.
func Open(r io.ReaderAt, size int64, key hpke.PrivateKey, want envelope.Expect, check func(*envelope.Header) error,
	schema *arrow.Schema, bufs *Buffers) (*Dataset, error) {
	what := "dataset " + want.ObjectID
	segs, err := envelope.OpenSegments(r, size, key, want)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ok := false
	defer func() {
		if !ok {
			segs.Close()
		}
	}()
	if check != nil {
		if err := check(segs.Header()); err != nil {
			return nil, err
		}
	}
	if int(segs.Header().SegmentSize) != SegmentSize {
		// Authenticated, so written by a coordinator, which writes no
		// other size.
		return nil, fmt.Errorf("%s: the stored envelope's segments are %d bytes, not %d", what, segs.Header().SegmentSize, SegmentSize)
	}
	d := &Dataset{what: what, schema: schema, segs: segs, bufs: bufs}
	if err := d.readIndex(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var largest int64
	for _, b := range d.blocks {
		largest = max(largest, b.count)
	}
	bufs.reserve(largest * SegmentSize)
	ok = true
	return d, nil
}

// readIndex reads the trailer, then the index.
func (d *Dataset) readIndex() error {
	layout := d.segs.Layout()
	segSize := int64(d.segs.Header().SegmentSize)
	p := layout.PlaintextSize
	if p < trailerLen {
		return ErrOldLayout
	}
	// The segments that hold the trailer.
	first := (p - trailerLen) / segSize
	tail, err := d.readPlain(first, layout.Segments-first)
	if err != nil {
		return err
	}
	tr := tail[len(tail)-trailerLen:]
	if !bytes.Equal(tr[8:], trailerMagic[:]) {
		// Authenticated, so written by a coordinator: one that stored
		// the Arrow stream as it was.
		return ErrOldLayout
	}
	n := binary.LittleEndian.Uint64(tr)
	if n > uint64(p-trailerLen) {
		return fmt.Errorf("the block index claims %d bytes of a %d-byte plaintext", n, p)
	}
	start := p - trailerLen - int64(n)
	if start%segSize != 0 {
		return fmt.Errorf("the block index starts at byte %d, not at a segment boundary", start)
	}
	indexFirst := start / segSize
	var idx []byte
	if indexFirst >= first {
		idx = tail[(indexFirst-first)*segSize : int64(len(tail))-trailerLen]
	} else {
		all, err := d.readPlain(indexFirst, layout.Segments-indexFirst)
		if err != nil {
			return err
		}
		idx = all[:int64(len(all))-trailerLen]
	}
	d.blocks, d.rows, err = parseIndex(idx, int(segSize), indexFirst)
	return err
}

// readPlain reads, authenticates and decrypts segments [first, first+n)
// into a new buffer in the Go heap (the index: no rows).
func (d *Dataset) readPlain(first, n int64) ([]byte, error) {
	dst := make([]byte, n*int64(d.segs.Header().SegmentSize))
	out, _, err := d.segs.Read(dst, nil, first, n)
	return out, err
}

// Rows returns the dataset's row count, as its index records it.
func (d *Dataset) Rows() int64 { return d.rows }

// Blocks returns the number of blocks.
func (d *Dataset) Blocks() int { return len(d.blocks) }

// ReadBlock reads block i from the file afresh, authenticates and decrypts
// its segments, one at a time, into a buffer of the run's Buffers, and
// decodes the Arrow IPC stream it holds into record batches that point
// into that buffer. release hands the buffer back; the batches must not be
// used after it. Any failure — a segment that does not authenticate, a
// stream that does not decode or does not hold the rows the index records
// — is an error naming the dataset and the block.
func (d *Dataset) ReadBlock(i int) (recs []arrow.RecordBatch, release func(), err error) {
	if i < 0 || i >= len(d.blocks) {
		return nil, nil, fmt.Errorf("%s: no block %d", d.what, i)
	}
	b := d.blocks[i]
	buf, err := d.bufs.get(b.count * SegmentSize)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", d.what, err)
	}
	var n int64
	release = func() { d.bufs.put(buf, n) }
	for k := range b.count {
		plain, _, err := d.segs.Read(buf.b[n:], buf.ct, b.first+k, 1)
		if err != nil {
			clear(buf.b[:n])
			n = 0
			release()
			return nil, nil, fmt.Errorf("%s, block %d: %w", d.what, i, err)
		}
		n += int64(len(plain))
	}
	if n < b.length {
		release()
		return nil, nil, fmt.Errorf("%s, block %d: its segments hold %d bytes, the index records %d", d.what, i, n, b.length)
	}
	recs, rows, err := arrowipc.Decode(buf.b[:b.length], d.schema, fmt.Sprintf("%s, block %d", d.what, i))
	if err != nil {
		release()
		return nil, nil, err
	}
	if rows != b.rows {
		for _, r := range recs {
			r.Release()
		}
		release()
		return nil, nil, fmt.Errorf("%s, block %d: holds %d rows, the index records %d", d.what, i, rows, b.rows)
	}
	return recs, release, nil
}

// Close wipes the payload key. The blocks' buffers are the run's Buffers'
// to wipe and free.
func (d *Dataset) Close() {
	d.segs.Close()
}
