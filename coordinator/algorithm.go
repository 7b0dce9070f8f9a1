package coordinator

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/engine"
	"cleanroom.dev/cleanroom/coordinator/state"
)

// MaxAlgorithmSize bounds an algorithm's text.
const MaxAlgorithmSize = 1 << 20

// SubmitAlgorithm accepts the algorithm from the contract's algorithm
// provider: plain text, or (required for a confidential algorithm) sealed
// to this coordinator with cleanroom.SealAlgorithm. The text must hash to
// the contract's algorithm.sha256 and be exactly one SELECT statement. It
// is stored sealed.
func (c *Coordinator) SubmitAlgorithm(ctx context.Context, actor ed25519.PublicKey, cid contracts.ID, text, sealed []byte) (*api.AlgorithmReceipt, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	ct := sc.Contract
	if err := requireRole(p, "submit the algorithm", contracts.RoleAlgorithmProvider); err != nil {
		return nil, err
	}
	if err := c.checkNotExpired(ct); err != nil {
		return nil, err
	}
	switch {
	case (text == nil) == (sealed == nil):
		return nil, badRequest("give exactly one of text and sealed")
	case sealed != nil:
		if text, err = cleanroom.OpenAlgorithm(c.tee.Identity().HPKE(), cid, sealed); err != nil {
			return nil, unprocessable(err, "%v", err)
		}
	case ct.Algorithm.Confidential:
		return nil, badRequest("contract %s's algorithm is confidential: send it sealed to the coordinator, not as plain text", cid).
			withHint("cleanroom algorithm submit seals it for you")
	}
	if len(text) > MaxAlgorithmSize {
		return nil, newError(413, "too_large", nil, "the algorithm has %d bytes; the limit is %d", len(text), MaxAlgorithmSize)
	}
	sum := sha256.Sum256(text)
	if sum != ct.Algorithm.SHA256 {
		return nil, unprocessable(nil, "the algorithm's SHA-256 is %x; contract %s approves only %x", sum, cid, ct.Algorithm.SHA256).
			withHint("submit the exact query bytes whose hash the contract names (no added newline or spaces)")
	}
	datasets := make([]string, len(ct.Datasets))
	for i, ds := range ct.Datasets {
		datasets[i] = ds.ID
	}
	if err := engine.CheckQuery(string(text), datasets); err != nil {
		e := unprocessable(err, "the algorithm is refused: %v", err)
		// The refusal can quote the query: for a confidential algorithm,
		// only its provider may read it.
		e.Private = ct.Algorithm.Confidential
		return nil, e
	}
	unlock := c.locks.lock(cid.String())
	defer unlock()
	if c.algorithm(cid) != nil {
		return nil, conflict("the algorithm of contract %s is already submitted", cid)
	}
	blob, err := c.putSealed("algorithm", text)
	if err != nil {
		return nil, storageError(err, "storing the algorithm")
	}
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeAlgorithmSubmitted, Contract: cid.String(),
		Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		AlgorithmSubmitted: &events.AlgorithmSubmitted{SHA256: fmt.Sprintf("%x", sum), Confidential: ct.Algorithm.Confidential, Text: blob},
	})
	if err != nil {
		return nil, err
	}
	c.logger.Info("algorithm submitted", "contract", cid.String(), "by", p.ID, "confidential", ct.Algorithm.Confidential, "log_index", idx)
	return &api.AlgorithmReceipt{SHA256: fmt.Sprintf("%x", sum), LogIndex: idx}, nil
}

func (c *Coordinator) algorithm(cid contracts.ID) *state.Algorithm {
	var a *state.Algorithm
	c.state.View(func(v *state.Snapshot) {
		if sc := v.Contract(cid); sc != nil {
			a = sc.Algorithm
		}
	})
	return a
}

// Algorithm returns the submitted algorithm: with its text to the
// algorithm provider, and to every participant when it is not
// confidential.
func (c *Coordinator) Algorithm(cid contracts.ID, actor ed25519.PublicKey) (*api.AlgorithmView, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	a := c.algorithm(cid)
	if a == nil {
		return nil, notFound("the algorithm of contract %s has not been submitted", cid)
	}
	view := &api.AlgorithmView{SHA256: a.Submitted.SHA256, Confidential: a.Submitted.Confidential}
	if !a.Submitted.Confidential || p.ID == sc.Contract.Algorithm.Provider {
		text, err := c.readSealed("algorithm", a.Submitted.Text)
		if err != nil {
			return nil, internal(err, "reading the algorithm: %v", err)
		}
		view.Text = string(text)
	}
	return view, nil
}
