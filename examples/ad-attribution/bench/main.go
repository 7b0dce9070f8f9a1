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
//
// The larger-than-memory case (-spill-rows) does the same with a query
// memory limit of a quarter of the datasets' size on both sides, and a
// spill directory: the coordinator's (DuckDB's encrypted temporary files)
// and plain DuckDB's temp_directory. Each child watches its spill
// directory and reports the most it held at once.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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
	mode := flag.String("mode", "compare", "compare (default), upload (the provider's upload of a Parquet, an Arrow IPC and a CSV file), prepare (set up the first of -rows in -dir and print the setup file for the child modes), or the child modes run, plain and upload-child")
	commandSizes := flag.String("command-rows", "", "comma-separated impression counts at which to time the whole `cleanroom run` command against a plain DuckDB process")
	uploadMB := flag.Int64("upload-mb", 1000, "with -mode upload: the size of each input file, MB")
	sizes := flag.String("rows", "1000000,10000000", "comma-separated impression counts to measure")
	repeat := flag.Int("repeat", 3, "runs per side and size (the median is reported)")
	threads := flag.Int("threads", runtime.GOMAXPROCS(0), "query threads on both sides")
	dir := flag.String("dir", "", "work directory (default: a temporary one, removed at the end)")
	spillSizes := flag.String("spill-rows", "", "comma-separated impression counts to measure larger than memory: query memory a quarter of the datasets' size, spilling")
	output := flag.String("output", "aggregate", "the contract's output mode: aggregate (the example's: the engine counts the users behind each row) or custom (the query's users column)")
	flag.Parse()
	outputMode = *output
	var err error
	switch *mode {
	case "compare":
		err = compare(*sizes, *spillSizes, *commandSizes, *repeat, *threads, *dir)
	case "command":
		err = childCommand(flag.Arg(0))
	case "upload":
		err = compareUpload(*uploadMB, *threads, *dir)
	case "upload-child":
		err = childUpload(flag.Arg(0))
	case "prepare":
		err = prepareOnly(*sizes, *dir)
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

// settle flushes the page cache's dirty pages (the data and envelopes
// prepare just wrote) before a timed child starts, so that neither side
// shares its cores with the kernel writing them back.
func settle() {
	syscall.Sync()
}

// prepareOnly generates the data and a coordinator ready for one run
// (contract, uploads, algorithm) for the first of -rows in -dir, and
// prints the setup file's path: for rerunning the run and plain child
// modes by hand (profiles, CLEANROOM_BENCH_MEMORY). A run uses the
// coordinator up (max_runs): copy its directory first to run again.
func prepareOnly(sizes, dir string) error {
	if dir == "" {
		return fmt.Errorf("-mode prepare needs -dir")
	}
	n, err := strconv.ParseInt(strings.TrimSpace(strings.Split(sizes, ",")[0]), 10, 64)
	if err != nil {
		return fmt.Errorf("-rows: %v", err)
	}
	sizeDir := filepath.Join(dir, strconv.FormatInt(n, 10))
	_, err = os.Stat(filepath.Join(sizeDir, "data"))
	path, err := prepare(filepath.Join(sizeDir, "prepared"), n, err != nil, sizeDir, false)
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
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
	Data        int64  `json:"data"` // the datasets' envelopes, bytes
	// QueryMemory, when set, is the query memory limit of both sides,
	// and SpillDir where they spill (each in a directory of its own).
	QueryMemory int64  `json:"query_memory,omitempty"`
	SpillDir    string `json:"spill_dir,omitempty"`
}

type measure struct {
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_seconds"` // user and system CPU time of the timed part, all threads
	Rows    int64   `json:"rows"`
	RSS     int64   `json:"peak_rss"` // peak resident bytes of the child (VmHWM)
	Spilled int64   `json:"spilled"`  // the most the spill directory held at once
}

// spillWatch polls dir and keeps the most bytes it held at once.
type spillWatch struct {
	dir  string
	max  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func watchSpill(dir string) *spillWatch {
	w := &spillWatch{dir: dir, stop: make(chan struct{}), done: make(chan struct{})}
	if dir == "" {
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		for {
			var total int64
			filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if info, err := d.Info(); err == nil {
						total += info.Size()
					}
				}
				return nil
			})
			if total > w.max.Load() {
				w.max.Store(total)
			}
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return w
}

// end stops the watch and returns the most bytes seen.
func (w *spillWatch) end() int64 {
	select {
	case <-w.done:
	default:
		close(w.stop)
		<-w.done
	}
	return w.max.Load()
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

func compare(sizes, spillSizes, commandSizes string, repeat, threads int, dir string) error {
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
		spill       bool
		memory      int64 // the query memory limit (spill rows)
		data        int64 // the datasets' envelopes, bytes
		clean, base []measure
	}
	var results []row
	type size struct {
		rows  int64
		spill bool
	}
	var todo []size
	for flagName, list := range map[string]string{"rows": sizes, "spill-rows": spillSizes} {
		for _, s := range strings.Split(list, ",") {
			if strings.TrimSpace(s) == "" {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return fmt.Errorf("-%s: %v", flagName, err)
			}
			todo = append(todo, size{n, flagName == "spill-rows"})
		}
	}
	slices.SortStableFunc(todo, func(a, b size) int {
		if a.spill != b.spill {
			if a.spill {
				return 1
			}
			return -1
		}
		return int(a.rows - b.rows)
	})
	for _, sz := range todo {
		n := sz.rows
		fmt.Fprintf(os.Stderr, "ad-attribution-bench: %d rows (larger than memory: %v): generating and uploading...\n", n, sz.spill)
		sizeDir := filepath.Join(dir, strconv.FormatInt(n, 10))
		r := row{rows: n, spill: sz.spill}
		for i := range repeat {
			// Runs are limited (max_runs) and leave state: prepare a fresh
			// coordinator for every clean-room measurement.
			_, err := os.Stat(filepath.Join(sizeDir, "data"))
			path, err := prepare(filepath.Join(sizeDir, fmt.Sprintf("%d-%v", i, sz.spill)), n, err != nil, sizeDir, sz.spill)
			if err != nil {
				return err
			}
			st, err := readSetup(path)
			if err != nil {
				return err
			}
			r.memory, r.data = st.QueryMemory, st.Data
			settle()
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
	if len(results) == 0 {
		return compareCommandSizes(commandSizes, repeat, threads, dir)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "rows\tdatasets\tquery memory\tclean room (s)\tplain DuckDB (s)\tratio\tclean room CPU (s)\tplain CPU (s)\tCPU ratio\tclean room peak RSS\tplain peak RSS\tRSS ratio\tclean room spilled\tplain spilled\t\n")
	for _, r := range results {
		c, b := median(r.clean), median(r.base)
		cc, bc := medianCPU(r.clean), medianCPU(r.base)
		memory := "unlimited"
		if r.spill {
			memory = mib(r.memory)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%.3f\t%.3f\t%.2f\t%.3f\t%.3f\t%.2f\t%s\t%s\t%.2f\t%s\t%s\t\n", r.rows, mib(r.data), memory,
			c.Seconds, b.Seconds, c.Seconds/b.Seconds,
			cc, bc, cc/bc, mib(c.RSS), mib(b.RSS), float64(c.RSS)/float64(b.RSS), mib(c.Spilled), mib(b.Spilled))
	}
	w.Flush()
	fmt.Printf("(%d threads on both sides, median of %d runs; clean room = decrypt, load, query, policy, encrypt, sign, log, in output mode %s; CPU = user+system time of all threads; datasets = the envelopes' bytes; spilled = the most the spill directory held at once)\n", threads, repeat, outputMode)
	if commandSizes != "" {
		fmt.Println()
	}
	return compareCommandSizes(commandSizes, repeat, threads, dir)
}

// compareCommandSizes runs compareCommand at the sizes of -command-rows.
func compareCommandSizes(commandSizes string, repeat, threads int, dir string) error {
	var cmdRows []int64
	for _, s := range strings.Split(commandSizes, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("-command-rows: %v", err)
		}
		cmdRows = append(cmdRows, n)
	}
	if len(cmdRows) == 0 {
		return nil
	}
	return compareCommand(cmdRows, repeat, threads, dir)
}

func median(ms []measure) measure {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b measure) int { return int((a.Seconds - b.Seconds) * 1e9) })
	m := s[len(s)/2]
	for _, x := range ms {
		m.RSS = max(m.RSS, x.RSS)
		m.Spilled = max(m.Spilled, x.Spilled)
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
	var m measure
	return m, childJSON(mode, setupPath, threads, &m)
}

// childJSON runs this program in a child mode and decodes what it prints
// into v.
func childJSON(mode, setupPath string, threads int, v any) error {
	cmd := exec.Command(os.Args[0], "-mode", mode, "-threads", strconv.Itoa(threads), setupPath)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(threads))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", mode, err)
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		return fmt.Errorf("%s printed %q: %w", mode, out.String(), err)
	}
	return nil
}

// prepare generates the data (once per size, into dataDir's parent) and a
// coordinator with the contract, uploads and algorithm in dir.
func prepare(dir string, rows int64, generate bool, dataDir string, spill bool) (string, error) {
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
	var size int64
	for _, u := range []struct{ party, ds string }{{"publisher", adattribution.Impressions}, {"advertiser", adattribution.Conversions}} {
		n, err := uploadFile(ctx, cl, c, u.party, u.ds, filepath.Join(data, u.ds+".parquet"))
		if err != nil {
			return "", err
		}
		size += n
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
		Conversions: filepath.Join(data, adattribution.Conversions+".parquet"), Data: size}
	if spill {
		st.QueryMemory = size / 4 &^ (1<<20 - 1)
		st.SpillDir = filepath.Join(dir, "spill")
	}
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
func uploadFile(ctx context.Context, cl func(string) (*client.Client, error), c *contracts.Contract, party, ds, path string) (int64, error) {
	rr, err := connectors.Open(path, connectors.FormatParquet, c.Dataset(ds).Columns, connectors.Options{})
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	p, err := cl(party)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	rc, err := p.UploadDataset(ctx, ds, rr, client.UploadOptions{})
	if err != nil {
		return 0, err
	}
	return rc.Size, nil
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
	cfg := coordinator.Config{DataDir: st.DataDir, QueryThreads: threads, Logger: logger}
	if st.QueryMemory > 0 {
		cfg.QueryMemory, cfg.SpillDir = st.QueryMemory, filepath.Join(st.SpillDir, "run")
	}
	coord, err := coordinator.Open(ctx, cfg)
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
	spill := watchSpill(cfg.SpillDir)
	mw := newMemWatch()
	mw.phase("opened")
	mw.start()
	cpu := cpuSeconds()
	start := time.Now()
	rs, err := coord.Run(ctx, adv.Public().SigningKey(), c.ID(), adattribution.Parameters)
	elapsed := time.Since(start)
	cpu = cpuSeconds() - cpu
	mw.end()
	mw.phase("after")
	spilled := spill.end()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(measure{Seconds: elapsed.Seconds(), CPU: cpu, Rows: rs.RowsKept + rs.RowsSuppressed, RSS: peakRSS(), Spilled: spilled})
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
	settings := []string{fmt.Sprintf("SET threads = %d", threads), "SET TimeZone = 'UTC'"} // the time zone as in the coordinator's sessions
	spillDir := ""
	if st.QueryMemory > 0 {
		spillDir = filepath.Join(st.SpillDir, "plain")
		if err := os.MkdirAll(spillDir, 0o700); err != nil {
			return err
		}
		settings = append(settings, fmt.Sprintf("SET memory_limit = '%dB'", st.QueryMemory), fmt.Sprintf("SET temp_directory = '%s'", spillDir))
		if os.Getenv("CLEANROOM_BENCH_PLAIN_ENCRYPTED_SPILL") != "" {
			// Plain DuckDB spilling as the clean room does: encrypted.
			settings = append(settings, "SET force_mbedtls_unsafe = true", "SET temp_file_encryption = true")
		}
	}
	spill := watchSpill(spillDir)
	mw := newMemWatch()
	mw.phase("opened")
	mw.start()
	cpu := cpuSeconds()
	start := time.Now()
	for _, q := range append(settings,
		fmt.Sprintf("CREATE VIEW impressions AS SELECT * FROM read_parquet('%s')", st.Impressions),
		fmt.Sprintf("CREATE VIEW conversions AS SELECT * FROM read_parquet('%s')", st.Conversions),
	) {
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
	mw.end()
	mw.phase("after")
	return json.NewEncoder(os.Stdout).Encode(measure{Seconds: elapsed.Seconds(), CPU: cpu, Rows: n, RSS: peakRSS(), Spilled: spill.end()})
}
