package audit_test

import (
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
)

// decodeAll decodes the world's real entries.
func decodeAll(t *testing.T, entries [][]byte) []*events.Event {
	t.Helper()
	out := make([]*events.Event, len(entries))
	for i, e := range entries {
		ev, err := events.Decode(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = ev
	}
	return out
}

// encode encodes one event as it is.
func encode(t *testing.T, e *events.Event) []byte {
	t.Helper()
	b, err := events.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encodeAll encodes the events as the coordinator appends them: each
// linked to the one before it in its scope's chain (seq and prev), with a
// salt.
func encodeAll(t *testing.T, evs []*events.Event) [][]byte {
	t.Helper()
	out := make([][]byte, len(evs))
	type link struct {
		seq  uint64
		leaf [32]byte
	}
	chains := map[string]link{}
	for i, e := range evs {
		last := chains[e.Scope()]
		e.Seq, e.Prev = last.seq+1, ""
		if last.seq > 0 {
			e.Prev = hex.EncodeToString(last.leaf[:])
		}
		if e.Salt == "" {
			e.Salt = events.NewSalt()
		}
		b, err := events.Encode(e)
		if err != nil {
			t.Fatalf("encoding event %d: %v", i, err)
		}
		chains[e.Scope()] = link{e.Seq, tlog.HashLeaf(b)}
		out[i] = b
	}
	return out
}

func nth(evs []*events.Event, typ events.Type, n int) *events.Event {
	for _, e := range evs {
		if e.Type == typ {
			if n == 0 {
				return e
			}
			n--
		}
	}
	return nil
}

// clone copies an event through its encoding.
func clone(t *testing.T, e *events.Event) *events.Event {
	t.Helper()
	b, err := events.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	c, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEventRules changes the real scenario's events one way at a time —
// each change something a misbehaving coordinator could sign into its log —
// and checks the timeline names the problem. The log's signatures are not
// the point here (TestTamperedLog covers those): these are entries the
// coordinator itself would have signed.
func TestEventRules(t *testing.T) {
	w := getWorld(t)
	base := func(t *testing.T) *audit.Report {
		r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
		audit.CheckTimeline(r, w.entries, w.sc.Contract, w.coord, w.sc.Text)
		return r
	}
	if r := base(t); len(r.Problems) != 0 || len(r.Warnings) != 0 {
		t.Fatalf("the honest log has problems %+v, warnings %+v", r.Problems, r.Warnings)
	}
	other := w.sc.Party("publisher").Identity.Public().Fingerprint().String()
	cases := []struct {
		name   string
		change func(t *testing.T, evs []*events.Event) []*events.Event
		want   string // in a problem
		warn   bool   // a warning, not a problem
	}{
		{"run number skipped", func(t *testing.T, evs []*events.Event) []*events.Event {
			nth(evs, events.TypeRunStarted, 0).RunStarted.Number = 2
			return evs
		}, "numbers its run 2; it is run 1", false},
		{"a run over max_runs", func(t *testing.T, evs []*events.Event) []*events.Event {
			e := clone(t, nth(evs, events.TypeRunStarted, 1))
			e.ID, e.RunStarted.RunID, e.RunStarted.Number = events.NewID(), events.NewID(), 3
			return append(evs, e)
		}, "over the contract's max_runs of 2", false},
		{"a run finished twice", func(t *testing.T, evs []*events.Event) []*events.Event {
			e := clone(t, nth(evs, events.TypeRunFinished, 0))
			e.ID = events.NewID()
			return append(evs, e)
		}, "a second time", false},
		{"a run finished that never started", func(t *testing.T, evs []*events.Event) []*events.Event {
			e := clone(t, nth(evs, events.TypeRunFinished, 0))
			e.ID, e.RunFinished.RunID = events.NewID(), events.NewID()
			return append(evs, e)
		}, "never started", false},
		{"events before the registration", func(t *testing.T, evs []*events.Event) []*events.Event {
			reg := nth(evs, events.TypeContractRegistered, 0)
			i := slices.Index(evs, reg)
			return append(slices.Delete(evs, i, i+1), reg)
		}, "comes before the contract's registration", false},
		{"a registration twice", func(t *testing.T, evs []*events.Event) []*events.Event {
			e := clone(t, nth(evs, events.TypeContractRegistered, 0))
			e.ID = events.NewID()
			return append(evs, e)
		}, "a second time", false},
		{"a participant's signature missing", func(t *testing.T, evs []*events.Event) []*events.Event {
			delete(nth(evs, events.TypeContractRegistered, 0).ContractRegistered.Signatures, "measurer")
			return evs
		}, "no signature by participant measurer", false},
		{"signatures filed under each other's names", func(t *testing.T, evs []*events.Event) []*events.Event {
			s := nth(evs, events.TypeContractRegistered, 0).ContractRegistered.Signatures
			s["publisher"], s["advertiser"] = s["advertiser"], s["publisher"]
			return evs
		}, "files advertiser's signature under publisher", false},
		{"a contract signature altered", func(t *testing.T, evs []*events.Event) []*events.Event {
			s := nth(evs, events.TypeContractRegistered, 0).ContractRegistered.Signatures
			s["auditor"][len(s["auditor"])-5] ^= 1
			return evs
		}, "signature of participant auditor", false},
		{"upload statements swapped between datasets", func(t *testing.T, evs []*events.Event) []*events.Event {
			a, b := nth(evs, events.TypeDatasetUploaded, 0).DatasetUploaded, nth(evs, events.TypeDatasetUploaded, 1).DatasetUploaded
			a.UploadStatement, b.UploadStatement = b.UploadStatement, a.UploadStatement
			return evs
		}, "does not verify under provider", false},
		{"upload rows differ from the signed statement", func(t *testing.T, evs []*events.Event) []*events.Event {
			nth(evs, events.TypeDatasetUploaded, 1).DatasetUploaded.Rows++
			return evs
		}, "the provider signed 4", false},
		{"header digest other than the signed one", func(t *testing.T, evs []*events.Event) []*events.Event {
			nth(evs, events.TypeDatasetUploaded, 0).DatasetUploaded.HeaderSHA256 = strings.Repeat("ab", 32)
			return evs
		}, "records header digest abab", false},
		{"the provider's envelope stored as it came", func(t *testing.T, evs []*events.Event) []*events.Event {
			up := nth(evs, events.TypeDatasetUploaded, 1).DatasetUploaded
			up.Stored, up.StoredHeaderSHA256 = up.Ciphertext, up.HeaderSHA256
			return evs
		}, "stores the provider's own envelope of dataset conversions", false},
		{"dataset uploaded by someone other than its provider", func(t *testing.T, evs []*events.Event) []*events.Event {
			e := nth(evs, events.TypeDatasetUploaded, 1)
			e.Actor, e.ActorKey = "publisher", other
			return evs
		}, "only the provider advertiser may upload", false},
		{"actor key not the participant's", func(t *testing.T, evs []*events.Event) []*events.Event {
			nth(evs, events.TypeDatasetUploaded, 1).ActorKey = other
			return evs
		}, "but the contract gives advertiser the key", false},
		{"a reason sealed to someone who provides no model", func(t *testing.T, evs []*events.Event) []*events.Event {
			fin := nth(evs, events.TypeRunFinished, 1)
			e := clone(t, fin)
			e.Type, e.RunFinished = events.TypeRunRefused, nil
			e.RunRefused = &events.RunRefused{RunID: fin.RunFinished.RunID, Stage: "query", Reason: "model score (from publisher) trapped",
				SealedReason: []byte("sealed"), SealedTo: "publisher"}
			i := slices.Index(evs, fin)
			evs[i] = e
			return evs[:i+1]
		}, "to \"publisher\", who provides no model of the contract", false},
		{"a model the contract does not name", func(t *testing.T, evs []*events.Event) []*events.Event {
			e := clone(t, nth(evs, events.TypeAlgorithmSubmitted, 0))
			e.ID, e.Type = events.NewID(), events.TypeModelSubmitted
			e.ModelSubmitted = &events.ModelSubmitted{Name: "score", Commitment: strings.Repeat("ab", 32), Confidential: true, Module: e.AlgorithmSubmitted.Text}
			e.AlgorithmSubmitted = nil
			i := slices.Index(evs, nth(evs, events.TypeRunStarted, 0))
			return slices.Insert(evs, i, e)
		}, "submits model \"score\", which the contract does not name", false},
		{"algorithm other than the contract's", func(t *testing.T, evs []*events.Event) []*events.Event {
			nth(evs, events.TypeAlgorithmSubmitted, 0).AlgorithmSubmitted.SHA256 = strings.Repeat("ab", 32)
			return evs
		}, "the contract approves only", false},
		{"result statement altered", func(t *testing.T, evs []*events.Event) []*events.Event {
			s := nth(evs, events.TypeRunFinished, 0).RunFinished.Statement
			s[len(s)-70] ^= 1
			return evs
		}, "does not verify under the attested coordinator key", false},
		{"rows kept differ from the signed statement", func(t *testing.T, evs []*events.Event) []*events.Event {
			nth(evs, events.TypeRunFinished, 1).RunFinished.RowsKept = 2
			return evs
		}, "signs 1 rows kept and 2 suppressed; the event says 2 and 2", false},
		{"result statements swapped between runs", func(t *testing.T, evs []*events.Event) []*events.Event {
			a, b := nth(evs, events.TypeRunFinished, 0).RunFinished, nth(evs, events.TypeRunFinished, 1).RunFinished
			a.Statement, b.Statement = b.Statement, a.Statement
			return evs
		}, "it is for run", false},
		{"result fetched by a non-recipient", func(t *testing.T, evs []*events.Event) []*events.Event {
			e := nth(evs, events.TypeResultFetched, 0)
			e.Actor, e.ActorKey = "publisher", other
			return evs
		}, "is not a result recipient", false},
		{"coordinator start under another key", func(t *testing.T, evs []*events.Event) []*events.Event {
			nth(evs, events.TypeCoordinatorStarted, 0).CoordinatorStarted.PublicKey = other
			return evs
		}, "not the attested key", false},
		{"coordinator start with another measurement", func(t *testing.T, evs []*events.Event) []*events.Event {
			nth(evs, events.TypeCoordinatorStarted, 0).CoordinatorStarted.Measurement = strings.Repeat("0", 96)
			return evs
		}, "names measurement 000", false},
		{"run aborted with no restart", func(t *testing.T, evs []*events.Event) []*events.Event {
			e := clone(t, nth(evs, events.TypeRunStarted, 1))
			e.ID, e.RunStarted.RunID, e.RunStarted.Number = events.NewID(), events.NewID(), 3
			ab := &events.Event{V: events.Version, ID: events.NewID(), Type: events.TypeRunAborted, Time: e.Time, Contract: e.Contract,
				RunAborted: &events.RunAborted{RunID: e.RunStarted.RunID, Reason: "x"}}
			return append(evs, e, ab)
		}, "no coordinator restart between", false},
		{"the clock going backwards", func(t *testing.T, evs []*events.Event) []*events.Event {
			nth(evs, events.TypeAlgorithmSubmitted, 0).Time = evs[0].Time.Add(-time.Hour)
			return evs
		}, "clock went backwards", true},
		{"a repeated event id", func(t *testing.T, evs []*events.Event) []*events.Event {
			return append(evs, clone(t, nth(evs, events.TypeResultFetched, 0)))
		}, "repeats event id", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := tc.change(t, decodeAll(t, w.entries))
			r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
			audit.CheckTimeline(r, encodeAll(t, evs), w.sc.Contract, w.coord, w.sc.Text)
			list := r.Problems
			if tc.warn {
				list = r.Warnings
				if len(r.Problems) != 0 {
					t.Errorf("problems besides the warning: %+v", r.Problems)
				}
			}
			for _, p := range list {
				if strings.Contains(p.Message, tc.want) {
					if p.Index == nil {
						t.Errorf("finding %q names no entry", p.Message)
					}
					return
				}
			}
			t.Errorf("no finding with %q among %+v", tc.want, list)
		})
	}
	// What a view that hides or leaks events looks like to the timeline
	// (the view head catches these too: TestWithheldEvent).
	for _, tc := range []struct {
		name, want string
		edit       func([][]byte) [][]byte
	}{
		{"an event of the contract withheld", "events 5 to 5 were withheld", func(es [][]byte) [][]byte {
			es[5] = nil // run.started of run 1 (seq 5 of the contract) redacted
			return es
		}},
		{"the contract's first events withheld", "events 1 to 2 were withheld", func(es [][]byte) [][]byte {
			es[1], es[2] = nil, nil
			return es
		}},
		{"a coordinator start withheld", "events 2 to 2 were withheld", func(es [][]byte) [][]byte {
			e := decodeAll(t, es[:1])[0] // start 1; start 3 follows it
			e.ID, e.Seq, e.Prev = events.NewID(), 3, strings.Repeat("0", 64)
			return append(es, encode(t, e))
		}},
		{"an event linked to another", "links to", func(es [][]byte) [][]byte {
			e := decodeAll(t, es[7:8])[0]
			e.Prev = strings.Repeat("0", 64)
			es[7] = encode(t, e)
			return es
		}},
		{"another contract's event shown", "of another contract", func(es [][]byte) [][]byte {
			evs := decodeAll(t, es)
			e := clone(t, nth(evs, events.TypeAlgorithmSubmitted, 0))
			e.Contract, e.ID = strings.Repeat("ab", 32), events.NewID()
			return append(es, encodeAll(t, []*events.Event{e})[0])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
			audit.CheckTimeline(r, tc.edit(slices.Clone(w.entries)), w.sc.Contract, w.coord, w.sc.Text)
			for _, p := range r.Problems {
				if strings.Contains(p.Message, tc.want) && p.Index != nil {
					return
				}
			}
			t.Errorf("no problem with %q among %+v", tc.want, r.Problems)
		})
	}
	t.Run("an entry that is no event", func(t *testing.T) {
		entries := slices.Clone(w.entries)
		entries[2] = []byte(`{"v":2}`)
		r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
		audit.CheckTimeline(r, entries, w.sc.Contract, w.coord, w.sc.Text)
		if len(r.Problems) == 0 || !strings.Contains(r.Problems[0].Message, "entry 2 is not a valid event") {
			t.Errorf("problems %+v", r.Problems)
		}
	})
}
