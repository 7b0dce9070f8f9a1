package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"cleanroom.dev/cleanroom/coordinator/internal/engine"
	"cleanroom.dev/cleanroom/coordinator/internal/tee"
)

// TestSpareSession: a spare is opened once however often fill is called
// while one is ready or opening; take hands it out once; after close no
// spare is kept or opened; a failed open leaves nothing to take.
func TestSpareSession(t *testing.T) {
	var opened atomic.Int32
	var fail atomic.Bool
	s := &spareSession{logger: slog.New(slog.DiscardHandler), open: func() (*engine.Session, error) {
		opened.Add(1)
		if fail.Load() {
			return nil, errors.New("the engine does not open")
		}
		return engine.New(engine.Config{Threads: 1, MemoryLimit: 64 << 20})
	}}
	if s.take() != nil {
		t.Fatal("take returned a session before any was opened")
	}
	s.fill()
	s.fill()
	a := s.take()
	if a == nil {
		t.Fatal("take returned no session after fill")
	}
	defer a.Close()
	s.fill()
	s.wait()
	s.fill()
	if n := opened.Load(); n != 2 {
		t.Fatalf("%d sessions opened; want 2 (fill opens one only when none is ready or opening)", n)
	}
	if s.take() == a {
		t.Fatal("take handed out the same session twice")
	}
	fail.Store(true)
	s.fill()
	if got := s.take(); got != nil {
		got.Close()
		t.Fatal("take returned a session after its open failed")
	}
	fail.Store(false)
	s.fill()
	s.close()
	s.fill()
	s.wait()
	if s.ready != nil {
		t.Fatal("a spare is kept after close")
	}
	if n := opened.Load(); n != 4 {
		t.Fatalf("%d sessions opened; want 4 (none after close)", n)
	}
}

// TestOpenPreparesEngineSession: Open returns with the first run's engine
// session open, and Close closes it.
func TestOpenPreparesEngineSession(t *testing.T) {
	ctx := context.Background()
	c, err := Open(ctx, Config{DataDir: filepath.Join(t.TempDir(), "coord"), Attestation: tee.ModeSimulated})
	if err != nil {
		t.Fatal(err)
	}
	if c.spare.ready == nil {
		c.Close(ctx)
		t.Fatal("Open returned without the next run's engine session")
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if c.spare.ready != nil {
		t.Fatal("Close left the spare session open")
	}
}
