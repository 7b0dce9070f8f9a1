package coordinator

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/blobs"
	"cleanroom.dev/cleanroom/coordinator/internal/engine"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
)

// release encrypts a run's result to every recipient, stores it, signs the
// result statement and appends run.finished. Until that event is durable
// nothing of the result can be fetched.
func (c *Coordinator) release(ctx context.Context, ct *contracts.Contract, run *events.RunStarted, res *engine.Result) error {
	plain, err := res.IPC()
	if err != nil {
		return internal(err, "encoding the result: %v", err)
	}
	// The result is sealed to the recipients behind a fresh salt; the
	// statement, the log and the run status name only the salted
	// commitment, so no one but a recipient can test a guess of the result.
	encrypted, commitment, err := bundle.EncryptResult(plain, ct, run.RunID)
	if err != nil {
		return internal(err, "encrypting the result: %v", err)
	}
	encDigest, err := c.blobs.Put(encrypted)
	if err != nil {
		return storageError(err, "storing the result")
	}
	recipients, err := bundle.Recipients(ct)
	if err != nil {
		return internal(err, "result recipients: %v", err)
	}
	st := &bundle.Statement{
		ContractID:            ct.ID(),
		RunID:                 run.RunID,
		RunNumber:             run.Number,
		AlgorithmSHA256:       ct.Algorithm.SHA256,
		ResultCommitment:      commitment,
		EncryptedResultSHA256: encDigest,
		EncryptedResultSize:   int64(len(encrypted)),
		RowsKept:              res.Rows,
		RowsSuppressed:        res.Suppressed,
		Time:                  c.cfg.Now().UTC(),
		Recipients:            recipients,
		Parameters:            run.Parameters,
	}
	c.state.View(func(v *state.Snapshot) {
		sc := v.Contract(ct.ID())
		st.RunStartedIndex = v.Run(run.RunID).StartIndex
		for _, ds := range ct.Datasets {
			up := sc.Datasets[ds.ID]
			d, _ := blobs.ParseDigest(up.Upload.Ciphertext.SHA256)
			st.Datasets = append(st.Datasets, bundle.Dataset{
				ID: ds.ID, CiphertextSHA256: d, RowCount: up.Upload.Rows, UploadStatement: up.Upload.UploadStatement,
			})
		}
	})
	signed, err := st.Sign(c.tee.Identity())
	if err != nil {
		return internal(err, "signing the result statement: %v", err)
	}
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeRunFinished, Contract: ct.ID().String(),
		RunFinished: bundle.RunFinished(st, signed),
	})
	if err != nil {
		return err
	}
	c.logger.Info("run finished", "contract", ct.ID().String(), "run", run.RunID, "rows_kept", res.Rows,
		"rows_suppressed", res.Suppressed, "log_index", idx)
	return nil
}

// ResultBundle returns a finished run's result bundle to a result
// recipient: statement, evidence, the encrypted result and the inclusion
// proofs of the run's events under one signed checkpoint. The coordinator
// verifies the bundle as a recipient would, then appends result.fetched,
// then serves it.
func (c *Coordinator) ResultBundle(ctx context.Context, actor ed25519.PublicKey, cid contracts.ID, runID string) ([]byte, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	if !sc.Contract.IsRecipient(p.ID) {
		return nil, forbidden("participant %q is not a result recipient of contract %s", p.ID, cid)
	}
	// Under the contract's lock, so the expiry cannot delete the result
	// between this check and result.fetched.
	unlock := c.locks.lock(cid.String())
	defer unlock()
	var run state.Run
	var found bool
	c.state.View(func(v *state.Snapshot) {
		if r := v.Run(runID); r != nil && r.Contract == cid {
			run, found = *r, true
		}
	})
	if !found {
		return nil, notFound("contract %s has no run %q", cid, runID)
	}
	if run.Status != state.RunFinished {
		return nil, conflict("run %s has no result: it is %s%s", runID, run.Status, reasonSuffix(run.RefuseReason))
	}
	if run.ResultExpired {
		return nil, newError(http.StatusGone, "gone", nil, "the result of run %s was deleted at contract %s's expiry (%s)", runID, cid, sc.Contract.ExpiresAt.UTC().Format(time.RFC3339))
	}
	d, err := blobs.ParseDigest(run.Finished.EncryptedResult.SHA256)
	if err != nil {
		return nil, internal(err, "%v", err)
	}
	if err := c.damage(run.Finished.EncryptedResult.SHA256); err != nil {
		return nil, internal(err, "%v", err).withHint("the operator must restore the coordinator's data directory from a backup")
	}
	encrypted, err := c.blobs.Get(d, run.Finished.EncryptedResult.Size)
	if err != nil {
		c.markDamaged(run.Finished.EncryptedResult.SHA256, fmt.Errorf("the result of run %s of contract %s is damaged on disk: %w", runID, cid, err))
		return nil, internal(err, "reading the result of run %s: %v", runID, err)
	}
	startedProof, finishedProof, err := bundle.ProveRun(ctx, c.log, run.StartIndex, run.FinishIndex)
	if err != nil {
		return nil, internal(err, "proving run %s in the log: %v", runID, err)
	}
	startedEntry, err := c.log.Entry(ctx, run.StartIndex)
	if err != nil {
		return nil, internal(err, "reading the log: %v", err)
	}
	finishedEntry, err := c.log.Entry(ctx, run.FinishIndex)
	if err != nil {
		return nil, internal(err, "reading the log: %v", err)
	}
	b, err := bundle.Assemble(bundle.Parts{
		Statement: run.Finished.Statement, Evidence: c.tee.StaticEvidence(), CoordinatorKey: c.tee.PublicKey(),
		EncryptedResult: encrypted, RunStarted: startedEntry, RunFinished: finishedEntry,
		RunStartedProof: startedProof, RunFinishedProof: finishedProof,
	}, sc.Contract)
	if err != nil {
		return nil, internal(err, "assembling the result bundle of run %s: %v", runID, err)
	}
	out, err := b.Marshal()
	if err != nil {
		return nil, internal(err, "encoding the result bundle: %v", err)
	}
	// The download is logged before the bundle leaves, once it is ready.
	if _, err := c.commit(ctx, &events.Event{
		Type: events.TypeResultFetched, Contract: cid.String(), Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		ResultFetched: &events.ResultFetched{RunID: runID},
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return fmt.Sprintf(" (%s)", r)
}
