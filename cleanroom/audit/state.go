package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/durable"
)

// StateFormat is the value of Facts.Format in state.json. Version 2 holds
// reports of ReportFormat v2.
const StateFormat = "cleanroom/audit-state/v2"

// stateFormatV1 is the first format, whose reports named the plain SHA-256
// of results.
const stateFormatV1 = "cleanroom/audit-state/v1"

// Names in the state directory (docs/audit.md).
const (
	CheckpointFile  = "checkpoint"        // the kept checkpoint, a signed note
	FactsFile       = "state.json"        // Facts
	HistoryDir      = "checkpoints"       // every checkpoint kept, <size>.checkpoint
	EvidenceDir     = "evidence"          // <time>-<kind>/ per rollback or fork
	LastFailureFile = "last-failure.json" // the Report of the last failed audit
	lockFile        = ".lock"
)

// Evidence files of a rollback or fork.
const (
	EvidenceOld    = "old.checkpoint"
	EvidenceNew    = "new.checkpoint"
	EvidenceProof  = "proof"
	EvidenceReport = "report.txt"
)

// maxFactsSize bounds state.json and last-failure.json when read.
const maxFactsSize = 64 << 20

// Facts is the content of state.json: what the audits kept in a state
// directory verified, for the next audit and for the web view.
type Facts struct {
	Format string `json:"format"`
	// Coordinator is what the last audit's attestation proved; the state
	// directory belongs to the log of this key (Origin).
	Coordinator CoordinatorFacts `json:"coordinator"`
	// Checkpoint is the kept checkpoint (the file "checkpoint").
	Checkpoint CheckpointFacts `json:"checkpoint"`
	// VerifiedAt is when the last audit that verified ran.
	VerifiedAt time.Time `json:"verified_at"`
	// History lists every checkpoint an audit verified and kept, oldest
	// first; each is saved in checkpoints/.
	History []HistoryEntry `json:"history"`
	// Contracts holds the last verified report of each contract audited,
	// by contract id.
	Contracts map[string]*Report `json:"contracts"`
}

// HistoryEntry is one kept checkpoint.
type HistoryEntry struct {
	Size            uint64    `json:"size"`
	Root            string    `json:"root"`
	File            string    `json:"file"` // relative to the state directory
	FirstVerifiedAt time.Time `json:"first_verified_at"`
	LastVerifiedAt  time.Time `json:"last_verified_at"`
}

// State is an auditor's state directory, open for one audit at a time.
type State struct {
	dir  string
	lock *os.File
}

// DefaultStateDir is where an auditor keeps the state of the log of the
// coordinator with key pub when no directory is given:
// <user config dir>/cleanroom/audit/<key fingerprint>, one state per log.
func DefaultStateDir(pub *cleanroom.PublicKey) (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory to keep the audit state in: %w", err)
	}
	return filepath.Join(base, "cleanroom", "audit", pub.Fingerprint().String()), nil
}

// OpenState opens (creating it, mode 0700, if needed) the state directory
// dir and locks it against concurrent audits. Close it when done.
func OpenState(dir string) (*State, error) {
	if dir == "" {
		return nil, errors.New("audit: no state directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the audit state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit state directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit state directory %s is in use by another audit (%v); wait for it to finish", dir, err)
	}
	return &State{dir: dir, lock: f}, nil
}

// Dir returns the state directory.
func (s *State) Dir() string { return s.dir }

// Close releases the lock.
func (s *State) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

func (s *State) path(name ...string) string {
	return filepath.Join(append([]string{s.dir}, name...)...)
}

// Kept returns the kept checkpoint, verified with v, or nil if none is
// kept. A kept checkpoint that does not verify (another coordinator's log,
// an altered file) is an error: the directory belongs to another log.
func (s *State) Kept(v *tlog.Verifier) (*tlog.Checkpoint, error) {
	raw, err := os.ReadFile(s.path(CheckpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		facts, ferr := ReadFacts(s.dir)
		if ferr == nil && facts.Checkpoint.Size > 0 {
			return nil, fmt.Errorf("%s records a kept checkpoint of %d entries, but %s is missing: restore it, or audit into a new state directory",
				s.path(FactsFile), facts.Checkpoint.Size, s.path(CheckpointFile))
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the kept checkpoint: %w", err)
	}
	cp, err := v.VerifyCheckpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("the kept checkpoint %s does not verify under this coordinator's attested key (it is another coordinator's log, or the file was altered); use another --state directory: %w",
			s.path(CheckpointFile), err)
	}
	return cp, nil
}

// ReadFacts reads state.json from a state directory. A directory no audit
// has verified yet returns an error wrapping fs.ErrNotExist.
func ReadFacts(dir string) (*Facts, error) {
	path := filepath.Join(dir, FactsFile)
	var format struct {
		Format string `json:"format"`
	}
	if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &format) == nil && format.Format == stateFormatV1 {
		return nil, fmt.Errorf("%s: format %q was written by an earlier cleanroom, before results were committed with a salt; this one reads %q: "+
			"audit with a new --state directory (keep the old one: its checkpoints remain evidence of what that coordinator served)", path, stateFormatV1, StateFormat)
	}
	var f Facts
	if err := readJSON(path, &f); err != nil {
		return nil, err
	}
	if f.Format != StateFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", filepath.Join(dir, FactsFile), f.Format, StateFormat)
	}
	if f.Contracts == nil {
		f.Contracts = map[string]*Report{}
	}
	for id, r := range f.Contracts {
		if r == nil || r.Format != ReportFormat || r.Contract.ID != id || !r.Verified {
			return nil, fmt.Errorf("%s: the entry for contract %q is not a verified report of format %s", filepath.Join(dir, FactsFile), id, ReportFormat)
		}
	}
	return &f, nil
}

// ReadLastFailure reads the report of the last failed audit, or nil if no
// audit failed.
func ReadLastFailure(dir string) (*Report, error) {
	var r Report
	err := readJSON(filepath.Join(dir, LastFailureFile), &r)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if r.Failure == nil || r.Format != ReportFormat {
		return nil, fmt.Errorf("%s holds no failure report of format %s", filepath.Join(dir, LastFailureFile), ReportFormat)
	}
	return &r, nil
}

func readJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFactsSize+1))
	if err != nil {
		return err
	}
	if len(data) > maxFactsSize {
		return fmt.Errorf("%s is larger than %d bytes", path, maxFactsSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: data after the JSON object", path)
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(path, append(data, '\n'), 0o600)
}

// commit keeps a verified checkpoint and report: the checkpoint in the
// history, then state.json, then the kept checkpoint itself, each written
// atomically. A crash in between leaves a kept checkpoint no newer than
// the facts, which the next audit simply proves again.
func (s *State) commit(r *Report, cp *tlog.Checkpoint) error {
	facts, err := ReadFacts(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		facts, err = &Facts{Format: StateFormat, Contracts: map[string]*Report{}}, nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.path(HistoryDir), 0o700); err != nil {
		return err
	}
	name := filepath.ToSlash(filepath.Join(HistoryDir, fmt.Sprintf("%020d.checkpoint", cp.Size())))
	if err := durable.WriteFile(s.path(name), cp.Bytes(), 0o600); err != nil {
		return err
	}
	root := cp.Root()
	at := r.VerifiedAt
	if n := len(facts.History); n > 0 && facts.History[n-1].Size == cp.Size() && facts.History[n-1].Root == hex.EncodeToString(root[:]) {
		facts.History[n-1].LastVerifiedAt = at
	} else {
		facts.History = append(facts.History, HistoryEntry{Size: cp.Size(), Root: hex.EncodeToString(root[:]), File: name, FirstVerifiedAt: at, LastVerifiedAt: at})
	}
	facts.Coordinator, facts.Checkpoint, facts.VerifiedAt = r.Coordinator, r.Checkpoint, at
	facts.Contracts[r.Contract.ID] = r
	if err := writeJSON(s.path(FactsFile), facts); err != nil {
		return err
	}
	return durable.WriteFile(s.path(CheckpointFile), cp.Bytes(), 0o600)
}

// recordFailure keeps the report of a failed audit in last-failure.json.
// The kept checkpoint and state.json are left as they are.
func (s *State) recordFailure(r *Report) error {
	return writeJSON(s.path(LastFailureFile), r)
}

// saveEvidence writes the evidence of a rollback or fork into a new
// directory evidence/<time>-<kind>: both signed checkpoints, the proof the
// log served (one hex hash a line) and a report for people. The directory
// appears whole or not at all. It returns its path relative to the state
// directory.
func (s *State) saveEvidence(ce *tlog.ConsistencyError, r *Report, url string) (string, error) {
	base := s.path(EvidenceDir)
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(base, ".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	var proof strings.Builder
	for _, h := range ce.Proof {
		fmt.Fprintf(&proof, "%x\n", h)
	}
	files := map[string][]byte{
		EvidenceOld:    ce.Old.Bytes(),
		EvidenceNew:    ce.New.Bytes(),
		EvidenceProof:  []byte(proof.String()),
		EvidenceReport: []byte(evidenceReport(ce, r, url)),
	}
	for name, data := range files {
		if err := durable.WriteFile(filepath.Join(tmp, name), data, 0o600); err != nil {
			return "", err
		}
	}
	stamp := r.VerifiedAt.UTC().Format("20060102T150405Z")
	for n := 1; ; n++ {
		name := stamp + "-" + string(ce.Kind)
		if n > 1 {
			name += fmt.Sprintf("-%d", n)
		}
		err := os.Rename(tmp, filepath.Join(base, name))
		if err == nil {
			if err := durable.SyncDir(base); err != nil {
				return "", err
			}
			return filepath.ToSlash(filepath.Join(EvidenceDir, name)), nil
		}
		if !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			return "", err
		}
	}
}

func evidenceReport(ce *tlog.ConsistencyError, r *Report, url string) string {
	var b strings.Builder
	oldRoot, newRoot := ce.Old.Root(), ce.New.Root()
	what := "ROLLBACK: the coordinator's log is shorter than a checkpoint it signed before."
	if ce.Kind == tlog.Fork {
		what = "FORK: the coordinator's log does not contain the tree of a checkpoint it signed before."
	}
	fmt.Fprintf(&b, "%s\n\n", what)
	fmt.Fprintf(&b, "detected:        %s\n", r.VerifiedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "coordinator:     %s\n", url)
	fmt.Fprintf(&b, "coordinator key: %s (attested)\n", r.Coordinator.PublicKey)
	fmt.Fprintf(&b, "log origin:      %s\n", ce.Old.Origin())
	fmt.Fprintf(&b, "contract:        %s\n", r.Contract.ID)
	fmt.Fprintf(&b, "kept checkpoint: %d entries, root %x (%s)\n", ce.Old.Size(), oldRoot, EvidenceOld)
	fmt.Fprintf(&b, "new checkpoint:  %d entries, root %x (%s)\n", ce.New.Size(), newRoot, EvidenceNew)
	fmt.Fprintf(&b, "proof:           %d hashes (%s)\n", len(ce.Proof), EvidenceProof)
	fmt.Fprintf(&b, "reason:          %s\n\n", ce.Reason)
	b.WriteString(`Both checkpoints are signed notes (c2sp.org/signed-note) by the same
coordinator key. They cannot both be true of an append-only log: `)
	if ce.Kind == tlog.Rollback {
		b.WriteString(`the newer
one commits to fewer entries than the older one. Re-check with any signed-note
verifier holding the coordinator key named by the origin line.
`)
	} else if len(ce.Proof) == 0 {
		b.WriteString(`they commit
to the same number of entries with different roots.
`)
	} else {
		b.WriteString(`the
consistency proof the log served (RFC 9162 §2.1.4, one hash a line in "proof")
does not prove that the new tree extends the old one.
`)
	}
	return b.String()
}

// EvidenceEntry is one evidence directory of a rollback or fork.
type EvidenceEntry struct {
	Name   string // directory name, relative to evidence/
	Kind   string // rollback or fork
	Report string // report.txt
}

// ListEvidence lists the evidence directories of a state directory, newest
// first.
func ListEvidence(dir string) ([]EvidenceEntry, error) {
	des, err := os.ReadDir(filepath.Join(dir, EvidenceDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []EvidenceEntry
	for _, de := range des {
		if !de.IsDir() || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		e := EvidenceEntry{Name: de.Name(), Kind: FailFork}
		if strings.Contains(de.Name(), "-"+FailRollback) {
			e.Kind = FailRollback
		}
		rep, err := os.ReadFile(filepath.Join(dir, EvidenceDir, de.Name(), EvidenceReport))
		if err != nil {
			rep = []byte(fmt.Sprintf("(no readable %s: %v)", EvidenceReport, err))
		}
		if len(rep) > 64<<10 {
			rep = rep[:64<<10]
		}
		e.Report = string(rep)
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name > out[j].Name })
	return out, nil
}
