package coordinator_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// prepare registers a scenario's contract, uploads both datasets and
// submits the algorithm.
func prepare(t *testing.T, sc *testenv.Scenario, impressions string) {
	t.Helper()
	sc.Submit(t, "publisher")
	sc.MustUpload(t, "publisher", "impressions", impressions)
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(context.Background(), []byte(sc.Spec.Query), sc.Spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
}

// TestMaxRunsSurvivesKill uses up max_runs, kills the coordinator with
// SIGKILL, and checks that the restarted coordinator still refuses a run:
// the count comes from the log, not from memory.
func TestMaxRunsSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	inst, err := coordinator.ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	sc := testenv.NewRemote(t, d.url, inst, testenv.AdSpec(t, "max-runs", 2))
	prepare(t, sc, testenv.ImpressionsCSV)
	ctx := context.Background()
	for i := range 2 {
		if _, err := sc.Client(t, "advertiser").Run(ctx); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	_, err = sc.Client(t, "advertiser").Run(ctx)
	expectRefusal(t, "third run", err, 422, "all 2 runs the contract allows (max_runs) have been used")
	d.kill()

	d = startDaemon(t, dir)
	defer d.kill()
	sc.URL = d.url
	_, err = sc.Client(t, "measurer").Run(ctx)
	expectRefusal(t, "run after a restart", err, 422, "max_runs")
	st, err := sc.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.RunsUsed != 2 || st.Runs[0].Status != "finished" || st.Runs[1].Status != "finished" {
		t.Fatalf("status after restart: %+v", st)
	}
}

// TestKilledRunReleasesNothing kills the coordinator in the middle of a
// slow query. After the restart the run is marked aborted in the log and
// the status, it counts against max_runs, and it has no result to fetch.
func TestKilledRunReleasesNothing(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	inst, err := coordinator.ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := testenv.AdSpec(t, "killed-run", 3)
	// A query that keeps the engine busy for a long time: a triple cross
	// join of the impressions.
	spec.Query = "SELECT a.campaign, count(*) AS users FROM impressions a, impressions b, impressions c " +
		"WHERE length(a.user_id || b.user_id || c.user_id) > 3 GROUP BY a.campaign"
	sc := testenv.NewRemote(t, d.url, inst, spec)
	prepare(t, sc, bigCSV("impressions", 3000))
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := sc.Client(t, "advertiser").Run(ctx)
		done <- err
	}()
	// Wait until the run has started (run.started is durable), then kill.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := sc.Client(t, "auditor").Status(ctx)
		if err == nil && len(st.Runs) == 1 && st.Runs[0].Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not start: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	d.kill()
	if err := <-done; err == nil {
		t.Fatal("the run finished before the kill; make the query slower")
	}

	d = startDaemon(t, dir)
	defer d.kill()
	sc.URL = d.url
	st, err := sc.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Runs) != 1 || st.Runs[0].Status != "aborted" || st.RunsUsed != 1 || st.Runs[0].ResultCommitment != "" {
		t.Fatalf("after restart: %+v", st)
	}
	if !strings.Contains(st.Runs[0].Reason, "nothing was released") {
		t.Fatalf("aborted run's reason: %q", st.Runs[0].Reason)
	}
	_, err = sc.Client(t, "advertiser").Result(ctx, st.Runs[0].RunID)
	expectRefusal(t, "result of an aborted run", err, http.StatusConflict, "aborted")
}

// TestHostileAlgorithms registers, for each hostile query, a contract that
// approves exactly its hash, signed by everyone, and checks the coordinator
// still refuses it: at submission (the statement check) or at the run (the
// sandbox), with a clear error, and releases nothing.
func TestHostileAlgorithms(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	queries := []string{
		"SELECT * FROM read_csv('/etc/passwd')",
		"SELECT * FROM read_csv_auto('/etc/hosts')",
		"SELECT * FROM read_parquet('/tmp/x.parquet')",
		"SELECT * FROM read_text('/etc/passwd')",
		"SELECT * FROM read_blob('/etc/shadow')",
		"SELECT * FROM read_json('/etc/os-release')",
		"SELECT * FROM glob('/*')",
		"SELECT * FROM '/etc/passwd'",
		"COPY (SELECT * FROM impressions) TO '/tmp/leak.csv'",
		"EXPORT DATABASE '/tmp/leak'",
		"ATTACH '/tmp/other.db' AS other",
		"INSTALL httpfs",
		"LOAD httpfs",
		"SET enable_external_access = true",
		"RESET memory_limit",
		"PRAGMA database_list",
		"SELECT getenv('HOME') AS users",
		"SELECT current_setting('temp_directory') AS users",
		"SELECT 1 AS users; SELECT 2 AS users",
		"SELECT count(*) AS users FROM impressions; COPY impressions TO '/tmp/x.csv'",
		"CREATE TABLE t AS SELECT * FROM impressions",
		"DROP TABLE impressions",
		"INSERT INTO impressions VALUES ('x', 'y')",
		"DELETE FROM conversions",
		"CALL pragma_version()",
		"SELECT * FROM query('SELECT 1')",
		"WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
		"SELECT campaign FROM impressions UNION ALL SELECT content FROM read_text('/etc/passwd')",
		"SELECT * FROM 'https://example.com/data.csv'",
		"CHECKPOINT",
	}
	ctx := context.Background()
	for i, q := range queries {
		spec := testenv.AdSpec(t, fmt.Sprintf("hostile-%d", i), 1)
		spec.Query = q
		sc := testenv.New(t, srv, spec)
		sc.Submit(t, "publisher")
		sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
		sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
		_, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(q), nil)
		if err != nil {
			expectRefusal(t, q, err, 422, "the algorithm is refused")
			continue
		}
		// Accepted as one SELECT: the sandbox must refuse it at the run.
		_, err = sc.Client(t, "advertiser").Run(ctx)
		expectRefusal(t, q, err, 422, "refused (query)")
		st, _ := sc.Client(t, "auditor").Status(ctx)
		if st.Runs[0].Status != "refused" || st.Runs[0].ResultCommitment != "" {
			t.Errorf("%s: run %+v", q, st.Runs[0])
		}
	}
}

// TestReplacedEnvelopeRefused has the host replace a stored dataset
// envelope with another valid envelope of the same size for the same
// contract and dataset (anyone can encrypt to the coordinator's public
// key): the run refuses it instead of computing on the host's data.
func TestReplacedEnvelopeRefused(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.Start(t, dir, coordinator.Config{})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "replaced", 2))
	prepare(t, sc, testenv.ImpressionsCSV)
	forged := forgeStored(t, sc, "impressions", strings.ReplaceAll(testenv.ImpressionsCSV, "u1,", "u7,"))
	path := storedEnvelope(t, srv, sc, "impressions")
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(forged) != len(old) {
		t.Fatalf("forged envelope has %d bytes, the stored one %d", len(forged), len(old))
	}
	if err := os.WriteFile(path, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = sc.Client(t, "advertiser").Run(context.Background())
	expectRefusal(t, "run over a replaced envelope", err, 422, "replaced on disk")
}

// TestRefusalsDoNotLeakData runs an agreed query that fails on the data
// itself — a cast of a value that is not a number — and checks that the
// value appears nowhere outside the VM: not in the refusal the caller
// gets, not in the audit log, not in the status, not in the coordinator's
// own log. Only the engine's layer and DuckDB's error class are said.
func TestRefusalsDoNotLeakData(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	spec := testenv.AdSpec(t, "no-leak", 2)
	spec.Query = "SELECT campaign, sum(CAST(user_id AS INTEGER)) AS users FROM impressions GROUP BY campaign"
	sc := testenv.New(t, srv, spec)
	prepare(t, sc, "user_id,campaign\nSECRET-VALUE-42,spring\n")
	_, err := sc.Client(t, "advertiser").Run(context.Background())
	expectRefusal(t, "run over dirty data", err, 422, "DuckDB Conversion Error")
	if strings.Contains(err.Error(), "SECRET-VALUE-42") {
		t.Fatalf("the refusal quotes the data: %v", err)
	}
	st, _ := sc.Client(t, "auditor").Status(context.Background())
	if strings.Contains(st.Runs[0].Reason, "SECRET") {
		t.Fatalf("the status quotes the data: %q", st.Runs[0].Reason)
	}
	if strings.Contains(srv.Logs.String(), "SECRET-VALUE-42") {
		t.Fatal("the coordinator's log quotes the data")
	}
	var scanned int
	err = filepath.WalkDir(filepath.Join(srv.Dir, "log"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if strings.Contains(string(b), "SECRET-VALUE-42") {
			t.Errorf("the audit log quotes the data in %s", path)
		}
		scanned++
		return err
	})
	if err != nil || scanned == 0 {
		t.Fatalf("scanning the audit log: %v (%d files)", err, scanned)
	}
}

// TestConfidentialAlgorithm checks a confidential algorithm's path: plain
// text is refused, the sealed text is accepted, only its provider can read
// it back, nothing on the coordinator's disk holds it, and it runs.
func TestConfidentialAlgorithm(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.Start(t, dir, coordinator.Config{})
	spec := protect(testenv.AdSpec(t, "confidential", 2))
	spec.Confidential = true
	spec.Query = "SELECT i.campaign AS secret_campaign_column, count(DISTINCT i.user_id) AS users " +
		"FROM impressions i JOIN conversions c USING (user_id) GROUP BY i.campaign"
	sc := testenv.New(t, srv, spec)
	sc.Submit(t, "publisher")
	sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	ctx := context.Background()

	// Sent as plain text, bypassing the client's sealing: refused.
	hc := httpClient(t, sc, "measurer")
	body := fmt.Sprintf(`{"text":%q}`, spec.Query)
	status, resp := call(t, hc, sc.URL, "PUT", "/v1/contracts/"+sc.Contract.ID().String()+"/algorithm", []byte(body))
	if status != http.StatusBadRequest || !strings.Contains(string(resp), "confidential") {
		t.Fatalf("plain text for a confidential algorithm: %d %s", status, resp)
	}
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(spec.Query), spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
	mine, err := sc.Client(t, "measurer").Algorithm(ctx)
	if err != nil || mine.Text != spec.Query {
		t.Fatalf("the provider reads back %q, %v", mine.Text, err)
	}
	for _, p := range []string{"publisher", "advertiser", "auditor"} {
		v, err := sc.Client(t, p).Algorithm(ctx)
		if err != nil || v.Text != "" || !v.Confidential {
			t.Fatalf("%s sees %+v, %v", p, v, err)
		}
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if strings.Contains(string(b), "secret_campaign_column") {
			t.Errorf("%s holds the confidential algorithm's text", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Client(t, "advertiser").Run(ctx); err != nil {
		t.Fatalf("running the confidential algorithm: %v", err)
	}
}
