package coordinator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/budget"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/blobs"
	"cleanroom.dev/cleanroom/coordinator/internal/engine"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
	"cleanroom.dev/cleanroom/coordinator/internal/stored"
)

// Run starts a run of the contract's algorithm for its algorithm provider
// or a result recipient, and waits for its outcome. Admission is refused
// (and logged, without counting a run) when the contract has expired, a
// dataset or the algorithm is missing, max_runs runs have started, or the
// run's charge would take the contract past its differential-privacy
// budget.
// Otherwise run.started is appended — the run counts from then on, whatever
// happens — and the run proceeds: decrypt, load, query, policy, encrypt,
// sign, run.finished. A refusal by the engine or the output policy is
// logged as run.refused. The run goes on if the caller disconnects.
//
// params are the values of the algorithm's parameters, name → text: each
// is checked against the contract's algorithm.parameters at admission
// (missing, undeclared, mistyped and out-of-range values are refused
// there, naming the parameter, before anything is decrypted), logged in
// run.started as canonical text and bound to the query as a value.
func (c *Coordinator) Run(ctx context.Context, actor ed25519.PublicKey, cid contracts.ID, params map[string]string) (*api.RunStatus, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	if err := requireRole(p, "start runs", contracts.RoleAlgorithmProvider, contracts.RoleResultRecipient); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	run, err := c.admit(ctx, sc.Contract, p, params)
	if err != nil {
		return nil, err
	}
	if err := c.execute(ctx, sc.Contract, run); err != nil {
		var refused *runRefusedError
		if errors.As(err, &refused) {
			return nil, refused.to(p.ID == refused.sealedTo)
		}
		return nil, err
	}
	rs, err := c.RunStatus(cid, run.RunID, actor)
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// admit checks admission and appends run.started or run.refused, under the
// contract's lock so concurrent requests cannot exceed max_runs.
func (c *Coordinator) admit(ctx context.Context, ct *contracts.Contract, p *contracts.Participant, params map[string]string) (*events.RunStarted, error) {
	cid := ct.ID()
	unlock := c.locks.lock(cid.String())
	defer unlock()
	var reasons []string
	var started *events.RunStarted
	values, err := ct.Algorithm.CheckParameters(params)
	if err != nil {
		reasons = append(reasons, "parameters: "+strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if len(values) == 0 {
		values = nil
	}
	c.state.View(func(v *state.Snapshot) {
		sc := v.Contract(cid)
		if ct.Expired(c.cfg.Now()) {
			reasons = append(reasons, fmt.Sprintf("the contract expired at %s", ct.ExpiresAt))
		}
		reasons = admissionState(sc, reasons)
		digests := map[string]string{}
		var missing []string
		for _, ds := range ct.Datasets {
			if up := sc.Datasets[ds.ID]; up != nil {
				digests[ds.ID] = up.Upload.Ciphertext.SHA256
			} else {
				missing = append(missing, fmt.Sprintf("%s (from %s)", ds.ID, ds.Provider))
			}
		}
		if len(missing) > 0 {
			reasons = append(reasons, "datasets not uploaded yet: "+strings.Join(missing, ", "))
		}
		for _, ds := range ct.Datasets {
			if up := sc.Datasets[ds.ID]; up != nil {
				if err := c.damage(up.Upload.Stored.SHA256); err != nil {
					reasons = append(reasons, err.Error())
				}
			}
		}
		if sc.Algorithm == nil {
			reasons = append(reasons, fmt.Sprintf("the algorithm has not been submitted (by %s)", ct.Algorithm.Provider))
		} else if err := c.damage(sc.Algorithm.Submitted.Text.SHA256); err != nil {
			reasons = append(reasons, err.Error())
		}
		var models []string
		for _, m := range ct.Models {
			if sm := sc.Models[m.Name]; sm == nil {
				models = append(models, fmt.Sprintf("%s (from %s)", m.Name, m.Provider))
			} else if err := c.damage(sm.Submitted.Module.SHA256); err != nil {
				reasons = append(reasons, err.Error())
			}
		}
		if len(models) > 0 {
			reasons = append(reasons, "models not submitted yet: "+strings.Join(models, ", "))
		}
		if used := sc.RunsUsed(); used >= ct.Output.MaxRuns {
			reasons = append(reasons, fmt.Sprintf("all %d runs the contract allows (max_runs) have been used", ct.Output.MaxRuns))
		}
		charge, err := privacyCharge(ct, sc)
		if err != nil {
			reasons = append(reasons, err.Error())
		}
		started = &events.RunStarted{
			RunID: events.NewID(), Number: sc.RunsUsed() + 1,
			AlgorithmSHA256: fmt.Sprintf("%x", ct.Algorithm.SHA256), Datasets: digests,
			Parameters: values, Privacy: charge,
		}
	})
	if len(reasons) > 0 {
		reason := strings.Join(reasons, "; ")
		if _, err := c.commit(ctx, &events.Event{
			Type: events.TypeRunRefused, Contract: cid.String(), Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
			RunRefused: &events.RunRefused{Stage: "admission", Reason: reason},
		}); err != nil {
			return nil, err
		}
		c.metrics.add("cleanroomd_runs_total", 1, "outcome", "refused")
		return nil, unprocessable(nil, "run refused: %s", reason)
	}
	if _, err := c.commit(ctx, &events.Event{
		Type: events.TypeRunStarted, Contract: cid.String(), Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		RunStarted: started,
	}); err != nil {
		return nil, err
	}
	c.logger.Info("run started", "contract", cid.String(), "run", started.RunID, "number", started.Number, "by", p.ID)
	return started, nil
}

// privacyCharge returns the charge of a contract's next run against its
// differential-privacy budget (nil when its runs are not differentially
// private), or why the budget cannot take it. The charge goes into
// run.started, appended before anything is decrypted.
func privacyCharge(ct *contracts.Contract, sc *state.Contract) (*events.PrivacyCharge, error) {
	dp := ct.DifferentialPrivacy()
	if dp == nil {
		return nil, nil
	}
	per, total := budget.PerRun(dp), budget.Total(dp)
	if !sc.Privacy.Fits(per, total) {
		spent := sc.Privacy.Spent()
		return nil, fmt.Errorf("the differential privacy budget is spent: %d runs have used ε=%v of epsilon_total %v and δ=%v of delta_total %v, and a run is charged ε=%v, δ=%v",
			sc.Privacy.Runs(), spent.Epsilon, total.Epsilon, spent.Delta, total.Delta, per.Epsilon, per.Delta)
	}
	next := sc.Privacy.Clone()
	next.Add(per)
	spent := next.Spent()
	return &events.PrivacyCharge{Epsilon: per.Epsilon, Delta: per.Delta, EpsilonSpent: spent.Epsilon, DeltaSpent: spent.Delta}, nil
}

// execute runs an admitted run to its end: finished or refused. A refusal
// by the engine or the output policy is a *runRefusedError.
func (c *Coordinator) execute(ctx context.Context, ct *contracts.Contract, run *events.RunStarted) error {
	start := time.Now()
	qctx, cancel := context.WithTimeout(ctx, c.cfg.RunTimeout)
	res, stage, err := c.query(qctx, ct, run)
	cancel()
	if err != nil {
		// The engine's detail never leaves the VM: not in the log, not to
		// the caller, not in the operator's log (see publicReason).
		refused := &runRefusedError{runID: run.RunID, stage: stage, public: boundReason(publicReason(stage, err))}
		var sealed []byte
		var ae *algorithmError
		var me *engine.ModelError
		if errors.As(err, &me) {
			// A model's failure is described to its provider alone: the
			// detail tells of the module's behaviour, which its code
			// chooses and which may depend on the rows it read. Everyone
			// else reads which model failed and how, in a fixed
			// vocabulary (docs/models.md §5).
			refused.private = strings.ToValidUTF8(boundReason(me.Error()), "\uFFFD")
			refused.public = me.Public()
			refused.sealedTo = me.Provider
			provider := ct.Participant(me.Provider)
			if sealed, err = cleanroom.SealReason(provider.PublicKey, ct.ID(), run.RunID, refused.private); err != nil {
				sealed, refused.private = nil, "" // the reason is bounded and UTF-8: this does not happen
			}
		} else if ct.Algorithm.Confidential && errors.As(err, &ae) {
			// Even the engine's explanation may describe a confidential
			// algorithm's text or output (its column names, its row
			// count): only its provider may read it, sealed to its key.
			// Everyone else, the operator included, reads a generic
			// reason.
			refused.private = strings.ToValidUTF8(refused.public, "\uFFFD")
			refused.public = confidentialReason(stage, ct.Algorithm.Provider)
			refused.sealedTo = ct.Algorithm.Provider
			provider := ct.Participant(ct.Algorithm.Provider)
			if sealed, err = cleanroom.SealReason(provider.PublicKey, ct.ID(), run.RunID, refused.private); err != nil {
				sealed, refused.private = nil, "" // the reason is bounded and UTF-8: this does not happen
			}
		}
		if _, cerr := c.commit(ctx, &events.Event{
			Type: events.TypeRunRefused, Contract: ct.ID().String(),
			RunRefused: &events.RunRefused{RunID: run.RunID, Stage: stage, Reason: refused.public, SealedReason: sealed, SealedTo: sealedTo(sealed, refused.sealedTo, ct)},
		}); cerr != nil {
			return cerr
		}
		c.metrics.add("cleanroomd_runs_total", 1, "outcome", "refused")
		c.logger.Info("run refused", "contract", ct.ID().String(), "run", run.RunID, "stage", stage, "reason", refused.public)
		return refused
	}
	defer res.Release()
	queried := time.Now()
	if err := c.release(ctx, ct, run, res); err != nil {
		// Nothing was released: say so in the log (if it still takes
		// events), so the run does not stay "running" until a restart.
		if _, cerr := c.commit(ctx, &events.Event{
			Type: events.TypeRunRefused, Contract: ct.ID().String(),
			RunRefused: &events.RunRefused{RunID: run.RunID, Stage: "release", Reason: asError(err).Message},
		}); cerr == nil {
			c.metrics.add("cleanroomd_runs_total", 1, "outcome", "refused")
		}
		return err
	}
	c.logger.Debug("run timings", "run", run.RunID, "query", queried.Sub(start).Round(time.Millisecond),
		"release", time.Since(queried).Round(time.Millisecond))
	c.metrics.add("cleanroomd_runs_total", 1, "outcome", "finished")
	c.metrics.add("cleanroomd_rows_suppressed_total", res.Suppressed)
	return nil
}

// query decrypts the datasets, loads them into a fresh locked-down engine
// session and runs the algorithm under the output policy. On failure it
// names the stage: "query" for the algorithm, the data or the engine,
// "policy" for the output policy.
func (c *Coordinator) query(ctx context.Context, ct *contracts.Contract, run *events.RunStarted) (*engine.Result, string, error) {
	a := c.algorithm(ct.ID())
	text, err := c.readAlgorithm(ct, a)
	if err != nil {
		return nil, "query", fmt.Errorf("reading the algorithm: %w", err)
	}
	// The engine opens while the datasets are decrypted; they meet when
	// the datasets are loaded.
	type opened struct {
		sess *engine.Session
		err  error
	}
	sessCh := make(chan opened, 1)
	go func() {
		if sess := c.spare.take(); sess != nil {
			sessCh <- opened{sess, nil}
			return
		}
		sess, err := engine.New(c.engineConfig())
		sessCh <- opened{sess, err}
	}()
	started := time.Now()
	sources, closeSources, err := c.openDatasets(ct, run)
	o := <-sessCh
	if o.err != nil || err != nil {
		closeSources()
		if o.sess != nil {
			o.sess.Close()
		}
		c.spare.fill()
		if o.err != nil {
			return nil, "query", fmt.Errorf("starting the engine: %w", o.err)
		}
		return nil, "query", err
	}
	sess := o.sess
	// The session reads the datasets' blocks until it is closed: close
	// the datasets only after it. Closing takes a moment and nothing waits
	// on it, so it happens off the run's path, once its result (a copy)
	// is out.
	defer func() {
		go func() {
			sess.Close()
			closeSources()
			c.spare.fill() // the next run's, now that this one's is closed
		}()
	}()
	for i, ds := range ct.Datasets {
		if err := sess.LoadSource(ctx, ds.ID, ds.Schema(), sources[i]); err != nil {
			return nil, "query", fmt.Errorf("loading dataset %s: %w", ds.ID, err)
		}
	}
	if err := c.loadModels(ctx, sess, ct); err != nil {
		return nil, "query", err
	}
	fault("run/datasets-loaded")
	loaded := time.Now()
	params, err := runParams(ct, run)
	if err != nil {
		return nil, "query", err
	}
	res, err := sess.Run(ctx, string(text), engine.ContractPolicy(ct), params...)
	c.logger.Debug("run timings", "run", run.RunID, "decrypt_and_load", loaded.Sub(started).Round(time.Millisecond),
		"engine", time.Since(loaded).Round(time.Millisecond))
	if err != nil {
		var refusal *engine.RefusalError
		if errors.As(err, &refusal) && refusal.Layer == engine.LayerPolicy {
			return nil, "policy", &algorithmError{err}
		}
		if errors.Is(err, engine.ErrResourceLimit) {
			return nil, "query", &algorithmError{&memoryLimitError{limit: c.cfg.QueryMemory, err: err}}
		}
		if errors.Is(err, engine.ErrModel) {
			return nil, "query", err
		}
		var source *engine.SourceError
		if errors.As(err, &source) {
			// A stored dataset that no longer reads back as stored: the
			// coordinator's own finding, which names the dataset.
			return nil, "query", err
		}
		if ctx.Err() != nil {
			return nil, "query", fmt.Errorf("the run passed its deadline of %s (cleanroomd --run-timeout)", c.cfg.RunTimeout)
		}
		return nil, "query", &algorithmError{&engineError{err}}
	}
	return res, "", nil
}

// openDatasets opens the stored envelope of every dataset of the run, in
// contract order, for the engine to read block by block at every scan
// (openDataset), into one pool of buffers for the run. The returned
// function closes them all and wipes and frees the buffers, and is to be
// called once nothing reads them, even when openDatasets also returns an
// error.
func (c *Coordinator) openDatasets(ct *contracts.Contract, run *events.RunStarted) ([]*storedDataset, func(), error) {
	var wg sync.WaitGroup
	bufs := stored.NewBuffers(allocPlain)
	errs := make([]error, len(ct.Datasets))
	out := make([]*storedDataset, len(ct.Datasets))
	for i, ds := range ct.Datasets {
		wg.Go(func() { out[i], errs[i] = c.openDataset(ct, ds.ID, run.Datasets[ds.ID], bufs) })
	}
	wg.Wait()
	closeAll := func() {
		for _, d := range out {
			if d != nil {
				d.Close()
			}
		}
		bufs.Close()
	}
	return out, closeAll, errors.Join(errs...)
}

// storedDataset is a dataset's stored envelope opened for a run, and its
// file.
type storedDataset struct {
	*stored.Dataset
	f *os.File
}

func (d *storedDataset) Close() {
	d.Dataset.Close()
	d.f.Close()
}

// openDataset opens the envelope the coordinator stored for a dataset's
// upload, for a run: its size must be the logged one, its header must
// hash to the logged digest, its block index must authenticate and count
// the logged rows. The rows themselves are read when the engine scans the
// dataset, block by block, every segment authenticated at every read
// (stored.Dataset.ReadBlock); a read that fails ends the run with an error
// naming the dataset.
//
// The stored envelope is not re-hashed: its data key was drawn inside the
// coordinator and is wrapped only to the coordinator's key, its header
// must hash to the digest logged at upload, and every segment's AES-GCM
// tag, under that key, binds that header, the segment's index and whether
// it is the last. No one outside the coordinator can make such a segment,
// so the bytes decrypted are the bytes stored at upload — whatever the
// provider, who knows the data key of the envelope it sent, or the host
// writes to the file.
func (c *Coordinator) openDataset(ct *contracts.Contract, datasetID, digestHex string, bufs *stored.Buffers) (*storedDataset, error) {
	var up *events.DatasetUploaded
	c.state.View(func(v *state.Snapshot) {
		if d := v.Contract(ct.ID()).Datasets[datasetID]; d != nil {
			up = d.Upload
		}
	})
	if up == nil || up.Ciphertext.SHA256 != digestHex {
		return nil, fmt.Errorf("dataset %s: the upload the run started with is not in the state", datasetID)
	}
	d, err := blobs.ParseDigest(up.Stored.SHA256)
	if err != nil {
		return nil, err
	}
	f, err := c.blobs.OpenSized(d, up.Stored.Size)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", datasetID, err)
	}
	ds := ct.Dataset(datasetID)
	schemaDigest := ds.SchemaDigest()
	want := envelope.Expect{Kind: envelope.KindDataset, ContractID: ct.ID(), ObjectID: datasetID, SchemaDigest: &schemaDigest}
	sd, err := stored.Open(f, up.Stored.Size, c.tee.Identity().HPKE(), want, func(h *envelope.Header) error {
		if got := fmt.Sprintf("%x", h.SHA256()); got != up.StoredHeaderSHA256 {
			return fmt.Errorf("dataset %s: the stored envelope's header digest is %s, the log records %s: the envelope was replaced on disk", datasetID, got, up.StoredHeaderSHA256)
		}
		return nil
	}, ds.Schema(), bufs)
	if err != nil {
		f.Close()
		return nil, err
	}
	if sd.Rows() != up.Rows {
		sd.Close()
		f.Close()
		return nil, fmt.Errorf("dataset %s: the stored envelope holds %d rows, the log records %d", datasetID, sd.Rows(), up.Rows)
	}
	return &storedDataset{Dataset: sd, f: f}, nil
}

// RunStatus returns a run's status to a participant of its contract.
func (c *Coordinator) RunStatus(cid contracts.ID, runID string, actor ed25519.PublicKey) (*api.RunStatus, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	var rs *api.RunStatus
	c.state.View(func(v *state.Snapshot) {
		if r := v.Run(runID); r != nil && r.Contract == cid {
			s := runStatus(r, p.ID == sealedReader(r, sc.Contract), privacyTotal(sc.Contract))
			rs = &s
		}
	})
	if rs == nil {
		return nil, notFound("contract %s has no run %q", cid, runID)
	}
	return rs, nil
}

// maxReason bounds a refusal reason recorded in the log: an engine error
// can quote values at length, and an event over events.MaxSize could not
// be logged, which would leave the run running.
const maxReason = 4 << 10

// boundReason cuts reason to maxReason bytes, on a character boundary.
func boundReason(reason string) string {
	if len(reason) <= maxReason {
		return reason
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut] + fmt.Sprintf(" … (%d more bytes not recorded)", len(reason)-cut)
}

// byteSize formats n bytes in the largest binary unit that divides it.
func byteSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// runRefusedError is a run refused by the engine or the output policy,
// after run.refused was appended. public is the reason everyone may read;
// private, when set, is the full reason that only the provider of the
// confidential algorithm may read.
type runRefusedError struct {
	runID, stage    string
	public, private string
	sealedTo        string // the participant who may read private
}

func (e *runRefusedError) Error() string {
	return fmt.Sprintf("run %s refused (%s): %s", e.runID, e.stage, e.public)
}

// to is the refusal as the API tells it to the caller: with the full
// reason for the algorithm's provider (a message the daemon's own log does
// not record), with the public one for anyone else.
func (e *runRefusedError) to(provider bool) *Error {
	if provider && e.private != "" {
		err := unprocessable(e, "run %s refused (%s): %s", e.runID, e.stage, e.private)
		err.Private = true
		return err
	}
	return unprocessable(e, "%s", e.Error())
}

// sealedTo is run.refused's sealed_to: the participant a sealed reason is
// sealed to, when that is not the algorithm provider (a model's
// provider); empty otherwise, as in the events written before models.
func sealedTo(sealed []byte, to string, ct *contracts.Contract) string {
	if sealed == nil || to == ct.Algorithm.Provider {
		return ""
	}
	return to
}

// sealedReader is the participant a run's sealed reason is sealed to.
func sealedReader(r *state.Run, ct *contracts.Contract) string {
	if r.SealedTo != "" {
		return r.SealedTo
	}
	return ct.Algorithm.Provider
}

// confidentialReason is the public reason of a confidential algorithm's
// refusal by the engine or the output policy.
func confidentialReason(stage, provider string) string {
	what := "the confidential algorithm failed or was refused in the engine"
	if stage == "policy" {
		what = "the confidential algorithm's result was refused by the output policy"
	}
	return fmt.Sprintf("%s; the reason may describe the algorithm or its output, so it is sealed to its provider %s", what, provider)
}

// algorithmError marks an error that arose while the engine ran the
// algorithm (statement checks, the query, the output policy): its
// explanation may describe the algorithm's text or output.
type algorithmError struct{ err error }

func (e *algorithmError) Error() string { return e.err.Error() }
func (e *algorithmError) Unwrap() error { return e.err }

// engineError marks an error the engine returned while running the query:
// its message may quote data.
type engineError struct{ err error }

func (e *engineError) Error() string { return e.err.Error() }
func (e *engineError) Unwrap() error { return e.err }

// memoryLimitError is a query that needed more than the query memory limit.
type memoryLimitError struct {
	limit int64
	err   error
}

func (e *memoryLimitError) Error() string {
	return fmt.Sprintf("the query needs more memory than this coordinator's query memory limit of %s (cleanroomd --query-memory)", byteSize(e.limit))
}
func (e *memoryLimitError) Unwrap() error { return e.err }

// duckdbClass matches the class DuckDB names at the start of its messages
// ("Conversion Error: ...", "Binder Error: ...").
var duckdbClass = regexp.MustCompile(`^([A-Z][A-Za-z]*(?: [A-Z][A-Za-z]*)* Error):`)

// publicReason says why a run failed in words that may leave the VM — the
// audit log, the API response, the coordinator's own log, all of which the
// host or other parties can read. It keeps the engine's explanation (which
// layer refused, the output policy's reason, the memory limit) and DuckDB's
// error class, but never DuckDB's message: that can quote data values (a
// failed cast names the value it could not convert) or pieces of a
// confidential algorithm's text. Errors from before the engine ran (reading
// and decrypting the datasets) are the coordinator's own and kept whole.
func publicReason(stage string, err error) string {
	var refusal *engine.RefusalError
	var ee *engineError
	var mem *memoryLimitError
	var model *engine.ModelError
	switch {
	case errors.As(err, &model):
		return model.Public()
	case errors.As(err, &mem):
		return mem.Error()
	case errors.As(err, &refusal):
		msg := "refused by the " + refusal.Layer.String() + ": " + refusal.Reason
		if refusal.Err != nil {
			msg += " (" + errorClass(refusal.Err) + ")"
		}
		return msg
	case errors.As(err, &ee):
		return "the query failed in the engine (" + errorClass(ee.err) + ")"
	}
	return err.Error()
}

// errorClass returns DuckDB's class of an error, or "an engine error".
func errorClass(err error) string {
	var de *duckdb.Error
	msg := err.Error()
	if errors.As(err, &de) {
		msg = de.Msg
	}
	if m := duckdbClass.FindStringSubmatch(msg); m != nil {
		return "DuckDB " + m[1]
	}
	return "an engine error"
}

// runParams reads the run's logged parameter values as values of their
// contract types, for the engine to bind.
func runParams(ct *contracts.Contract, run *events.RunStarted) ([]engine.Param, error) {
	var out []engine.Param
	for _, p := range ct.Algorithm.Parameters {
		text, ok := run.Parameters[p.Name]
		if !ok {
			return nil, fmt.Errorf("run %s: run.started gives no value for the parameter %s", run.RunID, p.Name)
		}
		v, err := p.Check(text)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", run.RunID, err)
		}
		out = append(out, engine.Param{Name: p.Name, Value: v})
	}
	return out, nil
}
