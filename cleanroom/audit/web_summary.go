package audit

import (
	"sort"
	"strings"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/events"
)

// contractRow is one contract on the home page and in its exports.
type contractRow struct {
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	ExpiresAt          time.Time `json:"expires_at"`
	Expired            bool      `json:"expired"`
	Registered         *uint64   `json:"registered"`
	VerifiedAt         time.Time `json:"verified_at"`
	Stale              bool      `json:"stale"`
	CheckpointSize     uint64    `json:"checkpoint_size"`
	Datasets           int       `json:"datasets"`
	DatasetsUploaded   int       `json:"datasets_uploaded"`
	MaxRuns            int64     `json:"max_runs"`
	RunsStarted        int64     `json:"runs_started"`
	RunsFinished       int       `json:"runs_finished"`
	RunsRefused        int       `json:"runs_refused"`
	RefusedAtAdmission int64     `json:"refused_at_admission"`
	RunsAborted        int       `json:"runs_aborted"`
	RowsReleased       int64     `json:"rows_released"`
	RowsSuppressed     int64     `json:"rows_suppressed"`
}

func newContractRow(r *Report, now time.Time) contractRow {
	s := summarize(r)
	row := contractRow{
		ID: r.Contract.ID, Name: r.Contract.Name, ExpiresAt: r.Contract.ExpiresAt, Expired: expired(r, now),
		Registered: r.Contract.Registered, VerifiedAt: r.VerifiedAt, CheckpointSize: r.Checkpoint.Size, Datasets: len(r.Datasets),
		MaxRuns: r.Contract.MaxRuns, RunsStarted: r.Contract.RunsStarted, RunsFinished: s.Finished, RunsRefused: s.Refused,
		RefusedAtAdmission: s.RefusedAtAdmission, RunsAborted: s.Aborted, RowsReleased: s.RowsReleased, RowsSuppressed: s.RowsSuppressed,
	}
	for _, d := range r.Datasets {
		if d.Uploaded {
			row.DatasetsUploaded++
		}
	}
	return row
}

// expired reports whether the contract has expired at now: nothing new may
// happen under it after its expires_at.
func expired(r *Report, now time.Time) bool {
	return !r.Contract.ExpiresAt.IsZero() && !now.Before(r.Contract.ExpiresAt)
}

// runSummary is the outcome of a contract's runs, from its verified report.
type runSummary struct {
	MaxRuns            int64 `json:"max_runs"`
	RunsStarted        int64 `json:"runs_started"`
	Finished           int   `json:"finished"`
	Refused            int   `json:"refused"`
	RefusedAtAdmission int64 `json:"refused_at_admission"`
	Aborted            int   `json:"aborted"`
	Running            int   `json:"running"`
	// RowsReleased and RowsSuppressed add up the output policy's outcome
	// over the finished runs.
	RowsReleased   int64 `json:"rows_released"`
	RowsSuppressed int64 `json:"rows_suppressed"`
	Fetches        int   `json:"fetches"`
	// Refusals groups the run.refused events (at admission or after a run
	// started) by stage and reason, in order of first appearance.
	Refusals []refusalGroup `json:"refusals"`
	// SameInputs groups the runs (two or more) that read the same
	// algorithm and the same dataset ciphertexts. Whether runs released
	// identical results cannot be told from the log: each result's
	// commitment has a fresh secret salt (docs/bundle.md §2), so identical
	// results have different commitments.
	SameInputs []runGroup `json:"same_inputs"`
}

// refusalGroup is the refusals of one stage and reason.
type refusalGroup struct {
	Stage  string `json:"stage"`
	Reason string `json:"reason"` // the public reason
	// Sealed says the full reason is sealed to the confidential
	// algorithm's provider.
	Sealed  bool     `json:"sealed"`
	Count   int      `json:"count"`
	Entries []uint64 `json:"entries"` // indexes of the run.refused events
	Runs    []int64  `json:"runs"`    // numbers of the refused runs (none at admission)
}

// runGroup is a set of runs, by number, that share Digest (what they read).
type runGroup struct {
	Digest string  `json:"digest"`
	Runs   []int64 `json:"runs"`
}

func summarize(r *Report) runSummary {
	s := runSummary{MaxRuns: r.Contract.MaxRuns, RunsStarted: r.Contract.RunsStarted, RefusedAtAdmission: r.Contract.RefusedAtAdmission,
		Refusals: []refusalGroup{}, SameInputs: []runGroup{}}
	number := map[string]int64{}
	inputs := map[string][]int64{}
	var inputOrder []string
	for _, run := range r.Runs {
		number[run.RunID] = run.Number
		switch run.Status {
		case RunFinished:
			s.Finished++
			s.RowsReleased += run.RowsKept
			s.RowsSuppressed += run.RowsSuppressed
		case RunRefused:
			s.Refused++
		case RunAborted:
			s.Aborted++
		case RunRunning:
			s.Running++
		}
		s.Fetches += len(run.Fetches)
		key := inputsKey(run)
		if inputs[key] == nil {
			inputOrder = append(inputOrder, key)
		}
		inputs[key] = append(inputs[key], run.Number)
	}
	for _, k := range inputOrder {
		if len(inputs[k]) > 1 {
			s.SameInputs = append(s.SameInputs, runGroup{Digest: k, Runs: inputs[k]})
		}
	}
	for _, e := range r.Timeline {
		if e.Type != string(events.TypeRunRefused) {
			continue
		}
		stage, reason := e.Details["stage"], e.Details["reason"]
		_, sealed := e.Details["sealed_reason_sha256"]
		i := 0
		for i < len(s.Refusals) && (s.Refusals[i].Stage != stage || s.Refusals[i].Reason != reason || s.Refusals[i].Sealed != sealed) {
			i++
		}
		if i == len(s.Refusals) {
			s.Refusals = append(s.Refusals, refusalGroup{Stage: stage, Reason: reason, Sealed: sealed, Entries: []uint64{}, Runs: []int64{}})
		}
		g := &s.Refusals[i]
		g.Count++
		g.Entries = append(g.Entries, e.Index)
		if n, ok := number[e.Details["run_id"]]; ok {
			g.Runs = append(g.Runs, n)
		}
	}
	return s
}

// inputsKey names what a run read: the algorithm's digest and each
// dataset's ciphertext digest, in dataset order.
func inputsKey(run RunFact) string {
	ids := make([]string, 0, len(run.Datasets))
	for id := range run.Datasets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	b.WriteString("algorithm=" + run.AlgorithmSHA256)
	for _, id := range ids {
		b.WriteString(" " + id + "=" + run.Datasets[id])
	}
	return b.String()
}

// contractView is what a contract page shows beyond the report.
type contractView struct {
	Report  *Report
	Expired bool
	// Expiry is the time from now to the contract's expiry (negative
	// once expired).
	Expiry  time.Duration
	Summary runSummary
	Filter  timelineFilter
	// Events are the timeline's events the filter selects, in log order.
	Events []TimelineEntry
	Chart  *timelineChart
	// Types and Participants are the filter's choices.
	Types        []string
	Participants []string
	// SameInputsAs maps a run's number to the first earlier run that read
	// the same inputs.
	SameInputsAs map[int64]int64
}

func newContractView(r *Report, f timelineFilter, now time.Time) *contractView {
	v := &contractView{
		Report: r, Expired: expired(r, now), Expiry: r.Contract.ExpiresAt.Sub(now), Summary: summarize(r), Filter: f,
		Events: []TimelineEntry{}, Types: eventTypes, SameInputsAs: map[int64]int64{},
	}
	for _, p := range r.Parties {
		v.Participants = append(v.Participants, p.ID)
	}
	for i := range r.Timeline {
		if f.match(&r.Timeline[i]) {
			v.Events = append(v.Events, r.Timeline[i])
		}
	}
	for _, g := range v.Summary.SameInputs {
		for _, n := range g.Runs[1:] {
			v.SameInputsAs[n] = g.Runs[0]
		}
	}
	v.Chart = newTimelineChart(v.Events)
	return v
}
