package coordinator

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// segmentHasher computes the SHA-256 of every segment of an envelope as its
// bytes stream by (prototype of per-segment ciphertext commitments).
type segmentHasher struct {
	head    []byte
	hdrLen  int
	segLen  int
	h       hash.Hash
	n       int
	digests [][32]byte
}

func (s *segmentHasher) Write(p []byte) (int, error) {
	total := len(p)
	for s.hdrLen == 0 || len(s.head) < s.hdrLen {
		if len(p) == 0 {
			return total, nil
		}
		s.head = append(s.head, p[0])
		p = p[1:]
		if len(s.head) == 118 {
			l := int(s.head[117])
			s.hdrLen = 120 + l // provisional until the recipient count is read
			s.segLen = int(binary.BigEndian.Uint32(s.head[17:21])) + 16
		}
		if s.hdrLen != 0 && len(s.head) == s.hdrLen && s.h == nil && s.hdrLen == 120+int(s.head[117]) {
			r := int(binary.BigEndian.Uint16(s.head[118+int(s.head[117]):]))
			s.hdrLen += 1200 * r
			s.h = sha256.New()
		}
	}
	for len(p) > 0 {
		k := min(len(p), s.segLen-s.n)
		s.h.Write(p[:k])
		s.n += k
		p = p[k:]
		if s.n == s.segLen {
			s.flush()
		}
	}
	return total, nil
}

func (s *segmentHasher) flush() {
	var d [32]byte
	s.h.Sum(d[:0])
	s.digests = append(s.digests, d)
	s.h.Reset()
	s.n = 0
}

// Digests returns the digests of every segment once the stream has ended.
func (s *segmentHasher) Digests() [][32]byte {
	if s.h != nil && (s.n > 0 || len(s.digests) == 0) {
		s.flush()
	}
	return s.digests
}
