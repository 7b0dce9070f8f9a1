// Command bench measures a whole clean-room run against plain DuckDB on
// the same data and the same SQL, side by side, for `make bench` (SPEC §12).
//
// For each size it generates the ad-attribution example's data (Parquet),
// then:
//
//   - clean room: a coordinator (simulated platform) with the contract
//     registered, both datasets uploaded as envelopes and the algorithm
//     submitted; the timed part is one run — decrypt the envelopes in
//     memory, load them into the locked-down engine, run the query, apply
//     the output policy, encrypt the result to the recipient, sign the
//     statement, append the run's events to the log; the run gives the
//     query's reporting window, adattribution.Parameters;
//   - plain DuckDB: an unrestricted in-memory DuckDB running the same SQL,
//     the window written as literals (adattribution.LiteralQuery), over
//     views of the Parquet files.
//
// Each side runs in a fresh child process so its peak resident memory
// (VmHWM) is its own; each is repeated and the median time kept.
// Both use the same number of threads.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	adattribution "cleanroom.dev/cleanroom/examples/ad-attribution"
	exscenario "cleanroom.dev/cleanroom/examples/internal/scenario"
	"cleanroom.dev/cleanroom/internal/testenv"
)

func main() {
	mode := flag.String("mode", "compare", "compare (default), or the child modes run and plain")
	sizes := flag.String("rows", "1000000,10000000", "comma-separated impression counts to measure")
	repeat := flag.Int("repeat", 3, "runs per side and size (the median is reported)")
	threads := flag.Int("threads", runtime.GOMAXPROCS(0), "query threads on both sides")
	dir := flag.String("dir", "", "work directory (default: a temporary one, removed at the end)")
	output := flag.String("output", "aggregate", "the contract's output mode: aggregate (the example's: the engine counts the users behind each row) or custom (the query's users column)")
	flag.Parse()
	outputMode = *output
	var err error
	switch *mode {
	case "compare":
		err = compare(*sizes, *repeat, *threads, *dir)
	case "run":
		err = childRun(flag.Arg(0), *threads)
	case "plain":
		err = childPlain(flag.Arg(0), *threads)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ad-attribution-bench:", err)
		os.Exit(1)
	}
}

// outputMode is the bench contract's output mode (-output).
var outputMode string

// setup is what the compare step leaves for the child processes.
type setup struct {
	DataDir     string `json:"data_dir"`
	Contract    string `json:"contract"` // contract text
	Advertiser  string `json:"advertiser_key"`
	Impressions string `json:"impressions"`
	Conversions string `json:"conversions"`
}

type measure struct {
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_seconds"` // user and system CPU time of the timed part, all threads
	Rows    int64   `json:"rows"`
	RSS     int64   `json:"peak_rss"` // peak resident bytes of the child (VmHWM)
}

// cpuSeconds returns the user and system CPU time this process has used,
// all threads (DuckDB's included). On a machine shared with other work it
// moves far less than wall time, so it shows what a change costs when the
// times do not.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// peakRSS returns this process's peak resident set size (VmHWM). It is
// read by the process itself: getrusage's maxrss of a child also counts
// the parent's memory it was forked from.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func compare(sizes string, repeat, threads int, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "cleanroom-bench-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	type row struct {
		rows        int64
		clean, base []measure
	}
	var results []row
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("-rows: %v", err)
		}
		fmt.Fprintf(os.Stderr, "ad-attribution-bench: %d rows: generating and uploading...\n", n)
		sizeDir := filepath.Join(dir, strconv.FormatInt(n, 10))
		r := row{rows: n}
		for i := range repeat {
			// Runs are limited (max_runs) and leave state: prepare a fresh
			// coordinator for every clean-room measurement.
			path, err := prepare(filepath.Join(sizeDir, fmt.Sprint(i)), n, i == 0, sizeDir)
			if err != nil {
				return err
			}
			m, err := child("run", path, threads)
			if err != nil {
				return err
			}
			r.clean = append(r.clean, m)
			if m, err = child("plain", path, threads); err != nil {
				return err
			}
			r.base = append(r.base, m)
		}
		results = append(results, r)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "rows\tclean room (s)\tplain DuckDB (s)\tratio\tclean room CPU (s)\tplain CPU (s)\tCPU ratio\tclean room peak RSS\tplain peak RSS\t\n")
	for _, r := range results {
		c, b := median(r.clean), median(r.base)
		cc, bc := medianCPU(r.clean), medianCPU(r.base)
		fmt.Fprintf(w, "%d\t%.3f\t%.3f\t%.2f\t%.3f\t%.3f\t%.2f\t%s\t%s\t\n", r.rows, c.Seconds, b.Seconds, c.Seconds/b.Seconds,
			cc, bc, cc/bc, mib(c.RSS), mib(b.RSS))
	}
	w.Flush()
	fmt.Printf("(%d threads on both sides, median of %d runs; clean room = decrypt, load, query, policy, encrypt, sign, log, in output mode %s; CPU = user+system time of all threads)\n", threads, repeat, outputMode)
	return nil
}

func median(ms []measure) measure {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b measure) int { return int((a.Seconds - b.Seconds) * 1e9) })
	m := s[len(s)/2]
	for _, x := range ms {
		m.RSS = max(m.RSS, x.RSS)
	}
	return m
}

// medianCPU returns the median CPU time of ms.
func medianCPU(ms []measure) float64 {
	s := make([]float64, len(ms))
	for i, m := range ms {
		s[i] = m.CPU
	}
	slices.Sort(s)
	return s[len(s)/2]
}

func mib(b int64) string { return fmt.Sprintf("%d MiB", b>>20) }

// child runs this program in a child mode and reads its measurement and
// peak memory.
func child(mode, setupPath string, threads int) (measure, error) {
	cmd := exec.Command(os.Args[0], "-mode", mode, "-threads", strconv.Itoa(threads), setupPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return measure{}, fmt.Errorf("%s: %w", mode, err)
	}
	var m measure
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		return measure{}, fmt.Errorf("%s printed %q: %w", mode, out.String(), err)
	}
	return m, nil
}

// prepare generates the data (once per size, into dataDir's parent) and a
// coordinator with the contract, uploads and algorithm in dir.
func prepare(dir string, rows int64, generate bool, dataDir string) (string, error) {
	ctx := context.Background()
	data := filepath.Join(dataDir, "data")
	if generate {
		if _, err := adattribution.Generate(ctx, exscenario.Config{Dir: data, Rows: rows, Seed: 1,
			Formats: []connectors.Format{connectors.FormatParquet}, K: adattribution.K}); err != nil {
			return "", err
		}
	}
	srv, err := testenv.StartE(filepath.Join(dir, "coordinator"), coordinator.Config{
		Logger: slog.New(slog.DiscardHandler), MaxUploadBytes: 64 << 30})
	if err != nil {
		return "", err
	}
	defer srv.Stop()
	parties := map[string]*cleanroom.Identity{}
	spec := &testenv.Spec{Name: "bench", Query: adattribution.Query, AlgorithmBy: "measurer",
		Recipients: []string{"advertiser"}, K: adattribution.K, MaxRows: 10000, MaxRuns: 1,
		Parameters: windowParameters()}
	unit := "user_id"
	switch outputMode {
	case "aggregate":
	case "custom":
		spec.GroupColumn, unit = "users", ""
	default:
		return "", fmt.Errorf("-output %q: want aggregate or custom", outputMode)
	}
	for _, p := range []struct {
		id    string
		roles []contracts.Role
	}{
		{"publisher", []contracts.Role{contracts.RoleDataProvider}},
		{"advertiser", []contracts.Role{contracts.RoleDataProvider, contracts.RoleResultRecipient}},
		{"measurer", []contracts.Role{contracts.RoleAlgorithmProvider}},
	} {
		id, err := cleanroom.GenerateIdentity()
		if err != nil {
			return "", err
		}
		parties[p.id] = id
		spec.Parties = append(spec.Parties, &testenv.Party{ID: p.id, Roles: p.roles, Identity: id})
	}
	cols := func(cs []contracts.Column) string {
		var parts []string
		for _, c := range cs {
			parts = append(parts, fmt.Sprintf("{name: %s, type: %q}", c.Name, c.Type))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	spec.Datasets = []testenv.Dataset{
		{ID: adattribution.Impressions, Provider: "publisher", Columns: cols(adattribution.ImpressionColumns), PrivacyUnit: unit},
		{ID: adattribution.Conversions, Provider: "advertiser", Columns: cols(adattribution.ConversionColumns), PrivacyUnit: unit},
	}
	text := spec.Text(srv.Coord.Identity())
	c, err := contracts.Parse(text, contracts.ParseOptions{})
	if err != nil {
		return "", err
	}
	var sigs []contracts.SignedBy
	for _, p := range spec.Parties {
		s, err := c.Sign(p.Identity)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, contracts.SignedBy{Source: p.ID, Data: s})
	}
	cl := func(id string) (*client.Client, error) {
		return client.New(srv.URL, client.Options{Contract: c, Identity: parties[id]})
	}
	pub, err := cl("publisher")
	if err != nil {
		return "", err
	}
	defer pub.Close()
	if _, err := pub.RegisterContract(ctx, text, sigs); err != nil {
		return "", err
	}
	for _, u := range []struct{ party, ds string }{{"publisher", adattribution.Impressions}, {"advertiser", adattribution.Conversions}} {
		if err := uploadFile(ctx, cl, c, u.party, u.ds, filepath.Join(data, u.ds+".parquet")); err != nil {
			return "", err
		}
	}
	meas, err := cl("measurer")
	if err != nil {
		return "", err
	}
	defer meas.Close()
	if _, err := meas.SubmitAlgorithm(ctx, []byte(adattribution.Query), nil); err != nil {
		return "", err
	}
	adv, err := parties["advertiser"].MarshalText()
	if err != nil {
		return "", err
	}
	st := setup{DataDir: filepath.Join(dir, "coordinator"), Contract: string(text), Advertiser: string(adv),
		Impressions: filepath.Join(data, adattribution.Impressions+".parquet"),
		Conversions: filepath.Join(data, adattribution.Conversions+".parquet")}
	b, _ := json.Marshal(st)
	path := filepath.Join(dir, "setup.json")
	return path, os.WriteFile(path, b, 0o600)
}

// windowParameters is the contract's algorithm.parameters, as in the
// example's contract template: the reporting window's since and until,
// each within adattribution.Period.
func windowParameters() string {
	p := adattribution.Period.Parameters()
	var parts []string
	for _, name := range []string{"since", "until"} {
		parts = append(parts, fmt.Sprintf("{name: %s, type: timestamp, min: %q, max: %q}", name, p["since"], p["until"]))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// uploadFile uploads a Parquet file as its provider does
// (client.UploadDataset).
func uploadFile(ctx context.Context, cl func(string) (*client.Client, error), c *contracts.Contract, party, ds, path string) error {
	rr, err := connectors.Open(path, connectors.FormatParquet, c.Dataset(ds).Columns, connectors.Options{})
	if err != nil {
		return err
	}
	defer rr.Release()
	p, err := cl(party)
	if err != nil {
		return err
	}
	defer p.Close()
	_, err = p.UploadDataset(ctx, ds, rr, client.UploadOptions{})
	return err
}

func readSetup(path string) (*setup, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st setup
	return &st, json.Unmarshal(b, &st)
}

// childRun opens the prepared coordinator and times one run.
func childRun(path string, threads int) error {
	st, err := readSetup(path)
	if err != nil {
		return err
	}
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("CLEANROOM_BENCH_VERBOSE") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	coord, err := coordinator.Open(ctx, coordinator.Config{DataDir: st.DataDir, QueryThreads: threads, Logger: logger})
	if err != nil {
		return err
	}
	defer coord.Close(ctx)
	c, err := contracts.Parse([]byte(st.Contract), contracts.ParseOptions{})
	if err != nil {
		return err
	}
	adv, err := cleanroom.ParseIdentity([]byte(st.Advertiser))
	if err != nil {
		return err
	}
	if p := os.Getenv("CLEANROOM_BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cpu := cpuSeconds()
	start := time.Now()
	rs, err := coord.Run(ctx, adv.Public().SigningKey(), c.ID(), adattribution.Parameters)
	elapsed := time.Since(start)
	cpu = cpuSeconds() - cpu
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(measure{Seconds: elapsed.Seconds(), CPU: cpu, Rows: rs.RowsKept + rs.RowsSuppressed, RSS: peakRSS()})
}

// childPlain times plain DuckDB running the same SQL over the Parquet
// files.
func childPlain(path string, threads int) error {
	st, err := readSetup(path)
	if err != nil {
		return err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	cpu := cpuSeconds()
	start := time.Now()
	for _, q := range []string{
		fmt.Sprintf("SET threads = %d", threads),
		"SET TimeZone = 'UTC'", // as in the coordinator's sessions
		fmt.Sprintf("CREATE VIEW impressions AS SELECT * FROM read_parquet('%s')", st.Impressions),
		fmt.Sprintf("CREATE VIEW conversions AS SELECT * FROM read_parquet('%s')", st.Conversions),
	} {
		if _, err := db.Exec(q); err != nil {
			return err
		}
	}
	rows, err := db.Query(adattribution.LiteralQuery())
	if err != nil {
		return err
	}
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	h := sha256.New()
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		fmt.Fprint(h, vals...)
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	cpu = cpuSeconds() - cpu
	return json.NewEncoder(os.Stdout).Encode(measure{Seconds: elapsed.Seconds(), CPU: cpu, Rows: n, RSS: peakRSS()})
}
