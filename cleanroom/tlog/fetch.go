package tlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Fetcher returns the content of one resource of the log, named by its path
// relative to the log root without a leading slash ("checkpoint",
// "tile/0/x001/234", "tile/entries/000.p/17"; see ParseResourcePath). When
// the resource does not exist (HTTP 404) it must return an error that wraps
// fs.ErrNotExist: partial tiles are removed once the full tile exists, and
// the verifier then falls back to the full one. Implementations should bound
// what they read: the largest resource, a full entry bundle, is at most
// 256 × (2 + 65535) bytes.
//
// Whatever a Fetcher returns is verified; a Fetcher needs no integrity of
// its own, only the transport's availability.
type Fetcher func(ctx context.Context, path string) ([]byte, error)

// maxResourceSize is the size of the largest valid resource, a full bundle of
// maximum-size entries.
const maxResourceSize = TileWidth * (2 + MaxEntrySize)

// DirFetcher returns a Fetcher reading the log stored in dir (as the
// coordinator's storage lays it out, or a copy of it). It reads only paths
// that ParseResourcePath accepts, so it never reads outside dir.
func DirFetcher(dir string) Fetcher {
	return func(ctx context.Context, p string) ([]byte, error) {
		r, err := ParseResourcePath(p)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(r.Path())))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file: %w", p, fs.ErrNotExist)
		}
		if fi.Size() > maxResourceSize {
			return nil, fmt.Errorf("%s has %d bytes, more than any log resource may have", p, fi.Size())
		}
		buf := make([]byte, fi.Size())
		if _, err := readFull(f, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
}

func readFull(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ErrBadLog reports log content that does not match a verified checkpoint:
// a missing, malformed or altered tile or entry bundle. Errors that wrap it
// are *ContentError values naming the resource and, where known, the entry.
var ErrBadLog = errors.New("log content does not match its signed checkpoint")

// ContentError says which resource of the log is wrong and why. Index is the
// first entry (or leaf hash) found wrong, or -1 when the fault is not tied to
// one entry.
type ContentError struct {
	Path   string
	Index  int64
	Reason string
}

func (e *ContentError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("%v: %s, entry %d: %s", ErrBadLog, e.Path, e.Index, e.Reason)
	}
	return fmt.Sprintf("%v: %s: %s", ErrBadLog, e.Path, e.Reason)
}

// Unwrap makes errors.Is(err, ErrBadLog) true.
func (e *ContentError) Unwrap() error { return ErrBadLog }

// fetchPartialOrFull fetches the resource of width w (0 = full); if a partial
// one is gone it falls back to the full one. It returns the path whose
// content it returns.
func fetchPartialOrFull(ctx context.Context, f Fetcher, r Resource) (string, []byte, error) {
	p := r.Path()
	data, err := f(ctx, p)
	if err == nil {
		return p, data, nil
	}
	if r.Width == 0 || !errors.Is(err, fs.ErrNotExist) {
		return p, nil, fetchErr(p, err)
	}
	full := r
	full.Width = 0
	fp := full.Path()
	data, err = f(ctx, fp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil, &ContentError{Path: p, Index: -1, Reason: "missing (and so is the full " + fp + "), though the checkpoint covers it"}
		}
		return fp, nil, fetchErr(fp, err)
	}
	return fp, data, nil
}

func fetchErr(p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &ContentError{Path: p, Index: -1, Reason: "missing, though the checkpoint covers it"}
	}
	return fmt.Errorf("fetching %s: %w", p, err)
}

// fetchHashTile returns the first want hashes of tile (level, index), where
// want is the tile's width at the tree size being verified.
func fetchHashTile(ctx context.Context, f Fetcher, level, index uint64, want int) (string, [][]byte, error) {
	width := uint8(0)
	if want < TileWidth {
		width = uint8(want)
	}
	p, data, err := fetchPartialOrFull(ctx, f, Resource{Kind: KindHashTile, Level: uint8(level), Index: index, Width: width})
	if err != nil {
		return p, nil, err
	}
	have := TileWidth
	if r, _ := ParseResourcePath(p); r.Width != 0 {
		have = int(r.Width)
	}
	if len(data) != have*HashSize {
		return p, nil, &ContentError{Path: p, Index: -1, Reason: fmt.Sprintf("has %d bytes, want %d hashes of %d bytes", len(data), have, HashSize)}
	}
	hashes := make([][]byte, want)
	for i := range hashes {
		hashes[i] = data[i*HashSize : (i+1)*HashSize]
	}
	return p, hashes, nil
}

// fetchBundle returns the first want entries of entry bundle index.
func fetchBundle(ctx context.Context, f Fetcher, index uint64, want int) (string, [][]byte, error) {
	width := uint8(0)
	if want < TileWidth {
		width = uint8(want)
	}
	p, data, err := fetchPartialOrFull(ctx, f, Resource{Kind: KindEntryBundle, Index: index, Width: width})
	if err != nil {
		return p, nil, err
	}
	have := TileWidth
	if r, _ := ParseResourcePath(p); r.Width != 0 {
		have = int(r.Width)
	}
	entries, at, err := parseBundle(data, have)
	if err != nil {
		ce := &ContentError{Path: p, Index: -1, Reason: err.Error()}
		if at >= 0 {
			ce.Index = int64(index)*TileWidth + int64(at)
		}
		return p, nil, ce
	}
	return p, entries[:want], nil
}

// ParseEntryBundle parses an entry bundle that must hold exactly n entries,
// each a big-endian 16-bit length followed by that many bytes, with nothing
// after the last. The entries alias data.
func ParseEntryBundle(data []byte, n int) ([][]byte, error) {
	entries, _, err := parseBundle(data, n)
	return entries, err
}

// parseBundle is ParseEntryBundle that also returns the position in the
// bundle of the entry where parsing failed, or -1 if the fault is the count.
func parseBundle(data []byte, n int) ([][]byte, int, error) {
	entries := make([][]byte, 0, n)
	for off := 0; off < len(data); {
		if len(entries) == n {
			return nil, -1, fmt.Errorf("holds more than the %d entries its name says (%d bytes left over at offset %d)", n, len(data)-off, off)
		}
		if len(data)-off < 2 {
			return nil, len(entries), fmt.Errorf("ends inside the length prefix of entry %d of the bundle (offset %d)", len(entries), off)
		}
		l := int(binary.BigEndian.Uint16(data[off:]))
		off += 2
		if len(data)-off < l {
			return nil, len(entries), fmt.Errorf("entry %d of the bundle claims %d bytes but only %d remain", len(entries), l, len(data)-off)
		}
		entries = append(entries, data[off:off+l:off+l])
		off += l
	}
	if len(entries) != n {
		return nil, -1, fmt.Errorf("holds %d entries, its name says %d", len(entries), n)
	}
	return entries, -1, nil
}
