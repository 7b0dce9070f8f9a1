// Package scenariotest holds what the example scenarios' tests share: a
// plain, unrestricted DuckDB reading the generated CSV and Parquet files
// (the reference a scenario's query is checked against), the scenario
// played on a real coordinator through the client SDK, and a contract
// template filled with fresh keys.
package scenariotest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/examples/internal/scenario"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// DuckDB is an ordinary in-memory DuckDB, with nothing locked down, whose
// session time zone is UTC like the coordinator's engine.
type DuckDB struct {
	connector *duckdb.Connector
	conn      driver.Conn
}

// NewDuckDB opens a plain DuckDB and closes it when the test ends.
func NewDuckDB(tb testing.TB) *DuckDB {
	tb.Helper()
	c, err := duckdb.NewConnector(":memory:?threads=2", nil)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := c.Connect(context.Background())
	if err != nil {
		c.Close()
		tb.Fatal(err)
	}
	d := &DuckDB{connector: c, conn: conn}
	tb.Cleanup(func() {
		conn.Close()
		c.Close()
	})
	d.Exec(tb, "SET TimeZone = 'UTC'")
	return d
}

// RegisterUDF registers f as the scalar function name of this DuckDB: a
// model computed natively in Go, to compare with its WebAssembly build.
func (d *DuckDB) RegisterUDF(tb testing.TB, name string, f duckdb.ScalarFunc) {
	tb.Helper()
	db := sql.OpenDB(unclosable{d.connector})
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if err := duckdb.RegisterScalarUDF(conn, name, f); err != nil {
		tb.Fatalf("registering %s: %v", name, err)
	}
}

// unclosable hides a connector's Close from database/sql, whose DB.Close
// would otherwise close the database.
type unclosable struct{ driver.Connector }

// Exec runs a statement.
func (d *DuckDB) Exec(tb testing.TB, q string) {
	tb.Helper()
	if _, err := d.conn.(driver.ExecerContext).ExecContext(context.Background(), q, nil); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// ViewCSV makes a view named like the dataset over its CSV file, read with
// DuckDB's own CSV reader and the contract's column types.
func (d *DuckDB) ViewCSV(tb testing.TB, name, path string, cols []contracts.Column) {
	tb.Helper()
	types := make([]string, len(cols))
	for i, c := range cols {
		types[i] = fmt.Sprintf("%s: %s", quoteString(c.Name), quoteString(c.Type.SQLType()))
	}
	d.Exec(tb, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT * FROM read_csv(%s, header = true, auto_detect = false, columns = {%s})",
		quoteIdent(name), quoteString(path), strings.Join(types, ", ")))
}

// ViewParquet makes a view named like the dataset over its Parquet file.
func (d *DuckDB) ViewParquet(tb testing.TB, name, path string) {
	tb.Helper()
	d.Exec(tb, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT * FROM read_parquet(%s)", quoteIdent(name), quoteString(path)))
}

// Query runs q and returns its rows in canonical text form; the result's
// column names and Arrow types must be exactly those of cols.
func (d *DuckDB) Query(tb testing.TB, q string, cols []contracts.Column) *scenario.Table {
	tb.Helper()
	a, err := duckdb.NewArrowFromConn(d.conn)
	if err != nil {
		tb.Fatal(err)
	}
	rr, err := a.QueryContext(context.Background(), q)
	if err != nil {
		tb.Fatalf("plain DuckDB: %v", err)
	}
	defer rr.Release()
	checkSchema(tb, rr.Schema(), cols)
	t := tableOf(cols)
	for rr.Next() {
		appendRows(t, rr.RecordBatch())
	}
	if err := rr.Err(); err != nil {
		tb.Fatal(err)
	}
	return t
}

// QueryInt runs a query returning one integer.
func (d *DuckDB) QueryInt(tb testing.TB, q string) int64 {
	tb.Helper()
	t := d.Query(tb, q, scenario.MustColumns("n", "int64"))
	if len(t.Rows) != 1 {
		tb.Fatalf("%s: %d rows", q, len(t.Rows))
	}
	var n int64
	if _, err := fmt.Sscan(t.Rows[0][0], &n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// ReleasedByUnits checks, with plain DuckDB (db, over the generated
// files), which groups the expected results release: units is SQL written
// by hand that returns, for every group, its key columns (named as the
// result's first columns) and the distinct privacy units behind it of each
// reading of a protected dataset (columns n1 ... nCounts); a group must be
// released exactly when every count reaches k. Together with
// QueryMatchesExpected (plain DuckDB computes the expected groups) and
// Engine (the engine releases the expected rows), this shows that mode
// aggregate releases what plain DuckDB computes minus the groups with
// fewer than k persons of some protected dataset.
func ReleasedByUnits(t *testing.T, db *DuckDB, dir string, result []contracts.Column, units string, keys, counts int, k int64) {
	t.Helper()
	exp, err := scenario.ReadExpected(filepath.Join(dir, scenario.ExpectedFile), result)
	if err != nil {
		t.Fatal(err)
	}
	var keyCols, pass []string
	for _, c := range result[:keys] {
		keyCols = append(keyCols, quoteIdent(c.Name))
	}
	for i := 1; i <= counts; i++ {
		pass = append(pass, fmt.Sprintf("n%d >= %d", i, k))
	}
	got := db.Query(t, fmt.Sprintf("SELECT concat_ws('|', %s) AS key, (%s) AS released FROM (%s) ORDER BY key",
		strings.Join(keyCols, ", "), strings.Join(pass, " AND "), units), scenario.MustColumns("key", "string", "released", "bool"))
	want := map[string]string{}
	for _, r := range exp.Released {
		want[strings.Join(r[:keys], "|")] = "true"
	}
	for _, r := range exp.Suppressed {
		want[strings.Join(r[:keys], "|")] = "false"
	}
	if len(got.Rows) != len(want) {
		t.Fatalf("the hand-written counts have %d groups, the expected results %d", len(got.Rows), len(want))
	}
	for _, r := range got.Rows {
		if want[r[0]] != r[1] {
			t.Errorf("group %s: released %s by the distinct units plain DuckDB counts, %q in the expected results", r[0], r[1], want[r[0]])
		}
	}
}

// CleanRoom plays the scenario end to end on a real coordinator (served by
// coordinator.Serve on the simulated platform, internal/testenv) through
// the client SDK, as the parties' programs would: the contract template
// filled for that coordinator with fresh keys and every participant's
// signature, registered; each dataset read from dir/DATASET.EXT by
// connectors.Open and uploaded by its provider (client.UploadDataset); the
// query submitted by the algorithm provider (with its salt when
// confidential) and each of models by its provider (client.SubmitModel); a
// run; the result fetched, verified and decrypted by a recipient
// (client.Result). It returns the released rows and the number of
// suppressed rows, and writes the released rows to resultPath as CSV, as
// `cleanroom result show --format csv` does.
func CleanRoom(tb testing.TB, tmpl []byte, dir string, format connectors.Format, query string, cols []contracts.Column, resultPath string, models ...Module) (*scenario.Table, int64) {
	tb.Helper()
	return CleanRoomWith(tb, tmpl, dir, format, query, nil, cols, resultPath, models...)
}

// CleanRoomWith is CleanRoom with the values of the algorithm's parameters
// the run gives (name → text, as `cleanroom run --param` takes them).
func CleanRoomWith(tb testing.TB, tmpl []byte, dir string, format connectors.Format, query string, params map[string]string, cols []contracts.Column, resultPath string, models ...Module) (*scenario.Table, int64) {
	tb.Helper()
	ctx := context.Background()
	srv := testenv.Start(tb, tb.TempDir(), coordinator.Config{QueryMemory: 256 << 20, QueryThreads: 2})
	f := fill(tb, tmpl, query, srv.Coord.Identity().Document, models)
	clients := map[string]*client.Client{}
	var signed []contracts.SignedBy
	for _, p := range f.contract.Participants {
		id := f.keys[p.PublicKey.Fingerprint()]
		sig, err := f.contract.Sign(id)
		if err != nil {
			tb.Fatal(err)
		}
		signed = append(signed, contracts.SignedBy{Source: p.ID, Data: sig})
		cl, err := client.New(srv.URL, client.Options{Contract: f.contract, Identity: id})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(cl.Close)
		clients[p.ID] = cl
	}
	if _, err := clients[f.contract.Participants[0].ID].RegisterContract(ctx, f.text, signed); err != nil {
		tb.Fatalf("registering the contract: %v", err)
	}
	for _, ds := range f.contract.Datasets {
		r, err := connectors.Open(filepath.Join(dir, ds.ID+"."+format.String()), format, ds.Columns, connectors.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		_, err = clients[ds.Provider].UploadDataset(ctx, ds.ID, r, client.UploadOptions{})
		r.Release()
		if err != nil {
			tb.Fatalf("uploading %s: %v", ds.ID, err)
		}
	}
	if _, err := clients[f.contract.Algorithm.Provider].SubmitAlgorithm(ctx, []byte(query), f.salt); err != nil {
		tb.Fatalf("submitting the algorithm: %v", err)
	}
	for _, m := range models {
		cm := f.contract.Model(m.Name)
		if cm == nil {
			tb.Fatalf("the contract names no model %s", m.Name)
		}
		if _, err := clients[cm.Provider].SubmitModel(ctx, m.Name, m.Module, m.Salt); err != nil {
			tb.Fatalf("submitting model %s: %v", m.Name, err)
		}
	}
	recipient := clients[f.contract.Output.Recipients[0]]
	rs, err := recipient.RunWith(ctx, params)
	if err != nil {
		tb.Fatalf("run: %v", err)
	}
	res, err := recipient.Result(ctx, rs.RunID)
	if err != nil {
		tb.Fatalf("result: %v", err)
	}
	rr, err := client.ResultRecords(res.Report)
	if err != nil {
		tb.Fatal(err)
	}
	defer rr.Release()
	checkSchema(tb, rr.Schema(), cols)
	t := tableOf(cols)
	var batches []arrow.RecordBatch
	for rr.Next() {
		b := rr.RecordBatch()
		b.Retain()
		batches = append(batches, b)
		appendRows(t, b)
	}
	if err := rr.Err(); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		for _, b := range batches {
			b.Release()
		}
	}()
	out, err := os.Create(resultPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	if _, err := connectors.WriteRecords(out, connectors.FormatCSV, rr.Schema(), batches, connectors.WriteOptions{}); err != nil {
		tb.Fatal(err)
	}
	return t, rs.RowsSuppressed
}

// Module is a model's WebAssembly module for a test: Name is the model's
// name in the contract, Placeholder the template's placeholder for its
// commitment, Salt its commitment's salt (nil: a plain SHA-256).
type Module struct {
	Name, Placeholder string
	Module            []byte
	Salt              *cleanroom.Salt
}

// FillContract fills a scenario's contract template for a test: a fresh
// key for every {{..._KEY}}, the SHA-256 of query for {{QUERY_SHA256}} (an
// algorithm that is not confidential), the salted commitment to query with
// a fresh salt for {{QUERY_COMMITMENT}} (a confidential one), the
// commitment to each of models for its placeholder, an arbitrary
// measurement and simulated root, and an expiry 30 days ahead. It parses
// the result with contracts.Parse and returns both.
func FillContract(tb testing.TB, tmpl []byte, query string, models ...Module) (*contracts.Contract, []byte) {
	tb.Helper()
	m := [48]byte{}
	root := [32]byte{}
	for i := range m {
		m[i] = 0xab
	}
	for i := range root {
		root[i] = 0xcd
	}
	f := fill(tb, tmpl, query, &attest.IdentityDocument{Measurement: m, SimulatedRootSHA256: &root}, models)
	return f.contract, f.text
}

// filled is a filled contract template and the secrets it was filled with.
type filled struct {
	contract *contracts.Contract
	text     []byte
	keys     map[cleanroom.Fingerprint]*cleanroom.Identity
	salt     *cleanroom.Salt // of a confidential query's commitment
}

// fill fills a contract template (see FillContract) for the coordinator
// whose identity document is coord.
func fill(tb testing.TB, tmpl []byte, query string, coord *attest.IdentityDocument, models []Module) *filled {
	tb.Helper()
	f := &filled{keys: map[cleanroom.Fingerprint]*cleanroom.Identity{}}
	values := map[string]string{}
	for _, name := range scenario.Placeholders(tmpl) {
		switch {
		case strings.HasSuffix(name, "_KEY"):
			id, err := cleanroom.GenerateIdentity()
			if err != nil {
				tb.Fatal(err)
			}
			f.keys[id.Public().Fingerprint()] = id
			values[name] = id.Public().String()
		case name == "QUERY_SHA256":
			sum := sha256.Sum256([]byte(query))
			values[name] = hex.EncodeToString(sum[:])
		case name == "QUERY_COMMITMENT":
			salt := cleanroom.NewSalt()
			f.salt = &salt
			sum := cleanroom.CommitAlgorithm(salt, []byte(query))
			values[name] = hex.EncodeToString(sum[:])
		case name == "MEASUREMENT":
			values[name] = hex.EncodeToString(coord.Measurement[:])
		case name == "SIMULATED_ROOT_SHA256":
			values[name] = hex.EncodeToString(coord.SimulatedRootSHA256[:])
		case name == "EXPIRES_AT":
			values[name] = time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
		case slices.ContainsFunc(models, func(m Module) bool { return m.Placeholder == name }):
			m := models[slices.IndexFunc(models, func(m Module) bool { return m.Placeholder == name })]
			sum := sha256.Sum256(m.Module)
			if m.Salt != nil {
				sum = cleanroom.CommitModel(*m.Salt, m.Module)
			}
			values[name] = hex.EncodeToString(sum[:])
		default:
			tb.Fatalf("the template has a placeholder {{%s}} this helper does not know", name)
		}
	}
	var err error
	if f.text, err = scenario.Fill(tmpl, values); err != nil {
		tb.Fatal(err)
	}
	if f.contract, err = contracts.Parse(f.text, contracts.ParseOptions{}); err != nil {
		tb.Fatalf("the filled template does not parse: %v\n%s", err, f.text)
	}
	return f
}

// Generate runs a scenario's generator into a fresh temporary directory.
func Generate(tb testing.TB, spec scenario.Spec, rows int64, seed uint64, batch int) (string, *scenario.Summary) {
	tb.Helper()
	dir := tb.TempDir()
	formats, _ := scenario.ParseFormats("both")
	sum, err := spec.Generate(context.Background(), scenario.Config{Dir: dir, Rows: rows, Seed: seed, Formats: formats, K: spec.DefaultK, BatchRows: batch})
	if err != nil {
		tb.Fatal(err)
	}
	return dir, sum
}

// ReadAll reads a generated file through connectors.Open with the given
// columns and returns its number of rows.
func ReadAll(tb testing.TB, path string, cols []contracts.Column) int64 {
	tb.Helper()
	r, err := connectors.Open(path, connectors.FormatAuto, cols, connectors.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Release()
	for r.Next() {
	}
	if err := r.Err(); err != nil {
		tb.Fatal(err)
	}
	return r.Rows()
}

// SameFiles fails unless the two directories hold the same files with the
// same bytes.
func SameFiles(tb testing.TB, a, b string) {
	tb.Helper()
	ea, err := os.ReadDir(a)
	if err != nil {
		tb.Fatal(err)
	}
	eb, err := os.ReadDir(b)
	if err != nil {
		tb.Fatal(err)
	}
	if len(ea) != len(eb) {
		tb.Fatalf("%s has %d files, %s has %d", a, len(ea), b, len(eb))
	}
	for i := range ea {
		if ea[i].Name() != eb[i].Name() {
			tb.Fatalf("file %d: %s vs %s", i, ea[i].Name(), eb[i].Name())
		}
		x, err := os.ReadFile(filepath.Join(a, ea[i].Name()))
		if err != nil {
			tb.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, eb[i].Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if string(x) != string(y) {
			tb.Errorf("%s differs between two runs with the same seed", ea[i].Name())
		}
	}
}

// FilesEqual reports whether two files have the same bytes.
func FilesEqual(tb testing.TB, a, b string) bool {
	tb.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		tb.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		tb.Fatal(err)
	}
	return string(x) == string(y)
}

func tableOf(cols []contracts.Column) *scenario.Table {
	t := &scenario.Table{}
	for _, c := range cols {
		t.Columns = append(t.Columns, c.Name)
	}
	return t
}

func appendRows(t *scenario.Table, rec arrow.RecordBatch) {
	for i := range int(rec.NumRows()) {
		row := make([]string, rec.NumCols())
		for j := range row {
			row[j] = strings.Clone(rec.Column(j).ValueStr(i)) // Arrow strings alias the batch
		}
		t.Rows = append(t.Rows, row)
	}
}

func checkSchema(tb testing.TB, got *arrow.Schema, cols []contracts.Column) {
	tb.Helper()
	want := connectors.Schema(cols)
	if got.NumFields() != want.NumFields() {
		tb.Fatalf("result has columns %s, want %s", got, want)
	}
	for i, f := range got.Fields() {
		w := want.Field(i)
		if f.Name != w.Name || !arrow.TypeEqual(f.Type, w.Type) {
			tb.Fatalf("result column %d is %s %s, want %s %s", i, f.Name, f.Type, w.Name, w.Type)
		}
	}
}

func quoteIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// QueryMatchesExpected checks that the generator and the scenario's query
// agree: plain DuckDB running query over the CSV files, then over the
// Parquet files, generated in dir returns exactly the groups the generator
// expected, suppressed ones included, and there are groups on both sides
// of k. It returns the DuckDB with views over the Parquet files, for
// further checks of the data.
//
// setup, if any, prepares the DuckDB first (registers native models).
func QueryMatchesExpected(t *testing.T, dir string, sum *scenario.Summary, datasets map[string][]contracts.Column,
	query string, result []contracts.Column, setup ...func(*DuckDB)) *DuckDB {
	t.Helper()
	exp, err := scenario.ReadExpected(filepath.Join(dir, scenario.ExpectedFile), result)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Released) == 0 || len(exp.Suppressed) == 0 {
		t.Fatalf("want groups both above and below k: %d released, %d suppressed", len(exp.Released), len(exp.Suppressed))
	}
	if int64(len(exp.All)) != sum.Groups {
		t.Fatalf("expected file has %d groups, summary says %d", len(exp.All), sum.Groups)
	}
	db := NewDuckDB(t)
	for _, f := range setup {
		f(db)
	}
	for _, format := range []string{"csv", "parquet"} {
		t.Run(format, func(t *testing.T) {
			for name, cols := range datasets {
				path := filepath.Join(dir, name+"."+format)
				if format == "csv" {
					db.ViewCSV(t, name, path, cols)
				} else {
					db.ViewParquet(t, name, path)
				}
			}
			if err := exp.CompareAll(db.Query(t, query, result)); err != nil {
				t.Fatal(err)
			}
		})
	}
	return db
}
