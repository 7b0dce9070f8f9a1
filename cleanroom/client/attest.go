package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// Attestation is what a verified identity document proves about the
// coordinator: the document (its public key and evidence) and the claims
// its evidence established.
type Attestation struct {
	Document *attest.IdentityDocument
	Claims   *attest.Claims
}

// Attest verifies the coordinator against the contract now: it asks for
// evidence bound to a fresh random nonce and checks it against the
// contract's coordinator section (or, on a client with InsecureSkipPolicy,
// for authenticity only), and that it binds the key this connection's
// handshake attested. A recorded answer cannot pass. Every operation that
// sends data calls it first.
func (c *Client) Attest(ctx context.Context) (*Attestation, error) {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	body, hdr, err := jsonBody(api.AttestationRequest{Nonce: hex.EncodeToString(nonce)})
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if _, err := c.do(ctx, http.MethodPost, "/v1/attestation", body, hdr, &raw, true); err != nil {
		return nil, err
	}
	a, err := c.verifyDocument(ctx, raw, nonce)
	if err == nil && c.opts.OnAttested != nil {
		c.opts.OnAttested(a)
	}
	return a, err
}

// Identity fetches the identity document with the evidence of the TLS
// certificate (no nonce) and verifies it as Attest does. It is the document
// to keep for EncryptDataset (cleanroom dataset encrypt).
func (c *Client) Identity(ctx context.Context) (*Attestation, error) {
	var raw json.RawMessage
	if _, err := c.do(ctx, http.MethodGet, "/v1/identity", nil, nil, &raw, true); err != nil {
		return nil, err
	}
	return c.verifyDocument(ctx, raw, nil)
}

// verifyDocument checks an identity document: it binds the key this
// connection attested, and its evidence verifies against the contract (or
// for authenticity only) with the nonce.
func (c *Client) verifyDocument(ctx context.Context, raw []byte, nonce []byte) (*Attestation, error) {
	doc, err := attest.ParseIdentityDocument(raw)
	if err != nil {
		return nil, fmt.Errorf("coordinator's identity document: %w", err)
	}
	peer, err := c.Coordinator(ctx)
	if err != nil {
		return nil, err
	}
	if len(doc.PublicKeys) != 1 || !doc.PublicKeys[0].Equal(peer.PublicKey) {
		return nil, errors.New("the identity document binds another key than the one this connection attested")
	}
	var claims *attest.Claims
	if c.opts.Contract != nil && !c.opts.InsecureSkipPolicy {
		if nonce != nil {
			claims, err = doc.VerifyFresh(&c.opts.Contract.Coordinator, nonce)
		} else {
			claims, err = doc.Verify(&c.opts.Contract.Coordinator)
		}
	} else {
		cp := &contracts.CoordinatorPolicy{Platform: doc.Platform, SimulatedRootSHA256: c.opts.SimulatedRootSHA256}
		var v *attest.Verifier
		if v, err = attest.VerifierForContract(cp, nil); err == nil {
			claims, err = doc.VerifyWith(v, attest.Policy{InsecureAnyMeasurement: true, InsecureAllowDebug: true}, nonce)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("coordinator evidence: %w", err)
	}
	return &Attestation{Document: doc, Claims: claims}, nil
}

// ErrIdentityRefused reports an identity document whose evidence does not
// satisfy the contract: never encrypt to its key.
var ErrIdentityRefused = errors.New("the coordinator identity does not satisfy the contract")

// VerifyIdentityDocument reads a coordinator's identity document (from
// cleanroomd identity or Client.Identity) and verifies its evidence
// against the contract's coordinator section: the only way to learn, with
// no connection, the key to encrypt a dataset to.
func VerifyIdentityDocument(data []byte, ct *contracts.Contract) (*Attestation, error) {
	doc, err := attest.ParseIdentityDocument(data)
	if err != nil {
		return nil, fmt.Errorf("the coordinator's identity document: %w", err)
	}
	claims, err := doc.Verify(&ct.Coordinator)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentityRefused, err)
	}
	return &Attestation{Document: doc, Claims: claims}, nil
}
