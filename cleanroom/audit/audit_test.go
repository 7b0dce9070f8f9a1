package audit_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
)

// TestAuditScenario audits the whole scenario over attested TLS: every
// event is in the timeline in log order with its actor and digests, every
// signature verified, and the state keeps the checkpoint; a second audit
// finds it unchanged and a third, after more events, proves the extension.
func TestAuditScenario(t *testing.T) {
	w := getWorld(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := openState(t, dir)
	r, err := audit.Run(ctx, w.config(nil), st)
	if err != nil {
		t.Fatalf("audit of an honest log failed: %v", err)
	}
	if !r.Verified || r.Failure != nil || len(r.Problems) != 0 {
		t.Fatalf("report: verified %v, failure %+v, problems %+v", r.Verified, r.Failure, r.Problems)
	}
	want := []events.Type{
		events.TypeCoordinatorStarted, events.TypeContractRegistered, events.TypeDatasetUploaded, events.TypeDatasetUploaded,
		events.TypeAlgorithmSubmitted, events.TypeRunStarted, events.TypeRunFinished, events.TypeRunStarted, events.TypeRunFinished,
		events.TypeRunRefused, events.TypeResultFetched,
	}
	var got []events.Type
	for i, e := range r.Timeline {
		got = append(got, events.Type(e.Type))
		if i > 0 && e.Index <= r.Timeline[i-1].Index {
			t.Errorf("timeline out of log order at %d", i)
		}
		if !e.OK {
			t.Errorf("timeline entry %d flagged", e.Index)
		}
	}
	if !slices.Equal(got, want[:len(got)]) || len(got) < len(want) {
		t.Fatalf("timeline types:\n got %v\nwant %v (a prefix of the log, at least)", got, want)
	}
	if r.Checkpoint.Consistency != "first-audit" || r.Checkpoint.Size < uint64(len(want)) || r.Log.ContractEvents != uint64(len(want)-1) {
		t.Errorf("checkpoint %+v, log %+v", r.Checkpoint, r.Log)
	}
	// Actors and digests, against what the parties saw.
	byType := func(typ events.Type, n int) audit.TimelineEntry {
		for _, e := range r.Timeline {
			if events.Type(e.Type) == typ {
				if n == 0 {
					return e
				}
				n--
			}
		}
		t.Fatalf("no %s event", typ)
		return audit.TimelineEntry{}
	}
	up := byType(events.TypeDatasetUploaded, 0)
	if up.Actor != "publisher" || up.ActorKey != w.sc.Party("publisher").Identity.Public().Fingerprint().String() ||
		up.Details["ciphertext_sha256"] != hex.EncodeToString(w.uploads["impressions"].CiphertextSHA256[:]) {
		t.Errorf("upload row: %+v", up)
	}
	if fin := byType(events.TypeRunFinished, 1); fin.Details["result_commitment"] != w.runs[1].ResultCommitment || fin.Details["rows_kept"] != "1" {
		t.Errorf("run.finished row: %+v", fin)
	}
	if f := byType(events.TypeResultFetched, 0); f.Actor != "advertiser" {
		t.Errorf("result.fetched row: %+v", f)
	}
	for _, p := range r.Parties {
		if !p.SignatureVerified || p.SignatureSHA256 == "" {
			t.Errorf("participant %s: signature not verified", p.ID)
		}
	}
	for _, d := range r.Datasets {
		if !d.Uploaded || !d.StatementVerified || d.CiphertextSHA256 != hex.EncodeToString(w.uploads[d.ID].CiphertextSHA256[:]) || d.Rows != w.uploads[d.ID].Rows {
			t.Errorf("dataset %+v", d)
		}
	}
	if len(r.Runs) != 2 || r.Contract.RunsStarted != 2 || r.Contract.RefusedAtAdmission != 1 || !r.Contract.DocMatches {
		t.Fatalf("runs %+v, contract %+v", r.Runs, r.Contract)
	}
	for i, run := range r.Runs {
		if run.Status != audit.RunFinished || !run.StatementVerified || run.RunID != w.runs[i].RunID || run.ResultCommitment != w.runs[i].ResultCommitment ||
			run.RowsKept != 1 || run.RowsSuppressed != 2 || run.Number != int64(i+1) {
			t.Errorf("run %d: %+v", i, run)
		}
	}
	if len(r.Runs[0].Fetches) != 1 || r.Runs[0].Fetches[0].Actor != "advertiser" {
		t.Errorf("fetches of run 1: %+v", r.Runs[0].Fetches)
	}
	if r.Coordinator.EvidenceLoggedAt == nil || *r.Coordinator.EvidenceLoggedAt != 0 || r.Coordinator.Starts != 1 {
		t.Errorf("coordinator facts %+v", r.Coordinator)
	}

	// The state keeps the checkpoint, the history and the report.
	kept, err := os.ReadFile(filepath.Join(dir, audit.CheckpointFile))
	if err != nil || string(kept) != r.Checkpoint.Note {
		t.Fatalf("kept checkpoint %q, %v", kept, err)
	}
	facts, err := audit.ReadFacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(facts.History) != 1 || facts.Contracts[r.Contract.ID] == nil || facts.Checkpoint.Size != r.Checkpoint.Size {
		t.Fatalf("facts: %+v", facts)
	}

	// Again: nothing new.
	r2, err := audit.Run(ctx, w.config(nil), st)
	if err != nil || r2.Checkpoint.Consistency != "unchanged" {
		t.Fatalf("second audit: %v, %+v", err, r2.Checkpoint)
	}

	// More events: the new checkpoint must be proved to extend the kept one.
	if _, err := w.sc.Client(t, "advertiser").Result(ctx, w.runs[1].RunID); err != nil {
		t.Fatal(err)
	}
	waitCovered(t, w, r.Checkpoint.Size+1)
	r3, err := audit.Run(ctx, w.config(nil), st)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Checkpoint.Consistency != "extended" || *r3.Checkpoint.KeptSize != r.Checkpoint.Size || r3.Checkpoint.ProofHashes == 0 {
		t.Fatalf("third audit: %+v", r3.Checkpoint)
	}
	if len(r3.Runs[1].Fetches) != 1 {
		t.Errorf("the new fetch is not in the report: %+v", r3.Runs[1])
	}
	facts, _ = audit.ReadFacts(dir)
	if len(facts.History) != 2 || facts.History[1].Size != r3.Checkpoint.Size {
		t.Errorf("history: %+v", facts.History)
	}
}

// tamper returns a fetcher serving f's resources, with the one at path
// changed by fn.
func tamper(f tlog.Fetcher, match func(string) bool, fn func([]byte) ([]byte, error)) tlog.Fetcher {
	return func(ctx context.Context, p string) ([]byte, error) {
		b, err := f(ctx, p)
		if err != nil || !match(p) {
			return b, err
		}
		return fn(bytes.Clone(b))
	}
}

func isPath(prefix string) func(string) bool {
	return func(p string) bool { return strings.HasPrefix(p, prefix) }
}

// bundleEntries splits an entry bundle.
func bundleEntries(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 2 {
		n := int(binary.BigEndian.Uint16(b))
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

func encodeBundle(es [][]byte) []byte {
	var out []byte
	for _, e := range es {
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
	}
	return out
}

// entryOffset returns the offset in a bundle of byte k of entry i.
func entryOffset(b []byte, i, k int) int {
	off := 0
	for range i {
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	return off + 2 + k
}

// TestTamperedLog serves the real log with one thing changed — a byte of
// an entry, of a hash tile, of the checkpoint, an entry removed, a tile
// missing — and checks the audit names the resource and the entry, keeps
// the state as it was, and records the failure.
func TestTamperedLog(t *testing.T) {
	w := getWorld(t)
	ctx := context.Background()
	real := w.auditor.LogFetcher()
	cases := []struct {
		name      string
		fetch     tlog.Fetcher
		kind      string
		path      string // prefix of the resource the failure names
		index     int64  // entry index named; -1: none
		inMessage string
	}{
		{"flipped byte in an entry", tamper(real, isPath("tile/entries/"), func(b []byte) ([]byte, error) {
			b[entryOffset(b, 3, 10)] ^= 0x01
			return b, nil
		}), audit.FailLog, "tile/entries/000", 3, "not the one the signed root commits to"},
		{"flipped byte in a level-0 hash tile", tamper(real, isPath("tile/0/"), func(b []byte) ([]byte, error) {
			b[5*32+7] ^= 0x80
			return b, nil
		}), audit.FailLog, "tile/0/000", 5, "leaf hash in this hash tile"},
		{"entry removed", tamper(real, isPath("tile/entries/"), func(b []byte) ([]byte, error) {
			es := bundleEntries(b)
			return encodeBundle(slices.Delete(es, 4, 5)), nil
		}), audit.FailLog, "tile/entries/000", -1, "its name says"},
		{"entry removed and the bundle padded to its size", tamper(real, isPath("tile/entries/"), func(b []byte) ([]byte, error) {
			es := bundleEntries(b)
			es = slices.Delete(es, 4, 5)
			return encodeBundle(append(es, es[len(es)-1])), nil
		}), audit.FailLog, "tile/entries/000", 4, "removed before it"},
		{"hash tile missing", tamper(real, isPath("tile/0/"), func([]byte) ([]byte, error) {
			return nil, fs.ErrNotExist
		}), audit.FailLog, "tile/0/000", -1, "missing"},
		{"the contract's last event withheld", tamper(real, isPath("tile/entries/"), func(b []byte) ([]byte, error) {
			es := bundleEntries(b)
			es[len(es)-1] = nil // result.fetched, redacted as if of another contract
			return encodeBundle(es), nil
		}), audit.FailWithheld, "", -1, "entries of the view were withheld"},
		{"an event in the middle withheld", tamper(real, isPath("tile/entries/"), func(b []byte) ([]byte, error) {
			es := bundleEntries(b)
			es[5] = nil
			return encodeBundle(es), nil
		}), audit.FailWithheld, "", -1, "were withheld"},
		{"view head claiming fewer events", tamper(real, isPath("head/"), func(b []byte) ([]byte, error) {
			lines := bytes.SplitN(b, []byte("\n"), 4) // view line, size, count, signature block
			n, err := strconv.Atoi(string(lines[2]))
			if err != nil {
				return nil, err
			}
			lines[2] = []byte(strconv.Itoa(n - 1))
			return bytes.Join(lines, []byte("\n")), nil
		}), audit.FailCheckpoint, "", -1, "view head"},
		{"flipped byte in the checkpoint's root", tamper(real, isPath("checkpoint"), func(b []byte) ([]byte, error) {
			lines := bytes.SplitN(b, []byte("\n"), 3)
			lines[2][3] ^= 0x01
			return bytes.Join(lines, []byte("\n")), nil
		}), audit.FailCheckpoint, "", -1, "does not verify"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st := openState(t, dir)
			good, err := audit.Run(ctx, w.config(nil), st)
			if err != nil {
				t.Fatal(err)
			}
			keptBefore, _ := os.ReadFile(filepath.Join(dir, audit.CheckpointFile))
			factsBefore, _ := os.ReadFile(filepath.Join(dir, audit.FactsFile))
			r, err := audit.Run(ctx, w.config(tc.fetch), st)
			if err == nil || !errors.Is(err, audit.ErrFailed) {
				t.Fatalf("tampered log passed the audit: %v", err)
			}
			if r == nil || r.Failure == nil || r.Verified {
				t.Fatalf("report: %+v", r)
			}
			f := r.Failure
			if f.Kind != tc.kind || !strings.HasPrefix(f.Path, tc.path) || !strings.Contains(f.Message, tc.inMessage) {
				t.Errorf("failure %+v; want kind %s, path %s…, message with %q", f, tc.kind, tc.path, tc.inMessage)
			}
			if (tc.index < 0) != (f.Index == nil) || (f.Index != nil && *f.Index != tc.index) {
				t.Errorf("failure names entry %v, want %d", f.Index, tc.index)
			}
			if tc.kind == audit.FailLog && !errors.As(err, new(*tlog.ContentError)) {
				t.Errorf("error does not carry the tlog.ContentError: %v", err)
			}
			if tc.kind == audit.FailWithheld && (!errors.As(err, new(*tlog.ViewCountError)) || !strings.Contains(r.Log.ViewHead, "/view/"+w.sc.Contract.ID().String()+"\n")) {
				t.Errorf("a withheld event's failure carries no signed view head: %v, %q", err, r.Log.ViewHead)
			}
			keptAfter, _ := os.ReadFile(filepath.Join(dir, audit.CheckpointFile))
			factsAfter, _ := os.ReadFile(filepath.Join(dir, audit.FactsFile))
			if !bytes.Equal(keptBefore, keptAfter) || !bytes.Equal(factsBefore, factsAfter) {
				t.Error("a failed audit changed the kept checkpoint or state.json")
			}
			lf, err := audit.ReadLastFailure(dir)
			if err != nil || lf == nil || lf.Failure.Kind != tc.kind {
				t.Errorf("last failure %+v, %v", lf, err)
			}
			_ = good
		})
	}
}

// TestKeptStateOfAnotherLog refuses a state directory whose kept
// checkpoint is not signed by the attested coordinator.
func TestKeptStateOfAnotherLog(t *testing.T) {
	w := getWorld(t)
	dir := t.TempDir()
	golden, err := os.ReadFile(filepath.Join("..", "tlog", "testdata", "golden-log", "checkpoint"))
	if err != nil {
		t.Skip("no golden checkpoint to use as another log's:", err)
	}
	if err := os.WriteFile(filepath.Join(dir, audit.CheckpointFile), golden, 0o600); err != nil {
		t.Fatal(err)
	}
	st := openState(t, dir)
	r, err := audit.Run(context.Background(), w.config(nil), st)
	if err == nil || r == nil || r.Failure == nil || r.Failure.Kind != audit.FailState || !strings.Contains(err.Error(), "another coordinator's log") {
		t.Fatalf("audit with another log's kept checkpoint: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, audit.CheckpointFile)); !bytes.Equal(b, golden) {
		t.Error("the kept checkpoint was replaced")
	}
}

// TestStateLocked refuses a second audit on a state directory in use.
func TestStateLocked(t *testing.T) {
	dir := t.TempDir()
	openState(t, dir)
	if _, err := audit.OpenState(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second OpenState: %v", err)
	}
}
