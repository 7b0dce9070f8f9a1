package engine

import (
	"context"
	"database/sql/driver"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/examples/clinical-cohort/riskmodel"
)

// benchModelRows is the size of the model benchmarks' table:
// CLEANROOM_BENCH_MODEL_ROWS, default 10M.
func benchModelRows(b *testing.B) int {
	if s := os.Getenv("CLEANROOM_BENCH_MODEL_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 10_000_000
}

// nativeBand is the risk model as a DuckDB scalar function in native Go,
// row at a time.
type nativeBand struct{}

func (nativeBand) Config() duckdb.ScalarFuncConfig {
	u := &udf{m: Model{Args: []contracts.ColumnType{ctype("int64"), ctype("string"), ctype("float64"), ctype("int32")}, Result: ctype("string")}}
	return u.Config()
}

func (nativeBand) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{RowExecutor: func(v []driver.Value) (any, error) {
		if v[0] == nil || v[1] == nil || v[2] == nil || v[3] == nil {
			return nil, nil
		}
		return riskmodel.Band(v[0].(int64), v[1].(string), v[2].(float64), v[3].(int32)), nil
	}}
}

// BenchmarkRiskModel scores the clinical-cohort risk model over a table
// of benchModelRows rows four ways, reporting rows per second:
//
//   - go: riskmodel.Band in a plain Go loop over the Arrow arrays (the
//     function's own cost);
//   - duckdb-go-udf: a DuckDB query calling it as a native Go scalar
//     function;
//   - duckdb-wasm: the same query in a locked-down session, the model
//     running as the WebAssembly module (what a run does);
//   - duckdb-no-model: the same query without the model (grouping by sex),
//     the baseline of a run's query.
//
// Each DuckDB iteration is a whole engine run: open, load, query, close.
func BenchmarkRiskModel(b *testing.B) {
	n := benchModelRows(b)
	pts := patientsTable(n, 5)
	defer pts.release()
	model := riskModel(b)
	// Compile once into the process's cache, as a coordinator has by its
	// second run: the runs below measure scoring, not compilation.
	if err := CheckModule(context.Background(), model); err != nil {
		b.Fatal(err)
	}
	// rows/s is against wall-clock time; rows/cpu-s against the CPU time
	// the whole process used (every DuckDB and Go thread), which holds
	// still on a machine other work shares.
	var cpu0 time.Duration
	start := func() { cpu0 = cpuTime() }
	report := func(b *testing.B) {
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(n)*float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
	}
	b.Run("go", func(b *testing.B) {
		var sink int
		start()
		for b.Loop() {
			for _, rec := range pts.batches {
				age := rec.Column(1).(*array.Int64)
				sex := rec.Column(2).(*array.String)
				hba1c := rec.Column(3).(*array.Float64)
				egfr := rec.Column(4).(*array.Int32)
				for i := range int(rec.NumRows()) {
					if sex.IsNull(i) || egfr.IsNull(i) {
						continue
					}
					sink += len(riskmodel.Band(age.Value(i), sex.Value(i), hba1c.Value(i), egfr.Value(i)))
				}
			}
		}
		report(b)
		_ = sink
	})
	run := func(b *testing.B, query string, setup func(s *Session)) {
		start()
		for b.Loop() {
			s, err := New(Config{MemoryLimit: 4 << 30})
			if err != nil {
				b.Fatal(err)
			}
			load(b, s, pts)
			setup(s)
			res, err := s.Run(context.Background(), query, noThreshold)
			if err != nil {
				b.Fatal(err)
			}
			res.Release()
			s.Close()
		}
		report(b)
	}
	b.Run("duckdb-go-udf", func(b *testing.B) {
		run(b, bandQuery, func(s *Session) {
			registerNative(b, s, "risk_band", nativeBand{})
		})
	})
	b.Run("duckdb-wasm", func(b *testing.B) {
		run(b, bandQuery, func(s *Session) {
			if err := s.AddModels(context.Background(), []Model{model}); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("duckdb-no-model", func(b *testing.B) {
		run(b, `SELECT sex AS band, count(*) AS n FROM patients GROUP BY band`, func(*Session) {})
	})
}
