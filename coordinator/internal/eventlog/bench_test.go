package eventlog

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/internal/durable"
)

// reportLatencies reports the p50 and p99 of the recorded latencies.
func reportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// BenchmarkAppendSequential measures the latency the coordinator pays per
// event before it may act: one Append at a time, each durable on return.
func BenchmarkAppendSequential(b *testing.B) {
	for _, age := range []time.Duration{100 * time.Microsecond, DefaultBatchMaxAge, 2 * time.Millisecond} {
		b.Run("batchAge="+age.String(), func(b *testing.B) {
			id, origin := testKey(b)
			l, err := Open(b.TempDir(), id.Signer(), origin, &Options{BatchMaxAge: age, CheckpointInterval: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(context.Background())
			ctx := context.Background()
			entry := make([]byte, 512)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				if _, err := l.Append(ctx, entry); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportLatencies(b, lat)
		})
	}
}

// BenchmarkAppendConcurrent measures throughput and per-append latency with
// many goroutines appending at once.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, age := range []time.Duration{100 * time.Microsecond, DefaultBatchMaxAge, 2 * time.Millisecond} {
		b.Run("batchAge="+age.String(), func(b *testing.B) {
			id, origin := testKey(b)
			l, err := Open(b.TempDir(), id.Signer(), origin, &Options{BatchMaxAge: age, CheckpointInterval: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(context.Background())
			ctx := context.Background()
			entry := make([]byte, 512)
			var mu sync.Mutex
			var lat []time.Duration
			var n atomic.Int64
			b.SetParallelism(32) // 32 × GOMAXPROCS goroutines
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if _, err := l.Append(ctx, entry); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
					n.Add(1)
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(n.Load())/elapsed.Seconds(), "appends/s")
			reportLatencies(b, lat)
		})
	}
}

// BenchmarkDurableFileWrite measures one durable small-file write on the
// same disk (temporary file, fsync, rename, fsync of the directory): the
// floor under Append, which makes three or four such writes per batch
// (entry bundle, level-0 tile, sometimes an upper tile, tree state).
func BenchmarkDurableFileWrite(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 512)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if err := durable.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportLatencies(b, lat)
}
