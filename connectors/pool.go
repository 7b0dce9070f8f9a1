package connectors

import (
	"math/bits"
	"sync"
	"unsafe"
)

// bufferPool is the memory.Allocator a Reader uses when Options.Allocator
// is nil. It keeps the buffers that arrow-go frees (when the last
// reference to an array's buffer is released) and hands them out again,
// zeroed, instead of allocating fresh memory for every batch: a Parquet
// file's decoding otherwise spends about a third of its CPU time zeroing
// new memory and collecting the old.
//
// Buffers are kept by size class, a power of two from minPooledSize to
// maxPooledSize bytes; a request is rounded up to its class. Smaller and
// larger requests are plain Go allocations, never kept. At most maxIdle
// bytes are kept at once; a buffer freed beyond that is left to the
// garbage collector. So the pool adds at most maxIdle bytes to what the
// batches in use hold, whatever the input.
//
// A buffer is handed out again only after it was freed, exactly once,
// since it was handed out: the pool records the buffers it has out, and
// ignores the Free of one it does not have out (a second Free, or a
// buffer it never allocated). Since it records them, a buffer never freed
// (a batch never released) lives as long as the pool, where the garbage
// collector would reclaim memory.GoAllocator's; arrow-go requires every
// array to be released anyway. arrow-go's reference counting decides when
// a buffer is freed; a caller that keeps a value's bytes (an Arrow
// string's Value aliases the buffer) past the batch's Release must copy
// them, as it must with any Arrow allocator that reuses memory.
type bufferPool struct {
	mu      sync.Mutex
	free    [maxClass - minClass + 1][]*pooled
	out     map[*byte]*pooled // buffers handed out and not yet freed
	idle    int               // bytes kept in free
	maxIdle int
	// Counters, for tests.
	reused, fresh int
}

// pooled is a buffer of the pool: its whole size class. The buffer handed
// out is full[:n:n], so that its user cannot reach beyond n bytes. Every
// byte from dirty on is zero: only the bytes below it were ever handed out
// since full was last zeroed.
type pooled struct {
	full  []byte
	class int
	dirty int
}

const (
	minClass      = 12 // 4 KiB: smaller buffers cost the collector little
	maxClass      = 26 // 64 MiB
	minPooledSize = 1 << minClass
	maxPooledSize = 1 << maxClass
	// defaultMaxIdle bounds the bytes a Reader's pool keeps: more than a
	// few batches' worth, so that the buffers of the batches a pipeline
	// holds at once cycle through it.
	defaultMaxIdle = 64 << 20
	// alignment is Arrow's buffer alignment.
	alignment = 64
)

func newBufferPool(maxIdle int) *bufferPool {
	return &bufferPool{out: make(map[*byte]*pooled), maxIdle: maxIdle}
}

// class returns the size class of a request of size bytes, or -1 if it is
// not pooled.
func class(size int) int {
	if size < minPooledSize || size > maxPooledSize {
		return -1
	}
	return bits.Len(uint(size - 1))
}

// get returns a buffer of class c, handed out: a kept one if there is one,
// else a new one.
func (p *bufferPool) get(c int) *pooled {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b *pooled
	if free := &p.free[c-minClass]; len(*free) > 0 {
		n := len(*free)
		b = (*free)[n-1]
		(*free)[n-1] = nil
		*free = (*free)[:n-1]
		p.idle -= len(b.full)
		p.reused++
	} else {
		b = &pooled{full: alignedBytes(1 << c), class: c}
		p.fresh++
	}
	p.out[unsafe.SliceData(b.full)] = b
	return b
}

// hand returns b's first size bytes, of which the first keep are left as
// they are and the rest are zeroed.
func (b *pooled) hand(keep, size int) []byte {
	if end := min(size, b.dirty); keep < end {
		clear(b.full[keep:end])
	}
	b.dirty = max(b.dirty, size)
	return b.full[:size:size]
}

// Allocate returns size zeroed bytes, 64-byte aligned.
func (p *bufferPool) Allocate(size int) []byte {
	c := class(size)
	if c < 0 {
		return alignedBytes(size)
	}
	return p.get(c).hand(0, size)
}

// Reallocate returns size bytes beginning with b's, the rest zeroed. b is
// freed if it cannot hold size bytes.
func (p *bufferPool) Reallocate(size int, b []byte) []byte {
	p.mu.Lock()
	cur := p.out[unsafe.SliceData(b)]
	p.mu.Unlock()
	if cur != nil && size <= len(cur.full) {
		// b is cur.full[:len(b)], handed out; grow or shrink it in place.
		// Only its user touches it until it is freed.
		return cur.hand(len(b), size)
	}
	if cur == nil && size <= cap(b) {
		return b[:size] // not pooled: a shrink
	}
	c := class(size)
	if c < 0 {
		nb := alignedBytes(size)
		copy(nb, b)
		p.Free(b)
		return nb
	}
	nb := p.get(c)
	k := copy(nb.full[:size], b)
	out := nb.hand(k, size)
	p.Free(b)
	return out
}

// Free keeps b for reuse if the pool has it out and room for it.
func (p *bufferPool) Free(b []byte) {
	ptr := unsafe.SliceData(b)
	if ptr == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pb, ok := p.out[ptr]
	if !ok {
		return
	}
	delete(p.out, ptr)
	if p.idle+len(pb.full) > p.maxIdle {
		return
	}
	p.free[pb.class-minClass] = append(p.free[pb.class-minClass], pb)
	p.idle += len(pb.full)
}

// outstanding returns how many pooled buffers are handed out and not
// freed.
func (p *bufferPool) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.out)
}

// alignedBytes returns size zeroed bytes whose first is 64-byte aligned,
// with capacity size.
func alignedBytes(size int) []byte {
	buf := make([]byte, size+alignment)
	shift := int(-uintptr(unsafe.Pointer(unsafe.SliceData(buf))) & (alignment - 1))
	return buf[shift : shift+size : shift+size]
}
