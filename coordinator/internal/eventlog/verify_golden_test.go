package eventlog_test

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite cleanroom/tlog's testdata/golden-log with this writer")

// goldenDir is where cleanroom/tlog's TestGoldenLog reads the golden log.
var goldenDir = filepath.Join("..", "..", "..", "cleanroom", "tlog", "testdata")

// TestWriteGoldenLog writes, with -update-golden, the golden log that
// cleanroom/tlog's TestGoldenLog verifies: entries GoldenEntry(0..4) in
// order, written by this writer with the test key, and the inclusion proof
// of entry 2.
func TestWriteGoldenLog(t *testing.T) {
	if !*updateGolden {
		t.Skip("run with -update-golden to rewrite cleanroom/tlog/testdata/golden-log")
	}
	writeGolden(t, filepath.Join(goldenDir, "golden-log"))
}

func writeGolden(t *testing.T, dir string) {
	work := t.TempDir()
	_, _, err := buildLog(tlogtest.Context(t), work, tlogtest.Identity(), []uint64{tlogtest.GoldenSize}, tlogtest.GoldenEntry)
	if err != nil {
		t.Fatal(err)
	}
	// buildLog appends concurrently; the golden log needs entry i at i.
	raw, _ := os.ReadFile(filepath.Join(work, "checkpoint"))
	cp := tlogtest.MustVerify(t, tlogtest.Verifier(t), raw)
	entries, err := tlog.VerifyEntries(tlogtest.Context(t), tlog.DirFetcher(work), cp)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if !bytes.Equal(e, tlogtest.GoldenEntry(i)) {
			t.Fatalf("appended out of order (entry %d = %q); run again", i, e)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// Copy only what the log serves, at the checkpoint's size.
	err = filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, work+string(filepath.Separator)))
		if _, err := tlog.ParseResourcePath(rel); err != nil {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	path := proofFor(t, dir, 2, tlogtest.GoldenSize)
	ip := &tlog.InclusionProof{Checkpoint: raw, Index: 2, Hashes: make([][32]byte, len(path))}
	for i, h := range path {
		copy(ip.Hashes[i][:], h)
	}
	enc, err := ip.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(goldenDir, "golden-log-entry-2.proof"), enc, 0o644); err != nil {
		t.Fatal(err)
	}
}
