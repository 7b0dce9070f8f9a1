package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"

	"github.com/apache/arrow-go/v18/arrow/array"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/durable"
)

// DatasetReceipt is a dataset upload the coordinator acknowledged, checked
// against what was sent: the same ciphertext digest and row count.
type DatasetReceipt struct {
	Dataset string
	// CiphertextSHA256 and Size describe the envelope that was sent.
	CiphertextSHA256 [32]byte
	Size             int64
	Rows             int64
	// Statement is the provider's signed upload statement.
	Statement []byte
	// LogIndex is the dataset.uploaded event's index in the audit log.
	LogIndex uint64
	// Already reports that the dataset already held this content (the
	// same envelope, or the same plaintext): the coordinator acknowledged
	// the first upload, whose ciphertext digest and log index these are,
	// and changed nothing. Statement is then the one just signed, not the
	// first upload's.
	Already bool
}

// UploadOptions adjust UploadDataset. The zero value is what cleanroom
// dataset upload does.
type UploadOptions struct {
	// Encrypt tunes the envelope (segment size, parallelism).
	Encrypt upload.EncryptOptions
}

// UploadDataset encrypts a dataset's rows to the attested coordinator and
// uploads them in one pass, as the dataset's provider: it attests the
// coordinator afresh (Attest), seals the rows (which must have the
// dataset's columns, as a connectors reader gives them) segment by segment
// into an envelope for this contract and dataset, streams it, sends the
// signed upload statement once the last byte is sent, and checks that the
// coordinator acknowledged exactly that ciphertext and row count. Memory
// stays bounded and nothing is written to disk. The client must have the
// provider's identity.
func (c *Client) UploadDataset(ctx context.Context, datasetID string, rows array.RecordReader, opts UploadOptions) (*DatasetReceipt, error) {
	if c.opts.Identity == nil || c.opts.Contract == nil {
		return nil, errors.New("uploading a dataset needs the contract and the provider's key")
	}
	if _, err := providerOf(c.opts.Contract, datasetID, c.opts.Identity); err != nil {
		return nil, err
	}
	if _, err := c.Attest(ctx); err != nil {
		return nil, err
	}
	peer, err := c.Coordinator(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	encDone := make(chan struct{})
	var enc *upload.Encrypted
	var encErr error
	go func() {
		defer close(encDone)
		enc, encErr = upload.Encrypt(pw, rows, c.opts.Contract, datasetID, peer.PublicKey, c.opts.Identity, opts.Encrypt)
		pw.CloseWithError(encErr)
	}()
	rec, err := c.UploadEnvelope(ctx, datasetID, pr, func() ([]byte, error) {
		<-encDone
		if encErr != nil {
			return nil, encErr
		}
		return enc.Signed, nil
	})
	pr.CloseWithError(errors.New("upload ended"))
	<-encDone
	if encErr != nil {
		return nil, encErr
	}
	if err != nil {
		return nil, err
	}
	return checkReceipt(rec, datasetID, enc.Summary.SHA256, enc.Summary.Size, enc.Rows, enc.Signed)
}

// checkReceipt checks the coordinator's receipt against the envelope sent:
// the same digest and rows, or, for content already present, the same
// rows under the first upload's digest.
func checkReceipt(rec *api.UploadReceipt, datasetID string, sum [32]byte, size, rows int64, statement []byte) (*DatasetReceipt, error) {
	if rec.Dataset != datasetID || rec.Rows != rows || (!rec.Already && rec.CiphertextSHA256 != fmt.Sprintf("%x", sum)) {
		return nil, fmt.Errorf("the coordinator acknowledged dataset %s, %s with %d rows, but %s, %x with %d rows was sent",
			rec.Dataset, rec.CiphertextSHA256, rec.Rows, datasetID, sum, rows)
	}
	out := &DatasetReceipt{Dataset: datasetID, CiphertextSHA256: sum, Size: size, Rows: rows,
		Statement: statement, LogIndex: rec.LogIndex, Already: rec.Already}
	if rec.Already {
		b, err := hex.DecodeString(rec.CiphertextSHA256)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("the coordinator acknowledged dataset %s with a malformed digest %q", datasetID, rec.CiphertextSHA256)
		}
		copy(out.CiphertextSHA256[:], b)
		out.Size = 0
	}
	return out, nil
}

// providerOf returns the dataset of the contract that id provides.
func providerOf(ct *contracts.Contract, datasetID string, id *cleanroom.Identity) (*contracts.Dataset, error) {
	ds := ct.Dataset(datasetID)
	if ds == nil {
		return nil, fmt.Errorf("the contract has no dataset %q", datasetID)
	}
	me := ct.ParticipantByKey(id.Public().Fingerprint())
	if me == nil {
		return nil, fmt.Errorf("key %s is not a participant's in the contract", id.Public().Fingerprint().Short())
	}
	if ds.Provider != me.ID {
		return nil, fmt.Errorf("dataset %s is provided by %q; the key is %q's", datasetID, ds.Provider, me.ID)
	}
	return ds, nil
}

// UploadEnvelope streams an envelope that is already sealed for dataset
// datasetID. statement is called once the body has been sent in full, and
// returns the signed upload statement, which travels as the HTTP trailer;
// so the envelope can be produced while it uploads. It checks nothing of
// what it sends: UploadDataset is the upload a provider makes.
func (c *Client) UploadEnvelope(ctx context.Context, datasetID string, body io.Reader, statement func() ([]byte, error)) (*api.UploadReceipt, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base.String()+"/v1/contracts/"+cid+"/datasets/"+url.PathEscape(datasetID), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Trailer = http.Header{api.UploadStatementTrailer: nil}
	req.Body = &trailerBody{r: body, req: req, statement: statement}
	req.ContentLength = -1
	var rec api.UploadReceipt
	_, err = c.send(req, &rec)
	return &rec, err
}

// trailerBody sets the statement trailer once the body reaches its end.
type trailerBody struct {
	r         io.Reader
	req       *http.Request
	statement func() ([]byte, error)
	done      bool
}

func (t *trailerBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err == io.EOF && !t.done {
		t.done = true
		st, serr := t.statement()
		if serr != nil {
			return n, serr
		}
		t.req.Trailer.Set(api.UploadStatementTrailer, base64.StdEncoding.EncodeToString(st))
	}
	return n, err
}

func (t *trailerBody) Close() error { return nil }

// EncryptDataset seals a dataset's rows, with no connection, into an
// envelope written to w, to the coordinator that the identity document
// coordinatorDoc describes: the document is verified against the
// contract's coordinator section first (VerifyIdentityDocument), so rows
// are never encrypted to an unverified key. With a provider identity it
// also signs the upload statement (Encrypted.Signed).
func EncryptDataset(w io.Writer, rows array.RecordReader, ct *contracts.Contract, datasetID string,
	coordinatorDoc []byte, provider *cleanroom.Identity, opts upload.EncryptOptions) (*upload.Encrypted, *Attestation, error) {
	if ct.Dataset(datasetID) == nil {
		return nil, nil, fmt.Errorf("the contract has no dataset %q", datasetID)
	}
	a, err := VerifyIdentityDocument(coordinatorDoc, ct)
	if err != nil {
		return nil, nil, err
	}
	enc, err := upload.Encrypt(w, rows, ct, datasetID, a.Document.PublicKeys[0], provider, opts)
	if err != nil {
		return nil, nil, err
	}
	return enc, a, nil
}

// EncryptDatasetFile is EncryptDataset into the file out, written durably:
// nothing appears at out unless everything succeeds. With a provider
// identity the signed upload statement goes to statementOut (also
// durably).
func EncryptDatasetFile(out string, rows array.RecordReader, ct *contracts.Contract, datasetID string,
	coordinatorDoc []byte, provider *cleanroom.Identity, statementOut string) (*upload.Encrypted, *Attestation, error) {
	if provider != nil && statementOut == "" {
		return nil, nil, errors.New("a signed upload statement needs a file to go to")
	}
	f, err := durable.Create(out, 0o644)
	if err != nil {
		return nil, nil, err
	}
	defer f.Abort()
	enc, a, err := EncryptDataset(f, rows, ct, datasetID, coordinatorDoc, provider, upload.EncryptOptions{})
	if err != nil {
		return nil, nil, err
	}
	if err := f.Commit(); err != nil {
		return nil, nil, err
	}
	if provider != nil {
		if err := durable.WriteFile(statementOut, enc.Signed, 0o644); err != nil {
			os.Remove(out)
			return nil, nil, err
		}
	}
	return enc, a, nil
}

// UploadEnvelopeFile uploads a dataset envelope encrypted earlier, with no
// connection (EncryptDatasetFile, cleanroom dataset encrypt, perhaps on
// another machine), with its signed upload statement, as the dataset's
// provider. Before anything is sent it checks that the envelope is for
// this contract, dataset and schema, that the statement is the provider's
// over exactly this envelope (digest, header, size), and, once the
// coordinator is attested afresh (Attest), that the envelope's data key is
// wrapped to the attested key. An envelope the dataset already holds (the
// same digest) is acknowledged without being sent again (Already).
func (c *Client) UploadEnvelopeFile(ctx context.Context, datasetID, path string, statement []byte) (*DatasetReceipt, error) {
	if c.opts.Identity == nil || c.opts.Contract == nil {
		return nil, errors.New("uploading a dataset needs the contract and the provider's key")
	}
	ct := c.opts.Contract
	ds, err := providerOf(ct, datasetID, c.opts.Identity)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hdr, err := envelope.ParseHeader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	schema := ds.SchemaDigest()
	switch {
	case hdr.Kind != envelope.KindDataset:
		return nil, fmt.Errorf("%s is a %s envelope, not a dataset's", path, hdr.Kind)
	case hdr.ContractID != ct.ID():
		return nil, fmt.Errorf("%s is for contract %x, not %s", path, hdr.ContractID, ct.ID())
	case hdr.ObjectID != datasetID:
		return nil, fmt.Errorf("%s is for dataset %q, not %q", path, hdr.ObjectID, datasetID)
	case hdr.SchemaDigest != schema:
		return nil, fmt.Errorf("%s was encrypted for another schema of dataset %s (schema digest %x, the contract's is %x)", path, datasetID, hdr.SchemaDigest, schema)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return nil, err
	}
	var sum [32]byte
	h.Sum(sum[:0])
	headerSum := hdr.SHA256()
	st, err := upload.Verify(statement, c.opts.Identity.Public(), upload.Expect{ContractID: ct.ID(), DatasetID: datasetID,
		CiphertextSHA256: &sum, HeaderSHA256: &headerSum, SchemaDigest: &schema})
	if err != nil {
		return nil, fmt.Errorf("the upload statement for %s: %w", path, err)
	}
	if st.CiphertextSize != size {
		return nil, fmt.Errorf("the upload statement for %s names %d bytes; the file has %d", path, st.CiphertextSize, size)
	}
	if _, err := c.Attest(ctx); err != nil {
		return nil, err
	}
	peer, err := c.Coordinator(ctx)
	if err != nil {
		return nil, err
	}
	keyID := sha256.Sum256(peer.PublicKey.HPKE().Bytes())
	if !slices.ContainsFunc(hdr.Recipients, func(s envelope.Stanza) bool { return s.KeyID == keyID }) {
		return nil, fmt.Errorf("%w: %s was encrypted to another coordinator key than the attested one (%s)", ErrWrongCoordinator, path, peer.PublicKey.Fingerprint().Short())
	}
	if prog, err := c.Status(ctx); err == nil {
		for _, d := range prog.Datasets {
			if d.ID == datasetID && d.Uploaded && d.CiphertextSHA256 == fmt.Sprintf("%x", sum) {
				return &DatasetReceipt{Dataset: datasetID, CiphertextSHA256: sum, Size: size, Rows: d.Rows,
					Statement: statement, LogIndex: d.LogIndex, Already: true}, nil
			}
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	rec, err := c.UploadEnvelope(ctx, datasetID, bufio.NewReaderSize(f, 1<<20), func() ([]byte, error) { return statement, nil })
	if err != nil {
		return nil, err
	}
	return checkReceipt(rec, datasetID, sum, size, st.RowCount, statement)
}

// ErrWrongCoordinator reports an envelope encrypted to another coordinator
// than the one the client attested: that coordinator could not open it.
var ErrWrongCoordinator = errors.New("the envelope is not for this coordinator")

// IsEnvelopeFile reports whether the file at path begins as a Cleanroom
// envelope does (its magic bytes), so an envelope given where a data
// file was expected is named as what it is.
func IsEnvelopeFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 8)
	if n, _ := io.ReadFull(f, b); n < len(b) {
		return false
	}
	_, err = envelope.ParseHeader(bytes.NewReader(b))
	var fe *envelope.FormatError
	return !(errors.As(err, &fe) && fe.Field == "magic")
}
