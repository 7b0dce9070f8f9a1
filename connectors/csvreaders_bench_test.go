package connectors

import (
	"bytes"
	"context"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/csv"
	"github.com/duckdb/duckdb-go/v2"
)

// The CSV readers side by side on the same impressions CSV, each producing
// Arrow record batches of the contract's schema: this package's reader,
// arrow-go's (encoding/csv underneath) and DuckDB's read_csv (parallel,
// C++) through its Arrow interface. docs/connectors.md §4 gives the figures
// and says why the package keeps its own.

func csvBenchInput(b *testing.B) ([]byte, string) {
	var buf bytes.Buffer
	if err := writeImpressionsCSV(&buf, benchRows, 1); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "impressions.csv")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), path
}

func BenchmarkCSVReaderOwn(b *testing.B) {
	data, _ := csvBenchInput(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data), FormatCSV, impressionCols, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for r.Next() {
		}
		if err := r.Err(); err != nil || r.Rows() != benchRows {
			b.Fatalf("%d rows, %v", r.Rows(), err)
		}
		r.Release()
	}
}

func BenchmarkCSVReaderArrowGo(b *testing.B) {
	data, _ := csvBenchInput(b)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "user_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "campaign", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "shown_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r := csv.NewReader(bytes.NewReader(data), schema, csv.WithHeader(true), csv.WithChunk(65536))
		var n int64
		for r.Next() {
			n += r.RecordBatch().NumRows()
		}
		if err := r.Err(); err != nil || n != benchRows {
			b.Fatalf("%d rows, %v", n, err)
		}
		r.Release()
	}
}

func BenchmarkCSVReaderDuckDB(b *testing.B) {
	data, path := csvBenchInput(b)
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	conn, err := c.Connect(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.(driver.ExecerContext).ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil); err != nil {
		b.Fatal(err)
	}
	a, err := duckdb.NewArrowFromConn(conn)
	if err != nil {
		b.Fatal(err)
	}
	q := fmt.Sprintf(`SELECT * FROM read_csv('%s', header = true, strict_mode = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
		columns = {'user_id': 'VARCHAR', 'campaign': 'VARCHAR', 'shown_at': 'TIMESTAMPTZ'})`, path)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rr, err := a.QueryContext(context.Background(), q)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for rr.Next() {
			n += rr.RecordBatch().NumRows()
		}
		if err := rr.Err(); err != nil || n != benchRows {
			b.Fatalf("%d rows, %v", n, err)
		}
		rr.Release()
	}
}
