package coordinator

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/blobs"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
)

// Contracts over time (SPEC §13, docs/contract.md): suspension and
// resumption, withdrawal, and deletion at expiry. Every change is an event
// appended to the log before it takes effect; a deletion's files are
// removed after its event is in the log, and a start finishes any deletion
// a crash interrupted (finishDeletions), so what the log says is deleted
// is gone from the data directory once the coordinator serves.

// DefaultRetentionInterval is how often the coordinator looks for expired
// contracts whose envelopes and results it must delete.
const DefaultRetentionInterval = 10 * time.Second

// Suspend stops new runs of a contract at once: any data provider may, with
// a reason for the other participants. Runs already started finish.
func (c *Coordinator) Suspend(ctx context.Context, actor ed25519.PublicKey, cid contracts.ID, reason string) (*api.EventReceipt, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	if err := requireRole(p, "suspend the contract", contracts.RoleDataProvider); err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > events.MaxSuspensionReason || !utf8.ValidString(reason) {
		return nil, badRequest("a suspension needs a reason of 1 to %d bytes of UTF-8 text, which every participant reads", events.MaxSuspensionReason).
			withHint("cleanroom contract suspend --reason TEXT")
	}
	unlock := c.locks.lock(cid.String())
	defer unlock()
	var refusal error
	c.state.View(func(v *state.Snapshot) {
		s := v.Contract(cid)
		switch {
		case s.Suspended != nil:
			refusal = conflict("contract %s is already suspended (by %s at log index %d: %s)", cid, s.Suspended.Actor, s.Suspended.Index, s.Suspended.Reason)
		case s.SupersededBy != "":
			refusal = conflict("contract %s was superseded by %s and runs no more", cid, s.SupersededBy)
		}
	})
	if refusal != nil {
		return nil, refusal
	}
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeContractSuspended, Contract: cid.String(), Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		ContractSuspended: &events.ContractSuspended{Reason: reason},
	})
	if err != nil {
		return nil, err
	}
	c.logger.Warn("contract suspended", "contract", cid.String(), "by", p.ID, "log_index", idx, "name", sc.Contract.Name)
	return &api.EventReceipt{Event: string(events.TypeContractSuspended), LogIndex: idx}, nil
}

// Resume lifts the suspension in force when every participant of the
// contract has signed its resumption (contracts.SignResumption over the
// contract id and the suspension's log index). Any participant may submit
// the approvals.
func (c *Coordinator) Resume(ctx context.Context, actor ed25519.PublicKey, cid contracts.ID, approvals [][]byte) (*api.EventReceipt, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	if len(approvals) > maxSignatures {
		return nil, badRequest("%d approvals is more than %d", len(approvals), maxSignatures)
	}
	unlock := c.locks.lock(cid.String())
	defer unlock()
	var suspension *state.Suspension
	c.state.View(func(v *state.Snapshot) {
		if s := v.Contract(cid).Suspended; s != nil {
			cp := *s
			suspension = &cp
		}
	})
	if suspension == nil {
		return nil, conflict("contract %s is not suspended", cid)
	}
	given := make([]contracts.SignedBy, len(approvals))
	for i, a := range approvals {
		given[i] = contracts.SignedBy{Source: fmt.Sprintf("approvals[%d]", i), Data: a}
	}
	ap := sc.Contract.VerifyResumptions(given, suspension.Index)
	if !ap.Complete() {
		msgs := make([]string, len(ap.Problems))
		for i, pr := range ap.Problems {
			msgs[i] = pr.Error()
		}
		return nil, unprocessable(ap.Err(), "resuming contract %s from the suspension at log index %d needs every participant's approval: %s",
			cid, suspension.Index, strings.Join(msgs, "; ")).
			withHint(fmt.Sprintf("each participant runs cleanroom contract resume --approve (it signs contract %s and suspension %d)", cid, suspension.Index))
	}
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeContractResumed, Contract: cid.String(), Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		ContractResumed: &events.ContractResumed{SuspensionIndex: suspension.Index, Approvals: ap.Valid},
	})
	if err != nil {
		return nil, err
	}
	c.logger.Info("contract resumed", "contract", cid.String(), "by", p.ID, "suspension", suspension.Index, "log_index", idx)
	return &api.EventReceipt{Event: string(events.TypeContractResumed), LogIndex: idx}, nil
}

// Withdraw deletes a dataset at its provider's request: dataset.withdrawn
// is appended, then the stored envelope — whose header holds the only
// wrapped copy of its data key — is removed from the data directory. Runs
// that need the dataset are refused from then on; a run already started
// finishes on what it read.
func (c *Coordinator) Withdraw(ctx context.Context, actor ed25519.PublicKey, cid contracts.ID, datasetID string) (*api.EventReceipt, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	ds := sc.Contract.Dataset(datasetID)
	if ds == nil {
		return nil, notFound("contract %s has no dataset %q", cid, datasetID)
	}
	if ds.Provider != p.ID {
		return nil, forbidden("participant %q may not withdraw dataset %s: only its provider %s may", p.ID, datasetID, ds.Provider)
	}
	unlock := c.locks.lock(cid.String())
	defer unlock()
	var stored events.Blob
	var refusal error
	c.state.View(func(v *state.Snapshot) {
		d := v.Contract(cid).Datasets[datasetID]
		switch {
		case d == nil:
			refusal = conflict("dataset %s of contract %s was never uploaded: there is nothing to withdraw", datasetID, cid)
		case d.Deleted != "":
			refusal = conflict("dataset %s of contract %s is already deleted (%s, log index %d)", datasetID, cid, d.Deleted, d.DeletedIndex)
		default:
			stored = d.Upload.Stored
		}
	})
	if refusal != nil {
		return nil, refusal
	}
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeDatasetWithdrawn, Contract: cid.String(), Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		DatasetWithdrawn: &events.DatasetDeleted{Dataset: datasetID, Stored: stored},
	})
	if err != nil {
		return nil, err
	}
	if err := c.deleteBlob(stored.SHA256); err != nil {
		// The log says it is deleted; the next start finishes it.
		c.logger.Error("deleting a withdrawn envelope failed; a restart finishes it", "contract", cid.String(), "dataset", datasetID, "err", err)
	}
	c.logger.Info("dataset withdrawn", "contract", cid.String(), "dataset", datasetID, "by", p.ID, "log_index", idx)
	return &api.EventReceipt{Event: string(events.TypeDatasetWithdrawn), LogIndex: idx}, nil
}

// deleteBlob removes a blob the log says is deleted, and forgets any
// damage recorded for it.
func (c *Coordinator) deleteBlob(digest string) error {
	d, err := blobs.ParseDigest(digest)
	if err != nil {
		return err
	}
	fault("delete/before-remove")
	if err := c.blobs.Remove(d); err != nil {
		return err
	}
	c.damagedMu.Lock()
	delete(c.damaged, digest)
	c.damagedMu.Unlock()
	return nil
}

// finishDeletions removes, at start, every blob the log says is deleted
// that is still on disk: a crash between a deletion's event and its
// removal leaves one, and this finishes it before anything is served.
func (c *Coordinator) finishDeletions() error {
	var digests []string
	c.state.View(func(v *state.Snapshot) {
		for _, sc := range v.Contracts() {
			for _, d := range sc.Datasets {
				if d.Deleted != "" {
					digests = append(digests, d.Upload.Stored.SHA256)
				}
			}
			for _, r := range sc.Runs {
				if r.ResultExpired {
					digests = append(digests, r.Finished.EncryptedResult.SHA256)
				}
			}
		}
	})
	for _, digest := range digests {
		d, err := blobs.ParseDigest(digest)
		if err != nil {
			return err
		}
		if c.blobs.Exists(d) {
			c.logger.Warn("finishing a deletion a restart interrupted", "blob", digest)
		}
		if err := c.deleteBlob(digest); err != nil {
			return fmt.Errorf("finishing the deletion of blob %s: %w", digest, err)
		}
	}
	return nil
}

// expire deletes, for every contract past its expires_at, each stored
// envelope (dataset.expired) and each stored result (result.expired) not
// yet deleted: the event first, then the file.
func (c *Coordinator) expire(ctx context.Context) error {
	now := c.cfg.Now()
	type deletion struct {
		cid   contracts.ID
		ev    *events.Event
		blob  string
		label string
	}
	var todo []deletion
	c.state.View(func(v *state.Snapshot) {
		for _, sc := range v.Contracts() {
			ct := sc.Contract
			if !ct.Expired(now) {
				continue
			}
			for _, ds := range ct.Datasets {
				d := sc.Datasets[ds.ID]
				if d == nil || d.Deleted != "" {
					continue
				}
				todo = append(todo, deletion{ct.ID(), &events.Event{
					Type: events.TypeDatasetExpired, Contract: ct.ID().String(),
					DatasetExpired: &events.DatasetDeleted{Dataset: ds.ID, Stored: d.Upload.Stored},
				}, d.Upload.Stored.SHA256, "dataset " + ds.ID})
			}
			for _, r := range sc.Runs {
				if r.Status != state.RunFinished || r.ResultExpired {
					continue
				}
				todo = append(todo, deletion{ct.ID(), &events.Event{
					Type: events.TypeResultExpired, Contract: ct.ID().String(),
					ResultExpired: &events.ResultExpired{RunID: r.ID, EncryptedResult: r.Finished.EncryptedResult},
				}, r.Finished.EncryptedResult.SHA256, "result of run " + r.ID})
			}
		}
	})
	for _, d := range todo {
		if err := c.expireOne(ctx, d.cid, d.ev); err != nil {
			return err
		}
		if err := c.deleteBlob(d.blob); err != nil {
			c.logger.Error("deleting an expired blob failed; a restart finishes it", "contract", d.cid.String(), "what", d.label, "err", err)
			continue
		}
		c.logger.Info("deleted at the contract's expiry", "contract", d.cid.String(), "what", d.label)
	}
	return nil
}

// expireOne appends one expiry event under the contract's lock, unless
// the state changed meanwhile (a withdrawal of the same dataset).
func (c *Coordinator) expireOne(ctx context.Context, cid contracts.ID, ev *events.Event) error {
	unlock := c.locks.lock(cid.String())
	defer unlock()
	still := true
	c.state.View(func(v *state.Snapshot) {
		sc := v.Contract(cid)
		if b := ev.DatasetExpired; b != nil {
			still = sc.Datasets[b.Dataset] != nil && sc.Datasets[b.Dataset].Deleted == ""
		} else if r := v.Run(ev.ResultExpired.RunID); r == nil || r.ResultExpired {
			still = false
		}
	})
	if !still {
		return nil
	}
	_, err := c.commit(ctx, ev)
	return err
}

// retain runs the retention timer until stop is closed: every interval it
// deletes what expired contracts still hold.
func (c *Coordinator) retain(stop <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := c.expire(context.Background()); err != nil {
				c.logger.Error("deleting what expired contracts hold", "err", err)
			}
		}
	}
}

// admissionState adds to reasons why a run of the contract may not start
// as the contract's life stands: suspended, superseded, a dataset
// withdrawn or expired. It is called by admit inside its state view.
func admissionState(sc *state.Contract, reasons []string) []string {
	if s := sc.Suspended; s != nil {
		reasons = append(reasons, fmt.Sprintf("the contract is suspended (by %s at log index %d: %s); it runs again when every participant signs its resumption (cleanroom contract resume)",
			s.Actor, s.Index, s.Reason))
	}
	if sc.SupersededBy != "" {
		reasons = append(reasons, fmt.Sprintf("the contract was superseded by contract %s (log index %d) and runs no more: run the new contract", sc.SupersededBy, sc.SupersededIndex))
	}
	for _, ds := range sc.Contract.Datasets {
		if d := sc.Datasets[ds.ID]; d != nil && d.Deleted != "" {
			how := "withdrawn by its provider " + ds.Provider
			if d.Deleted == "expired" {
				how = "deleted at the contract's expiry"
			}
			reasons = append(reasons, fmt.Sprintf("dataset %s was %s (log index %d): its envelope and data key are gone", ds.ID, how, d.DeletedIndex))
		}
	}
	return reasons
}
