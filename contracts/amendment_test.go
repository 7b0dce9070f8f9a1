package contracts

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
)

// amend returns baseYAML superseding old, with edits applied.
func amend(t *testing.T, old *Contract, edits ...string) *Contract {
	t.Helper()
	text := baseYAML() + "supersedes: \"" + old.ID().String() + "\"\n"
	for i := 0; i+1 < len(edits); i += 2 {
		next := strings.Replace(text, edits[i], edits[i+1], 1)
		if next == text {
			t.Fatalf("edit %q did not apply", edits[i])
		}
		text = next
	}
	return mustParse(t, text)
}

// signAs signs c's id with a key c need not know (a participant of the
// superseded contract only).
func signAs(t *testing.T, c *Contract, id *cleanroom.Identity, name string) SignedBy {
	t.Helper()
	payload, err := CanonicalCBOR(approval{ContractID: c.id[:]})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cleanroom.SignStatement(id, cleanroom.ContentTypeContractApproval, payload)
	if err != nil {
		t.Fatal(err)
	}
	return SignedBy{Source: name + ".sig", Data: s}
}

func TestSupersedesChangesTheID(t *testing.T) {
	old := mustParse(t, baseYAML())
	next := amend(t, old)
	if next.Supersedes == nil || *next.Supersedes != old.ID() {
		t.Fatalf("supersedes parsed as %v", next.Supersedes)
	}
	if next.ID() == old.ID() {
		t.Fatal("supersedes does not change the id")
	}
	empty := mustParse(t, baseYAML()+"supersedes: \"\"\n")
	if empty.Supersedes != nil || empty.ID() != old.ID() {
		t.Fatal("an empty supersedes changes the contract")
	}
	if _, err := Parse([]byte(baseYAML()+"supersedes: \"abc\"\n"), ParseOptions{Now: testNow}); err == nil || !strings.Contains(err.Error(), "supersedes: must be 64 hex digits") {
		t.Fatalf("a short supersedes: %v", err)
	}
}

// TestAmendmentSignatures: every participant of both contracts signs the
// amendment, the old contract's only participants with their old keys.
func TestAmendmentSignatures(t *testing.T) {
	old := mustParse(t, baseYAML())
	// The amendment replaces the auditor by a stranger's key.
	next := amend(t, old, parties["auditor"].Public().String(), parties["stranger"].Public().String())
	all := append(signAll(t, next, "publisher", "advertiser", "measurer"), signAs(t, next, parties["stranger"], "new-auditor"), signAs(t, next, parties["auditor"], "old-auditor"))
	a := next.VerifyAmendmentSignatures(old, all)
	if !a.Complete() || len(a.New) != 4 || len(a.Old) != 4 {
		t.Fatalf("every signature given: %v (new %d, old %d)", a.Err(), len(a.New), len(a.Old))
	}
	if err := next.CheckAmendment(old, a); err != nil {
		t.Fatal(err)
	}
	// The old auditor's signature is missing.
	a = next.VerifyAmendmentSignatures(old, all[:4])
	if a.Complete() || !strings.Contains(a.Err().Error(), "participant of the superseded contract auditor: has not signed") {
		t.Fatalf("without the old auditor: %v", a.Err())
	}
	// The old auditor signed the old contract, not the amendment.
	oldSig := signAs(t, old, parties["auditor"], "old-auditor-old")
	a = next.VerifyAmendmentSignatures(old, append(all[:4:4], oldSig))
	if !errors.Is(a.Err(), ErrOtherContract) {
		t.Fatalf("a signature of the old contract: %v", a.Err())
	}
	// A key in neither contract.
	other, _ := cleanroom.GenerateIdentity()
	a = next.VerifyAmendmentSignatures(old, append(all, signAs(t, next, other, "other")))
	if !errors.Is(a.Err(), ErrSignerUnknown) {
		t.Fatalf("a stranger's signature: %v", a.Err())
	}
}

// TestAmendmentBudget: a max_runs that grows needs every data provider of
// both contracts; one that does not grow does not.
func TestAmendmentBudget(t *testing.T) {
	old := mustParse(t, baseYAML())
	grows := amend(t, old, "max_runs: 5", "max_runs: 10")
	full := grows.VerifyAmendmentSignatures(old, signAll(t, grows, "publisher", "advertiser", "measurer", "auditor"))
	if err := grows.CheckAmendment(old, full); err != nil {
		t.Fatalf("signed by all: %v", err)
	}
	partial := grows.VerifyAmendmentSignatures(old, signAll(t, grows, "advertiser", "measurer", "auditor"))
	err := grows.CheckAmendment(old, partial)
	if !errors.Is(err, ErrAmendment) || !strings.Contains(err.Error(), "output.max_runs grows from 5 to 10") || !strings.Contains(err.Error(), "publisher has not") {
		t.Fatalf("max_runs grows without the publisher: %v", err)
	}
	shrinks := amend(t, old, "max_runs: 5", "max_runs: 3")
	if err := shrinks.CheckAmendment(old, shrinks.VerifyAmendmentSignatures(old, signAll(t, shrinks, "advertiser"))); err != nil {
		t.Fatalf("a smaller max_runs needs no provider's signature for the budget rule: %v", err)
	}
	// An amendment must name the contract it amends.
	other := mustParse(t, strings.Replace(baseYAML(), "max_runs: 5", "max_runs: 4", 1))
	if err := grows.CheckAmendment(other, full); !errors.Is(err, ErrAmendment) || !strings.Contains(err.Error(), "supersedes must name contract "+other.ID().String()) {
		t.Fatalf("amending a contract it does not name: %v", err)
	}
}

func TestCarriesOver(t *testing.T) {
	old := mustParse(t, baseYAML())
	next := amend(t, old, "{name: value, type: float64}", "{name: value, type: \"decimal(10,2)\"}")
	signed := next.VerifyAmendmentSignatures(old, signAll(t, next, "publisher", "advertiser", "measurer", "auditor"))
	if err := next.CarriesOver(old, "impressions", signed); err != nil {
		t.Fatalf("impressions: %v", err)
	}
	if err := next.CarriesOver(old, "conversions", signed); err == nil || !strings.Contains(err.Error(), "other columns") {
		t.Fatalf("conversions with another column type: %v", err)
	}
	unsigned := next.VerifyAmendmentSignatures(old, signAll(t, next, "advertiser", "measurer", "auditor"))
	if err := next.CarriesOver(old, "impressions", unsigned); err == nil || !strings.Contains(err.Error(), "publisher has not signed") {
		t.Fatalf("impressions without its provider's signature: %v", err)
	}
	rekeyed := amend(t, old, parties["publisher"].Public().String(), parties["stranger"].Public().String())
	signed = rekeyed.VerifyAmendmentSignatures(old, signAll(t, rekeyed, "advertiser", "measurer", "auditor"))
	if err := rekeyed.CarriesOver(old, "impressions", signed); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("impressions whose provider has another key: %v", err)
	}
}

func TestResumptionSignatures(t *testing.T) {
	c := mustParse(t, baseYAML())
	var sigs []SignedBy
	for _, n := range []string{"publisher", "advertiser", "measurer", "auditor"} {
		s, err := c.SignResumption(parties[n], 42)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, SignedBy{Source: n, Data: s})
	}
	if a := c.VerifyResumptions(sigs, 42); !a.Complete() {
		t.Fatal(a.Err())
	}
	if a := c.VerifyResumptions(sigs[1:], 42); a.Complete() || !strings.Contains(a.Err().Error(), "participant publisher: has not signed") {
		t.Fatalf("without the publisher: %v", a.Err())
	}
	if a := c.VerifyResumptions(sigs, 43); !errors.Is(a.Err(), ErrOtherSuspension) {
		t.Fatalf("for another suspension: %v", a.Err())
	}
	// A contract approval is not a resumption approval, nor the reverse.
	approval := signAll(t, c, "publisher")[0]
	if _, err := c.VerifyResumption(approval, 42); !errors.Is(err, ErrSignatureInvalid) {
		t.Fatalf("a contract approval taken for a resumption: %v", err)
	}
	if _, err := c.VerifySignature(sigs[0]); !errors.Is(err, ErrSignatureInvalid) {
		t.Fatalf("a resumption taken for a contract approval: %v", err)
	}
	if _, err := c.SignResumption(parties["stranger"], 42); err == nil {
		t.Fatal("a stranger signed a resumption")
	}
	other := mustParse(t, strings.Replace(baseYAML(), "max_runs: 5", "max_runs: 6", 1))
	if _, err := other.VerifyResumption(sigs[0], 42); !errors.Is(err, ErrOtherContract) {
		t.Fatalf("another contract's resumption: %v", fmt.Sprint(err))
	}
}
