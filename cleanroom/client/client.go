// Package client calls a Cleanroom coordinator's API (docs/api.md) over
// attested TLS: every connection verifies the coordinator's evidence
// against the contract's coordinator section during the handshake, and
// authenticates the participant with its key.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/contracts"
)

// Options configure a Client.
type Options struct {
	// Contract supplies the coordinator policy every connection verifies,
	// and the contract id requests name. Required unless
	// InsecureSkipPolicy is set.
	Contract *contracts.Contract
	// Identity is the participant's key pair; nil connects anonymously.
	Identity *cleanroom.Identity
	// InsecureSkipPolicy connects with authenticity checks only (see
	// atls.ClientOptions): to look at a coordinator before a contract
	// pins it. Never send data over such a client.
	InsecureSkipPolicy bool
	// SimulatedRootSHA256 pins a simulated coordinator with
	// InsecureSkipPolicy.
	SimulatedRootSHA256 *[32]byte
	// Timeout bounds each request other than uploads and runs. Default
	// 60 s.
	Timeout time.Duration
}

// Client is a connection to one coordinator for one contract. It is safe
// for concurrent use.
type Client struct {
	base    *url.URL
	hc      *http.Client
	opts    Options
	mu      sync.Mutex
	peer    *atls.Coordinator
	timeout time.Duration
}

// New returns a client for the coordinator at rawURL (https://HOST:PORT).
func New(rawURL string, opts Options) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("coordinator URL must be https://HOST:PORT, got %q", rawURL)
	}
	u.Path = ""
	c := &Client{base: u, opts: opts, timeout: opts.Timeout}
	if c.timeout == 0 {
		c.timeout = 60 * time.Second
	}
	copts := atls.ClientOptions{
		Identity:            opts.Identity,
		InsecureSkipPolicy:  opts.InsecureSkipPolicy,
		SimulatedRootSHA256: opts.SimulatedRootSHA256,
		OnVerified: func(p *atls.Coordinator) {
			c.mu.Lock()
			c.peer = p
			c.mu.Unlock()
		},
	}
	if opts.Contract != nil && !opts.InsecureSkipPolicy {
		copts.Policy = &opts.Contract.Coordinator
	}
	hc, err := atls.NewHTTPClient(copts)
	if err != nil {
		return nil, err
	}
	c.hc = hc
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Coordinator returns what the last handshake proved about the
// coordinator, connecting first if needed.
func (c *Client) Coordinator(ctx context.Context) (*atls.Coordinator, error) {
	if _, err := c.Health(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peer == nil {
		return nil, errors.New("no attested connection to the coordinator")
	}
	return c.peer, nil
}

func (c *Client) contractID() (string, error) {
	if c.opts.Contract == nil {
		return "", errors.New("this request needs a contract")
	}
	return c.opts.Contract.ID().String(), nil
}

// do sends a request and decodes a JSON response into out (if not nil),
// turning error responses into *api.Error.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, header http.Header, out any, timeout bool) (*http.Response, error) {
	if timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return c.send(req, out)
}

func (c *Client) send(req *http.Request, out any) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp, decodeError(resp)
	}
	if out != nil {
		data, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxJSONBody+1))
		if err != nil {
			return resp, fmt.Errorf("%s %s: reading the response: %w", req.Method, req.URL.Path, err)
		}
		if err := json.Unmarshal(data, out); err != nil {
			return resp, fmt.Errorf("%s %s: malformed response: %w", req.Method, req.URL.Path, err)
		}
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, api.MaxJSONBody))
	var body api.ErrorBody
	if err := json.Unmarshal(data, &body); err != nil || body.Error.Code == "" {
		return &api.Error{Status: resp.StatusCode, ErrorDetail: api.ErrorDetail{Code: "http", Message: strings.TrimSpace(string(data))}}
	}
	return &api.Error{Status: resp.StatusCode, ErrorDetail: body.Error}
}

func jsonBody(v any) (io.Reader, http.Header, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, nil, err
	}
	return bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}}, nil
}

// Health returns the coordinator's health.
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	var h api.Health
	_, err := c.do(ctx, http.MethodGet, "/v1/health", nil, nil, &h, true)
	return &h, err
}

// FreshIdentity asks for evidence bound to a random nonce and verifies it
// against the contract (or, without one, for authenticity only), proving
// the coordinator attests now, not a recorded answer.
func (c *Client) FreshIdentity(ctx context.Context) (*attest.IdentityDocument, *attest.Claims, error) {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	body, hdr, err := jsonBody(api.AttestationRequest{Nonce: hex.EncodeToString(nonce)})
	if err != nil {
		return nil, nil, err
	}
	var raw json.RawMessage
	if _, err := c.do(ctx, http.MethodPost, "/v1/attestation", body, hdr, &raw, true); err != nil {
		return nil, nil, err
	}
	return c.verifyDocument(ctx, raw, nonce)
}

// Identity fetches the identity document with the evidence of the TLS
// certificate (no nonce) and verifies it like FreshIdentity. It is the
// document to keep for cleanroom dataset encrypt.
func (c *Client) Identity(ctx context.Context) (*attest.IdentityDocument, *attest.Claims, error) {
	var raw json.RawMessage
	if _, err := c.do(ctx, http.MethodGet, "/v1/identity", nil, nil, &raw, true); err != nil {
		return nil, nil, err
	}
	return c.verifyDocument(ctx, raw, nil)
}

// verifyDocument checks an identity document: it binds the key this
// connection attested, and its evidence verifies against the contract (or
// for authenticity only) with the nonce.
func (c *Client) verifyDocument(ctx context.Context, raw []byte, nonce []byte) (*attest.IdentityDocument, *attest.Claims, error) {
	doc, err := attest.ParseIdentityDocument(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("coordinator's identity document: %w", err)
	}
	peer, err := c.Coordinator(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(doc.PublicKeys) != 1 || !doc.PublicKeys[0].Equal(peer.PublicKey) {
		return nil, nil, errors.New("the identity document binds another key than the one this connection attested")
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
		return nil, nil, fmt.Errorf("coordinator evidence: %w", err)
	}
	return doc, claims, nil
}

// SubmitContract registers the client's contract with its signatures.
func (c *Client) SubmitContract(ctx context.Context, text []byte, sigs [][]byte) (*api.ContractReceipt, error) {
	body, hdr, err := jsonBody(api.SubmitContractRequest{Contract: string(text), Signatures: sigs})
	if err != nil {
		return nil, err
	}
	var rec api.ContractReceipt
	_, err = c.do(ctx, http.MethodPost, "/v1/contracts", body, hdr, &rec, true)
	return &rec, err
}

// Status returns the contract's progress.
func (c *Client) Status(ctx context.Context) (*api.ContractStatus, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	var st api.ContractStatus
	_, err = c.do(ctx, http.MethodGet, "/v1/contracts/"+cid, nil, nil, &st, true)
	return &st, err
}

// UploadDataset streams an envelope for dataset datasetID. statement is
// called once the body has been sent in full, and returns the signed upload
// statement, which travels as the HTTP trailer; so the envelope can be
// produced while it uploads.
func (c *Client) UploadDataset(ctx context.Context, datasetID string, body io.Reader, statement func() ([]byte, error)) (*api.UploadReceipt, error) {
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

// SubmitModel submits the module of the contract's model name. A
// confidential model is sealed to the attested coordinator key together
// with salt, the salt of the contract's commitment (cleanroom.CommitModel),
// which it requires; a model that is not confidential takes none.
func (c *Client) SubmitModel(ctx context.Context, name string, module []byte, salt *cleanroom.Salt) (*api.ModelReceipt, error) {
	cid, err := c.contractID()
	if err != nil {
		return nil, err
	}
	m := c.opts.Contract.Model(name)
	if m == nil || m.Name != name {
		return nil, fmt.Errorf("contract %s names no model %q", cid, name)
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

// Run starts a run and waits for its outcome (no timeout: a run takes as
// long as the query).
func (c *Client) Run(ctx context.Context) (*api.RunStatus, error) {
	cid, err := c.contractID()
	if err != nil {
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

// MaxBundleSize bounds a result bundle the client accepts.
const MaxBundleSize = 1 << 30

// Result downloads a run's result bundle (unverified bytes: verify them
// with package bundle).
func (c *Client) Result(ctx context.Context, runID string) ([]byte, error) {
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

// MaxLogResource bounds one checkpoint or tile.
const MaxLogResource = 1 << 24

// LogFetcher returns a tlog.Fetcher reading the client's contract's view of
// the audit log (docs/log.md §7: every other contract's events redacted,
// and the signed view head) over this client's attested connection. The
// caller must be an auditor of the contract.
func (c *Client) LogFetcher() tlog.Fetcher {
	return func(ctx context.Context, path string) ([]byte, error) {
		cid, err := c.contractID()
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/v1/contracts/"+cid+"/log/"+strings.TrimPrefix(path, "/"), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetching %s: %w", path, decodeError(resp))
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, MaxLogResource+1))
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", path, err)
		}
		if len(data) > MaxLogResource {
			return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxLogResource)
		}
		return data, nil
	}
}
