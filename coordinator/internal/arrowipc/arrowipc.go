// Package arrowipc decodes Arrow IPC streams that come from a data
// provider: authenticated by their envelope, but possibly hostile. Two
// functions: Count checks a stream as it arrives (an upload) and returns
// its row count; Decode decodes a stream held in memory (a run) into record
// batches that point into it. Both check every message's metadata before the
// Arrow decoder reads it (see checkIPCMetadata), refuse any schema but the
// contract's, turn a panic of the decoder into an error, and agree on what
// they accept.
package arrowipc

import (
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// maxIPCMessage bounds one Arrow IPC message inside an envelope.
const maxIPCMessage = 1 << 30

// Count reads an Arrow IPC stream from r up to its end-of-stream
// marker, checking that its schema is want and every batch decodes, and
// returns its row count. It reads nothing after the marker. The columns
// whose indices notNull lists must hold no null (a contract column declared
// nullable: false); each batch's null count, in its metadata, says so.
func Count(r io.Reader, want *arrow.Schema, notNull ...int) (rows int64, err error) {
	return Each(r, want, nil, notNull...)
}

// Each is Count that also hands every batch, in order, to fn (when not
// nil), which must not keep it past its return; an error from fn stops the
// reading and is returned as it is.
func Each(r io.Reader, want *arrow.Schema, fn func(arrow.RecordBatch) error, notNull ...int) (rows int64, err error) {
	defer func() {
		if p := recover(); p != nil {
			rows, err = 0, fmt.Errorf("malformed Arrow stream: %v", p)
		}
	}()
	mr := newCheckedReader(r, 1<<20, maxIPCMessage)
	defer mr.Release()
	ir, err := ipc.NewReaderFromMessageReader(mr)
	if err != nil {
		return 0, fmt.Errorf("the plaintext is not an Arrow IPC stream: %w", err)
	}
	defer ir.Release()
	if !ir.Schema().Equal(want) {
		return 0, fmt.Errorf("the Arrow schema %s is not the contract's %s", ir.Schema(), want)
	}
	for ir.Next() {
		rec := ir.RecordBatch()
		for _, i := range notNull {
			if i < int(rec.NumCols()) && rec.Column(i).NullN() > 0 {
				return 0, fmt.Errorf("column %s has %d empty values in the batch of rows %d to %d, but the contract declares it nullable: false",
					want.Field(i).Name, rec.Column(i).NullN(), rows+1, rows+rec.NumRows())
			}
		}
		rows += rec.NumRows()
		if fn != nil {
			if err := fn(rec); err != nil {
				return 0, err
			}
		}
	}
	if err := ir.Err(); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("damaged Arrow stream: %w", err)
	}
	return rows, nil
}

// Decode decodes an Arrow IPC stream whose schema must equal
// want. The batches are views into data, not copies: data must stay
// unchanged while they are in use. what names the stream in errors.
// The stream comes from a provider: authenticated, but possibly hostile, so
// a panic in the Arrow decoder is turned into an error.
func Decode(data []byte, want *arrow.Schema, what string) (recs []arrow.RecordBatch, rows int64, err error) {
	defer func() {
		if p := recover(); p != nil {
			for _, rec := range recs {
				rec.Release()
			}
			recs, rows, err = nil, 0, fmt.Errorf("%s: malformed Arrow stream: %v", what, p)
		}
	}()
	mr := newViewReader(data, 1<<20, maxIPCMessage)
	defer mr.Release()
	r, err := ipc.NewReaderFromMessageReader(mr)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: not an Arrow IPC stream: %w", what, err)
	}
	defer r.Release()
	if !r.Schema().Equal(want) {
		return nil, 0, fmt.Errorf("%s: Arrow schema %s is not the contract's %s", what, r.Schema(), want)
	}
	release := func() {
		for _, rec := range recs {
			rec.Release()
		}
	}
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
		rows += rec.NumRows()
	}
	if err := r.Err(); err != nil && !errors.Is(err, io.EOF) {
		release()
		return nil, 0, fmt.Errorf("%s: damaged Arrow stream: %w", what, err)
	}
	if n := mr.rest(); n > 0 {
		release()
		return nil, 0, fmt.Errorf("%s: %d bytes follow the end of the Arrow stream", what, n)
	}
	return recs, rows, nil
}
