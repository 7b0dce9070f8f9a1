// Package stored is the layout of the plaintext inside the envelope the
// coordinator stores for a dataset (docs/envelope.md, "Stored envelopes"):
// blocks that each hold a whole Arrow IPC stream and start at a segment
// boundary, then an index of the blocks, so that a run can read, decrypt,
// authenticate and decode any block on its own, in parallel, at every scan,
// without a decrypted copy of the dataset.
//
// Writer lays out an upload's record batches as they arrive; Open opens a
// stored envelope for a run and reads its index; Dataset.ReadBlock reads
// one block. The envelope is a version 1 envelope; only its plaintext is
// this package's.
package stored

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// SegmentSize is the segment size of stored envelopes.
const SegmentSize = 512 << 10

// BlockTarget is the plaintext size a block is filled to before the next
// one starts: a block holds this much Arrow data or a little more (a
// block always ends after a whole batch), rounded up to whole segments.
// A run holds the blocks its scan threads are reading, up to two per
// thread (the last window of a block can still be in DuckDB's pipeline
// when its thread takes the next block), so the block size is memory a run
// holds beyond plain DuckDB's (docs/performance.md §2: 2 MiB against the
// earlier 4 MiB cut a run's peak by 7–10 MiB at no measured CPU cost).
// Envelopes stored with another target read all the same: the index
// records every block's length.
const BlockTarget = 2 << 20

// Index layout (all integers little-endian, like Arrow's):
//
//	index   = "CRSTIDX1" ‖ u64 block count m ‖ u64 total rows ‖ m × entry
//	entry   = u64 stream length ‖ u64 rows
//	trailer = u64 index length ‖ "CRSTEND1"
//
// The index starts at a segment boundary, right after the last block's
// last segment, and the trailer ends the plaintext.
var (
	indexMagic   = [8]byte{'C', 'R', 'S', 'T', 'I', 'D', 'X', '1'}
	trailerMagic = [8]byte{'C', 'R', 'S', 'T', 'E', 'N', 'D', '1'}
)

const (
	indexHeaderLen = 24
	entryLen       = 16
	trailerLen     = 16
	// maxBlocks bounds the index a reader accepts: 2^24 blocks of at
	// least one segment each.
	maxBlocks = 1 << 24
)

// block is one entry of the index.
type block struct {
	length int64 // bytes of its Arrow IPC stream
	rows   int64
	first  int64 // its first segment
	count  int64 // its segments
}

// Writer lays out record batches of one schema as a stored dataset's
// plaintext, written to w (the stored envelope's writer) as it is encoded:
// a block's stream is not buffered, only counted, and padded when it ends.
type Writer struct {
	w       io.Writer
	schema  *arrow.Schema
	segSize int
	target  int

	block  countingWriter // the current block's Arrow IPC stream, to w
	ipcw   *ipc.Writer
	rows   int64 // rows in the current block
	blocks []block
	total  int64
	next   int64 // the next block's first segment
	err    error
}

// NewWriter starts a stored dataset of the given schema.
func NewWriter(w io.Writer, schema *arrow.Schema) *Writer {
	return &Writer{w: w, schema: schema, segSize: SegmentSize, target: BlockTarget}
}

// Write adds the rows of rec, whose schema must be the Writer's. A batch
// larger than a block is cut into slices that each fill about one.
func (w *Writer) Write(rec arrow.RecordBatch) error {
	if w.err != nil {
		return w.err
	}
	if !rec.Schema().Equal(w.schema) {
		return fmt.Errorf("stored: batch schema %s is not the dataset's %s", rec.Schema(), w.schema)
	}
	n := rec.NumRows()
	if n == 0 {
		return nil
	}
	size := batchBytes(rec)
	per := n
	if size > int64(w.target) {
		per = max(1, n*int64(w.target)/size)
	}
	for off := int64(0); off < n; off += per {
		part := rec
		if off != 0 || per < n {
			part = rec.NewSlice(off, min(off+per, n))
		}
		err := w.add(part)
		if part != rec {
			part.Release()
		}
		if err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

func (w *Writer) add(rec arrow.RecordBatch) error {
	if w.ipcw == nil {
		w.block = countingWriter{w: w.w}
		w.ipcw = ipc.NewWriter(&w.block, ipc.WithSchema(w.schema))
	}
	if err := w.ipcw.Write(rec); err != nil {
		return fmt.Errorf("stored: encoding a batch: %w", err)
	}
	w.rows += rec.NumRows()
	if w.block.n >= int64(w.target) {
		return w.flush()
	}
	return nil
}

// flush ends the current block: its stream, then zero bytes to the end of
// its last segment.
func (w *Writer) flush() error {
	if w.ipcw == nil {
		return nil
	}
	if err := w.ipcw.Close(); err != nil {
		return fmt.Errorf("stored: ending a block: %w", err)
	}
	w.ipcw = nil
	length := w.block.n
	count := (length + int64(w.segSize) - 1) / int64(w.segSize)
	for pad := count*int64(w.segSize) - length; pad > 0; {
		k := min(pad, int64(len(zeros)))
		if _, err := w.w.Write(zeros[:k]); err != nil {
			return err
		}
		pad -= k
	}
	w.blocks = append(w.blocks, block{length: length, rows: w.rows, first: w.next, count: count})
	w.total += w.rows
	w.next += count
	w.rows = 0
	return nil
}

// zeros pads blocks.
var zeros [64 << 10]byte

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Close ends the last block and writes the index and the trailer. It does
// not close the underlying writer. It returns the rows written.
func (w *Writer) Close() (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.flush(); err != nil {
		w.err = err
		return 0, err
	}
	idx := make([]byte, 0, indexHeaderLen+entryLen*len(w.blocks)+trailerLen)
	idx = append(idx, indexMagic[:]...)
	idx = binary.LittleEndian.AppendUint64(idx, uint64(len(w.blocks)))
	idx = binary.LittleEndian.AppendUint64(idx, uint64(w.total))
	for _, b := range w.blocks {
		idx = binary.LittleEndian.AppendUint64(idx, uint64(b.length))
		idx = binary.LittleEndian.AppendUint64(idx, uint64(b.rows))
	}
	n := len(idx)
	idx = binary.LittleEndian.AppendUint64(idx, uint64(n))
	idx = append(idx, trailerMagic[:]...)
	if _, err := w.w.Write(idx); err != nil {
		w.err = err
		return 0, err
	}
	w.err = errors.New("stored: write after Close")
	return w.total, nil
}

// batchBytes is the size of a batch's buffers, as sliced.
func batchBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, c := range rec.Columns() {
		for _, b := range c.Data().Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
	}
	return n
}

// parseIndex parses and checks an index (without its trailer) for a
// plaintext whose index starts at segment indexFirst.
func parseIndex(idx []byte, segSize int, indexFirst int64) ([]block, int64, error) {
	if len(idx) < indexHeaderLen || !bytes.Equal(idx[:8], indexMagic[:]) {
		return nil, 0, errors.New("the block index does not start with its magic")
	}
	m := binary.LittleEndian.Uint64(idx[8:])
	total := binary.LittleEndian.Uint64(idx[16:])
	if m > maxBlocks || uint64(len(idx)) != indexHeaderLen+entryLen*m {
		return nil, 0, fmt.Errorf("the block index of %d bytes does not hold %d blocks", len(idx), m)
	}
	blocks := make([]block, m)
	var next int64
	var rows uint64
	for i := range blocks {
		e := idx[indexHeaderLen+entryLen*i:]
		length, r := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint64(e[8:])
		if length == 0 || length > 1<<40 || r == 0 || r > 1<<40 {
			return nil, 0, fmt.Errorf("block %d of the index has %d bytes and %d rows", i, length, r)
		}
		count := (int64(length) + int64(segSize) - 1) / int64(segSize)
		blocks[i] = block{length: int64(length), rows: int64(r), first: next, count: count}
		next += count
		rows += r
	}
	if next != indexFirst {
		return nil, 0, fmt.Errorf("the index's blocks end at segment %d, the index starts at segment %d", next, indexFirst)
	}
	if rows != total || total > 1<<62 {
		return nil, 0, fmt.Errorf("the index's blocks hold %d rows, its total says %d", rows, total)
	}
	return blocks, int64(total), nil
}
