package eventlog_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

func TestCheckConsistency(t *testing.T) {
	fx := getFixture(t)
	v := tlogtest.Verifier(t)
	f := tlog.DirFetcher(fx.dir)
	cp1, cp300, cp600 := tlogtest.MustVerify(t, v, fx.cps[1]), tlogtest.MustVerify(t, v, fx.cps[300]), tlogtest.MustVerify(t, v, fx.cps[600])
	for _, pair := range [][2]*tlog.Checkpoint{{cp1, cp300}, {cp1, cp600}, {cp300, cp600}, {cp600, cp600}} {
		p, err := tlog.CheckConsistency(tlogtest.Context(t), f, pair[0], pair[1])
		if err != nil {
			t.Fatalf("%v -> %v: %v", pair[0], pair[1], err)
		}
		if err := tlog.VerifyConsistencyProof(pair[0], pair[1], p); err != nil {
			t.Fatalf("returned proof does not verify: %v", err)
		}
	}
}

func TestCheckConsistencyRollback(t *testing.T) {
	fx := getFixture(t)
	v := tlogtest.Verifier(t)
	kept, served := tlogtest.MustVerify(t, v, fx.cps[600]), tlogtest.MustVerify(t, v, fx.cps[300])
	_, err := tlog.CheckConsistency(tlogtest.Context(t), tlog.DirFetcher(fx.dir), kept, served)
	var ce *tlog.ConsistencyError
	if !errors.As(err, &ce) || !errors.Is(err, tlog.ErrInconsistent) {
		t.Fatalf("err = %v, want a ConsistencyError", err)
	}
	if ce.Kind != tlog.Rollback || !bytes.Equal(ce.Old.Bytes(), fx.cps[600]) || !bytes.Equal(ce.New.Bytes(), fx.cps[300]) {
		t.Fatalf("reported %s with %v / %v", ce.Kind, ce.Old, ce.New)
	}
}

// TestCheckConsistencyFork builds a second log signed by the same key with
// different entries: the coordinator showing two histories.
func TestCheckConsistencyFork(t *testing.T) {
	fx := getFixture(t)
	v := tlogtest.Verifier(t)
	forkDir := t.TempDir()
	forkCPs, _, err := buildLog(tlogtest.Context(t), forkDir, tlogtest.Identity(), []uint64{300, 400}, func(n int) []byte {
		return []byte(fmt.Sprintf("forked history %d", n))
	})
	if err != nil {
		t.Fatal(err)
	}
	kept300 := tlogtest.MustVerify(t, v, fx.cps[300])

	t.Run("same size, different root", func(t *testing.T) {
		served := tlogtest.MustVerify(t, v, forkCPs[300])
		_, err := tlog.CheckConsistency(tlogtest.Context(t), tlog.DirFetcher(forkDir), kept300, served)
		var ce *tlog.ConsistencyError
		if !errors.As(err, &ce) || ce.Kind != tlog.Fork || ce.Proof != nil {
			t.Fatalf("err = %v, want a fork shown by the checkpoints alone", err)
		}
		if !bytes.Equal(ce.Old.Bytes(), fx.cps[300]) || !bytes.Equal(ce.New.Bytes(), forkCPs[300]) {
			t.Fatal("evidence does not carry the two checkpoints")
		}
	})
	t.Run("larger tree without the kept one", func(t *testing.T) {
		served := tlogtest.MustVerify(t, v, forkCPs[400])
		_, err := tlog.CheckConsistency(tlogtest.Context(t), tlog.DirFetcher(forkDir), kept300, served)
		var ce *tlog.ConsistencyError
		if !errors.As(err, &ce) || ce.Kind != tlog.Fork {
			t.Fatalf("err = %v, want a fork", err)
		}
		if len(ce.Proof) == 0 {
			t.Fatal("evidence does not carry the failed proof")
		}
		// The evidence stands on its own: the proof fails for anyone.
		if err := tlog.VerifyConsistencyProof(ce.Old, ce.New, ce.Proof); err == nil {
			t.Fatal("the saved proof verifies")
		}
	})
	t.Run("tampered hash tile on the honest log", func(t *testing.T) {
		dir := copyLog(t, fx.dir)
		editFile(t, dir, "tile/0/002.p/88", flipByte(87*32))
		_, err := tlog.CheckConsistency(tlogtest.Context(t), tlog.DirFetcher(dir), kept300, tlogtest.MustVerify(t, v, fx.cps[600]))
		if !errors.Is(err, tlog.ErrInconsistent) {
			t.Fatalf("err = %v, want ErrInconsistent", err)
		}
	})
	t.Run("missing hash tile", func(t *testing.T) {
		dir := copyLog(t, fx.dir)
		if err := os.RemoveAll(filepath.Join(dir, "tile/0/002.p")); err != nil {
			t.Fatal(err)
		}
		_, err := tlog.CheckConsistency(tlogtest.Context(t), tlog.DirFetcher(dir), kept300, tlogtest.MustVerify(t, v, fx.cps[600]))
		var ce *tlog.ContentError
		if !errors.As(err, &ce) || ce.Path != "tile/0/002.p/88" {
			t.Fatalf("err = %v, want the missing tile named", err)
		}
	})
	t.Run("another log's checkpoint", func(t *testing.T) {
		key := tlogtest.Identity().Signer().(ed25519.PrivateKey)
		other, err := tlog.NewVerifier("example.com/log", key.Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		root := kept300.Root()
		raw := tlogtest.SignNote(t, fmt.Sprintf("example.com/log\n300\n%s\n", base64.StdEncoding.EncodeToString(root[:])), tlogtest.NewSigner(t, "example.com/log", key))
		otherCP := tlogtest.MustVerify(t, other, raw)
		_, err = tlog.CheckConsistency(tlogtest.Context(t), tlog.DirFetcher(fx.dir), kept300, otherCP)
		if !errors.Is(err, tlog.ErrBadCheckpoint) || errors.Is(err, tlog.ErrInconsistent) {
			t.Fatalf("err = %v, want ErrBadCheckpoint (different logs), not a fork", err)
		}
	})
}
