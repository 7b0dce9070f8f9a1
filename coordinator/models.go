package coordinator

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/engine"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
)

// The sealed form of a model at rest is salt ‖ module for a confidential
// model, the module alone otherwise, sealed as blob kind "model".
const modelBlobKind = "model"

// SubmitModel accepts the module of one of the contract's models from the
// model's provider: as it is, or (required for a confidential model)
// sealed to this coordinator with cleanroom.SealModel. The module must
// match the contract's commitment (a salted commitment for a confidential
// model, the salt coming inside the sealed submission) and pass
// engine.CheckModule. It is stored sealed; model.submitted logs the
// commitment only.
func (c *Coordinator) SubmitModel(ctx context.Context, actor ed25519.PublicKey, cid contracts.ID, name string, module, sealed []byte) (*api.ModelReceipt, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	ct := sc.Contract
	m := ct.Model(name)
	if m == nil || m.Name != name {
		return nil, notFound("contract %s names no model %q", cid, name)
	}
	if p.ID != m.Provider {
		return nil, forbidden("participant %q may not submit model %s: only its provider %s may", p.ID, name, m.Provider)
	}
	if err := c.checkNotExpired(ct); err != nil {
		return nil, err
	}
	var salt *cleanroom.Salt
	switch {
	case (module == nil) == (sealed == nil):
		return nil, badRequest("give the module either as it is or sealed")
	case sealed != nil:
		s, mod, err := cleanroom.OpenModel(c.tee.Identity().HPKE(), cid, name, sealed)
		if err != nil {
			return nil, unprocessable(err, "%v", err)
		}
		module = mod
		if m.Confidential {
			salt = &s // a model that is not confidential is sealed in transit only
		}
	case m.Confidential:
		return nil, badRequest("model %s of contract %s is confidential: send it sealed to the coordinator, with the salt of its commitment", name, cid).
			withHint("cleanroom model submit seals it for you")
	}
	if err := m.Check(module, salt); err != nil {
		e := unprocessable(err, "%v", err).
			withHint("submit the exact module (and, for a confidential model, the salt file) the contract's commitment was made from")
		e.Private = m.Confidential
		return nil, e
	}
	if err := engine.CheckModule(ctx, engineModel(m, module)); err != nil {
		e := unprocessable(err, "the module is refused: %v", err)
		e.Private = true
		return nil, e.withHint("docs/models.md describes the ABI and the allowed imports")
	}
	unlock := c.locks.lock(cid.String())
	defer unlock()
	if sm := c.model(cid, name); sm != nil {
		// The module passed the check against the contract's commitment,
		// so it is the one submitted before: a retry, acknowledged.
		return &api.ModelReceipt{Name: name, Commitment: sm.Submitted.Commitment, LogIndex: sm.Index, Already: true}, nil
	}
	stored := module
	if salt != nil {
		stored = append(append(make([]byte, 0, cleanroom.SaltSize+len(module)), salt[:]...), module...)
	}
	blob, err := c.putSealed(modelBlobKind, stored)
	if err != nil {
		return nil, storageError(err, "storing the model")
	}
	commitment := fmt.Sprintf("%x", m.SHA256)
	idx, err := c.commit(ctx, &events.Event{
		Type: events.TypeModelSubmitted, Contract: cid.String(),
		Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
		ModelSubmitted: &events.ModelSubmitted{Name: name, Commitment: commitment, Confidential: m.Confidential, Module: blob},
	})
	if err != nil {
		return nil, err
	}
	c.logger.Info("model submitted", "contract", cid.String(), "model", name, "by", p.ID, "confidential", m.Confidential, "log_index", idx)
	return &api.ModelReceipt{Name: name, Commitment: commitment, LogIndex: idx}, nil
}

func engineModel(m *contracts.Model, module []byte) engine.Model {
	return engine.Model{Name: m.Name, Provider: m.Provider, Args: m.Args, Result: m.Result, Module: module}
}

func (c *Coordinator) model(cid contracts.ID, name string) *state.Model {
	var m *state.Model
	c.state.View(func(v *state.Snapshot) {
		if sc := v.Contract(cid); sc != nil {
			m = sc.Models[name]
		}
	})
	return m
}

// readModel reads a submitted model's module back and checks it against
// the contract's commitment again.
func (c *Coordinator) readModel(ct *contracts.Contract, m *contracts.Model) ([]byte, error) {
	sm := c.model(ct.ID(), m.Name)
	if sm == nil {
		return nil, fmt.Errorf("model %s has not been submitted (by %s)", m.Name, m.Provider)
	}
	plain, err := c.readSealed(modelBlobKind, sm.Submitted.Module)
	if err != nil {
		return nil, fmt.Errorf("reading model %s: %w", m.Name, err)
	}
	var salt *cleanroom.Salt
	if m.Confidential {
		if len(plain) < cleanroom.SaltSize {
			return nil, fmt.Errorf("the stored model %s is shorter than its salt", m.Name)
		}
		var s cleanroom.Salt
		copy(s[:], plain)
		salt, plain = &s, plain[cleanroom.SaltSize:]
	}
	if err := m.Check(plain, salt); err != nil {
		return nil, fmt.Errorf("the stored model %s: %w", m.Name, err)
	}
	return plain, nil
}

// Model returns a submitted model's module: a confidential one to its
// provider only, any other to every participant. The operator and
// everyone else see only the sealed blob on disk.
func (c *Coordinator) Model(cid contracts.ID, actor ed25519.PublicKey, name string) ([]byte, error) {
	sc, p, err := c.participant(cid, actor)
	if err != nil {
		return nil, err
	}
	m := sc.Contract.Model(name)
	if m == nil || m.Name != name {
		return nil, notFound("contract %s names no model %q", cid, name)
	}
	if m.Confidential && p.ID != m.Provider {
		return nil, forbidden("model %s is confidential: only its provider %s may fetch it", name, m.Provider)
	}
	if c.model(cid, name) == nil {
		return nil, notFound("model %s of contract %s has not been submitted", name, cid)
	}
	module, err := c.readModel(sc.Contract, m)
	if err != nil {
		return nil, internal(err, "%v", err)
	}
	return module, nil
}

// loadModels reads every model of the contract and adds them to the run's
// session.
func (c *Coordinator) loadModels(ctx context.Context, sess *engine.Session, ct *contracts.Contract) error {
	if len(ct.Models) == 0 {
		return nil
	}
	models := make([]engine.Model, len(ct.Models))
	for i := range ct.Models {
		module, err := c.readModel(ct, &ct.Models[i])
		if err != nil {
			return err
		}
		models[i] = engineModel(&ct.Models[i], module)
	}
	return sess.AddModels(ctx, models)
}

func (c *Coordinator) handleSubmitModel(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, api.MaxModelSize+1))
	if err != nil {
		return badRequest("reading the module: %v", err)
	}
	if len(body) > api.MaxModelSize {
		return newError(http.StatusRequestEntityTooLarge, "too_large", nil, "the module is larger than %d bytes", api.MaxModelSize)
	}
	var module, sealed []byte
	switch ct := r.Header.Get("Content-Type"); ct {
	case api.ContentTypeWasm:
		module = body
	case api.ContentTypeSealedModel:
		sealed = body
	default:
		return newError(http.StatusUnsupportedMediaType, "bad_request", nil, "content type %q: send %s or %s", ct, api.ContentTypeWasm, api.ContentTypeSealedModel)
	}
	rec, err := c.SubmitModel(r.Context(), atls.RequestKey(r), cid, r.PathValue("name"), module, sealed)
	if err != nil {
		return err
	}
	writeJSON(w, createdOr200(rec.Already), rec)
	return nil
}

func (c *Coordinator) handleGetModel(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathContract(r)
	if err != nil {
		return err
	}
	module, err := c.Model(cid, atls.RequestKey(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", api.ContentTypeWasm)
	w.Write(module)
	return nil
}
