package coordinator_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	_ "github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// spillMarkers are plaintext values every row of the spill test's datasets
// carries: none may appear in a file the host can read.
var spillMarkers = []string{"MKUSER-", "MKCAMPAIGN-"}

// TestLargerThanMemoryRunSpillsOnlyCiphertext runs the ad-attribution
// query over datasets more than four times the query memory limit. The
// run must complete, with exactly the result plain DuckDB computes from the
// same rows; it must have spilled (so the files were there to read); and
// the spill directory, read from the host's side all through the run and
// after it, must hold none of the marker values the rows carry.
func TestLargerThanMemoryRunSpillsOnlyCiphertext(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads and queries some 150 MB")
	}
	const queryMemory = 32 << 20
	spill := filepath.Join(t.TempDir(), "spill")
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{QueryMemory: queryMemory, QueryThreads: 2, SpillDir: spill})
	// The ad-attribution contract with a query DuckDB can run in 32 MiB
	// by spilling: the join's build side (the conversions) is larger than
	// the limit. (DuckDB's DISTINCT aggregates need memory that grows with
	// the distinct values, so the example's count(DISTINCT user_id) would
	// need some 128 MiB here, spilling or not.)
	spec := testenv.AdSpec(t, "larger-than-memory", 1)
	spec.Query = "SELECT i.campaign, count(*) AS users, sum(c.value) AS revenue " +
		"FROM impressions i JOIN conversions c USING (user_id) GROUP BY i.campaign ORDER BY i.campaign"
	sc := testenv.New(t, srv, spec)

	// Every conversion has its own user: the join's build side is larger
	// than the memory limit, and the datasets together some 5 times it.
	const impressions, conversions, campaigns = 3_500_000, 1_000_000, 10
	var imp, conv strings.Builder
	imp.WriteString("user_id,campaign\n")
	for i := range impressions {
		fmt.Fprintf(&imp, "MKUSER-%08d,MKCAMPAIGN-%02d\n", (i*7919)%(2*conversions), i%campaigns)
	}
	conv.WriteString("user_id,value\n")
	for i := range conversions {
		fmt.Fprintf(&conv, "MKUSER-%08d,%d\n", i, i%100)
	}
	sc.Submit(t, "publisher")
	sc.MustUpload(t, "publisher", "impressions", imp.String())
	sc.MustUpload(t, "advertiser", "conversions", conv.String())
	sc.SubmitAlgorithm(t)

	var stored int64
	srv.Coord.State().View(func(v *state.Snapshot) {
		for _, d := range v.Contract(sc.Contract.ID()).Datasets {
			stored += d.Upload.Stored.Size
		}
	})
	if stored < 4*queryMemory {
		t.Fatalf("the datasets take %d bytes, less than 4× the %d-byte query memory limit", stored, queryMemory)
	}

	// The host's view of the spill directory, read over and over while the
	// run goes on.
	watch := &spillWatch{dir: spill}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			watch.scan(t)
			time.Sleep(10 * time.Millisecond)
		}
	})
	ctx := context.Background()
	_, err := sc.Client(t, "advertiser").Run(ctx)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("the run over datasets larger than memory (spill files read %d times, at most %d bytes at once): %v", watch.reads, watch.maxBytes, err)
	}
	watch.scan(t) // after the run
	if watch.found != "" {
		t.Fatalf("a spill file holds the plaintext marker %q", watch.found)
	}
	if watch.maxBytes == 0 {
		t.Fatal("the run spilled nothing: the test shows nothing about spill files")
	}
	// The session closes, and removes its spill directory, just after the
	// result is out: wait for that (a generous bound, not a measure of
	// speed), still reading what is there.
	for giveUp, left := time.Now().Add(2*time.Minute), watch.files(t); len(left) > 0; left = watch.files(t) {
		if time.Now().After(giveUp) {
			t.Fatalf("the run left files in the spill directory: %v", left)
		}
		watch.scan(t)
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("datasets %d bytes (query memory %d); spill files read %d times, at most %d bytes at once", stored, queryMemory, watch.reads, watch.maxBytes)

	st, err := sc.Client(t, "advertiser").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sc.Client(t, "advertiser").Result(ctx, st.Runs[0].RunID)
	if err != nil {
		t.Fatal(err)
	}
	got := spillResultRows(t, res.Report.Result)
	want := plainDuckDBRows(t, sc.Spec.Query, imp.String(), conv.String())
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the clean room's result differs from plain DuckDB's:\n%s\nplain DuckDB:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// spillWatch reads every file under dir as the host can.
type spillWatch struct {
	dir      string
	found    string
	maxBytes int64
	reads    int
}

func (w *spillWatch) scan(t *testing.T) {
	var total int64
	filepath.WalkDir(w.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // removed meanwhile
		}
		w.reads++
		total += int64(len(b))
		for _, m := range spillMarkers {
			if bytes.Contains(b, []byte(m)) && w.found == "" {
				w.found = m
				t.Errorf("%s holds %q", path, m)
			}
		}
		return nil
	})
	w.maxBytes = max(w.maxBytes, total)
}

func (w *spillWatch) files(t *testing.T) []string {
	var out []string
	filepath.WalkDir(w.dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// spillResultRows renders a result's Arrow IPC stream as sorted lines.
func spillResultRows(t *testing.T, stream []byte) []string {
	t.Helper()
	r, err := ipc.NewReader(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var rows []string
	for r.Next() {
		rec := r.RecordBatch()
		for i := range int(rec.NumRows()) {
			var cells []string
			for _, c := range rec.Columns() {
				switch a := c.(type) {
				case *array.Float64:
					cells = append(cells, fmt.Sprintf("%.2f", a.Value(i)))
				default:
					cells = append(cells, c.ValueStr(i))
				}
			}
			rows = append(rows, strings.Join(cells, "|"))
		}
	}
	sort.Strings(rows)
	return rows
}

// plainDuckDBRows runs query in plain DuckDB over the same CSV rows.
func plainDuckDBRows(t *testing.T, query, impressions, conversions string) []string {
	t.Helper()
	db := testenv.PlainDuckDB(t, impressions, conversions)
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var campaign string
		var users int64
		var revenue float64
		if err := rows.Scan(&campaign, &users, &revenue); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s|%d|%.2f", campaign, users, revenue))
	}
	sort.Strings(out)
	return out
}
