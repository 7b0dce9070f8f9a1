package coordinator_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// faultEnv names the fault point at which the daemon child kills itself
// with SIGKILL (see coordinator.fault).
const faultEnv = "CLEANROOM_TEST_FAULT"

// installFault is called by the daemon child: it arms the fault point.
func installFault() {
	point := os.Getenv(faultEnv)
	if point == "" {
		return
	}
	coordinator.SetFaultHook(func(p string) {
		if p == point {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	})
}

// startFaultyDaemon starts the daemon child with a fault point armed.
func startFaultyDaemon(t *testing.T, dir, point string) *daemon {
	t.Helper()
	t.Setenv(faultEnv, point)
	defer os.Unsetenv(faultEnv)
	return startDaemon(t, dir)
}

// waitExit waits for a killed daemon to be reaped.
func (d *daemon) waitExit() {
	d.cmd.Wait()
}

// lifecycle drives one contract through its life, step by step; each step
// returns the error the participant saw.
type lifecycle struct {
	t  *testing.T
	sc *testenv.Scenario
}

func (l *lifecycle) step(name string) error {
	ctx := context.Background()
	sc := l.sc
	switch name {
	case "submit":
		_, err := sc.TrySubmit(l.t, "publisher")
		return err
	case "upload-impressions":
		_, err := sc.Upload(l.t, "publisher", "impressions", sc.Seal(l.t, "publisher", "impressions", bigCSV("impressions", 60000)))
		return err
	case "upload-conversions":
		_, err := sc.Upload(l.t, "advertiser", "conversions", sc.Seal(l.t, "advertiser", "conversions", testenv.ConversionsCSV))
		return err
	case "algorithm":
		_, err := sc.Client(l.t, "measurer").SubmitAlgorithm(ctx, []byte(sc.Spec.Query), sc.Spec.AlgorithmSalt())
		return err
	case "run":
		_, err := sc.Client(l.t, "advertiser").Run(ctx)
		return err
	case "fetch":
		st, err := sc.Client(l.t, "auditor").Status(ctx)
		if err != nil {
			return err
		}
		for _, r := range st.Runs {
			if r.Status == "finished" {
				_, err := sc.Client(l.t, "advertiser").Result(ctx, r.RunID)
				return err
			}
		}
		return errors.New("no finished run to fetch")
	}
	l.t.Fatalf("unknown step %q", name)
	return nil
}

var steps = []string{"submit", "upload-impressions", "upload-conversions", "algorithm", "run", "fetch"}

// TestFaultMatrix kills the coordinator with SIGKILL at each step of a
// contract's life: before and after the log append of every kind of event,
// in the middle of an upload body, after an upload's blob is durable but
// before it is logged, and with a run's datasets loaded in the engine. After
// each restart the state is consistent: what the log took is present, what
// it did not is absent, the participant can redo the step (or is told
// clearly that it is done), and runs cut short are marked aborted and
// released nothing.
func TestFaultMatrix(t *testing.T) {
	cases := []struct {
		point    string
		step     string
		happened bool // whether the step took effect despite the crash
		// blobs the step leaves stored: those its logged event names.
		// A blob stored but never logged (the crash came in between) is
		// gone after the restart.
		blobs int
	}{
		{"contract.registered/before-append", "submit", false, 0},
		{"contract.registered/after-append", "submit", true, 1},
		{"upload/mid-body", "upload-impressions", false, 0},
		{"upload/after-blob", "upload-impressions", false, 0},
		{"dataset.uploaded/before-append", "upload-impressions", false, 0},
		{"dataset.uploaded/after-append", "upload-conversions", true, 1},
		{"algorithm.submitted/before-append", "algorithm", false, 0},
		{"algorithm.submitted/after-append", "algorithm", true, 1},
		{"run.started/before-append", "run", false, 0},
		{"run.started/after-append", "run", true, 0},
		{"run/datasets-loaded", "run", true, 0},
		{"run.finished/before-append", "run", true, 0}, // aborted: its result blob was never logged
		{"run.finished/after-append", "run", true, 1},
		{"result.fetched/before-append", "fetch", false, 0},
		{"result.fetched/after-append", "fetch", true, 0},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.point, "/", ":"), func(t *testing.T) {
			dir := t.TempDir()
			d := startDaemon(t, dir)
			inst, err := coordinator.ReadIdentity(dir)
			if err != nil {
				t.Fatal(err)
			}
			sc := testenv.NewRemote(t, d.url, inst, testenv.AdSpec(t, "fault", 3))
			l := &lifecycle{t: t, sc: sc}
			// Do every step before the faulty one normally.
			i := 0
			for steps[i] != tc.step {
				if err := l.step(steps[i]); err != nil {
					t.Fatalf("step %s: %v", steps[i], err)
				}
				i++
			}
			sizeBefore := logSize(t, sc)
			blobsBefore := storedBlobs(t, dir)
			d.kill()
			d = startFaultyDaemon(t, dir, tc.point)
			sc.URL = d.url
			if err := l.step(tc.step); err == nil {
				t.Fatalf("step %s succeeded: the fault point %s was never reached", tc.step, tc.point)
			}
			d.waitExit()

			d = startDaemon(t, dir)
			defer d.kill()
			sc.URL = d.url
			after := storedBlobs(t, dir)
			if len(after) != len(blobsBefore)+tc.blobs {
				t.Errorf("%d blobs stored before the step, %d after the crash and restart, want %d", len(blobsBefore), len(after), len(blobsBefore)+tc.blobs)
			}
			for _, b := range blobsBefore {
				if !slices.Contains(after, b) {
					t.Errorf("blob %s stored before the step is gone after the crash and restart", b)
				}
			}
			checkFaultOutcome(t, l, tc.step, tc.happened, sizeBefore)
		})
	}
}

// logSize returns the number of events in the log, read by the operator
// (the test daemon takes loopback clients for its operator).
func logSize(t *testing.T, sc *testenv.Scenario) uint64 {
	t.Helper()
	h, err := sc.Client(t, "").Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.LogSize == nil {
		t.Fatal("the health endpoint does not tell the operator the log size")
	}
	return *h.LogSize
}

func checkFaultOutcome(t *testing.T, l *lifecycle, step string, happened bool, sizeBefore uint64) {
	ctx := context.Background()
	sc := l.sc
	st, stErr := sc.Client(t, "auditor").Status(ctx)
	switch step {
	case "submit":
		if happened != (stErr == nil) {
			t.Fatalf("registered=%v after the crash, want %v (%v)", stErr == nil, happened, stErr)
		}
		err := l.step("submit")
		if happened {
			expectRefusal(t, "resubmission", err, http.StatusConflict, "already registered")
		} else if err != nil {
			t.Fatalf("redoing the submission: %v", err)
		}
		return
	}
	if stErr != nil {
		t.Fatalf("status after restart: %v", stErr)
	}
	switch step {
	case "upload-impressions", "upload-conversions":
		ds := strings.TrimPrefix(step, "upload-")
		uploaded := datasetUploaded(st, ds)
		if uploaded != happened {
			t.Fatalf("dataset %s uploaded=%v after the crash, want %v", ds, uploaded, happened)
		}
		size := logSize(t, l.sc)
		err := l.step(step)
		if happened {
			// The same content again: a retry, acknowledged, nothing logged.
			if after := logSize(t, l.sc); err != nil || after != size {
				t.Fatalf("re-upload of the same content: %v (log %d → %d), want it acknowledged as already present", err, size, logSize(t, l.sc))
			}
		} else if err != nil {
			t.Fatalf("redoing the upload: %v", err)
		}
	case "algorithm":
		if st.Algorithm.Submitted != happened {
			t.Fatalf("algorithm submitted=%v after the crash, want %v", st.Algorithm.Submitted, happened)
		}
		size := logSize(t, l.sc)
		err := l.step(step)
		if happened {
			if after := logSize(t, l.sc); err != nil || after != size {
				t.Fatalf("resubmission of the same algorithm: %v (log %d → %d), want it acknowledged as already present", err, size, logSize(t, l.sc))
			}
		} else if err != nil {
			t.Fatalf("redoing the submission: %v", err)
		}
	case "run":
		if happened != (len(st.Runs) == 1) {
			t.Fatalf("after the crash %d runs, want counted=%v: %+v", len(st.Runs), happened, st.Runs)
		}
		if happened {
			r := st.Runs[0]
			if r.Status != "aborted" && r.Status != "finished" {
				t.Fatalf("the interrupted run is %q", r.Status)
			}
			if r.Status == "aborted" {
				_, err := sc.Client(t, "advertiser").Result(ctx, r.RunID)
				expectRefusal(t, "result of the aborted run", err, http.StatusConflict, "aborted")
			} else if _, err := sc.Client(t, "advertiser").Result(ctx, r.RunID); err != nil {
				t.Fatalf("the finished run's result after the crash: %v", err)
			}
		}
		if err := l.step("run"); err != nil {
			t.Fatalf("a run after the crash: %v", err)
		}
		st2, _ := sc.Client(t, "auditor").Status(ctx)
		if want := len(st.Runs) + 1; len(st2.Runs) != want || st2.Runs[want-1].Number != int64(want) {
			t.Fatalf("runs after the crash and a new run: %+v", st2.Runs)
		}
	case "fetch":
		if err := l.step("fetch"); err != nil {
			t.Fatalf("fetching after the crash: %v", err)
		}
	}
	if after := logSize(t, sc); after < sizeBefore {
		t.Fatalf("the log shrank from %d to %d events", sizeBefore, after)
	}
}

func datasetUploaded(st *api.ContractStatus, id string) bool {
	for _, d := range st.Datasets {
		if d.ID == id {
			return d.Uploaded
		}
	}
	return false
}

// TestTruncatedBlob restarts the coordinator with one dataset's stored
// envelope truncated: it starts, reports the damage in health and status,
// refuses runs that need the dataset with a clear reason, and serves the
// other contracts as before.
func TestTruncatedBlob(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.Start(t, dir, coordinator.Config{})
	damaged := testenv.New(t, srv, testenv.AdSpec(t, "damaged", 3))
	healthy := testenv.New(t, srv, testenv.AdSpec(t, "healthy", 3))
	prepare(t, damaged, testenv.ImpressionsCSV)
	prepare(t, healthy, testenv.ImpressionsCSV)
	ctx := context.Background()
	path := storedEnvelope(t, srv, damaged, "impressions")
	srv.Stop()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}

	srv = testenv.Start(t, dir, coordinator.Config{OperatorLoopback: true}) // the count of damaged blobs is the operator's
	damaged.Server, damaged.URL = srv, srv.URL
	healthy.Server, healthy.URL = srv, srv.URL
	h, err := damaged.Client(t, "").Health(ctx)
	if err != nil || h.Status != "degraded" || h.Damaged != 1 {
		t.Fatalf("health after restart: %+v %v", h, err)
	}
	st, err := damaged.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Datasets[0].Damaged, "truncated") {
		t.Fatalf("status does not report the damage: %+v", st.Datasets[0])
	}
	_, err = damaged.Client(t, "advertiser").Run(ctx)
	expectRefusal(t, "run over a truncated envelope", err, 422, "envelope of dataset impressions")
	if _, err := healthy.Client(t, "advertiser").Run(ctx); err != nil {
		t.Fatalf("the other contract cannot run: %v", err)
	}
}

// TestFullDisk puts the coordinator's data directory on a small tmpfs and
// fills it: uploads are refused with 507 and change nothing; once space is
// freed and the coordinator restarted, everything acknowledged is there
// and work continues. It needs permission to mount a tmpfs (root).
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CLEANROOM_REQUIRE_FULL_DISK_TEST") != "" {
			t.Fatalf("mounting a tmpfs: %v %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	data := filepath.Join(dir, "data")
	srv := testenv.Start(t, data, coordinator.Config{})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "full-disk", 3))
	sc.Submit(t, "publisher")
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)

	// Leave about 1 MiB free, then upload several MiB.
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	free := int64(sfs.Bavail) * int64(sfs.Bsize)
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, free-(1<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	big := sc.Seal(t, "publisher", "impressions", bigCSV("impressions", 200000))
	before := sc.LogSize()
	_, err := sc.Upload(t, "publisher", "impressions", big)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusInsufficientStorage || !strings.Contains(apiErr.Message, "disk is full") {
		t.Fatalf("upload to a full disk: %v", err)
	}
	if sc.LogSize() != before {
		t.Fatal("the refused upload changed the log")
	}
	leftovers, _ := filepath.Glob(filepath.Join(data, "blobs", "tmp", "*"))
	if len(leftovers) != 0 {
		t.Fatalf("the refused upload left temporary files: %v", leftovers)
	}

	// The operator frees space and restarts the coordinator.
	os.Remove(filler)
	srv.Stop()
	srv = testenv.Start(t, data, coordinator.Config{})
	sc.Server, sc.URL = srv, srv.URL
	st, err := sc.Client(t, "auditor").Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !datasetUploaded(st, "conversions") || datasetUploaded(st, "impressions") {
		t.Fatalf("state after the restart: %+v", st.Datasets)
	}
	if _, err := sc.Upload(t, "publisher", "impressions", big); err != nil {
		t.Fatalf("upload after freeing space: %v", err)
	}
}
