// Package audit is the auditor's side of Cleanroom's audit log: it verifies
// a coordinator's log against the coordinator key that remote attestation
// proved, proves that the log extends the checkpoint kept from the previous
// audit, checks every entry and every signature the events carry, checks the
// timeline of one contract against the contract's rules, and keeps what it
// verified in a state directory. A log that was rolled back or forked is
// reported as such, with the two signed checkpoints (and the failed proof)
// saved as evidence that anyone holding the coordinator's key can re-check.
//
// A read-only web view (Handler) shows what the state directory holds. It
// never talks to the coordinator.
//
// docs/audit.md specifies the verification steps, the state directory, the
// report's JSON form and the evidence files.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/contracts"
)

// Coordinator is what remote attestation proved about the coordinator whose
// log is audited. Only a key proved this way may verify its checkpoints and
// statements: never one the coordinator merely states.
type Coordinator struct {
	PublicKey      *cleanroom.PublicKey
	Platform       contracts.Platform
	Measurement    [48]byte
	EvidenceSHA256 [32]byte // of the evidence encoding in its TLS certificate
}

// AttestedCoordinator returns the Coordinator an attested TLS handshake
// proved. It refuses a handshake made without the contract's coordinator
// policy (atls InsecureSkipPolicy): an audit needs a coordinator the
// contract's parties agreed to.
func AttestedCoordinator(p *atls.Coordinator) (*Coordinator, error) {
	if p == nil || p.PublicKey == nil || p.Claims == nil || p.Evidence == nil {
		return nil, errors.New("audit: no attested coordinator")
	}
	if !p.PolicyChecked {
		return nil, errors.New("audit: the coordinator was not checked against the contract's coordinator policy; connect with the contract")
	}
	ev, err := p.Evidence.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("audit: encoding the coordinator's evidence: %w", err)
	}
	return &Coordinator{PublicKey: p.PublicKey, Platform: p.Claims.Platform, Measurement: p.Claims.Measurement, EvidenceSHA256: sha256.Sum256(ev)}, nil
}

// DefaultEvidenceWait is how long Run waits, by default, for a checkpoint
// that covers the coordinator.started event recording the evidence the
// coordinator serves: a coordinator publishes checkpoints about once a
// second, so a start made just before the audit may not be covered yet.
const DefaultEvidenceWait = 5 * time.Second

// Config is what one audit needs.
type Config struct {
	// Contract is the contract whose events are checked and shown. The
	// coordinator shows the auditor only this contract's view of the log:
	// other contracts' entries are redacted, verified by their leaf hashes
	// only, and counted.
	Contract *contracts.Contract
	// ContractText is the contract file the auditor holds, to tell
	// whether the coordinator registered the very same text (optional).
	ContractText []byte
	// Coordinator is what attestation proved; required.
	Coordinator *Coordinator
	// URL is the coordinator's URL, recorded in the report.
	URL string
	// Fetcher reads the coordinator's log; client.Client.LogFetcher over
	// the attested connection in the CLI. Nothing it returns is trusted.
	Fetcher tlog.Fetcher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// EvidenceWait bounds the wait for a checkpoint covering the start of
	// the attested coordinator (DefaultEvidenceWait when zero; negative:
	// no wait), and for one covering MinSize.
	EvidenceWait time.Duration
	// MinSize is the log size the audit waits for a checkpoint to reach:
	// one more than the index of the contract's latest event, as the
	// coordinator's status names it (api.ContractStatus.LastLogIndex), so
	// that an audit right after a run verifies that run. A checkpoint
	// still short of it after EvidenceWait is audited all the same, with a
	// warning saying which events it does not cover yet. Zero: no wait.
	MinSize uint64
}

// ErrFailed is wrapped by every error of Run that says the log did not
// verify (as opposed to an error reaching it): the report's Failure then
// says what was wrong.
var ErrFailed = errors.New("audit failed")

// Run audits the coordinator's log for cfg.Contract and keeps the result in
// st:
//
//  1. fetch the checkpoint and verify it strictly under the attested key;
//  2. prove it extends the checkpoint kept in st, if any (a rollback or fork
//     is saved as evidence in st and fails the audit);
//  3. fetch the contract's view of the log (other contracts' events
//     redacted), recompute the whole tree from the shown entries and the
//     level-0 tiles and check every tile against the signed root, and check
//     that the view shows as many entries as the coordinator's signed view
//     head says (tlog.Verifier.VerifyView), so the inclusion of every event
//     of the contract is proved and none was withheld;
//  4. check the events: each scope's chain (seq and prev) unbroken, the
//     coordinator's starts against the attested key, measurement and
//     evidence, every signature inside the contract's events, and the
//     timeline's rules;
//  5. only when all of it holds, store the new checkpoint and the report in
//     st.
//
// It returns the report, also when the audit fails (then Verified is false
// and Failure says why, and the error wraps ErrFailed and, for a rollback or
// fork, the *tlog.ConsistencyError; for a tile or entry that does not match,
// the *tlog.ContentError; for a view that hides entries, the
// *tlog.ViewCountError). Errors reaching the log are returned as they are,
// with a nil report, and change nothing.
func Run(ctx context.Context, cfg Config, st *State) (*Report, error) {
	if cfg.Contract == nil || cfg.Coordinator == nil || cfg.Coordinator.PublicKey == nil || cfg.Fetcher == nil || st == nil {
		return nil, errors.New("audit: Config needs Contract, Coordinator and Fetcher, and a State")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	wait := cfg.EvidenceWait
	if wait == 0 {
		wait = DefaultEvidenceWait
	}
	co := cfg.Coordinator
	v, err := tlog.NewCoordinatorVerifier(co.PublicKey)
	if err != nil {
		return nil, err
	}
	r := &Report{
		Format: ReportFormat, VerifiedAt: now().UTC(),
		Coordinator: CoordinatorFacts{
			URL: cfg.URL, PublicKey: co.PublicKey.Fingerprint().String(), Origin: v.Origin(),
			Platform: string(co.Platform), Measurement: hexs(co.Measurement[:]), EvidenceSHA256: hexs(co.EvidenceSHA256),
		},
		Contract: ContractFacts{ID: cfg.Contract.ID().String(), Name: cfg.Contract.Name},
		Problems: []Finding{}, Warnings: []Finding{},
	}
	fail := func(kind string, err error, evidence string) (*Report, error) {
		r.Failure = &Failure{Kind: kind, Message: err.Error(), Time: r.VerifiedAt, Contract: cfg.Contract.ID().String(), Evidence: evidence}
		var ce *tlog.ContentError
		if errors.As(err, &ce) {
			r.Failure.Path = ce.Path
			if ce.Index >= 0 {
				r.Failure.Index = ptr(ce.Index)
			}
		}
		if werr := st.recordFailure(r); werr != nil {
			err = errors.Join(err, fmt.Errorf("recording the failure in %s: %w", st.Dir(), werr))
		}
		return r, fmt.Errorf("%w: %w", ErrFailed, err)
	}

	kept, err := st.Kept(v)
	if err != nil {
		return fail(FailState, err, "")
	}
	if kept != nil {
		r.Checkpoint.KeptSize, r.Checkpoint.KeptRoot = ptr(kept.Size()), ptr(hexs(kept.Root()))
	}

	deadline := time.Now().Add(wait)
	for {
		raw, err := cfg.Fetcher(ctx, "checkpoint")
		if err != nil {
			return nil, fmt.Errorf("fetching the checkpoint: %w", err)
		}
		cp, err := v.VerifyCheckpoint(raw)
		if err != nil {
			return fail(FailCheckpoint, fmt.Errorf("the coordinator's checkpoint: %w", err), "")
		}
		if cp.Size() < cfg.MinSize {
			// The coordinator signs a checkpoint about once a second: the
			// latest events may not be covered yet.
			newer, err := waitNewCheckpoint(ctx, cfg.Fetcher, raw, deadline)
			if err != nil {
				return nil, err
			}
			if newer {
				continue
			}
		}
		root := cp.Root()
		r.Checkpoint.Size, r.Checkpoint.Root, r.Checkpoint.Note = cp.Size(), hexs(root[:]), string(raw)
		r.Checkpoint.Consistency = "first-audit"
		if kept != nil {
			proof, err := tlog.CheckConsistency(ctx, cfg.Fetcher, kept, cp)
			var ce *tlog.ConsistencyError
			switch {
			case errors.As(err, &ce):
				r.Checkpoint.Consistency = string(ce.Kind)
				dir, serr := st.saveEvidence(ce, r, cfg.URL)
				if serr != nil {
					err = errors.Join(err, fmt.Errorf("saving the evidence: %w", serr))
				}
				kind := FailFork
				if ce.Kind == tlog.Rollback {
					kind = FailRollback
				}
				return fail(kind, err, dir)
			case errors.As(err, new(*tlog.ContentError)):
				return fail(FailLog, err, "")
			case err != nil:
				return nil, fmt.Errorf("proving consistency with the kept checkpoint: %w", err)
			}
			r.Checkpoint.ProofHashes = len(proof)
			r.Checkpoint.Consistency = "extended"
			if cp.Size() == kept.Size() {
				r.Checkpoint.Consistency = "unchanged"
			}
		}
		view, err := v.VerifyView(ctx, cfg.Fetcher, cp, cfg.Contract.ID().String())
		var withheld *tlog.ViewCountError
		switch {
		case errors.As(err, &withheld):
			r.Log.ViewHead = string(withheld.Head.Bytes())
			return fail(FailWithheld, err, "")
		case errors.As(err, new(*tlog.ContentError)):
			return fail(FailLog, err, "")
		case errors.Is(err, tlog.ErrBadViewHead):
			return fail(FailCheckpoint, fmt.Errorf("the coordinator's view head: %w", err), "")
		case err != nil:
			return nil, fmt.Errorf("reading the log's entries: %w", err)
		}
		rr := *r
		rr.Problems, rr.Warnings = []Finding{}, []Finding{}
		rr.Log = LogFacts{Size: cp.Size(), ViewEntries: view.Shown, ViewHead: string(view.Head.Bytes())}
		checkTimeline(&rr, view.Entries, cfg.Contract, co, cfg.ContractText)
		if rr.Coordinator.EvidenceLoggedAt == nil {
			// The start of the attested coordinator may not be covered by a
			// checkpoint yet: wait for a newer one, then verify again.
			newer, err := waitNewCheckpoint(ctx, cfg.Fetcher, raw, deadline)
			if err != nil {
				return nil, err
			}
			if newer {
				continue
			}
		}
		*r = rr
		if r.Coordinator.EvidenceLoggedAt == nil {
			r.Problems = append(r.Problems, Finding{Message: fmt.Sprintf(
				"the coordinator serves evidence (SHA-256 %s) that no coordinator.started event in its log records, %s after connecting: a coordinator must log each start before it serves",
				r.Coordinator.EvidenceSHA256, wait.Round(time.Millisecond))})
		}
		if cp.Size() < cfg.MinSize {
			r.Warnings = append(r.Warnings, Finding{Message: fmt.Sprintf(
				"the coordinator's latest checkpoint covers %d entries, but the contract's latest event is at log index %d: after waiting %s, the newest events are not covered by a signed checkpoint yet and were not verified; audit again",
				cp.Size(), cfg.MinSize-1, wait.Round(time.Millisecond))})
		}
		if r.Contract.Registered == nil {
			r.Warnings = append(r.Warnings, Finding{Message: "the log has no contract.registered event for this contract: it was never registered with this coordinator"})
		}
		if len(r.Problems) > 0 {
			return fail(FailEvents, fmt.Errorf("%d problems in the log's events; the first: %s", len(r.Problems), r.Problems[0].Message), "")
		}
		r.Verified = true
		if err := st.commit(r, cp); err != nil {
			r.Verified = false
			return nil, fmt.Errorf("the log verified, but keeping its checkpoint in %s failed (the previous one is still kept): %w", st.Dir(), err)
		}
		return r, nil
	}
}

// waitNewCheckpoint polls the log until it serves a checkpoint other than
// raw (true) or the deadline passes (false).
func waitNewCheckpoint(ctx context.Context, f tlog.Fetcher, raw []byte, deadline time.Time) (bool, error) {
	for time.Now().Before(deadline) {
		if !sleep(ctx, 200*time.Millisecond) {
			return false, ctx.Err()
		}
		got, err := f(ctx, "checkpoint")
		if err != nil {
			return false, fmt.Errorf("fetching the checkpoint: %w", err)
		}
		if !bytes.Equal(got, raw) {
			return true, nil
		}
	}
	return false, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
