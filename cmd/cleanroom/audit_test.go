package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// The audit tests run a real coordinator in this process (simulated
// SEV-SNP, attested TLS on 127.0.0.1), act as the parties through the
// client SDK, and run `cleanroom audit log` and `audit serve` as a user
// would.

var updateShape = flag.Bool("update-shape", false, "rewrite testdata/audit-report.shape.json")

const (
	auditImpressions = "user_id,campaign\nu1,spring\nu2,spring\nu3,spring\nu1,summer\nu4,autumn\n"
	auditConversions = "user_id,value\nu1,10.5\nu2,20\nu3,1\nu4,7\n"
)

// auditEnv is a coordinator with a contract between four parties, and the
// auditor's files.
type auditEnv struct {
	t        *testing.T
	dir      string // the coordinator's data directory
	srv      *testenv.Server
	sc       *testenv.Scenario
	spec     *testenv.Spec
	contract string           // contract file
	key      string           // the auditor's key file
	state    string           // the auditor's state directory
	now      func() time.Time // the coordinator's clock (nil: time.Now)
}

func newAuditEnv(t *testing.T, maxRuns int) *auditEnv { return newAuditEnvAt(t, maxRuns, nil) }

// newAuditEnvAt is newAuditEnv with a coordinator on the clock now.
func newAuditEnvAt(t *testing.T, maxRuns int, now func() time.Time) *auditEnv {
	t.Helper()
	e := &auditEnv{t: t, dir: filepath.Join(t.TempDir(), "coordinator"), state: filepath.Join(t.TempDir(), "audit-state"), now: now}
	e.start()
	e.spec = testenv.AdSpec(t, "ad-attribution", maxRuns)
	e.sc = testenv.New(t, e.srv, e.spec)
	files := t.TempDir()
	e.contract = filepath.Join(files, "contract.yaml")
	if err := os.WriteFile(e.contract, e.sc.Text, 0o644); err != nil {
		t.Fatal(err)
	}
	key, _, err := cleanroom.WriteIdentityFiles(filepath.Join(files, "auditor"), e.sc.Party("auditor").Identity)
	if err != nil {
		t.Fatal(err)
	}
	e.key = key
	return e
}

// start (re)starts the coordinator on its data directory, on a new port.
func (e *auditEnv) start() {
	e.t.Helper()
	srv, err := testenv.StartE(e.dir, coordinator.Config{CheckpointInterval: 100 * time.Millisecond, Now: e.now})
	if err != nil {
		e.t.Fatalf("starting the coordinator: %v", err)
	}
	e.srv = srv
	e.t.Cleanup(srv.Stop)
	if e.sc != nil {
		e.sc.URL, e.sc.Server = srv.URL, srv
	}
}

func (e *auditEnv) stop() { e.srv.Stop() }

// setUp registers the contract and brings the datasets and the algorithm.
func (e *auditEnv) setUp() {
	t := e.t
	e.sc.Submit(t, "auditor")
	e.sc.MustUpload(t, "publisher", "impressions", auditImpressions)
	e.sc.MustUpload(t, "advertiser", "conversions", auditConversions)
	if _, err := e.sc.Client(t, "measurer").SubmitAlgorithm(context.Background(), []byte(e.spec.Query), e.spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
}

func (e *auditEnv) run() string {
	e.t.Helper()
	rs, err := e.sc.Client(e.t, "advertiser").Run(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return rs.RunID
}

// settle waits until a published checkpoint covers every event, so an
// audit sees them all.
func (e *auditEnv) settle() {
	e.t.Helper()
	want := e.srv.Coord.LogSize()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cp, err := e.sc.Client(e.t, "auditor").LogFetcher()(context.Background(), "checkpoint")
		if err != nil {
			e.t.Fatal(err)
		}
		if lines := strings.SplitN(string(cp), "\n", 3); len(lines) > 1 && lines[1] == itoa(want) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no checkpoint of %d entries after 10 s", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// auditLog runs `cleanroom audit log` as the auditor.
func (e *auditEnv) auditLog(extra ...string) (int, string, string) {
	args := append([]string{"audit", "log", "--contract", e.contract, "--key", e.key, "--coordinator", e.srv.URL, "--state", e.state}, extra...)
	return runCLI(e.t, args...)
}

// TestAuditLog audits a whole scenario with the CLI: exit 0, every event
// in the table in log order with its actor and digests, and --json in the
// documented structure.
func TestAuditLog(t *testing.T) {
	e := newAuditEnv(t, 2)
	e.setUp()
	run1, run2 := e.run(), e.run()
	if _, err := e.sc.Client(t, "measurer").Run(context.Background()); err == nil {
		t.Fatal("a third run was admitted under max_runs 2")
	}
	if _, err := e.sc.Client(t, "advertiser").Result(context.Background(), run1); err != nil {
		t.Fatal(err)
	}
	e.settle()

	code, stdout, stderr := e.auditLog()
	if code != 0 {
		t.Fatalf("audit log: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "log verified") || !strings.Contains(stderr, "2 of 2 runs started") || !strings.Contains(stderr, "SIMULATED") {
		t.Errorf("stderr:\n%s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	fp := func(id string) string { return e.sc.Party(id).Identity.Public().Fingerprint().String()[:16] }
	want := []struct{ typ, actor string }{
		{"coordinator.started", "-"},
		{"contract.registered", "auditor " + fp("auditor")},
		{"dataset.uploaded", "publisher " + fp("publisher")},
		{"dataset.uploaded", "advertiser " + fp("advertiser")},
		{"algorithm.submitted", "measurer " + fp("measurer")},
		{"run.started", "advertiser " + fp("advertiser")},
		{"run.finished", "-"},
		{"run.started", "advertiser " + fp("advertiser")},
		{"run.finished", "-"},
		{"run.refused", "measurer " + fp("measurer")},
		{"result.fetched", "advertiser " + fp("advertiser")},
	}
	if len(lines) != len(want)+1 || !strings.HasPrefix(lines[0], "INDEX") {
		t.Fatalf("table has %d lines, want a header and %d events:\n%s", len(lines), len(want), stdout)
	}
	for i, w := range want {
		f := strings.Fields(lines[i+1])
		actor := strings.Join(f[3:4], "")
		if f[3] != "-" {
			actor = f[3] + " " + f[4]
		}
		if f[0] != itoa(uint64(i)) || f[2] != w.typ || actor != w.actor {
			t.Errorf("row %d: %q; want index %d, %s by %q", i, lines[i+1], i, w.typ, w.actor)
		}
		if _, err := time.Parse(time.RFC3339, f[1]); err != nil {
			t.Errorf("row %d: time %q", i, f[1])
		}
	}
	// Digests: the upload's ciphertext and each run's result.
	st, err := e.sc.Client(t, "auditor").Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lines[3], st.Datasets[0].CiphertextSHA256[:16]) || !strings.Contains(lines[7], st.Runs[0].ResultCommitment[:16]) ||
		!strings.Contains(lines[9], st.Runs[1].ResultCommitment[:16]) || !strings.Contains(lines[11], run1) || !strings.Contains(lines[6], run1) {
		t.Errorf("digests missing from the table:\n%s", stdout)
	}
	_ = run2

	// --json: the report's structure is the documented one.
	code, stdout, stderr = e.auditLog("--json")
	if code != 0 {
		t.Fatalf("audit log --json: exit %d\n%s", code, stderr)
	}
	var rep audit.Report
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Verified || rep.Format != audit.ReportFormat || len(rep.Timeline) != len(want) || rep.Checkpoint.Consistency != "unchanged" {
		t.Errorf("report: verified %v, format %s, %d timeline entries, consistency %s", rep.Verified, rep.Format, len(rep.Timeline), rep.Checkpoint.Consistency)
	}
	var doc any
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(shape(doc), "", "  ")
	got = append(got, '\n')
	golden := filepath.Join("testdata", "audit-report.shape.json")
	if *updateShape {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantShape, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, wantShape) {
		t.Errorf("the structure of audit log --json changed (docs/audit.md documents it; update both, then run with -update-shape):\n%s", got)
	}

	// The web view shows it in a real browser.
	checkBrowserVerified(t, e, len(want))
}

// shape replaces every value of a JSON document by its type, merging the
// elements of arrays, so the golden file pins the structure, not the
// values.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			out[k] = shape(val)
		}
		return out
	case []any:
		var merged any
		for _, el := range x {
			merged = merge(merged, shape(el))
		}
		if merged == nil {
			return []any{}
		}
		return []any{merged}
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return "?"
}

func merge(a, b any) any {
	if a == nil {
		return b
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		for k, v := range bm {
			am[k] = merge(am[k], v)
		}
		return am
	}
	as, aok := a.(string)
	bs, bok := b.(string)
	if aok && bok && as != bs {
		parts := strings.Split(as+"|"+bs, "|")
		sort.Strings(parts)
		var uniq []string
		for _, p := range parts {
			if len(uniq) == 0 || uniq[len(uniq)-1] != p {
				uniq = append(uniq, p)
			}
		}
		return strings.Join(uniq, "|")
	}
	return a
}

// TestAuditRollback restores an older copy of the coordinator's data
// directory — a host rolling its state back to reset max_runs — and
// restarts it: the audit with the state kept from before reports a
// ROLLBACK with the evidence, exits non-zero and keeps the old checkpoint.
// When the rolled-back coordinator then runs again past the old size, the
// audit reports a FORK. The web view shows the evidence.
func TestAuditRollback(t *testing.T) {
	e := newAuditEnv(t, 1)
	e.setUp()
	e.settle()
	e.stop()
	old := filepath.Join(t.TempDir(), "coordinator-copy")
	copyDir(t, e.dir, old)
	e.start()
	e.run() // the one run max_runs allows
	e.settle()
	if code, _, stderr := e.auditLog(); code != 0 {
		t.Fatalf("audit before the rollback: exit %d\n%s", code, stderr)
	}
	kept := must(os.ReadFile(filepath.Join(e.state, audit.CheckpointFile)))
	factsBefore := must(os.ReadFile(filepath.Join(e.state, audit.FactsFile)))

	e.stop()
	if err := os.RemoveAll(e.dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, old, e.dir)
	e.start()
	e.settle()
	code, stdout, stderr := e.auditLog()
	if code != 1 || stdout != "" {
		t.Fatalf("audit of a rolled-back log: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	for _, s := range []string{"ROLLBACK", "kept checkpoint: 8 entries", "new checkpoint:  6 entries", "evidence saved in", "rollback detected", "was not replaced"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
	ev := evidenceDirs(t, e.state)
	if len(ev) != 1 || !strings.HasSuffix(ev[0], "-rollback") {
		t.Fatalf("evidence directories: %v", ev)
	}
	checkEvidence(t, e, ev[0], kept, 6, false)
	if !bytes.Equal(must(os.ReadFile(filepath.Join(e.state, audit.CheckpointFile))), kept) ||
		!bytes.Equal(must(os.ReadFile(filepath.Join(e.state, audit.FactsFile))), factsBefore) {
		t.Error("the rollback replaced the kept checkpoint or the facts")
	}
	lf, err := audit.ReadLastFailure(e.state)
	if err != nil || lf == nil || lf.Failure.Kind != audit.FailRollback || lf.Failure.Evidence != "evidence/"+ev[0] {
		t.Errorf("last failure: %+v, %v", lf, err)
	}

	// The rolled-back coordinator forgot the run: it lets the contract run
	// again, and its log grows past the size the auditor kept.
	e.run()
	if _, err := e.sc.Client(t, "advertiser").Result(context.Background(), e.run2OrFetch()); err != nil {
		t.Fatal(err)
	}
	e.settle()
	code, _, stderr = e.auditLog("--json")
	if code != 1 || !strings.Contains(stderr, "FORK") || !strings.Contains(stderr, "fork detected") {
		t.Fatalf("audit of a forked log: exit %d\n%s", code, stderr)
	}
	ev = evidenceDirs(t, e.state)
	if len(ev) != 2 {
		t.Fatalf("evidence directories: %v", ev)
	}
	fork := ev[0]
	if strings.HasSuffix(ev[0], "-rollback") {
		fork = ev[1]
	}
	checkEvidence(t, e, fork, kept, 9, true)
	if !bytes.Equal(must(os.ReadFile(filepath.Join(e.state, audit.CheckpointFile))), kept) {
		t.Error("the fork replaced the kept checkpoint")
	}

	checkBrowserRollback(t, e)
}

// run2OrFetch returns the id of the run the rolled-back coordinator made.
func (e *auditEnv) run2OrFetch() string {
	st, err := e.sc.Client(e.t, "auditor").Status(context.Background())
	if err != nil || len(st.Runs) == 0 {
		e.t.Fatalf("status: %+v, %v", st, err)
	}
	return st.Runs[len(st.Runs)-1].RunID
}

func evidenceDirs(t *testing.T, state string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(state, audit.EvidenceDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if de.IsDir() && !strings.HasPrefix(de.Name(), ".") {
			out = append(out, de.Name())
		}
	}
	return out
}

// checkEvidence checks an evidence directory: the old checkpoint is the
// one kept, the new one verifies under the coordinator's key with the size
// seen, the proof (for a fork) fails to verify, and the report says it.
func checkEvidence(t *testing.T, e *auditEnv, name string, kept []byte, newSize uint64, fork bool) {
	t.Helper()
	dir := filepath.Join(e.state, audit.EvidenceDir, name)
	if old := must(os.ReadFile(filepath.Join(dir, audit.EvidenceOld))); !bytes.Equal(old, kept) {
		t.Errorf("%s: old.checkpoint is not the kept checkpoint", name)
	}
	v, err := tlog.NewCoordinatorVerifier(e.srv.Coord.Identity().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	oldCP, err := v.VerifyCheckpoint(kept)
	if err != nil {
		t.Fatal(err)
	}
	newCP, err := v.VerifyCheckpoint(must(os.ReadFile(filepath.Join(dir, audit.EvidenceNew))))
	if err != nil || newCP.Size() != newSize {
		t.Fatalf("%s: new.checkpoint: %v, %v", name, newCP, err)
	}
	var proof [][]byte
	for _, line := range strings.Fields(string(must(os.ReadFile(filepath.Join(dir, audit.EvidenceProof))))) {
		h, err := hex.DecodeString(line)
		if err != nil || len(h) != 32 {
			t.Fatalf("%s: proof line %q", name, line)
		}
		proof = append(proof, h)
	}
	if fork {
		if len(proof) == 0 {
			t.Errorf("%s: a fork's evidence has no proof", name)
		}
		if err := tlog.VerifyConsistencyProof(oldCP, newCP, proof); err == nil {
			t.Errorf("%s: the saved proof verifies; it should be the evidence of a fork", name)
		}
	} else if len(proof) != 0 {
		t.Errorf("%s: a rollback needs no proof, got %d hashes", name, len(proof))
	}
	rep := string(must(os.ReadFile(filepath.Join(dir, audit.EvidenceReport))))
	word := "ROLLBACK"
	if fork {
		word = "FORK"
	}
	if !strings.HasPrefix(rep, word) || !strings.Contains(rep, e.contractID()) {
		t.Errorf("%s: report.txt:\n%s", name, rep)
	}
}

func (e *auditEnv) contractID() string { return e.sc.Contract.ID().String() }

// TestAuditTamperedLogOnDisk alters the coordinator's log files on disk
// while it serves them — a byte of an entry, a byte of a hash tile, an
// entry removed — and checks `audit log` names the file and the entry,
// exits non-zero and keeps its state; with the files restored it passes. A
// bundle that no longer parses cannot be redacted for the contract's view:
// the coordinator refuses to serve it and says so.
func TestAuditTamperedLogOnDisk(t *testing.T) {
	e := newAuditEnv(t, 2)
	e.setUp()
	e.run()
	e.settle()
	if code, _, stderr := e.auditLog(); code != 0 {
		t.Fatalf("audit: exit %d\n%s", code, stderr)
	}
	kept := must(os.ReadFile(filepath.Join(e.state, audit.CheckpointFile)))
	size := e.srv.Coord.LogSize()
	bundle := filepath.Join(e.dir, "log", "tile", "entries", "000.p", itoa(size))
	tile := filepath.Join(e.dir, "log", "tile", "0", "000.p", itoa(size))
	cases := []struct {
		name, file string
		change     func([]byte) []byte
		want       string
	}{
		{"flipped byte in entry 3", bundle, func(b []byte) []byte {
			off := 0
			for range 3 {
				off += 2 + int(binary.BigEndian.Uint16(b[off:]))
			}
			b[off+2+20] ^= 0x04
			return b
		}, "the log does not match its signed checkpoint: tile/entries/000.p/" + itoa(size) + ", entry 3:"},
		{"flipped byte in the hash of entry 2", tile, func(b []byte) []byte {
			b[2*32] ^= 0x01
			return b
		}, "the log does not match its signed checkpoint: tile/0/000.p/" + itoa(size) + ", entry 2:"},
		{"entry 4 removed", bundle, func(b []byte) []byte {
			off := 0
			for range 4 {
				off += 2 + int(binary.BigEndian.Uint16(b[off:]))
			}
			n := 2 + int(binary.BigEndian.Uint16(b[off:]))
			return append(b[:off:off], b[off+n:]...)
		}, "error: the log cannot be served: the entry bundle tile/entries/000.p/" + itoa(size) + " on the coordinator's disk is damaged (holds " + itoa(size-1) + " entries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := must(os.ReadFile(tc.file))
			if err := os.WriteFile(tc.file, tc.change(bytes.Clone(orig)), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := e.auditLog()
			if err := os.WriteFile(tc.file, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d\nstdout %s\nstderr %s\nwant %q", code, stdout, stderr, tc.want)
			}
			if !bytes.Equal(must(os.ReadFile(filepath.Join(e.state, audit.CheckpointFile))), kept) {
				t.Error("the kept checkpoint changed")
			}
			if code, _, stderr := e.auditLog(); code != 0 {
				t.Fatalf("audit after restoring the file: exit %d\n%s", code, stderr)
			}
		})
	}
}

// TestAuditStateOfAnotherLog refuses a state directory kept for another
// coordinator's log, and leaves it as it was.
func TestAuditStateOfAnotherLog(t *testing.T) {
	e := newAuditEnv(t, 1)
	e.setUp()
	e.settle()
	other := must(os.ReadFile(filepath.Join("..", "..", "cleanroom", "tlog", "testdata", "golden-log", "checkpoint")))
	if err := os.MkdirAll(e.state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.state, audit.CheckpointFile), other, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := e.auditLog()
	if code != 1 || stdout != "" || !strings.Contains(stderr, "another coordinator's log") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if !bytes.Equal(must(os.ReadFile(filepath.Join(e.state, audit.CheckpointFile))), other) {
		t.Error("the kept checkpoint was replaced")
	}
}

// TestAuditLogUsage checks the refusals that need no coordinator.
func TestAuditLogUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit", "log"}, 2, "missing 3 required flags: --contract FILE"},
		{[]string{"audit", "serve"}, 2, "--state DIR is required"},
		{[]string{"audit", "serve", "--state", filepath.Join(t.TempDir(), "none")}, 1, "audit log --state DIR"},
		{[]string{"audit", "serve", "--state", t.TempDir(), "--listen", "nonsense"}, 2, "is not host:port"},
		{[]string{"audit", "serve", "--state", t.TempDir(), "--stale-after", "-1h"}, 2, "--stale-after -1h0m0s is negative"},
		{[]string{"audit", "serve", "--state", t.TempDir(), "--stale-after", "a day"}, 2, "--stale-after"},
	} {
		t.Setenv("CLEANROOM_CONTRACT", "")
		code, _, stderr := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %s", tc.args, code, stderr)
		}
	}
}

// copyDir copies a directory tree (regular files and directories, with
// their modes), as an operator copying a stopped coordinator's data would.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, info.Mode().Perm()|0o700)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, data, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copying %s: %v", from, err)
	}
}
