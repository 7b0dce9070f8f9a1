package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/contracts"
)

// MaxBundleSize bounds a result bundle the client accepts.
const MaxBundleSize = 1 << 30

// Result is a result bundle and what verifying it against the contract
// established.
type Result struct {
	// Bundle is the bundle as received: keep it to verify again, offline,
	// or to show a third party.
	Bundle []byte
	// Report is the verification, step by step; with a recipient's key,
	// Report.Result is the decrypted result (an Arrow IPC stream) that
	// opens the commitment the coordinator signed.
	Report *bundle.Report
}

// Result downloads a finished run's result bundle (result recipients only;
// the coordinator logs the download) and verifies it against the contract
// before returning it: the coordinator's evidence, the signed statement,
// both run events in the log, the upload statements, the encrypted result
// and its recipients, and, with the client's identity, the decrypted
// result against the signed commitment (VerifyResult). A bundle that does
// not verify is an error (a *bundle.VerifyError naming the step) and is not
// returned.
func (c *Client) Result(ctx context.Context, runID string) (*Result, error) {
	data, err := c.ResultBundle(ctx, runID)
	if err != nil {
		return nil, err
	}
	r, err := VerifyResult(data, c.opts.Contract, c.opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("the bundle the coordinator sent does not verify: %w", err)
	}
	return &Result{Bundle: data, Report: r}, nil
}

// ResultBundle downloads a run's result bundle without verifying it: for
// those who verify it with package bundle themselves. Result is the
// download a recipient makes.
func (c *Client) ResultBundle(ctx context.Context, runID string) ([]byte, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/v1/contracts/"+cid+"/runs/"+url.PathEscape(runID)+"/result", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the result: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBundleSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetching the result: %w", err)
	}
	if len(data) > MaxBundleSize {
		return nil, fmt.Errorf("result bundle is larger than %d bytes", MaxBundleSize)
	}
	return data, nil
}

// VerifyResult verifies a result bundle against the contract, offline
// (docs/bundle.md): from the platform's root to the encrypted result. With
// a recipient's identity it also decrypts the result and checks that it
// and its salt open the commitment the coordinator signed; the report then
// holds the plaintext (Report.Result). It returns the report of a bundle
// that passed every step; otherwise the error is a *bundle.VerifyError
// naming the failed step, and the report (when not nil) lists the steps
// taken.
func VerifyResult(data []byte, ct *contracts.Contract, recipient *cleanroom.Identity) (*bundle.Report, error) {
	if ct == nil {
		return nil, errors.New("verifying a result needs the contract")
	}
	b, err := bundle.Parse(data)
	if err != nil {
		return nil, err
	}
	return bundle.Verify(b, ct, bundle.VerifyOptions{Recipient: recipient})
}

// ResultRecords reads a verified, decrypted result (Report.Result of a
// recipient's VerifyResult) as Arrow record batches. The caller releases
// the reader.
func ResultRecords(r *bundle.Report) (array.RecordReader, error) {
	if r == nil || r.Result == nil {
		return nil, errors.New("no decrypted result: verify the bundle with a result recipient's key")
	}
	rr, err := ipc.NewReader(bytes.NewReader(r.Result))
	if err != nil {
		return nil, fmt.Errorf("the verified result is not an Arrow IPC stream: %w", err)
	}
	return rr, nil
}
