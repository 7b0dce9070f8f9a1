package client

import (
	"context"
	"errors"
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
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	if _, err := c.Attest(ctx); err != nil {
		return nil, err
	}
	var rs api.RunStatus
	_, err = c.do(ctx, http.MethodPost, "/v1/contracts/"+cid+"/runs", nil, nil, &rs, false)
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
