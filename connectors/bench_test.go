package connectors

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/contracts"
)

// The shapes of the product's example datasets.
var (
	impressionCols = []contracts.Column{col("user_id", "string"), col("campaign", "string"), col("shown_at", "timestamp")}
	conversionCols = []contracts.Column{col("user_id", "string"), col("value", "float64"), col("converted_at", "timestamp")}
)

// writeImpressionsCSV writes n rows of impressions CSV:
// user_id (a UUID), campaign, shown_at (RFC 3339 with microseconds).
func writeImpressionsCSV(w io.Writer, n int, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	bw.WriteString("user_id,campaign,shown_at\n")
	var line []byte
	for range n {
		line = line[:0]
		line = appendUUID(line, rng)
		line = append(line, ",campaign-"...)
		line = appendDigits(line, uint64(rng.IntN(200)), 10, 3)
		line = append(line, ',')
		line = time.UnixMicro(start+rng.Int64N(90*86400e6)).UTC().AppendFormat(line, "2006-01-02T15:04:05.000000Z")
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func writeConversionsCSV(w io.Writer, n int, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	rng := rand.New(rand.NewPCG(seed, 2))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	bw.WriteString("user_id,value,converted_at\n")
	var line []byte
	for range n {
		line = line[:0]
		line = appendUUID(line, rng)
		line = append(line, ',')
		line = strconv.AppendFloat(line, float64(rng.IntN(50000))/100, 'f', 2, 64)
		line = append(line, ',')
		line = time.UnixMicro(start+rng.Int64N(90*86400e6)).UTC().AppendFormat(line, "2006-01-02T15:04:05.000000Z")
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// appendUUID appends a random UUID-shaped user id.
func appendUUID(b []byte, rng *rand.Rand) []byte {
	b = appendDigits(b, uint64(rng.Uint32()), 16, 8)
	for range 3 {
		b = append(b, '-')
		b = appendDigits(b, uint64(rng.Uint32()&0xffff), 16, 4)
	}
	b = append(b, '-')
	return appendDigits(b, rng.Uint64()&0xffffffffffff, 16, 12)
}

func appendDigits(b []byte, v uint64, base, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendUint(tmp[:0], v, base)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

const benchRows = 200_000

func benchCSV(b *testing.B, cols []contracts.Column, gen func(io.Writer, int, uint64) error) {
	var buf bytes.Buffer
	if err := gen(&buf, benchRows, 1); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data), FormatCSV, cols, Options{})
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
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func benchParquet(b *testing.B, cols []contracts.Column, gen func(io.Writer, int, uint64) error) {
	var buf bytes.Buffer
	if err := gen(&buf, benchRows, 1); err != nil {
		b.Fatal(err)
	}
	recs, err := readString(b, FormatCSV, cols, buf.String(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "data.parquet")
	if err := os.WriteFile(path, mustWrite(b, FormatParquet, Schema(cols), recs...), 0o600); err != nil {
		b.Fatal(err)
	}
	releaseAll(recs)
	// Throughput is measured against the CSV size, so that the figures
	// compare (the Parquet file is smaller).
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := Open(path, FormatParquet, cols, Options{})
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
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkCSVImpressions(b *testing.B)     { benchCSV(b, impressionCols, writeImpressionsCSV) }
func BenchmarkCSVConversions(b *testing.B)     { benchCSV(b, conversionCols, writeConversionsCSV) }
func BenchmarkParquetImpressions(b *testing.B) { benchParquet(b, impressionCols, writeImpressionsCSV) }
func BenchmarkParquetConversions(b *testing.B) { benchParquet(b, conversionCols, writeConversionsCSV) }

// TestBoundedMemory streams a generated CSV through the reader and checks
// that the heap stays bounded, whatever the input size: the reader must
// not accumulate rows. The full run (about 400 MB of CSV) is skipped with
// -short; the short run streams 40 MB.
func TestBoundedMemory(t *testing.T) {
	rows := 5_000_000 // ≈ 400 MB
	if testing.Short() {
		rows = 500_000
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeImpressionsCSV(pw, rows, 7)) }()
	r, err := NewReader(pr, FormatCSV, impressionCols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	runtime.GC()
	var ms runtime.MemStats
	var peak uint64
	batches := 0
	for r.Next() {
		batches++
		if batches%4 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if r.Rows() != int64(rows) {
		t.Fatalf("read %d rows, want %d", r.Rows(), rows)
	}
	// A 64Ki-row batch of this shape is about 5 MB; the bound leaves room
	// for the previous batch awaiting collection and GC headroom.
	const bound = 64 << 20
	t.Logf("%d rows, %d MB of CSV, %d batches, peak heap in use %.1f MB", rows, r.BytesRead()>>20, batches, float64(peak)/(1<<20))
	if peak > bound {
		t.Errorf("peak heap in use %d MB exceeds %d MB", peak>>20, bound>>20)
	}
}

func BenchmarkJSONLImpressions(b *testing.B) {
	var buf bytes.Buffer
	if err := writeImpressionsCSV(&buf, benchRows, 1); err != nil {
		b.Fatal(err)
	}
	recs, err := readString(b, FormatCSV, impressionCols, buf.String(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	data := mustWrite(b, FormatJSONL, Schema(impressionCols), recs...)
	releaseAll(recs)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data), FormatJSONL, impressionCols, Options{})
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
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
