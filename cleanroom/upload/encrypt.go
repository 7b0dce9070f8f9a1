package upload

import (
	"crypto/hpke"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/contracts"
)

// EncryptOptions adjust Encrypt.
type EncryptOptions struct {
	// SegmentSize is the envelope's segment size; 0 means
	// envelope.DefaultSegmentSize.
	SegmentSize int
	// Progress, if set, is called after each batch with the rows written
	// so far.
	Progress func(rows int64)
}

// Encrypted describes an envelope Encrypt wrote.
type Encrypted struct {
	Summary   envelope.Summary
	Rows      int64
	Statement Statement
	// Signed is the provider's signed upload statement, or nil when no
	// provider key was given.
	Signed []byte
}

// Encrypt streams a dataset's rows into an envelope sealed to the
// coordinator's key: the record batches are written as one Arrow IPC
// stream, sealed segment by segment as they come, so memory stays bounded
// whatever the input size. The batches must have exactly the dataset's
// schema (connectors readers guarantee it). With a provider identity it
// also signs the upload statement for the envelope.
//
// The coordinator key must come from a verified attestation: Encrypt does
// not check it.
func Encrypt(dst io.Writer, rr array.RecordReader, c *contracts.Contract, datasetID string,
	coordinator *cleanroom.PublicKey, provider *cleanroom.Identity, opts EncryptOptions) (*Encrypted, error) {
	ds := c.Dataset(datasetID)
	if ds == nil {
		return nil, fmt.Errorf("dataset %q is not in contract %s", datasetID, c.ID())
	}
	if provider != nil {
		p := c.Participant(ds.Provider)
		if p == nil || !p.PublicKey.Equal(provider.Public()) {
			return nil, fmt.Errorf("key %s is not the key of %q, the provider of dataset %s",
				provider.Public().Fingerprint().Short(), ds.Provider, datasetID)
		}
	}
	schema := ds.Schema()
	if !rr.Schema().Equal(schema) {
		return nil, fmt.Errorf("input schema %s does not match dataset %s's schema %s", rr.Schema(), datasetID, schema)
	}
	segment := opts.SegmentSize
	if segment == 0 {
		segment = envelope.DefaultSegmentSize
	}
	hdr := envelope.Header{
		Kind:         envelope.KindDataset,
		ContractID:   c.ID(),
		ObjectID:     datasetID,
		SchemaDigest: ds.SchemaDigest(),
		SegmentSize:  segment,
	}
	// The envelope seals, hashes and writes in its own goroutine while
	// writeIPC encodes the next batch.
	w, err := envelope.NewWriterWithOptions(dst, hdr, []hpke.PublicKey{coordinator.HPKE()}, envelope.WriterOptions{Background: true})
	if err != nil {
		return nil, err
	}
	rows, err := writeIPC(w, schema, rr, ds, opts.Progress)
	if err != nil {
		w.Abort()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	sum, err := w.Summary()
	if err != nil {
		return nil, err
	}
	st, err := FromEnvelope(sum, rows)
	if err != nil {
		return nil, err
	}
	out := &Encrypted{Summary: sum, Rows: rows, Statement: st}
	if provider != nil {
		if out.Signed, err = st.Sign(provider); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NullError reports an empty value in a column the contract declares
// nullable: false.
type NullError struct {
	Dataset string
	Column  string
	Row     int64 // 1-based, in input order
	Nulls   int64 // empty values of the column in the batch that held it
}

func (e *NullError) Error() string {
	return fmt.Sprintf("dataset %s, column %s: row %d is empty, but the contract declares the column nullable: false",
		e.Dataset, e.Column, e.Row)
}

// CheckNotNull returns a *NullError for the first empty value of rec (whose
// first row is row number first, 1-based) in a column of ds declared
// nullable: false.
func CheckNotNull(ds *contracts.Dataset, rec arrow.RecordBatch, first int64) error {
	for i, col := range ds.Columns {
		if !col.NotNull || i >= int(rec.NumCols()) {
			continue
		}
		arr := rec.Column(i)
		if arr.NullN() == 0 {
			continue
		}
		for j := 0; j < arr.Len(); j++ {
			if arr.IsNull(j) {
				return &NullError{Dataset: ds.ID, Column: col.Name, Row: first + int64(j), Nulls: int64(arr.NullN())}
			}
		}
	}
	return nil
}

// writeIPC writes every batch of rr to w as one Arrow IPC stream and
// returns the number of rows. A batch with an empty value in a column ds
// declares nullable: false stops it. Reading and writing overlap: one
// goroutine reads (and, for connectors readers, parses and checks) the next
// batch while this one checks, encodes and seals the last, so at most two
// batches are held besides the one being built.
func writeIPC(w io.Writer, schema *arrow.Schema, rr array.RecordReader, ds *contracts.Dataset, progress func(int64)) (int64, error) {
	batches := make(chan arrow.RecordBatch, 1)
	stop := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		defer close(batches)
		for {
			select {
			case <-stop:
				readDone <- nil
				return
			default:
			}
			if !rr.Next() {
				break
			}
			rec := rr.RecordBatch()
			rec.Retain()
			select {
			case batches <- rec:
			case <-stop:
				rec.Release()
				readDone <- nil
				return
			}
		}
		readDone <- rr.Err()
	}()
	// finish stops the reader and waits for it, releasing what it sent.
	finish := func() error {
		close(stop)
		for rec := range batches {
			rec.Release()
		}
		return <-readDone
	}
	iw := ipc.NewWriter(w, ipc.WithSchema(schema))
	var rows int64
	for rec := range batches {
		if err := CheckNotNull(ds, rec, rows+1); err != nil {
			rec.Release()
			finish()
			iw.Close()
			return 0, err
		}
		err := iw.Write(rec)
		n := rec.NumRows()
		rec.Release()
		if err != nil {
			finish()
			iw.Close()
			return 0, fmt.Errorf("writing Arrow stream: %w", err)
		}
		rows += n
		if progress != nil {
			progress(rows)
		}
	}
	if err := finish(); err != nil {
		iw.Close()
		return 0, err
	}
	if err := iw.Close(); err != nil {
		return 0, fmt.Errorf("writing Arrow stream: %w", err)
	}
	return rows, nil
}
