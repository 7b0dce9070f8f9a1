package coordinator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
	"cleanroom.dev/cleanroom/internal/wasmtest"
)

// daemonEnv makes the test binary act as a coordinator daemon on the data
// directory it names: the crash tests start it as a child process and kill
// it with SIGKILL.
const daemonEnv = "CLEANROOM_TEST_DAEMON_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(daemonEnv); dir != "" {
		runDaemon(dir)
		return
	}
	os.Exit(m.Run())
}

func runDaemon(dir string) {
	installFault()
	// Warnings and errors only, on stderr: a long soak must not fill memory
	// with request logs.
	// The tests are its operator, on loopback: they read the log size from
	// /v1/health.
	cfg := coordinator.Config{MaxUploadBytes: 64 << 20, CheckpointInterval: 100 * time.Millisecond, OperatorLoopback: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	s, err := testenv.StartE(dir, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		os.Exit(3)
	}
	fmt.Println(s.URL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	s.Stop()
	os.Exit(0)
}

// caller is one identity the authorisation walk calls with.
type caller struct {
	name string
	hc   *http.Client
}

func callers(t *testing.T, sc *testenv.Scenario) []caller {
	t.Helper()
	var out []caller
	stranger := testenv.NewParty(t, "stranger")
	for _, p := range append(append([]*testenv.Party{}, sc.Spec.Parties...), stranger, nil) {
		opts := atls.ClientOptions{Policy: &sc.Contract.Coordinator}
		name := "anonymous"
		if p != nil {
			opts.Identity, name = p.Identity, p.ID
		}
		hc, err := atls.NewHTTPClient(opts)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, caller{name, hc})
	}
	return out
}

func call(t *testing.T, hc *http.Client, url, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if bytes.HasPrefix(body, []byte("\x00asm")) {
			req.Header.Set("Content-Type", api.ContentTypeWasm)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAuthorizationTable walks every endpoint with every role and with a
// stranger's key and an anonymous client: exactly the callers docs/api.md
// allows get through; everyone else is refused with 401, 403 or 404 and a clear
// error body, and the refusal leaves no trace in the log — only a line in
// the daemon's structured log.
func TestAuthorizationTable(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	spec := testenv.AdSpec(t, "authz", 5)
	module := wasmtest.Model([]byte{0x41, 0x00}) // every result NULL
	spec.Models = []testenv.Model{{Name: "score", Provider: "measurer", Args: "[float64]", Result: "float64", Module: module}}
	sc := testenv.New(t, srv, spec)
	cid := sc.Contract.ID().String()
	imp := sc.Seal(t, "publisher", "impressions", testenv.ImpressionsCSV)
	conv := sc.Seal(t, "advertiser", "conversions", testenv.ConversionsCSV)
	contractBody, _ := json.Marshal(api.SubmitContractRequest{Contract: string(sc.Text), Signatures: sc.Sigs})
	query := sc.Spec.Query
	algBody, _ := json.Marshal(api.SubmitAlgorithmRequest{Text: &query})
	var runID string

	all := []string{"publisher", "advertiser", "measurer", "auditor", "stranger", "anonymous"}
	participants := all[:4]
	type endpoint struct {
		method, path string
		allowed      []string
		body         func() []byte
		upload       *testenv.Sealed
	}
	endpoints := []endpoint{
		{"GET", "/v1/health", all, nil, nil},
		{"GET", "/metrics", all, nil, nil},
		{"GET", "/v1/identity", all, nil, nil},
		{"POST", "/v1/attestation", all, func() []byte { return []byte(`{"nonce":"00112233"}`) }, nil},
		{"POST", "/v1/contracts", participants, func() []byte { return contractBody }, nil},
		{"GET", "/v1/contracts/" + cid, participants, nil, nil},
		{"PUT", "/v1/contracts/" + cid + "/datasets/impressions", []string{"publisher"}, nil, imp},
		{"PUT", "/v1/contracts/" + cid + "/datasets/conversions", []string{"advertiser"}, nil, conv},
		{"PUT", "/v1/contracts/" + cid + "/algorithm", []string{"measurer"}, func() []byte { return algBody }, nil},
		{"GET", "/v1/contracts/" + cid + "/algorithm", participants, nil, nil},
		{"PUT", "/v1/contracts/" + cid + "/models/score", []string{"measurer"}, func() []byte { return module }, nil},
		{"GET", "/v1/contracts/" + cid + "/models/score", participants, nil, nil},
		{"POST", "/v1/contracts/" + cid + "/runs", []string{"advertiser", "measurer"}, nil, nil},
		{"GET", "/v1/contracts/" + cid + "/runs/{run}", participants, nil, nil},
		{"GET", "/v1/contracts/" + cid + "/runs/{run}/result", []string{"advertiser"}, nil, nil},
		{"GET", "/v1/contracts/" + cid + "/log/checkpoint", []string{"auditor"}, nil, nil},
		{"GET", "/v1/contracts/" + cid + "/log/tile/0/000.p/1", []string{"auditor"}, nil, nil},
		{"GET", "/v1/contracts/" + cid + "/log/tile/entries/000.p/1", []string{"auditor"}, nil, nil},
		{"GET", "/v1/contracts/" + cid + "/log/head/1", []string{"auditor"}, nil, nil},
		{"GET", "/v1/log/checkpoint", nil, nil, nil}, // the whole log is nobody's
	}
	cs := callers(t, sc)
	for _, ep := range endpoints {
		// Refused callers first: they must change nothing.
		ordered := append([]caller{}, cs...)
		sortRefusedFirst(ordered, ep.allowed)
		for _, cl := range ordered {
			allowed := contains(ep.allowed, cl.name)
			path := strings.ReplaceAll(ep.path, "{run}", runID)
			before := sc.LogSize()
			refusalsBefore := strings.Count(srv.Logs.String(), "request refused")
			var status int
			var body []byte
			if ep.upload != nil {
				status, body = uploadAs(t, sc, cl, path, ep.upload)
			} else {
				var reqBody []byte
				if ep.body != nil {
					reqBody = ep.body()
				}
				status, body = call(t, cl.hc, srv.URL, ep.method, path, reqBody)
			}
			// A stranger is told what it would be told of a contract
			// that does not exist: 404.
			refused := status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound
			if allowed == refused {
				t.Errorf("%s %s as %s: status %d (allowed: %v): %s", ep.method, ep.path, cl.name, status, allowed, body)
				continue
			}
			if refused {
				var eb api.ErrorBody
				if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Message == "" || eb.Error.Code == "" {
					t.Errorf("%s %s as %s: refusal without a clear error body: %s", ep.method, ep.path, cl.name, body)
				}
				if after := sc.LogSize(); after != before {
					t.Errorf("%s %s as %s: a refused request appended %d events", ep.method, ep.path, cl.name, after-before)
				}
				if strings.Count(srv.Logs.String(), "request refused") != refusalsBefore+1 {
					t.Errorf("%s %s as %s: the refusal was not logged", ep.method, ep.path, cl.name)
				}
			}
			if ep.method == "POST" && strings.HasSuffix(ep.path, "/runs") && status == http.StatusCreated && runID == "" {
				var rs api.RunStatus
				json.Unmarshal(body, &rs)
				runID = rs.RunID
			}
		}
	}
	if runID == "" {
		t.Fatal("no run was started")
	}
}

func sortRefusedFirst(cs []caller, allowed []string) {
	var refused, ok []caller
	for _, c := range cs {
		if contains(allowed, c.name) {
			ok = append(ok, c)
		} else {
			refused = append(refused, c)
		}
	}
	copy(cs, append(refused, ok...))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// uploadAs sends an envelope with its statement trailer over a caller's
// connection.
func uploadAs(t *testing.T, sc *testenv.Scenario, cl caller, path string, s *testenv.Sealed) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("PUT", sc.Server.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Body = io.NopCloser(bytes.NewReader(s.Envelope))
	req.ContentLength = -1
	req.Trailer = http.Header{api.UploadStatementTrailer: {encodeB64(s.Statement)}}
	resp, err := cl.hc.Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestEndToEndRun drives one contract through its whole life over real TLS
// and checks the released result against the policy.
func TestEndToEndRun(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "e2e", 2))
	ctx := context.Background()
	sc.Submit(t, "auditor")
	sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(sc.Spec.Query), sc.Spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
	rs, err := sc.Client(t, "advertiser").Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// spring has 3 converting users, summer and autumn 1 each: k = 2
	// keeps spring and suppresses the other two.
	if rs.Status != "finished" || rs.RowsKept != 1 || rs.RowsSuppressed != 2 {
		t.Fatalf("run: %+v", rs)
	}
	b, err := sc.Client(t, "advertiser").ResultBundle(ctx, rs.RunID)
	if err != nil || len(b) == 0 {
		t.Fatalf("result: %v", err)
	}
	if _, err := sc.Client(t, "publisher").Result(ctx, rs.RunID); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("a non-recipient fetched the result: %v", err)
	}
	st, err := sc.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.RunsUsed != 1 || len(st.Runs) != 1 || !st.Datasets[0].Uploaded || !st.Algorithm.Submitted {
		t.Fatalf("status: %+v", st)
	}
}

func isStatus(err error, status int) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Status == status
}

// TestConcurrentUploads has eight providers upload at once while a ninth
// sends more than the upload limit: the eight are intact, the ninth is
// refused with 413, and nothing else is disturbed.
func TestConcurrentUploads(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{MaxUploadBytes: 256 << 10})
	spec := &testenv.Spec{Name: "eight", Query: "SELECT count(*) AS n FROM d0", AlgorithmBy: "analyst",
		Recipients: []string{"analyst"}, MaxRows: 10, MaxRuns: 1}
	spec.Parties = append(spec.Parties, testenv.NewParty(t, "analyst", contracts.RoleAlgorithmProvider, contracts.RoleResultRecipient))
	for i := range 9 {
		id := fmt.Sprintf("p%d", i)
		spec.Parties = append(spec.Parties, testenv.NewParty(t, id, contracts.RoleDataProvider))
		spec.Datasets = append(spec.Datasets, testenv.Dataset{ID: fmt.Sprintf("d%d", i), Provider: id, Columns: "[{name: k, type: string}, {name: v, type: int64}]"})
	}
	sc := testenv.New(t, srv, spec)
	sc.Submit(t, "analyst")
	sealed := make([]*testenv.Sealed, 9)
	for i := range 9 {
		rows := 2000
		if i == 8 {
			rows = 40000 // well over 256 KiB of ciphertext
		}
		var csv strings.Builder
		csv.WriteString("k,v\n")
		for r := range rows {
			fmt.Fprintf(&csv, "key-%d-%d,%d\n", i, r, r*7+i)
		}
		sealed[i] = sc.Seal(t, fmt.Sprintf("p%d", i), fmt.Sprintf("d%d", i), csv.String())
	}
	if len(sealed[8].Envelope) <= 256<<10 {
		t.Fatalf("the over-limit envelope has only %d bytes", len(sealed[8].Envelope))
	}
	var wg sync.WaitGroup
	recs := make([]*api.UploadReceipt, 9)
	errs := make([]error, 9)
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i], errs[i] = sc.Upload(t, fmt.Sprintf("p%d", i), fmt.Sprintf("d%d", i), sealed[i])
		}()
	}
	wg.Wait()
	for i := range 8 {
		if errs[i] != nil {
			t.Fatalf("upload %d: %v", i, errs[i])
		}
		if want := fmt.Sprintf("%x", sha256Sum(sealed[i].Envelope)); recs[i].CiphertextSHA256 != want || recs[i].Rows != 2000 {
			t.Fatalf("upload %d acknowledged %+v, sent %s", i, recs[i], want)
		}
	}
	if !isStatus(errs[8], http.StatusRequestEntityTooLarge) {
		t.Fatalf("over-limit upload: %v", errs[8])
	}
	st, err := sc.Client(t, "analyst").Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range st.Datasets {
		if d.Uploaded != (i < 8) {
			t.Fatalf("dataset %s uploaded=%v", d.ID, d.Uploaded)
		}
	}
	// coordinator.started, contract.registered and eight uploads.
	if got := sc.LogSize(); got != 10 {
		t.Fatalf("log has %d events, want 10", got)
	}
	// The accepted envelopes open in the coordinator's path: a run reads d0.
	if _, err := sc.Client(t, "analyst").SubmitAlgorithm(context.Background(), []byte(spec.Query), spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
