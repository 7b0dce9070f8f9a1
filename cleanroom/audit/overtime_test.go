package audit_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/events"
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
