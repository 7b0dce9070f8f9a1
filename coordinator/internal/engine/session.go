package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/duckdb/duckdb-go/v2"
)

// Session is one run's locked-down in-memory DuckDB. Its configuration is
// locked before New returns, so no dataset and no query text ever reaches
// an unlocked database. A Session runs one query; LoadTable may be called
// concurrently for different tables, and everything must finish before
// Close.
type Session struct {
	cfg       Config
	connector *duckdb.Connector
	scan      *scanner

	mu       sync.Mutex
	tables   map[string]tableState // by lower-cased name: DuckDB identifiers ignore case
	names    []string              // the loaded tables' names, as loaded
	schemas  []*arrow.Schema       // their schemas, in the same order
	ran      bool
	closed   bool
	models   []*udf          // registered by AddModels
	runCtx   context.Context // Run's context, under which models run
	modelErr *ModelError     // the first model failure of the run
	pending  sync.WaitGroup  // LoadTable and Run calls in flight
}

type tableState int

const (
	tableLoading tableState = iota + 1
	tableLoaded
)

// New opens a Session: an in-memory DuckDB whose configuration is locked
// down (no file system, no network, no extensions, no spilling to disk, the
// memory and thread limits of cfg, time zone UTC) and verified setting by
// setting before it is returned.
func New(cfg Config) (*Session, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if cfg.SpillDir != "" {
		if cfg.spillDir, err = os.MkdirTemp(cfg.SpillDir, "session-"); err != nil {
			return nil, fmt.Errorf("engine: making the session's spill directory in Config.SpillDir: %w", err)
		}
	}
	connector, err := open(ctx, cfg)
	if err != nil {
		cfg.removeSpill()
		return nil, err
	}
	scan := &scanner{connector: connector, threads: cfg.Threads}
	conn, err := connector.Connect(ctx)
	if err == nil {
		err = scan.register(conn)
		conn.Close()
	}
	if err != nil {
		scan.close()
		err = errors.Join(fmt.Errorf("engine: registering the dataset scan: %w", err), connector.Close())
		cfg.removeSpill()
		return nil, err
	}
	return &Session{cfg: cfg, connector: connector, scan: scan, tables: map[string]tableState{}}, nil
}

// Close discards every table and the database. It waits for LoadTable and
// Run calls in flight (cancel their contexts to hurry them). Results
// already returned by Run stay valid.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.pending.Wait()
	for _, u := range s.models {
		u.close(context.Background())
	}
	s.scan.close()
	err := s.connector.Close()
	s.scan.releaseDatasets()
	s.cfg.removeSpill()
	return err
}

// removeSpill removes the session's spill directory and whatever DuckDB
// left in it.
func (c Config) removeSpill() {
	if c.spillDir != "" {
		os.RemoveAll(c.spillDir)
	}
}

// SpillDir returns the directory the session spills to, inside
// Config.SpillDir; empty when it does not spill.
func (s *Session) SpillDir() string { return s.cfg.spillDir }

// begin registers an operation in flight; the returned function ends it.
func (s *Session) begin() (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("engine: the session is closed")
	}
	s.pending.Add(1)
	return s.pending.Done, nil
}

// Settings returns DuckDB's current value of every setting, as
// duckdb_settings() reports it. The lock-down's settings are among them.
func (s *Session) Settings(ctx context.Context) (map[string]string, error) {
	end, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	conn, err := s.connector.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: connecting: %w", err)
	}
	defer conn.Close()
	return currentSettings(ctx, conn)
}
