package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom"
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
	if !strings.Contains(joined, "--contract") && !strings.HasPrefix(joined, "result verify") {
		full = append(full, "--contract", e.contract)
	}
	if !strings.HasPrefix(joined, "result verify") && !strings.HasPrefix(joined, "result show") {
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
	dir := t.TempDir()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, csv := range map[string]string{"impressions": testenv.ImpressionsCSV, "conversions": testenv.ConversionsCSV} {
		path := filepath.Join(dir, name+".csv")
		if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
			t.Fatal(err)
		}
		types := "{'user_id': 'VARCHAR', 'campaign': 'VARCHAR'}"
		if name == "conversions" {
			types = "{'user_id': 'VARCHAR', 'value': 'DOUBLE'}"
		}
		if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM read_csv('%s', header = true, columns = %s)", name, path, types)); err != nil {
			t.Fatal(err)
		}
	}
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
