package eventlog_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

func TestVerifyEntries(t *testing.T) {
	fx := getFixture(t)
	v := tlogtest.Verifier(t)
	for _, size := range fixtureSizes {
		cp := tlogtest.MustVerify(t, v, fx.cps[size])
		entries, err := tlog.VerifyEntries(tlogtest.Context(t), tlog.DirFetcher(fx.dir), cp)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if uint64(len(entries)) != size {
			t.Fatalf("size %d: got %d entries", size, len(entries))
		}
		for i, e := range entries {
			if !bytes.Equal(e, fx.entries[i]) {
				t.Fatalf("size %d: entry %d = %q", size, i, e)
			}
		}
	}
}

func TestVerifyEntriesOverHTTPS(t *testing.T) {
	fx := getFixture(t)
	dir := copyLog(t, fx.dir)
	f := httpsFetcher(t, dir)
	v := tlogtest.Verifier(t)
	raw, err := f(tlogtest.Context(t), "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	cp := tlogtest.MustVerify(t, v, raw)
	if cp.Size() != 600 {
		t.Fatalf("served checkpoint has %d entries", cp.Size())
	}
	if _, err := tlog.VerifyEntries(tlogtest.Context(t), f, cp); err != nil {
		t.Fatal(err)
	}
	old := tlogtest.MustVerify(t, v, fx.cps[300])
	if _, err := tlog.CheckConsistency(tlogtest.Context(t), f, old, cp); err != nil {
		t.Fatal(err)
	}
}

// editFile applies edit to the file at rel in dir.
func editFile(t *testing.T, dir, rel string, edit func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(dir, rel)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, edit(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func flipByte(off int) func([]byte) []byte {
	return func(b []byte) []byte {
		b = bytes.Clone(b)
		b[off] ^= 0x01
		return b
	}
}

// bundleEdit re-encodes a bundle after changing its entries.
func bundleEdit(n int, change func([][]byte) [][]byte) func([]byte) []byte {
	return func(b []byte) []byte {
		es, err := tlog.ParseEntryBundle(b, n)
		if err != nil {
			panic(err)
		}
		var out []byte
		for _, e := range change(es) {
			out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
			out = append(out, e...)
		}
		return out
	}
}

// entryOffset is the offset of entry k's bytes in the fixture's bundle
// whose first entry is at index first.
func entryOffset(first, k int) int {
	off := 0
	for i := range k {
		off += 2 + len(fixture.entries[first+i])
	}
	return off + 2
}

func TestVerifyEntriesTampering(t *testing.T) {
	fx := getFixture(t)
	v := tlogtest.Verifier(t)
	forged := []byte("forged event")
	if bytes.Equal(fx.entries[3], forged) {
		t.Fatal("fixture entry 3 must differ from the forgery")
	}
	// At size 600: bundles/tiles 000 and 001 are full, 002.p/88 partial;
	// level 1 has the partial tile 000.p/2.
	tests := []struct {
		name      string
		size      uint64
		tamper    func(t *testing.T, dir string)
		wantPath  string
		wantIndex int64
		wantText  string
	}{
		{
			name:     "flipped byte in a full entry bundle",
			size:     600,
			tamper:   func(t *testing.T, d string) { editFile(t, d, "tile/entries/001", flipByte(entryOffset(256, 44)+3)) },
			wantPath: "tile/entries/001", wantIndex: 300, wantText: "not the one the signed root commits to",
		},
		{
			name:     "flipped byte in a partial entry bundle",
			size:     600,
			tamper:   func(t *testing.T, d string) { editFile(t, d, "tile/entries/002.p/88", flipByte(entryOffset(512, 87))) },
			wantPath: "tile/entries/002.p/88", wantIndex: 599,
		},
		{
			name: "length prefix altered",
			size: 600,
			tamper: func(t *testing.T, d string) {
				editFile(t, d, "tile/entries/000", func(b []byte) []byte {
					binary.BigEndian.PutUint16(b[entryOffset(0, 10)-2:], 0xffff)
					return b
				})
			},
			wantPath: "tile/entries/000", wantIndex: 10, wantText: "claims 65535 bytes",
		},
		{
			name:     "flipped byte in a full level-0 tile",
			size:     600,
			tamper:   func(t *testing.T, d string) { editFile(t, d, "tile/0/001", flipByte(5*32+7)) },
			wantPath: "tile/0/001", wantIndex: 261, wantText: "leaf hash in this hash tile",
		},
		{
			name:     "flipped byte in a partial level-0 tile",
			size:     600,
			tamper:   func(t *testing.T, d string) { editFile(t, d, "tile/0/002.p/88", flipByte(80*32)) },
			wantPath: "tile/0/002.p/88", wantIndex: 592,
		},
		{
			name:     "flipped byte in a level-1 tile",
			size:     600,
			tamper:   func(t *testing.T, d string) { editFile(t, d, "tile/1/000.p/2", flipByte(32+31)) },
			wantPath: "tile/1/000.p/2", wantIndex: -1, wantText: "root of entries 256 to 511",
		},
		{
			name: "level-0 tile of the wrong length",
			size: 600,
			tamper: func(t *testing.T, d string) {
				editFile(t, d, "tile/0/000", func(b []byte) []byte { return b[:len(b)-1] })
			},
			wantPath: "tile/0/000", wantIndex: -1, wantText: "bytes",
		},
		{
			name: "entry removed (bundle one short)",
			size: 600,
			tamper: func(t *testing.T, d string) {
				editFile(t, d, "tile/entries/000", bundleEdit(256, func(es [][]byte) [][]byte { return append(es[:10:10], es[11:]...) }))
			},
			wantPath: "tile/entries/000", wantIndex: -1, wantText: "holds 255 entries",
		},
		{
			name: "entry removed, later ones shifted down",
			size: 600,
			tamper: func(t *testing.T, d string) {
				editFile(t, d, "tile/entries/000", bundleEdit(256, func(es [][]byte) [][]byte {
					return append(append(es[:10:10], es[11:]...), []byte("filler"))
				}))
			},
			wantPath: "tile/entries/000", wantIndex: 10,
		},
		{
			name: "entry inserted",
			size: 600,
			tamper: func(t *testing.T, d string) {
				editFile(t, d, "tile/entries/001", bundleEdit(256, func(es [][]byte) [][]byte {
					return append(append(es[:5:5], []byte("forged event")), es[5:255]...)
				}))
			},
			wantPath: "tile/entries/001", wantIndex: 261,
		},
		{
			name: "entry appended to a full bundle",
			size: 600,
			tamper: func(t *testing.T, d string) {
				editFile(t, d, "tile/entries/000", bundleEdit(256, func(es [][]byte) [][]byte { return append(es, []byte("extra")) }))
			},
			wantPath: "tile/entries/000", wantIndex: -1, wantText: "more than the 256",
		},
		{
			name: "truncated bundle",
			size: 600,
			tamper: func(t *testing.T, d string) {
				editFile(t, d, "tile/entries/001", func(b []byte) []byte { return b[:entryOffset(256, 100)+3] })
			},
			wantPath: "tile/entries/001", wantIndex: 356, wantText: "claims",
		},
		{
			name: "log truncated: last bundle gone",
			size: 600,
			tamper: func(t *testing.T, d string) {
				if err := os.RemoveAll(filepath.Join(d, "tile/entries/002.p")); err != nil {
					t.Fatal(err)
				}
			},
			wantPath: "tile/entries/002.p/88", wantIndex: -1, wantText: "missing",
		},
		{
			name: "level-1 tile gone",
			size: 600,
			tamper: func(t *testing.T, d string) {
				if err := os.RemoveAll(filepath.Join(d, "tile/1")); err != nil {
					t.Fatal(err)
				}
			},
			wantPath: "tile/1/000.p/2", wantIndex: -1, wantText: "missing",
		},
		{
			name: "bundle and tile altered alike",
			size: 600,
			tamper: func(t *testing.T, d string) {
				editFile(t, d, "tile/entries/000", bundleEdit(256, func(es [][]byte) [][]byte { es[3] = forged; return es }))
				h := tlog.HashLeaf(forged)
				editFile(t, d, "tile/0/000", func(b []byte) []byte { copy(b[3*32:], h[:]); return b })
			},
			wantPath: "tile/entries and tile/0", wantIndex: -1, wantText: "agree with each other",
		},
		{
			name: "bundle and tile both altered differently",
			size: 600,
			tamper: func(t *testing.T, d string) {
				editFile(t, d, "tile/entries/000", flipByte(entryOffset(0, 7)))
				editFile(t, d, "tile/0/000", flipByte(3*32))
			},
			wantPath: "tile/entries/000 and tile/0/000", wantIndex: 3, wantText: "neither matches",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyLog(t, fx.dir)
			tc.tamper(t, dir)
			cp := tlogtest.MustVerify(t, v, fx.cps[tc.size])
			_, err := tlog.VerifyEntries(tlogtest.Context(t), tlog.DirFetcher(dir), cp)
			var ce *tlog.ContentError
			if !errors.As(err, &ce) || !errors.Is(err, tlog.ErrBadLog) {
				t.Fatalf("err = %v, want a ContentError", err)
			}
			if ce.Path != tc.wantPath || ce.Index != tc.wantIndex {
				t.Fatalf("reported %s entry %d (%v), want %s entry %d", ce.Path, ce.Index, err, tc.wantPath, tc.wantIndex)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantText)
			}
		})
	}
}

// TestVerifyEntriesFallsBackToFullTiles checks a reader holding an older
// checkpoint once the partial tiles it names are gone (the writer removes
// them when the full ones exist).
func TestVerifyEntriesFallsBackToFullTiles(t *testing.T) {
	fx := getFixture(t)
	dir := copyLog(t, fx.dir)
	for _, p := range []string{"tile/entries/001.p", "tile/0/001.p"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	v := tlogtest.Verifier(t)
	cp := tlogtest.MustVerify(t, v, fx.cps[300]) // names tile/entries/001.p/44 and tile/0/001.p/44
	entries, err := tlog.VerifyEntries(tlogtest.Context(t), tlog.DirFetcher(dir), cp)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 300 {
		t.Fatalf("got %d entries", len(entries))
	}
	// A tampered full tile is still caught when it stands in for a partial.
	editFile(t, dir, "tile/0/001", flipByte(10*32))
	_, err = tlog.VerifyEntries(tlogtest.Context(t), tlog.DirFetcher(dir), cp)
	var ce *tlog.ContentError
	if !errors.As(err, &ce) || ce.Path != "tile/0/001" || ce.Index != 266 {
		t.Fatalf("err = %v, want tile/0/001 entry 266", err)
	}
}

func TestVerifyEntriesTamperedCheckpoint(t *testing.T) {
	fx := getFixture(t)
	v := tlogtest.Verifier(t)
	raw := bytes.Clone(fx.cps[600])
	i := bytes.Index(raw, []byte("\n600\n"))
	raw[i+3] = '1' // claims 610 entries
	if _, err := v.VerifyCheckpoint(raw); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Fatalf("altered checkpoint: %v", err)
	}
}
