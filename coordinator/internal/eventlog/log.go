// Package eventlog is the coordinator's audit log: a durable, append-only
// Merkle-tree transparency log (C2SP tlog-tiles, checkpoints signed with the
// coordinator's Ed25519 key) kept on local disk with Tessera's POSIX driver.
//
// The coordinator appends an event before the state change it records takes
// effect; Append returns only once the event is durably stored (see Append).
// At start, Replay verifies the stored log and returns every event so the
// state can be rebuilt. ViewHandler serves one view of the log read-only —
// the entries a ViewIndex says it shows, the others redacted, and signed
// view heads — to the auditors of a contract, who verify it with package
// cleanroom/tlog; Handler serves the whole log. Entries are opaque bytes
// here. The layout, checkpoint format, views and guarantees are described
// in docs/log.md.
package eventlog

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/durable"
)

// Defaults of Options.
const (
	// DefaultBatchMaxAge is how long the first entry of a batch waits for
	// others before the batch is written.
	DefaultBatchMaxAge = 250 * time.Microsecond
	// DefaultBatchMaxSize is the most entries written in one batch.
	DefaultBatchMaxSize = 256
	// DefaultCheckpointInterval is how often a new checkpoint is signed and
	// published when the log has grown.
	DefaultCheckpointInterval = time.Second
	// MinCheckpointInterval is the shortest checkpoint interval accepted.
	MinCheckpointInterval = 100 * time.Millisecond
)

// Options tune a Log. The zero value gives the defaults above.
type Options struct {
	// BatchMaxAge bounds how long an appended entry waits for others to be
	// written with it. Entries that arrive while a batch is being written
	// form the next batch (group commit), so concurrent appenders share the
	// cost of the fsyncs whatever this value; a small value keeps a lone
	// append fast.
	BatchMaxAge time.Duration
	// BatchMaxSize bounds the number of entries written in one batch.
	BatchMaxSize uint
	// CheckpointInterval is how often a checkpoint covering new entries is
	// signed and published; it bounds how long WaitCheckpoint waits.
	CheckpointInterval time.Duration
}

func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.BatchMaxAge < 0 {
		return r, fmt.Errorf("BatchMaxAge %v is negative", r.BatchMaxAge)
	}
	if r.BatchMaxAge == 0 {
		r.BatchMaxAge = DefaultBatchMaxAge
	}
	if r.BatchMaxSize == 0 {
		r.BatchMaxSize = DefaultBatchMaxSize
	}
	if r.CheckpointInterval == 0 {
		r.CheckpointInterval = DefaultCheckpointInterval
	}
	if r.CheckpointInterval < MinCheckpointInterval {
		return r, fmt.Errorf("CheckpointInterval %v is shorter than the minimum %v", r.CheckpointInterval, MinCheckpointInterval)
	}
	return r, nil
}

// Errors of Append.
var (
	// ErrClosed is returned by a Log after Close.
	ErrClosed = errors.New("event log is closed")
	// ErrFailed is returned once storing an entry has failed: whether the
	// failed entry is in the log is unknown until the log is reopened and
	// replayed, so the Log refuses every later append.
	ErrFailed = errors.New("event log failed")
	// ErrEntryTooLarge reports an entry over tlog.MaxEntrySize bytes, or an
	// empty one (an entry of length zero is how views redact entries).
	ErrEntryTooLarge = errors.New("event log entry too large or empty")
)

// lockFile is the name, inside the log directory, of the file locked by the
// Log that owns the directory.
const lockFile = ".lock"

// treeStatePath is where Tessera's POSIX driver keeps the integrated tree
// size and root, relative to the log directory.
const treeStatePath = ".state/treeState"

// Log is an open event log. Its methods are safe for concurrent use.
type Log struct {
	dir      string
	verifier *tlog.Verifier
	signer   *noteSigner
	opts     Options

	appender *tessera.Appender
	reader   tessera.LogReader
	shutdown func(context.Context) error
	awaiter  *tessera.PublicationAwaiter
	cancel   context.CancelFunc
	lock     *os.File

	// kept is the checkpoint found on disk at Open, nil for a new log.
	kept *tlog.Checkpoint

	mu       sync.RWMutex // guards closed and failed; held for reading while an Append queues
	closed   bool
	failed   error
	inflight sync.WaitGroup

	// The group committer: appends wait in queue while a batch is being
	// written, then all of them are handed to Tessera at once.
	qmu           sync.Mutex
	qcond         *sync.Cond
	queue         []*pending
	stopping      bool
	committerDone chan struct{}

	served servedCheckpoint
}

// Open opens the event log stored in dir, creating it if dir is empty or
// absent. Checkpoints are signed with signer, which must be an Ed25519 key
// (the coordinator's: cleanroom.Identity.Signer()), under origin, which is
// both the checkpoint's first line and the note key name; the coordinator
// uses tlog.Origin(its public key). A log whose stored checkpoint does not
// verify under this key and origin is refused, as is a directory another
// Log (in this process or another) has open.
func Open(dir string, signer crypto.Signer, origin string, opts *Options) (*Log, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("event log options: %w", err)
	}
	ns, verifier, err := newNoteSigner(origin, signer)
	if err != nil {
		return nil, fmt.Errorf("event log %s: %w", dir, err)
	}
	if err := makeDir(dir); err != nil {
		return nil, fmt.Errorf("event log %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, verifier: verifier, signer: ns, opts: o, lock: lock, committerDone: make(chan struct{})}
	l.qcond = sync.NewCond(&l.qmu)
	ok := false
	defer func() {
		if !ok {
			if l.cancel != nil {
				l.cancel()
			}
			lock.Close()
		}
	}()

	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	switch {
	case err == nil:
		if l.kept, err = verifier.VerifyCheckpoint(raw); err != nil {
			return nil, fmt.Errorf("event log %s holds a checkpoint that is not this coordinator's (origin %q): %w", dir, origin, err)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("event log %s: %w", dir, err)
	}
	if l.kept != nil {
		// Tessera would start a missing tree afresh and sign an empty
		// checkpoint over the one found here.
		if _, err := os.Stat(filepath.Join(dir, treeStatePath)); err != nil {
			return nil, fmt.Errorf("event log %s has a checkpoint of %d entries but its tree state (%s) cannot be read: %w; refusing to start the log afresh", dir, l.kept.Size(), treeStatePath, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return nil, fmt.Errorf("event log %s: %w", dir, err)
	}
	topts := tessera.NewAppendOptions().
		WithCheckpointSigner(ns).
		WithBatching(o.BatchMaxSize, o.BatchMaxAge).
		WithCheckpointInterval(o.CheckpointInterval).
		WithCheckpointRepublishInterval(max(tessera.DefaultCheckpointRepublishInterval, o.CheckpointInterval)).
		WithShutdownTimeout(o.CheckpointInterval*3 + 5*time.Second)
	l.appender, l.shutdown, l.reader, err = tessera.NewAppender(ctx, driver, topts)
	if err != nil {
		return nil, fmt.Errorf("event log %s: %w", dir, err)
	}
	if l.kept != nil {
		n, err := l.reader.IntegratedSize(ctx)
		if err != nil {
			return nil, fmt.Errorf("event log %s: %w", dir, err)
		}
		if n < l.kept.Size() {
			return nil, fmt.Errorf("event log %s: the tree state has %d entries but the checkpoint signs %d: the log was rolled back or damaged; refusing to overwrite it", dir, n, l.kept.Size())
		}
	}
	poll := min(o.CheckpointInterval/10, 20*time.Millisecond)
	l.awaiter = tessera.NewPublicationAwaiter(ctx, l.reader.ReadCheckpoint, poll)
	go l.commit(ctx)
	ok = true
	return l, nil
}

// makeDir creates dir if needed, durably.
func makeDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(filepath.Clean(dir)))
}

// lockDir takes an exclusive flock on dir/.lock. flock locks belong to the
// open file, so a second Open of the same directory fails even in the same
// process (Tessera's own fcntl locks do not exclude the same process).
func lockDir(dir string) (*os.File, error) {
	p := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("event log %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("event log %s is already open (locked through %s): only one coordinator may write a log", dir, p)
		}
		return nil, fmt.Errorf("event log %s: locking %s: %w", dir, p, err)
	}
	return f, nil
}

// Verifier returns the Verifier for this log's checkpoints.
func (l *Log) Verifier() *tlog.Verifier { return l.verifier }

// Append adds entry to the log and returns its index. It returns only once
// the entry is durable: written to its entry bundle, integrated into the
// Merkle tree (hash tiles) and recorded in the tree state, each file written
// to a temporary file with O_SYNC, renamed into place and its directory
// fsynced. After a crash at any later moment, the reopened log holds the
// entry at that index with the same bytes. It is not yet covered by a
// published checkpoint; WaitCheckpoint waits for one.
//
// Entries appended by one goroutine get increasing indices in call order;
// concurrent appends are written together in batches and get distinct
// indices in no set order. ctx only stops Append before the entry is queued:
// once queued, Append waits for the outcome so that it is never unknown to
// the caller because of a cancelled context.
//
// An error other than ErrEntryTooLarge or ErrClosed means the write failed
// and the entry may or may not be in the log; the Log then refuses all later
// appends with ErrFailed. The coordinator must not apply the state change,
// and must restart: Replay tells what the log holds.
func (l *Log) Append(ctx context.Context, entry []byte) (uint64, error) {
	if len(entry) > tlog.MaxEntrySize || len(entry) == 0 {
		return 0, fmt.Errorf("%w: %d bytes, 1 to %d", ErrEntryTooLarge, len(entry), tlog.MaxEntrySize)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return 0, ErrClosed
	}
	if l.failed != nil {
		err := l.failed
		l.mu.RUnlock()
		return 0, err
	}
	l.inflight.Add(1)
	p := &pending{entry: tessera.NewEntry(bytes.Clone(entry)), done: make(chan result, 1)}
	l.qmu.Lock()
	l.queue = append(l.queue, p)
	l.qcond.Signal()
	l.qmu.Unlock()
	l.mu.RUnlock()
	defer l.inflight.Done()

	r := <-p.done
	if r.err != nil {
		err := fmt.Errorf("%w: storing an entry: %v (it may or may not be in the log: reopen the log and replay it)", ErrFailed, r.err)
		l.mu.Lock()
		if l.failed == nil {
			l.failed = err
		}
		l.mu.Unlock()
		return 0, err
	}
	return r.index, nil
}

type pending struct {
	entry *tessera.Entry
	done  chan result
}

type result struct {
	index uint64
	err   error
}

// commit is the group committer. Tessera writes one batch at a time; entries
// that arrive meanwhile wait here and are then queued to Tessera together,
// within microseconds, so they land in one batch (one set of fsyncs) instead
// of many small batches each waiting their turn.
func (l *Log) commit(ctx context.Context) {
	defer close(l.committerDone)
	for {
		l.qmu.Lock()
		for len(l.queue) == 0 && !l.stopping {
			l.qcond.Wait()
		}
		batch := l.queue
		l.queue = nil
		stop := l.stopping && len(batch) == 0
		l.qmu.Unlock()
		if stop {
			return
		}
		futures := make([]tessera.IndexFuture, len(batch))
		for i, p := range batch {
			futures[i] = l.appender.Add(ctx, p.entry)
		}
		for i, f := range futures {
			idx, err := f()
			batch[i].done <- result{index: idx.Index, err: err}
		}
	}
}

// Size returns the number of durable entries (the integrated tree size),
// which may be more than the latest checkpoint covers.
func (l *Log) Size(ctx context.Context) (uint64, error) {
	return l.reader.IntegratedSize(ctx)
}

// Close waits for appends in progress, publishes a checkpoint covering every
// entry appended through this Log (waiting up to a few checkpoint intervals
// or until ctx ends), then stops the background work and releases the
// directory. Appends after Close fail with ErrClosed. Entries are durable
// whether or not Close is called; Close only saves the next Open from
// waiting for that checkpoint.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.inflight.Wait()
	l.qmu.Lock()
	l.stopping = true
	l.qcond.Broadcast()
	l.qmu.Unlock()
	<-l.committerDone
	err := l.shutdown(ctx)
	l.cancel()
	if cerr := l.lock.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("closing event log %s: %w", l.dir, err)
	}
	return nil
}
