package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/apache/arrow-go/v18/arrow/array"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
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
	if rec.CiphertextSHA256 != fmt.Sprintf("%x", enc.Summary.SHA256) || rec.Rows != enc.Rows {
		return nil, fmt.Errorf("the coordinator acknowledged %s with %d rows, but %x with %d rows was sent", rec.CiphertextSHA256, rec.Rows, enc.Summary.SHA256, enc.Rows)
	}
	return &DatasetReceipt{Dataset: datasetID, CiphertextSHA256: enc.Summary.SHA256, Size: enc.Summary.Size, Rows: enc.Rows,
		Statement: enc.Signed, LogIndex: rec.LogIndex}, nil
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
