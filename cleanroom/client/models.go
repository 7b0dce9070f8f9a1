package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
)

// SubmitModel submits the module of the contract's model name, after
// attesting the coordinator afresh (Attest). A confidential model is sealed
// to the attested coordinator key together with salt, the salt of the
// contract's commitment (cleanroom.CommitModel), which it requires; a model
// that is not confidential takes none.
func (c *Client) SubmitModel(ctx context.Context, name string, module []byte, salt *cleanroom.Salt) (*api.ModelReceipt, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	m := c.opts.Contract.Model(name)
	if m == nil || m.Name != name {
		return nil, fmt.Errorf("contract %s names no model %q", cid, name)
	}
	if _, err := c.Attest(ctx); err != nil {
		return nil, err
	}
	body, ctype := module, api.ContentTypeWasm
	if m.Confidential {
		if salt == nil {
			return nil, fmt.Errorf("model %s is confidential: its submission needs the salt of the contract's commitment", name)
		}
		peer, err := c.Coordinator(ctx)
		if err != nil {
			return nil, err
		}
		if body, err = cleanroom.SealModel(peer.PublicKey, c.opts.Contract.ID(), name, *salt, module); err != nil {
			return nil, err
		}
		ctype = api.ContentTypeSealedModel
	}
	var rec api.ModelReceipt
	_, err = c.do(ctx, http.MethodPut, "/v1/contracts/"+cid+"/models/"+url.PathEscape(name), bytes.NewReader(body),
		http.Header{"Content-Type": {ctype}}, &rec, true)
	return &rec, err
}

// Model fetches the module of the contract's model name: a confidential
// model only its provider may fetch.
func (c *Client) Model(ctx context.Context, name string) ([]byte, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/v1/contracts/"+cid+"/models/"+url.PathEscape(name), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET model %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp)
	}
	module, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxModelSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET model %s: reading the module: %w", name, err)
	}
	if len(module) > api.MaxModelSize {
		return nil, fmt.Errorf("GET model %s: the module is larger than %d bytes", name, api.MaxModelSize)
	}
	return module, nil
}
