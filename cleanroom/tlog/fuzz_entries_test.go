package tlog_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

// FuzzVerifyEntries serves the golden log with its entry bundle and its
// level-0 hash tile replaced by arbitrary bytes, as a hostile coordinator
// or host could: VerifyEntries never panics, refuses with a *ContentError
// (ErrBadLog), and whatever it accepts are exactly the entries the signed
// checkpoint commits to.
func FuzzVerifyEntries(f *testing.F) {
	dir := filepath.Join("testdata", "golden-log")
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	const bundlePath, tilePath = "tile/entries/000.p/5", "tile/0/000.p/5"
	bundle, tile := read(bundlePath), read(tilePath)
	cp, err := tlogtest.Verifier(f).VerifyCheckpoint(read("checkpoint"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bundle, tile)
	f.Add(bundle[:len(bundle)-1], tile)
	f.Add(bundle, tile[:len(tile)-32])
	f.Add(append(bytes.Clone(bundle), 0, 1, 'x'), tile)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, b, h []byte) {
		fetch := func(_ context.Context, p string) ([]byte, error) {
			switch p {
			case bundlePath:
				return b, nil
			case tilePath:
				return h, nil
			}
			return nil, fs.ErrNotExist
		}
		entries, err := tlog.VerifyEntries(context.Background(), fetch, cp)
		if err != nil {
			var ce *tlog.ContentError
			if !errors.As(err, &ce) || !errors.Is(err, tlog.ErrBadLog) {
				t.Fatalf("refusal %v is not a content error", err)
			}
			return
		}
		if len(entries) != tlogtest.GoldenSize {
			t.Fatalf("accepted %d entries for a checkpoint of %d", len(entries), tlogtest.GoldenSize)
		}
		for i, e := range entries {
			if !bytes.Equal(e, tlogtest.GoldenEntry(i)) {
				t.Fatalf("accepted entry %d = %q, not the logged %q", i, e, tlogtest.GoldenEntry(i))
			}
		}
	})
}
