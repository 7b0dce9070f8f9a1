package coordinator

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
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
	"cleanroom.dev/cleanroom/coordinator/internal/stored"
)

// UploadDataset accepts a dataset envelope from the dataset's provider.
// The body streams through an in-memory verifier that authenticates and
// decrypts every segment and reads the Arrow stream inside, checking its
// schema and counting its rows, while the same plaintext is re-encrypted,
// segment by segment, into a new envelope under a data key drawn inside the
// coordinator (rekeyEnvelope): that envelope, not the provider's, is the
// blob that runs read. The plaintext never leaves memory. statement is
// called after the body has been read and returns the provider's signed
// upload statement (sent as an HTTP trailer), which must name the digest of
// the envelope and of its header as received. Only when everything
// verifies is the blob made durable and the upload logged; otherwise
// nothing remains.
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
	// A dataset already uploaded is received all the same, into no blob,
	// so that a provider's retry of the same content is told so
	// (sameUpload) rather than refused.
	present := c.uploadedDataset(cid, datasetID)
	var sink io.Writer = io.Discard
	var plain hash.Hash
	committed := false
	var w *blobs.Writer
	if present == nil {
		// The stored envelope is at most a header and one tag per
		// segment larger than the plaintext, which is smaller than what
		// was received: the limit on the body bounds it.
		if w, err = c.blobs.Create(0); err != nil {
			return nil, storageError(err, "storing the upload")
		}
		defer func() {
			if !committed {
				w.Abort()
			}
		}()
		sink = w
	} else {
		plain = sha256.New()
	}
	got, err := c.receiveEnvelope(ctx, body, sink, ct, ds, plain)
	if err != nil {
		return nil, err
	}
	stmt, err := statement()
	if err != nil {
		return nil, badRequest("no upload statement: %v", err).
			withHint("send the signed upload statement as the Cleanroom-Upload-Statement trailer (cleanroom dataset upload does)")
	}
	schema := ds.SchemaDigest()
	st, err := upload.Verify(stmt, p.PublicKey, upload.Expect{ContractID: cid, DatasetID: datasetID,
		CiphertextSHA256: &got.digest, HeaderSHA256: &got.header, SchemaDigest: &schema})
	if err != nil {
		return nil, unprocessable(err, "upload statement for dataset %s: %v", datasetID, err)
	}
	if st.RowCount != got.rows {
		return nil, unprocessable(nil, "upload statement for dataset %s claims %d rows; the envelope holds %d", datasetID, st.RowCount, got.rows)
	}
	if st.CiphertextSize != got.size {
		return nil, unprocessable(nil, "upload statement for dataset %s claims %d bytes; %d were received", datasetID, st.CiphertextSize, got.size)
	}

	if present != nil {
		return c.sameUpload(ct, ds, present, got)
	}
	unlock := c.locks.lock(cid.String())
	defer unlock()
	if c.uploaded(cid, datasetID) {
		// Uploaded meanwhile by a concurrent request: this one is a retry,
		// told apart only by re-reading its body, which was not hashed.
		return nil, conflict("dataset %s of contract %s was uploaded while this upload was in progress; datasets cannot be replaced", datasetID, cid).
			withHint("send it again: the same content is then acknowledged as already present")
	}
	stored, err := w.Commit()
	if err != nil {
		return nil, storageError(err, "storing the upload")
	}
	committed = true
	fault("upload/after-blob")
	digest := blobs.Digest(got.digest)
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeDatasetUploaded, Contract: cid.String(),
		Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		DatasetUploaded: &events.DatasetUploaded{
			Dataset:            datasetID,
			Ciphertext:         events.Blob{SHA256: digest.String(), Size: got.size},
			HeaderSHA256:       fmt.Sprintf("%x", got.header),
			Rows:               got.rows,
			SchemaDigest:       fmt.Sprintf("%x", schema),
			UploadStatement:    stmt,
			Stored:             events.Blob{SHA256: stored.String(), Size: w.Size()},
			StoredHeaderSHA256: fmt.Sprintf("%x", got.storedHeader),
		},
	})
	if err != nil {
		return nil, err
	}
	c.metrics.add("cleanroomd_upload_bytes_total", got.size)
	c.logger.Info("dataset uploaded", "contract", cid.String(), "dataset", datasetID, "by", p.ID, "rows", got.rows, "bytes", got.size,
		"stored", stored.String(), "log_index", idx)
	return &api.UploadReceipt{Dataset: datasetID, CiphertextSHA256: digest.String(), Rows: got.rows, LogIndex: idx}, nil
}

// sameUpload answers an upload of a dataset that is already uploaded (by
// present): content identical to the first upload's — the same provider
// envelope, or one whose rows, laid out as the coordinator stores them
// (coordinator/internal/stored), are the stored envelope's plaintext byte
// for byte — is acknowledged with the first upload's
// receipt and Already set, and nothing is stored or logged; anything else
// is refused. Only the provider, who sent both, learns whether they are
// equal.
func (c *Coordinator) sameUpload(ct *contracts.Contract, ds *contracts.Dataset, present *state.Dataset, got received) (*api.UploadReceipt, error) {
	up := present.Upload
	rec := &api.UploadReceipt{Dataset: ds.ID, CiphertextSHA256: up.Ciphertext.SHA256, Rows: up.Rows, LogIndex: present.Index, Already: true}
	if fmt.Sprintf("%x", got.digest) == up.Ciphertext.SHA256 {
		return rec, nil
	}
	refused := conflict("dataset %s of contract %s is already uploaded, with other content (log index %d); datasets cannot be replaced", ds.ID, ct.ID(), present.Index).
		withHint("a dataset is uploaded once; the same content again is acknowledged as already present")
	if got.rows != up.Rows {
		return nil, refused
	}
	storedPlain, err := c.storedPlaintextDigest(ct, ds, up)
	if err != nil {
		return nil, internal(err, "comparing with the stored upload of dataset %s: %v", ds.ID, err)
	}
	if storedPlain != got.plain {
		return nil, refused
	}
	c.logger.Info("dataset upload repeated with the same content; nothing changed", "contract", ct.ID().String(), "dataset", ds.ID, "log_index", present.Index)
	return rec, nil
}

// storedPlaintextDigest decrypts the envelope stored for an upload,
// segment by segment (its header must be the one logged), and returns
// the SHA-256 of its plaintext.
func (c *Coordinator) storedPlaintextDigest(ct *contracts.Contract, ds *contracts.Dataset, up *events.DatasetUploaded) ([32]byte, error) {
	d, err := blobs.ParseDigest(up.Stored.SHA256)
	if err != nil {
		return [32]byte{}, err
	}
	f, err := c.blobs.OpenSized(d, up.Stored.Size)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	schema := ds.SchemaDigest()
	er, err := envelope.NewReader(bufio.NewReaderSize(f, 1<<20), c.tee.Identity().HPKE(), envelope.Expect{
		Kind: envelope.KindDataset, ContractID: ct.ID(), ObjectID: ds.ID, SchemaDigest: &schema,
	})
	if err != nil {
		return [32]byte{}, err
	}
	if got := fmt.Sprintf("%x", er.Header().SHA256()); got != up.StoredHeaderSHA256 {
		return [32]byte{}, fmt.Errorf("the stored envelope's header digest is %s, the log records %s", got, up.StoredHeaderSHA256)
	}
	h := sha256.New()
	if _, err := io.Copy(h, er); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

// uploadedDataset returns a dataset's upload, or nil.
func (c *Coordinator) uploadedDataset(cid contracts.ID, datasetID string) *state.Dataset {
	var d *state.Dataset
	c.state.View(func(v *state.Snapshot) {
		if sc := v.Contract(cid); sc != nil {
			d = sc.Datasets[datasetID]
		}
	})
	return d
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

// received describes a provider's envelope that verified, and the
// envelope stored in its place.
type received struct {
	rows         int64
	size         int64    // bytes of the provider's envelope
	digest       [32]byte // SHA-256 of the provider's envelope
	header       [32]byte // SHA-256 of its header
	storedHeader [32]byte // SHA-256 of the stored envelope's header
	plain        [32]byte // SHA-256 of the plaintext, when asked for
}

// receiveEnvelope reads the provider's envelope from body, hashing it and
// enforcing the upload limit, while a verifier goroutine authenticates,
// decrypts and decodes the same bytes from a chunkPipe (up to
// receiveChunks chunks behind) and re-encrypts the plaintext into stored. With plain set, the plaintext is hashed too
// (received.plain).
func (c *Coordinator) receiveEnvelope(ctx context.Context, body io.Reader, stored io.Writer, ct *contracts.Contract, ds *contracts.Dataset, plain hash.Hash) (received, error) {
	pipe := newChunkPipe(receiveChunks, receiveChunkSize)
	type outcome struct {
		got received
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		got, err := c.verifyEnvelopeStream(pipe, stored, ct, ds, plain)
		pipe.closeRead() // unblock the receiver if the verifier stopped early
		done <- outcome{got, err}
	}()
	h := sha256.New()
	var size int64
	var copyErr error
receive:
	for {
		buf := pipe.get()
		if buf == nil {
			break // the verifier stopped: its error explains why
		}
		// Fill the chunk (a TLS body reads a record at a time) so that
		// the verifier gets whole chunks.
		n := 0
		var rerr error
		for n < len(buf) && rerr == nil {
			var k int
			k, rerr = body.Read(buf[n:])
			if k > 0 && size+int64(n) > 0 {
				fault("upload/mid-body")
			}
			n += k
		}
		if n > 0 {
			if limit := c.cfg.MaxUploadBytes; limit > 0 && size+int64(n) > limit {
				copyErr = fmt.Errorf("%w of %d bytes", blobs.ErrTooLarge, limit)
				break
			}
			size += int64(n)
			h.Write(buf[:n])
			if !pipe.send(buf[:n]) {
				break // the verifier stopped: its error explains why
			}
		}
		switch {
		case rerr == io.EOF:
			break receive
		case rerr != nil:
			copyErr = rerr
			break receive
		}
		if err := ctx.Err(); err != nil {
			copyErr = err
			break
		}
	}
	pipe.closeWrite(copyErr)
	out := <-done
	out.got.size = size
	h.Sum(out.got.digest[:0])
	storing := func(err error) bool { return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) }
	switch {
	case storing(copyErr) || storing(out.err):
		return received{}, storageError(errors.Join(copyErr, out.err), "storing the upload of dataset "+ds.ID)
	case errors.Is(copyErr, blobs.ErrTooLarge):
		return received{}, newError(http.StatusRequestEntityTooLarge, "too_large", copyErr,
			"dataset %s is larger than this coordinator's upload limit of %d bytes", ds.ID, c.cfg.MaxUploadBytes)
	case copyErr != nil:
		return received{}, badRequest("reading the upload of dataset %s: %v", ds.ID, copyErr)
	case out.err != nil:
		return received{}, unprocessable(out.err, "envelope for dataset %s refused: %v", ds.ID, out.err)
	}
	return out.got, nil
}

// verifyEnvelopeStream authenticates and decrypts an envelope stream for
// dataset ds and decodes the Arrow stream inside, counting its rows, while
// it re-encrypts that plaintext into stored (rekeyEnvelope). It reads r to
// its end so the last segment and the absence of trailing bytes are
// checked.
//
// The Arrow stream comes from the provider and may be hostile: a panic in
// the Arrow decoder is turned into a refusal. With plain set, it also
// hashes the plaintext of the stored envelope it writes.
func (c *Coordinator) verifyEnvelopeStream(r io.Reader, dst io.Writer, ct *contracts.Contract, ds *contracts.Dataset, plain hash.Hash) (got received, err error) {
	defer func() {
		if p := recover(); p != nil {
			got, err = received{}, fmt.Errorf("malformed Arrow stream: %v", p)
		}
	}()
	schemaDigest := ds.SchemaDigest()
	er, err := envelope.NewReader(r, c.tee.Identity().HPKE(), envelope.Expect{
		Kind: envelope.KindDataset, ContractID: ct.ID(), ObjectID: ds.ID, SchemaDigest: &schemaDigest,
	})
	if err != nil {
		return got, err
	}
	got.header = er.Header().SHA256()
	rw, err := c.rekeyEnvelope(dst, ct, ds)
	if err != nil {
		return got, err
	}
	// On every way out but a successful Close (after which it does
	// nothing), Abort stops the writer's goroutines and wipes its keys.
	defer rw.Abort()
	// The stored envelope holds the batches the Arrow decoder reads, laid
	// out in blocks (coordinator/internal/stored); anything after the
	// stream's end-of-stream marker is refused below.
	var notNull []int
	for i, col := range ds.Columns {
		if col.NotNull {
			notNull = append(notNull, i)
		}
	}
	var seen io.Writer = rw
	if plain != nil {
		seen = io.MultiWriter(rw, plain)
	}
	sw := stored.NewWriter(seen, ds.Schema())
	if got.rows, err = arrowipc.Each(er, ds.Schema(), sw.Write, notNull...); err != nil {
		// A damaged envelope surfaces through the Arrow reader: report it
		// as what it is, not as bad Arrow data.
		for _, envErr := range []error{envelope.ErrAuthentication, envelope.ErrTruncated, envelope.ErrMalformed} {
			if errors.Is(err, envErr) {
				var inner error = err
				for u := errors.Unwrap(inner); u != nil && errors.Is(u, envErr); u = errors.Unwrap(inner) {
					inner = u
				}
				return got, inner
			}
		}
		return got, err
	}
	extra, err := io.Copy(io.Discard, er)
	if err != nil {
		return got, err
	}
	if extra > 0 {
		return got, fmt.Errorf("%d bytes follow the end of the Arrow stream", extra)
	}
	if rows, err := sw.Close(); err != nil {
		return got, err
	} else if rows != got.rows {
		return got, fmt.Errorf("the stored layout holds %d rows of the %d read", rows, got.rows)
	}
	if err := rw.Close(); err != nil {
		return got, err
	}
	sum, err := rw.Summary()
	if err != nil {
		return got, err
	}
	got.storedHeader = sum.Header.SHA256()
	if plain != nil {
		plain.Sum(got.plain[:0])
	}
	return got, nil
}

// rekeyEnvelope starts the envelope that the coordinator stores for an
// upload of dataset ds: a version 1 dataset envelope for the same contract,
// dataset and schema, with the default segment size, whose data key is
// drawn here and wrapped only to the coordinator's own HPKE key. So no one
// outside the coordinator — not the provider, who knows the data key of
// the envelope it uploaded, nor the host — can make a segment that
// authenticates under its header, and a run that finds that header (its
// digest is logged) and every segment authentic reads exactly the
// plaintext the provider signed for.
func (c *Coordinator) rekeyEnvelope(dst io.Writer, ct *contracts.Contract, ds *contracts.Dataset) (*envelope.Writer, error) {
	// The blob store hashes what it is given: the writer need not. The
	// segments are sealed, and handed to the blob store (its SHA-256 and
	// its file writes), on the writer's own goroutines while this one
	// decodes, checks and lays out the next batches: the bytes are the
	// same, at most a few segments more are held.
	return envelope.NewWriterWithOptions(dst, envelope.Header{
		Kind: envelope.KindDataset, ContractID: ct.ID(), ObjectID: ds.ID, SchemaDigest: ds.SchemaDigest(),
		SegmentSize: stored.SegmentSize,
	}, []hpke.PublicKey{c.tee.PublicKey().HPKE()}, envelope.WriterOptions{NoDigest: true, Background: true})
}
