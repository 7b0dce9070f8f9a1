package coordinator

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
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

// registerAmendment registers ct, which supersedes another contract: every
// participant of both contracts must have signed it, and no budget may grow
// without every data provider's signature (contracts.CheckAmendment). The
// old contract is closed first, in its own chain (contract.superseded), so
// no run of it starts once the new one exists; then ct is registered,
// carrying the runs started under the old one; then each dataset that
// carries over (same provider, key and columns, its provider signed) is
// re-encrypted inside the coordinator for ct and logged as uploaded to ct,
// with the provider's upload of the old contract: nothing is uploaded
// again.
func (c *Coordinator) registerAmendment(ctx context.Context, ct *contracts.Contract, text []byte, who *contracts.Participant, given []contracts.SignedBy) (*ContractReceipt, error) {
	cid, oldID := ct.ID(), *ct.Supersedes
	oldState := c.state.Contract(oldID)
	if oldState == nil {
		return nil, unprocessable(nil, "contract %s supersedes contract %s, which this coordinator has not registered", cid, oldID).
			withHint("an amendment names, in supersedes, the id of a contract registered on this coordinator")
	}
	old := oldState.Contract
	approvals := ct.VerifyAmendmentSignatures(old, given)
	if !approvals.Complete() {
		msgs := make([]string, len(approvals.Problems))
		for i, p := range approvals.Problems {
			msgs[i] = p.Error()
		}
		if err := ct.CheckAmendment(old, approvals); err != nil {
			msgs = append(msgs, strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		return nil, unprocessable(approvals.Err(), "amendment %s of contract %s is not signed by every participant of both contracts: %s", cid, oldID, strings.Join(msgs, "; ")).
			withHint("every participant of the new and of the superseded contract signs the new one (cleanroom contract sign)")
	}
	if err := ct.CheckAmendment(old, approvals); err != nil {
		return nil, unprocessable(err, "amendment %s of contract %s is refused: %s", cid, oldID, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	// Old before new, always, so two amendments cannot deadlock.
	unlockOld := c.locks.lock(oldID.String())
	defer unlockOld()
	unlockNew := c.locks.lock(cid.String())
	defer unlockNew()
	if c.state.Contract(cid) != nil {
		return nil, conflict("contract %s is already registered", cid)
	}
	var supersededBy string
	var carried int64
	var carriedPrivacy *events.PrivacySpend
	c.state.View(func(v *state.Snapshot) {
		s := v.Contract(oldID)
		supersededBy, carried, carriedPrivacy = s.SupersededBy, s.RunsUsed(), state.CarriedPrivacyEvent(s.PrivacySpent())
	})
	switch supersededBy {
	case "":
		if _, err := c.commit(ctx, &events.Event{
			Type: events.TypeContractSuperseded, Contract: oldID.String(), Actor: who.ID, ActorKey: who.PublicKey.Fingerprint().String(),
			ContractSuperseded: &events.ContractSuperseded{By: cid.String()},
		}); err != nil {
			return nil, err
		}
	case cid.String():
		// A crash after closing the old contract: finish the amendment.
	default:
		return nil, conflict("contract %s was already superseded by contract %s", oldID, supersededBy)
	}
	doc, err := c.putSealed("contract", text)
	if err != nil {
		return nil, storageError(err, "storing the contract")
	}
	sum := sha256.Sum256(text)
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeContractRegistered, Contract: cid.String(), Actor: who.ID, ActorKey: who.PublicKey.Fingerprint().String(),
		ContractRegistered: &events.ContractRegistered{
			Name: ct.Name, ExpiresAt: ct.ExpiresAt, Document: doc, DocSHA256: fmt.Sprintf("%x", sum),
			Signatures: approvals.New, SupersedesSignatures: approvals.Old, CarriedRuns: carried,
			CarriedPrivacy: carriedPrivacy,
		},
	})
	if err != nil {
		return nil, err
	}
	c.logger.Info("amendment registered", "contract", cid.String(), "supersedes", oldID.String(), "by", who.ID, "log_index", idx)
	fault("amend/before-carry")
	if err := c.carryAmendment(ctx, old, ct, approvals); err != nil {
		return nil, err
	}
	return &ContractReceipt{ContractID: cid, LogIndex: idx}, nil
}

// carryAmendment carries over to the amendment ct, registered, what it
// takes from the contract old it supersedes: the algorithm when it is the
// same (same commitment, confidentiality, provider with the same key and
// parameter names), as it was submitted; and each dataset whose provider
// signed ct (approvals) and that is the same in both, re-encrypted inside
// the coordinator. It carries only what ct does not hold yet and what old
// held when ct was registered, so running it again — at start, after a
// crash interrupted an amendment (finishAmendments) — finishes the
// amendment and does nothing more. The caller holds both contracts' locks,
// or nothing is served yet.
func (c *Coordinator) carryAmendment(ctx context.Context, old, ct *contracts.Contract, approvals *contracts.AmendmentApprovals) error {
	cid, oldID := ct.ID(), old.ID()
	var alg *state.Algorithm
	var registeredAt uint64
	var has map[string]bool
	c.state.View(func(v *state.Snapshot) {
		n := v.Contract(cid)
		registeredAt, has = n.Index, map[string]bool{}
		for id := range n.Datasets {
			has[id] = true
		}
		if n.Algorithm == nil {
			alg = v.Contract(oldID).Algorithm
		}
	})
	op, np := old.Participant(old.Algorithm.Provider), ct.Participant(ct.Algorithm.Provider)
	if alg != nil && alg.Index < registeredAt && ct.Algorithm.SHA256 == old.Algorithm.SHA256 && ct.Algorithm.Confidential == old.Algorithm.Confidential &&
		op != nil && np != nil && op.ID == np.ID && op.PublicKey.Equal(np.PublicKey) &&
		slices.EqualFunc(ct.Algorithm.Parameters, old.Algorithm.Parameters, func(a, b contracts.Parameter) bool { return a.Name == b.Name }) {
		sub := *alg.Submitted
		if _, err := c.commit(ctx, &events.Event{
			Type: events.TypeAlgorithmSubmitted, Contract: cid.String(), Actor: np.ID, ActorKey: np.PublicKey.Fingerprint().String(),
			AlgorithmSubmitted: &sub,
		}); err != nil {
			return err
		}
	}
	for _, ds := range ct.Datasets {
		if has[ds.ID] || ct.CarriesOver(old, ds.ID, approvals) != nil {
			continue
		}
		var up *state.Dataset
		c.state.View(func(v *state.Snapshot) {
			if d := v.Contract(oldID).Datasets[ds.ID]; d != nil && d.Deleted == "" && d.Index < registeredAt {
				cp := *d
				up = &cp
			}
		})
		if up == nil || up.Upload.CarriedFrom != "" {
			// One amendment at a time: a dataset carried over once is
			// uploaded again to the next, so that every upload statement
			// names the contract or the one it supersedes.
			continue
		}
		if err := c.carryOver(ctx, old, ct, up); err != nil {
			return err
		}
	}
	return nil
}

// finishAmendments finishes, at start, every amendment a crash interrupted
// after its contract.registered: what the amendment carries over from the
// contract it supersedes and does not hold yet is carried now, with the
// approvals its registration logged. An amendment that has expired is
// left alone (its datasets would be deleted at once), and one that cannot
// be finished (a damaged envelope) is reported and left for its providers
// to upload again: it does not stop the coordinator from starting.
func (c *Coordinator) finishAmendments(ctx context.Context) {
	type amendment struct {
		old, ct   *contracts.Contract
		approvals *contracts.AmendmentApprovals
	}
	var todo []amendment
	c.state.View(func(v *state.Snapshot) {
		for _, sc := range v.Contracts() {
			ct := sc.Contract
			if ct.Supersedes == nil || ct.Expired(c.cfg.Now()) {
				continue
			}
			old := v.Contract(*ct.Supersedes)
			if old == nil || old.SupersededBy != ct.ID().String() {
				continue
			}
			todo = append(todo, amendment{old.Contract, ct, &contracts.AmendmentApprovals{
				New: sc.Registered.Signatures, Old: sc.Registered.SupersedesSignatures}})
		}
	})
	for _, a := range todo {
		unlockOld := c.locks.lock(a.old.ID().String())
		unlockNew := c.locks.lock(a.ct.ID().String())
		err := c.carryAmendment(ctx, a.old, a.ct, a.approvals)
		unlockNew()
		unlockOld()
		if err != nil {
			c.logger.Error("finishing an amendment a restart interrupted: what it did not carry over must be uploaded again",
				"contract", a.ct.ID().String(), "supersedes", a.old.ID().String(), "err", err)
		}
	}
}

// carryOver re-encrypts a dataset of the superseded contract old for its
// amendment ct, inside the coordinator, and logs it as uploaded to ct.
func (c *Coordinator) carryOver(ctx context.Context, old, ct *contracts.Contract, up *state.Dataset) error {
	u := up.Upload
	ds := ct.Dataset(u.Dataset)
	d, err := blobs.ParseDigest(u.Stored.SHA256)
	if err != nil {
		return internal(err, "%v", err)
	}
	f, err := c.blobs.OpenSized(d, u.Stored.Size)
	if err != nil {
		return storageError(err, "reading dataset "+ds.ID+" of the superseded contract")
	}
	defer f.Close()
	schema := ds.SchemaDigest()
	er, err := envelope.NewReader(f, c.tee.Identity().HPKE(), envelope.Expect{
		Kind: envelope.KindDataset, ContractID: old.ID(), ObjectID: ds.ID, SchemaDigest: &schema,
	})
	if err != nil {
		return internal(err, "opening dataset %s of the superseded contract: %v", ds.ID, err)
	}
	if got := fmt.Sprintf("%x", er.Header().SHA256()); got != u.StoredHeaderSHA256 {
		return internal(nil, "dataset %s of the superseded contract: the stored envelope's header digest is %s, the log records %s", ds.ID, got, u.StoredHeaderSHA256)
	}
	w, err := c.blobs.Create(0)
	if err != nil {
		return storageError(err, "storing dataset "+ds.ID)
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	rw, err := c.rekeyEnvelope(w, ct, ds)
	if err != nil {
		return internal(err, "%v", err)
	}
	if _, err := io.Copy(rw, er); err != nil {
		return internal(err, "re-encrypting dataset %s: %v", ds.ID, err)
	}
	if err := rw.Close(); err != nil {
		return internal(err, "re-encrypting dataset %s: %v", ds.ID, err)
	}
	sum, err := rw.Summary()
	if err != nil {
		return internal(err, "%v", err)
	}
	stored, err := w.Commit()
	if err != nil {
		return storageError(err, "storing dataset "+ds.ID)
	}
	committed = true
	p := ct.Participant(ds.Provider)
	carried := *u
	carried.Stored = events.Blob{SHA256: stored.String(), Size: w.Size()}
	carried.StoredHeaderSHA256 = fmt.Sprintf("%x", sum.Header.SHA256())
	carried.CarriedFrom = old.ID().String()
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeDatasetUploaded, Contract: ct.ID().String(), Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		DatasetUploaded: &carried,
	})
	if err != nil {
		return err
	}
	c.logger.Info("dataset carried over", "contract", ct.ID().String(), "from", old.ID().String(), "dataset", ds.ID, "log_index", idx)
	return nil
}
