package coordinator

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
)

// allTypesContract returns a contract whose one dataset has a column of
// every type, with the provider's identity.
func allTypesContract(t testing.TB) (*contracts.Contract, *cleanroom.Identity) {
	t.Helper()
	provider, _ := cleanroom.GenerateIdentity()
	recipient, _ := cleanroom.GenerateIdentity()
	text := fmt.Sprintf(`version: 1
name: all-types
expires_at: 2099-01-01T00:00:00Z
participants:
  - {id: hospital, roles: [data_provider, algorithm_provider], public_key: %q}
  - {id: pharma, roles: [result_recipient], public_key: %q}
datasets:
  - id: patients
    provider: hospital
    columns:
      - {name: patient_id, type: string}
      - {name: enrolled, type: bool}
      - {name: age, type: int32}
      - {name: visits, type: int64}
      - {name: score, type: float64}
      - {name: born, type: date}
      - {name: seen_at, type: timestamp}
      - {name: cost, type: "decimal(12,2)"}
algorithm: {provider: hospital, language: duckdb-sql, sha256: %q}
output: {recipients: [pharma], max_rows: 100, max_runs: 1}
coordinator: {platform: sev-snp, measurements: [%q]}
`, provider.Public(), recipient.Public(), strings.Repeat("00", 32), strings.Repeat("11", 48))
	c, err := contracts.Parse([]byte(text), contracts.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c, provider
}

// sampleBatch builds rows with distinctive values, including nulls and
// non-ASCII text.
func sampleBatch(t testing.TB, schema *arrow.Schema, rows int) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	base := time.Date(2026, 3, 1, 8, 30, 0, 123456000, time.UTC)
	for i := range rows {
		null := i%7 == 3
		f := b.Fields()
		f[0].(*array.StringBuilder).Append(fmt.Sprintf("PATIENT-ZEBRA-%05d-é", i))
		if null {
			f[1].AppendNull()
			f[2].AppendNull()
		} else {
			f[1].(*array.BooleanBuilder).Append(i%2 == 0)
			f[2].(*array.Int32Builder).Append(int32(20 + i%60))
		}
		f[3].(*array.Int64Builder).Append(int64(i) * 1_000_003)
		f[4].(*array.Float64Builder).Append(float64(i) * 0.125)
		f[5].(*array.Date32Builder).Append(arrow.Date32FromTime(base.AddDate(-30, 0, i)))
		f[6].(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(i) * time.Minute).UnixMicro()))
		f[7].(*array.Decimal128Builder).Append(decimal128.FromI64(int64(i)*100 + 99))
	}
	return b.NewRecordBatch()
}

func tableOf(t testing.TB, schema *arrow.Schema, recs []arrow.RecordBatch) arrow.Table {
	t.Helper()
	return array.NewTableFromRecords(schema, recs)
}

// TestEveryInputFormatDecryptsToTheSameData is the data path of a provider
// and the coordinator: the same rows as CSV, Parquet, Arrow file, Arrow
// stream and JSON lines are converted and sealed on the provider's side,
// then opened by the coordinator's code, and must give identical Arrow
// data; the envelopes hold none of the input's values.
func TestEveryInputFormatDecryptsToTheSameData(t *testing.T) {
	c, provider := allTypesContract(t)
	coord, _ := cleanroom.GenerateIdentity()
	ds := c.Dataset("patients")
	schema := ds.Schema()
	want := sampleBatch(t, schema, 500)
	defer want.Release()
	dir := t.TempDir()

	formats := map[string]connectors.Format{}
	for _, name := range []string{"csv", "parquet", "arrow", "arrows", "jsonl"} {
		f, err := connectors.ParseFormat(name)
		if err != nil {
			t.Fatal(err)
		}
		formats[name] = f
	}
	for name, format := range formats {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "patients."+name)
			var buf bytes.Buffer
			rr, _ := array.NewRecordReader(schema, []arrow.RecordBatch{want})
			if _, err := connectors.Write(&buf, format, rr, connectors.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			in, err := connectors.Open(path, connectors.FormatAuto, ds.Columns, connectors.Options{BatchSize: 64})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Release()
			var sealed bytes.Buffer
			enc, err := upload.Encrypt(&sealed, in, c, "patients", coord.Public(), provider, upload.EncryptOptions{SegmentSize: 4096})
			if err != nil {
				t.Fatal(err)
			}
			if enc.Rows != 500 || len(enc.Signed) == 0 {
				t.Fatalf("rows %d, statement %d bytes", enc.Rows, len(enc.Signed))
			}
			ct := sealed.Bytes()
			for _, needle := range []string{"PATIENT-ZEBRA", "ZEBRA-00042", "1000003", "2026-03-01"} {
				if bytes.Contains(ct, []byte(needle)) {
					t.Fatalf("ciphertext contains %q", needle)
				}
			}
			if _, err := upload.Verify(enc.Signed, provider.Public(), upload.Expect{ContractID: c.ID(), DatasetID: "patients"}); err != nil {
				t.Fatalf("upload statement: %v", err)
			}
			recs, rows, err := decryptDataset(ct, coord.HPKE(), c, "patients")
			if err != nil {
				t.Fatal(err)
			}
			if rows != 500 {
				t.Fatalf("decrypted %d rows", rows)
			}
			got := tableOf(t, schema, recs)
			exp := tableOf(t, schema, []arrow.RecordBatch{want})
			if !array.TableEqual(got, exp) {
				t.Fatalf("decrypted data differs from the input")
			}
			// Another dataset id, another key: refused.
			if _, _, err := decryptDataset(ct, provider.HPKE(), c, "patients"); err == nil {
				t.Fatal("opened with the wrong key")
			}
		})
	}
}
