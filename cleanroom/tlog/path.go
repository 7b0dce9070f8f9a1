package tlog

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/tessera/api/layout"
)

// Geometry of the tlog-tiles layout (c2sp.org/tlog-tiles).
const (
	// TileHeight is the number of tree levels one hash tile spans.
	TileHeight = layout.TileHeight
	// TileWidth is the number of hashes in a full hash tile, and of entries
	// in a full entry bundle.
	TileWidth = layout.TileWidth
	// MaxTileLevel is the highest hash tile level a path may name.
	MaxTileLevel = 63
	// MaxEntrySize is the largest entry the layout can hold: an entry in a
	// bundle carries a 16-bit length.
	MaxEntrySize = 1<<16 - 1
	// HashSize is the size of every tree hash (SHA-256).
	HashSize = 32
)

// maxPathLen bounds the length of a resource path: the longest canonical one,
// "tile/entries/" + 7 groups of the index + ".p/255", is well under it.
const maxPathLen = 64

// ResourceKind tells which of the three kinds of file a Resource names.
type ResourceKind int

// The kinds of resource in a tlog-tiles log.
const (
	KindCheckpoint  ResourceKind = iota + 1 // "checkpoint"
	KindHashTile                            // "tile/<L>/<N>[.p/<W>]"
	KindEntryBundle                         // "tile/entries/<N>[.p/<W>]"
)

// Resource names one file of a tlog-tiles log. Width is 0 for a full tile or
// bundle (256 hashes or entries) and 1..255 for a partial one. Level is only
// meaningful for hash tiles.
type Resource struct {
	Kind  ResourceKind
	Level uint8
	Index uint64
	Width uint8
}

// Path returns the canonical path of the resource, relative to the log root
// (no leading slash), e.g. "tile/1/x001/234.p/7".
func (r Resource) Path() string {
	switch r.Kind {
	case KindCheckpoint:
		return layout.CheckpointPath
	case KindHashTile:
		return layout.TilePath(uint64(r.Level), r.Index, r.Width)
	case KindEntryBundle:
		return layout.EntriesPath(r.Index, r.Width)
	}
	return ""
}

func tilePath(level, index uint64, width uint8) string {
	return layout.TilePath(level, index, width)
}

func bundlePath(index uint64, width uint8) string { return layout.EntriesPath(index, width) }

// ParseResourcePath parses a path of the tlog-tiles layout, relative to the
// log root and without a leading slash. It accepts only canonical paths:
// "checkpoint", "tile/<L>/<N>[.p/<W>]" and "tile/entries/<N>[.p/<W>]" with
// L in 0..63 and W in 1..255 in decimal without leading zeros, and N written
// as groups of three digits ("x001/x234/067") without a leading zero group.
// Anything else (other files, "..", doubled or trailing slashes, leading
// zeros, out-of-range numbers) is refused, so a path that parses can be
// joined to a directory without escaping it.
func ParseResourcePath(p string) (Resource, error) {
	bad := func(why string) (Resource, error) {
		return Resource{}, fmt.Errorf("not a tlog-tiles path %q: %s", truncate(p, maxPathLen), why)
	}
	if len(p) > maxPathLen {
		return bad("too long")
	}
	if p == layout.CheckpointPath {
		return Resource{Kind: KindCheckpoint}, nil
	}
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return bad(`want "checkpoint" or "tile/..."`)
	}
	var r Resource
	levelPart, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("missing tile index")
	}
	if levelPart == "entries" {
		r.Kind = KindEntryBundle
	} else {
		l, err := strconv.ParseUint(levelPart, 10, 8)
		if err != nil || l > MaxTileLevel {
			return bad("tile level must be 0..63 or \"entries\"")
		}
		r.Kind, r.Level = KindHashTile, uint8(l)
	}
	if indexPart, widthPart, partial := strings.Cut(rest, ".p/"); partial {
		w, err := strconv.ParseUint(widthPart, 10, 8)
		if err != nil || w == 0 {
			return bad("partial width must be 1..255")
		}
		r.Width = uint8(w)
		rest = indexPart
	}
	groups := strings.Split(rest, "/")
	if len(groups) > 7 {
		return bad("tile index has too many groups")
	}
	var n uint64
	for i, g := range groups {
		if i < len(groups)-1 {
			var ok bool
			if g, ok = strings.CutPrefix(g, "x"); !ok {
				return bad("every index group but the last starts with 'x'")
			}
		}
		if len(g) != 3 || strings.Trim(g, "0123456789") != "" {
			return bad("index groups are three decimal digits")
		}
		d, _ := strconv.ParseUint(g, 10, 64)
		if n > (^uint64(0)-d)/1000 {
			return bad("tile index overflows 64 bits")
		}
		n = n*1000 + d
	}
	r.Index = n
	// The canonical form rules out leading zero groups and anything else the
	// loose checks above let through.
	if r.Path() != p {
		return bad("not in canonical form (want " + r.Path() + ")")
	}
	return r, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
