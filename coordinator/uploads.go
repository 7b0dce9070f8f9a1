package coordinator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/arrowipc"
	"cleanroom.dev/cleanroom/coordinator/internal/blobs"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
)

// UploadDataset accepts a dataset envelope from the dataset's provider.
// The body streams into a blob and, at the same time, through an in-memory
// verifier that authenticates and decrypts every segment and reads the
// Arrow stream inside, checking its schema and counting its rows; the
// plaintext never leaves memory. statement is called after the body has
// been read and returns the provider's signed upload statement (sent as an
// HTTP trailer). Only when everything verifies is the blob made durable and
// the upload logged; otherwise nothing remains.
func (c *Coordinator) UploadDataset(ctx context.Context, actor ed25519.PublicKey, cid contracts.ID, datasetID string,
	body io.Reader, statement func() ([]byte, error)) (*api.UploadReceipt, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	ct := sc.Contract
	ds := ct.Dataset(datasetID)
	if ds == nil {
		return nil, notFound("contract %s has no dataset %q", cid, datasetID)
	}
	if err := requireRole(p, "upload datasets", contracts.RoleDataProvider); err != nil {
		return nil, err
	}
	if ds.Provider != p.ID {
		return nil, forbidden("dataset %s is provided by %q, not by %q", datasetID, ds.Provider, p.ID)
	}
	if err := c.checkNotExpired(ct); err != nil {
		return nil, err
	}
	if c.uploaded(cid, datasetID) {
		return nil, conflict("dataset %s of contract %s is already uploaded; datasets cannot be replaced", datasetID, cid)
	}

	w, err := c.blobs.Create(c.cfg.MaxUploadBytes)
	if err != nil {
		return nil, storageError(err, "storing the upload")
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	rows, header, err := c.receiveEnvelope(ctx, body, w, ct, ds)
	if err != nil {
		return nil, err
	}
	stmt, err := statement()
	if err != nil {
		return nil, badRequest("no upload statement: %v", err).
			withHint("send the signed upload statement as the Cleanroom-Upload-Statement trailer (cleanroom dataset upload does)")
	}
	digest := w.Digest()
	schema := ds.SchemaDigest()
	st, err := upload.Verify(stmt, p.PublicKey, upload.Expect{ContractID: cid, DatasetID: datasetID, CiphertextSHA256: (*[32]byte)(&digest), SchemaDigest: &schema})
	if err != nil {
		return nil, unprocessable(err, "upload statement for dataset %s: %v", datasetID, err)
	}
	if st.RowCount != rows {
		return nil, unprocessable(nil, "upload statement for dataset %s claims %d rows; the envelope holds %d", datasetID, st.RowCount, rows)
	}
	if st.CiphertextSize != w.Size() {
		return nil, unprocessable(nil, "upload statement for dataset %s claims %d bytes; %d were received", datasetID, st.CiphertextSize, w.Size())
	}

	unlock := c.locks.lock(cid.String())
	defer unlock()
	if c.uploaded(cid, datasetID) {
		return nil, conflict("dataset %s of contract %s is already uploaded; datasets cannot be replaced", datasetID, cid)
	}
	if _, err := w.Commit(); err != nil {
		return nil, storageError(err, "storing the upload")
	}
	committed = true
	fault("upload/after-blob")
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeDatasetUploaded, Contract: cid.String(),
		Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		DatasetUploaded: &events.DatasetUploaded{
			Dataset:         datasetID,
			Ciphertext:      events.Blob{SHA256: digest.String(), Size: w.Size()},
			HeaderSHA256:    fmt.Sprintf("%x", header),
			Rows:            rows,
			SchemaDigest:    fmt.Sprintf("%x", schema),
			UploadStatement: stmt,
		},
	})
	if err != nil {
		return nil, err
	}
	c.metrics.add("cleanroomd_upload_bytes_total", w.Size())
	c.logger.Info("dataset uploaded", "contract", cid.String(), "dataset", datasetID, "by", p.ID, "rows", rows, "bytes", w.Size(), "log_index", idx)
	return &api.UploadReceipt{Dataset: datasetID, CiphertextSHA256: digest.String(), Rows: rows, LogIndex: idx}, nil
}

func (c *Coordinator) uploaded(cid contracts.ID, datasetID string) bool {
	var ok bool
	c.state.View(func(v *state.Snapshot) {
		if sc := v.Contract(cid); sc != nil {
			_, ok = sc.Datasets[datasetID]
		}
	})
	return ok
}

// receiveEnvelope copies body into the blob writer while a verifier
// goroutine authenticates, decrypts and decodes the same bytes from a pipe.
// It returns the number of rows once both are done.
// It returns the number of rows and the SHA-256 of the envelope's header.
func (c *Coordinator) receiveEnvelope(ctx context.Context, body io.Reader, w *blobs.Writer, ct *contracts.Contract, ds *contracts.Dataset) (int64, [32]byte, error) {
	pr, pw := io.Pipe()
	type outcome struct {
		rows   int64
		header [32]byte
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		rows, header, err := c.verifyEnvelopeStream(pr, ct, ds)
		pr.CloseWithError(errVerifierDone) // unblock the copier if the verifier stopped early
		done <- outcome{rows, header, err}
	}()
	buf := make([]byte, 256<<10)
	var copyErr error
	for {
		n, rerr := body.Read(buf)
		if n > 0 && w.Size() > 0 {
			fault("upload/mid-body")
		}
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				copyErr = err
				break
			}
			if _, err := pw.Write(buf[:n]); err != nil {
				break // the verifier stopped: its error explains why
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			copyErr = rerr
			break
		}
		if err := ctx.Err(); err != nil {
			copyErr = err
			break
		}
	}
	if copyErr != nil {
		pw.CloseWithError(copyErr)
	} else {
		pw.Close()
	}
	out := <-done
	switch {
	case errors.Is(copyErr, syscall.ENOSPC) || errors.Is(copyErr, syscall.EDQUOT):
		return 0, out.header, storageError(copyErr, "storing the upload of dataset "+ds.ID)
	case errors.Is(copyErr, blobs.ErrTooLarge):
		return 0, out.header, newError(http.StatusRequestEntityTooLarge, "too_large", copyErr,
			"dataset %s is larger than this coordinator's upload limit of %d bytes", ds.ID, c.cfg.MaxUploadBytes)
	case copyErr != nil:
		return 0, out.header, badRequest("reading the upload of dataset %s: %v", ds.ID, copyErr)
	case out.err != nil:
		return 0, out.header, unprocessable(out.err, "envelope for dataset %s refused: %v", ds.ID, out.err)
	}
	return out.rows, out.header, nil
}

var errVerifierDone = errors.New("envelope verifier finished")

// verifyEnvelopeStream authenticates and decrypts an envelope stream for
// dataset ds and decodes the Arrow stream inside, returning its row count.
// It reads r to its end so the last segment and the absence of trailing
// bytes are checked.
//
// The Arrow stream comes from the provider and may be hostile: a panic in
// the Arrow decoder is turned into a refusal.
func (c *Coordinator) verifyEnvelopeStream(r io.Reader, ct *contracts.Contract, ds *contracts.Dataset) (rows int64, header [32]byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			rows, err = 0, fmt.Errorf("malformed Arrow stream: %v", p)
		}
	}()
	schemaDigest := ds.SchemaDigest()
	er, err := envelope.NewReader(r, c.tee.Identity().HPKE(), envelope.Expect{
		Kind: envelope.KindDataset, ContractID: ct.ID(), ObjectID: ds.ID, SchemaDigest: &schemaDigest,
	})
	if err != nil {
		return 0, header, err
	}
	header = er.Header().SHA256()
	if rows, err = arrowipc.Count(er, ds.Schema()); err != nil {
		// A damaged envelope surfaces through the Arrow reader: report it
		// as what it is, not as bad Arrow data.
		for _, envErr := range []error{envelope.ErrAuthentication, envelope.ErrTruncated, envelope.ErrMalformed} {
			if errors.Is(err, envErr) {
				var inner error = err
				for u := errors.Unwrap(inner); u != nil && errors.Is(u, envErr); u = errors.Unwrap(inner) {
					inner = u
				}
				return 0, header, inner
			}
		}
		return 0, header, err
	}
	extra, err := io.Copy(io.Discard, er)
	if err != nil {
		return 0, header, err
	}
	if extra > 0 {
		return 0, header, fmt.Errorf("%d bytes follow the end of the Arrow stream", extra)
	}
	return rows, header, nil
}
