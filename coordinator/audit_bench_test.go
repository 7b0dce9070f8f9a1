package coordinator_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/coordinator/internal/eventlog"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// auditedWorld is a contract played out on a real coordinator (the
// contract, both datasets, the algorithm, a run and its result fetched) and
// its log as the auditor verified it.
type auditedWorld struct {
	srv     *testenv.Server
	sc      *testenv.Scenario
	coord   *audit.Coordinator
	entries [][]byte
}

func auditWorld(b *testing.B) *auditedWorld {
	ctx := context.Background()
	w := &auditedWorld{srv: testenv.Start(b, b.TempDir(), coordinator.Config{})}
	w.sc = testenv.New(b, w.srv, testenv.AdSpec(b, "audit-large", 3))
	sc := w.sc
	sc.Submit(b, "auditor")
	sc.MustUpload(b, "publisher", "impressions", testenv.ImpressionsCSV)
	sc.MustUpload(b, "advertiser", "conversions", testenv.ConversionsCSV)
	sc.SubmitAlgorithm(b)
	rs, err := sc.Client(b, "advertiser").Run(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := sc.Client(b, "advertiser").Result(ctx, rs.RunID); err != nil {
		b.Fatal(err)
	}
	vl := sc.VerifyLog(b, sc.Client(b, "auditor"))
	w.coord, w.entries = vl.Coordinator, vl.Entries
	return w
}

// BenchmarkAuditLarge audits the contract's view of logs of n entries: the
// scenario's events followed by events of another contract, which the view
// redacts, in a log written by the coordinator's eventlog with the
// coordinator's key and served by its view handler in process, so the
// figure is the verification's own cost (tree, tiles, view head,
// signatures, timeline, state), without the network.
//
// It lives here, not in cleanroom/audit, because it writes the log with the
// coordinator's writer.
func BenchmarkAuditLarge(b *testing.B) {
	w := auditWorld(b)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			cfg := audit.Config{Contract: w.sc.Contract, ContractText: w.sc.Text, Coordinator: w.coord, URL: w.sc.URL,
				Fetcher: largeLog(b, w, n), EvidenceWait: -1}
			st, err := audit.OpenState(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ResetTimer()
			for b.Loop() {
				r, err := audit.Run(context.Background(), cfg, st)
				if err != nil {
					b.Fatal(err)
				}
				if r.Log.Size != uint64(n) || r.Log.OtherEvents != uint64(n-len(w.entries)) {
					b.Fatalf("audited %d entries, %d of another contract", r.Log.Size, r.Log.OtherEvents)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/entry")
		})
	}
}

// largeLog writes a log of n entries — the world's, then result.fetched
// events of another contract — and returns a Fetcher of the world
// contract's view of it, served by the coordinator's view handler.
func largeLog(b *testing.B, w *auditedWorld, n int) tlog.Fetcher {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "log")
	id := w.srv.Coord.TEE().Identity()
	lg, err := eventlog.Open(dir, id.Signer(), tlog.Origin(id.Public()), &eventlog.Options{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lg.Close(context.Background()) })
	ctx := context.Background()
	shown := make([]bool, n)
	for _, e := range w.entries {
		i, err := lg.Append(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		shown[i] = true
	}
	proto, err := events.Decode(w.entries[len(w.entries)-1])
	if err != nil || proto.Type != events.TypeResultFetched {
		b.Fatalf("the world's last event is not a result download: %v", err)
	}
	proto.Contract = strings.Repeat("ab", 32)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 64 {
		wg.Go(func() {
			for range work {
				e := *proto
				e.ID, e.Salt, e.Time = events.NewID(), events.NewSalt(), time.Now().UTC()
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
	if _, err := lg.WaitCheckpoint(ctx, uint64(n)); err != nil {
		b.Fatal(err)
	}
	h := lg.ViewHandler(w.sc.Contract.ID().String(), shownView(shown))
	return func(ctx context.Context, p string) ([]byte, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/"+p, nil))
		switch rec.Code {
		case http.StatusOK:
			return rec.Body.Bytes(), nil
		case http.StatusNotFound:
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("%s: %d %s", p, rec.Code, rec.Body)
	}
}

// shownView is a view that shows the entries marked true.
type shownView []bool

func (v shownView) Shows(_ context.Context, i uint64) (bool, error) { return v[i], nil }
func (v shownView) Count(_ context.Context, size uint64) (uint64, error) {
	var n uint64
	for _, s := range v[:size] {
		if s {
			n++
		}
	}
	return n, nil
}
