package budget

import (
	"math"
	"testing"

	"cleanroom.dev/cleanroom/contracts"
)

// TestDecimalAccounting: charges add up as the decimals they are written
// as, not as float64 sums, in both admission and what is left.
func TestDecimalAccounting(t *testing.T) {
	total := Amount{0.3, 3e-7}
	per := Amount{0.1, 1e-7}
	var l Ledger
	for i := range 3 {
		if !l.Fits(per, total) {
			t.Fatalf("charge %d does not fit after %v", i+1, l.Spent())
		}
		l.Add(per)
	}
	if f := per.Epsilon; f+f+f <= total.Epsilon {
		t.Fatal("float64 sums are exact here: the test proves nothing")
	}
	if l.Fits(per, total) {
		t.Fatal("a fourth charge fits a budget of three")
	}
	if got := l.Spent(); got != total {
		t.Fatalf("spent %v, want %v", got, total)
	}
	if got := Left(total, l.Spent()); got != (Amount{}) || !l.Within(total) {
		t.Fatalf("left %v, want zero", got)
	}
	if l.Runs() != 3 {
		t.Fatalf("runs %d", l.Runs())
	}
	c := l.Clone()
	c.Add(per)
	if l.Runs() != 3 || c.Within(total) || !l.Within(total) {
		t.Fatal("the clone shares state with the ledger")
	}
	if left := Left(total, c.Spent()); left.Epsilon != -0.1 {
		t.Fatalf("overspent ledger leaves %v", left)
	}
}

func TestLeft(t *testing.T) {
	for _, tc := range []struct{ total, spent, want Amount }{
		{Amount{1, 1e-6}, Amount{0.3, 3e-7}, Amount{0.7, 7e-7}}, // float64 1-0.3 is 0.7000000000000001
		{Amount{3, 1e-6}, Amount{3, 1e-6}, Amount{}},
		{Amount{0.3, 1e-6}, Amount{0.4, 1e-6}, Amount{-0.1, 0}},
	} {
		if got := Left(tc.total, tc.spent); got != tc.want {
			t.Errorf("Left(%v, %v) = %v, want %v", tc.total, tc.spent, got, tc.want)
		}
	}
}

func TestAmountCheck(t *testing.T) {
	for _, a := range []Amount{{-1, 0}, {math.NaN(), 0}, {0, math.Inf(1)}} {
		if a.Check() == nil {
			t.Errorf("%v accepted", a)
		}
	}
	if err := (Amount{0.5, 1e-7}).Check(); err != nil {
		t.Fatal(err)
	}
}

func TestPerRunAndTotal(t *testing.T) {
	dp := &contracts.DifferentialPrivacy{EpsilonTotal: 3, DeltaTotal: 1e-6, EpsilonPerRun: 0.5, DeltaPerRun: 1e-7}
	if PerRun(dp) != (Amount{0.5, 1e-7}) || Total(dp) != (Amount{3, 1e-6}) {
		t.Fatal("amounts")
	}
	var l Ledger
	n := 0
	for l.Fits(PerRun(dp), Total(dp)) {
		l.Add(PerRun(dp))
		n++
	}
	if int64(n) != dp.RunsAllowed() {
		t.Fatalf("%d charges fit; RunsAllowed says %d", n, dp.RunsAllowed())
	}
}
