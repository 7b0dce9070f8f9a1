package coordinator_test

import (
	"context"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// impressionBatches yields impressions (user_id, campaign) batches until
// about size bytes of Arrow data have been produced.
func impressionBatches(schema *arrow.Schema, size int64) iter.Seq2[arrow.RecordBatch, error] {
	return func(yield func(arrow.RecordBatch, error) bool) {
		var produced int64
		row := 0
		for produced < size {
			b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
			users := b.Field(0).(*array.StringBuilder)
			campaigns := b.Field(1).(*array.StringBuilder)
			for range 65536 {
				u := "user-" + strconv.Itoa(row*7919%50_000_000)
				c := "campaign-" + strconv.Itoa(row%97)
				users.Append(u)
				campaigns.Append(c)
				produced += int64(len(u) + len(c) + 8)
				row++
			}
			rec := b.NewRecordBatch()
			b.Release()
			ok := yield(rec, nil)
			rec.Release()
			if !ok {
				return
			}
		}
	}
}

// BenchmarkUpload measures dataset upload throughput over attested TLS on
// loopback: the coordinator receives the envelope, authenticates and
// decrypts every segment and decodes the Arrow stream in memory while it
// writes the ciphertext to a durable blob. The envelope (1 GiB by default;
// CLEANROOM_BENCH_UPLOAD_MB sets it) is made once beforehand.
func BenchmarkUpload(b *testing.B) {
	mb := int64(1024)
	if v := os.Getenv("CLEANROOM_BENCH_UPLOAD_MB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		mb = n
	}
	dir := b.TempDir()
	srv := testenv.Start(b, filepath.Join(dir, "coord"), coordinator.Config{MaxUploadBytes: 64 << 30})
	sc := testenv.New(b, srv, testenv.AdSpec(b, "bench-0", 1))
	schema := sc.Contract.Dataset("impressions").Schema()
	path := filepath.Join(dir, "impressions.env")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	rr := array.ReaderFromIter(schema, impressionBatches(schema, mb<<20))
	enc, err := upload.Encrypt(f, rr, sc.Contract, "impressions", srv.Coord.TEE().PublicKey(), sc.Party("publisher").Identity, upload.EncryptOptions{})
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.SetBytes(enc.Summary.Size)
	b.ReportMetric(float64(enc.Rows), "rows")
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		// Datasets are immutable: each upload goes to a fresh contract
		// with the same parties, sealed the same way.
		if i > 0 {
			spec := *sc.Spec
			spec.Name = fmt.Sprintf("bench-%d", i)
			sc = testenv.New(b, srv, &spec)
			f, _ = os.Create(path)
			rr = array.ReaderFromIter(schema, impressionBatches(schema, mb<<20))
			if enc, err = upload.Encrypt(f, rr, sc.Contract, "impressions", srv.Coord.TEE().PublicKey(), sc.Party("publisher").Identity, upload.EncryptOptions{}); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		sc.Submit(b, "publisher")
		body, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		_, err = sc.Client(b, "publisher").UploadEnvelope(context.Background(), "impressions", body,
			func() ([]byte, error) { return enc.Signed, nil })
		b.StopTimer()
		body.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}
