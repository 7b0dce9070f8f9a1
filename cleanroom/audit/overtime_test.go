package audit_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// TestContractsOverTimeRules forges the real scenario's log to contain each
// violation of the rules of contracts over time (SPEC §13) — events a
// misbehaving coordinator could sign into its log — and checks that the
// audit names it: a run after a suspension, after a withdrawal or an
// expiry, under a superseded contract, with parameters the contract does
// not allow; a suspension by a participant who provides no data, a
// resumption without every participant's approval, a withdrawal by another
// than the provider, a deletion dated before the expiry, and a result
// served after it was deleted.
func TestContractsOverTimeRules(t *testing.T) {
	w := getWorld(t)
	c := w.sc.Contract
	cid := c.ID().String()
	key := func(id string) string { return w.sc.Party(id).Identity.Public().Fingerprint().String() }
	// before inserts e just before the first event of type typ.
	before := func(evs []*events.Event, typ events.Type, e *events.Event) []*events.Event {
		i := slices.IndexFunc(evs, func(x *events.Event) bool { return x.Type == typ })
		if i < 0 {
			t.Fatalf("no %s event", typ)
		}
		e.V, e.ID, e.Contract = events.Version, events.NewID(), cid
		if e.Time.IsZero() {
			e.Time = evs[i].Time
		}
		return slices.Insert(evs, i, e)
	}
	stored := func(evs []*events.Event) events.Blob {
		return nth(evs, events.TypeDatasetUploaded, 0).DatasetUploaded.Stored
	}
	suspended := func(by string) *events.Event {
		return &events.Event{Type: events.TypeContractSuspended, Actor: by, ActorKey: key(by),
			ContractSuspended: &events.ContractSuspended{Reason: "stop"}}
	}
	cases := []struct {
		name   string
		change func(evs []*events.Event) []*events.Event
		want   string
	}{
		{"a run after a suspension", func(evs []*events.Event) []*events.Event {
			return before(evs, events.TypeRunStarted, suspended("publisher"))
		}, "starts a run while the contract is suspended"},
		{"a suspension by an algorithm provider", func(evs []*events.Event) []*events.Event {
			return before(evs, events.TypeRunStarted, suspended("measurer"))
		}, `contract.suspended at index 5 was made by "measurer", who is not a data provider`},
		{"a resumption without every approval", func(evs []*events.Event) []*events.Event {
			evs = before(evs, events.TypeRunStarted, suspended("publisher"))
			sig, err := c.SignResumption(w.sc.Party("publisher").Identity, 5)
			if err != nil {
				t.Fatal(err)
			}
			return before(evs, events.TypeRunStarted, &events.Event{Type: events.TypeContractResumed, Actor: "publisher", ActorKey: key("publisher"),
				ContractResumed: &events.ContractResumed{SuspensionIndex: 5, Approvals: map[string][]byte{"publisher": sig}}})
		}, "does not carry every participant's valid approval of resuming from index 5"},
		{"a run after a withdrawal", func(evs []*events.Event) []*events.Event {
			return before(evs, events.TypeRunStarted, &events.Event{Type: events.TypeDatasetWithdrawn, Actor: "publisher", ActorKey: key("publisher"),
				DatasetWithdrawn: &events.DatasetDeleted{Dataset: "impressions", Stored: stored(evs)}})
		}, "starts a run after dataset impressions was deleted"},
		{"a withdrawal by another participant", func(evs []*events.Event) []*events.Event {
			return before(evs, events.TypeRunStarted, &events.Event{Type: events.TypeDatasetWithdrawn, Actor: "advertiser", ActorKey: key("advertiser"),
				DatasetWithdrawn: &events.DatasetDeleted{Dataset: "impressions", Stored: stored(evs)}})
		}, "only the provider publisher may withdraw dataset impressions"},
		{"a run after an expiry, and an expiry dated early", func(evs []*events.Event) []*events.Event {
			return before(evs, events.TypeRunStarted, &events.Event{Type: events.TypeDatasetExpired,
				DatasetExpired: &events.DatasetDeleted{Dataset: "impressions", Stored: stored(evs)}})
		}, "dataset.expired at index 5 is dated"},
		{"a run under a superseded contract", func(evs []*events.Event) []*events.Event {
			return before(evs, events.TypeRunStarted, &events.Event{Type: events.TypeContractSuperseded, Actor: "publisher", ActorKey: key("publisher"),
				ContractSuperseded: &events.ContractSuperseded{By: strings.Repeat("cd", 32)}})
		}, "starts a run of a contract superseded at index 5"},
		{"a run with parameters the contract does not allow", func(evs []*events.Event) []*events.Event {
			nth(evs, events.TypeRunStarted, 0).RunStarted.Parameters = map[string]string{"since": "2026-01-01"}
			return evs
		}, "runs with parameters the contract does not allow: parameter since: is not declared"},
		{"a result served after its deletion", func(evs []*events.Event) []*events.Event {
			f := nth(evs, events.TypeRunFinished, 0)
			return before(evs, events.TypeResultFetched, &events.Event{Type: events.TypeResultExpired, Time: c.ExpiresAt.Add(time.Second),
				ResultExpired: &events.ResultExpired{RunID: f.RunFinished.RunID, EncryptedResult: f.RunFinished.EncryptedResult}})
		}, "which result.expired deleted at index"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := tc.change(decodeAll(t, w.entries))
			r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
			audit.CheckTimeline(r, encodeAll(t, evs), c, w.coord, w.sc.Text)
			for _, p := range r.Problems {
				if strings.Contains(p.Message, tc.want) && p.Index != nil {
					return
				}
			}
			t.Errorf("no problem with %q among %+v", tc.want, r.Problems)
		})
	}
	// Honest events of contracts over time raise nothing: a suspension by
	// a provider, lifted with every participant's approval, then a
	// withdrawal by its provider.
	t.Run("an honest suspension, resumption and withdrawal", func(t *testing.T) {
		evs := decodeAll(t, w.entries)
		at := uint64(len(evs))
		last := evs[len(evs)-1]
		add := func(e *events.Event) {
			e.V, e.ID, e.Contract, e.Time = events.Version, events.NewID(), cid, last.Time
			evs = append(evs, e)
		}
		add(suspended("publisher"))
		approvals := map[string][]byte{}
		for _, p := range c.Participants {
			sig, err := c.SignResumption(w.sc.Party(p.ID).Identity, at)
			if err != nil {
				t.Fatal(err)
			}
			approvals[p.ID] = sig
		}
		add(&events.Event{Type: events.TypeContractResumed, Actor: "advertiser", ActorKey: key("advertiser"),
			ContractResumed: &events.ContractResumed{SuspensionIndex: at, Approvals: approvals}})
		add(&events.Event{Type: events.TypeDatasetWithdrawn, Actor: "publisher", ActorKey: key("publisher"),
			DatasetWithdrawn: &events.DatasetDeleted{Dataset: "impressions", Stored: stored(evs)}})
		r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
		audit.CheckTimeline(r, encodeAll(t, evs), c, w.coord, w.sc.Text)
		if len(r.Problems) != 0 {
			t.Fatalf("problems in an honest log: %+v", r.Problems)
		}
	})
}

// TestParameterRules plays a real contract whose algorithm declares
// parameters (a float64 with bounds, a string with allowed values): one run
// in range, then the same run forged into the log with each value the
// contract refuses — out of range, of the wrong type, not allowed, missing,
// undeclared, not in canonical form. The audit must flag each, with the
// reason the coordinator's admission gives when a run asks for those values
// (both check with contracts.Algorithm.CheckParameters), and raise nothing
// on the honest log.
func TestParameterRules(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{CheckpointInterval: 100 * time.Millisecond})
	spec := testenv.AdSpec(t, "audit-parameters", 20)
	spec.Query = "SELECT i.campaign, count(DISTINCT i.user_id) AS users, sum(c.value) AS revenue " +
		"FROM impressions i JOIN conversions c ON c.user_id = i.user_id WHERE c.value >= $min_value AND i.campaign <> $skip " +
		"GROUP BY i.campaign ORDER BY i.campaign"
	spec.Parameters = "[{name: min_value, type: float64, min: 0, max: 100}, {name: skip, type: string, allowed: [spring, summer, autumn]}]"
	spec.Mode, spec.GroupColumn, spec.K = "aggregate", "", 1
	for i := range spec.Datasets {
		spec.Datasets[i].PrivacyUnit = "user_id"
	}
	sc := testenv.New(t, srv, spec)
	ctx := t.Context()
	sc.Submit(t, "auditor")
	sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	sc.SubmitAlgorithm(t)
	if _, err := sc.Client(t, "advertiser").RunWith(ctx, map[string]string{"min_value": "5", "skip": "autumn"}); err != nil {
		t.Fatal(err)
	}
	w := &world{srv: srv, sc: sc, auditor: newAuditorClient(t, sc)}
	t.Cleanup(func() { w.auditor.Close() })
	var err error
	if w.coord, err = w.auditor.AttestedCoordinator(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := tlog.NewCoordinatorVerifier(w.coord.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	view, err := v.VerifyView(ctx, w.auditor.LogFetcher(), waitCovered(t, w, sc.LogSize()), sc.Contract.ID().String())
	if err != nil {
		t.Fatal(err)
	}
	audited := func(evs []*events.Event) []audit.Finding {
		r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
		audit.CheckTimeline(r, encodeAll(t, evs), sc.Contract, w.coord, sc.Text)
		return r.Problems
	}
	if p := audited(decodeAll(t, view.Entries)); len(p) != 0 {
		t.Fatalf("problems in the honest log of a run with parameters: %+v", p)
	}

	for _, tc := range []struct {
		name   string
		params map[string]string
		want   string // in the coordinator's refusal and the audit's problem
	}{
		{"above the maximum", map[string]string{"min_value": "1000", "skip": "spring"},
			"parameter min_value: 1000 is above its maximum 100 (the contract allows 0 to 100)"},
		{"below the minimum", map[string]string{"min_value": "-0.5", "skip": "spring"},
			"parameter min_value: -0.5 is below its minimum 0 (the contract allows 0 to 100)"},
		{"of the wrong type", map[string]string{"min_value": "lots", "skip": "spring"}, "parameter min_value: "},
		{"not allowed", map[string]string{"min_value": "5", "skip": "winter"},
			`parameter skip: "winter" is not allowed: the contract allows one of spring, summer, autumn`},
		{"missing", map[string]string{"min_value": "5"}, "parameter skip: is missing"},
		{"undeclared", map[string]string{"min_value": "5", "skip": "spring", "table": "x"},
			"parameter table: is not declared: the contract declares min_value, skip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sc.Client(t, "advertiser").RunWith(ctx, tc.params)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("the coordinator's admission of %v: %v; want a refusal with %q", tc.params, err, tc.want)
			}
			refusal := err.Error()[strings.Index(err.Error(), tc.want):]
			evs := decodeAll(t, view.Entries)
			nth(evs, events.TypeRunStarted, 0).RunStarted.Parameters = tc.params
			for _, p := range audited(evs) {
				if strings.Contains(p.Message, "runs with parameters the contract does not allow") && p.Index != nil &&
					strings.Contains(p.Message, tc.want) && strings.Contains(refusal, p.Message[strings.Index(p.Message, tc.want):]) {
					return
				}
			}
			t.Errorf("the audit does not flag the run with %v as the coordinator refuses it (%s)", tc.params, refusal)
		})
	}
	t.Run("not in canonical form", func(t *testing.T) {
		evs := decodeAll(t, view.Entries)
		nth(evs, events.TypeRunStarted, 0).RunStarted.Parameters = map[string]string{"min_value": "5.0", "skip": "autumn"}
		for _, p := range audited(evs) {
			if strings.Contains(p.Message, `not in their canonical form min_value="5" skip="autumn"`) {
				return
			}
		}
		t.Error("the audit does not flag parameters that are not in canonical form")
	})
}
