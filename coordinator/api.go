package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
)

// handler returns the coordinator's HTTP API (docs/api.md). Serve serves
// it over the attested TLS of package atls, which authenticates
// participants; every handler authorises by contract role.
func (c *Coordinator) handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		name := pattern
		mux.Handle(pattern, c.instrument(name, h))
	}
	route("GET /v1/health", c.handleHealth)
	route("GET /v1/identity", c.handleIdentity)
	route("POST /v1/attestation", c.handleAttestation)
	route("POST /v1/contracts", c.handleSubmitContract)
	route("GET /v1/contracts/{cid}", c.handleStatus)
	route("PUT /v1/contracts/{cid}/datasets/{ds}", c.handleUpload)
	route("PUT /v1/contracts/{cid}/algorithm", c.handleSubmitAlgorithm)
	route("GET /v1/contracts/{cid}/algorithm", c.handleGetAlgorithm)
	route("PUT /v1/contracts/{cid}/models/{name}", c.handleSubmitModel)
	route("GET /v1/contracts/{cid}/models/{name}", c.handleGetModel)
	route("POST /v1/contracts/{cid}/runs", c.handleRun)
	route("POST /v1/contracts/{cid}/suspend", c.handleSuspend)
	route("POST /v1/contracts/{cid}/resume", c.handleResume)
	route("DELETE /v1/contracts/{cid}/datasets/{ds}", c.handleWithdraw)
	route("GET /v1/contracts/{cid}/runs/{rid}", c.handleRunStatus)
	route("GET /v1/contracts/{cid}/runs/{rid}/result", c.handleResult)
	route("GET /v1/contracts/{cid}/log/{resource...}", c.handleLogView)
	route("GET /v1/log/", func(w http.ResponseWriter, r *http.Request) error {
		return notFound("the audit log is served per contract, not whole").
			withHint("GET /v1/contracts/{contract id}/log/" + strings.TrimPrefix(r.URL.Path, "/v1/log/") + " as an auditor of the contract (docs/log.md §7)")
	})
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.metrics.serve(w, c.isOperator(r), c.gauges)
	}))
	mux.Handle("/", c.instrument("unknown", func(w http.ResponseWriter, r *http.Request) error {
		return notFound("no such endpoint: %s %s", r.Method, r.URL.Path).withHint("see docs/api.md for the API")
	}))
	return mux
}

// instrument logs, times and counts a handler, and writes its error.
func (c *Coordinator) instrument(route string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		err := h(sw, r)
		if err != nil {
			e := asError(err)
			writeError(sw, e)
			level := slog.LevelInfo
			if e.Status >= 500 {
				level = slog.LevelError
			}
			msg := e.Message
			if e.Private {
				msg = "(told to the caller only)"
			}
			c.logger.Log(r.Context(), level, "request refused", "route", route, "status", e.Status, "code", e.Code,
				"error", msg, "peer", peerName(r), "remote", r.RemoteAddr)
			c.metrics.add("cleanroomd_refusals_total", 1, "code", e.Code)
		}
		c.metrics.add("cleanroomd_requests_total", 1, "route", route, "code", strconv.Itoa(sw.status()))
		c.metrics.observe(route, time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func peerName(r *http.Request) string {
	k := atls.RequestKey(r)
	if k == nil {
		return "anonymous"
	}
	return hex.EncodeToString(k[:8])
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, api.ErrorBody{Error: api.ErrorDetail{Code: e.Code, Message: e.Message, Hint: e.Hint}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// decodeJSON reads a bounded JSON body strictly into v.
func decodeJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, api.MaxJSONBody+1))
	if err != nil {
		return badRequest("reading the request body: %v", err)
	}
	if len(body) > api.MaxJSONBody {
		return newError(http.StatusRequestEntityTooLarge, "too_large", nil, "the request body is larger than %d bytes", api.MaxJSONBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed request body: %v", err)
	}
	if dec.More() {
		return badRequest("malformed request body: data after the JSON value")
	}
	return nil
}

func pathContract(r *http.Request) (contracts.ID, error) {
	id, err := contracts.ParseID(r.PathValue("cid"))
	if err != nil {
		return id, badRequest("%v", err)
	}
	return id, nil
}

func (c *Coordinator) gauges() map[string]float64 {
	size := float64(c.state.Size())
	var n int
	c.state.View(func(v *state.Snapshot) { n = len(v.Contracts()) })
	return map[string]float64{"cleanroomd_log_entries": size, "cleanroomd_contracts": float64(n)}
}

func (c *Coordinator) handleHealth(w http.ResponseWriter, r *http.Request) error {
	if err := c.failedErr(); err != nil {
		return err
	}
	h := api.Health{Status: "ok"}
	damaged := c.damagedCount()
	if damaged > 0 {
		h.Status = "degraded"
	}
	if c.isOperator(r) {
		var n int
		c.state.View(func(v *state.Snapshot) { n = len(v.Contracts()) })
		size := c.state.Size()
		h.LogSize, h.Contracts, h.Damaged = &size, &n, damaged
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

func (c *Coordinator) handleIdentity(w http.ResponseWriter, r *http.Request) error {
	doc, err := c.tee.IdentityDocument()
	if err != nil {
		return internal(err, "identity document: %v", err)
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

func (c *Coordinator) handleAttestation(w http.ResponseWriter, r *http.Request) error {
	var req api.AttestationRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	nonce, err := hex.DecodeString(req.Nonce)
	if err != nil || len(nonce) == 0 || len(nonce) > attest.MaxNonceSize {
		return badRequest("nonce must be 1 to %d bytes in hex", attest.MaxNonceSize)
	}
	doc, err := c.tee.FreshIdentityDocument(nonce)
	if err != nil {
		return internal(err, "fresh evidence: %v", err)
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

func (c *Coordinator) handleSubmitContract(w http.ResponseWriter, r *http.Request) error {
	var req api.SubmitContractRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	rec, err := c.SubmitContract(r.Context(), atls.RequestKey(r), []byte(req.Contract), req.Signatures)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.ContractReceipt{ContractID: rec.ContractID.String(), LogIndex: rec.LogIndex})
	return nil
}

func (c *Coordinator) handleStatus(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	st, err := c.Status(cid, atls.RequestKey(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (c *Coordinator) handleUpload(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	if r.ContentLength > c.cfg.MaxUploadBytes {
		return newError(http.StatusRequestEntityTooLarge, "too_large", nil,
			"the upload of %d bytes is larger than this coordinator's limit of %d bytes", r.ContentLength, c.cfg.MaxUploadBytes)
	}
	body := c.newSlowReader(w, r)
	rec, err := c.UploadDataset(r.Context(), atls.RequestKey(r), cid, r.PathValue("ds"), body, func() ([]byte, error) {
		v := r.Trailer.Get(api.UploadStatementTrailer)
		if v == "" {
			return nil, errors.New("the " + api.UploadStatementTrailer + " trailer is missing")
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("the %s trailer is not base64: %v", api.UploadStatementTrailer, err)
		}
		return b, nil
	})
	if err != nil {
		// Drain a little of what the client is still sending so it reads
		// our answer instead of a reset connection; for a second at most,
		// so a slow client cannot hold the handler here.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadDrainTime))
		io.CopyN(io.Discard, r.Body, 1<<20)
		return err
	}
	writeJSON(w, createdOr200(rec.Already), rec)
	return nil
}

func (c *Coordinator) handleSubmitAlgorithm(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	var req api.SubmitAlgorithmRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var text []byte
	if req.Text != nil {
		text = []byte(*req.Text)
	}
	rec, err := c.SubmitAlgorithm(r.Context(), atls.RequestKey(r), cid, text, req.Sealed)
	if err != nil {
		return err
	}
	writeJSON(w, createdOr200(rec.Already), rec)
	return nil
}

func (c *Coordinator) handleGetAlgorithm(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	view, err := c.Algorithm(cid, atls.RequestKey(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, view)
	return nil
}

func (c *Coordinator) handleRun(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	var req api.RunRequest
	if r.ContentLength != 0 && r.Header.Get("Content-Type") == "application/json" {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	} else if r.ContentLength > 0 {
		io.Copy(io.Discard, io.LimitReader(r.Body, api.MaxJSONBody))
	}
	rs, err := c.Run(r.Context(), atls.RequestKey(r), cid, req.Parameters)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, rs)
	return nil
}

func (c *Coordinator) handleRunStatus(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	rs, err := c.RunStatus(cid, r.PathValue("rid"), atls.RequestKey(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rs)
	return nil
}

func (c *Coordinator) handleResult(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	b, err := c.ResultBundle(r.Context(), atls.RequestKey(r), cid, r.PathValue("rid"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return nil
}

// handleLogView serves contract cid's view of the audit log (docs/log.md
// §7) to an auditor of cid: the checkpoint and hash tiles as they are, the
// entry bundles with every event of another contract redacted, and the
// signed view head.
func (c *Coordinator) handleLogView(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	_, p, err := c.participant(cid, atls.RequestKey(r))
	if err != nil {
		return err
	}
	if err := requireRole(p, "read the audit log", contracts.RoleAuditor); err != nil {
		return err
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = "/"+r.PathValue("resource"), ""
	c.log.ViewHandler(cid.String(), contractView{c, cid.String()}).ServeHTTP(w, r2)
	return nil
}

// contractView is a contract's view of the log: its own events and the
// coordinator's starts, as the state (rebuilt from the verified log) places
// them — never as an entry on disk claims, so an entry altered on disk is
// shown to the contract it belonged to, which detects the alteration, and
// to no one else.
type contractView struct {
	c   *Coordinator
	cid string
}

func (v contractView) Shows(ctx context.Context, index uint64) (bool, error) {
	if err := v.c.waitApplied(ctx, index+1); err != nil {
		return false, err
	}
	return v.c.state.Has(v.cid, index) || v.c.state.Has(events.CoordinatorScope, index), nil
}

func (v contractView) Count(ctx context.Context, size uint64) (uint64, error) {
	if err := v.c.waitApplied(ctx, size); err != nil {
		return 0, err
	}
	return v.c.state.Count(v.cid, size) + v.c.state.Count(events.CoordinatorScope, size), nil
}

// waitApplied waits until the first size log entries are applied to the
// state. Entries a published checkpoint covers are durable and applied
// moments after their append returns.
func (c *Coordinator) waitApplied(ctx context.Context, size uint64) error {
	if c.state.Size() >= size {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		c.applyMu.Lock()
		c.applyCond.Broadcast()
		c.applyMu.Unlock()
	})
	defer stop()
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	for c.state.Size() < size {
		if c.failed != nil {
			return c.failed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		c.applyCond.Wait()
	}
	return nil
}

// isOperator tells whether a request comes from the coordinator's operator
// (docs/api.md, "The operator"): it carries the operator token
// (Config.OperatorToken) as a bearer token, or comes from a loopback
// address while Config.OperatorLoopback is set.
func (c *Coordinator) isOperator(r *http.Request) bool {
	if c.cfg.OperatorLoopback {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
				return true
			}
		}
	}
	if c.cfg.OperatorToken == "" {
		return false
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	got, want := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(c.cfg.OperatorToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// slowReader bounds slow uploads: a client that sends nothing for
// Config.UploadIdleTimeout, or, after Config.UploadGracePeriod, averages
// less than minUploadRate, is cut off, so slow clients cannot hold
// connections and memory forever.
type slowReader struct {
	r           *http.Request
	rc          *http.ResponseController
	start       time.Time
	n           int64
	idle, grace time.Duration
}

const (
	minUploadRate   = 64 << 10 // bytes per second
	uploadDrainTime = time.Second
)

func (c *Coordinator) newSlowReader(w http.ResponseWriter, r *http.Request) io.Reader {
	return &slowReader{r: r, rc: http.NewResponseController(w), start: time.Now(),
		idle: c.cfg.UploadIdleTimeout, grace: c.cfg.UploadGracePeriod}
}

func (s *slowReader) Read(p []byte) (int, error) {
	s.rc.SetReadDeadline(time.Now().Add(s.idle)) // best effort: not every transport supports it
	n, err := s.r.Body.Read(p)
	s.n += int64(n)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, fmt.Errorf("no data for %s: the upload is cut off (%w)", s.idle, err)
	}
	if elapsed := time.Since(s.start); elapsed > s.grace && float64(s.n)/elapsed.Seconds() < minUploadRate {
		return n, fmt.Errorf("upload slower than %d bytes per second", minUploadRate)
	}
	return n, err
}

// createdOr200 is the status of a submission: 201 Created, or 200 for
// content the coordinator already held (a retry: nothing was created).
func createdOr200(already bool) int {
	if already {
		return http.StatusOK
	}
	return http.StatusCreated
}

func (c *Coordinator) handleSuspend(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	var req api.SuspendRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	rec, err := c.Suspend(r.Context(), atls.RequestKey(r), cid, req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}

func (c *Coordinator) handleResume(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	var req api.ResumeRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	rec, err := c.Resume(r.Context(), atls.RequestKey(r), cid, req.Approvals)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}

func (c *Coordinator) handleWithdraw(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	rec, err := c.Withdraw(r.Context(), atls.RequestKey(r), cid, r.PathValue("ds"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}
