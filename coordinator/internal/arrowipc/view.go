package arrowipc

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// viewReader is an ipc.MessageReader over an Arrow IPC stream already in
// memory: message bodies are slices of the stream, not copies, so record
// batches decoded from it point into the decrypted plaintext. The stream
// must stay unchanged while any batch is in use.
type viewReader struct {
	data    []byte
	off     int
	refs    atomic.Int64
	msg     *ipc.Message
	maxMeta int
	maxBody int64
}

const ipcContinuation = 0xFFFFFFFF

func newViewReader(data []byte, maxMeta int, maxBody int64) *viewReader {
	r := &viewReader{data: data, maxMeta: maxMeta, maxBody: maxBody}
	r.refs.Store(1)
	return r
}

func (r *viewReader) Retain() { r.refs.Add(1) }

func (r *viewReader) Release() {
	if r.refs.Add(-1) == 0 && r.msg != nil {
		r.msg.Release()
		r.msg = nil
	}
}

// Message returns the next message, io.EOF at the end-of-stream marker.
func (r *viewReader) Message() (msg *ipc.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			msg, err = nil, fmt.Errorf("invalid Arrow message at byte %d: %v", r.off, p)
		}
	}()
	word := func() (uint32, error) {
		if len(r.data)-r.off < 4 {
			return 0, fmt.Errorf("Arrow stream ends at byte %d without an end-of-stream marker", r.off)
		}
		v := binary.LittleEndian.Uint32(r.data[r.off:])
		r.off += 4
		return v, nil
	}
	v, err := word()
	if err != nil {
		return nil, err
	}
	if v != ipcContinuation {
		return nil, fmt.Errorf("Arrow message at byte %d does not start with the continuation marker", r.off-4)
	}
	n, err := word()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, io.EOF
	}
	if int64(n) > int64(r.maxMeta) || int64(n) > int64(len(r.data)-r.off) {
		return nil, fmt.Errorf("Arrow message metadata of %d bytes at byte %d is too long", n, r.off)
	}
	if err := checkIPCMetadata(r.data[r.off : r.off+int(n)]); err != nil {
		return nil, fmt.Errorf("Arrow message at byte %d: %w", r.off, err)
	}
	meta := memory.NewBufferBytes(r.data[r.off : r.off+int(n)])
	r.off += int(n)
	probe := ipc.NewMessage(meta, memory.NewBufferBytes(nil))
	bodyLen := probe.BodyLen()
	probe.Release()
	if bodyLen < 0 || bodyLen > r.maxBody || bodyLen > int64(len(r.data)-r.off) {
		return nil, fmt.Errorf("Arrow message body of %d bytes at byte %d does not fit the stream", bodyLen, r.off)
	}
	body := memory.NewBufferBytes(r.data[r.off : r.off+int(bodyLen)])
	r.off += int(bodyLen)
	if r.msg != nil {
		r.msg.Release()
	}
	r.msg = ipc.NewMessage(meta, body)
	return r.msg, nil
}

// rest returns the bytes after the end-of-stream marker.
func (r *viewReader) rest() int { return len(r.data) - r.off }
