package arrowipc

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The Arrow decoder trusts the flatbuffer metadata of each IPC message: a
// vector's length sizes an allocation before any bounds check (a schema
// claiming billions of fields ends the process with "out of memory", which
// no recover catches), a compressed buffer's claimed size is allocated
// before it is decompressed, and nested fields are followed recursively.
// checkIPCMetadata reads the few places where that happens, with every
// offset bounds-checked, and refuses what a dataset stream never holds:
// only schema and record batch messages, flat fields without dictionaries,
// uncompressed bodies, and vectors that fit in the metadata.
func checkIPCMetadata(meta []byte) error {
	fb := flatbuf(meta)
	msg, err := fb.root()
	if err != nil {
		return err
	}
	if err := fb.vector(msg, 4, 4, "message custom_metadata"); err != nil { // Message.custom_metadata
		return err
	}
	kind, err := fb.uint8Field(msg, 1) // Message.header_type
	if err != nil {
		return err
	}
	header, ok, err := fb.table(msg, 2) // Message.header
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("Arrow message has no header")
	}
	switch kind {
	case 1: // Schema
		if err := fb.vector(header, 2, 4, "schema custom_metadata"); err != nil {
			return err
		}
		if err := fb.vector(header, 3, 8, "schema features"); err != nil {
			return err
		}
		n, pos, err := fb.vectorAt(header, 1, 4, "schema fields")
		if err != nil {
			return err
		}
		for i := range n {
			field, err := fb.deref(pos+4*i, "schema field")
			if err != nil {
				return err
			}
			if _, ok, err := fb.table(field, 4); err != nil || ok { // Field.dictionary
				return fieldErr(i, err, "is dictionary-encoded")
			}
			if m, _, err := fb.vectorAt(field, 5, 4, "field children"); err != nil || m > 0 { // Field.children
				return fieldErr(i, err, "has nested fields")
			}
			if err := fb.vector(field, 6, 4, "field custom_metadata"); err != nil {
				return fieldErr(i, err, "")
			}
		}
	case 3: // RecordBatch
		if _, ok, err := fb.table(header, 3); err != nil || ok { // RecordBatch.compression
			if err != nil {
				return err
			}
			return fmt.Errorf("Arrow record batch is compressed; dataset streams are not")
		}
		for _, v := range []struct {
			slot, size int
			what       string
		}{{1, 16, "record batch nodes"}, {2, 16, "record batch buffers"}, {4, 8, "record batch variadic buffer counts"}} {
			if err := fb.vector(header, v.slot, v.size, v.what); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("Arrow message of type %d: a dataset stream holds only a schema and record batches", kind)
	}
	return nil
}

func fieldErr(i int, err error, what string) error {
	if err != nil {
		return fmt.Errorf("Arrow schema field %d: %w", i, err)
	}
	return fmt.Errorf("Arrow schema field %d %s; dataset columns are flat", i, what)
}

// flatbuf reads a flatbuffer with every read bounds-checked.
type flatbuf []byte

func (b flatbuf) u32(pos int) (uint32, error) {
	if pos < 0 || pos > len(b)-4 {
		return 0, fmt.Errorf("Arrow metadata: offset %d is outside its %d bytes", pos, len(b))
	}
	return binary.LittleEndian.Uint32(b[pos:]), nil
}

func (b flatbuf) u16(pos int) (uint16, error) {
	if pos < 0 || pos > len(b)-2 {
		return 0, fmt.Errorf("Arrow metadata: offset %d is outside its %d bytes", pos, len(b))
	}
	return binary.LittleEndian.Uint16(b[pos:]), nil
}

func (b flatbuf) root() (int, error) { return b.deref(0, "root table") }

// deref follows the unsigned offset stored at pos.
func (b flatbuf) deref(pos int, what string) (int, error) {
	off, err := b.u32(pos)
	if err != nil {
		return 0, err
	}
	target := int64(pos) + int64(off)
	if target >= int64(len(b)) {
		return 0, fmt.Errorf("Arrow metadata: %s at offset %d points outside its %d bytes", what, pos, len(b))
	}
	return int(target), nil
}

// field returns the position of a table's field slot, or 0 when absent.
func (b flatbuf) field(table, slot int) (int, error) {
	soff, err := b.u32(table)
	if err != nil {
		return 0, err
	}
	vt := int64(table) - int64(int32(soff))
	if vt < 0 || vt > int64(len(b))-4 {
		return 0, fmt.Errorf("Arrow metadata: vtable of the table at %d is outside the metadata", table)
	}
	vtLen, _ := b.u16(int(vt))
	voff := 4 + 2*slot
	if voff+2 > int(vtLen) {
		return 0, nil
	}
	o, err := b.u16(int(vt) + voff)
	if err != nil || o == 0 {
		return 0, err
	}
	return table + int(o), nil
}

func (b flatbuf) uint8Field(table, slot int) (uint8, error) {
	pos, err := b.field(table, slot)
	if err != nil || pos == 0 {
		return 0, err
	}
	if pos >= len(b) {
		return 0, fmt.Errorf("Arrow metadata: field at %d is outside the metadata", pos)
	}
	return b[pos], nil
}

func (b flatbuf) table(table, slot int) (int, bool, error) {
	pos, err := b.field(table, slot)
	if err != nil || pos == 0 {
		return 0, false, err
	}
	t, err := b.deref(pos, "table")
	return t, err == nil, err
}

// vectorAt returns the length and the position of the first element of a
// vector field whose elements have size bytes, checking they all fit.
func (b flatbuf) vectorAt(table, slot, size int, what string) (int, int, error) {
	pos, err := b.field(table, slot)
	if err != nil || pos == 0 {
		return 0, 0, err
	}
	v, err := b.deref(pos, what)
	if err != nil {
		return 0, 0, err
	}
	n, err := b.u32(v)
	if err != nil {
		return 0, 0, err
	}
	if int64(v)+4+int64(n)*int64(size) > int64(len(b)) {
		return 0, 0, fmt.Errorf("Arrow metadata: %s claims %d entries, more than its %d bytes hold", what, n, len(b))
	}
	return int(n), v + 4, nil
}

func (b flatbuf) vector(table, slot, size int, what string) error {
	_, _, err := b.vectorAt(table, slot, size, what)
	return err
}

// checkedReader is an ipc.MessageReader over a stream (an upload being
// verified): it checks each message's metadata with checkIPCMetadata
// before the Arrow decoder sees it, and holds a message body only as it
// arrives, never allocating a length the stream merely claims.
//
// Message bodies are read into one buffer, reused from message to message
// and grown only as bytes arrive (to at most twice what has arrived): a
// message, and every batch decoded from it, is valid only until the next
// call to Message. ipc.Reader releases its batch before it reads the next
// message, and Each hands a batch out only until its fn returns.
type checkedReader struct {
	r       io.Reader
	off     int64
	refs    atomic.Int64
	msg     *ipc.Message
	maxMeta int
	maxBody int64
	prefix  [8]byte
	body    []byte // the reused body buffer
}

func newCheckedReader(r io.Reader, maxMeta int, maxBody int64) *checkedReader {
	cr := &checkedReader{r: r, maxMeta: maxMeta, maxBody: maxBody}
	cr.refs.Store(1)
	return cr
}

func (r *checkedReader) Retain() { r.refs.Add(1) }

func (r *checkedReader) Release() {
	if r.refs.Add(-1) == 0 && r.msg != nil {
		r.msg.Release()
		r.msg = nil
	}
}

// readInto reads n bytes into b (empty, its capacity reused), growing it
// only as bytes arrive: to at most twice what has arrived, and 64 KiB.
func (r *checkedReader) readInto(b []byte, n int64, what string) ([]byte, error) {
	for int64(len(b)) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(n, max(2*int64(cap(b)), 64<<10)))
			copy(nb, b)
			b = nb
		}
		k, err := r.r.Read(b[len(b):min(int64(cap(b)), n)])
		b = b[:len(b)+k]
		r.off += int64(k)
		if err == io.EOF {
			if int64(len(b)) < n {
				return nil, fmt.Errorf("Arrow stream ends at byte %d inside %s", r.off, what)
			}
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (r *checkedReader) read(n int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.r, n))
	r.off += int64(len(b))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < n {
		return nil, fmt.Errorf("Arrow stream ends at byte %d inside %s", r.off, what)
	}
	return b, nil
}

// Message returns the next message, io.EOF at the end-of-stream marker.
func (r *checkedReader) Message() (msg *ipc.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			msg, err = nil, fmt.Errorf("invalid Arrow message at byte %d: %v", r.off, p)
		}
	}()
	prefix, err := r.readInto(r.prefix[:0], 8, "a message prefix")
	if err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(prefix) != ipcContinuation {
		return nil, fmt.Errorf("Arrow message at byte %d does not start with the continuation marker", r.off-8)
	}
	n := binary.LittleEndian.Uint32(prefix[4:])
	if n == 0 {
		return nil, io.EOF
	}
	if int64(n) > int64(r.maxMeta) {
		return nil, fmt.Errorf("Arrow message metadata of %d bytes at byte %d is too long", n, r.off)
	}
	at := r.off
	metaBytes, err := r.read(int64(n), "message metadata")
	if err != nil {
		return nil, err
	}
	if err := checkIPCMetadata(metaBytes); err != nil {
		return nil, fmt.Errorf("Arrow message at byte %d: %w", at, err)
	}
	meta := memory.NewBufferBytes(metaBytes)
	probe := ipc.NewMessage(meta, memory.NewBufferBytes(nil))
	bodyLen := probe.BodyLen()
	probe.Release()
	if bodyLen < 0 || bodyLen > r.maxBody {
		return nil, fmt.Errorf("Arrow message body of %d bytes at byte %d is too long", bodyLen, r.off)
	}
	if r.msg != nil {
		r.msg.Release()
		r.msg = nil
	}
	body, err := r.readInto(r.body[:0], bodyLen, "a message body")
	if err != nil {
		return nil, err
	}
	r.body = body
	r.msg = ipc.NewMessage(meta, memory.NewBufferBytes(body))
	return r.msg, nil
}
