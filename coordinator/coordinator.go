// Package coordinator is the Cleanroom coordinator: it keeps the contracts,
// datasets, algorithms and runs that participants give it, records every
// state change in its audit log before the change takes effect, runs the
// agreed query in the locked-down engine and releases results under the
// output policy.
//
// The log is the source of truth. At start the coordinator replays it to
// rebuild its state (package state), checks that every blob the log names
// is present, appends a coordinator.started event, and marks runs that were
// interrupted as aborted. While serving, each change is checked, appended
// durably, and only then applied. Large or secret material lives in
// content-addressed blobs (package blobs): envelopes and encrypted results
// as the ciphertext they are, contract and algorithm texts sealed.
package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/blobs"
	"cleanroom.dev/cleanroom/coordinator/internal/engine"
	"cleanroom.dev/cleanroom/coordinator/internal/eventlog"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
	"cleanroom.dev/cleanroom/coordinator/internal/tee"
)

// Version is the software version recorded in coordinator.started events.
var Version = "dev"

// Config configures a coordinator. The zero value of every field but
// DataDir has a documented default.
type Config struct {
	// DataDir holds the sealed identity, the audit log and the blobs.
	DataDir string
	// Attestation is the mode to initialise an empty DataDir with; for an
	// initialised one it must be empty or the directory's mode.
	Attestation Mode
	// MaxUploadBytes bounds one dataset envelope. Default 8 GiB.
	MaxUploadBytes int64
	// QueryMemory bounds the query engine's working memory for one run
	// (DuckDB's memory_limit). The datasets are not held in memory: the
	// engine decrypts the blocks it scans, as it scans them. Default 4 GiB.
	QueryMemory int64
	// SpillDir, when set, lets a run whose query needs more than
	// QueryMemory spill to DuckDB's encrypted temporary files in a
	// directory of its own inside SpillDir (removed when the run ends);
	// the key is drawn inside the VM and never written out. Without it
	// such a run is refused for its memory. Default: none.
	SpillDir string
	// MaxSpill bounds what one run may spill to SpillDir. Default
	// 100 GiB (engine.DefaultMaxSpill).
	MaxSpill int64
	// QueryThreads is the engine's thread count. Default: all cores.
	QueryThreads int
	// ModelMemory bounds the linear memory of one instance of a model
	// (one per query thread and model). Default 256 MiB
	// (engine.DefaultModelMemoryLimit).
	ModelMemory int64
	// RunTimeout is the deadline of a run's query, models included: a run
	// still going after it is interrupted and refused. Default 1 hour.
	RunTimeout time.Duration
	// UploadIdleTimeout cuts off an upload whose client sends nothing for
	// that long. Default 30 s.
	UploadIdleTimeout time.Duration
	// UploadGracePeriod is how long an upload may run before it must keep
	// up a minimum average rate (64 KiB/s) or be cut off. Default 30 s.
	UploadGracePeriod time.Duration
	// CheckpointInterval is how often the log publishes a signed
	// checkpoint. Default 1 s (the eventlog default).
	CheckpointInterval time.Duration
	// OperatorToken, when not empty, makes a request carrying the header
	// "Authorization: Bearer <OperatorToken>" the operator's: it gets every
	// series of /metrics and the counts of /v1/health, which no one else
	// gets (docs/api.md). At least 32 printable ASCII characters, no
	// spaces. Default: none.
	OperatorToken string
	// OperatorLoopback makes requests from a loopback address the
	// operator's without a token. Off by default: a proxy inside the VM
	// would make every remote client look local.
	OperatorLoopback bool
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// RetentionInterval is how often the coordinator deletes what expired
	// contracts still hold (envelopes, data keys, results); it also does
	// at start. Default 10 s (DefaultRetentionInterval).
	RetentionInterval time.Duration
}

// Defaults.
const (
	DefaultMaxUploadBytes = 8 << 30
	DefaultQueryMemory    = 4 << 30

	DefaultRunTimeout = time.Hour

	DefaultUploadIdleTimeout = 30 * time.Second
	DefaultUploadGracePeriod = 30 * time.Second
)

func (c *Config) setDefaults() {
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.QueryMemory <= 0 {
		c.QueryMemory = DefaultQueryMemory
	}
	if c.UploadIdleTimeout <= 0 {
		c.UploadIdleTimeout = DefaultUploadIdleTimeout
	}
	if c.UploadGracePeriod <= 0 {
		c.UploadGracePeriod = DefaultUploadGracePeriod
	}
	if c.RunTimeout <= 0 {
		c.RunTimeout = DefaultRunTimeout
	}
	if c.QueryThreads <= 0 {
		c.QueryThreads = runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = DefaultRetentionInterval
	}
}

// Coordinator is a running coordinator. It is safe for concurrent use.
type Coordinator struct {
	cfg      Config
	tee      *tee.Instance
	identity *Identity // what tee shows the world
	log      *eventlog.Log
	blobs    *blobs.Store
	state    *state.State
	sealer   *sealer
	metrics  *metrics
	logger   *slog.Logger

	evidence       []byte // encoded static evidence
	evidenceDigest [32]byte

	// locks serialises the check-append-apply of changes per contract, so
	// two requests cannot both pass a check that only one may pass.
	locks keyedMutex
	// chains serialises the appends of one events scope (a contract, or
	// the coordinator's starts), so each event links to the one before.
	chains keyedMutex
	// applyMu and applied order Apply calls by log index when appends of
	// different contracts complete out of order.
	applyMu   sync.Mutex
	applyCond *sync.Cond
	failed    error // set when the log and the state may disagree

	damagedMu sync.Mutex
	damaged   map[string]error // blob digest → why it cannot be used
	// replaying defers the damage reports of a replay until the deletions
	// it finishes are done: a blob the log deleted is missing, not damaged.
	replaying bool

	stopRetention chan struct{} // closed by Close
	closeOnce     sync.Once

	spare spareSession // the next run's engine session, opened ahead
}

// Open opens (initialising if needed) the data directory, replays the
// audit log into the state, and records the start. It refuses to start
// from a log that does not verify, an event that contradicts the state, or
// a blob the log names that is missing or damaged.
func Open(ctx context.Context, cfg Config) (*Coordinator, error) {
	cfg.setDefaults()
	if cfg.DataDir == "" {
		return nil, errors.New("coordinator: no data directory")
	}
	if err := checkOperatorToken(cfg.OperatorToken); err != nil {
		return nil, err
	}
	if cfg.SpillDir != "" {
		if err := os.MkdirAll(cfg.SpillDir, 0o700); err != nil {
			return nil, fmt.Errorf("coordinator: the spill directory (--spill-dir): %w", err)
		}
	}
	if cfg.MaxSpill < 0 {
		return nil, fmt.Errorf("coordinator: MaxSpill (--max-spill) is %d bytes; it must not be negative", cfg.MaxSpill)
	}
	// The log library reports through klog; route it into our structured
	// log (process-wide: the last coordinator opened wins), its routine
	// INFO (such as "Failed to fetch old checkpoint" before the first
	// checkpoint) as DEBUG: its warnings and errors keep their level.
	klog.SetSlogLogger(slog.New(demoteInfo{cfg.Logger.With("component", "tessera").Handler()}))
	inst, err := tee.OpenOrInit(cfg.DataDir, cfg.Attestation)
	if err != nil {
		return nil, err
	}
	if inst.Platform() == contracts.PlatformSEVSNPSimulated {
		cfg.Logger.Warn("SIMULATED attestation: this coordinator protects nothing; use it only for development, tests and demos")
	}
	sl, err := newSealer(inst.Identity())
	if err != nil {
		return nil, err
	}
	store, err := blobs.Open(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return nil, err
	}
	evidence, err := inst.StaticEvidence().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding evidence: %w", err)
	}
	c := &Coordinator{
		cfg:            cfg,
		tee:            inst,
		blobs:          store,
		sealer:         sl,
		metrics:        newMetrics(),
		logger:         cfg.Logger,
		evidence:       evidence,
		evidenceDigest: sha256.Sum256(evidence),
	}
	if c.identity, err = identityOf(inst); err != nil {
		return nil, err
	}
	c.applyCond = sync.NewCond(&c.applyMu)
	c.state = state.New(c.loadContract)
	lg, err := eventlog.Open(filepath.Join(cfg.DataDir, "log"), inst.Identity().Signer(), tlog.Origin(inst.PublicKey()),
		&eventlog.Options{CheckpointInterval: cfg.CheckpointInterval})
	if err != nil {
		return nil, err
	}
	c.log = lg
	c.replaying = true
	named, err := c.replay(ctx)
	if err != nil {
		lg.Close(context.Background())
		return nil, err
	}
	// The log first, then the files: a deletion the log records but a
	// crash interrupted is finished, and a blob no event names removed,
	// before anything is served.
	if err := c.finishDeletions(); err != nil {
		lg.Close(context.Background())
		return nil, err
	}
	if err := c.removeUnnamed(named); err != nil {
		lg.Close(context.Background())
		return nil, err
	}
	c.damagedMu.Lock()
	c.replaying = false
	for digest, err := range c.damaged {
		c.logger.Error("damaged blob: what needs it will be refused", "blob", digest, "err", err)
	}
	c.damagedMu.Unlock()
	if err := c.recordStart(ctx); err != nil {
		lg.Close(context.Background())
		return nil, err
	}
	c.finishAmendments(ctx)
	if err := c.expire(ctx); err != nil {
		lg.Close(context.Background())
		return nil, err
	}
	c.stopRetention = make(chan struct{})
	go c.retain(c.stopRetention, cfg.RetentionInterval)
	// The first run's engine session opens now, so that Open returns a
	// coordinator ready to run as fast as it will once serving.
	c.spare.open = func() (*engine.Session, error) { return engine.New(c.engineConfig()) }
	c.spare.logger = c.logger
	c.spare.fill()
	c.spare.wait()
	return c, nil
}

// MinOperatorTokenLength is the shortest operator token accepted.
const MinOperatorTokenLength = 32

// checkOperatorToken refuses a token that is short or not printable ASCII
// without spaces (it travels in an HTTP header).
func checkOperatorToken(t string) error {
	if t == "" {
		return nil
	}
	if len(t) < MinOperatorTokenLength {
		return fmt.Errorf("coordinator: the operator token has %d characters, at least %d are needed (e.g. openssl rand -hex 32)", len(t), MinOperatorTokenLength)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return fmt.Errorf("coordinator: the operator token may hold only printable ASCII characters without spaces (character %d is not)", i+1)
		}
	}
	return nil
}

// replay rebuilds the state from the log and checks the blobs it names.
// It returns the digests of every blob some event names.
func (c *Coordinator) replay(ctx context.Context) (map[string]bool, error) {
	start := time.Now()
	named := map[string]bool{}
	err := c.log.Replay(ctx, func(idx uint64, entry []byte) error {
		e, err := events.Decode(entry)
		if err != nil {
			return fmt.Errorf("log entry %d: %w", idx, err)
		}
		if err := c.checkBlobs(e); err != nil {
			return fmt.Errorf("log entry %d (%s): %w", idx, e.Type, err)
		}
		for _, b := range e.Blobs() {
			named[b.SHA256] = true
		}
		return c.state.Apply(idx, e, tlog.HashLeaf(entry))
	})
	if err != nil {
		return nil, fmt.Errorf("replaying the audit log: %w", err)
	}
	c.logger.Info("state rebuilt from the audit log", "events", c.state.Size(), "took", time.Since(start).Round(time.Millisecond))
	return named, nil
}

// removeUnnamed removes, at start, every blob in the store that no event
// of the log names. A blob is made durable before the event that names it
// is appended (an upload's stored envelope, a result, a contract,
// algorithm or model text), so a crash in between leaves one: a request
// that was never acknowledged, whose ciphertext no one may use. Keeping it
// would keep encrypted rows the log does not account for (a withdrawal or
// an expiry would never delete them), so it goes before anything is
// served.
func (c *Coordinator) removeUnnamed(named map[string]bool) error {
	stored, err := c.blobs.List()
	if err != nil {
		return err
	}
	for _, d := range stored {
		if named[d.String()] {
			continue
		}
		c.logger.Warn("removing a blob no log event names: a crash came between storing it and logging it", "blob", d.String())
		if err := c.blobs.Remove(d); err != nil {
			return fmt.Errorf("removing blob %s, which no log event names: %w", d, err)
		}
	}
	return nil
}

// checkBlobs checks that the blobs an event names are present with their
// recorded size, so damage is found at start, not in the middle of a run.
// A damaged contract document stops the start (the state cannot be built
// without the contract); a damaged envelope, algorithm text or result is
// recorded, reported by the API and refused where it is needed, while the
// coordinator serves everything else.
func (c *Coordinator) checkBlobs(e *events.Event) error {
	check := func(b events.Blob) error {
		d, err := blobs.ParseDigest(b.SHA256)
		if err != nil {
			return err
		}
		return c.blobs.Check(d, b.Size)
	}
	var ref *events.Blob
	var what string
	switch e.Type {
	case events.TypeContractRegistered:
		if err := check(e.ContractRegistered.Document); err != nil {
			return fmt.Errorf("the document of contract %s: %w", e.Contract, err)
		}
		return nil
	case events.TypeDatasetUploaded:
		ref, what = &e.DatasetUploaded.Stored, "the stored envelope of dataset "+e.DatasetUploaded.Dataset
	case events.TypeAlgorithmSubmitted:
		ref, what = &e.AlgorithmSubmitted.Text, "the algorithm"
	case events.TypeModelSubmitted:
		ref, what = &e.ModelSubmitted.Module, "the module of model "+e.ModelSubmitted.Name
	case events.TypeRunFinished:
		ref, what = &e.RunFinished.EncryptedResult, "the result of run "+e.RunFinished.RunID
	default:
		return nil
	}
	if err := check(*ref); err != nil {
		c.markDamaged(ref.SHA256, fmt.Errorf("%s of contract %s is damaged on disk: %w", what, e.Contract, err))
	}
	return nil
}

// markDamaged records a damaged blob.
func (c *Coordinator) markDamaged(digest string, err error) {
	c.damagedMu.Lock()
	defer c.damagedMu.Unlock()
	if c.damaged == nil {
		c.damaged = map[string]error{}
	}
	if _, ok := c.damaged[digest]; !ok {
		c.damaged[digest] = err
		if !c.replaying {
			c.logger.Error("damaged blob: what needs it will be refused", "blob", digest, "err", err)
		}
	}
}

// damage returns the damage recorded for a blob, or nil.
func (c *Coordinator) damage(digest string) error {
	c.damagedMu.Lock()
	defer c.damagedMu.Unlock()
	return c.damaged[digest]
}

// damagedCount returns how many blobs are known to be damaged.
func (c *Coordinator) damagedCount() int {
	c.damagedMu.Lock()
	defer c.damagedMu.Unlock()
	return len(c.damaged)
}

// recordStart appends coordinator.started and aborts interrupted runs.
func (c *Coordinator) recordStart(ctx context.Context) error {
	_, err := c.commit(ctx, &events.Event{
		Type: events.TypeCoordinatorStarted,
		CoordinatorStarted: &events.CoordinatorStarted{
			Platform:       string(c.tee.Platform()),
			Measurement:    fmt.Sprintf("%x", c.tee.Measurement()),
			PublicKey:      c.tee.PublicKey().Fingerprint().String(),
			EvidenceSHA256: fmt.Sprintf("%x", c.evidenceDigest),
			Software:       Version,
		},
	})
	if err != nil {
		return err
	}
	var interrupted []*state.Run
	c.state.View(func(v *state.Snapshot) { interrupted = v.RunningRuns() })
	for _, run := range interrupted {
		_, err := c.commit(ctx, &events.Event{
			Type:     events.TypeRunAborted,
			Contract: run.Contract.String(),
			RunAborted: &events.RunAborted{RunID: run.ID,
				Reason: "the coordinator stopped while the run was in progress; nothing was released"},
		})
		if err != nil {
			return err
		}
		c.metrics.add("cleanroomd_runs_total", 1, "outcome", "aborted")
		c.logger.Warn("run interrupted by a restart marked aborted", "contract", run.Contract.String(), "run", run.ID)
	}
	return nil
}

// commit appends e durably and applies it to the state, in log order. It
// fills in the envelope fields: a fresh id and salt, the time, and the link
// to the previous event of e's scope (seq and prev, docs/events.md). The
// events of one scope are committed one at a time, so each names the leaf
// hash of the one before it; different scopes still share batches. An
// error after the append leaves the coordinator failed: the log may hold
// an event the state lacks, and only a restart (replay) reconciles them.
func (c *Coordinator) commit(ctx context.Context, e *events.Event) (uint64, error) {
	if err := c.failedErr(); err != nil {
		return 0, err
	}
	unlock := c.chains.lock(e.Scope())
	defer unlock()
	if err := c.failedErr(); err != nil {
		return 0, err // the chain's last link may be unknown
	}
	seq, prev := c.state.ChainHead(e.Scope())
	e.V, e.ID, e.Salt, e.Time = events.Version, events.NewID(), events.NewSalt(), c.cfg.Now().UTC()
	e.Seq, e.Prev = seq+1, ""
	if seq > 0 {
		e.Prev = hex.EncodeToString(prev[:])
	}
	entry, err := events.Encode(e)
	if err != nil {
		return 0, internal(err, "encoding %s event: %v", e.Type, err)
	}
	fault(string(e.Type) + "/before-append")
	idx, err := c.log.Append(ctx, entry)
	fault(string(e.Type) + "/after-append")
	if err != nil {
		if errors.Is(err, eventlog.ErrFailed) || !errors.Is(err, context.Canceled) {
			c.fail(fmt.Errorf("appending to the audit log: %w", err))
		}
		return 0, newError(503, "unavailable", err, "the audit log refused the event: %v", err)
	}
	c.applyMu.Lock()
	for c.state.Size() < idx && c.failed == nil {
		c.applyCond.Wait()
	}
	if c.failed != nil {
		c.applyMu.Unlock()
		return 0, c.failedErr()
	}
	err = c.state.Apply(idx, e, tlog.HashLeaf(entry))
	c.applyCond.Broadcast()
	c.applyMu.Unlock()
	if err != nil {
		c.fail(err)
		return 0, internal(err, "applying %s event %d: %v", e.Type, idx, err)
	}
	c.metrics.add("cleanroomd_events_total", 1, "type", string(e.Type))
	return idx, nil
}

func (c *Coordinator) fail(err error) {
	c.applyMu.Lock()
	if c.failed == nil {
		c.failed = err
		c.logger.Error("coordinator failed: restart it to replay the log", "err", err)
	}
	c.applyCond.Broadcast()
	c.applyMu.Unlock()
}

func (c *Coordinator) failedErr() error {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	if c.failed != nil {
		return newError(503, "unavailable", c.failed, "the coordinator must be restarted: %v", c.failed)
	}
	return nil
}

// Close stops the coordinator: it waits for a checkpoint covering every
// event (bounded by ctx) and closes the log.
func (c *Coordinator) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { close(c.stopRetention) })
	c.spare.close()
	return c.log.Close(ctx)
}

// loadContract reads and parses a registered contract's sealed document.
// Expired contracts load: history stays readable.
func (c *Coordinator) loadContract(r *events.ContractRegistered) (*contracts.Contract, error) {
	text, err := c.readSealed("contract", r.Document)
	if err != nil {
		return nil, err
	}
	if fmt.Sprintf("%x", sha256.Sum256(text)) != r.DocSHA256 {
		return nil, fmt.Errorf("contract document does not hash to %s", r.DocSHA256)
	}
	return contracts.Parse(text, contracts.ParseOptions{AllowExpired: true})
}

func (c *Coordinator) readSealed(kind string, b events.Blob) ([]byte, error) {
	d, err := blobs.ParseDigest(b.SHA256)
	if err != nil {
		return nil, err
	}
	sealed, err := c.blobs.Get(d, b.Size)
	if err != nil {
		return nil, err
	}
	return c.sealer.open(kind, sealed)
}

func (c *Coordinator) putSealed(kind string, plain []byte) (events.Blob, error) {
	sealed := c.sealer.seal(kind, plain)
	d, err := c.blobs.Put(sealed)
	if err != nil {
		return events.Blob{}, err
	}
	return events.Blob{SHA256: d.String(), Size: int64(len(sealed))}, nil
}

// engineConfig is the engine configuration of a run.
func (c *Coordinator) engineConfig() engine.Config {
	return engine.Config{MemoryLimit: c.cfg.QueryMemory, Threads: c.cfg.QueryThreads, ModelMemoryLimit: c.cfg.ModelMemory,
		SpillDir: c.cfg.SpillDir, MaxSpill: c.cfg.MaxSpill}
}

// keyedMutex is a set of mutexes by key, created on demand.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*sync.Mutex{}
	}
	m := k.locks[key]
	if m == nil {
		m = &sync.Mutex{}
		k.locks[key] = m
	}
	k.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// demoteInfo is a slog.Handler that passes a dependency's INFO records on
// as DEBUG: they are the library's routine, not the operator's business.
type demoteInfo struct{ h slog.Handler }

func demote(l slog.Level) slog.Level {
	if l < slog.LevelWarn {
		return min(l, slog.LevelDebug)
	}
	return l
}

func (d demoteInfo) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, demote(l))
}

func (d demoteInfo) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return d.h.Handle(ctx, r)
}

func (d demoteInfo) WithAttrs(as []slog.Attr) slog.Handler { return demoteInfo{d.h.WithAttrs(as)} }
func (d demoteInfo) WithGroup(n string) slog.Handler       { return demoteInfo{d.h.WithGroup(n)} }
