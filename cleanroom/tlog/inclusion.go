package tlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// ErrBadProof reports an inclusion proof that is malformed or does not
// verify.
var ErrBadProof = errors.New("bad inclusion proof")

// VerifyInclusion checks that leaf (the entry's bytes) is entry index of the
// tree cp signs, given the RFC 6962 audit path proof (32-byte hashes, from
// the leaf up). It does no I/O. Errors wrap ErrBadProof.
func VerifyInclusion(cp *Checkpoint, index uint64, leaf []byte, p [][]byte) error {
	if err := cp.check(); err != nil {
		return err
	}
	if index >= cp.size {
		return fmt.Errorf("%w: entry %d is beyond the checkpoint's %d entries", ErrBadProof, index, cp.size)
	}
	for i, h := range p {
		if len(h) != HashSize {
			return fmt.Errorf("%w: hash %d has %d bytes, want %d", ErrBadProof, i, len(h), HashSize)
		}
	}
	lh := HashLeaf(leaf)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.size, lh[:], p, cp.root[:]); err != nil {
		return fmt.Errorf("%w: entry %d is not in the tree of %d entries with root %x: %v", ErrBadProof, index, cp.size, cp.root, err)
	}
	return nil
}

// InclusionProof is a self-contained proof that an entry is in the log: the
// signed checkpoint, the entry's index and its audit path. It travels in
// result bundles and is checked offline with Verifier.VerifyInclusionProof.
type InclusionProof struct {
	Checkpoint []byte           // the signed checkpoint note
	Index      uint64           // the entry's index in the log
	Hashes     [][HashSize]byte // RFC 6962 audit path, from the leaf up
}

// inclusionProofMagic starts the binary encoding of an InclusionProof.
const inclusionProofMagic = "cleanroom/tlog-inclusion-proof/v1\n"

// maxProofHashes bounds the audit path: a tree of at most 2^64 entries has
// paths of at most 64 hashes.
const maxProofHashes = 64

// MarshalBinary encodes the proof as
//
//	"cleanroom/tlog-inclusion-proof/v1\n"
//	index            uint64, big-endian
//	checkpoint size  uint16, big-endian (1..4096), then the checkpoint bytes
//	hash count       uint8 (0..64), then that many 32-byte hashes
//
// with nothing after. docs/log.md describes it.
func (p *InclusionProof) MarshalBinary() ([]byte, error) {
	if len(p.Checkpoint) == 0 || len(p.Checkpoint) > MaxCheckpointSize {
		return nil, fmt.Errorf("%w: checkpoint of %d bytes, want 1..%d", ErrBadProof, len(p.Checkpoint), MaxCheckpointSize)
	}
	if len(p.Hashes) > maxProofHashes {
		return nil, fmt.Errorf("%w: %d hashes, at most %d", ErrBadProof, len(p.Hashes), maxProofHashes)
	}
	b := make([]byte, 0, len(inclusionProofMagic)+8+2+len(p.Checkpoint)+1+len(p.Hashes)*HashSize)
	b = append(b, inclusionProofMagic...)
	b = binary.BigEndian.AppendUint64(b, p.Index)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.Checkpoint)))
	b = append(b, p.Checkpoint...)
	b = append(b, byte(len(p.Hashes)))
	for _, h := range p.Hashes {
		b = append(b, h[:]...)
	}
	return b, nil
}

// UnmarshalBinary decodes the encoding of MarshalBinary strictly: a wrong
// magic, a length out of range, or trailing bytes are errors wrapping
// ErrBadProof. It does not verify the proof.
func (p *InclusionProof) UnmarshalBinary(b []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadProof}, args...)...)
	}
	rest, ok := bytes.CutPrefix(b, []byte(inclusionProofMagic))
	if !ok {
		return bad("does not start with %q", inclusionProofMagic[:len(inclusionProofMagic)-1])
	}
	if len(rest) < 8+2 {
		return bad("truncated before the checkpoint")
	}
	index := binary.BigEndian.Uint64(rest)
	cpLen := int(binary.BigEndian.Uint16(rest[8:]))
	rest = rest[10:]
	if cpLen == 0 || cpLen > MaxCheckpointSize {
		return bad("checkpoint of %d bytes, want 1..%d", cpLen, MaxCheckpointSize)
	}
	if len(rest) < cpLen+1 {
		return bad("truncated inside the checkpoint")
	}
	cp := bytes.Clone(rest[:cpLen])
	n := int(rest[cpLen])
	rest = rest[cpLen+1:]
	if n > maxProofHashes {
		return bad("%d hashes, at most %d", n, maxProofHashes)
	}
	if len(rest) != n*HashSize {
		return bad("%d bytes of hashes, want %d for %d hashes", len(rest), n*HashSize, n)
	}
	hashes := make([][HashSize]byte, n)
	for i := range hashes {
		copy(hashes[i][:], rest[i*HashSize:])
	}
	*p = InclusionProof{Checkpoint: cp, Index: index, Hashes: hashes}
	return nil
}

// ParseInclusionProof decodes an encoded InclusionProof (see MarshalBinary).
func ParseInclusionProof(b []byte) (*InclusionProof, error) {
	p := new(InclusionProof)
	if err := p.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return p, nil
}

// VerifyInclusionProof verifies the proof's checkpoint with v and checks
// that leaf is the entry at the proof's index in that tree. It returns the
// verified checkpoint, which a caller holding a later checkpoint can check
// consistency against.
func (v *Verifier) VerifyInclusionProof(p *InclusionProof, leaf []byte) (*Checkpoint, error) {
	cp, err := v.VerifyCheckpoint(p.Checkpoint)
	if err != nil {
		return nil, err
	}
	path := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		path[i] = p.Hashes[i][:]
	}
	if err := VerifyInclusion(cp, p.Index, leaf, path); err != nil {
		return nil, err
	}
	return cp, nil
}
