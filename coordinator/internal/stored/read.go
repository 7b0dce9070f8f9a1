package stored

import (
	"bytes"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

// Dataset is a stored dataset opened for a run: its header checked, its
// data key unwrapped, its index read and authenticated. Its blocks are
// read with ReadBlock, by any number of goroutines at once.
type Dataset struct {
	what   string // "dataset ID", for errors
	schema *arrow.Schema
	segs   *envelope.Segments
	blocks []block
	rows   int64
	alloc  Alloc

	mu     sync.Mutex
	free   []buffer // plaintext buffers not in use
	all    []buffer
	closed bool
	cts    sync.Pool // ciphertext buffers (*[]byte)
}

type buffer struct {
	b    []byte
	free func()
}

// Open opens the stored envelope of size bytes in r for dataset id with
// schema: it parses the header and refuses it unless it matches want and
// check accepts it (the caller compares its digest with the log), unwraps
// the data key with key, then reads, authenticates and checks the index.
// Errors name the dataset.
func Open(r io.ReaderAt, size int64, key hpke.PrivateKey, want envelope.Expect, check func(*envelope.Header) error,
	schema *arrow.Schema, alloc Alloc) (*Dataset, error) {
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
	d := &Dataset{what: what, schema: schema, segs: segs, alloc: alloc}
	if err := d.readIndex(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
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
// its segments into a buffer of its own, and decodes the Arrow IPC stream
// it holds into record batches that point into that buffer. release hands
// the buffer back; the batches must not be used after it. Any failure —
// a segment that does not authenticate, a stream that does not decode or
// does not hold the rows the index records — is an error naming the
// dataset and the block.
func (d *Dataset) ReadBlock(i int) (recs []arrow.RecordBatch, release func(), err error) {
	if i < 0 || i >= len(d.blocks) {
		return nil, nil, fmt.Errorf("%s: no block %d", d.what, i)
	}
	b := d.blocks[i]
	segSize := int64(d.segs.Header().SegmentSize)
	buf, err := d.get(b.count * segSize)
	if err != nil {
		return nil, nil, err
	}
	release = func() { d.put(buf) }
	ctp, _ := d.cts.Get().(*[]byte)
	if ctp == nil {
		ctp = new([]byte)
	}
	plain, ct, err := d.segs.Read(buf.b, *ctp, b.first, b.count)
	*ctp = ct
	d.cts.Put(ctp)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("%s, block %d: %w", d.what, i, err)
	}
	recs, rows, err := arrowipc.Decode(plain[:b.length], d.schema, fmt.Sprintf("%s, block %d", d.what, i))
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

// get returns a free buffer of at least size bytes, or allocates one.
func (d *Dataset) get(size int64) (buffer, error) {
	d.mu.Lock()
	for j := len(d.free) - 1; j >= 0; j-- {
		if int64(cap(d.free[j].b)) >= size {
			b := d.free[j]
			d.free = append(d.free[:j], d.free[j+1:]...)
			d.mu.Unlock()
			return b, nil
		}
	}
	d.mu.Unlock()
	b, free, err := d.alloc(size)
	if err != nil {
		return buffer{}, fmt.Errorf("%s: %w", d.what, err)
	}
	buf := buffer{b: b, free: free}
	d.mu.Lock()
	d.all = append(d.all, buf)
	d.mu.Unlock()
	return buf, nil
}

func (d *Dataset) put(b buffer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.free = append(d.free, b)
}

// Close wipes and frees the buffers and the payload key. Nothing may use
// the dataset's batches afterwards.
func (d *Dataset) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	for _, b := range d.all {
		clear(b.b[:cap(b.b)])
		b.free()
	}
	d.all, d.free = nil, nil
	d.segs.Close()
}
