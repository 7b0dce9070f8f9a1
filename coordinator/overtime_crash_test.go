package coordinator_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// storedBlobs lists the blob files of a data directory.
func storedBlobs(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dir, "blobs", "sha256")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// added returns the files of after that are not in before.
func added(before, after []string) []string {
	var out []string
	for _, f := range after {
		if !slices.Contains(before, f) {
			out = append(out, f)
		}
	}
	return out
}

// runFaultyDaemonToDeath starts the daemon child with a fault point armed
// that its start itself reaches, and waits until SIGKILL ends it.
func runFaultyDaemonToDeath(t *testing.T, dir, point string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), daemonEnv+"="+dir, faultEnv+"="+point)
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("the daemon did not die of SIGKILL at %s: %v", point, err)
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the daemon never reached the fault point %s", point)
	}
}

// TestWithdrawSurvivesKill: a coordinator killed with SIGKILL after it
// logged dataset.withdrawn but before it removed the envelope finishes the
// deletion when it starts again, before it serves: the log first, then the
// files.
func TestWithdrawSurvivesKill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := startDaemon(t, dir)
	inst, err := coordinator.ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	sc := testenv.NewRemote(t, d.url, inst, testenv.AdSpec(t, "withdraw-crash", 3))
	l := &lifecycle{t: t, sc: sc}
	for _, s := range []string{"submit", "upload-impressions"} {
		before := storedBlobs(t, dir)
		if err := l.step(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if s == "upload-impressions" {
			stored := added(before, storedBlobs(t, dir))
			if len(stored) != 1 {
				t.Fatalf("the upload added blobs %v, want the one stored envelope", stored)
			}
			d.kill()
			d = startFaultyDaemon(t, dir, "delete/before-remove")
			sc.URL = d.url
			if _, err := sc.Client(t, "publisher").Withdraw(ctx, "impressions"); err == nil {
				t.Fatal("the withdrawal succeeded: the fault point was never reached")
			}
			d.waitExit()
			if _, err := os.Stat(stored[0]); err != nil {
				t.Fatalf("the envelope is gone before the restart (%v): the test shows nothing", err)
			}
			d = startDaemon(t, dir)
			defer d.kill()
			sc.URL = d.url
			if _, err := os.Stat(stored[0]); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("after the restart the withdrawn envelope %s is still there (%v)", stored[0], err)
			}
			st, err := sc.Client(t, "auditor").Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Datasets[0].Deleted != "withdrawn" || st.Datasets[0].Damaged != "" {
				t.Fatalf("dataset impressions after the restart: %+v, want withdrawn and not reported damaged", st.Datasets[0])
			}
		}
	}
}

// TestExpirySurvivesKill: the coordinator deletes an expired contract's
// envelopes and results on its own at start; killed with SIGKILL in the
// middle of that deletion, it finishes it when it starts again.
func TestExpirySurvivesKill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := startDaemon(t, dir)
	inst, err := coordinator.ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := testenv.AdSpec(t, "expiry-crash", 3)
	spec.Expires = time.Now().Add(8 * time.Second).Truncate(time.Second)
	sc := testenv.NewRemote(t, d.url, inst, spec)
	l := &lifecycle{t: t, sc: sc}
	before := storedBlobs(t, dir)
	for _, s := range []string{"submit", "upload-impressions", "upload-conversions", "algorithm", "run"} {
		if err := l.step(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := sc.Client(t, "advertiser").Status(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Now().After(spec.Expires) {
		t.Skip("the machine is too slow to set the contract up before it expires")
	}
	held := added(before, storedBlobs(t, dir))
	d.kill()
	time.Sleep(time.Until(spec.Expires.Add(time.Second)))
	runFaultyDaemonToDeath(t, dir, "delete/before-remove")
	if left := storedBlobs(t, dir); len(added(left, held)) != 0 {
		t.Fatalf("blobs were removed before the fault point: the test shows nothing")
	}
	d = startDaemon(t, dir)
	defer d.kill()
	sc.URL = d.url
	deadline := time.Now().Add(30 * time.Second)
	for {
		var gone []string
		for _, f := range held {
			if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
				gone = append(gone, f)
			}
		}
		// Three of the five blobs hold data: the two stored envelopes and
		// the result. The sealed contract and algorithm stay: the log
		// needs them to replay.
		if len(gone) == 3 && len(held) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart only %d of the contract's blobs are deleted (%v of %v)", len(gone), gone, held)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAmendmentCarryOverSurvivesKill: a coordinator killed with SIGKILL
// after it registered an amendment (contract.registered) but before it
// carried the superseded contract's algorithm and datasets over finishes
// the amendment when it starts again, before it serves: the amendment
// holds both datasets and the algorithm, runs on them as run 2 (the old
// contract's run carries over) with the old contract's result, and a
// further restart carries nothing twice.
func TestAmendmentCarryOverSurvivesKill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := startDaemon(t, dir)
	inst, err := coordinator.ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := testenv.AdSpec(t, "amend-crash", 3)
	sc := testenv.NewRemote(t, d.url, inst, spec)
	sc.Submit(t, "publisher")
	for _, u := range []struct{ by, ds, csv string }{
		{"publisher", "impressions", testenv.ImpressionsCSV}, {"advertiser", "conversions", testenv.ConversionsCSV},
	} {
		if _, err := sc.Upload(t, u.by, u.ds, sc.Seal(t, u.by, u.ds, u.csv)); err != nil {
			t.Fatalf("uploading %s: %v", u.ds, err)
		}
	}
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(spec.Query), spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
	first, err := sc.Client(t, "advertiser").Run(ctx)
	if err != nil || first.Status != "finished" || first.RowsKept < 1 {
		t.Fatalf("the old contract's run: %+v, %v", first, err)
	}

	// The same parties sign an amendment; the coordinator dies right
	// after registering it.
	amended := *spec
	amended.Name, amended.Supersedes = "amend-crash-v2", sc.Contract.ID().String()
	d.kill()
	d = startFaultyDaemon(t, dir, "amend/before-carry")
	sc.URL = d.url
	next := testenv.NewRemote(t, d.url, inst, &amended)
	if _, err := next.TrySubmit(t, "publisher"); err == nil {
		t.Fatal("the amendment was registered whole: the fault point was never reached")
	}
	d.waitExit()

	d = startDaemon(t, dir)
	defer func() { d.kill() }()
	next.URL = d.url
	st, err := next.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatalf("the amendment after the restart: %v", err)
	}
	if st.Supersedes != sc.Contract.ID().String() {
		t.Fatalf("the amendment's status names supersedes %q, want %s", st.Supersedes, sc.Contract.ID())
	}
	indexes := map[string]uint64{}
	for _, ds := range st.Datasets {
		if !ds.Uploaded || ds.Deleted != "" || ds.Damaged != "" {
			t.Errorf("dataset %s of the amendment after the restart: %+v, want carried over", ds.ID, ds)
		}
		indexes[ds.ID] = ds.LogIndex
	}
	if !st.Algorithm.Submitted {
		t.Errorf("the amendment's algorithm after the restart: %+v, want carried over", st.Algorithm)
	}
	rs, err := next.Client(t, "advertiser").Run(ctx)
	if err != nil {
		t.Fatalf("a run of the finished amendment: %v", err)
	}
	if rs.Status != "finished" || rs.Number != 2 || rs.RowsKept != first.RowsKept || rs.RowsSuppressed != first.RowsSuppressed {
		t.Fatalf("the amendment's run: %+v, want run 2 releasing what the old contract's run did (%+v)", rs, first)
	}

	// Starting again finds the amendment finished: nothing is carried twice.
	d.kill()
	d = startDaemon(t, dir)
	next.URL = d.url
	st, err = next.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ds := range st.Datasets {
		if ds.LogIndex != indexes[ds.ID] {
			t.Errorf("dataset %s was carried over again at the next start (log index %d, then %d)", ds.ID, indexes[ds.ID], ds.LogIndex)
		}
	}
}
