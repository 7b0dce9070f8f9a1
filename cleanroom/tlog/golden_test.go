package tlog_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

// TestGoldenLog verifies the committed log in testdata/golden-log, written by
// the coordinator's writer with the test key (go test
// ./coordinator/internal/eventlog -run TestWriteGoldenLog -update-golden
// rewrites it): it pins the formats, so a change to them breaks this test,
// and it is a fixture for independent implementations (docs/log.md).
func TestGoldenLog(t *testing.T) {
	dir := filepath.Join("testdata", "golden-log")
	v := tlogtest.Verifier(t)
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	cp := tlogtest.MustVerify(t, v, raw)
	if cp.Size() != tlogtest.GoldenSize {
		t.Fatalf("golden checkpoint has %d entries", cp.Size())
	}
	entries, err := tlog.VerifyEntries(tlogtest.Context(t), tlog.DirFetcher(dir), cp)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if !bytes.Equal(e, tlogtest.GoldenEntry(i)) {
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
	if _, err := v.VerifyInclusionProof(p, tlogtest.GoldenEntry(2)); err != nil {
		t.Fatal(err)
	}
	if again, _ := p.MarshalBinary(); !bytes.Equal(again, enc) {
		t.Fatal("re-encoding the golden proof changes it")
	}
}
