package coordinator

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/engine"
)

// fuzzQuery reads every column of the all-types dataset.
const fuzzQuery = `SELECT count(*) AS n, count(DISTINCT patient_id) AS ids, sum(length(patient_id)) AS chars,
	count(enrolled) AS enrolled, sum(age) AS ages, sum(visits) AS visits, sum(score) AS score,
	min(born) AS born, max(seen_at) AS seen, sum(cost) AS cost FROM patients`

// FuzzDecodeArrowStream feeds arbitrary bytes as the decrypted plaintext of
// a dataset envelope: the Arrow IPC stream a provider sealed, authenticated
// but possibly hostile. DecodeArrowStream never panics; what it accepts has
// the contract's schema and the row count it reports; and the engine either
// refuses those batches at its input check or loads them and runs a query
// over every column without crashing, counting the same rows.
func FuzzDecodeArrowStream(f *testing.F) {
	c, _ := allTypesContract(f)
	schema := c.Datasets[0].Schema()
	stream := func(batches ...arrow.RecordBatch) []byte {
		var buf bytes.Buffer
		w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
		for _, b := range batches {
			if err := w.Write(b); err != nil {
				f.Fatal(err)
			}
			b.Release()
		}
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		return buf.Bytes()
	}
	good := stream(sampleBatch(f, schema, 9), sampleBatch(f, schema, 2))
	f.Add(good)
	f.Add(stream())
	f.Add(stream(sampleBatch(f, schema, 0)))
	f.Add(good[:len(good)-8])
	f.Add(append(bytes.Clone(good), 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, rows, err := DecodeArrowStream(data, schema, "dataset patients")
		if err != nil {
			return
		}
		defer func() {
			for _, r := range recs {
				r.Release()
			}
		}()
		var n int64
		for _, r := range recs {
			if !r.Schema().Equal(schema) {
				t.Fatalf("accepted a batch of schema %s", r.Schema())
			}
			n += r.NumRows()
		}
		if n != rows {
			t.Fatalf("reported %d rows; the batches hold %d", rows, n)
		}
		loadAndQuery(t, schema, recs, rows)
	})
}

// loadAndQuery loads recs into a fresh engine session and runs fuzzQuery.
func loadAndQuery(t *testing.T, schema *arrow.Schema, recs []arrow.RecordBatch, rows int64) {
	sess, err := engine.New(engine.Config{MemoryLimit: 64 << 20, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	rr, err := array.NewRecordReader(schema, recs)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	ctx := context.Background()
	if err := sess.LoadTable(ctx, "patients", schema, rr); err != nil {
		var re *engine.RefusalError
		if !errors.As(err, &re) || re.Layer != engine.LayerInput {
			t.Fatalf("load refused other than by the input check: %v", err)
		}
		return
	}
	res, err := sess.Run(ctx, fuzzQuery, contracts.Output{MaxRows: 1})
	if err != nil {
		return // e.g. an overflowing sum: refused, not crashed
	}
	defer res.Release()
	if res.Rows != 1 || len(res.Batches) == 0 {
		t.Fatalf("the aggregate gave %d rows", res.Rows)
	}
	col, ok := res.Batches[0].Column(0).(*array.Int64)
	if !ok || col.Value(0) != rows {
		t.Fatalf("count(*) = %v over %d decoded rows", res.Batches[0].Column(0), rows)
	}
}
