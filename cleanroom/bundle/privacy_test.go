package bundle_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/internal/bundletest"
)

// dpBlock gives the DP world a budget of 100 runs at ε 0.1 and δ 1e-7 (the
// tests share the world and its runs).
const dpBlock = "{epsilon_total: 10, delta_total: 1.0e-5, epsilon_per_run: 0.1, delta_per_run: 1.0e-7, " +
	"max_groups_contributed: 2, max_contributions_per_group: 1, bounds: {value: [0, 100]}}"

var (
	dpOnce  sync.Once
	dpWorld *bundletest.World
	dpErr   error
)

// privateWorld is a world whose contract's runs are differentially
// private.
func privateWorld(t *testing.T) *bundletest.World {
	t.Helper()
	dpOnce.Do(func() { dpWorld, dpErr = bundletest.NewWith(bundletest.Options{DifferentialPrivacy: dpBlock}) })
	if dpErr != nil {
		t.Fatalf("making the DP world: %v", dpErr)
	}
	return dpWorld
}

// TestPrivacyInStatement: the result statement of a differentially
// private run names its charge and the budget left; it round-trips, and
// Verify reports it and checks it against the contract and run.started.
func TestPrivacyInStatement(t *testing.T) {
	w := privateWorld(t)
	ctx := context.Background()
	for i := range 3 {
		run, err := w.Run(ctx, bundletest.RunOptions{})
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		// After n runs: ε 10 − n/10 and δ 1e-5 − n·1e-7 are left, in
		// decimal.
		n := run.Statement.RunNumber
		eps, _ := new(big.Rat).Sub(big.NewRat(10, 1), big.NewRat(n, 10)).Float64()
		del, _ := new(big.Rat).Sub(big.NewRat(1, 100000), big.NewRat(n, 10000000)).Float64()
		want := bundle.Privacy{Epsilon: 0.1, Delta: 1e-7, EpsilonLeft: eps, DeltaLeft: del}
		if run.Statement.Privacy == nil || *run.Statement.Privacy != want {
			t.Fatalf("run %d: statement names %+v, want %+v", n, run.Statement.Privacy, want)
		}
		parsed, err := bundle.ParseStatement(statementPayload(t, run.Signed))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(parsed.Privacy, run.Statement.Privacy) {
			t.Fatalf("round trip: %+v", parsed.Privacy)
		}
		r, err := bundle.Verify(run.Bundle, w.Contract, bundle.VerifyOptions{})
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, describeSteps(r))
		}
		if !strings.Contains(r.Steps[1].Detail, fmt.Sprintf("charged ε=0.1, δ=1e-07, leaving ε=%v, δ=%v", eps, del)) {
			t.Errorf("statement detail: %s", r.Steps[1].Detail)
		}
	}
}

// TestPrivacyMismatchRefused: a statement or run.started whose charge
// disagrees with the contract or with each other, or a statement that
// misstates the budget left, does not verify; nor does a charge in a
// contract without a budget, nor its absence in one with.
func TestPrivacyMismatchRefused(t *testing.T) {
	w := privateWorld(t)
	ctx := context.Background()
	cases := []struct {
		name string
		opts bundletest.RunOptions
		step bundle.Step
		part string
		want string
	}{
		{"statement without charge", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) { s.Privacy = nil }},
			bundle.StepStatement, bundle.PartStatement, "names no differential-privacy charge"},
		{"statement charges less", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) { s.Privacy.Epsilon = 0.05 }},
			bundle.StepStatement, bundle.PartStatement, "charges the run ε=0.05"},
		{"statement overstates what is left", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) { s.Privacy.EpsilonLeft += 1 }},
			bundle.StepEntries, bundle.PartRunStarted, "the statement says the run left"},
		{"entry without charge", bundletest.RunOptions{EditRunStarted: func(e *events.Event) { e.RunStarted.Privacy = nil }},
			bundle.StepEntries, bundle.PartRunStarted, "the entry charges the run nothing"},
		{"entry charges otherwise", bundletest.RunOptions{EditRunStarted: func(e *events.Event) { e.RunStarted.Privacy.Delta = 2e-7 }},
			bundle.StepEntries, bundle.PartRunStarted, "the entry charges the run ε=0.1, δ=2e-07"},
	}
	for _, tc := range cases {
		tc.opts.Unchecked = true
		run, err := w.Run(ctx, tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r, err := bundle.Verify(run.Bundle, w.Contract, bundle.VerifyOptions{})
		checkFailure(t, tc.name, r, err, tc.step, tc.part, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}

	// A charge in the statement of a contract that has no budget.
	plain := world(t)
	run, err := plain.Run(ctx, bundletest.RunOptions{Unchecked: true, EditStatement: func(s *bundle.Statement) {
		s.Privacy = &bundle.Privacy{Epsilon: 0.1, Delta: 1e-7, EpsilonLeft: 1, DeltaLeft: 1e-6}
	}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := bundle.Verify(run.Bundle, plain.Contract, bundle.VerifyOptions{})
	checkFailure(t, "charge without a budget", r, err, bundle.StepStatement, bundle.PartStatement, nil)
	// And one in its run.started only.
	run, err = plain.Run(ctx, bundletest.RunOptions{Unchecked: true, EditRunStarted: func(e *events.Event) {
		e.RunStarted.Privacy = &events.PrivacyCharge{Epsilon: 0.1, Delta: 1e-7, EpsilonSpent: 0.1, DeltaSpent: 1e-7}
	}})
	if err != nil {
		t.Fatal(err)
	}
	r, err = bundle.Verify(run.Bundle, plain.Contract, bundle.VerifyOptions{})
	checkFailure(t, "entry charge without a budget", r, err, bundle.StepEntries, bundle.PartRunStarted, nil)
}

// TestParseStatementPrivacy: the privacy map is strict like the rest.
func TestParseStatementPrivacy(t *testing.T) {
	w := privateWorld(t)
	run, err := w.Run(context.Background(), bundletest.RunOptions{Unchecked: true})
	if err != nil {
		t.Fatal(err)
	}
	payload := statementPayload(t, run.Signed)
	edit := func(f func(p map[any]any)) []byte {
		m := asMap(t, payload)
		f(m["privacy"].(map[any]any))
		return encode(t, m)
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"unknown field", edit(func(p map[any]any) { p["epsilon_spent"] = 0.1 }), "unknown field"},
		{"missing field", edit(func(p map[any]any) { delete(p, "delta_left") }), "canonical"},
		{"zero epsilon", edit(func(p map[any]any) { p["epsilon"] = 0.0 }), "privacy.epsilon"},
		{"negative left", edit(func(p map[any]any) { p["epsilon_left"] = -0.1 }), "privacy.epsilon_left"},
		{"infinite left", edit(func(p map[any]any) { p["delta_left"] = math.Inf(1) }), "privacy.delta_left"},
		{"NaN delta", edit(func(p map[any]any) { p["delta"] = math.NaN() }), "privacy.delta"},
		{"delta one", edit(func(p map[any]any) { p["delta"] = 1.0 }), "privacy.delta"},
		{"epsilon as text", edit(func(p map[any]any) { p["epsilon"] = "0.1" }), "privacy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bundle.ParseStatement(tc.payload)
			if !errors.Is(err, bundle.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
}
