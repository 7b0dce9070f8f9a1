package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"cleanroom.dev/cleanroom/cleanroom/api"
)

// Contracts over time (SPEC §13): suspension, resumption and withdrawal.

// Suspend stops new runs of the contract at once (a data provider only),
// with a reason every participant reads in the status and the audit log.
func (c *Client) Suspend(ctx context.Context, reason string) (*api.EventReceipt, error) {
	return c.postEvent(ctx, "suspend", api.SuspendRequest{Reason: reason})
}

// ApproveResumption signs the participant's approval to resume the
// contract from the suspension logged at index suspension.
func (c *Client) ApproveResumption(suspension uint64) ([]byte, error) {
	if c.opts.Identity == nil || c.opts.Contract == nil {
		return nil, errors.New("approving a resumption needs the contract and your participant key")
	}
	return c.opts.Contract.SignResumption(c.opts.Identity, suspension)
}

// Resume lifts the contract's suspension with every participant's
// approval (ApproveResumption).
func (c *Client) Resume(ctx context.Context, approvals [][]byte) (*api.EventReceipt, error) {
	return c.postEvent(ctx, "resume", api.ResumeRequest{Approvals: approvals})
}

// Withdraw deletes the caller's dataset inside the coordinator: its stored
// envelope and data key. Runs that need it are refused afterwards.
func (c *Client) Withdraw(ctx context.Context, dataset string) (*api.EventReceipt, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	var rec api.EventReceipt
	_, err = c.do(ctx, http.MethodDelete, "/v1/contracts/"+cid+"/datasets/"+url.PathEscape(dataset), nil, nil, &rec, true)
	return &rec, err
}

func (c *Client) postEvent(ctx context.Context, what string, req any) (*api.EventReceipt, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	body, header, err := jsonBody(req)
	if err != nil {
		return nil, err
	}
	var rec api.EventReceipt
	_, err = c.do(ctx, http.MethodPost, "/v1/contracts/"+cid+"/"+what, body, header, &rec, true)
	return &rec, err
}
