package eventlog

import (
	"context"
	"crypto/ed25519"
	"fmt"
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

var _ = ed25519.PublicKeySize
