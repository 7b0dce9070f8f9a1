package engine

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time used by the process so far: on a shared machine
// it measures work more steadily than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScenario measures the example scenario at 1M and 10M impressions
// (and a tenth as many conversions):
//
//   - engine: open a locked session, load (check and register) both tables
//     in parallel from Arrow batches, run the query and apply the policy,
//     close;
//   - plain-parquet: an ordinary DuckDB running the same SQL over the same
//     data in Snappy-compressed Parquet files.
//
// Both use GOMAXPROCS threads and report the process CPU time per run
// (cpu-ms); the engine reports its load and query wall times separately
// (load-ms, query-ms).
func BenchmarkScenario(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("rows=%dM", n/1_000_000), func(b *testing.B) {
			imp, conv := scenario(n, 42)
			defer imp.release()
			defer conv.release()
			dir := b.TempDir()
			files := map[string]string{"impressions": writeParquet(b, dir, imp), "conversions": writeParquet(b, dir, conv)}
			threads := runtime.GOMAXPROCS(0)
			runtime.GC()

			b.Run("engine", func(b *testing.B) {
				var load, query time.Duration
				cpu := cpuTime()
				for b.Loop() {
					l, q := runEngine(b, Config{Threads: threads}, imp, conv)
					load += l
					query += q
				}
				b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
				b.ReportMetric(float64(load.Milliseconds())/float64(b.N), "load-ms/op")
				b.ReportMetric(float64(query.Milliseconds())/float64(b.N), "query-ms/op")
			})
			b.Run("plain-parquet", func(b *testing.B) {
				p := newPlainDuckDB(b, threads, files)
				cpu := cpuTime()
				for b.Loop() {
					_, batches := p.query(b, scenarioQuery)
					for _, r := range batches {
						r.Release()
					}
				}
				b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
			})
		})
	}
}

// runEngine is one engine run of the scenario; it returns the time spent
// opening and loading, and running the query under the policy.
func runEngine(tb testing.TB, cfg Config, tables ...*table) (load, query time.Duration) {
	start := time.Now()
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make([]error, len(tables))
	for i, t := range tables {
		wg.Go(func() {
			errs[i] = s.LoadTable(context.Background(), t.name, t.schema, t.reader(tb))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	loaded := time.Now()
	res, err := s.Run(context.Background(), scenarioQuery, scenarioPolicy)
	if err != nil {
		tb.Fatal(err)
	}
	res.Release()
	return loaded.Sub(start), time.Since(loaded)
}
