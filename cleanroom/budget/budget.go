// Package budget is the accounting of a contract's differential-privacy
// budget, the one rule the coordinator applies at admission and auditors
// apply to the log: every run of a contract in differential-privacy mode is
// charged an (ε, δ) amount in its run.started event; the charges of a
// contract are summed exactly; a run is admitted only when the sums with
// its charge stay within the contract's totals.
//
// Amounts are float64 values as contracts and events carry them, but they
// are added and compared as the exact decimal numbers they are written as
// (their shortest round-trip decimal form), so that three charges of 0.1
// spend exactly a budget of 0.3, as a person reading the contract expects,
// and an auditor's recomputation in any language with decimal arithmetic
// gives the same answer. docs/privacy.md specifies the rule.
package budget

import (
	"fmt"
	"math"
	"math/big"

	"cleanroom.dev/cleanroom/contracts"
)

// Amount is an (ε, δ) pair: a charge, a total or what is left.
type Amount struct {
	Epsilon float64
	Delta   float64
}

func (a Amount) String() string { return fmt.Sprintf("ε=%v, δ=%v", a.Epsilon, a.Delta) }

// Check reports an amount that cannot be a charge: negative or not finite.
func (a Amount) Check() error {
	for _, x := range []struct {
		name string
		v    float64
	}{{"epsilon", a.Epsilon}, {"delta", a.Delta}} {
		if math.IsNaN(x.v) || math.IsInf(x.v, 0) || x.v < 0 {
			return fmt.Errorf("%s %v is not a finite, non-negative amount", x.name, x.v)
		}
	}
	return nil
}

// PerRun returns the amount every run of the contract is charged.
func PerRun(dp *contracts.DifferentialPrivacy) Amount {
	return Amount{dp.EpsilonPerRun, dp.DeltaPerRun}
}

// Total returns the contract's whole budget.
func Total(dp *contracts.DifferentialPrivacy) Amount {
	return Amount{dp.EpsilonTotal, dp.DeltaTotal}
}

// Ledger is the exact sum of a contract's charges. The zero value is an
// empty ledger. Use it by pointer.
type Ledger struct {
	eps, delta big.Rat
	runs       int64
}

// Add records a charge. It panics on an amount Check refuses: callers
// check amounts from outside (events) first.
func (l *Ledger) Add(a Amount) {
	l.Carry(a)
	l.runs++
}

// Carry starts the ledger from the spend of the contracts an amendment
// supersedes (contract.registered's carried_privacy): it adds a to the sums
// without counting a run. It panics on an amount Check refuses.
func (l *Ledger) Carry(a Amount) {
	if err := a.Check(); err != nil {
		panic("budget: " + err.Error())
	}
	l.eps.Add(&l.eps, contracts.ExactDecimal(a.Epsilon))
	l.delta.Add(&l.delta, contracts.ExactDecimal(a.Delta))
}

// Runs returns the number of charges recorded.
func (l *Ledger) Runs() int64 { return l.runs }

// Spent returns the sums of the charges, each rounded to the nearest
// float64.
func (l *Ledger) Spent() Amount {
	e, _ := l.eps.Float64()
	d, _ := l.delta.Float64()
	return Amount{e, d}
}

// Fits reports whether a further charge a keeps both sums within total,
// exactly.
func (l *Ledger) Fits(a, total Amount) bool {
	e := new(big.Rat).Add(&l.eps, contracts.ExactDecimal(a.Epsilon))
	d := new(big.Rat).Add(&l.delta, contracts.ExactDecimal(a.Delta))
	return e.Cmp(contracts.ExactDecimal(total.Epsilon)) <= 0 && d.Cmp(contracts.ExactDecimal(total.Delta)) <= 0
}

// Within reports whether the sums are within total, exactly.
func (l *Ledger) Within(total Amount) bool { return l.Fits(Amount{}, total) }

// Left returns what a total leaves after spent: total − spent for ε and
// for δ, each computed on the exact decimal values of the two numbers and
// rounded to the nearest float64; negative when spent exceeds total. A
// result statement's budget left is Left(the contract's totals, the spend
// its run.started names), which any verifier can recompute.
func Left(total, spent Amount) Amount {
	e, _ := new(big.Rat).Sub(contracts.ExactDecimal(total.Epsilon), contracts.ExactDecimal(spent.Epsilon)).Float64()
	d, _ := new(big.Rat).Sub(contracts.ExactDecimal(total.Delta), contracts.ExactDecimal(spent.Delta)).Float64()
	return Amount{e, d}
}

// Clone returns an independent copy of the ledger.
func (l *Ledger) Clone() *Ledger {
	c := &Ledger{runs: l.runs}
	c.eps.Set(&l.eps)
	c.delta.Set(&l.delta)
	return c
}
