package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

// TestAuditIsolatedContracts: two contracts share one coordinator and its
// log, their events interleaved. The auditor of one verifies with `audit
// log` the whole log's consistency and tree and every event of its
// contract, and sees none of the other's: those are redacted to their leaf
// hashes and only counted. A later audit proves the grown log extends the
// kept checkpoint.
func TestAuditIsolatedContracts(t *testing.T) {
	e := newAuditEnv(t, 3)
	ctx := context.Background()
	other := testenv.New(t, e.srv, &testenv.Spec{
		Name: "other-contract",
		Parties: []*testenv.Party{
			testenv.NewParty(t, "owner", contracts.RoleDataProvider, contracts.RoleAlgorithmProvider, contracts.RoleResultRecipient),
			testenv.NewParty(t, "other-auditor", contracts.RoleAuditor),
		},
		Datasets:    []testenv.Dataset{{ID: "samples", Provider: "owner", Columns: "[{name: k, type: int64}]"}},
		Query:       "SELECT count(*) AS n FROM samples",
		AlgorithmBy: "owner", Recipients: []string{"owner"},
		MaxRows: 10, MaxRuns: 3,
	})
	other.Submit(t, "owner")
	e.setUp()
	other.MustUpload(t, "owner", "samples", "k\n1\n2\n")
	if _, err := other.Client(t, "owner").SubmitAlgorithm(ctx, []byte(other.Spec.Query), nil); err != nil {
		t.Fatal(err)
	}
	e.run()
	if _, err := other.Client(t, "owner").Run(ctx); err != nil {
		t.Fatal(err)
	}
	e.settle()

	code, stdout, stderr := e.auditLog("--json")
	if code != 0 {
		t.Fatalf("audit log: exit %d\n%s", code, stderr)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	// The other contract: registered, uploaded, algorithm, run started and
	// finished. This one: registered, 2 uploads, algorithm, run started and
	// finished; and the coordinator's start.
	if !rep.Verified || rep.Log.OtherEvents != 5 || rep.Log.ContractEvents != 6 || rep.Log.CoordinatorStarts != 1 || rep.Log.ViewEntries != 7 || rep.Log.Size != 12 {
		t.Fatalf("report: verified %v, log %+v", rep.Verified, rep.Log)
	}
	if !strings.Contains(stderr, "5 entries of other contracts were verified by their leaf hashes only") {
		t.Errorf("stderr:\n%s", stderr)
	}
	oid := other.Contract.ID().String()
	for _, te := range rep.Timeline {
		for _, v := range te.Details {
			if strings.Contains(v, oid) {
				t.Errorf("the timeline shows the other contract: %+v", te)
			}
		}
	}
	if strings.Contains(stdout, oid) || strings.Contains(stdout, "other-contract") || strings.Contains(stdout, "owner") {
		t.Errorf("the report names the other contract:\n%s", stdout)
	}

	// Both go on; the next audit proves the log grew from the kept
	// checkpoint, with the other contract's events still hidden.
	if _, err := other.Client(t, "owner").Run(ctx); err != nil {
		t.Fatal(err)
	}
	e.run()
	e.settle()
	code, _, stderr = e.auditLog()
	if code != 0 || !strings.Contains(stderr, "extends the one of 12 entries kept") || !strings.Contains(stderr, "7 entries of other contracts") {
		t.Fatalf("second audit: exit %d\n%s", code, stderr)
	}
}

// TestAuditDetectsWithheldEvent: a coordinator that hides one of the
// contract's events from its auditor — the last one, which no later event
// links to, or one in the middle — is caught by `audit log`: the view shows
// fewer events than the coordinator's own signed view head says. The audit
// fails, prints the signed head as evidence, and keeps the checkpoint it
// had. The withholding coordinator is played by a server holding the
// coordinator's key (as a subverted coordinator would) in front of the
// real one.
func TestAuditDetectsWithheldEvent(t *testing.T) {
	e := newAuditEnv(t, 3)
	e.setUp()
	e.run()
	e.settle()
	if code, _, stderr := e.auditLog(); code != 0 {
		t.Fatalf("audit of the honest coordinator: exit %d\n%s", code, stderr)
	}
	kept := must(os.ReadFile(filepath.Join(e.state, audit.CheckpointFile)))
	cid := e.contractID()
	for name, hide := range map[string]string{
		"the last event (run.finished)":   `"type":"run.finished"`,
		"an event in the middle (upload)": `"type":"dataset.uploaded"`,
	} {
		t.Run(name, func(t *testing.T) {
			url := withholdingCoordinator(t, e, func(entry []byte) bool {
				return bytes.Contains(entry, []byte(hide)) && bytes.Contains(entry, []byte(`"contract":"`+cid+`"`))
			}, 0)
			args := []string{"audit", "log", "--contract", e.contract, "--key", e.key, "--coordinator", url, "--state", e.state}
			code, stdout, stderr := runCLI(t, args...)
			if code != 1 || stdout != "" || !strings.Contains(stderr, "WITHHELD:") || !strings.Contains(stderr, "were withheld") ||
				!strings.Contains(stderr, "/view/"+cid+"\n") {
				t.Fatalf("audit of a coordinator withholding %s: exit %d\nstdout %s\nstderr %s", name, code, stdout, stderr)
			}
			if !bytes.Equal(must(os.ReadFile(filepath.Join(e.state, audit.CheckpointFile))), kept) {
				t.Error("the kept checkpoint changed")
			}
		})
	}

	// A coordinator that also signs a view head counting only what it
	// shows is caught by the contract's chain: the events after the hidden
	// ones name their seq and their predecessor's leaf hash.
	t.Run("an event in the middle, with a lying head", func(t *testing.T) {
		hide := []byte(`"type":"dataset.uploaded"`)
		url := withholdingCoordinator(t, e, func(entry []byte) bool {
			return bytes.Contains(entry, hide) && bytes.Contains(entry, []byte(`"contract":"`+cid+`"`))
		}, 2)
		args := []string{"audit", "log", "--contract", e.contract, "--key", e.key, "--coordinator", url, "--state", e.state}
		code, _, stderr := runCLI(t, args...)
		if code != 1 || !strings.Contains(stderr, "problem: entry 4: entry 4 is event 4 of the chain of this contract, but the one before it shown is event 1 (entry 1): events 2 to 3 were withheld") {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if !bytes.Equal(must(os.ReadFile(filepath.Join(e.state, audit.CheckpointFile))), kept) {
			t.Error("the kept checkpoint changed")
		}
	})
}

// withholdingCoordinator serves, with the coordinator's own key and
// evidence, what the real coordinator serves the auditor, except that every
// entry for which hide is true is redacted from the entry bundles as if it
// were another contract's; with lie > 0 it also signs view heads that count
// lie entries fewer. It returns its URL.
func withholdingCoordinator(t *testing.T, e *auditEnv, hide func([]byte) bool, lie uint64) string {
	t.Helper()
	up, err := atls.NewHTTPClient(atls.ClientOptions{Policy: &e.sc.Contract.Coordinator, Identity: e.sc.Party("auditor").Identity})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.CloseIdleConnections)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, e.srv.URL+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
		resp, err := up.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if resp.StatusCode == http.StatusOK && lie > 0 && strings.Contains(r.URL.Path, "/log/head/") {
			lines := strings.SplitN(string(body), "\n", 4)
			n, _ := strconv.ParseUint(lines[2], 10, 64)
			text := lines[0] + "\n" + lines[1] + "\n" + strconv.FormatUint(n-lie, 10) + "\n"
			if body, err = note.Sign(&note.Note{Text: text}, coordinatorNoteSigner(t, e)); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
		if resp.StatusCode == http.StatusOK && strings.Contains(r.URL.Path, "/log/tile/entries/") {
			var out []byte
			for len(body) >= 2 {
				n := int(binary.BigEndian.Uint16(body))
				entry := body[2 : 2+n]
				if hide(entry) {
					entry = nil
				}
				out = append(binary.BigEndian.AppendUint16(out, uint16(len(entry))), entry...)
				body = body[2+n:]
			}
			body = out
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	})
	id, evidence, err := coordinator.InsecureSimulatedIdentity(e.srv.Dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := atls.NewHTTPServer("127.0.0.1:0", handler, atls.ServerOptions{Identity: id, Evidence: evidence})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// coordinatorNoteSigner signs notes with the coordinator's key under its log
// origin, as only the coordinator can.
func coordinatorNoteSigner(t *testing.T, e *auditEnv) note.Signer {
	t.Helper()
	id, _, err := coordinator.InsecureSimulatedIdentity(e.srv.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return tlogtest.NewSigner(t, tlog.Origin(id.Public()), id.Signer().(ed25519.PrivateKey))
}
