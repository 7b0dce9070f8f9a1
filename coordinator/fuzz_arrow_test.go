package coordinator

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/arrowipc"
	"cleanroom.dev/cleanroom/coordinator/internal/engine"
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
	schema := arrowSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, rows, err := arrowipc.Decode(data, schema, "dataset patients")
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

// FuzzCountArrowStream feeds arbitrary bytes as an upload's plaintext to
// the streaming check an upload goes through (countArrowStream) and to the
// decoder of runs (DecodeArrowStream): neither crashes, and they agree, so
// an upload that is accepted can be run, with the row count its upload
// statement was checked against.
func FuzzCountArrowStream(f *testing.F) {
	schema := arrowSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		upRows, upErr := arrowipc.Count(r, schema)
		if upErr == nil && r.Len() > 0 {
			upErr = errors.New("bytes after the stream")
		}
		recs, runRows, runErr := arrowipc.Decode(data, schema, "dataset patients")
		for _, rec := range recs {
			rec.Release()
		}
		if (upErr == nil) != (runErr == nil) || (upErr == nil && upRows != runRows) {
			t.Fatalf("the upload check says %d rows, %v; the run's decoder %d rows, %v", upRows, upErr, runRows, runErr)
		}
	})
}

// arrowSeeds adds the seeds of the Arrow stream targets: streams of the
// all-types dataset, cut and extended, and what FuzzDecodeArrowStream
// found. It returns the dataset's schema.
func arrowSeeds(f *testing.F) *arrow.Schema {
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
	found, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecodeArrowStream", "*"))
	for _, path := range found {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "go test fuzz v1\n[]byte(")
		v, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if !ok || err != nil {
			f.Fatalf("%s is not a one-value []byte corpus file", path)
		}
		f.Add([]byte(v))
	}
	return schema
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
	res, err := sess.Run(ctx, fuzzQuery, engine.Policy{Output: contracts.Output{Mode: contracts.ModeAggregate, MaxRows: 1}})
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
