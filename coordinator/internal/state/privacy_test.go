package state

import (
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/budget"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/contracts"
)

// dpContract is testContract with a differential-privacy budget of three
// runs at ε 0.1 (decimal: 0.1+0.1+0.1 is 0.3) and δ 1e-7.
func dpContract(t *testing.T) *contracts.Contract {
	t.Helper()
	var keys [3]string
	for i := range keys {
		id, err := cleanroom.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = id.Public().String()
	}
	text := `version: 1
name: t
expires_at: 2099-01-01T00:00:00Z
participants:
  - {id: a, roles: [data_provider], public_key: "` + keys[0] + `"}
  - {id: b, roles: [algorithm_provider], public_key: "` + keys[1] + `"}
  - {id: c, roles: [result_recipient, auditor], public_key: "` + keys[2] + `"}
datasets:
  - {id: d, provider: a, privacy_unit: x, columns: [{name: x, type: int64}]}
algorithm: {provider: b, language: duckdb-sql, sha256: "` + strings.Repeat("aa", 32) + `"}
output:
  recipients: [c]
  max_rows: 10
  max_runs: 10
  mode: differential_privacy
  differential_privacy: {epsilon_total: 0.3, delta_total: 1e-6, epsilon_per_run: 0.1, delta_per_run: 1e-7,
                         max_groups_contributed: 1, max_contributions_per_group: 1}
coordinator: {platform: sev-snp, measurements: ["` + strings.Repeat("bb", 48) + `"]}
`
	c, err := contracts.Parse([]byte(text), contracts.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestApplyPrivacyCharges: the state sums a differentially private
// contract's charges exactly, and refuses (changing nothing) a run.started
// whose charge is missing, not the contract's per-run amount, beyond the
// budget, or names a spend the charges do not make, and a charge on a
// contract that has no budget.
func TestApplyPrivacyCharges(t *testing.T) {
	h := strings.Repeat("ab", 32)
	now := time.Now().UTC()
	setup := func(c *contracts.Contract) *State {
		s := New(func(*events.ContractRegistered) (*contracts.Contract, error) { return c, nil })
		e := &events.Event{V: events.Version, ID: events.NewID(), Time: now, Contract: c.ID().String(), Type: events.TypeContractRegistered,
			ContractRegistered: &events.ContractRegistered{Name: "t", Document: events.Blob{SHA256: h}, DocSHA256: h, Signatures: map[string][]byte{"a": {1}}}}
		link(s, e)
		if err := s.Apply(0, e, leafOf(e)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	started := func(c *contracts.Contract, n int64, p *events.PrivacyCharge) *events.Event {
		return &events.Event{V: events.Version, ID: events.NewID(), Time: now, Contract: c.ID().String(), Type: events.TypeRunStarted,
			RunStarted: &events.RunStarted{RunID: events.NewID(), Number: n, AlgorithmSHA256: h, Privacy: p}}
	}
	apply := func(s *State, e *events.Event) error {
		link(s, e)
		return s.Apply(s.Size(), e, leafOf(e))
	}
	c := dpContract(t)
	s := setup(c)
	spent := 0.0
	for n := int64(1); n <= 3; n++ {
		spent += 0.1 // the float64 sums drift: 0.30000000000000004 after three
		want := budget.Amount{Epsilon: []float64{0.1, 0.2, 0.3}[n-1], Delta: []float64{1e-7, 2e-7, 3e-7}[n-1]}
		if err := apply(s, started(c, n, &events.PrivacyCharge{Epsilon: 0.1, Delta: 1e-7, EpsilonSpent: want.Epsilon, DeltaSpent: want.Delta})); err != nil {
			t.Fatalf("run %d: %v", n, err)
		}
		s.View(func(v *Snapshot) {
			if got := v.Contract(c.ID()).Privacy.Spent(); got != want {
				t.Fatalf("after run %d: spent %v, want %v", n, got, want)
			}
		})
	}
	if spent == 0.3 {
		t.Fatal("float64 sums are exact here: the test proves nothing")
	}
	err := apply(s, started(c, 4, &events.PrivacyCharge{Epsilon: 0.1, Delta: 1e-7, EpsilonSpent: 0.4, DeltaSpent: 4e-7}))
	if err == nil || !strings.Contains(err.Error(), "beyond the contract's budget of ε=0.3, δ=1e-06 (ε=0.3, δ=3e-07 spent before it)") {
		t.Fatalf("a fourth charge: %v", err)
	}

	s = setup(c)
	for name, tc := range map[string]struct {
		p    *events.PrivacyCharge
		want string
	}{
		"no charge":      {nil, "carries no privacy charge"},
		"smaller charge": {&events.PrivacyCharge{Epsilon: 0.05, Delta: 1e-7, EpsilonSpent: 0.05, DeltaSpent: 1e-7}, "the contract charges every run ε=0.1, δ=1e-07"},
		"wrong spend":    {&events.PrivacyCharge{Epsilon: 0.1, Delta: 1e-7, EpsilonSpent: 0.2, DeltaSpent: 1e-7}, "names the spend ε=0.2, δ=1e-07; the charges sum to ε=0.1, δ=1e-07"},
	} {
		err := apply(s, started(c, 1, tc.p))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
	if s.Size() != 1 {
		t.Fatal("a refused charge changed the state")
	}
	s.View(func(v *Snapshot) {
		if v.Contract(c.ID()).Privacy.Runs() != 0 || len(v.Contract(c.ID()).Runs) != 0 {
			t.Fatal("a refused charge was recorded")
		}
	})
	plain := testContract(t)
	s = setup(plain)
	err = apply(s, started(plain, 1, &events.PrivacyCharge{Epsilon: 0.1, Delta: 1e-7, EpsilonSpent: 0.1, DeltaSpent: 1e-7}))
	if err == nil || !strings.Contains(err.Error(), "not differentially private") {
		t.Fatalf("a charge on a contract without a budget: %v", err)
	}
	s.View(func(v *Snapshot) {
		if v.Contract(plain.ID()).Privacy != nil {
			t.Fatal("a contract without a budget has a ledger")
		}
	})
}
