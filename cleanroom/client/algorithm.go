package client

import (
	"context"
	"net/http"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
)

// SubmitAlgorithm submits the algorithm text. For a confidential algorithm,
// salt is the salt of the commitment the contract names as
// algorithm.sha256 (cleanroom.CommitAlgorithm); text and salt are sealed
// together to the attested coordinator key, so only the coordinator can
// check them against the contract (contracts.Algorithm.Check, which the
// caller may run first).
// For an algorithm that is not confidential, salt must be nil and the text
// travels in plain.
func (c *Client) SubmitAlgorithm(ctx context.Context, text []byte, salt *cleanroom.Salt) (*api.AlgorithmReceipt, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	a := &c.opts.Contract.Algorithm
	if _, err := a.Digest(text, salt); err != nil {
		return nil, err
	}
	var req api.SubmitAlgorithmRequest
	if a.Confidential {
		peer, err := c.Coordinator(ctx)
		if err != nil {
			return nil, err
		}
		if req.Sealed, err = cleanroom.SealAlgorithm(peer.PublicKey, c.opts.Contract.ID(), *salt, text); err != nil {
			return nil, err
		}
	} else {
		s := string(text)
		req.Text = &s
	}
	body, hdr, err := jsonBody(req)
	if err != nil {
		return nil, err
	}
	var rec api.AlgorithmReceipt
	_, err = c.do(ctx, http.MethodPut, "/v1/contracts/"+cid+"/algorithm", body, hdr, &rec, true)
	return &rec, err
}

// Algorithm returns the submitted algorithm as the caller may see it.
func (c *Client) Algorithm(ctx context.Context) (*api.AlgorithmView, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	var v api.AlgorithmView
	_, err = c.do(ctx, http.MethodGet, "/v1/contracts/"+cid+"/algorithm", nil, nil, &v, true)
	return &v, err
}
