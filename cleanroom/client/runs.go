package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
)

// Run attests the coordinator afresh (Attest), then starts a run of the
// contract's algorithm and waits for its outcome (no timeout: a run takes
// as long as the query). Every run started counts against max_runs,
// whatever its outcome; a refusal is an *api.Error whose reason, for a
// confidential algorithm's provider, PrivateReason opens.
func (c *Client) Run(ctx context.Context) (*api.RunStatus, error) {
	return c.RunWith(ctx, nil)
}

// RunWith is Run with the values of the algorithm's parameters
// (algorithm.parameters), name → text. The coordinator refuses, before
// anything is decrypted and without counting a run, a value missing,
// undeclared, of the wrong type or out of its bounds, naming the
// parameter.
func (c *Client) RunWith(ctx context.Context, params map[string]string) (*api.RunStatus, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	if _, err := c.Attest(ctx); err != nil {
		return nil, err
	}
	var body io.Reader
	var header http.Header
	if len(params) > 0 {
		b, err := json.Marshal(api.RunRequest{Parameters: params})
		if err != nil {
			return nil, err
		}
		body, header = bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}}
	}
	var rs api.RunStatus
	_, err = c.do(ctx, http.MethodPost, "/v1/contracts/"+cid+"/runs", body, header, &rs, false)
	return &rs, err
}

// RunStatus returns a run's status.
func (c *Client) RunStatus(ctx context.Context, runID string) (*api.RunStatus, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	var rs api.RunStatus
	_, err = c.do(ctx, http.MethodGet, "/v1/contracts/"+cid+"/runs/"+url.PathEscape(runID), nil, nil, &rs, true)
	return &rs, err
}

// PrivateReason opens the full reason of a confidential algorithm's
// refusal, which the coordinator returns (rs.SealedReason) only to the
// algorithm's provider, sealed to its key. It returns "" when rs carries no
// sealed reason.
func (c *Client) PrivateReason(rs *api.RunStatus) (string, error) {
	if len(rs.SealedReason) == 0 {
		return "", nil
	}
	if c.opts.Identity == nil || c.opts.Contract == nil {
		return "", errors.New("opening a sealed refusal reason needs the contract and the algorithm provider's key")
	}
	return cleanroom.OpenReason(c.opts.Identity, c.opts.Contract.ID(), rs.RunID, rs.SealedReason)
}
