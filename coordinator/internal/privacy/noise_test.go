package privacy

import (
	"math"
	"slices"
	"strconv"
	"testing"
)

// The tests of this file check the distribution of what Release outputs
// against the distribution the mechanism must have at the scale the
// contract and the budget split imply, from many independent releases.
//
// Each uses a test whose false-failure probability is at most alpha = 1e-6
// for any sample size, with no asymptotic approximation:
//
//   - distributions: the Dvoretzky–Kiefer–Wolfowitz inequality with
//     Massart's constant, P(sup_x |F_n(x) − F(x)| > t) ≤ 2·exp(−2·n·t²),
//     which holds for every distribution F, discrete ones included; so the
//     test fails when the Kolmogorov–Smirnov distance exceeds
//     t = sqrt(ln(2/alpha) / (2n));
//   - frequencies: Hoeffding's inequality, P(|p̂ − p| > t) ≤ 2·exp(−2·n·t²),
//     the same t.
//
// With n = 40,000 the tolerance is t ≈ 0.0135: a noise scale 15% off its
// expected value moves the CDF by about 0.03 and fails (each test checks
// that it does, on its own samples: by the same inequality that check
// wrongly fails with probability below 1e-9); the right one passes except
// with probability 1e-6 per check. Ten such checks make the suite's
// false-failure rate at most 1e-5, whatever the machine or its speed.

const (
	alpha   = 1e-6
	samples = 40_000
)

// tolerance is the DKW / Hoeffding bound for n samples at alpha.
func tolerance(n int) float64 { return math.Sqrt(math.Log(2/alpha) / (2 * float64(n))) }

// laplaceCDF is the CDF of the Laplace distribution of scale b centred on 0.
func laplaceCDF(x, b float64) float64 {
	if x < 0 {
		return 0.5 * math.Exp(x/b)
	}
	return 1 - 0.5*math.Exp(-x/b)
}

// ksContinuous is the Kolmogorov–Smirnov distance between the empirical
// distribution of xs and the continuous CDF cdf.
func ksContinuous(xs []float64, cdf func(float64) float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := float64(len(s))
	d := 0.0
	for i, x := range s {
		f := cdf(x)
		d = math.Max(d, math.Max(float64(i+1)/n-f, f-float64(i)/n))
	}
	return d
}

// ksInteger is the Kolmogorov–Smirnov distance between the empirical
// distribution of integer samples and an integer distribution given by
// its CDF at the integers: both are step functions jumping only at
// integers, so the supremum is reached at an integer between the smallest
// sample less one and the largest.
func ksInteger(xs []int64, cdf func(int64) float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := float64(len(s))
	d := cdf(s[0] - 1) // F_n is 0 below the smallest sample
	i := 0
	for k := s[0]; k <= s[len(s)-1]; k++ {
		for i < len(s) && s[i] <= k {
			i++
		}
		d = math.Max(d, math.Abs(float64(i)/n-cdf(k)))
	}
	return d
}

// roundedLaplaceCDF is the CDF at integer k of a Laplace variable of
// scale b rounded to the nearest integer: the library's integer noise (a
// geometric sample on a grid of about b·2⁻⁴⁰, rounded).
func roundedLaplaceCDF(b float64) func(int64) float64 {
	return func(k int64) float64 { return laplaceCDF(float64(k)+0.5, b) }
}

// units makes n contributions to group g, each with rows rows and, in
// value column 0, count values summing to sum.
func units(g string, n int, rows, count int64, sum float64) []Contribution {
	out := make([]Contribution, n)
	for i := range out {
		out[i] = Contribution{Unit: g + "/" + strconv.Itoa(i), Group: []any{g}, Rows: rows, Values: []Partial{{Count: count, Sum: sum}}}
	}
	return out
}

// release runs Release n times and returns each aggregate's values.
func release(t *testing.T, p Params, in []Contribution, n int) [][]any {
	t.Helper()
	out := make([][]any, len(p.Aggregates))
	for range n {
		rows, err := Release(p, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Fatalf("%d rows released, want 1", len(rows))
		}
		for i, v := range rows[0].Values {
			out[i] = append(out[i], v)
		}
	}
	return out
}

// TestCountNoise: COUNT(*) and COUNT(DISTINCT unit) of one public group,
// with the run's ε split between the two, have integer Laplace noise of
// scale G·C/ε_agg and G/ε_agg.
func TestCountNoise(t *testing.T) {
	const eps, G, C = 2.0, 2, 3
	p := Params{Epsilon: eps, Delta: 1e-6, MaxGroupsContributed: G, MaxContributionsPerGroup: C,
		Aggregates: []Aggregate{{Kind: CountRows}, {Kind: CountUnits}}, PublicGroups: [][]any{{"g"}}}
	in := units("g", 50, C, 0, 0) // 150 rows, 50 units: far enough from 0 that the clamp at 0 never acts
	split := BudgetSplit(p)
	if split.Mechanisms != 2 || split.AggregateEpsilon != 1 || split.PartitionSelection {
		t.Fatalf("split %+v", split)
	}
	vals := release(t, p, in, samples)
	for i, want := range []struct {
		name  string
		truth int64
		scale float64
	}{
		{"COUNT(*)", 50 * C, G * C / split.AggregateEpsilon},
		{"COUNT(DISTINCT unit)", 50, G / split.AggregateEpsilon},
	} {
		noise := make([]int64, len(vals[i]))
		for j, v := range vals[i] {
			noise[j] = v.(int64) - want.truth
		}
		d := ksInteger(noise, roundedLaplaceCDF(want.scale))
		t.Logf("%s: KS distance %.4f to rounded Laplace(%v); tolerance %.4f", want.name, d, want.scale, tolerance(samples))
		if d > tolerance(samples) {
			t.Errorf("%s: the noise is not integer Laplace of scale %v: KS distance %.4f > %.4f", want.name, want.scale, d, tolerance(samples))
		}
		// The same samples against a scale 15% too small must fail: the
		// test has the power it claims.
		if d := ksInteger(noise, roundedLaplaceCDF(want.scale*0.85)); d <= tolerance(samples) {
			t.Errorf("%s: the test cannot tell scale %v from %v (distance %.4f)", want.name, want.scale, want.scale*0.85, d)
		}
	}
}

// TestSumNoise: SUM of a group kept by partition selection (the budget
// split in two) has Laplace noise of scale G·C·max(|lower|, |upper|)/ε_agg.
func TestSumNoise(t *testing.T) {
	const eps, G, C, lo, hi = 2.0, 1, 2, -10.0, 10.0
	p := Params{Epsilon: eps, Delta: 1e-6, MaxGroupsContributed: G, MaxContributionsPerGroup: C,
		Aggregates: []Aggregate{{Kind: Sum, Column: 0, Lower: lo, Upper: hi}}}
	// 200 units, each two values summing to 10: the group is kept with
	// certainty (its keep probability is 1 to double precision). The
	// bounds straddle 0, so no sign clamp acts on the sum.
	in := units("g", 200, C, C, 10)
	split := BudgetSplit(p)
	if split.Mechanisms != 2 || split.AggregateEpsilon != 1 || split.SelectionEpsilon != 1 || split.SelectionDelta != 1e-6 {
		t.Fatalf("split %+v", split)
	}
	scale := G * C * math.Max(math.Abs(lo), math.Abs(hi)) / split.AggregateEpsilon
	vals := release(t, p, in, samples)
	noise := make([]float64, len(vals[0]))
	for i, v := range vals[0] {
		noise[i] = v.(float64) - 2000
	}
	d := ksContinuous(noise, func(x float64) float64 { return laplaceCDF(x, scale) })
	t.Logf("SUM: KS distance %.4f to Laplace(%v); tolerance %.4f", d, scale, tolerance(samples))
	if d > tolerance(samples) {
		t.Errorf("SUM: the noise is not Laplace of scale %v: KS distance %.4f > %.4f", scale, d, tolerance(samples))
	}
	if d := ksContinuous(noise, func(x float64) float64 { return laplaceCDF(x, scale*0.85) }); d <= tolerance(samples) {
		t.Errorf("SUM: the test cannot tell scale %v from %v (distance %.4f)", scale, scale*0.85, d)
	}
}

// TestAvgNoise: AVG spends its ε half on a noisy normalized sum and half on
// a noisy count (dpagg.BoundedMean). With every value at the midpoint of
// the bounds the normalized sum is 0, so N·(AVG − midpoint) is the sum's
// Laplace noise of scale G·C·(upper − lower)/2 / (ε_agg/2), divided by the
// noisy count over N (a random relative error of about 2/N, symmetric, whose
// effect on the CDF is of order (2/N)², far below what the test can see).
func TestAvgNoise(t *testing.T) {
	const eps, G, C, lo, hi, N = 1.0, 1, 1, 0.0, 10.0, 200
	p := Params{Epsilon: eps, Delta: 1e-6, MaxGroupsContributed: G, MaxContributionsPerGroup: C,
		Aggregates: []Aggregate{{Kind: Avg, Column: 0, Lower: lo, Upper: hi}}, PublicGroups: [][]any{{"g"}}}
	mid := (lo + hi) / 2
	in := units("g", N, 1, 1, mid)
	split := BudgetSplit(p)
	scale := G * C * (hi - lo) / 2 / (split.AggregateEpsilon / 2)
	vals := release(t, p, in, samples)
	noise := make([]float64, len(vals[0]))
	for i, v := range vals[0] {
		noise[i] = N * (v.(float64) - mid)
	}
	d := ksContinuous(noise, func(x float64) float64 { return laplaceCDF(x, scale) })
	t.Logf("AVG: KS distance %.4f to Laplace(%v) over N; tolerance %.4f", d, scale, tolerance(samples))
	if d > tolerance(samples) {
		t.Errorf("AVG: N·(AVG − midpoint) is not Laplace of scale %v: KS distance %.4f > %.4f", scale, d, tolerance(samples))
	}
	if d := ksContinuous(noise, func(x float64) float64 { return laplaceCDF(x, scale*0.85) }); d <= tolerance(samples) {
		t.Errorf("AVG: the test cannot tell scale %v from %v (distance %.4f)", scale, scale*0.85, d)
	}
}

// keepProbability is the probability that partition selection keeps a
// group of n units, from the recurrence of Desfontaines, Voss, Gipson and
// Mandayam, "Differentially private partition selection" (PoPETs 2022),
// Theorem 1, with the per-group ε and δ of a unit in at most l0 groups.
func keepProbability(n int, eps, delta float64, l0 int) float64 {
	pe, pd := eps/float64(l0), delta/float64(l0)
	p := 0.0
	for range n {
		p = math.Min(math.Min(p*math.Exp(pe)+pd, 1-math.Exp(-pe)*(1-p-pd)), 1)
	}
	return p
}

// TestPartitionSelection: a group of n units is released with the
// probability the partition-selection recurrence gives for the selection's
// share of the budget (ε/2 of a run with one aggregate, all of δ), checked
// with Hoeffding's bound at alpha for each group size.
func TestPartitionSelection(t *testing.T) {
	for _, G := range []int64{1, 2} {
		p := Params{Epsilon: 2, Delta: 0.2, MaxGroupsContributed: G, MaxContributionsPerGroup: 1, Aggregates: []Aggregate{{Kind: CountUnits}}}
		split := BudgetSplit(p)
		if split.SelectionEpsilon != 1 || split.SelectionDelta != 0.2 {
			t.Fatalf("split %+v", split)
		}
		var in []Contribution
		for n, g := range []string{"a", "b", "c"} {
			in = append(in, units(g, n+1, 1, 0, 0)...)
		}
		kept := map[string]int{}
		for range samples {
			rows, err := Release(p, in)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				kept[r.Group[0].(string)]++
			}
		}
		for n, g := range []string{"a", "b", "c"} {
			want := keepProbability(n+1, split.SelectionEpsilon, split.SelectionDelta, int(G))
			got := float64(kept[g]) / samples
			t.Logf("G=%d, %d units: kept %.4f, expected %.4f", G, n+1, got, want)
			if math.Abs(got-want) > tolerance(samples) {
				t.Errorf("G=%d: a group of %d units was kept %.4f of the time; the mechanism keeps it with probability %.4f (tolerance %.4f)",
					G, n+1, got, want, tolerance(samples))
			}
		}
	}
}
