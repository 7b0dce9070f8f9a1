package coordinator

import (
	"bytes"
	"crypto/hpke"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"

	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/arrowipc"
)

// decryptDataset (for the tests) opens a provider's dataset envelope with the coordinator's HPKE key
// and decodes the Arrow IPC stream inside, by the same path a run takes
// (openDataset). The envelope must be for this contract, this dataset and
// its schema digest; the stream's schema must be the dataset's schema
// exactly. Decryption verifies and decrypts segments in parallel on all
// cores. Nothing is written to disk. The caller releases the returned
// batches.
func decryptDataset(ciphertext []byte, key hpke.PrivateKey, c *contracts.Contract, datasetID string) ([]arrow.RecordBatch, int64, error) {
	heap := func(n int64) ([]byte, func(), error) { return make([]byte, n), func() {}, nil }
	recs, rows, _, err := openDataset(bytes.NewReader(ciphertext), int64(len(ciphertext)), key, c, datasetID, "", heap)
	return recs, rows, err
}

// openDataset authenticates and decrypts a dataset envelope of size bytes
// read from r, into memory from alloc, and decodes the Arrow stream inside;
// the batches point into that memory, which the returned function frees.
// With wantHeader set, the header must hash to it (the digest logged at
// upload): the header is checked before anything is decrypted, and the
// header the segments were then authenticated under is checked again, so a
// file that changes in between is refused too. Workers read each segment
// into a private buffer before checking and decrypting it, so bytes that
// change in r meanwhile cannot reach the plaintext.
func openDataset(r io.ReaderAt, size int64, key hpke.PrivateKey, c *contracts.Contract, datasetID, wantHeader string,
	alloc func(int64) ([]byte, func(), error)) ([]arrow.RecordBatch, int64, func(), error) {
	ds := c.Dataset(datasetID)
	if ds == nil {
		return nil, 0, nil, fmt.Errorf("dataset %q is not in contract %s", datasetID, c.ID())
	}
	hdr, err := envelope.ParseHeader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, 0, nil, fmt.Errorf("dataset %s: %w", datasetID, err)
	}
	replaced := func(h *envelope.Header) error {
		if got := fmt.Sprintf("%x", h.SHA256()); wantHeader != "" && got != wantHeader {
			return fmt.Errorf("dataset %s: the stored envelope's header digest is %s, the log records %s: the envelope was replaced on disk", datasetID, got, wantHeader)
		}
		return nil
	}
	if err := replaced(hdr); err != nil {
		return nil, 0, nil, err
	}
	layout, err := envelope.BodyLayout(size-int64(hdr.Len()), hdr.SegmentSize, hdr.Len())
	if err != nil {
		return nil, 0, nil, fmt.Errorf("dataset %s: %w", datasetID, err)
	}
	plain, free, err := alloc(layout.PlaintextSize)
	if err != nil {
		return nil, 0, nil, err
	}
	schemaDigest := ds.SchemaDigest()
	plain, hdr, err = envelope.OpenFile(r, size, key, envelope.Expect{
		Kind: envelope.KindDataset, ContractID: c.ID(), ObjectID: datasetID, SchemaDigest: &schemaDigest,
	}, envelope.OpenOptions{Dst: plain})
	if err != nil {
		free()
		return nil, 0, nil, fmt.Errorf("dataset %s: %w", datasetID, err)
	}
	if err := replaced(hdr); err != nil {
		clear(plain)
		free()
		return nil, 0, nil, err
	}
	recs, rows, err := arrowipc.Decode(plain, ds.Schema(), "dataset "+datasetID)
	if err != nil {
		free()
		return nil, 0, nil, err
	}
	return recs, rows, free, nil
}
