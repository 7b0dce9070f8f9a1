package eventlog

import (
	"context"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/client"
)

// Checkpoint returns the latest published checkpoint, verified with the
// log's own key.
func (l *Log) Checkpoint(ctx context.Context) (*tlog.Checkpoint, error) {
	raw, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("event log %s: reading the checkpoint: %w", l.dir, err)
	}
	return l.verifier.VerifyCheckpoint(raw)
}

// WaitCheckpoint waits until a published checkpoint covers at least the
// first size entries (to cover entry i, pass i+1) and returns it. A new
// checkpoint is published within about Options.CheckpointInterval of an
// append. It fails when ctx ends or the Log is closed.
func (l *Log) WaitCheckpoint(ctx context.Context, size uint64) (*tlog.Checkpoint, error) {
	if size == 0 {
		return l.Checkpoint(ctx)
	}
	resolved := func() (tessera.Index, error) { return tessera.Index{Index: size - 1}, nil }
	_, raw, err := l.awaiter.Await(ctx, resolved)
	if err != nil {
		return nil, fmt.Errorf("event log %s: waiting for a checkpoint of %d entries: %w", l.dir, size, err)
	}
	cp, err := l.verifier.VerifyCheckpoint(raw)
	if err != nil {
		return nil, err
	}
	if cp.Size() < size {
		return nil, fmt.Errorf("event log %s: published checkpoint has %d entries, waited for %d", l.dir, cp.Size(), size)
	}
	return cp, nil
}

// proofBuilder returns a proof builder over the stored hash tiles for a tree
// of the given size, which must not exceed the integrated size.
func (l *Log) proofBuilder(ctx context.Context, size uint64) (*client.ProofBuilder, error) {
	n, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return nil, err
	}
	if size > n {
		return nil, fmt.Errorf("event log %s: tree size %d is beyond the %d entries stored", l.dir, size, n)
	}
	return client.NewProofBuilder(ctx, size, l.reader.ReadTile)
}

// InclusionProof returns the RFC 6962 audit path of entry index in the tree
// of the first size entries, computed from the stored hash tiles.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("event log %s: entry %d is not in a tree of %d entries", l.dir, index, size)
	}
	pb, err := l.proofBuilder(ctx, size)
	if err != nil {
		return nil, err
	}
	return pb.InclusionProof(ctx, index)
}

// ConsistencyProof returns the RFC 6962 consistency proof between the trees
// of the first oldSize and newSize entries, oldSize <= newSize.
func (l *Log) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([][]byte, error) {
	if oldSize > newSize {
		return nil, fmt.Errorf("event log %s: consistency proof from %d to %d entries: sizes reversed", l.dir, oldSize, newSize)
	}
	pb, err := l.proofBuilder(ctx, newSize)
	if err != nil {
		return nil, err
	}
	return pb.ConsistencyProof(ctx, oldSize, newSize)
}

// ProveInclusion waits for a published checkpoint covering entry index and
// returns the self-contained proof of the entry's inclusion under it, for a
// result bundle. It checks the proof against the entry it reads back before
// returning it.
func (l *Log) ProveInclusion(ctx context.Context, index uint64) (*tlog.InclusionProof, error) {
	cp, err := l.WaitCheckpoint(ctx, index+1)
	if err != nil {
		return nil, err
	}
	path, err := l.InclusionProof(ctx, index, cp.Size())
	if err != nil {
		return nil, err
	}
	entry, err := l.readEntry(ctx, index, cp.Size())
	if err != nil {
		return nil, err
	}
	if err := tlog.VerifyInclusion(cp, index, entry, path); err != nil {
		return nil, fmt.Errorf("event log %s: stored tiles give a wrong proof for entry %d: %w", l.dir, index, err)
	}
	p := &tlog.InclusionProof{Checkpoint: cp.Bytes(), Index: index, Hashes: make([][tlog.HashSize]byte, len(path))}
	for i, h := range path {
		copy(p.Hashes[i][:], h)
	}
	return p, nil
}

// readEntry reads entry index from its bundle in a tree of size entries.
func (l *Log) readEntry(ctx context.Context, index, size uint64) ([]byte, error) {
	k := index / tlog.TileWidth
	width := min(tlog.TileWidth, size-k*tlog.TileWidth)
	p := uint8(0)
	if width < tlog.TileWidth {
		p = uint8(width)
	}
	raw, err := l.reader.ReadEntryBundle(ctx, k, p)
	if err != nil {
		return nil, fmt.Errorf("event log %s: reading entry %d: %w", l.dir, index, err)
	}
	es, err := tlog.ParseEntryBundle(raw, int(width))
	if err != nil && p != 0 {
		// The full bundle stands in for a partial one that is gone.
		es, err = tlog.ParseEntryBundle(raw, tlog.TileWidth)
	}
	if err != nil {
		return nil, fmt.Errorf("event log %s: entry bundle %d: %w", l.dir, k, err)
	}
	return es[index%tlog.TileWidth], nil
}

// Replay verifies the stored log and calls fn with every entry, in order,
// from index 0 to the size covered by a checkpoint it waits for (at least
// the integrated size when Replay starts). It stops at fn's first error and
// returns it.
//
// Before calling fn at all it checks, with the same code auditors use
// (package tlog), that the log extends the checkpoint found on disk at Open
// (so a signed prefix cannot have been altered while the coordinator was
// down), that every entry hashes into the signed root, and that every hash
// tile is right. Entries after the last checkpoint signed before a crash are
// only as trustworthy as the disk; docs/log.md discusses this.
func (l *Log) Replay(ctx context.Context, fn func(index uint64, entry []byte) error) error {
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return fmt.Errorf("event log %s: %w", l.dir, err)
	}
	cp, err := l.WaitCheckpoint(ctx, size)
	if err != nil {
		return err
	}
	fetch := tlog.DirFetcher(l.dir)
	if l.kept != nil {
		if _, err := tlog.CheckConsistency(ctx, fetch, l.kept, cp); err != nil {
			return fmt.Errorf("event log %s does not extend the checkpoint it held at start (%v): %w", l.dir, l.kept, err)
		}
	}
	entries, err := tlog.VerifyEntries(ctx, fetch, cp)
	if err != nil {
		return fmt.Errorf("event log %s: %w", l.dir, err)
	}
	for i, e := range entries {
		if err := fn(uint64(i), e); err != nil {
			return err
		}
	}
	return nil
}

// Entry returns the entry at index once a published checkpoint covers it,
// byte for byte as it was appended.
func (l *Log) Entry(ctx context.Context, index uint64) ([]byte, error) {
	cp, err := l.WaitCheckpoint(ctx, index+1)
	if err != nil {
		return nil, err
	}
	return l.readEntry(ctx, index, cp.Size())
}
