// Package state is the coordinator's state as a pure function of its audit
// log: every change comes from applying an event, at start (replay) and
// while serving (after the event is durably appended). Nothing else
// changes it, so what the coordinator believes is exactly what the log
// shows auditors.
package state

import (
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"sync"

	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/contracts"
)

// ContractLoader turns a contract.registered event into the parsed
// contract, reading the sealed document blob it names.
type ContractLoader func(*events.ContractRegistered) (*contracts.Contract, error)

// RunStatus is where a run is in its life.
type RunStatus string

// Run statuses.
const (
	RunRunning  RunStatus = "running"
	RunFinished RunStatus = "finished"
	RunRefused  RunStatus = "refused"
	RunAborted  RunStatus = "aborted"
)

// Contract is a registered contract and everything that happened under it.
type Contract struct {
	Contract   *contracts.Contract
	Registered *events.ContractRegistered
	Index      uint64 // log index of contract.registered
	Datasets   map[string]*Dataset
	Algorithm  *Algorithm
	Models     map[string]*Model // by model name
	Runs       []*Run            // in start order
	// Refusals counts runs refused at admission (they use no run).
	Refusals int
	// Suspended is the suspension in force, or nil.
	Suspended *Suspension
	// SupersededBy is the contract that amended this one (closing it to
	// new runs), or empty; SupersededIndex is the log index of
	// contract.superseded.
	SupersededBy    string
	SupersededIndex uint64
	// CarriedRuns counts the runs started under the contracts this one
	// supersedes: they count against its max_runs.
	CarriedRuns int64
}

// RunsUsed is the number of runs that count against max_runs.
func (c *Contract) RunsUsed() int64 { return c.CarriedRuns + int64(len(c.Runs)) }

// Suspension is a data provider's emergency stop.
type Suspension struct {
	Index  uint64 // log index of contract.suspended
	Actor  string
	Reason string
}

// Dataset is an accepted upload.
type Dataset struct {
	Upload *events.DatasetUploaded
	Actor  string
	Index  uint64
	// Deleted is "withdrawn" or "expired" once the stored envelope was
	// deleted (dataset.withdrawn, dataset.expired), empty before;
	// DeletedIndex is that event's log index.
	Deleted      string
	DeletedIndex uint64
}

// Algorithm is the accepted algorithm.
type Algorithm struct {
	Submitted *events.AlgorithmSubmitted
	Actor     string
	Index     uint64
}

// Model is an accepted model module.
type Model struct {
	Submitted *events.ModelSubmitted
	Actor     string
	Index     uint64
}

// Run is one started run.
type Run struct {
	ID           string
	Contract     contracts.ID
	Number       int64
	Actor        string
	Started      *events.RunStarted
	StartIndex   uint64
	Status       RunStatus
	Finished     *events.RunFinished
	FinishIndex  uint64 // log index of run.finished, run.refused or run.aborted
	RefuseReason string
	// SealedReason is run.refused's sealed_reason: the full reason sealed
	// to a confidential algorithm's provider, or nil.
	SealedReason []byte
	// SealedTo is run.refused's sealed_to: the participant SealedReason is
	// sealed to when not the algorithm provider (a model's provider).
	SealedTo string
	Fetches  int
	// ResultExpired is set once result.expired deleted the stored result.
	ResultExpired bool
}

// State is the coordinator's state. It is safe for concurrent use: readers
// get snapshots of immutable events; Apply takes the write lock.
type State struct {
	mu        sync.RWMutex
	load      ContractLoader
	contracts map[contracts.ID]*Contract
	runs      map[string]*Run
	seen      map[string]bool
	size      uint64 // number of entries applied
	starts    []*events.CoordinatorStarted
	chains    map[string]*chain // scope → its chain
}

// chain is one scope's chain of events (docs/events.md): the last link and
// where the scope's entries are in the log.
type chain struct {
	seq     uint64   // seq of the last event applied, 0 before the first
	last    [32]byte // its leaf hash
	indices []uint64 // log index of every entry of the scope, ascending (repeated event ids included)
}

// New returns an empty state that loads contract documents with load.
func New(load ContractLoader) *State {
	return &State{
		load:      load,
		contracts: map[contracts.ID]*Contract{},
		runs:      map[string]*Run{},
		seen:      map[string]bool{},
		chains:    map[string]*chain{},
	}
}

// Size returns the number of log entries applied.
func (s *State) Size() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.size
}

// Apply applies the event at log index idx, whose entry has the leaf hash
// leaf. Entries must be applied in index order, each exactly once. An event
// that contradicts the state (a second upload of a dataset, a run number out
// of order) or that does not continue its scope's chain (seq and prev) is an
// error and changes nothing: the log is inconsistent and the coordinator
// must not serve from it.
func (s *State) Apply(idx uint64, e *events.Event, leaf [32]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx != s.size {
		return fmt.Errorf("log entry %d applied out of order (next is %d)", idx, s.size)
	}
	ch := s.chains[e.Scope()]
	if ch == nil {
		ch = &chain{}
	}
	if s.seen[e.ID] {
		// A duplicate append (a retried write) changes nothing, but it is
		// still an entry of its scope's view.
		ch.indices = append(ch.indices, idx)
		s.chains[e.Scope()] = ch
		s.size++
		return nil
	}
	if e.Seq != ch.seq+1 {
		return fmt.Errorf("log entry %d (%s event %s) has seq %d in the chain of %s, want %d", idx, e.Type, e.ID, e.Seq, scopeName(e), ch.seq+1)
	}
	if ch.seq > 0 && e.Prev != hex.EncodeToString(ch.last[:]) {
		return fmt.Errorf("log entry %d (%s event %s) names prev %s in the chain of %s, but the leaf hash of its seq %d is %x", idx, e.Type, e.ID, e.Prev, scopeName(e), ch.seq, ch.last)
	}
	if err := s.apply(idx, e); err != nil {
		return fmt.Errorf("log entry %d (%s event %s): %w", idx, e.Type, e.ID, err)
	}
	ch.seq, ch.last = e.Seq, leaf
	ch.indices = append(ch.indices, idx)
	s.chains[e.Scope()] = ch
	s.seen[e.ID] = true
	s.size++
	return nil
}

func scopeName(e *events.Event) string {
	if e.Scope() == events.CoordinatorScope {
		return "the coordinator's starts"
	}
	return "contract " + e.Contract
}

// ChainHead returns the seq and leaf hash of the last event applied in
// scope (an events scope: a contract id or events.CoordinatorScope), or 0
// and zeros before its first.
func (s *State) ChainHead(scope string) (seq uint64, leaf [32]byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ch := s.chains[scope]; ch != nil {
		return ch.seq, ch.last
	}
	return 0, leaf
}

// Has reports whether log entry index belongs to scope. Only applied
// entries are known: the caller waits until Size() > index.
func (s *State) Has(scope string, index uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ch := s.chains[scope]
	if ch == nil {
		return false
	}
	_, found := slices.BinarySearch(ch.indices, index)
	return found
}

// Count returns how many of the first size log entries belong to scope.
// Only applied entries are counted: the caller waits until Size() ≥ size.
func (s *State) Count(scope string, size uint64) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ch := s.chains[scope]
	if ch == nil {
		return 0
	}
	return uint64(sort.Search(len(ch.indices), func(i int) bool { return ch.indices[i] >= size }))
}

func (s *State) apply(idx uint64, e *events.Event) error {
	if e.Type == events.TypeCoordinatorStarted {
		s.starts = append(s.starts, e.CoordinatorStarted)
		return nil
	}
	cid, err := contracts.ParseID(e.Contract)
	if err != nil {
		return err
	}
	if e.Type == events.TypeContractRegistered {
		if _, dup := s.contracts[cid]; dup {
			return fmt.Errorf("contract %s registered twice", cid)
		}
		c, err := s.load(e.ContractRegistered)
		if err != nil {
			return fmt.Errorf("loading contract %s: %w", cid, err)
		}
		if c.ID() != cid {
			return fmt.Errorf("document of contract %s has id %s", cid, c.ID())
		}
		var carried int64
		if c.Supersedes != nil {
			old := s.contracts[*c.Supersedes]
			if old == nil || old.SupersededBy != cid.String() {
				return fmt.Errorf("contract %s supersedes %s, which the log has not closed for it (contract.superseded)", cid, c.Supersedes)
			}
			carried = old.RunsUsed()
		}
		if e.ContractRegistered.CarriedRuns != carried {
			return fmt.Errorf("contract %s carries %d runs over; the contracts it supersedes started %d", cid, e.ContractRegistered.CarriedRuns, carried)
		}
		s.contracts[cid] = &Contract{Contract: c, Registered: e.ContractRegistered, Index: idx, Datasets: map[string]*Dataset{}, CarriedRuns: carried}
		return nil
	}
	c := s.contracts[cid]
	if c == nil {
		return fmt.Errorf("contract %s is not registered", cid)
	}
	switch e.Type {
	case events.TypeDatasetUploaded:
		u := e.DatasetUploaded
		if c.Contract.Dataset(u.Dataset) == nil {
			return fmt.Errorf("dataset %q is not in the contract", u.Dataset)
		}
		if _, dup := c.Datasets[u.Dataset]; dup {
			return fmt.Errorf("dataset %q uploaded twice", u.Dataset)
		}
		if u.CarriedFrom != "" && (c.Contract.Supersedes == nil || c.Contract.Supersedes.String() != u.CarriedFrom) {
			return fmt.Errorf("dataset %q carried over from %s, which this contract does not supersede", u.Dataset, u.CarriedFrom)
		}
		c.Datasets[u.Dataset] = &Dataset{Upload: u, Actor: e.Actor, Index: idx}
	case events.TypeAlgorithmSubmitted:
		if c.Algorithm != nil {
			return fmt.Errorf("algorithm submitted twice")
		}
		c.Algorithm = &Algorithm{Submitted: e.AlgorithmSubmitted, Actor: e.Actor, Index: idx}
	case events.TypeModelSubmitted:
		m := e.ModelSubmitted
		cm := c.Contract.Model(m.Name)
		if cm == nil || cm.Name != m.Name {
			return fmt.Errorf("model %q is not in the contract", m.Name)
		}
		if _, dup := c.Models[m.Name]; dup {
			return fmt.Errorf("model %q submitted twice", m.Name)
		}
		if e.Actor != cm.Provider {
			return fmt.Errorf("model %q submitted by %q, not its provider %q", m.Name, e.Actor, cm.Provider)
		}
		if m.Commitment != fmt.Sprintf("%x", cm.SHA256) {
			return fmt.Errorf("model %q submitted with commitment %s; the contract names %x", m.Name, m.Commitment, cm.SHA256)
		}
		if c.Models == nil {
			c.Models = map[string]*Model{}
		}
		c.Models[m.Name] = &Model{Submitted: m, Actor: e.Actor, Index: idx}
	case events.TypeRunStarted:
		r := e.RunStarted
		if r.Number != c.RunsUsed()+1 {
			return fmt.Errorf("run %s has number %d, want %d", r.RunID, r.Number, c.RunsUsed()+1)
		}
		if _, dup := s.runs[r.RunID]; dup {
			return fmt.Errorf("run %s started twice", r.RunID)
		}
		run := &Run{ID: r.RunID, Contract: cid, Number: r.Number, Actor: e.Actor, Started: r, StartIndex: idx, Status: RunRunning}
		c.Runs = append(c.Runs, run)
		s.runs[r.RunID] = run
	case events.TypeRunFinished:
		run, err := s.runningRun(c, e.RunFinished.RunID)
		if err != nil {
			return err
		}
		run.Status, run.Finished, run.FinishIndex = RunFinished, e.RunFinished, idx
	case events.TypeRunRefused:
		if e.RunRefused.RunID == "" {
			c.Refusals++
			return nil
		}
		run, err := s.runningRun(c, e.RunRefused.RunID)
		if err != nil {
			return err
		}
		if to := e.RunRefused.SealedTo; to != "" && c.Contract.Participant(to) == nil {
			return fmt.Errorf("run %s: its reason is sealed to %q, who is not a participant", e.RunRefused.RunID, to)
		}
		run.Status, run.RefuseReason, run.SealedReason, run.FinishIndex = RunRefused, e.RunRefused.Reason, e.RunRefused.SealedReason, idx
		run.SealedTo = e.RunRefused.SealedTo
	case events.TypeRunAborted:
		run, err := s.runningRun(c, e.RunAborted.RunID)
		if err != nil {
			return err
		}
		run.Status, run.RefuseReason, run.FinishIndex = RunAborted, e.RunAborted.Reason, idx
	case events.TypeResultFetched:
		run := s.runs[e.ResultFetched.RunID]
		if run == nil || run.Status != RunFinished || run.Contract != cid || run.ResultExpired {
			return fmt.Errorf("result of run %s fetched but it has no released result", e.ResultFetched.RunID)
		}
		run.Fetches++
	case events.TypeContractSuspended:
		if c.Suspended != nil {
			return fmt.Errorf("contract suspended again while suspended (since log index %d)", c.Suspended.Index)
		}
		if p := c.Contract.Participant(e.Actor); p == nil || !p.Has(contracts.RoleDataProvider) {
			return fmt.Errorf("suspended by %q, who is not a data provider", e.Actor)
		}
		c.Suspended = &Suspension{Index: idx, Actor: e.Actor, Reason: e.ContractSuspended.Reason}
	case events.TypeContractResumed:
		if c.Suspended == nil || c.Suspended.Index != e.ContractResumed.SuspensionIndex {
			return fmt.Errorf("resumes the suspension at log index %d, which is not in force", e.ContractResumed.SuspensionIndex)
		}
		c.Suspended = nil
	case events.TypeContractSuperseded:
		if c.SupersededBy != "" {
			return fmt.Errorf("superseded again (by %s; already by %s)", e.ContractSuperseded.By, c.SupersededBy)
		}
		c.SupersededBy, c.SupersededIndex = e.ContractSuperseded.By, idx
	case events.TypeDatasetWithdrawn, events.TypeDatasetExpired:
		b, how := e.DatasetWithdrawn, "withdrawn"
		if b == nil {
			b, how = e.DatasetExpired, "expired"
		}
		d := c.Datasets[b.Dataset]
		switch {
		case d == nil:
			return fmt.Errorf("dataset %q %s but never uploaded", b.Dataset, how)
		case d.Deleted != "":
			return fmt.Errorf("dataset %q %s but already %s", b.Dataset, how, d.Deleted)
		case d.Upload.Stored != b.Stored:
			return fmt.Errorf("dataset %q %s names stored envelope %s; the upload stored %s", b.Dataset, how, b.Stored.SHA256, d.Upload.Stored.SHA256)
		}
		if how == "withdrawn" {
			if ds := c.Contract.Dataset(b.Dataset); ds == nil || ds.Provider != e.Actor {
				return fmt.Errorf("dataset %q withdrawn by %q, not its provider", b.Dataset, e.Actor)
			}
		}
		d.Deleted, d.DeletedIndex = how, idx
	case events.TypeResultExpired:
		run := s.runs[e.ResultExpired.RunID]
		if run == nil || run.Status != RunFinished || run.Contract != cid || run.ResultExpired || run.Finished.EncryptedResult != e.ResultExpired.EncryptedResult {
			return fmt.Errorf("result of run %s expired but it has no stored result to delete", e.ResultExpired.RunID)
		}
		run.ResultExpired = true
	default:
		return fmt.Errorf("unknown event type %q", e.Type)
	}
	return nil
}

func (s *State) runningRun(c *Contract, id string) (*Run, error) {
	run := s.runs[id]
	if run == nil {
		return nil, fmt.Errorf("run %s was never started", id)
	}
	if run.Contract != c.Contract.ID() {
		return nil, fmt.Errorf("run %s belongs to another contract", id)
	}
	if run.Status != RunRunning {
		return nil, fmt.Errorf("run %s already ended (%s)", id, run.Status)
	}
	return run, nil
}

// Contract returns a registered contract, or nil. The returned value must
// be treated as read-only; it is safe to read while the lock is not held
// only for fields that never change after registration (Contract,
// Registered, Index).
func (s *State) Contract(id contracts.ID) *Contract {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.contracts[id]
}

// View runs f with the read lock held, for consistent multi-field reads.
func (s *State) View(f func(*Snapshot)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f(&Snapshot{s})
}

// Snapshot gives read access to the state inside View.
type Snapshot struct{ s *State }

// Contract returns a registered contract, or nil.
func (v *Snapshot) Contract(id contracts.ID) *Contract { return v.s.contracts[id] }

// Run returns a run by id, or nil.
func (v *Snapshot) Run(id string) *Run { return v.s.runs[id] }

// LastIndex returns the log index of the latest entry of a contract's
// chain of events (0 when it has none).
func (v *Snapshot) LastIndex(id contracts.ID) uint64 {
	ch := v.s.chains[id.String()]
	if ch == nil || len(ch.indices) == 0 {
		return 0
	}
	return ch.indices[len(ch.indices)-1]
}

// Contracts returns every registered contract ordered by registration.
func (v *Snapshot) Contracts() []*Contract {
	out := make([]*Contract, 0, len(v.s.contracts))
	for _, c := range v.s.contracts {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// RunningRuns returns the runs that started and never ended, in start
// order: after a restart, these were interrupted.
func (v *Snapshot) RunningRuns() []*Run {
	var out []*Run
	for _, c := range v.Contracts() {
		for _, r := range c.Runs {
			if r.Status == RunRunning {
				out = append(out, r)
			}
		}
	}
	return out
}

// Starts returns how many times the coordinator started.
func (v *Snapshot) Starts() int { return len(v.s.starts) }
