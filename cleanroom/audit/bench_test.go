package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator/eventlog"
)

// BenchmarkAuditScenario is one whole audit of the scenario's log (about a
// dozen events) over attested TLS, as `cleanroom audit log` does it after
// connecting: checkpoint, consistency with the kept one, every tile and
// entry, every signature, the timeline, and the state kept.
func BenchmarkAuditScenario(b *testing.B) {
	w := getWorld(b)
	st, err := OpenState(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Run(context.Background(), w.config(nil), st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuditLarge audits logs of n events: the scenario's events
// followed by result downloads, in a log written by the coordinator's
// eventlog with the coordinator's key and read from its directory, so the
// figure is the verification's own cost (tree, tiles, signatures, timeline,
// state), without the network.
func BenchmarkAuditLarge(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			w := getWorld(b)
			dir := largeLog(b, w, n)
			cfg := w.config(tlog.DirFetcher(dir))
			cfg.EvidenceWait = -1
			st, err := OpenState(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ResetTimer()
			for b.Loop() {
				r, err := Run(context.Background(), cfg, st)
				if err != nil {
					b.Fatal(err)
				}
				if r.Log.Size != uint64(n) {
					b.Fatalf("audited %d entries", r.Log.Size)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/event")
		})
	}
}

// largeLog writes a log of n entries: the world's, then result.fetched
// events for the first run.
func largeLog(b *testing.B, w *world, n int) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "log")
	id := w.srv.Coord.TEE().Identity()
	lg, err := eventlog.Open(dir, id.Signer(), tlog.Origin(id.Public()), &eventlog.Options{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, e := range w.entries {
		if _, err := lg.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	proto, err := events.Decode(w.entries[len(w.entries)-1])
	if err != nil || proto.Type != events.TypeResultFetched {
		b.Fatalf("the world's last event is not a result download: %v", err)
	}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 64 {
		wg.Go(func() {
			for range work {
				e := *proto
				e.ID, e.Time = events.NewID(), time.Now().UTC()
				entry, err := events.Encode(&e)
				if err == nil {
					_, err = lg.Append(ctx, entry)
				}
				if err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := len(w.entries); i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := lg.Close(ctx); err != nil {
		b.Fatal(err)
	}
	return dir
}
