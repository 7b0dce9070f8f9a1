package audit

import (
	"fmt"
	"net/url"
	"slices"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/events"
)

// CoordinatorActor is the participant filter's value for events no
// participant caused (the coordinator's starts and the ends of runs).
const CoordinatorActor = "(coordinator)"

// eventTypes lists the event types the type filter offers, in the order
// of a contract's life.
var eventTypes = []string{
	string(events.TypeCoordinatorStarted), string(events.TypeContractRegistered), string(events.TypeDatasetUploaded),
	string(events.TypeAlgorithmSubmitted), string(events.TypeModelSubmitted), string(events.TypeRunStarted), string(events.TypeRunFinished),
	string(events.TypeRunRefused), string(events.TypeRunAborted), string(events.TypeResultFetched),
	string(events.TypeContractSuspended), string(events.TypeContractResumed), string(events.TypeContractSuperseded),
	string(events.TypeDatasetWithdrawn), string(events.TypeDatasetExpired), string(events.TypeResultExpired),
}

// timeFormats are the forms the from and to fields take, with the span
// each names (a bound given to the minute covers the whole minute). The
// first two are what an HTML datetime-local field sends.
var timeFormats = []struct {
	layout string
	span   time.Duration
}{
	{"2006-01-02T15:04", time.Minute},
	{"2006-01-02T15:04:05", time.Second},
	{time.RFC3339Nano, 0},
	{"2006-01-02 15:04:05Z", time.Second},
	{"2006-01-02", 24 * time.Hour},
}

// timelineFilter selects timeline events. Zero fields select everything.
type timelineFilter struct {
	Type        string // an event type
	Participant string // a participant's id, or CoordinatorActor
	// From and To are the bounds as given; from and until the times they
	// select: from ≤ time < until (zero: unbounded).
	From, To    string
	from, until time.Time
	// FromInput and ToInput are the bounds as an HTML datetime-local
	// field shows them (to the second, UTC).
	FromInput, ToInput string
}

// parseFilter reads the timeline filter of a contract page's query: type
// (an event type), participant (a participant of the contract, or
// CoordinatorActor), from and to (UTC times, both inclusive, in one of
// timeFormats). An empty field does not filter.
func parseFilter(q url.Values, r *Report) (timelineFilter, error) {
	f := timelineFilter{Type: q.Get("type"), Participant: q.Get("participant"), From: q.Get("from"), To: q.Get("to")}
	if f.Type != "" && !slices.Contains(eventTypes, f.Type) {
		return f, fmt.Errorf("type %q is not an event type; use one of %v", f.Type, eventTypes)
	}
	if f.Participant != "" && f.Participant != CoordinatorActor {
		known := false
		for _, p := range r.Parties {
			known = known || p.ID == f.Participant
		}
		if !known {
			return f, fmt.Errorf("participant %q is not a participant of contract %s; use a participant's id, or %s for events no participant caused",
				f.Participant, r.Contract.Name, CoordinatorActor)
		}
	}
	var err error
	if f.From != "" {
		if f.from, _, err = parseBound("from", f.From); err != nil {
			return f, err
		}
		f.FromInput = inputValue(f.From, f.from)
	}
	if f.To != "" {
		t, span, err := parseBound("to", f.To)
		if err != nil {
			return f, err
		}
		f.until = t.Add(max(span, 1))
		f.ToInput = inputValue(f.To, f.until.Add(-1))
	}
	if !f.from.IsZero() && !f.until.IsZero() && !f.from.Before(f.until) {
		return f, fmt.Errorf("from %q is after to %q: nothing can match", f.From, f.To)
	}
	return f, nil
}

func parseBound(name, s string) (time.Time, time.Duration, error) {
	for _, tf := range timeFormats {
		if t, err := time.Parse(tf.layout, s); err == nil {
			return t.UTC(), tf.span, nil
		}
	}
	return time.Time{}, 0, fmt.Errorf("%s %q is not a time: give YYYY-MM-DDTHH:MM, YYYY-MM-DDTHH:MM:SS or YYYY-MM-DD (UTC), or an RFC 3339 time", name, s)
}

// match reports whether the filter selects e.
func (f timelineFilter) match(e *TimelineEntry) bool {
	switch {
	case f.Type != "" && e.Type != f.Type:
		return false
	case f.Participant == CoordinatorActor && e.Actor != "":
		return false
	case f.Participant != "" && f.Participant != CoordinatorActor && e.Actor != f.Participant:
		return false
	case !f.from.IsZero() && e.Time.Before(f.from):
		return false
	case !f.until.IsZero() && !e.Time.Before(f.until):
		return false
	}
	return true
}

// active reports whether the filter selects less than everything.
func (f timelineFilter) active() bool {
	return f.Type != "" || f.Participant != "" || f.From != "" || f.To != ""
}

// query returns the filter's non-empty fields as query parameters.
func (f timelineFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"type": f.Type, "participant": f.Participant, "from": f.From, "to": f.To} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// inputValue returns a bound as an HTML datetime-local field shows it: as
// given when given in that field's form, else the second of t.
func inputValue(s string, t time.Time) string {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if _, err := time.Parse(layout, s); err == nil {
			return s
		}
	}
	return t.UTC().Format("2006-01-02T15:04:05")
}
