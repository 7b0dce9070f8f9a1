package coordinator_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// latencies records operation durations by kind.
type latencies struct {
	mu sync.Mutex
	by map[string][]time.Duration
}

func (l *latencies) add(kind string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[string][]time.Duration{}
	}
	l.by[kind] = append(l.by[kind], d)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// soakItem is one contract's acknowledged history.
type soakItem struct {
	sc       *testenv.Scenario
	datasets map[string]string // acknowledged uploads
	runs     []string          // finished runs
	bundles  map[string][]byte // fetched result bundles by run
}

// TestSoak runs a load against a real coordinator process for a bounded
// time: several workers each register contracts, upload both datasets,
// submit the algorithm, run and fetch results, all at once. Afterwards
// every acknowledged item must be intact, every result bundle must verify
// offline down to the coordinator's attestation, and the whole log must
// verify. It reports throughput, latency percentiles per operation and the
// daemon's peak memory. CLEANROOM_SOAK_DURATION sets the duration (default
// 8s, the short version in make test; make soak runs 10 minutes) and
// CLEANROOM_SOAK_WORKERS the concurrency (default 4).
func TestSoak(t *testing.T) {
	duration := 8 * time.Second
	if v := os.Getenv("CLEANROOM_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		duration = d
	}
	workers := 4
	if v := os.Getenv("CLEANROOM_SOAK_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		workers = n
	}
	dir := t.TempDir()
	d := startDaemon(t, dir)
	defer d.kill()
	inst, err := coordinator.ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	var (
		lat   latencies
		mu    sync.Mutex
		items []*soakItem
		fails []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		fails = append(fails, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	timed := func(kind string, f func() error) error {
		start := time.Now()
		err := f()
		if err == nil {
			lat.add(kind, time.Since(start))
		}
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; ctx.Err() == nil; i++ {
				spec := testenv.AdSpec(t, fmt.Sprintf("soak-%d-%d", w, i), 3)
				sc := testenv.NewRemote(t, d.url, inst, spec)
				it := &soakItem{sc: sc, datasets: map[string]string{}, bundles: map[string][]byte{}}
				if err := timed("submit", func() error { _, err := sc.TrySubmit(t, "publisher"); return err }); err != nil {
					fail("submit: %v", err)
					return
				}
				mu.Lock()
				items = append(items, it)
				mu.Unlock()
				rows := 500 + rng.IntN(20000)
				for _, u := range []struct{ party, ds, csv string }{
					{"publisher", "impressions", bigCSV("impressions", rows)},
					{"advertiser", "conversions", bigCSV("conversions", rows/10)},
				} {
					sealed := sc.Seal(t, u.party, u.ds, u.csv)
					var digest string
					if err := timed("upload", func() error {
						rec, err := sc.Upload(t, u.party, u.ds, sealed)
						if err == nil {
							digest = rec.CiphertextSHA256
						}
						return err
					}); err != nil {
						fail("upload: %v", err)
						return
					}
					it.datasets[u.ds] = digest
				}
				if err := timed("algorithm", func() error {
					_, err := sc.Client(t, "measurer").SubmitAlgorithm(context.Background(), []byte(sc.Spec.Query), sc.Spec.AlgorithmSalt())
					return err
				}); err != nil {
					fail("algorithm: %v", err)
					return
				}
				for range 1 + rng.IntN(2) {
					var runID string
					if err := timed("run", func() error {
						rs, err := sc.Client(t, "advertiser").Run(context.Background())
						if err == nil {
							runID = rs.RunID
						}
						return err
					}); err != nil {
						fail("run: %v", err)
						return
					}
					it.runs = append(it.runs, runID)
					if err := timed("fetch", func() error {
						b, err := sc.Client(t, "advertiser").ResultBundle(context.Background(), runID)
						if err == nil {
							it.bundles[runID] = b
						}
						return err
					}); err != nil {
						fail("fetch: %v", err)
						return
					}
				}
				if err := timed("status", func() error { _, err := sc.Client(t, "auditor").Status(context.Background()); return err }); err != nil {
					fail("status: %v", err)
					return
				}
				sc.Close() // the parties of this contract are done
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	peak := peakRSSOf(d.cmd.Process.Pid)
	if len(fails) > 0 {
		t.Fatalf("%d operations failed under load, first: %s", len(fails), fails[0])
	}

	// Everything acknowledged is intact; every result verifies.
	bg := context.Background()
	var runs int
	for _, it := range items {
		st, err := it.sc.Client(t, "auditor").Status(bg)
		if err != nil {
			t.Fatalf("contract %s: %v", it.sc.Contract.ID(), err)
		}
		for _, ds := range st.Datasets {
			if want, ok := it.datasets[ds.ID]; ok && ds.CiphertextSHA256 != want {
				t.Fatalf("upload %s of %s changed", ds.ID, it.sc.Contract.ID())
			}
		}
		for _, runID := range it.runs {
			b, err := bundle.Parse(it.bundles[runID])
			if err != nil {
				t.Fatalf("bundle of run %s: %v", runID, err)
			}
			if _, err := bundle.Verify(b, it.sc.Contract, bundle.VerifyOptions{Recipient: it.sc.Party("advertiser").Identity}); err != nil {
				t.Fatalf("bundle of run %s does not verify: %v", runID, err)
			}
			runs++
		}
	}
	// Every contract's view of the log verifies: the whole tree, its
	// events, and as many of them as the signed view head says.
	v, _ := tlog.NewCoordinatorVerifier(inst.PublicKey)
	for _, it := range items {
		f := it.sc.Client(t, "auditor").LogFetcher()
		raw, err := f(bg, "checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		cp, err := v.VerifyCheckpoint(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.VerifyView(bg, f, cp, it.sc.Contract.ID().String()); err != nil {
			t.Fatalf("contract %s's view of the log does not verify after the soak: %v", it.sc.Contract.ID(), err)
		}
	}

	var report strings.Builder
	var total int
	fmt.Fprintf(&report, "soak: %s, %d workers: %d contracts, %d runs verified; daemon peak RSS %d MiB\n",
		elapsed.Round(time.Second), workers, len(items), runs, peak>>20)
	kinds := make([]string, 0, len(lat.by))
	for k := range lat.by {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		ds := lat.by[k]
		total += len(ds)
		fmt.Fprintf(&report, "  %-9s %6d ops  %7.1f/s  p50 %8s  p99 %8s\n", k, len(ds), float64(len(ds))/elapsed.Seconds(),
			percentile(ds, 0.50).Round(100*time.Microsecond), percentile(ds, 0.99).Round(100*time.Microsecond))
	}
	fmt.Fprintf(&report, "  all       %6d ops  %7.1f/s\n", total, float64(total)/elapsed.Seconds())
	t.Log("\n" + report.String())
	if total == 0 {
		t.Fatal("no operation completed")
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
}

// peakRSSOf returns a process's peak resident memory (VmHWM).
func peakRSSOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
