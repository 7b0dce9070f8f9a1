package coordinator

import (
	"io"
	"sync"
)

// Receiving an upload runs on two goroutines: one reads the body (over
// TLS, so it also decrypts the connection), hashes it and enforces the
// upload limit; the verifier authenticates, decrypts, decodes and
// re-encrypts it. A synchronous pipe between them made each wait for the
// other at every chunk: the receiver could be at most one chunk ahead
// while the verifier decoded and laid out a whole Arrow message. A
// chunkPipe lets the receiver run up to receiveChunks chunks ahead, so the
// two overlap, in memory bounded by receiveChunks × receiveChunkSize.
const (
	receiveChunkSize = 256 << 10
	receiveChunks    = 16
)

// chunkPipe carries byte chunks from one writing goroutine to one reading
// goroutine through at most a fixed number of buffers, made as needed.
// The writer takes a buffer (get), fills it and hands it over (send), and
// ends with closeWrite; the reader reads (Read) and, if it stops early,
// says so with closeRead, which unblocks the writer.
type chunkPipe struct {
	size int
	made int           // buffers made so far (the writer's)
	free chan []byte   // buffers the reader is done with
	full chan []byte   // filled chunks, in order
	done chan struct{} // closed by closeRead
	once sync.Once
	werr error // the writer's error, set before full is closed

	cur []byte // the reader's current chunk, the part not yet read
	buf []byte // the whole buffer of cur
}

func newChunkPipe(chunks, size int) *chunkPipe {
	return &chunkPipe{size: size, free: make(chan []byte, chunks), full: make(chan []byte, chunks), done: make(chan struct{})}
}

// get returns an empty buffer of the pipe's chunk size, waiting for the
// reader to release one when all are in use; nil if the reader stopped.
func (p *chunkPipe) get() []byte {
	select {
	case b := <-p.free:
		return b
	default:
	}
	if p.made < cap(p.free) {
		p.made++
		return make([]byte, p.size)
	}
	select {
	case b := <-p.free:
		return b
	case <-p.done:
		return nil
	}
}

// send hands a filled chunk (a prefix of a buffer from get) to the
// reader; false if the reader stopped.
func (p *chunkPipe) send(b []byte) bool {
	select {
	case <-p.done:
		return false
	default:
	}
	select {
	case p.full <- b:
		return true
	case <-p.done:
		return false
	}
}

// closeWrite ends the stream: the reader gets err after the chunks sent,
// io.EOF if err is nil.
func (p *chunkPipe) closeWrite(err error) {
	p.werr = err
	close(p.full)
}

// Read reads the chunks in order.
func (p *chunkPipe) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.buf != nil {
			p.free <- p.buf[:cap(p.buf)] // never blocks: free holds every buffer
			p.buf = nil
		}
		c, ok := <-p.full
		if !ok {
			if p.werr != nil {
				return 0, p.werr
			}
			return 0, io.EOF
		}
		p.cur, p.buf = c, c
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// closeRead tells the writer that the reader stopped.
func (p *chunkPipe) closeRead() { p.once.Do(func() { close(p.done) }) }
