package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/contracts"
)

// ErrSalt reports a salt given for an algorithm that is not confidential,
// or none for one that is.
var ErrSalt = errors.New("the salt does not go with the contract's algorithm")

// SubmitAlgorithm submits the algorithm the contract names, as its
// algorithm provider: it checks the text against the contract's
// algorithm.sha256 (contracts.Algorithm.Check), attests the coordinator
// afresh (Attest), and sends it. For a confidential algorithm, salt is the
// salt of the commitment the contract names (cleanroom.CommitAlgorithmFile
// made it); text and salt are sealed together to the attested coordinator
// key, so only the coordinator ever sees either. For an algorithm that is
// not confidential, salt must be nil and the text travels in plain. The
// coordinator checks the same, and runs its statement check.
func (c *Client) SubmitAlgorithm(ctx context.Context, text []byte, salt *cleanroom.Salt) (*api.AlgorithmReceipt, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	a := &c.opts.Contract.Algorithm
	if c.opts.Identity != nil {
		me := c.opts.Contract.ParticipantByKey(c.opts.Identity.Public().Fingerprint())
		if me == nil || !me.Has(contracts.RoleAlgorithmProvider) {
			return nil, fmt.Errorf("key %s is not the algorithm provider's in the contract", c.opts.Identity.Public().Fingerprint().Short())
		}
	}
	switch {
	case a.Confidential && salt == nil:
		return nil, fmt.Errorf("%w: the algorithm is confidential, and its commitment's salt is needed", ErrSalt)
	case !a.Confidential && salt != nil:
		return nil, fmt.Errorf("%w: the algorithm is not confidential: the contract names its plain SHA-256, which takes no salt", ErrSalt)
	}
	if err := a.Check(text, salt); err != nil {
		return nil, err
	}
	if _, err := c.Attest(ctx); err != nil {
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
