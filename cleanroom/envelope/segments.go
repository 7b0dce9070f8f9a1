package envelope

import (
	"crypto/hpke"
	"fmt"
	"io"
)

// Segments gives random access to the segments of an envelope read from a
// file: any run of consecutive segments can be read, authenticated and
// decrypted on its own, any number of times, from any number of goroutines.
// Every read goes back to the file and authenticates what it read, so
// bytes that change in the file are refused at the read that meets them,
// never released. The guarantees of each read are those of Open for the
// segments it covers (their index and last-segment flag are in the nonce);
// that the envelope is whole is up to the caller, who reads its segments.
type Segments struct {
	src    io.ReaderAt
	hdr    *Header
	layout Layout
	keys   *segmentKeys
}

// OpenSegments parses the header of the envelope of size bytes in r,
// refuses it unless it matches want and its body length is one a writer
// makes, and unwraps its data key with key. It decrypts nothing yet.
func OpenSegments(r io.ReaderAt, size int64, key hpke.PrivateKey, want Expect) (*Segments, error) {
	hdr, err := ParseHeader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, err
	}
	if err := want.check(hdr); err != nil {
		return nil, err
	}
	layout, err := BodyLayout(size-int64(hdr.Len()), hdr.SegmentSize, hdr.Len())
	if err != nil {
		return nil, err
	}
	keys, err := recipientKeys(hdr, key)
	if err != nil {
		return nil, err
	}
	return &Segments{src: r, hdr: hdr, layout: layout, keys: keys}, nil
}

// Header returns the envelope's header.
func (s *Segments) Header() *Header { return s.hdr }

// Layout returns the envelope's segment layout.
func (s *Segments) Layout() Layout { return s.layout }

// Read reads segments [first, first+n) from the file into buf (grown if its
// capacity is below what they take), authenticates and decrypts them into
// dst, which must have room for their plaintext (n segment sizes, less for
// the last segment), and returns that plaintext, dst[:m]. On any error it
// wipes what it had decrypted and returns the error, naming the segment.
func (s *Segments) Read(dst, buf []byte, first, n int64) ([]byte, []byte, error) {
	if first < 0 || n < 1 || first+n > s.layout.Segments {
		return nil, buf, fmt.Errorf("envelope: segments %d to %d are outside the envelope's 0 to %d", first, first+n-1, s.layout.Segments-1)
	}
	full := int64(s.hdr.SegmentSize) + TagSize
	headerLen := int64(s.hdr.Len())
	bodyLen := s.layout.PlaintextSize + s.layout.Segments*TagSize
	start := first * full
	end := min((first+n)*full, bodyLen)
	plain := end - start - n*TagSize
	if int64(cap(dst)) < plain {
		return nil, buf, fmt.Errorf("envelope: %d bytes of room for the %d plaintext bytes of segments %d to %d", cap(dst), plain, first, first+n-1)
	}
	if int64(cap(buf)) < end-start {
		buf = make([]byte, end-start)
	}
	ct := buf[:end-start]
	if _, err := s.src.ReadAt(ct, headerLen+start); err != nil {
		return nil, buf, fmt.Errorf("envelope: reading segments %d to %d (bytes %d to %d): %w", first, first+n-1, headerLen+start, headerLen+end, err)
	}
	aead := s.keys.aead()
	nonce := new([nonceSize]byte)
	out := dst[:plain]
	for k := range n {
		i := first + k
		lo := k * full
		hi := min(lo+full, int64(len(ct)))
		o := k * int64(s.hdr.SegmentSize)
		seg := ct[lo:hi]
		if err := openSegment(aead, s.keys, nonce, out[o:o:o+int64(len(seg))-TagSize], seg, uint64(i), i == s.layout.Segments-1, headerLen+start+lo); err != nil {
			clear(out)
			return nil, buf, err
		}
	}
	return out, buf, nil
}

// Close wipes the payload key. Reads after Close fail.
func (s *Segments) Close() {
	s.keys.wipe()
}
