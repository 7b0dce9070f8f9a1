package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HashLeaf returns the RFC 6962 leaf hash of an entry: SHA-256(0x00 ‖ entry).
func HashLeaf(entry []byte) [HashSize]byte {
	var h [HashSize]byte
	copy(h[:], rfc6962.DefaultHasher.HashLeaf(entry))
	return h
}

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// leafMismatch records the first index where an entry's hash and the level-0
// tile disagree.
type leafMismatch struct {
	index        uint64
	bundle, tile string
}

// VerifyEntries fetches every entry that cp commits to, recomputes the
// Merkle tree from them (RFC 6962 leaf hashes) and compares its root with
// cp's; it also checks every hash tile, at every level, that a reader of the
// log at cp's size would use. It returns the entries in log order (entry i at
// position i) only if all of it verifies.
//
// When something does not verify, the error is a *ContentError (wrapping
// ErrBadLog) naming the resource and, when it is tied to one, the first wrong
// entry index: the level-0 tiles and the entry bundles are cross-checked, so
// whichever of the two still matches the signed root tells which one was
// altered. Errors of the Fetcher other than "not found" are returned as they
// are (wrapped with the path), never as ErrBadLog.
func VerifyEntries(ctx context.Context, f Fetcher, cp *Checkpoint) ([][]byte, error) {
	return verifyEntries(ctx, f, cp, false)
}

// verifyEntries is VerifyEntries; with view set, an entry of length zero is
// a redacted slot whose leaf hash is the level-0 tile's (and is returned as
// nil), so a bad level-0 tile is a fault at once.
func verifyEntries(ctx context.Context, f Fetcher, cp *Checkpoint, view bool) ([][]byte, error) {
	if err := cp.check(); err != nil {
		return nil, err
	}
	n := cp.size
	if n == 0 {
		return nil, nil
	}
	root := cp.root
	upperFromEntries := map[uint][][]byte{}
	upperFromTiles := map[uint][][]byte{}
	collect := func(into map[uint][][]byte) compact.VisitFn {
		return func(id compact.NodeID, h []byte) {
			if id.Level > 0 && id.Level%TileHeight == 0 {
				into[id.Level/TileHeight] = append(into[id.Level/TileHeight], h)
			}
		}
	}
	visitEntries, visitTiles := collect(upperFromEntries), collect(upperFromTiles)
	fromEntries, fromTiles := rangeFactory.NewEmptyRange(0), rangeFactory.NewEmptyRange(0)

	var (
		entries  = make([][]byte, 0, min(n, 1<<20))
		mismatch *leafMismatch
		tileErr  error // first content error of a level-0 tile
	)
	for k := uint64(0); k*TileWidth < n; k++ {
		want := int(min(TileWidth, n-k*TileWidth))
		bp, es, err := fetchBundle(ctx, f, k, want)
		if err != nil {
			return nil, err
		}
		var hs [][]byte
		tp := ""
		if tileErr == nil {
			tp, hs, err = fetchHashTile(ctx, f, 0, k, want)
			if ce := (*ContentError)(nil); errors.As(err, &ce) && !view {
				tileErr = err
			} else if err != nil {
				return nil, err
			}
		}
		for j, e := range es {
			lh := HashLeaf(e)
			if view && len(e) == 0 {
				copy(lh[:], hs[j]) // redacted: only its leaf hash is known
				e = nil
			}
			if err := fromEntries.Append(lh[:], visitEntries); err != nil {
				return nil, err
			}
			if tileErr == nil {
				if err := fromTiles.Append(hs[j], visitTiles); err != nil {
					return nil, err
				}
				if mismatch == nil && !bytes.Equal(lh[:], hs[j]) {
					mismatch = &leafMismatch{index: k*TileWidth + uint64(j), bundle: bp, tile: tp}
				}
			}
			entries = append(entries, e)
		}
	}
	rootEntries, err := fromEntries.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	entriesOK := bytes.Equal(rootEntries, root[:])
	tilesOK := false
	if tileErr == nil {
		rootTiles, err := fromTiles.GetRootHash(nil)
		if err != nil {
			return nil, err
		}
		tilesOK = bytes.Equal(rootTiles, root[:])
	}
	switch {
	case entriesOK:
		if tileErr != nil {
			return nil, tileErr
		}
		if mismatch != nil {
			return nil, &ContentError{Path: mismatch.tile, Index: int64(mismatch.index),
				Reason: "the leaf hash in this hash tile is not the hash of the entry (the entries themselves match the signed root)"}
		}
		if err := verifyUpperTiles(ctx, f, n, upperFromEntries); err != nil {
			return nil, err
		}
		return entries, nil
	case tilesOK:
		// The tiles match the signed root, so they are right; the entries
		// differ from them somewhere, and the first difference is the fault.
		if mismatch == nil {
			return nil, &ContentError{Path: "tile/entries", Index: -1, Reason: "entries do not match the signed root"}
		}
		return nil, &ContentError{Path: mismatch.bundle, Index: int64(mismatch.index),
			Reason: "this entry is not the one the signed root commits to (it was altered, or entries were inserted or removed before it)"}
	case mismatch != nil:
		return nil, &ContentError{Path: mismatch.bundle + " and " + mismatch.tile, Index: int64(mismatch.index),
			Reason: "the entry bundle and the hash tile disagree from this entry on, and neither matches the signed root"}
	case tileErr != nil:
		return nil, &ContentError{Path: "tile/entries", Index: -1,
			Reason: fmt.Sprintf("entries do not hash to the signed root %x (computed %x), and a hash tile is bad too: %v", root, rootEntries, tileErr)}
	default:
		return nil, &ContentError{Path: "tile/entries and tile/0", Index: -1,
			Reason: fmt.Sprintf("entries and level-0 tiles agree with each other but hash to %x, not to the signed root %x: both were altered alike, or the checkpoint signs another tree", rootEntries, root)}
	}
}

// verifyUpperTiles checks the hash tiles of levels 1 and up at tree size n
// against the node hashes computed from verified leaves: nodes[L] holds, in
// order, the roots of the complete subtrees of 256^L leaves.
func verifyUpperTiles(ctx context.Context, f Fetcher, n uint64, nodes map[uint][][]byte) error {
	for level := uint64(1); level <= MaxTileLevel && n>>(level*TileHeight) > 0; level++ {
		count := n >> (level * TileHeight)
		got := nodes[uint(level)]
		if uint64(len(got)) != count {
			return fmt.Errorf("internal error: %d level-%d nodes computed, want %d", len(got), level, count)
		}
		for t := uint64(0); t*TileWidth < count; t++ {
			want := int(min(TileWidth, count-t*TileWidth))
			p, hs, err := fetchHashTile(ctx, f, level, t, want)
			if err != nil {
				return err
			}
			for j, h := range hs {
				if !bytes.Equal(h, got[t*TileWidth+uint64(j)]) {
					span := uint64(1) << (level * TileHeight)
					first := (t*TileWidth + uint64(j)) * span
					return &ContentError{Path: p, Index: -1,
						Reason: fmt.Sprintf("hash %d (the root of entries %d to %d) is wrong", j, first, first+span-1)}
				}
			}
		}
	}
	return nil
}
