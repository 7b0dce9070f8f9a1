package engine

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// concatBatches joins batches into one record batch.
func concatBatches(tb testing.TB, schema *arrow.Schema, batches []arrow.RecordBatch) arrow.RecordBatch {
	tb.Helper()
	cols := make([]arrow.Array, schema.NumFields())
	var rows int64
	for _, b := range batches {
		rows += b.NumRows()
	}
	for c := range cols {
		parts := make([]arrow.Array, 0, len(batches))
		for _, b := range batches {
			parts = append(parts, b.Column(c))
		}
		if len(parts) == 0 {
			cols[c] = array.MakeArrayOfNull(memory.DefaultAllocator, schema.Field(c).Type, 0)
			continue
		}
		a, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			tb.Fatal(err)
		}
		cols[c] = a
	}
	return array.NewRecordBatch(schema, cols, rows)
}

func readIPC(tb testing.TB, b []byte) arrow.RecordBatch {
	tb.Helper()
	r, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Release()
	var batches []arrow.RecordBatch
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		batches = append(batches, rec)
	}
	if err := r.Err(); err != nil {
		tb.Fatal(err)
	}
	return concatBatches(tb, r.Schema(), batches)
}

// sameResult compares two results: same column names and types, same
// values in the same order; doubles may differ by a relative 1e-9, since
// parallel sums add in no fixed order.
func sameResult(want, got arrow.RecordBatch) error {
	if want.NumCols() != got.NumCols() || want.NumRows() != got.NumRows() {
		return fmt.Errorf("shape %dx%d, want %dx%d", got.NumRows(), got.NumCols(), want.NumRows(), want.NumCols())
	}
	for c := range int(want.NumCols()) {
		wf, gf := want.Schema().Field(c), got.Schema().Field(c)
		if wf.Name != gf.Name || !arrow.TypeEqual(wf.Type, gf.Type) {
			return fmt.Errorf("column %d is %s %s, want %s %s", c, gf.Name, gf.Type, wf.Name, wf.Type)
		}
		wc, gc := want.Column(c), got.Column(c)
		if wa, ok := wc.(*array.Float64); ok {
			ga := gc.(*array.Float64)
			for i := range wa.Len() {
				if wa.IsNull(i) != ga.IsNull(i) {
					return fmt.Errorf("column %s row %d: null mismatch", wf.Name, i)
				}
				if wa.IsNull(i) {
					continue
				}
				w, g := wa.Value(i), ga.Value(i)
				if !(w == g || math.Abs(w-g) <= 1e-9*math.Max(math.Abs(w), math.Abs(g))) {
					return fmt.Errorf("column %s row %d: %v, want %v", wf.Name, i, g, w)
				}
			}
			continue
		}
		if !array.Equal(wc, gc) {
			for i := range wc.Len() {
				if wc.ValueStr(i) != gc.ValueStr(i) {
					return fmt.Errorf("column %s row %d: %s, want %s", wf.Name, i, gc.ValueStr(i), wc.ValueStr(i))
				}
			}
			return fmt.Errorf("column %s differs", wf.Name)
		}
	}
	return nil
}

func TestLoadReadsBackEveryType(t *testing.T) {
	tb := allTypes(5000, 11)
	defer tb.release()
	s := newSession(t, Config{})
	load(t, s, tb)
	res, err := s.Run(context.Background(), "SELECT * FROM all_types ORDER BY id", noLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	if res.Rows != tb.rows() || res.Suppressed != 0 {
		t.Fatalf("%d rows kept, %d suppressed; want %d, 0", res.Rows, res.Suppressed, tb.rows())
	}
	want := concatBatches(t, tb.schema, tb.batches)
	got := concatBatches(t, res.Schema, res.Batches)
	if err := sameResult(want, got); err != nil {
		t.Fatal(err)
	}
}

// TestQueryShapesMatchPlainDuckDB runs queries of every shape the engine
// must support over the locked session and over an ordinary DuckDB reading
// the same data from Parquet; the results must be the same.
func TestQueryShapesMatchPlainDuckDB(t *testing.T) {
	imp, conv := scenario(20000, 7)
	all := allTypes(2000, 8)
	dir := t.TempDir()
	plain := newPlainDuckDB(t, 2, map[string]string{
		imp.name: writeParquet(t, dir, imp), conv.name: writeParquet(t, dir, conv), all.name: writeParquet(t, dir, all),
	})
	for _, q := range []struct{ name, sql string }{
		{"scenario", scenarioQuery},
		{"self join", `SELECT a.campaign, count(*) AS pairs FROM impressions a JOIN impressions b
			ON a.user_id = b.user_id AND a.shown_at < b.shown_at GROUP BY ALL ORDER BY 1`},
		{"several scans", `SELECT (SELECT count(*) FROM impressions) AS n,
			(SELECT count(DISTINCT user_id) FROM impressions) AS users,
			(SELECT max(shown_at) FROM impressions WHERE campaign = 'campaign-03') AS last,
			(SELECT count(*) FROM impressions i WHERE NOT EXISTS (SELECT 1 FROM conversions c WHERE c.user_id = i.user_id)) AS unconverted`},
		{"CTE", `WITH touched AS (SELECT DISTINCT user_id, campaign FROM impressions),
			conv AS (SELECT user_id, sum(value) AS v FROM conversions GROUP BY user_id)
			SELECT t.campaign, count(*) AS users, round(sum(c.v), 2) AS revenue
			FROM touched t JOIN conv c USING (user_id) GROUP BY t.campaign ORDER BY t.campaign`},
		{"CTE referenced twice", `WITH u AS (SELECT user_id, count(*) AS n FROM impressions GROUP BY ALL)
			SELECT count(*) AS users, (SELECT max(n) FROM u) AS most FROM u`},
		{"materialized CTE", `WITH u AS MATERIALIZED (SELECT user_id, count(*) AS n FROM impressions GROUP BY ALL)
			SELECT a.n, count(*) AS c FROM u a JOIN u b USING (user_id) GROUP BY ALL ORDER BY ALL`},
		{"recursive CTE", `WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r
			WHERE i < (SELECT count(DISTINCT campaign) FROM impressions)) SELECT max(i) AS m, count(*) AS c FROM r`},
		{"window", `SELECT campaign, user_id, shown_at,
			row_number() OVER (PARTITION BY user_id ORDER BY shown_at, campaign) AS rn,
			count(*) OVER (PARTITION BY campaign) AS per_campaign,
			lag(shown_at) OVER (PARTITION BY user_id ORDER BY shown_at, campaign) AS previous
			FROM impressions QUALIFY rn = 1 ORDER BY user_id LIMIT 500`},
		{"union", `SELECT 'impressions' AS src, count(*) AS n FROM impressions
			UNION ALL SELECT 'conversions', count(*) FROM conversions ORDER BY src`},
		{"time zone", `SELECT date_trunc('day', shown_at) AS day, strftime(shown_at, '%H') AS hour, count(*) AS n
			FROM impressions GROUP BY ALL ORDER BY ALL LIMIT 50`},
		{"pivot", `SELECT * FROM (SELECT campaign, user_id FROM impressions)
			PIVOT (count(*) FOR campaign IN ('campaign-01', 'campaign-02')) ORDER BY user_id LIMIT 50`},
		{"all types", `SELECT b, count(*) AS n, sum(i32) AS s32, sum(i64::HUGEINT) AS s64, min(f64) AS f, max(s) AS s,
			min(d) AS d, max(ts) AS ts, sum(dec_small) AS ds, sum(dec_mid) AS dm, max(dec_big) AS db
			FROM all_types GROUP BY b ORDER BY b`},
		{"all types rows", `SELECT * FROM all_types WHERE id % 3 = 0 ORDER BY id`},
		{"from first", `FROM conversions SELECT user_id, value WHERE value > 150 ORDER BY user_id, value LIMIT 20`},
		{"generators", `SELECT r.range AS i, count(c.user_id) AS n FROM range(3) r
			LEFT JOIN conversions c ON length(c.user_id) % 3 = r.range GROUP BY ALL ORDER BY ALL`},
	} {
		t.Run(q.name, func(t *testing.T) {
			s := newSession(t, Config{})
			load(t, s, imp, conv, all)
			res, err := s.Run(context.Background(), q.sql, noLimit)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Release()
			schema, batches := plain.query(t, q.sql)
			want := concatBatches(t, schema, batches)
			got := concatBatches(t, res.Schema, res.Batches)
			if want.NumRows() == 0 {
				t.Fatal("the reference result is empty; the query tests nothing")
			}
			if err := sameResult(want, got); err != nil {
				t.Fatal(err)
			}
		})
	}
}
