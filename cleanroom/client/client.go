// Package client is the participant's front door to Cleanroom: every
// operation a party of a contract makes, each one call that does the
// checks the protocol asks of the party, over attested TLS (every
// connection verifies the coordinator's evidence against the contract's
// coordinator section during the handshake, and authenticates the
// participant with its key; docs/api.md).
//
//   - Attest: verify the coordinator against the contract now (fresh
//     evidence bound to a nonce); every operation that sends data calls it
//     first. VerifyIdentityDocument checks a kept identity document.
//   - RegisterContract: check every participant's signature, register.
//   - UploadDataset: encrypt a dataset's rows (a connectors reader) to the
//     attested key and upload them in one pass, with the signed upload
//     statement, and check the coordinator's receipt against what was sent.
//     EncryptDataset and EncryptDatasetFile do the encryption with no
//     connection, to a verified identity document.
//   - SubmitAlgorithm: check the query against the contract (sealed with its
//     salt when confidential) and submit it.
//   - Run: start a run of the agreed query and wait for its outcome.
//   - Result: fetch a result bundle and verify it, down to the
//     coordinator's attestation, decrypting it for a recipient.
//     VerifyResult does the same offline, ResultRecords reads the result.
//   - AuditLog: verify the coordinator's audit log for the contract and keep
//     the checkpoint (package audit).
//
// The raw requests (SubmitContract, UploadEnvelope, ResultBundle) send and
// receive what they are given, checking nothing: for those who do the
// checks themselves, and for tests of the coordinator's own. cmd/cleanroom
// is flags, one call of this package, output.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/atls"
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
	// OnAttested, when set, is called with every fresh attestation that
	// verified (Attest, which every operation that sends data calls
	// first), e.g. to tell the user what was proven.
	OnAttested func(*Attestation)
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
		if ce := c.connectionError(err); ce != err {
			return nil, ce
		}
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

// ErrNotSigned reports a contract to register without a valid signature by
// every participant.
var ErrNotSigned = errors.New("not every participant signed validly")

// Registration is a contract the coordinator registered.
type Registration struct {
	api.ContractReceipt
	// Already reports a contract that was registered before; submitting
	// it again changes nothing.
	Already bool
}

// RegisterContract registers the client's contract, as a participant: it
// checks that text is the client's contract and that sigs (each labelled
// with its file, for messages) hold a valid signature by every participant (contracts.VerifySignatures), attests the
// coordinator afresh (Attest), then submits them. The coordinator checks
// the same, that the contract has not expired, and that its own evidence
// satisfies the contract's coordinator section.
func (c *Client) RegisterContract(ctx context.Context, text []byte, sigs []contracts.SignedBy) (*Registration, error) {
	if c.opts.Contract == nil {
		return nil, errors.New("registering a contract needs the contract")
	}
	parsed, err := contracts.Parse(text, contracts.ParseOptions{})
	if err != nil {
		return nil, err
	}
	if parsed.ID() != c.opts.Contract.ID() {
		return nil, fmt.Errorf("the text is contract %s, not the client's %s", parsed.ID(), c.opts.Contract.ID())
	}
	raw := make([][]byte, len(sigs))
	for i, s := range sigs {
		raw[i] = s.Data
	}
	if a := parsed.VerifySignatures(sigs); !a.Complete() {
		return nil, fmt.Errorf("%w:\n%w", ErrNotSigned, a.Err())
	}
	if _, err := c.Attest(ctx); err != nil {
		return nil, err
	}
	rec, err := c.SubmitContract(ctx, text, raw)
	var apiErr *api.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
		return &Registration{ContractReceipt: api.ContractReceipt{ContractID: parsed.ID().String()}, Already: true}, nil
	}
	if err != nil {
		return nil, err
	}
	return &Registration{ContractReceipt: *rec}, nil
}

// SubmitContract sends a contract text and signatures as they are, for
// the coordinator to check; RegisterContract is the registration a
// participant makes.
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
