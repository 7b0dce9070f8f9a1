package engine

// Test data shared by the tests and benchmarks: the example scenario's
// datasets, a table of every column type, a Parquet writer and a plain,
// unlocked DuckDB to compare against. Everything is seeded and
// deterministic.

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/contracts"
)

// table is a dataset held as Arrow batches.
type table struct {
	name    string
	schema  *arrow.Schema
	batches []arrow.RecordBatch
}

func (t *table) reader(tb testing.TB) array.RecordReader {
	tb.Helper()
	r, err := array.NewRecordReader(t.schema, t.batches)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func (t *table) rows() int64 {
	var n int64
	for _, b := range t.batches {
		n += b.NumRows()
	}
	return n
}

func (t *table) release() {
	for _, b := range t.batches {
		b.Release()
	}
}

var timestampUTC = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

func schemaOf(cols ...contracts.Column) *arrow.Schema {
	d := contracts.Dataset{Columns: cols}
	return d.Schema()
}

func col(name, typ string) contracts.Column {
	t, err := contracts.ParseColumnType(typ)
	if err != nil {
		panic(err)
	}
	return contracts.Column{Name: name, Type: t}
}

// batchRows is the size of the generated batches, as a provider's
// uploader might cut them.
const batchRows = 1 << 17

// scenarioEpoch is when the generated campaign starts.
var scenarioEpoch = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// scenario returns the example scenario's datasets: impressions with n
// rows, n/5 distinct users and 20 campaigns, and conversions with n/10 rows
// of the same users.
func scenario(n int, seed uint64) (impressions, conversions *table) {
	rng := rand.New(rand.NewPCG(seed, 1))
	users := max(n/5, 1)
	impressions = &table{name: "impressions", schema: schemaOf(col("user_id", "string"), col("campaign", "string"), col("shown_at", "timestamp"))}
	conversions = &table{name: "conversions", schema: schemaOf(col("user_id", "string"), col("value", "float64"), col("converted_at", "timestamp"))}
	campaigns := make([]string, 20)
	for i := range campaigns {
		campaigns[i] = fmt.Sprintf("campaign-%02d", i)
	}
	const window = 90 * 24 * 3600 * 1e6
	var buf []byte
	userID := func() string {
		buf = append(buf[:0], 'u')
		buf = strconv.AppendInt(buf, int64(1_000_000_000+rng.IntN(users)), 10)
		return string(buf)
	}
	for done := 0; done < n; {
		m := min(batchRows, n-done)
		b := array.NewRecordBuilder(memory.DefaultAllocator, impressions.schema)
		uid, camp, ts := b.Field(0).(*array.StringBuilder), b.Field(1).(*array.StringBuilder), b.Field(2).(*array.TimestampBuilder)
		uid.Reserve(m)
		uid.ReserveData(m * 11)
		camp.Reserve(m)
		camp.ReserveData(m * 11)
		ts.Reserve(m)
		for range m {
			uid.Append(userID())
			camp.Append(campaigns[rng.IntN(len(campaigns))])
			ts.Append(arrow.Timestamp(scenarioEpoch + rng.Int64N(window)))
		}
		impressions.batches = append(impressions.batches, b.NewRecordBatch())
		b.Release()
		done += m
	}
	nc := max(n/10, 1)
	for done := 0; done < nc; {
		m := min(batchRows, nc-done)
		b := array.NewRecordBuilder(memory.DefaultAllocator, conversions.schema)
		uid, val, ts := b.Field(0).(*array.StringBuilder), b.Field(1).(*array.Float64Builder), b.Field(2).(*array.TimestampBuilder)
		uid.Reserve(m)
		uid.ReserveData(m * 11)
		val.Reserve(m)
		ts.Reserve(m)
		for range m {
			uid.Append(userID())
			val.Append(float64(100+rng.IntN(19900)) / 100)
			ts.Append(arrow.Timestamp(scenarioEpoch + rng.Int64N(window)))
		}
		conversions.batches = append(conversions.batches, b.NewRecordBatch())
		b.Release()
		done += m
	}
	return impressions, conversions
}

// scenarioQuery is the example scenario's algorithm: per campaign, the
// users who saw it and converted, their conversions and revenue.
const scenarioQuery = `SELECT i.campaign,
       count(DISTINCT c.user_id) AS users,
       count(*) AS conversions,
       sum(c.value) AS revenue
FROM impressions AS i
JOIN conversions AS c ON c.user_id = i.user_id
GROUP BY i.campaign
ORDER BY i.campaign`

// scenarioPolicy is the example contract's output policy.
var scenarioPolicy = Policy{Output: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 50, MaxRows: 10000, MaxRuns: 5}}

// allTypes returns a table with a column of every dataset type, including
// nulls and extreme values, ordered by its id column.
func allTypes(n int, seed uint64) *table {
	rng := rand.New(rand.NewPCG(seed, 2))
	t := &table{name: "all_types", schema: schemaOf(
		col("id", "int64"), col("b", "bool"), col("i32", "int32"), col("i64", "int64"),
		col("f64", "float64"), col("s", "string"), col("d", "date"), col("ts", "timestamp"),
		col("dec_small", "decimal(9,2)"), col("dec_mid", "decimal(18,6)"), col("dec_big", "decimal(38,10)"),
	)}
	b := array.NewRecordBuilder(memory.DefaultAllocator, t.schema)
	defer b.Release()
	strs := []string{"", "a", "héllo", "日本語", "emoji 🙂", "quote ' \" ;", "tab\tnewline\n", "NUL\x00inside"}
	maxDec := func(p int32) decimal128.Num { return decimal128.GetMaxValue(p) }
	for i := range n {
		null := func() bool { return i%7 == 3 || rng.IntN(10) == 0 }
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if null() {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.BooleanBuilder).Append(rng.IntN(2) == 1)
		}
		switch {
		case null():
			b.Field(2).AppendNull()
		case i == 1:
			b.Field(2).(*array.Int32Builder).Append(math.MinInt32)
		case i == 2:
			b.Field(2).(*array.Int32Builder).Append(math.MaxInt32)
		default:
			b.Field(2).(*array.Int32Builder).Append(rng.Int32() - math.MaxInt32/2)
		}
		switch {
		case null():
			b.Field(3).AppendNull()
		case i == 1:
			b.Field(3).(*array.Int64Builder).Append(math.MinInt64)
		case i == 2:
			b.Field(3).(*array.Int64Builder).Append(math.MaxInt64)
		default:
			b.Field(3).(*array.Int64Builder).Append(rng.Int64() - math.MaxInt64/2)
		}
		switch {
		case null():
			b.Field(4).AppendNull()
		case i == 1:
			b.Field(4).(*array.Float64Builder).Append(math.Inf(-1))
		case i == 2:
			b.Field(4).(*array.Float64Builder).Append(math.MaxFloat64)
		case i == 4:
			b.Field(4).(*array.Float64Builder).Append(math.SmallestNonzeroFloat64)
		default:
			b.Field(4).(*array.Float64Builder).Append(rng.NormFloat64() * 1e6)
		}
		if null() {
			b.Field(5).AppendNull()
		} else {
			b.Field(5).(*array.StringBuilder).Append(strs[rng.IntN(len(strs))] + strconv.Itoa(rng.IntN(100)))
		}
		switch {
		case null():
			b.Field(6).AppendNull()
		case i == 1:
			b.Field(6).(*array.Date32Builder).Append(arrow.Date32(-719162)) // 0001-01-01
		default:
			b.Field(6).(*array.Date32Builder).Append(arrow.Date32(rng.IntN(40000) - 10000))
		}
		switch {
		case null():
			b.Field(7).AppendNull()
		case i == 1:
			b.Field(7).(*array.TimestampBuilder).Append(arrow.Timestamp(-62135596800000000)) // 0001-01-01
		default:
			b.Field(7).(*array.TimestampBuilder).Append(arrow.Timestamp(rng.Int64N(4e15) - 1e15))
		}
		for c, p := range []int32{9, 18, 38} {
			fb := b.Field(8 + c).(*array.Decimal128Builder)
			switch {
			case null():
				fb.AppendNull()
			case i == 1:
				fb.Append(maxDec(p).Negate())
			case i == 2:
				fb.Append(maxDec(p))
			default:
				fb.Append(decimal128.FromI64(rng.Int64N(1_000_000_000) - 500_000_000))
			}
		}
		if (i+1)%1000 == 0 || i == n-1 {
			t.batches = append(t.batches, b.NewRecordBatch())
		}
	}
	return t
}

// newSession opens a session with small limits for tests and closes it at
// the end of the test.
func newSession(tb testing.TB, cfg Config) *Session {
	tb.Helper()
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = 512 << 20
	}
	if cfg.Threads == 0 {
		cfg.Threads = 2
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// load loads tables into s.
func load(tb testing.TB, s *Session, tables ...*table) {
	tb.Helper()
	for _, t := range tables {
		if err := s.LoadTable(context.Background(), t.name, t.schema, t.reader(tb)); err != nil {
			tb.Fatalf("loading %s: %v", t.name, err)
		}
	}
}

// writeParquet writes t to dir/<name>.parquet with Snappy compression (the
// usual default of Parquet writers) and returns the path.
func writeParquet(tb testing.TB, dir string, t *table) string {
	tb.Helper()
	path := filepath.Join(dir, t.name+".parquet")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(batchRows))
	w, err := pqarrow.NewFileWriter(t.schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		tb.Fatal(err)
	}
	for _, b := range t.batches {
		if err := w.Write(b); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// plainDuckDB is an ordinary, unlocked in-memory DuckDB with a view per
// Parquet file, named like the table; the reference the engine is compared
// with. Its time zone is UTC, like the engine's.
type plainDuckDB struct {
	connector *duckdb.Connector
	conn      driver.Conn
}

func newPlainDuckDB(tb testing.TB, threads int, files map[string]string) *plainDuckDB {
	tb.Helper()
	c, err := duckdb.NewConnector(fmt.Sprintf(":memory:?threads=%d", threads), nil)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := c.Connect(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	p := &plainDuckDB{connector: c, conn: conn}
	tb.Cleanup(p.close)
	p.exec(tb, "SET TimeZone = 'UTC'")
	for name, path := range files {
		p.exec(tb, fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM read_parquet(%s)", quoteIdent(name), quoteString(path)))
	}
	return p
}

func (p *plainDuckDB) exec(tb testing.TB, q string) {
	tb.Helper()
	if _, err := p.conn.(driver.ExecerContext).ExecContext(context.Background(), q, nil); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// query runs q and returns its batches, copied into Go memory.
func (p *plainDuckDB) query(tb testing.TB, q string) (*arrow.Schema, []arrow.RecordBatch) {
	tb.Helper()
	a, err := duckdb.NewArrowFromConn(p.conn)
	if err != nil {
		tb.Fatal(err)
	}
	rr, err := a.QueryContext(context.Background(), q)
	if err != nil {
		tb.Fatalf("plain DuckDB: %s: %v", q, err)
	}
	defer rr.Release()
	var out []arrow.RecordBatch
	for rr.Next() {
		kept, _, err := (&rowFilter{visible: rr.Schema().NumFields(), limit: -1}).batch(rr.RecordBatch(), rr.Schema())
		if err != nil {
			tb.Fatal(err)
		}
		if kept != nil {
			out = append(out, kept)
		}
	}
	if err := rr.Err(); err != nil {
		tb.Fatal(err)
	}
	return rr.Schema(), out
}

func (p *plainDuckDB) close() {
	p.conn.Close()
	p.connector.Close()
}

// noLimit releases every row of a result.
var noLimit = Policy{Output: contracts.Output{Mode: contracts.ModeAggregate, MaxRows: math.MaxInt64}}
