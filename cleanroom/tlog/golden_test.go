package tlog_test

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden-log from the coordinator's writer")

// goldenEntry is entry i of the golden log.
func goldenEntry(i int) []byte { return []byte(fmt.Sprintf("golden entry %d", i)) }

const goldenSize = 5

// TestGoldenLog verifies the committed log in testdata/golden-log, written by
// the coordinator's writer with the test key (go test -run TestGoldenLog
// -update-golden rewrites it): it pins the formats, so a change to them
// breaks this test, and it is a fixture for independent implementations
// (docs/log.md).
func TestGoldenLog(t *testing.T) {
	dir := filepath.Join("testdata", "golden-log")
	if *updateGolden {
		writeGolden(t, dir)
	}
	v := testVerifier(t)
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	cp := mustVerify(t, v, raw)
	if cp.Size() != goldenSize {
		t.Fatalf("golden checkpoint has %d entries", cp.Size())
	}
	entries, err := tlog.VerifyEntries(ctxT(t), tlog.DirFetcher(dir), cp)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if !bytes.Equal(e, goldenEntry(i)) {
			t.Fatalf("entry %d = %q", i, e)
		}
	}
	enc, err := os.ReadFile(filepath.Join("testdata", "golden-log-entry-2.proof"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := tlog.ParseInclusionProof(enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyInclusionProof(p, goldenEntry(2)); err != nil {
		t.Fatal(err)
	}
	if again, _ := p.MarshalBinary(); !bytes.Equal(again, enc) {
		t.Fatal("re-encoding the golden proof changes it")
	}
}

func writeGolden(t *testing.T, dir string) {
	work := t.TempDir()
	_, _, err := buildLog(ctxT(t), work, testIdentity(t), []uint64{goldenSize}, goldenEntry)
	if err != nil {
		t.Fatal(err)
	}
	// buildLog appends concurrently; the golden log needs entry i at i.
	raw, _ := os.ReadFile(filepath.Join(work, "checkpoint"))
	cp := mustVerify(t, testVerifier(t), raw)
	entries, err := tlog.VerifyEntries(ctxT(t), tlog.DirFetcher(work), cp)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if !bytes.Equal(e, goldenEntry(i)) {
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
	path := proofFor(t, dir, 2, goldenSize)
	ip := &tlog.InclusionProof{Checkpoint: raw, Index: 2, Hashes: make([][32]byte, len(path))}
	for i, h := range path {
		copy(ip.Hashes[i][:], h)
	}
	enc, err := ip.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "golden-log-entry-2.proof"), enc, 0o644); err != nil {
		t.Fatal(err)
	}
}
