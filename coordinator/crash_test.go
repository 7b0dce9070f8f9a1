package coordinator_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// daemon is a coordinator running as a child process.
type daemon struct {
	cmd *exec.Cmd
	url string
}

// startDaemon runs the test binary as a coordinator on dir and waits for
// its URL.
func startDaemon(t *testing.T, dir string) *daemon {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), daemonEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	select {
	case url, ok := <-line:
		if !ok {
			cmd.Wait()
			t.Fatalf("the daemon did not start: %s", stderr.String())
		}
		d := &daemon{cmd: cmd, url: url}
		// However the test ends, the child does not outlive it.
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return d
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the daemon did not start in time: %s", stderr.String())
	}
	return nil
}

// kill sends SIGKILL: no shutdown, no flush, no final checkpoint.
func (d *daemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
}

// acked is what the coordinator acknowledged, or was sent, for one
// contract.
type acked struct {
	sc         *testenv.Scenario
	registered bool
	datasets   map[string]string   // acknowledged: dataset → ciphertext digest
	sent       map[string][]string // every envelope digest sent, acknowledged or not
}

// TestCrashSafety kills the coordinator with SIGKILL at random points while
// participants register contracts and upload datasets, many times over.
// After every restart: the coordinator's identity is unchanged; every
// acknowledged contract and upload is present and intact; nothing partial
// is visible (an unacknowledged upload is either absent or exactly what was
// sent); and the log is a consistent extension of the last checkpoint the
// coordinator published before it was killed.
func TestCrashSafety(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	inst, err := coordinator.ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := inst.PublicKey
	verifier, err := tlog.NewCoordinatorVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		contracts []*acked
		lastCP    *tlog.Checkpoint
	)
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	rounds := 10
	if testing.Short() {
		rounds = 4
	}
	for round := range rounds {
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				worker(t, ctx, d.url, inst, fmt.Sprintf("r%dw%d", round, w), &mu, &contracts)
			}()
		}
		// Follow the published checkpoint as an auditor would.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if cp := fetchCheckpoint(ctx, t, d.url, &mu, contracts, verifier); cp != nil {
					mu.Lock()
					if lastCP == nil || cp.Size() >= lastCP.Size() {
						lastCP = cp
					}
					mu.Unlock()
				}
				time.Sleep(30 * time.Millisecond)
			}
		}()
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		d.kill()
		stop()
		wg.Wait()

		d = startDaemon(t, dir)
		checkAfterRestart(t, d.url, key, contracts, lastCP)
	}
	d.kill()
	var n, uploads int
	for _, a := range contracts {
		if a.registered {
			n++
		}
		uploads += len(a.datasets)
	}
	t.Logf("%d kills; %d contracts and %d uploads acknowledged and found intact", rounds, n, uploads)
	if n == 0 || uploads == 0 {
		t.Fatal("nothing was acknowledged: the test proved nothing")
	}
}

// worker registers contracts and uploads their datasets until ctx ends or
// the coordinator dies.
func worker(t *testing.T, ctx context.Context, url string, inst *coordinator.Identity, tag string, mu *sync.Mutex, all *[]*acked) {
	for i := 0; ctx.Err() == nil; i++ {
		spec := testenv.AdSpec(t, fmt.Sprintf("crash-%s-%d", tag, i), 3)
		sc := testenv.NewRemote(t, url, inst, spec)
		a := &acked{sc: sc, datasets: map[string]string{}, sent: map[string][]string{}}
		mu.Lock()
		*all = append(*all, a)
		mu.Unlock()
		if _, err := sc.TrySubmit(t, "publisher"); err != nil {
			return
		}
		mu.Lock()
		a.registered = true
		mu.Unlock()
		for _, ds := range []struct{ id, party string }{{"impressions", "publisher"}, {"conversions", "advertiser"}} {
			sealed := sc.Seal(t, ds.party, ds.id, bigCSV(ds.id, 20000))
			digest := fmt.Sprintf("%x", sha256.Sum256(sealed.Envelope))
			mu.Lock()
			a.sent[ds.id] = append(a.sent[ds.id], digest)
			mu.Unlock()
			rec, err := sc.Upload(t, ds.party, ds.id, sealed)
			if err != nil {
				return
			}
			if rec.CiphertextSHA256 != digest {
				t.Errorf("upload acknowledged with digest %s, sent %s", rec.CiphertextSHA256, digest)
			}
			mu.Lock()
			a.datasets[ds.id] = digest
			mu.Unlock()
		}
	}
}

func bigCSV(ds string, rows int) string {
	var b strings.Builder
	if ds == "impressions" {
		b.WriteString("user_id,campaign\n")
		for r := range rows {
			fmt.Fprintf(&b, "user-%d,campaign-%d\n", r, r%13)
		}
	} else {
		b.WriteString("user_id,value\n")
		for r := range rows {
			fmt.Fprintf(&b, "user-%d,%d.25\n", r, r%97)
		}
	}
	return b.String()
}

// fetchCheckpoint reads and verifies the published checkpoint through an
// auditor of a registered contract.
func fetchCheckpoint(ctx context.Context, t *testing.T, url string, mu *sync.Mutex, all []*acked, v *tlog.Verifier) *tlog.Checkpoint {
	mu.Lock()
	var sc *testenv.Scenario
	for _, a := range all {
		if a.registered {
			sc = a.sc
			break
		}
	}
	mu.Unlock()
	if sc == nil {
		return nil
	}
	cl, err := client.New(url, client.Options{Contract: sc.Contract, Identity: sc.Party("auditor").Identity, Timeout: 2 * time.Second})
	if err != nil {
		return nil
	}
	defer cl.Close()
	raw, err := cl.LogFetcher()(ctx, "checkpoint")
	if err != nil {
		return nil
	}
	cp, err := v.VerifyCheckpoint(raw)
	if err != nil {
		t.Errorf("a published checkpoint does not verify: %v", err)
		return nil
	}
	return cp
}

func checkAfterRestart(t *testing.T, url string, key *cleanroom.PublicKey, all []*acked, lastCP *tlog.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	var auditor *client.Client
	for _, a := range all {
		cl, err := client.New(url, client.Options{Contract: a.sc.Contract, Identity: a.sc.Party("auditor").Identity})
		if err != nil {
			t.Fatal(err)
		}
		peer, err := cl.Coordinator(ctx)
		if err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if !peer.PublicKey.Equal(key) {
			t.Fatal("the coordinator's identity changed across a restart")
		}
		st, err := cl.Status(ctx)
		if err != nil {
			if a.registered {
				t.Fatalf("acknowledged contract %s lost: %v", a.sc.Contract.ID(), err)
			}
			cl.Close()
			continue
		}
		// One client is kept, as the auditor below; the others are closed
		// at the end of their turn, not of the function: a client holds a
		// keep-alive connection, and a few hundred contracts' clients open
		// at once would fill the coordinator's connection limit (256), so
		// the next handshake would wait in the kernel's backlog and time
		// out.
		if auditor == nil {
			auditor = cl
		}
		checkDatasets(t, a, st)
		if cl != auditor {
			cl.Close()
		}
	}
	if auditor == nil || lastCP == nil {
		return
	}
	defer auditor.Close()
	v, _ := tlog.NewCoordinatorVerifier(key)
	raw, err := auditor.LogFetcher()(ctx, "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := v.VerifyCheckpoint(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.CheckConsistency(ctx, auditor.LogFetcher(), lastCP, cp); err != nil {
		var ce *tlog.ConsistencyError
		errors.As(err, &ce)
		t.Fatalf("the log after restart (size %d) is not an extension of the checkpoint published before the kill (size %d): %v", cp.Size(), lastCP.Size(), err)
	}
}

// checkDatasets checks a contract's uploads after a restart: each
// acknowledged one present and unchanged, any other either absent or
// exactly an envelope that was sent.
func checkDatasets(t *testing.T, a *acked, st *api.ContractStatus) {
	t.Helper()
	for _, ds := range st.Datasets {
		want, ok := a.datasets[ds.ID]
		switch {
		case ok && (!ds.Uploaded || ds.CiphertextSHA256 != want):
			t.Fatalf("acknowledged upload %s of %s lost or changed: %+v", ds.ID, a.sc.Contract.ID(), ds)
		case !ok && ds.Uploaded && !contains(a.sent[ds.ID], ds.CiphertextSHA256):
			t.Fatalf("upload %s of %s is present but is not what was sent", ds.ID, a.sc.Contract.ID())
		}
		if ds.Uploaded && ds.Rows != 20000 {
			t.Fatalf("upload %s has %d rows", ds.ID, ds.Rows)
		}
	}
}
