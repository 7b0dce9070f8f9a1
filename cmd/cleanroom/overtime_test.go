package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// The tests of contracts over time (SPEC §13) run a real coordinator in
// this process (simulated SEV-SNP, attested TLS on 127.0.0.1) and the
// cleanroom command as its users do.

// timeEnv is a coordinator, a contract's scenario and each party's key
// and contract files.
type timeEnv struct {
	t        *testing.T
	dir      string // the coordinator's data directory
	srv      *testenv.Server
	sc       *testenv.Scenario
	files    string
	contract string // the contract file
	cfg      coordinator.Config
}

func newTimeEnv(t *testing.T, spec *testenv.Spec, cfg coordinator.Config) *timeEnv {
	t.Helper()
	e := &timeEnv{t: t, dir: filepath.Join(t.TempDir(), "coordinator"), files: t.TempDir(), cfg: cfg}
	e.start()
	e.sc = testenv.New(t, e.srv, spec)
	e.contract = filepath.Join(e.files, "contract.yaml")
	if err := os.WriteFile(e.contract, e.sc.Text, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range spec.Parties {
		if _, _, err := cleanroom.WriteIdentityFiles(filepath.Join(e.files, p.ID), p.Identity); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *timeEnv) start() {
	e.t.Helper()
	srv, err := testenv.StartE(e.dir, e.cfg)
	if err != nil {
		e.t.Fatalf("starting the coordinator: %v", err)
	}
	e.srv = srv
	e.t.Cleanup(srv.Stop)
	if e.sc != nil {
		e.sc.URL, e.sc.Server = srv.URL, srv
	}
}

// setUp registers the contract and brings the datasets and the algorithm.
func (e *timeEnv) setUp() {
	t := e.t
	e.sc.Submit(t, "auditor")
	e.sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	e.sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	e.sc.SubmitAlgorithm(t)
}

// cli runs the cleanroom command as party, against the coordinator and the
// contract file (unless the arguments name others).
func (e *timeEnv) cli(party string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	full := append([]string{}, args...)
	if party != "" {
		full = append(full, "--key", filepath.Join(e.files, party+".key"))
	}
	joined := strings.Join(args, " ")
	noContract := strings.HasPrefix(joined, "result verify") || strings.HasPrefix(joined, "contract sign") || strings.HasPrefix(joined, "contract submit")
	if !strings.Contains(joined, "--contract") && !noContract {
		full = append(full, "--contract", e.contract)
	}
	if !strings.HasPrefix(joined, "result verify") && !strings.HasPrefix(joined, "result show") && !strings.HasPrefix(joined, "contract sign") {
		full = append(full, "--coordinator", e.srv.URL)
	}
	var out, errb bytes.Buffer
	code = run(full, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func (e *timeEnv) mustCLI(party string, args ...string) string {
	e.t.Helper()
	out, errs, code := e.cli(party, args...)
	if code != 0 {
		e.t.Fatalf("cleanroom %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func (e *timeEnv) refusedCLI(party string, want string, args ...string) string {
	e.t.Helper()
	_, errs, code := e.cli(party, args...)
	if code == 0 {
		e.t.Fatalf("cleanroom %s succeeded; want a refusal saying %q", strings.Join(args, " "), want)
	}
	if !strings.Contains(errs, want) {
		e.t.Fatalf("cleanroom %s: %s\nwant it to say %q", strings.Join(args, " "), errs, want)
	}
	return errs
}

// runsUsed is the number of runs the coordinator counts for the contract.
func (e *timeEnv) runsUsed() int64 {
	e.t.Helper()
	st, err := e.sc.Client(e.t, "auditor").Status(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return st.RunsUsed
}

const paramQuery = "SELECT i.campaign, count(DISTINCT i.user_id) AS users, sum(c.value) AS revenue " +
	"FROM impressions i JOIN conversions c ON c.user_id = i.user_id WHERE c.value >= $min_value AND i.campaign <> $skip " +
	"GROUP BY i.campaign ORDER BY i.campaign"

// paramSpec is the ad-attribution contract in mode aggregate, its query
// reading two parameters.
func paramSpec(t *testing.T, maxRuns int) *testenv.Spec {
	spec := testenv.AdSpec(t, "ad-attribution-params", maxRuns)
	spec.Query = paramQuery
	spec.Parameters = "[{name: min_value, type: float64, min: 0, max: 100}, {name: skip, type: string, allowed: [spring, summer, autumn]}]"
	spec.Mode, spec.GroupColumn, spec.K = "aggregate", "", 1
	for i := range spec.Datasets {
		spec.Datasets[i].PrivacyUnit = "user_id"
	}
	return spec
}

// plainDuckDB runs query over the scenario's CSV datasets in an ordinary
// DuckDB and returns its rows as JSON values.
func plainDuckDB(t *testing.T, query string) []map[string]any {
	t.Helper()
	db := testenv.PlainDuckDB(t, testenv.ImpressionsCSV, testenv.ConversionsCSV)
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		for i, c := range cols {
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	// Through JSON, as result show writes them.
	b, _ := json.Marshal(out)
	var norm []map[string]any
	if err := json.Unmarshal(b, &norm); err != nil {
		t.Fatal(err)
	}
	return norm
}

// TestRunParametersCLI: a run with parameters in range, through the CLI,
// releases what plain DuckDB gives with those values written as literals;
// the values are in run.started, the result statement, result verify and
// the audit timeline; each bad value is refused naming the parameter,
// before anything is decrypted and without counting a run.
func TestRunParametersCLI(t *testing.T) {
	e := newTimeEnv(t, paramSpec(t, 5), coordinator.Config{CheckpointInterval: 100 * time.Millisecond})
	e.setUp()

	runID := strings.TrimSpace(e.mustCLI("advertiser", "run", "--param", "min_value=5", "--param", "skip=autumn"))
	bundlePath := filepath.Join(e.files, "result.bundle")
	e.mustCLI("advertiser", "result", "get", "--run", runID, "--out", bundlePath)
	verified := e.mustCLI("", "result", "verify", bundlePath, "--contract", e.contract)
	if !strings.Contains(verified, `min_value="5" skip="autumn"`) {
		t.Errorf("result verify does not name the parameters:\n%s", verified)
	}
	shown := e.mustCLI("advertiser", "result", "show", bundlePath, "--format", "json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(shown), &got); err != nil {
		t.Fatalf("result show --format json: %v\n%s", err, shown)
	}
	literal := strings.NewReplacer("$min_value", "5.0", "$skip", "'autumn'").Replace(paramQuery)
	want := plainDuckDB(t, literal)
	if len(want) == 0 {
		t.Fatal("plain DuckDB returns no rows: the case tests nothing")
	}
	if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
		t.Fatalf("the coordinator released %s; plain DuckDB with the literals gives %s", g, w)
	}
	status := e.mustCLI("advertiser", "run", "status", runID)
	if !strings.Contains(status, `min_value="5" skip="autumn"`) {
		t.Errorf("run status does not name the parameters:\n%s", status)
	}

	for _, c := range []struct {
		name   string
		params []string
		want   string
	}{
		{"missing", []string{"--param", "min_value=5"}, "parameter skip: is missing"},
		{"undeclared", []string{"--param", "min_value=5", "--param", "skip=spring", "--param", "table=x"}, "parameter table: is not declared"},
		{"mistyped", []string{"--param", "min_value=lots", "--param", "skip=spring"}, "parameter min_value:"},
		{"out of range", []string{"--param", "min_value=1000", "--param", "skip=spring"}, "parameter min_value:"},
		{"not allowed", []string{"--param", "min_value=5", "--param", "skip=winter"}, "parameter skip:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.refusedCLI("advertiser", c.want, append([]string{"run"}, c.params...)...)
		})
	}
	if used := e.runsUsed(); used != 1 {
		t.Fatalf("the coordinator counts %d runs; the refused ones must not count", used)
	}

	// The auditor's timeline shows the values.
	auditorState := filepath.Join(e.files, "audit-state")
	settle(t, e)
	out := e.mustCLI("auditor", "audit", "log", "--state", auditorState)
	if !strings.Contains(out, `with min_value="5" skip="autumn"`) {
		t.Errorf("the audit timeline does not show the run's parameters:\n%s", out)
	}
}

// settle waits until a published checkpoint covers every event.
func settle(t *testing.T, e *timeEnv) {
	t.Helper()
	want := e.srv.Coord.LogSize()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		cp, err := e.sc.Client(t, "auditor").LogFetcher()(context.Background(), "checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(cp), "\n", 3)
		if len(lines) > 1 {
			var n uint64
			fmt.Sscan(lines[1], &n)
			if n >= want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no checkpoint covers %d entries", want)
}

// TestSplicedParameterRefusedAtSubmission: an algorithm that puts a
// parameter where DuckDB reads a name (a table, a column picked by name, a
// struct's field) is refused when its provider submits it.
func TestSplicedParameterRefusedAtSubmission(t *testing.T) {
	for _, c := range []struct{ name, query, param, want string }{
		{"table function", "SELECT count(*) AS n FROM query_table($t)", "t", "$t as an argument of the table function query_table"},
		{"columns by name", "SELECT COLUMNS($col) FROM conversions", "col", "$col inside COLUMNS(...)"},
		{"table name", "SELECT count(*) AS n FROM $t", "t", `syntax error at or near "$"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := testenv.AdSpec(t, "spliced", 3)
			spec.Query = c.query
			spec.Parameters = "[{name: " + c.param + ", type: string, allowed: [conversions]}]"
			spec.Mode, spec.GroupColumn, spec.K = "aggregate", "", 0
			e := newTimeEnv(t, spec, coordinator.Config{})
			e.sc.Submit(t, "auditor")
			q := filepath.Join(e.files, "query.sql")
			if err := os.WriteFile(q, []byte(c.query), 0o644); err != nil {
				t.Fatal(err)
			}
			e.refusedCLI("measurer", c.want, "algorithm", "submit", q)
		})
	}
}

// TestSuspendResumeCLI: a data provider's suspension refuses runs at once;
// resuming needs every participant's approval of that suspension; the
// audit timeline shows both.
func TestSuspendResumeCLI(t *testing.T) {
	e := newTimeEnv(t, testenv.AdSpec(t, "ad-attribution-stop", 5), coordinator.Config{CheckpointInterval: 100 * time.Millisecond})
	e.setUp()
	e.mustCLI("advertiser", "run")

	e.refusedCLI("measurer", "may not suspend the contract: that needs role data_provider", "contract", "suspend", "--reason", "not mine to stop")
	e.refusedCLI("publisher", "--reason TEXT is required", "contract", "suspend")
	index := strings.TrimSpace(e.mustCLI("publisher", "contract", "suspend", "--reason", "a column leaks more than agreed"))
	e.refusedCLI("advertiser", "the contract is suspended (by publisher at log index "+index+": a column leaks more than agreed)", "run")

	approval := func(party string) string {
		out := filepath.Join(e.files, party+".resume")
		e.mustCLI(party, "contract", "resume", "--approve", "--out", out)
		return out
	}
	var files []string
	for _, p := range []string{"publisher", "advertiser", "measurer"} {
		files = append(files, approval(p))
	}
	args := []string{"contract", "resume"}
	for _, f := range files {
		args = append(args, "--approval", f)
	}
	e.refusedCLI("advertiser", "participant auditor: has not signed", args...)
	// An approval of another suspension does not count.
	other, err := e.sc.Contract.SignResumption(e.sc.Party("auditor").Identity, 1)
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(e.files, "other.resume")
	if err := os.WriteFile(otherFile, other, 0o644); err != nil {
		t.Fatal(err)
	}
	e.refusedCLI("advertiser", "it lifts the suspension at log index 1; the contract's suspension is at index "+index, append(args, "--approval", otherFile)...)
	e.refusedCLI("advertiser", "the contract is suspended", "run")

	e.mustCLI("advertiser", append(args, "--approval", approval("auditor"))...)
	e.mustCLI("advertiser", "run")
	if used := e.runsUsed(); used != 2 {
		t.Fatalf("%d runs counted, want 2: the refused runs must not count", used)
	}
	settle(t, e)
	out := e.mustCLI("auditor", "audit", "log", "--state", filepath.Join(e.files, "audit-state"))
	for _, want := range []string{"contract suspended by publisher: a column leaks more than agreed", "contract resumed from the suspension at index " + index + " with 4 approvals"} {
		if !strings.Contains(out, want) {
			t.Errorf("the audit timeline does not say %q:\n%s", want, out)
		}
	}
}

// storedEnvelope returns the file of a dataset's stored envelope in the
// coordinator's data directory, found by the digest dataset.uploaded logs
// (read from the auditor's verified report).
func (e *timeEnv) storedEnvelope(dataset string) string {
	e.t.Helper()
	settle(e.t, e)
	out := e.mustCLI("auditor", "audit", "log", "--json", "--state", filepath.Join(e.files, "audit-state-"+dataset))
	var r struct {
		Timeline []struct {
			Type    string            `json:"type"`
			Details map[string]string `json:"details"`
		} `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		e.t.Fatalf("audit log --json: %v", err)
	}
	for _, ev := range r.Timeline {
		if ev.Type == "dataset.uploaded" && ev.Details["dataset"] == dataset {
			h := ev.Details["stored_sha256"]
			return filepath.Join(e.dir, "blobs", "sha256", h[:2], h)
		}
	}
	e.t.Fatalf("no dataset.uploaded of %s in the timeline", dataset)
	return ""
}

// containsAnywhere reports which file under dir holds needle.
func containsAnywhere(t *testing.T, dir string, needle []byte) string {
	t.Helper()
	var found string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, needle) {
			found = p
		}
		return nil
	})
	return found
}

// TestWithdrawCLI: a provider withdraws its dataset; the envelope file and
// its data key (wrapped in the envelope's header, nowhere else) are gone
// from the data directory, and runs are refused.
func TestWithdrawCLI(t *testing.T) {
	e := newTimeEnv(t, testenv.AdSpec(t, "ad-attribution-withdraw", 5), coordinator.Config{CheckpointInterval: 100 * time.Millisecond})
	e.setUp()
	e.mustCLI("advertiser", "run")
	file := e.storedEnvelope("impressions")
	envelopeBytes, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the stored envelope: %v", err)
	}
	// The header, with the data key wrapped to the coordinator: its first
	// bytes after the magic are unique to this envelope.
	header := envelopeBytes[16:min(len(envelopeBytes), 400)]
	if where := containsAnywhere(t, e.dir, header); where != file {
		t.Fatalf("the envelope header is found in %q, want only %s", where, file)
	}

	e.refusedCLI("advertiser", "participant \"advertiser\" may not withdraw dataset impressions: only its provider publisher may", "dataset", "withdraw", "--dataset", "impressions")
	e.mustCLI("publisher", "dataset", "withdraw", "--dataset", "impressions")
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the withdrawn envelope %s is still in the data directory (%v)", file, err)
	}
	if where := containsAnywhere(t, e.dir, header); where != "" {
		t.Fatalf("the withdrawn envelope's header (and wrapped data key) is still in %s", where)
	}
	e.refusedCLI("advertiser", "dataset impressions was withdrawn by its provider publisher", "run")
	e.refusedCLI("publisher", "already deleted (withdrawn", "dataset", "withdraw", "--dataset", "impressions")
	settle(t, e)
	out := e.mustCLI("auditor", "audit", "log", "--state", filepath.Join(e.files, "audit-state"))
	if !strings.Contains(out, "dataset impressions withdrawn") {
		t.Errorf("the audit timeline does not show the withdrawal:\n%s", out)
	}
}

// TestExpiryDeletesOnItsOwn: at a contract's expires_at the coordinator,
// by its own timer, deletes the stored envelopes and results (logged as
// dataset.expired and result.expired) within a minute; the result can no
// longer be fetched and the audit timeline shows the deletions.
func TestExpiryDeletesOnItsOwn(t *testing.T) {
	spec := testenv.AdSpec(t, "ad-attribution-expiry", 5)
	spec.Expires = time.Now().Add(6 * time.Second).Truncate(time.Second)
	e := newTimeEnv(t, spec, coordinator.Config{CheckpointInterval: 100 * time.Millisecond, RetentionInterval: 500 * time.Millisecond})
	e.setUp()
	runID := strings.TrimSpace(e.mustCLI("advertiser", "run"))
	imp, conv := e.storedEnvelope("impressions"), e.storedEnvelope("conversions")
	if time.Now().After(spec.Expires) {
		t.Skip("the machine is too slow to set the contract up before it expires")
	}
	for _, f := range []string{imp, conv} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	deadline := spec.Expires.Add(time.Minute)
	for {
		_, errImp := os.Stat(imp)
		_, errConv := os.Stat(conv)
		if errors.Is(errImp, fs.ErrNotExist) && errors.Is(errConv, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a minute after expires_at the envelopes are still in the data directory")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The result goes in the same pass as the envelopes, just after them.
	for {
		_, errs, code := e.cli("advertiser", "result", "get", "--run", runID, "--out", filepath.Join(e.files, "late.bundle"))
		if code != 0 && strings.Contains(errs, "was deleted at contract") {
			break
		}
		if code != 0 || time.Now().After(deadline) {
			t.Fatalf("fetching an expired result: exit %d: %s", code, errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	settle(t, e)
	var out string
	deadline = time.Now().Add(30 * time.Second)
	for {
		out, _, _ = e.cli("auditor", "audit", "log", "--state", filepath.Join(e.files, "audit-state"))
		if strings.Contains(out, "deleted at the contract's expiry") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{"dataset impressions expired", "dataset conversions expired", "result of run " + runID + " deleted at the contract's expiry"} {
		if !strings.Contains(out, want) {
			t.Errorf("the audit timeline does not say %q:\n%s", want, out)
		}
	}
}

// TestAmendmentCLI: an amendment signed by every participant of both
// contracts is accepted, closes the old contract to runs, carries the runs
// already started and the datasets over (re-encrypted inside, nothing
// uploaded again); one missing signature is refused, as is a max_runs
// that grows without every data provider's signature.
func TestAmendmentCLI(t *testing.T) {
	spec := testenv.AdSpec(t, "ad-attribution-v1", 3)
	e := newTimeEnv(t, spec, coordinator.Config{CheckpointInterval: 100 * time.Millisecond})
	e.setUp()
	e.mustCLI("advertiser", "run")

	amend := func(name string, maxRuns int) string {
		next := *spec
		next.Name, next.MaxRuns, next.Supersedes = name, maxRuns, e.sc.Contract.ID().String()
		path := filepath.Join(e.files, name+".yaml")
		if err := os.WriteFile(path, next.Text(e.srv.Coord.Identity()), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	sign := func(contract string, parties ...string) []string {
		var args []string
		for _, p := range parties {
			out := filepath.Join(e.files, p+"-"+filepath.Base(contract)+".sig")
			e.mustCLI("", "contract", "sign", contract, "--key", filepath.Join(e.files, p+".key"), "--out", out)
			args = append(args, "--sig", out)
		}
		return args
	}
	all := []string{"publisher", "advertiser", "measurer", "auditor"}

	// A max_runs that grows without a data provider's signature: the
	// coordinator refuses it, naming the budget (the CLI refuses sooner,
	// as a participant has not signed, so this goes through the SDK).
	grown := amend("ad-attribution-more", 10)
	grownText, err := os.ReadFile(grown)
	if err != nil {
		t.Fatal(err)
	}
	grownContract, err := contracts.Parse(grownText, contracts.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var raw [][]byte
	for _, p := range []string{"advertiser", "measurer", "auditor"} {
		sig, err := grownContract.Sign(e.sc.Party(p).Identity)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, sig)
	}
	cl := e.sc.ClientWith(t, client.Options{Contract: grownContract, Identity: e.sc.Party("advertiser").Identity})
	if _, err := cl.SubmitContract(context.Background(), grownText, raw); err == nil ||
		!strings.Contains(err.Error(), "output.max_runs grows from 3 to 10") || !strings.Contains(err.Error(), "publisher has not") {
		t.Fatalf("an amendment growing max_runs without the publisher's signature: %v", err)
	}

	next := amend("ad-attribution-v2", 3)
	e.refusedCLI("advertiser", "participant publisher: has not signed",
		append([]string{"contract", "submit", next}, sign(next, "advertiser", "measurer", "auditor")...)...)
	e.mustCLI("advertiser", append([]string{"contract", "submit", next}, sign(next, all...)...)...)

	e.refusedCLI("advertiser", "the contract was superseded by contract", "run")
	// The new contract runs on the datasets carried over: nobody uploads.
	runID := strings.TrimSpace(e.mustCLI("advertiser", "run", "--contract", next))
	status := e.mustCLI("advertiser", "run", "status", runID, "--contract", next)
	if !regexpMatch(`(?m)^number +2$`, status) {
		t.Fatalf("the amendment's first run must be run 2 (the old contract's run carries over):\n%s", status)
	}
	bundlePath := filepath.Join(e.files, "v2.bundle")
	e.mustCLI("advertiser", "result", "get", "--run", runID, "--out", bundlePath, "--contract", next)
	e.mustCLI("", "result", "verify", bundlePath, "--contract", next)
	e.mustCLI("advertiser", "run", "--contract", next)
	e.refusedCLI("advertiser", "all 3 runs the contract allows (max_runs) have been used", "run", "--contract", next)
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
