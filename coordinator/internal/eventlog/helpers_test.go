package eventlog

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
)

// testOpts are fast options for tests: the shortest checkpoint interval.
var testOpts = &Options{CheckpointInterval: MinCheckpointInterval}

// testKey is a fixed coordinator identity, so child processes can rebuild it.
func testKey(t testing.TB) (*cleanroom.Identity, string) {
	t.Helper()
	id, err := cleanroom.ParseIdentity([]byte(testSecretKey))
	if err != nil {
		t.Fatal(err)
	}
	return id, tlog.Origin(id.Public())
}

// testSecretKey was made with `cleanroom keygen`; it protects nothing.
const testSecretKey = "CLEANROOM-SECRET-KEY-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-Pw"

func openTest(t testing.TB, dir string) *Log {
	t.Helper()
	id, origin := testKey(t)
	l, err := Open(dir, id.Signer(), origin, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func entryFor(i int) []byte { return []byte(fmt.Sprintf("event %d: %x", i, i*i)) }

// appendN appends n entries from 16 goroutines and returns the entries by
// index; it checks that the indices are exactly first..first+n-1.
func appendN(t testing.TB, l *Log, first, n int) map[uint64][]byte {
	t.Helper()
	ctx := ctxT(t)
	var mu sync.Mutex
	got := map[uint64][]byte{}
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for k := range next {
				e := entryFor(first + k)
				idx, err := l.Append(ctx, e)
				if err != nil {
					t.Error(err)
					continue
				}
				mu.Lock()
				got[idx] = e
				mu.Unlock()
			}
		})
	}
	for k := range n {
		next <- k
	}
	close(next)
	wg.Wait()
	for i := first; i < first+n; i++ {
		if got[uint64(i)] == nil {
			t.Fatalf("index %d not given to any of %d appends from %d", i, n, first)
		}
	}
	return got
}
