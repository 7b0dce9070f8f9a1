package eventlog_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator/internal/eventlog"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

func entryFor(i int) []byte { return []byte(fmt.Sprintf("event %d: %x", i, i*7919)) }

// fixtureLog is a real log written by the coordinator's writer, with the
// checkpoints it published at several sizes.
type fixtureLog struct {
	dir     string
	cps     map[uint64][]byte // checkpoint bytes by size
	entries [][]byte          // entry i is at index i
}

var (
	fixtureOnce sync.Once
	fixture     fixtureLog
	fixtureErr  error
)

// fixtureSizes are the sizes at which the fixture keeps a checkpoint. The
// last one has full and partial tiles at level 0 and a partial level-1 tile.
var fixtureSizes = []uint64{1, 300, 600}

// buildLog appends entries made by entry(n) (n counting from 0) to a new log
// in dir, concurrently to be quick, keeping a checkpoint at each size in
// sizes. It returns the checkpoints and the entries in log order.
func buildLog(ctx context.Context, dir string, id *cleanroom.Identity, sizes []uint64, entry func(int) []byte) (map[uint64][]byte, [][]byte, error) {
	l, err := eventlog.Open(dir, id.Signer(), tlog.Origin(id.Public()), &eventlog.Options{CheckpointInterval: eventlog.MinCheckpointInterval})
	if err != nil {
		return nil, nil, err
	}
	defer l.Close(ctx)
	cps := map[uint64][]byte{}
	entries := make([][]byte, sizes[len(sizes)-1])
	n := 0
	for _, size := range sizes {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		next := make(chan int)
		for range 16 {
			wg.Go(func() {
				for k := range next {
					e := entry(k)
					idx, err := l.Append(ctx, e)
					if err != nil {
						errs <- err
						continue
					}
					entries[idx] = e
				}
			})
		}
		for ; n < int(size); n++ {
			next <- n
		}
		close(next)
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return nil, nil, err
		}
		cp, err := l.WaitCheckpoint(ctx, size)
		if err != nil {
			return nil, nil, err
		}
		if cp.Size() != size {
			return nil, nil, fmt.Errorf("checkpoint covers %d entries, want %d", cp.Size(), size)
		}
		cps[size] = cp.Bytes()
	}
	return cps, entries, l.Close(ctx)
}

// getFixture returns the shared fixture log; tests must not modify it (use
// copyLog).
func getFixture(t *testing.T) fixtureLog {
	t.Helper()
	fixtureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tlog-fixture-")
		if err != nil {
			fixtureErr = err
			return
		}
		fixture.dir = dir
		fixture.cps, fixture.entries, fixtureErr = buildLog(context.Background(), dir, tlogtest.Identity(), fixtureSizes, entryFor)
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixture
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.dir != "" {
		os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

// copyLog copies the log files of src into a fresh directory.
func copyLog(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// httpsFetcher serves dir's log through the coordinator's handler, mounted
// under /log/ on a real TLS server on loopback, and returns a Fetcher over it.
func httpsFetcher(t *testing.T, dir string) tlog.Fetcher {
	t.Helper()
	id := tlogtest.Identity()
	l, err := eventlog.Open(dir, id.Signer(), tlog.Origin(id.Public()), &eventlog.Options{CheckpointInterval: eventlog.MinCheckpointInterval})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	mux := http.NewServeMux()
	mux.Handle("/log/", http.StripPrefix("/log", l.Handler()))
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	c := srv.Client()
	return func(ctx context.Context, p string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/log/"+p, nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return io.ReadAll(io.LimitReader(resp.Body, 20<<20))
		case http.StatusNotFound:
			return nil, fmt.Errorf("GET %s: %w", p, fs.ErrNotExist)
		default:
			return nil, fmt.Errorf("GET %s: %s", p, resp.Status)
		}
	}
}
