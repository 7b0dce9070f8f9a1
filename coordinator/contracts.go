package coordinator

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
)

// Limits on a contract submission.
const (
	maxSignatures = contracts.MaxParticipants * 2
)

// ContractReceipt acknowledges a registered contract.
type ContractReceipt struct {
	ContractID contracts.ID
	LogIndex   uint64
}

// SubmitContract registers a contract: well-formed and not expired,
// submitted by one of its participants, signed by every participant, and
// satisfied by this coordinator's own attestation.
func (c *Coordinator) SubmitContract(ctx context.Context, actor ed25519.PublicKey, text []byte, sigs [][]byte) (*ContractReceipt, error) {
	if actor == nil {
		return nil, unauthenticated()
	}
	if len(sigs) > maxSignatures {
		return nil, badRequest("%d signatures is more than %d", len(sigs), maxSignatures)
	}
	ct, err := contracts.Parse(text, contracts.ParseOptions{Now: c.cfg.Now()})
	if err != nil {
		return nil, unprocessable(err, "%v", err)
	}
	who := atls.ParticipantOf(ct, actor)
	if who == nil {
		return nil, forbidden("your key is not a participant's in contract %s", ct.ID()).
			withHint("only a participant of a contract may submit it")
	}
	given := make([]contracts.SignedBy, len(sigs))
	for i, s := range sigs {
		given[i] = contracts.SignedBy{Source: fmt.Sprintf("signatures[%d]", i), Data: s}
	}
	if ct.Supersedes != nil {
		if _, err := attest.VerifyCoordinator(c.tee.StaticEvidence(), &ct.Coordinator, []*cleanroom.PublicKey{c.tee.PublicKey()}, nil); err != nil {
			return nil, unprocessable(err, "this coordinator does not satisfy contract %s's coordinator section: %v", ct.ID(), err).
				withHint("the contract must pin this coordinator's measurement and platform (see cleanroomd identity)")
		}
		return c.registerAmendment(ctx, ct, text, who, given)
	}
	approvals := ct.VerifySignatures(given)
	if !approvals.Complete() {
		msgs := make([]string, len(approvals.Problems))
		for i, p := range approvals.Problems {
			msgs[i] = p.Error()
		}
		return nil, unprocessable(approvals.Err(), "contract %s is not signed by every participant: %s", ct.ID(), strings.Join(msgs, "; ")).
			withHint("collect every participant's signature (cleanroom contract sign) and check them with cleanroom contract verify")
	}
	if _, err := attest.VerifyCoordinator(c.tee.StaticEvidence(), &ct.Coordinator, []*cleanroom.PublicKey{c.tee.PublicKey()}, nil); err != nil {
		return nil, unprocessable(err, "this coordinator does not satisfy contract %s's coordinator section: %v", ct.ID(), err).
			withHint("the contract must pin this coordinator's measurement and platform (see cleanroomd identity)")
	}
	cid := ct.ID()
	unlock := c.locks.lock(cid.String())
	defer unlock()
	if c.state.Contract(cid) != nil {
		return nil, conflict("contract %s is already registered", cid)
	}
	doc, err := c.putSealed("contract", text)
	if err != nil {
		return nil, storageError(err, "storing the contract")
	}
	sum := sha256.Sum256(text)
	idx, err := c.commit(ctx, &events.Event{
		Type:     events.TypeContractRegistered,
		Contract: cid.String(),
		Actor:    who.ID, ActorKey: who.PublicKey.Fingerprint().String(),
		ContractRegistered: &events.ContractRegistered{
			Name: ct.Name, ExpiresAt: ct.ExpiresAt, Document: doc,
			DocSHA256: fmt.Sprintf("%x", sum), Signatures: approvals.Valid,
		},
	})
	if err != nil {
		return nil, err
	}
	c.logger.Info("contract registered", "contract", cid.String(), "name", ct.Name, "by", who.ID, "log_index", idx)
	return &ContractReceipt{ContractID: cid, LogIndex: idx}, nil
}

func unauthenticated() *Error {
	return newError(http.StatusUnauthorized, "unauthenticated", nil, "this request needs a participant key").
		withHint("connect with your participant key (--key or CLEANROOM_KEY)")
}

// participant finds the registered contract cid and the caller's
// participant in it, refusing strangers. A stranger gets the answer an
// unregistered contract gets, so it cannot learn that a contract it is not
// party to is registered. The returned contract entry's immutable fields
// may be read without the state lock.
func (c *Coordinator) participant(cid contracts.ID, actor ed25519.PublicKey) (*state.Contract, *contracts.Participant, error) {
	if actor == nil {
		return nil, nil, unauthenticated()
	}
	sc := c.state.Contract(cid)
	var p *contracts.Participant
	if sc != nil {
		p = atls.ParticipantOf(sc.Contract, actor)
	}
	if p == nil {
		return nil, nil, notFound("contract %s is not registered here, or your key is not one of its participants'", cid).
			withHint("submit the contract first (cleanroom contract submit), and connect with the key the contract names for you")
	}
	return sc, p, nil
}

// requireRole refuses a participant lacking every one of roles.
func requireRole(p *contracts.Participant, what string, roles ...contracts.Role) error {
	for _, r := range roles {
		if p.Has(r) {
			return nil
		}
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return forbidden("participant %q may not %s: that needs role %s", p.ID, what, strings.Join(names, " or "))
}

// checkNotExpired refuses new activity under an expired contract.
func (c *Coordinator) checkNotExpired(ct *contracts.Contract) error {
	if ct.Expired(c.cfg.Now()) {
		return unprocessable(errors.New("contract expired"), "contract %s expired at %s: nothing new can happen under it", ct.ID(), ct.ExpiresAt)
	}
	return nil
}

// Status returns a contract's progress to one of its participants.
func (c *Coordinator) Status(cid contracts.ID, actor ed25519.PublicKey) (*api.ContractStatus, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	ct := sc.Contract
	st := &api.ContractStatus{
		ContractID: cid.String(), Name: ct.Name, ExpiresAt: ct.ExpiresAt.Format("2006-01-02T15:04:05Z07:00"),
		LogIndex: sc.Index, MaxRuns: ct.Output.MaxRuns,
		Algorithm: api.AlgorithmStatus{SHA256: fmt.Sprintf("%x", ct.Algorithm.SHA256), Confidential: ct.Algorithm.Confidential},
	}
	c.state.View(func(v *state.Snapshot) {
		sc := v.Contract(cid)
		for _, ds := range ct.Datasets {
			d := api.DatasetStatus{ID: ds.ID, Provider: ds.Provider}
			if up := sc.Datasets[ds.ID]; up != nil {
				d.Uploaded, d.CiphertextSHA256, d.Rows, d.LogIndex = true, up.Upload.Ciphertext.SHA256, up.Upload.Rows, up.Index
				if err := c.damage(up.Upload.Stored.SHA256); err != nil {
					d.Damaged = err.Error()
				}
				d.Deleted, d.DeletedIndex = up.Deleted, up.DeletedIndex
			}
			st.Datasets = append(st.Datasets, d)
		}
		if sc.Algorithm != nil {
			st.Algorithm.Submitted, st.Algorithm.LogIndex = true, sc.Algorithm.Index
		}
		for _, m := range ct.Models {
			ms := api.ModelStatus{Name: m.Name, Provider: m.Provider, Commitment: fmt.Sprintf("%x", m.SHA256), Confidential: m.Confidential}
			if sm := sc.Models[m.Name]; sm != nil {
				ms.Submitted, ms.LogIndex = true, sm.Index
			}
			st.Models = append(st.Models, ms)
		}
		for _, r := range sc.Runs {
			st.Runs = append(st.Runs, runStatus(r, p.ID == ct.Algorithm.Provider))
		}
		st.RunsUsed = sc.RunsUsed()
		st.LastLogIndex = v.LastIndex(cid)
		if s := sc.Suspended; s != nil {
			st.Suspended = &api.Suspension{LogIndex: s.Index, By: s.Actor, Reason: s.Reason}
		}
		st.SupersededBy = sc.SupersededBy
		if ct.Supersedes != nil {
			st.Supersedes = ct.Supersedes.String()
		}
	})
	return st, nil
}

// runStatus is a run's status as a participant sees it: the sealed full
// reason of a refusal goes only to the algorithm's provider, the one key
// that can open it.
func runStatus(r *state.Run, provider bool) api.RunStatus {
	rs := api.RunStatus{RunID: r.ID, Number: r.Number, Status: string(r.Status), Reason: r.RefuseReason, LogIndex: r.StartIndex, Parameters: r.Started.Parameters}
	if provider {
		rs.SealedReason = r.SealedReason
	}
	if r.Finished != nil {
		rs.RowsKept, rs.RowsSuppressed, rs.ResultCommitment = r.Finished.RowsKept, r.Finished.RowsSuppressed, r.Finished.ResultCommitment
	}
	return rs
}
