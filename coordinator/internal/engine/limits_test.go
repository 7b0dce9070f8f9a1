package engine

import (
	"context"

	"errors"
	"github.com/apache/arrow-go/v18/arrow/array"
	"os"
	"testing"
	"time"
)

// TestMemoryLimitFailsCleanly runs a query that needs far more than the
// session's 64 MiB: it must fail with ErrResourceLimit, write nothing to
// disk, and leave the process able to run the next session.
func TestMemoryLimitFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s := newSession(t, Config{MemoryLimit: 64 << 20, Threads: 2})
	imp, conv := scenario(2000, 13)
	load(t, s, imp, conv)
	const q = `SELECT count(*) AS n FROM (SELECT DISTINCT i, 'padding-to-make-rows-wide-' || i::VARCHAR AS s FROM range(20000000) t(i))`
	res, err := s.Run(context.Background(), q, noLimit)
	if err == nil {
		res.Release()
		t.Fatal("a query needing gigabytes ran in 64 MiB")
	}
	if !errors.Is(err, ErrResourceLimit) {
		t.Fatalf("got %v, want ErrResourceLimit", err)
	}
	t.Log(firstLine(err))
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("DuckDB wrote to disk: %v", entries)
	}
	// The process stays usable.
	s2 := newSession(t, Config{MemoryLimit: 64 << 20})
	load(t, s2, imp, conv)
	res, err = s2.Run(context.Background(), scenarioQuery, noLimit)
	if err != nil {
		t.Fatal(err)
	}
	res.Release()
}

// TestDatasetsLiveOutsideTheMemoryLimit loads more data than the memory
// limit: datasets stay in the caller's Arrow memory, and the limit bounds
// only what queries build.
func TestDatasetsLiveOutsideTheMemoryLimit(t *testing.T) {
	s := newSession(t, Config{MemoryLimit: 32 << 20, Threads: 1})
	imp, _ := scenario(2_000_000, 14)
	defer imp.release()
	load(t, s, imp)
	res, err := s.Run(context.Background(), "SELECT count(*) AS n, max(shown_at) AS last FROM impressions", noLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	if n := res.Batches[0].Column(0).(*array.Int64).Value(0); n != 2_000_000 {
		t.Fatalf("count %d", n)
	}
}

// TestCancelInterruptsQuery cancels a cross join that would run for hours.
func TestCancelInterruptsQuery(t *testing.T) {
	s := newSession(t, Config{Threads: 2})
	imp, conv := scenario(1000, 16)
	load(t, s, imp, conv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		res, err := s.Run(ctx, "SELECT sum(a.range * b.range) AS s FROM range(10000000) a, range(10000000) b", noLimit)
		if err == nil {
			res.Release()
		}
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// The process stays usable.
	s2 := newSession(t, Config{})
	load(t, s2, imp, conv)
	res, err := s2.Run(context.Background(), scenarioQuery, noLimit)
	if err != nil {
		t.Fatal(err)
	}
	res.Release()
}

func TestSessionRunsOnce(t *testing.T) {
	s := newSession(t, Config{})
	imp, conv := scenario(100, 17)
	load(t, s, imp, conv)
	res, err := s.Run(context.Background(), "SELECT 1 AS x", noLimit)
	if err != nil {
		t.Fatal(err)
	}
	res.Release()
	if _, err := s.Run(context.Background(), "SELECT 1 AS x", noLimit); err == nil {
		t.Error("a second Run succeeded")
	}
	if err := s.LoadTable(context.Background(), "late", imp.schema, imp.reader(t)); err == nil {
		t.Error("LoadTable after Run succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), "SELECT 1 AS x", noLimit); err == nil {
		t.Error("Run after Close succeeded")
	}
}
