package eventlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
)

// crashChildEnv, when set to a directory, makes TestCrashChild run as the
// appending child process of TestCrashRecovery.
const crashChildEnv = "CLEANROOM_EVENTLOG_CRASH_CHILD"

// crashEntry is the shape of every entry the crash test writes; anything
// else found in the log is garbage.
var crashEntry = regexp.MustCompile(`^gen=[0-9]+ w=[0-9]+ i=[0-9]+ pad=[a-z]*$`)

// TestCrashChild is not a test: run by TestCrashRecovery in a child process,
// it appends entries from several goroutines until it is killed, printing
// "ack INDEX BASE64(ENTRY)" after each Append returns and "cp BASE64" for
// each new checkpoint it sees published.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	id, origin := testKey(t)
	l, err := Open(dir, id.Signer(), origin, testOpts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	gen := os.Getenv("CRASH_GEN")
	var outMu sync.Mutex
	say := func(line string) {
		outMu.Lock()
		os.Stdout.WriteString(line + "\n") // one write per line, unbuffered
		outMu.Unlock()
	}
	go func() {
		var last []byte
		for {
			if cp, err := l.Checkpoint(context.Background()); err == nil && !bytes.Equal(cp.Bytes(), last) {
				last = cp.Bytes()
				say("cp " + base64.StdEncoding.EncodeToString(last))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				pad := strings.Repeat(string(rune('a'+(i+w)%26)), rand.IntN(400))
				e := []byte(fmt.Sprintf("gen=%s w=%d i=%d pad=%s", gen, w, i, pad))
				idx, err := l.Append(context.Background(), e)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				say(fmt.Sprintf("ack %d %s", idx, base64.StdEncoding.EncodeToString(e)))
			}
		}()
	}
	select {} // until killed
}

// TestCrashRecovery kills an appending child process with SIGKILL at random
// moments, many times over, and checks after each kill that every
// acknowledged entry is in the log at its index with its bytes, that the log
// holds nothing else, that it extends the last checkpoint the child saw
// published, and that appending goes on.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; skipped in -short mode")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	acked := map[uint64][]byte{}
	var lastCP []byte
	const rounds = 24
	for gen := range rounds {
		ackedBefore := len(acked)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "CRASH_GEN="+strconv.Itoa(gen))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		handle := func(line string) {
			kind, rest, _ := strings.Cut(line, " ")
			switch kind {
			case "ack":
				idxText, b64, _ := strings.Cut(rest, " ")
				idx, err1 := strconv.ParseUint(idxText, 10, 64)
				e, err2 := base64.StdEncoding.DecodeString(b64)
				if err1 != nil || err2 != nil {
					t.Fatalf("round %d: bad child line %q", gen, line)
				}
				if prev, ok := acked[idx]; ok && !bytes.Equal(prev, e) {
					t.Fatalf("round %d: index %d acknowledged for %q and again for %q", gen, idx, prev, e)
				}
				acked[idx] = e
			case "cp":
				raw, err := base64.StdEncoding.DecodeString(rest)
				if err != nil {
					t.Fatalf("round %d: bad child line %q", gen, line)
				}
				lastCP = raw
			}
		}
		// Wait for the child to start acknowledging, then kill it at a
		// random moment while its appenders are busy.
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("round %d: child exited early: %s", gen, stderr.String())
			}
			handle(line)
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: child did not acknowledge anything: %s", gen, stderr.String())
		}
		deadline := time.After(time.Duration(rng.IntN(250)) * time.Millisecond)
	run:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break run
				}
				handle(line)
			case <-deadline:
				break run
			}
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for line := range lines { // everything printed before the kill was acknowledged
			handle(line)
		}
		cmd.Wait()
		if strings.Contains(stderr.String(), "child ") {
			t.Fatalf("round %d: child failed: %s", gen, stderr.String())
		}

		checkRecovered(t, dir, gen, acked, lastCP)
		t.Logf("round %d: %d entries acknowledged before the kill, %d in all", gen, len(acked)-ackedBefore, len(acked))
	}
}

// checkRecovered reopens the log after a kill and checks it.
func checkRecovered(t *testing.T, dir string, gen int, acked map[uint64][]byte, lastCP []byte) {
	t.Helper()
	ctx := ctxT(t)
	l := openTest(t, dir)
	var entries [][]byte
	if err := l.Replay(ctx, func(i uint64, e []byte) error {
		entries = append(entries, bytes.Clone(e))
		return nil
	}); err != nil {
		t.Fatalf("round %d: replay after kill: %v", gen, err)
	}
	for idx, e := range acked {
		if idx >= uint64(len(entries)) {
			t.Fatalf("round %d: acknowledged entry %d lost: the log has %d entries", gen, idx, len(entries))
		}
		if !bytes.Equal(entries[idx], e) {
			t.Fatalf("round %d: entry %d is %q, acknowledged %q", gen, idx, entries[idx], e)
		}
	}
	for i, e := range entries {
		if !crashEntry.Match(e) {
			t.Fatalf("round %d: entry %d is garbage: %q", gen, i, e)
		}
	}
	cur, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Size() != uint64(len(entries)) {
		t.Fatalf("round %d: checkpoint of %d entries after replaying %d", gen, cur.Size(), len(entries))
	}
	if lastCP != nil {
		old, err := l.Verifier().VerifyCheckpoint(lastCP)
		if err != nil {
			t.Fatalf("round %d: checkpoint the child published: %v", gen, err)
		}
		if _, err := tlog.CheckConsistency(ctx, tlog.DirFetcher(dir), old, cur); err != nil {
			t.Fatalf("round %d: recovered log does not extend the child's last checkpoint: %v", gen, err)
		}
	}
	e := []byte(fmt.Sprintf("gen=%d w=99 i=0 pad=", gen))
	idx, err := l.Append(ctx, e)
	if err != nil {
		t.Fatalf("round %d: append after recovery: %v", gen, err)
	}
	if idx != uint64(len(entries)) {
		t.Fatalf("round %d: append after recovery got index %d, want %d", gen, idx, len(entries))
	}
	acked[idx] = e
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
