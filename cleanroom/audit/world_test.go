package audit_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// The tests share one real coordinator, served over attested TLS on
// 127.0.0.1, on which a whole contract played out: registration, two
// uploads, the algorithm, two runs, a third refused at admission
// (max_runs 2), and a result download.

var (
	worldOnce sync.Once
	theWorld  *world
	worldDir  string
)

type world struct {
	srv      *testenv.Server
	sc       *testenv.Scenario
	auditor  *client.Client
	coord    *audit.Coordinator
	uploads  map[string]*client.DatasetReceipt
	runs     []*api.RunStatus
	entries  [][]byte // the log as the world left it, verified
	checkpnt *tlog.Checkpoint
}

func TestMain(m *testing.M) {
	code := m.Run()
	if theWorld != nil {
		theWorld.srv.Stop()
	}
	if worldDir != "" {
		os.RemoveAll(worldDir)
	}
	if dpServer != nil {
		dpServer.Stop()
	}
	if dpWorldDir != "" {
		os.RemoveAll(dpWorldDir)
	}
	os.Exit(code)
}

// getWorld builds the shared world on first use.
func getWorld(t testing.TB) *world {
	t.Helper()
	worldOnce.Do(func() { theWorld = buildWorld(t) })
	if theWorld == nil {
		t.Fatal("the shared scenario could not be built (see the first test's failure)")
	}
	return theWorld
}

func buildWorld(t testing.TB) *world {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "audit-world-")
	if err != nil {
		t.Fatal(err)
	}
	worldDir = dir
	srv, err := testenv.StartE(dir, coordinator.Config{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{srv: srv, uploads: map[string]*client.DatasetReceipt{}}
	theWorld = w // so TestMain stops it whatever happens next
	w.sc = testenv.New(t, srv, testenv.AdSpec(t, "audit-test", 2))
	sc := w.sc
	sc.Submit(t, "auditor")
	w.uploads["impressions"] = sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	w.uploads["conversions"] = sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(sc.Spec.Query), sc.Spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		rs, err := sc.Client(t, "advertiser").Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.runs = append(w.runs, rs)
	}
	if _, err := sc.Client(t, "measurer").Run(ctx); err == nil {
		t.Fatal("a third run was admitted under max_runs 2")
	}
	if _, err := sc.Client(t, "advertiser").Result(ctx, w.runs[0].RunID); err != nil {
		t.Fatal(err)
	}
	w.auditor = newAuditorClient(t, sc)
	if w.coord, err = w.auditor.AttestedCoordinator(ctx); err != nil {
		t.Fatal(err)
	}
	w.checkpnt = waitCovered(t, w, sc.LogSize())
	v, err := tlog.NewCoordinatorVerifier(w.coord.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	view, err := v.VerifyView(ctx, w.auditor.LogFetcher(), w.checkpnt, sc.Contract.ID().String())
	if err != nil {
		t.Fatal(err)
	}
	w.entries = view.Entries
	return w
}

// newAuditorClient returns a client acting as the auditor, closed by
// TestMain's end rather than by one test's cleanup.
func newAuditorClient(t testing.TB, sc *testenv.Scenario) *client.Client {
	cl, err := client.New(sc.URL, client.Options{Contract: sc.Contract, Identity: sc.Party("auditor").Identity})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// waitCovered waits until the coordinator publishes a checkpoint of at
// least size entries and returns it.
func waitCovered(t testing.TB, w *world, size uint64) *tlog.Checkpoint {
	t.Helper()
	v, err := tlog.NewCoordinatorVerifier(w.coord.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := w.auditor.LogFetcher()(context.Background(), "checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		cp, err := v.VerifyCheckpoint(raw)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size() >= size {
			return cp
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covers %d entries after 10 s (latest %v)", size, cp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// config returns the audit configuration for the world's contract with
// fetcher f (the auditor's attested fetcher when nil).
func (w *world) config(f tlog.Fetcher) audit.Config {
	if f == nil {
		f = w.auditor.LogFetcher()
	}
	return audit.Config{Contract: w.sc.Contract, ContractText: w.sc.Text, Coordinator: w.coord, URL: w.sc.URL, Fetcher: f}
}

func openState(t *testing.T, dir string) *audit.State {
	t.Helper()
	st, err := audit.OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (w *world) String() string { return fmt.Sprintf("world at %s", w.sc.URL) }
