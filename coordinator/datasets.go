package coordinator

import (
	"crypto/hpke"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/contracts"
)

// maxIPCMessage bounds one Arrow IPC message inside an envelope.
const maxIPCMessage = 1 << 30

// DecryptDataset opens a dataset envelope with the coordinator's HPKE key
// and decodes the Arrow IPC stream inside. The envelope must be for this
// contract, this dataset and its schema digest; the stream's schema must be
// the dataset's schema exactly. Decryption verifies and decrypts segments
// in parallel on all cores. Nothing is written to disk. The caller releases
// the returned batches.
func DecryptDataset(ciphertext []byte, key hpke.PrivateKey, c *contracts.Contract, datasetID string) ([]arrow.RecordBatch, int64, error) {
	ds := c.Dataset(datasetID)
	if ds == nil {
		return nil, 0, fmt.Errorf("dataset %q is not in contract %s", datasetID, c.ID())
	}
	digest := ds.SchemaDigest()
	plain, _, err := envelope.Open(ciphertext, key, envelope.Expect{
		Kind: envelope.KindDataset, ContractID: c.ID(), ObjectID: datasetID, SchemaDigest: &digest,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("dataset %s: %w", datasetID, err)
	}
	return DecodeArrowStream(plain, ds.Schema(), "dataset "+datasetID)
}

// DecodeArrowStream decodes an Arrow IPC stream whose schema must equal
// want. The batches are views into data, not copies: data must stay
// unchanged while they are in use. what names the stream in errors.
// The stream comes from a provider: authenticated, but possibly hostile, so
// a panic in the Arrow decoder is turned into an error.
func DecodeArrowStream(data []byte, want *arrow.Schema, what string) (recs []arrow.RecordBatch, rows int64, err error) {
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
