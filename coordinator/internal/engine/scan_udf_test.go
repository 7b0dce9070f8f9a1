package engine

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"
)

// The dataset scan through duckdb-go's public table-function API
// (RegisterTableUDF with a ParallelChunkTableFunction), built far enough to
// measure against the C scan of scan.c (BenchmarkScanPublicUDF): the same
// windows of the same Arrow batches, the same parallelism, each window
// written into DuckDB's data chunk value by value through the public
// setters, for the column types of the benchmark's datasets. The C scan
// hands DuckDB references to the Arrow buffers instead (one conversion per
// window, in C); the figures are in docs/engine.md.

// udfScanFunction is the name the public-API scan is registered under.
const udfScanFunction = "_cleanroom_udf_scan"

// udfSource is one reference to a dataset through the public API.
type udfSource struct {
	d       *dataset
	threads int
	next    atomic.Int64 // the next window to hand out
	once    sync.Once
	windows []window
}

func (u *udfSource) ColumnInfos() []duckdb.ColumnInfo {
	infos := make([]duckdb.ColumnInfo, u.d.schema.NumFields())
	for i, f := range u.d.schema.Fields() {
		var t duckdb.Type
		switch f.Type.(type) {
		case *arrow.StringType:
			t = duckdb.TYPE_VARCHAR
		case *arrow.Float64Type:
			t = duckdb.TYPE_DOUBLE
		case *arrow.Int64Type:
			t = duckdb.TYPE_BIGINT
		case *arrow.TimestampType:
			t = duckdb.TYPE_TIMESTAMP_TZ
		default:
			panic(fmt.Sprintf("the public-API scan has no writer for %s", f.Type))
		}
		ti, err := duckdb.NewTypeInfo(t)
		if err != nil {
			panic(err)
		}
		infos[i] = duckdb.ColumnInfo{Name: f.Name, T: ti}
	}
	return infos
}

func (u *udfSource) Cardinality() *duckdb.CardinalityInfo {
	return &duckdb.CardinalityInfo{Cardinality: uint(u.d.rows), Exact: true}
}

func (u *udfSource) Init() duckdb.ParallelTableSourceInfo {
	return duckdb.ParallelTableSourceInfo{MaxThreads: u.threads}
}

func (u *udfSource) NewLocalState() any { return &struct{}{} }

// FillChunk writes the next window into chunk, column by column, value by
// value; a column DuckDB did not project is skipped by the setters.
func (u *udfSource) FillChunk(_ any, chunk duckdb.DataChunk) error {
	u.once.Do(func() {
		for i, b := range u.d.held {
			for off := int64(0); off < b.NumRows(); off += windowRows {
				u.windows = append(u.windows, window{batch: i, off: off, count: min(windowRows, b.NumRows()-off)})
			}
		}
	})
	w := u.next.Add(1) - 1
	if w >= int64(len(u.windows)) {
		return chunk.SetSize(0)
	}
	win := u.windows[w]
	b := u.d.held[win.batch]
	for c := range int(b.NumCols()) {
		col := b.Column(c)
		for r := range int(win.count) {
			i := int(win.off) + r
			if col.IsNull(i) {
				if err := chunk.SetValue(c, r, nil); err != nil {
					return err
				}
				continue
			}
			var err error
			switch a := col.(type) {
			case *array.String:
				err = duckdb.SetChunkValue(chunk, c, r, a.Value(i))
			case *array.Float64:
				err = duckdb.SetChunkValue(chunk, c, r, a.Value(i))
			case *array.Int64:
				err = duckdb.SetChunkValue(chunk, c, r, a.Value(i))
			case *array.Timestamp:
				err = duckdb.SetChunkValue(chunk, c, r, time.UnixMicro(int64(a.Value(i))).UTC())
			}
			if err != nil {
				return err
			}
		}
	}
	return chunk.SetSize(int(win.count))
}

// registerUDFScan registers the public-API scan on the session's database
// and makes a view NAME_udf over it for every loaded dataset.
func registerUDFScan(tb testing.TB, s *Session) *sql.Conn {
	tb.Helper()
	ctx := context.Background()
	// Not closed: closing a sql.DB closes its connector, the session's
	// database.
	db := sql.OpenDB(s.connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	bigint, err := duckdb.NewTypeInfo(duckdb.TYPE_BIGINT)
	if err != nil {
		tb.Fatal(err)
	}
	err = duckdb.RegisterTableUDF(conn, udfScanFunction, duckdb.ParallelChunkTableFunction{
		Config: duckdb.TableFunctionConfig{Arguments: []duckdb.TypeInfo{bigint}},
		BindArguments: func(_ map[string]any, args ...any) (duckdb.ParallelChunkTableSource, error) {
			d, err := s.scan.get(args[0].(int64))
			if err != nil {
				return nil, err
			}
			return &udfSource{d: d, threads: s.cfg.Threads}, nil
		},
	})
	if err != nil {
		tb.Fatalf("registering the public-API scan: %v", err)
	}
	s.scan.mu.Lock()
	names := make([]string, len(s.scan.datasets))
	for i, d := range s.scan.datasets {
		names[i] = d.name
	}
	s.scan.mu.Unlock()
	for i, name := range names {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM %s(%d)", quoteIdent(name+"_udf"), udfScanFunction, i)); err != nil {
			tb.Fatal(err)
		}
	}
	return conn
}

// queryRows runs q on conn and returns its rows as text.
func queryRows(tb testing.TB, conn *sql.Conn, q string) []string {
	tb.Helper()
	rows, err := conn.QueryContext(context.Background(), q)
	if err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals...))
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// udfScenarioQuery is scenarioQuery over the public-API views.
var udfScenarioQuery = strings.NewReplacer("FROM impressions", "FROM impressions_udf", "JOIN conversions", "JOIN conversions_udf").Replace(scenarioQuery)

// TestPublicUDFScanAgrees checks that the measured public-API scan reads
// what the C scan reads: the scenario's query gives the same rows through
// both, so the benchmark compares equal work.
func TestPublicUDFScanAgrees(t *testing.T) {
	imp, conv := scenario(20_000, 3)
	defer imp.release()
	defer conv.release()
	s := newSession(t, Config{})
	load(t, s, imp, conv)
	conn := registerUDFScan(t, s)
	// Parallel sums of doubles differ in their last digits with the order
	// of the rows; the comparison rounds them.
	rounded := func(q string) string {
		return "SELECT campaign, users, conversions, round(revenue, 6) FROM (" + q + ") ORDER BY campaign"
	}
	want, got := queryRows(t, conn, rounded(scenarioQuery)), queryRows(t, conn, rounded(udfScenarioQuery))
	if len(want) == 0 || strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Fatalf("the C scan gives\n%s\nthe public-API scan\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

// BenchmarkScanPublicUDF runs the scenario's query at 10M impressions (1M
// conversions; CLEANROOM_SCAN_BENCH_ROWS sets another count) over the same
// loaded datasets through the C scan (c-scan) and through duckdb-go's
// public RegisterTableUDF with a ParallelChunkTableFunction (public-udf),
// with GOMAXPROCS threads. It reports wall and process CPU time per query.
func BenchmarkScanPublicUDF(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("CLEANROOM_SCAN_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	imp, conv := scenario(n, 42)
	defer imp.release()
	defer conv.release()
	s := newSession(b, Config{Threads: runtime.GOMAXPROCS(0), MemoryLimit: 4 << 30})
	load(b, s, imp, conv)
	conn := registerUDFScan(b, s)
	for _, v := range []struct{ name, query string }{{"c-scan", scenarioQuery}, {"public-udf", udfScenarioQuery}} {
		b.Run(fmt.Sprintf("rows=%dM/%s", n/1_000_000, v.name), func(b *testing.B) {
			runtime.GC()
			cpu := cpuTime()
			for b.Loop() {
				queryRows(b, conn, v.query)
			}
			b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}
