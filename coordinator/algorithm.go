package coordinator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/querycheck"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/engine"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
)

// MaxAlgorithmSize bounds an algorithm's text.
const MaxAlgorithmSize = 1 << 20

// SubmitAlgorithm accepts the algorithm from the contract's algorithm
// provider: plain text for an algorithm that is not confidential, or, for a
// confidential one, the text and its commitment salt sealed to this
// coordinator with cleanroom.SealAlgorithm. The text must be what the
// contract's algorithm.sha256 names (contracts.Algorithm.Check: its SHA-256,
// or for a confidential algorithm the salted commitment) and exactly one
// SELECT statement. It is stored sealed, with the salt when there is one.
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
	var salt *cleanroom.Salt
	switch {
	case (text == nil) == (sealed == nil):
		return nil, badRequest("give exactly one of text and sealed")
	case sealed != nil && !ct.Algorithm.Confidential:
		return nil, badRequest("contract %s's algorithm is not confidential: send its text, not sealed", cid).
			withHint("cleanroom algorithm submit does this for you")
	case sealed != nil:
		s, opened, err := cleanroom.OpenAlgorithm(c.tee.Identity().HPKE(), cid, sealed)
		if err != nil {
			e := unprocessable(err, "%v", err)
			if errors.Is(err, cleanroom.ErrOldAlgorithmFormat) {
				e = e.withHint("make the commitment with cleanroom algorithm commit; the contract's algorithm.sha256 must be that commitment")
			}
			return nil, e
		}
		text, salt = opened, &s
	case ct.Algorithm.Confidential:
		return nil, badRequest("contract %s's algorithm is confidential: send it sealed to the coordinator, not as plain text", cid).
			withHint("cleanroom algorithm submit seals it for you")
	}
	if len(text) > MaxAlgorithmSize {
		return nil, newError(413, "too_large", nil, "the algorithm has %d bytes; the limit is %d", len(text), MaxAlgorithmSize)
	}
	if err := ct.Algorithm.Check(text, salt); err != nil {
		hint := "submit the exact query bytes whose hash the contract names (no added newline or spaces)"
		if ct.Algorithm.Confidential {
			hint = "submit the exact query bytes with the salt file cleanroom algorithm commit wrote when it printed the contract's algorithm.sha256"
		}
		// The message names digests only: nothing of the text.
		return nil, unprocessable(err, "contract %s: %v", cid, err).withHint(hint)
	}
	// The statement check and, in mode aggregate, the privacy analysis:
	// an algorithm a run would refuse is refused before any run is spent.
	if err := engine.CheckAlgorithm(string(text), engine.ContractPolicy(ct)); err != nil {
		e := unprocessable(err, "the algorithm is refused: %v", err)
		// The refusal can quote the query: for a confidential algorithm,
		// only its provider may read it.
		e.Private = ct.Algorithm.Confidential
		return nil, e
	}
	// DuckDB binds it against empty tables of the contract's schemas: a
	// column or function the datasets lack is named now, not in a run.
	if err := querycheck.Bind(ctx, string(text), ct); err != nil {
		e := unprocessable(err, "the algorithm is refused: %v", err).
			withHint("cleanroom algorithm check QUERY --contract FILE runs the same checks before anything is sent")
		e.Private = ct.Algorithm.Confidential
		return nil, e
	}
	unlock := c.locks.lock(cid.String())
	defer unlock()
	if a := c.algorithm(cid); a != nil {
		// The text passed the check against the contract's digest, so it
		// is the one submitted before: a retry, acknowledged.
		return &api.AlgorithmReceipt{SHA256: a.Submitted.SHA256, LogIndex: a.Index, Already: true}, nil
	}
	blob, err := c.putSealed(algorithmBlobKind(ct.Algorithm.Confidential), algorithmBlob(text, salt))
	if err != nil {
		return nil, storageError(err, "storing the algorithm")
	}
	digest := fmt.Sprintf("%x", ct.Algorithm.SHA256)
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeAlgorithmSubmitted, Contract: cid.String(),
		Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		AlgorithmSubmitted: &events.AlgorithmSubmitted{SHA256: digest, Confidential: ct.Algorithm.Confidential, Text: blob},
	})
	if err != nil {
		return nil, err
	}
	c.logger.Info("algorithm submitted", "contract", cid.String(), "by", p.ID, "confidential", ct.Algorithm.Confidential, "log_index", idx)
	return &api.AlgorithmReceipt{SHA256: digest, LogIndex: idx}, nil
}

// The sealed blob of an algorithm: kind "algorithm" holds the text of an
// algorithm that is not confidential; kind "confidential-algorithm" holds
// the commitment's salt (32 bytes) followed by the text. The kind is in the
// seal's additional data, so one cannot be read as the other.
func algorithmBlobKind(confidential bool) string {
	if confidential {
		return "confidential-algorithm"
	}
	return "algorithm"
}

func algorithmBlob(text []byte, salt *cleanroom.Salt) []byte {
	if salt == nil {
		return text
	}
	return append(append(make([]byte, 0, cleanroom.SaltSize+len(text)), salt[:]...), text...)
}

// readAlgorithm reads a submitted algorithm's text and salt (nil when not
// confidential) from its sealed blob, and checks them against the contract
// again.
func (c *Coordinator) readAlgorithm(ct *contracts.Contract, a *state.Algorithm) ([]byte, error) {
	blob, err := c.readSealed(algorithmBlobKind(a.Submitted.Confidential), a.Submitted.Text)
	if err != nil {
		return nil, err
	}
	text, salt := blob, (*cleanroom.Salt)(nil)
	if a.Submitted.Confidential {
		if len(blob) < cleanroom.SaltSize {
			return nil, fmt.Errorf("the stored confidential algorithm has %d bytes, less than its salt", len(blob))
		}
		salt, text = new(cleanroom.Salt), blob[cleanroom.SaltSize:]
		copy(salt[:], blob)
	}
	if err := ct.Algorithm.Check(text, salt); err != nil {
		return nil, fmt.Errorf("the stored algorithm is not the contract's: %w", err)
	}
	return text, nil
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
		text, err := c.readAlgorithm(sc.Contract, a)
		if err != nil {
			return nil, internal(err, "reading the algorithm: %v", err)
		}
		view.Text = string(text)
	}
	return view, nil
}
