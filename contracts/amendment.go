package contracts

import (
	"errors"
	"fmt"
	"strings"

	"cleanroom.dev/cleanroom/cleanroom"
)

// An amendment is a contract whose supersedes field names the contract it
// replaces (SPEC §13, docs/contract.md "Amendment"). Every participant of
// both contracts signs the new one: the participants of the new contract
// with the keys it gives them, those of the old contract with the keys the
// old one gives them (a participant in both with one key signs once). The
// old contract is then closed to new runs; what it spent carries over:
// runs started under it count against the new contract's max_runs, and a
// max_runs larger than the old one's needs every data provider's
// signature. A dataset moves to the new contract, without being uploaded
// again, when its provider signed the new contract and the dataset is the
// same in both: same id, provider, provider key and columns.

// AmendmentApprovals is the outcome of checking the signatures of an
// amendment.
type AmendmentApprovals struct {
	// New maps each participant of the new contract to the signature that
	// counts for it.
	New map[string][]byte
	// Old maps each participant of the old contract to the signature that
	// counts for it: its approval of the new contract, by the key the old
	// contract gives it.
	Old map[string][]byte
	// Problems lists every signature that does not count and every
	// participant of either contract who has not signed.
	Problems []*SignatureError
}

// Complete reports whether every participant of both contracts signed
// and no signature given was bad.
func (a *AmendmentApprovals) Complete() bool { return len(a.Problems) == 0 }

// Err returns nil when Complete, else every problem joined.
func (a *AmendmentApprovals) Err() error {
	errs := make([]error, len(a.Problems))
	for i, p := range a.Problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// VerifyAmendmentSignatures checks the signatures of c as an amendment of
// old: each signature must be a participant's approval of c (content type
// and payload as for VerifySignatures), by the key c gives that participant
// or, for a participant of old, the key old gives it; and every
// participant of both contracts must have signed. It does not check that c
// supersedes old (CheckAmendment does).
func (c *Contract) VerifyAmendmentSignatures(old *Contract, sigs []SignedBy) *AmendmentApprovals {
	a := &AmendmentApprovals{New: map[string][]byte{}, Old: map[string][]byte{}}
	for _, sig := range sigs {
		st, err := cleanroom.DecodeStatement(sig.Data)
		if err != nil {
			a.Problems = append(a.Problems, &SignatureError{Source: sig.Source, Err: ErrSignatureMalformed, Detail: err.Error()})
			continue
		}
		pn, po := c.ParticipantByKey(st.KeyID), old.ParticipantByKey(st.KeyID)
		if pn == nil && po == nil {
			a.Problems = append(a.Problems, &SignatureError{Source: sig.Source, Err: ErrSignerUnknown,
				Detail: "key " + st.KeyID.Short() + " is not a participant's in this contract nor in the contract it supersedes"})
			continue
		}
		for _, side := range []struct {
			p     *Participant
			valid map[string][]byte
			label string
		}{{pn, a.New, ""}, {po, a.Old, "of the superseded contract "}} {
			if side.p == nil {
				continue
			}
			if err := verifyApproval(sig, st, side.p, c.id); err != nil {
				se := err.(*SignatureError)
				se.Participant = side.label + se.Participant
				a.Problems = append(a.Problems, se)
				break // the same bytes fail the same way under the same key
			}
			if _, dup := side.valid[side.p.ID]; !dup {
				side.valid[side.p.ID] = sig.Data
			}
		}
	}
	for _, p := range c.Participants {
		if _, ok := a.New[p.ID]; !ok {
			a.Problems = append(a.Problems, &SignatureError{Participant: p.ID, Err: ErrSignatureMissing})
		}
	}
	for _, p := range old.Participants {
		if _, ok := a.Old[p.ID]; !ok {
			a.Problems = append(a.Problems, &SignatureError{Participant: "of the superseded contract " + p.ID, Err: ErrSignatureMissing,
				Detail: "every participant of the contract an amendment supersedes must sign the amendment"})
		}
	}
	return a
}

// ErrAmendment wraps every reason an amendment is refused besides its
// signatures.
var ErrAmendment = errors.New("amendment refused")

// CheckAmendment checks that c may supersede old, given who signed c
// (VerifyAmendmentSignatures): c names old in supersedes, and no budget
// grows without the signature of every data provider of both contracts.
// Budgets are totals over the contracts an amendment chains, so a larger
// one lets more be released from the same data: max_runs (the runs started
// under old count against c's) — and, with differential privacy, the
// totals of its budget (docs/contract.md "Amendment"). It returns every
// problem, joined, each wrapping ErrAmendment.
func (c *Contract) CheckAmendment(old *Contract, signed *AmendmentApprovals) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrAmendment, fmt.Sprintf(format, args...)))
	}
	if c.Supersedes == nil || *c.Supersedes != old.ID() {
		bad("supersedes must name contract %s, the contract it amends", old.ID())
	}
	if c.ID() == old.ID() {
		bad("a contract cannot supersede itself")
	}
	if grown := c.BudgetGrowth(old); len(grown) > 0 {
		if missing := c.unsignedProviders(old, signed); len(missing) > 0 {
			bad("%s, which lets more be released from the same data: every data provider of both contracts must sign the amendment, and %s has not",
				strings.Join(grown, "; "), strings.Join(missing, ", "))
		}
	}
	return errors.Join(errs...)
}

// BudgetGrowth lists every budget of c that is larger than old's, each as
// "FIELD grows from OLD to NEW". A budget is a total over the contracts an
// amendment chains: today output.max_runs; a contract with a differential
// privacy budget adds its totals here (epsilon_total, delta_total), so that
// the rule of CheckAmendment covers them without change.
func (c *Contract) BudgetGrowth(old *Contract) []string {
	var grown []string
	if c.Output.MaxRuns > old.Output.MaxRuns {
		grown = append(grown, fmt.Sprintf("output.max_runs grows from %d to %d", old.Output.MaxRuns, c.Output.MaxRuns))
	}
	return grown
}

// unsignedProviders lists the data providers of c and old who have not
// signed c, by their ids.
func (c *Contract) unsignedProviders(old *Contract, signed *AmendmentApprovals) []string {
	var missing []string
	seen := map[string]bool{}
	for _, side := range []struct {
		ct    *Contract
		valid map[string][]byte
		label string
	}{{c, signed.New, ""}, {old, signed.Old, " (of the superseded contract)"}} {
		for _, p := range side.ct.Participants {
			if !p.Has(RoleDataProvider) {
				continue
			}
			if _, ok := side.valid[p.ID]; !ok && !seen[p.ID] {
				seen[p.ID] = true
				missing = append(missing, p.ID+side.label)
			}
		}
	}
	return missing
}

// CarriesOver says whether dataset id of old moves to c when c supersedes
// old: nil when it does, or why not. It moves when c has a dataset of
// that id with the same provider, the provider has the same key in both
// and signed c (signed, from VerifyAmendmentSignatures), and the columns
// are the same (the schema digest its upload statement names).
func (c *Contract) CarriesOver(old *Contract, id string, signed *AmendmentApprovals) error {
	od, nd := old.Dataset(id), c.Dataset(id)
	switch {
	case od == nil:
		return fmt.Errorf("the superseded contract has no dataset %s", id)
	case nd == nil:
		return fmt.Errorf("the amendment has no dataset %s", id)
	case od.Provider != nd.Provider:
		return fmt.Errorf("dataset %s is provided by %s in the amendment, by %s before", id, nd.Provider, od.Provider)
	case od.SchemaDigest() != nd.SchemaDigest():
		return fmt.Errorf("dataset %s has other columns in the amendment", id)
	}
	op, np := old.Participant(od.Provider), c.Participant(nd.Provider)
	if op == nil || np == nil || !op.PublicKey.Equal(np.PublicKey) {
		return fmt.Errorf("dataset %s's provider %s has another key in the amendment", id, nd.Provider)
	}
	if _, ok := signed.New[np.ID]; !ok {
		return fmt.Errorf("dataset %s's provider %s has not signed the amendment", id, np.ID)
	}
	return nil
}
