package envelope

import (
	"crypto/cipher"
	"crypto/hpke"
	"errors"
	"fmt"
	"io"
)

// Reader decrypts an envelope as a stream in a single pass, holding about
// two segments in memory. Read returns a segment's plaintext only after the
// whole segment has authenticated; an envelope that is modified or ends
// early makes Read fail (with ErrAuthentication or ErrTruncated) instead of
// reaching io.EOF. Plaintext returned before such an error is authentic but
// incomplete: a caller must treat the stream as valid only when Read
// returns io.EOF.
type Reader struct {
	src     io.Reader
	hdr     *Header
	keys    *segmentKeys
	aead    cipher.AEAD
	nonce   [nonceSize]byte
	ct      []byte // segment ciphertext plus one byte of look-ahead
	have    int    // bytes in ct
	pt      []byte // plaintext of the current segment
	out     []byte // part of pt not yet returned
	seg     uint64 // index of the next segment
	offset  int64  // file offset of ct[0]
	segSize int
	done    bool
	err     error
}

// NewReader reads the envelope header from src, refuses it unless it
// matches want, and unwraps the data key with key. The returned Reader
// yields the plaintext.
func NewReader(src io.Reader, key hpke.PrivateKey, want Expect) (*Reader, error) {
	hdr, err := ParseHeader(src)
	if err != nil {
		return nil, err
	}
	if err := want.check(hdr); err != nil {
		return nil, err
	}
	keys, err := recipientKeys(hdr, key)
	if err != nil {
		return nil, err
	}
	return &Reader{
		src:     src,
		hdr:     hdr,
		keys:    keys,
		aead:    keys.aead(),
		ct:      make([]byte, hdr.SegmentSize+TagSize+1),
		pt:      make([]byte, 0, hdr.SegmentSize),
		offset:  int64(hdr.Len()),
		segSize: hdr.SegmentSize,
	}, nil
}

// Header returns the envelope's header. It is authenticated once the first
// Read has returned data or io.EOF.
func (r *Reader) Header() *Header { return r.hdr }

// Read reads authenticated plaintext.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		if err := r.nextSegment(); err != nil {
			r.err = err
			clear(r.pt[:cap(r.pt)])
			r.keys.wipe()
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// nextSegment reads, authenticates and decrypts the next segment.
func (r *Reader) nextSegment() error {
	full := r.segSize + TagSize
	// Read up to a full segment and one byte more: the extra byte tells
	// whether this segment is the last.
	n, err := io.ReadFull(r.src, r.ct[r.have:])
	r.have += n
	last := false
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	default:
		return fmt.Errorf("envelope: reading segment %d at byte offset %d: %w", r.seg, r.offset, err)
	}
	segLen := full
	if last {
		segLen = r.have
		switch {
		case r.have < TagSize && r.seg == 0:
			return fmt.Errorf("%w: the body after the %d-byte header has %d bytes, fewer than the %d-byte tag of one segment",
				ErrTruncated, r.hdr.Len(), r.have, TagSize)
		case r.have <= TagSize && r.seg > 0:
			return &FormatError{Offset: r.offset, Field: fmt.Sprintf("segment %d", r.seg),
				Reason: fmt.Sprintf("the file ends with a %d-byte piece of a segment; a last segment holds 1 to %d bytes of data and a %d-byte tag (the file is truncated or has bytes appended)",
					r.have, r.segSize, TagSize)}
		}
	}
	if r.seg >= MaxSegments {
		return &FormatError{Offset: r.offset, Field: "body", Reason: fmt.Sprintf("more than %d segments", uint64(MaxSegments))}
	}
	if err := openSegment(r.aead, r.keys, &r.nonce, r.pt[:0:segLen-TagSize], r.ct[:segLen], r.seg, last, r.offset); err != nil {
		return err
	}
	r.out = r.pt[:segLen-TagSize]
	r.seg++
	r.offset += int64(segLen)
	if last {
		r.done = true
		r.keys.wipe()
		r.have = 0
		return nil
	}
	// Keep the look-ahead byte as the start of the next segment.
	r.ct[0] = r.ct[full]
	r.have = 1
	return nil
}
