package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/examples/clinical-cohort/riskmodel"
	"cleanroom.dev/cleanroom/internal/fuzzseed"
	"cleanroom.dev/cleanroom/internal/wasmtest"
)

const riskModelPkg = "./examples/clinical-cohort/riskmodel/wasm"

func ctype(s string) contracts.ColumnType {
	t, err := contracts.ParseColumnType(s)
	if err != nil {
		panic(err)
	}
	return t
}

func riskModel(tb testing.TB) Model {
	return Model{
		Name: "risk_band", Provider: "sponsor",
		Args:   []contracts.ColumnType{ctype("int64"), ctype("string"), ctype("float64"), ctype("int32")},
		Result: ctype("string"), Module: wasmtest.BuildGo(tb, riskModelPkg),
	}
}

// patientsTable is n patients with the risk model's inputs; every 17th
// row has a NULL somewhere.
func patientsTable(n int, seed uint64) *table {
	rng := rand.New(rand.NewPCG(seed, 2))
	t := &table{name: "patients", schema: schemaOf(col("id", "int64"), col("age", "int64"), col("sex", "string"), col("hba1c", "float64"), col("egfr", "int32"))}
	for start := 0; start < n; start += batchRows {
		rows := min(batchRows, n-start)
		b := array.NewRecordBuilder(memory.DefaultAllocator, t.schema)
		for i := range rows {
			b.Field(0).(*array.Int64Builder).Append(int64(start + i))
			b.Field(1).(*array.Int64Builder).Append(int64(30 + rng.IntN(55)))
			if (start+i)%17 == 3 {
				b.Field(2).AppendNull()
			} else {
				b.Field(2).(*array.StringBuilder).Append([]string{"F", "M"}[rng.IntN(2)])
			}
			b.Field(3).(*array.Float64Builder).Append(float64(50+rng.IntN(80)) / 10)
			if (start+i)%17 == 9 {
				b.Field(4).AppendNull()
			} else {
				b.Field(4).(*array.Int32Builder).Append(int32(15 + rng.IntN(100)))
			}
		}
		t.batches = append(t.batches, b.NewRecordBatch())
		b.Release()
	}
	return t
}

// nativeBands computes the risk band of every row of t in native Go.
func nativeBands(t *table) map[string]int64 {
	counts := map[string]int64{}
	for _, b := range t.batches {
		age := b.Column(1).(*array.Int64)
		sex := b.Column(2).(*array.String)
		hba1c := b.Column(3).(*array.Float64)
		egfr := b.Column(4).(*array.Int32)
		for i := range int(b.NumRows()) {
			band := "NULL"
			if !sex.IsNull(i) && !egfr.IsNull(i) {
				band = riskmodel.Band(age.Value(i), sex.Value(i), hba1c.Value(i), egfr.Value(i))
			}
			counts[band]++
		}
	}
	return counts
}

func countsOf(tb testing.TB, res *Result) map[string]int64 {
	tb.Helper()
	got := map[string]int64{}
	for _, b := range res.Batches {
		bands := b.Column(0).(*array.String)
		n := b.Column(1).(*array.Int64)
		for i := range int(b.NumRows()) {
			k := "NULL"
			if !bands.IsNull(i) {
				k = bands.Value(i)
			}
			got[k] = n.Value(i)
		}
	}
	return got
}

const bandQuery = `SELECT risk_band(age, sex, hba1c, egfr) AS band, count(*) AS n FROM patients GROUP BY band`

var noThreshold = Policy{Output: contracts.Output{Mode: contracts.ModeAggregate, MaxRows: 100}}

func TestModelMatchesNativeGo(t *testing.T) {
	pts := patientsTable(50_000, 1)
	defer pts.release()
	s := newSession(t, Config{})
	load(t, s, pts)
	if err := s.AddModels(context.Background(), []Model{riskModel(t)}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background(), bandQuery, noThreshold)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	got, want := countsOf(t, res), nativeBands(pts)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bands in WebAssembly %v; native Go %v", got, want)
	}
	if len(want) < 4 {
		t.Fatalf("the test data reaches only bands %v", want)
	}
}

// call bodies of hostile raw modules (cleanroom_model_call(rows, frame)).
var (
	bodyLoop   = []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x41, 0x00}                                     // loop br 0 end; i32.const 0
	bodyTrap   = []byte{0x00}                                                                         // unreachable
	bodyGrow   = []byte{0x03, 0x40, 0x41, 0x10, 0x40, 0x00, 0x41, 0x7f, 0x47, 0x0d, 0x00, 0x0b, 0x00} // grow 1 MiB until it fails, then trap
	bodyStatus = []byte{0x41, 0x07}                                                                   // return 7
	// The result's validity byte of row 0 set to 2: frame+8 holds the
	// address of the result's validity bytes (one argument).
	bodyBadValidity = []byte{0x20, 0x01, 0x28, 0x02, 0x08, 0x41, 0x02, 0x3a, 0x00, 0x00, 0x41, 0x00}
	// Row 0's result string points far outside memory: frame+12 holds the
	// address of the result's data; validity byte set to 1.
	bodyBadString = []byte{
		0x20, 0x01, 0x28, 0x02, 0x08, 0x41, 0x01, 0x3a, 0x00, 0x00, // valid[0] = 1
		0x20, 0x01, 0x28, 0x02, 0x0c, 0x41, 0x7f, 0x36, 0x02, 0x00, // data[0].addr = 0xffffffff
		0x20, 0x01, 0x28, 0x02, 0x0c, 0x41, 0x10, 0x36, 0x02, 0x04, // data[0].len = 16
		0x41, 0x00,
	}
	bodyNulls = []byte{0x41, 0x00} // writes nothing: every result NULL
)

func rawModel(name string, result string, module []byte) Model {
	return Model{Name: name, Provider: "measurer", Args: []contracts.ColumnType{ctype("float64")}, Result: ctype(result), Module: module}
}

func TestHostileModels(t *testing.T) {
	withImport := func(mod, name string) func(*wasmtest.Module) {
		return func(m *wasmtest.Module) {
			m.Imports = append(m.Imports, wasmtest.Import{Module: mod, Name: name, Params: []byte{wasmtest.I32}})
		}
	}
	for _, tc := range []struct {
		name    string
		model   Model
		timeout time.Duration
		check   bool // refused by CheckModule already
		want    ModelFailure
	}{
		{"infinite loop", rawModel("m", "float64", wasmtest.Model(bodyLoop)), 2 * time.Second, false, FailureDeadline},
		{"trap", rawModel("m", "float64", wasmtest.Model(bodyTrap)), 0, false, FailureTrap},
		{"memory growth past the limit", rawModel("m", "float64", wasmtest.Model(bodyGrow)), 0, false, FailureMemory},
		{"error status", rawModel("m", "float64", wasmtest.Model(bodyStatus)), 0, false, FailureStatus},
		{"validity byte not 0 or 1", rawModel("m", "float64", wasmtest.Model(bodyBadValidity)), 0, false, FailureShape},
		{"string outside memory", rawModel("m", "string", wasmtest.Model(bodyBadString)), 0, false, FailureShape},
		{"import outside WASI", rawModel("m", "float64", wasmtest.Model(bodyNulls, withImport("env", "leak"))), 0, true, FailureInvalid},
		{"socket import", rawModel("m", "float64", wasmtest.Model(bodyNulls, withImport("wasi_snapshot_preview1", "sock_accept"))), 0, true, FailureInvalid},
		{"file system import", rawModel("m", "float64", wasmtest.Model(bodyNulls, withImport("wasi_snapshot_preview1", "path_open"))), 0, true, FailureInvalid},
		{"wrong call signature", rawModel("m", "float64", wasmtest.Model(bodyNulls, func(m *wasmtest.Module) {
			m.Funcs[2].Params = []byte{wasmtest.I64, wasmtest.I32}
		})), 0, true, FailureInvalid},
		{"no memory export", rawModel("m", "float64", wasmtest.Model(bodyNulls, func(m *wasmtest.Module) { m.ExportMemory = "" })), 0, true, FailureInvalid},
		{"command, not reactor", rawModel("m", "float64", wasmtest.Model(bodyNulls, func(m *wasmtest.Module) {
			m.Funcs = append(m.Funcs, wasmtest.Func{Export: "_start"})
		})), 0, true, FailureInvalid},
		{"ABI version 2", rawModel("m", "float64", wasmtest.Model(bodyNulls, func(m *wasmtest.Module) { m.Funcs[0].Body = wasmtest.I32Const(2) })), 0, true, FailureInvalid},
		{"not WebAssembly", rawModel("m", "float64", []byte("\x00asm but not really")), 0, true, FailureInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			err := CheckModule(ctx, tc.model)
			if tc.check {
				assertModelFailure(t, err, tc.want)
			} else if err != nil {
				t.Fatalf("CheckModule: %v", err)
			}
			pts := patientsTable(5000, 3)
			defer pts.release()
			s := newSession(t, Config{ModelMemoryLimit: 32 << 20})
			load(t, s, pts)
			err = s.AddModels(ctx, []Model{tc.model})
			if tc.check {
				assertModelFailure(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			res, err := s.Run(ctx, `SELECT count(m(hba1c)) AS n FROM patients`, noThreshold)
			if err == nil {
				res.Release()
			}
			assertModelFailure(t, err, tc.want)
			// The engine is still usable: a new session runs a query.
			s2 := newSession(t, Config{})
			load(t, s2, pts)
			if res, err := s2.Run(context.Background(), `SELECT count(*) AS n FROM patients`, noThreshold); err != nil {
				t.Fatal(err)
			} else {
				res.Release()
			}
		})
	}
}

func assertModelFailure(t *testing.T, err error, want ModelFailure) {
	t.Helper()
	var me *ModelError
	if !errors.As(err, &me) {
		t.Fatalf("got %v (%T); want a *ModelError %q", err, err, want)
	}
	if me.Failure != want {
		t.Fatalf("failure %q (%v); want %q", me.Failure, me, want)
	}
	if !errors.Is(err, ErrModel) {
		t.Fatal("a *ModelError does not wrap ErrModel")
	}
	t.Logf("%s", me)
}

// registerNative registers a native Go scalar function in a session, for
// benchmarks that compare it with a model.
func registerNative(tb testing.TB, s *Session, name string, f duckdb.ScalarFunc) {
	tb.Helper()
	db := sql.OpenDB(unclosable{s.connector})
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if err := duckdb.RegisterScalarUDF(conn, name, f); err != nil {
		tb.Fatal(err)
	}
	// The statement check admits it as it admits a model.
	s.mu.Lock()
	s.models = append(s.models, &udf{m: Model{Name: name}})
	s.mu.Unlock()
}

// TestModelNamesPassTheStatementCheck: a contract's model names are the
// functions the allow-list admits besides its own, for that contract only.
func TestModelNamesPassTheStatementCheck(t *testing.T) {
	q := "SELECT Score(value) AS s, count(*) AS n FROM conversions GROUP BY s"
	if err := CheckQueryWithModels(q, []string{"conversions"}, []string{"score"}); err != nil {
		t.Fatalf("a model call refused: %v", err)
	}
	err := CheckQuery(q, []string{"conversions"})
	var re *RefusalError
	if !errors.As(err, &re) || re.Layer != LayerStatement || !strings.Contains(err.Error(), "calls score") {
		t.Fatalf("a call of a model the contract does not name: %v", err)
	}
	// A qualified name is not the model.
	if err := CheckQueryWithModels("SELECT main.other.score(value) FROM conversions", []string{"conversions"}, []string{"score"}); err == nil {
		t.Fatal("a qualified call passed as the model")
	}
}

// TestModelCallsAreFoundInTheParseTree: the privacy analysis's hook finds
// every call of a model by name in DuckDB's parse tree, nested anywhere,
// and nothing else.
func TestModelCallsAreFoundInTheParseTree(t *testing.T) {
	q := `WITH s AS (SELECT RISK_BAND(age, sex, hba1c, egfr) AS b, score(hba1c) AS x FROM patients)
	      SELECT b, count(*) AS n, sum(score(x)) FROM s WHERE b IN (SELECT risk_band(1, 'F', 2.0, 3)) GROUP BY b`
	got, err := ModelCalls(q, []string{"risk_band", "score", "unused"})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, g := range got {
		counts[g]++
	}
	if counts["risk_band"] != 2 || counts["score"] != 2 || counts["unused"] != 0 {
		t.Fatalf("model calls %v", got)
	}
	if _, err := ModelCalls("SELECT FROM WHERE", []string{"score"}); err == nil {
		t.Fatal("a query that does not parse gave no error")
	}
}

// hostileModules are the raw modules of TestHostileModels, as fuzz seeds.
func hostileModules() [][]byte {
	return [][]byte{
		wasmtest.Model(bodyNulls), wasmtest.Model(bodyLoop), wasmtest.Model(bodyTrap), wasmtest.Model(bodyGrow),
		wasmtest.Model(bodyStatus), wasmtest.Model(bodyBadValidity), wasmtest.Model(bodyBadString),
		wasmtest.Model(bodyNulls, func(m *wasmtest.Module) {
			m.Imports = []wasmtest.Import{{Module: "env", Name: "leak", Params: []byte{wasmtest.I32}}}
		}),
		wasmtest.Model(bodyNulls, func(m *wasmtest.Module) {
			m.Funcs = append(m.Funcs, wasmtest.Func{Export: "_initialize", Body: bodyLoop[:5]})
		}),
		[]byte("\x00asm\x01\x00\x00\x00"),
	}
}

// FuzzCheckModule feeds arbitrary bytes to the module check of a model
// submission: it never panics, and refuses with a *ModelError or accepts.
// The seeds are the committed corpus (TestWriteModuleSeeds).
func FuzzCheckModule(f *testing.F) {
	defer func(d time.Duration) { checkModuleTimeout = d }(checkModuleTimeout)
	checkModuleTimeout = time.Second
	f.Fuzz(func(t *testing.T, module []byte) {
		err := CheckModule(context.Background(), rawModel("m", "float64", module))
		var me *ModelError
		if err != nil && !errors.As(err, &me) {
			t.Fatalf("CheckModule: %v (%T), want nil or a *ModelError", err, err)
		}
	})
}

// TestWriteModuleSeeds writes FuzzCheckModule's committed corpus (with
// -update-seeds).
func TestWriteModuleSeeds(t *testing.T) {
	if !*fuzzseed.Update {
		t.Skip("run with -update-seeds to rewrite the corpus")
	}
	fuzzseed.Write(t, "FuzzCheckModule", fuzzseed.Bytes(hostileModules()...)...)
}
