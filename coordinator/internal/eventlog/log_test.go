package eventlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
)

func replayAll(t testing.TB, l *Log) [][]byte {
	t.Helper()
	var got [][]byte
	err := l.Replay(ctxT(t), func(i uint64, e []byte) error {
		if i != uint64(len(got)) {
			t.Fatalf("replay gave index %d after %d entries", i, len(got))
		}
		got = append(got, bytes.Clone(e))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAppendReplayAcrossSizes(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	l := openTest(t, dir)
	if got := replayAll(t, l); len(got) != 0 {
		t.Fatalf("new log replays %d entries", len(got))
	}
	// Cross bundle boundaries, fill a level-1 node, leave partial tiles.
	byIndex := appendN(t, l, 0, 600)
	want := make([][]byte, 600)
	for i, e := range byIndex {
		want[i] = e
	}
	got := replayAll(t, l)
	if len(got) != len(want) {
		t.Fatalf("replayed %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("entry %d = %q, want %q", i, got[i], want[i])
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Reopen: replay checks consistency with the kept checkpoint.
	l2 := openTest(t, dir)
	if got := replayAll(t, l2); len(got) != len(want) {
		t.Fatalf("after reopen replayed %d entries, want %d", len(got), len(want))
	}
	idx, err := l2.Append(ctx, []byte("after reopen"))
	if err != nil || idx != uint64(len(want)) {
		t.Fatalf("append after reopen = %d, %v; want %d", idx, err, len(want))
	}
}

func TestConcurrentAppenders(t *testing.T) {
	ctx := ctxT(t)
	l := openTest(t, t.TempDir())
	const workers, each = 16, 40
	var mu sync.Mutex
	byIndex := map[uint64][]byte{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var last uint64
			for i := range each {
				e := []byte(strings.Repeat("x", w) + string(entryFor(w*each+i)))
				idx, err := l.Append(ctx, e)
				if err != nil {
					t.Error(err)
					return
				}
				if i > 0 && idx <= last {
					t.Errorf("worker %d: index %d after %d: one goroutine's appends must be ordered", w, idx, last)
				}
				last = idx
				mu.Lock()
				if _, dup := byIndex[idx]; dup {
					t.Errorf("index %d given twice", idx)
				}
				byIndex[idx] = e
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got := replayAll(t, l)
	if len(got) != workers*each || len(byIndex) != workers*each {
		t.Fatalf("replayed %d entries, %d indices acknowledged, want %d", len(got), len(byIndex), workers*each)
	}
	for i, e := range got {
		if !bytes.Equal(byIndex[uint64(i)], e) {
			t.Fatalf("entry %d = %q, acknowledged %q", i, e, byIndex[uint64(i)])
		}
	}
}

func TestProofs(t *testing.T) {
	ctx := ctxT(t)
	l := openTest(t, t.TempDir())
	entries := appendN(t, l, 0, 300)
	cp, err := l.WaitCheckpoint(ctx, 300)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size() < 300 {
		t.Fatalf("checkpoint size %d", cp.Size())
	}
	for _, i := range []uint64{0, 1, 255, 256, 299} {
		p, err := l.InclusionProof(ctx, i, cp.Size())
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyInclusion(cp, i, entries[i], p); err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
		if err := tlog.VerifyInclusion(cp, i, entries[(i+1)%300], p); !errors.Is(err, tlog.ErrBadProof) {
			t.Errorf("entry %d with wrong bytes: err = %v, want ErrBadProof", i, err)
		}
		ip, err := l.ProveInclusion(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := ip.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		dec, err := tlog.ParseInclusionProof(enc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Verifier().VerifyInclusionProof(dec, entries[i]); err != nil {
			t.Errorf("encoded proof of entry %d: %v", i, err)
		}
	}
	old, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, int(old.Size()), 50)
	cur, err := l.WaitCheckpoint(ctx, old.Size()+50)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.ConsistencyProof(ctx, old.Size(), cur.Size())
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyConsistencyProof(old, cur, p); err != nil {
		t.Fatal(err)
	}
	if _, err := l.InclusionProof(ctx, 5, cur.Size()+1000); err == nil {
		t.Error("proof for a size beyond the log: no error")
	}
}

func TestOpenRefusals(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	l := openTest(t, dir)
	id, origin := testKey(t)
	if _, err := Open(dir, id.Signer(), origin, testOpts); err == nil || !strings.Contains(err.Error(), "already open") {
		t.Fatalf("second Open of an open log: err = %v", err)
	}
	if _, err := l.Append(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: err = %v", err)
	}
	other, err := cleanroom.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, other.Signer(), tlog.Origin(other.Public()), testOpts); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Fatalf("Open with another key: err = %v, want ErrBadCheckpoint", err)
	}
	if _, err := Open(dir, id.Signer(), origin+"x", testOpts); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Fatalf("Open with another origin: err = %v, want ErrBadCheckpoint", err)
	}
	if _, err := Open(t.TempDir(), id.Signer(), "bad origin", testOpts); err == nil {
		t.Fatal("origin with a space accepted")
	}
	if _, err := Open(t.TempDir(), id.Signer(), origin, &Options{CheckpointInterval: 10}); err == nil {
		t.Fatal("checkpoint interval below the minimum accepted")
	}
	l2 := openTest(t, dir)
	if _, err := l2.Append(ctx, make([]byte, tlog.MaxEntrySize+1)); !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("oversized entry: err = %v", err)
	}
	if _, err := l2.Append(ctx, nil); !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("empty entry (a view's redacted slot): err = %v", err)
	}
	if _, err := l2.Append(ctx, make([]byte, tlog.MaxEntrySize)); err != nil {
		t.Fatalf("entry of the maximum size: %v", err)
	}
}

// TestReplayRefusesTamperedLog alters the stored log while the coordinator
// is down: Replay must refuse it rather than rebuild state from it.
func TestReplayRefusesTamperedLog(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	l := openTest(t, dir)
	appendN(t, l, 0, 20)
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "tile", "entries", "000.p", "20")
	orig, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Clone(orig)
	forged[10] ^= 1
	if err := os.WriteFile(bundle, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	l2 := openTest(t, dir)
	err = l2.Replay(ctx, func(uint64, []byte) error {
		t.Fatal("Replay handed out an entry of a tampered log")
		return nil
	})
	if !errors.Is(err, tlog.ErrBadLog) {
		t.Fatalf("replay of a tampered log: err = %v, want ErrBadLog", err)
	}
	if err := l2.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A checkpoint altered on disk is refused at Open.
	if err := os.WriteFile(bundle, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	cpPath := filepath.Join(dir, "checkpoint")
	cp, err := os.ReadFile(cpPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cpPath, bytes.Replace(cp, []byte("\n20\n"), []byte("\n19\n"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	id, origin := testKey(t)
	if _, err := Open(dir, id.Signer(), origin, testOpts); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Fatalf("Open with an altered checkpoint: err = %v", err)
	}
}

// TestAppendFailureIsSticky breaks the storage under an open log: the
// failing Append reports that its outcome is unknown and every later one is
// refused until the log is reopened.
func TestAppendFailureIsSticky(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	l := openTest(t, dir)
	if _, err := l.Append(ctx, []byte("fine")); err != nil {
		t.Fatal(err)
	}
	entries := filepath.Join(dir, "tile", "entries")
	if err := os.RemoveAll(entries); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entries, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []byte("fails")); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "may or may not be in the log") {
		t.Fatalf("append on broken storage: err = %v, want ErrFailed", err)
	}
	if err := os.Remove(entries); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []byte("refused")); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failure: err = %v, want ErrFailed", err)
	}
}

// TestOpenRefusesLostTreeState checks that Open does not start afresh, or
// go back, over a log whose signed checkpoint says it holds more.
func TestOpenRefusesLostTreeState(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	l := openTest(t, dir)
	appendN(t, l, 0, 5)
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	id, origin := testKey(t)
	state := filepath.Join(dir, treeStatePath)
	saved, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := os.ReadFile(filepath.Join(dir, "checkpoint"))

	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, id.Signer(), origin, testOpts); err == nil || !strings.Contains(err.Error(), "refusing to start the log afresh") {
		t.Fatalf("Open without tree state: err = %v", err)
	}
	// Tessera's tree state is JSON {"size":N,"root":base64}.
	if err := os.WriteFile(state, []byte(`{"size":2,"root":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, id.Signer(), origin, testOpts); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("Open with a shorter tree state: err = %v", err)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, "checkpoint")); !bytes.Equal(now, cp) {
		t.Fatal("a refused Open changed the checkpoint")
	}
	if err := os.WriteFile(state, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := replayAll(t, openTest(t, dir)); len(got) != 5 {
		t.Fatalf("replayed %d entries after restoring the tree state", len(got))
	}
}
