package coordinator

import (
	"log/slog"
	"sync"

	"cleanroom.dev/cleanroom/coordinator/internal/engine"
)

// spareSession keeps one engine session opened ahead of the next run:
// opening a locked-down DuckDB (creating the database, locking and
// verifying its settings, registering the dataset scan) costs a run
// 12–15 ms on two cores, which the run would otherwise wait for. The spare
// is an engine.Session exactly as engine.New returns it — fresh, locked,
// verified, never given a dataset or a query — so a run that takes it is
// in the state it would be in had it opened its own; each session still
// serves one run only, and a new spare is opened after the run's session
// is closed (never beside it, so a run's peak memory holds one database).
//
// When the spare is taken or failed to open, a run opens its own session
// (engine.New), which reports the engine's error if there is one.
type spareSession struct {
	open   func() (*engine.Session, error)
	logger *slog.Logger

	mu      sync.Mutex
	ready   *engine.Session
	opening chan struct{} // closed when the open in flight ends; nil when none is
	closed  bool
	wg      sync.WaitGroup // the open in flight
}

// fill opens a spare in the background, unless one is ready, one is being
// opened or the coordinator is closing.
func (s *spareSession) fill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.ready != nil || s.opening != nil {
		return
	}
	done := make(chan struct{})
	s.opening = done
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sess, err := s.open()
		s.mu.Lock()
		s.opening = nil
		if err == nil && !s.closed {
			s.ready, sess = sess, nil
		}
		s.mu.Unlock()
		close(done)
		if err != nil {
			s.logger.Warn("opening the next run's engine session ahead of time failed; the run will open its own", "err", err)
		}
		if sess != nil {
			sess.Close()
		}
	}()
}

// wait waits for the open in flight, if any, to end.
func (s *spareSession) wait() {
	s.mu.Lock()
	done := s.opening
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}

// take returns the spare session, waiting for it when it is being opened,
// or nil when there is none (the caller opens its own). The next spare is
// opened by fill, once the caller's run is over.
func (s *spareSession) take() *engine.Session {
	s.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.ready
	s.ready = nil
	return sess
}

// close closes the spare and stops any further one from being opened.
func (s *spareSession) close() {
	s.mu.Lock()
	s.closed = true
	sess := s.ready
	s.ready = nil
	s.mu.Unlock()
	s.wg.Wait()
	if sess != nil {
		sess.Close()
	}
}
