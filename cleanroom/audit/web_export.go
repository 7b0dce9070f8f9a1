package audit

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ExportFormat is the value of the format field of the web view's JSON
// exports (docs/audit.md §6). Fields are only ever added under it.
const ExportFormat = "cleanroom/audit-export/v1"

// Status values of the exports: what the page's banner says.
const (
	statusVerified        = "verified"
	statusNotVerified     = "not-verified"
	statusNothingVerified = "nothing-verified"
)

func (p *page) status() string {
	switch {
	case p.Failure != nil && p.FailureCurrent:
		return statusNotVerified
	case p.Facts != nil:
		return statusVerified
	default:
		return statusNothingVerified
	}
}

// homeExport is the home page as JSON.
type homeExport struct {
	Format     string     `json:"format"`
	ExportedAt time.Time  `json:"exported_at"`
	Status     string     `json:"status"`
	VerifiedAt *time.Time `json:"verified_at"`
	Stale      bool       `json:"stale"`
	// StaleAfterSeconds is the threshold; negative when the view never
	// warns.
	StaleAfterSeconds int64             `json:"stale_after_seconds"`
	Error             string            `json:"error"`
	Coordinator       *CoordinatorFacts `json:"coordinator"`
	Checkpoint        *CheckpointFacts  `json:"checkpoint"`
	History           []HistoryEntry    `json:"history"`
	LastFailure       *Failure          `json:"last_failure"`
	Evidence          []string          `json:"evidence"`
	Contracts         []contractRow     `json:"contracts"`
}

// contractExport is a contract page as JSON.
type contractExport struct {
	Format            string          `json:"format"`
	ExportedAt        time.Time       `json:"exported_at"`
	Status            string          `json:"status"`
	Stale             bool            `json:"stale"`
	StaleAfterSeconds int64           `json:"stale_after_seconds"`
	Expired           bool            `json:"expired"`
	Filter            exportFilter    `json:"filter"`
	Summary           runSummary      `json:"summary"`
	Report            *Report         `json:"report"`
	Events            []TimelineEntry `json:"events"`
}

type exportFilter struct {
	Type        string `json:"type"`
	Participant string `json:"participant"`
	From        string `json:"from"`
	To          string `json:"to"`
}

func staleAfterSeconds(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return int64(d / time.Second)
}

func writeExportJSON(w io.Writer, p *page) error {
	var v any
	if p.View == nil {
		e := homeExport{Format: ExportFormat, ExportedAt: p.Now, Status: p.status(), Stale: p.Stale != nil,
			StaleAfterSeconds: staleAfterSeconds(p.StaleAfter), Error: p.Error, History: []HistoryEntry{},
			Evidence: []string{}, Contracts: []contractRow{}}
		if p.Facts != nil {
			e.VerifiedAt, e.Coordinator, e.Checkpoint = &p.Facts.VerifiedAt, &p.Facts.Coordinator, &p.Facts.Checkpoint
			e.History = append(e.History, p.Facts.History...)
		}
		if p.Failure != nil {
			e.LastFailure = p.Failure.Failure
		}
		for _, ev := range p.Evidence {
			e.Evidence = append(e.Evidence, EvidenceDir+"/"+ev.Name)
		}
		e.Contracts = append(e.Contracts, p.Rows...)
		v = e
	} else {
		f := p.View.Filter
		v = contractExport{Format: ExportFormat, ExportedAt: p.Now, Status: p.status(), Stale: p.Stale != nil,
			StaleAfterSeconds: staleAfterSeconds(p.StaleAfter), Expired: p.View.Expired,
			Filter:  exportFilter{Type: f.Type, Participant: f.Participant, From: f.From, To: f.To},
			Summary: p.View.Summary, Report: p.View.Report, Events: p.View.Events}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// homeCSVHeader and eventCSVHeader are the CSV exports' columns.
var (
	homeCSVHeader = []string{"id", "name", "expires_at", "expired", "registered", "verified_at", "stale", "checkpoint_size",
		"datasets", "datasets_uploaded", "max_runs", "runs_started", "runs_finished", "runs_refused", "refused_at_admission",
		"runs_aborted", "rows_released", "rows_suppressed"}
	eventCSVHeader = []string{"index", "time", "type", "actor", "actor_key", "event_id", "ok", "summary", "details"}
)

func writeExportCSV(w io.Writer, p *page) error {
	cw := csv.NewWriter(w)
	row := func(cells ...string) {
		for i := range cells {
			cells[i] = csvSafe(cells[i])
		}
		cw.Write(cells)
	}
	i64 := func(n int64) string { return strconv.FormatInt(n, 10) }
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	if p.View == nil {
		row(homeCSVHeader...)
		for _, r := range p.Rows {
			reg := ""
			if r.Registered != nil {
				reg = strconv.FormatUint(*r.Registered, 10)
			}
			row(r.ID, r.Name, ts(r.ExpiresAt), strconv.FormatBool(r.Expired), reg, ts(r.VerifiedAt), strconv.FormatBool(r.Stale),
				strconv.FormatUint(r.CheckpointSize, 10), strconv.Itoa(r.Datasets), strconv.Itoa(r.DatasetsUploaded),
				i64(r.MaxRuns), i64(r.RunsStarted), strconv.Itoa(r.RunsFinished), strconv.Itoa(r.RunsRefused),
				i64(r.RefusedAtAdmission), strconv.Itoa(r.RunsAborted), i64(r.RowsReleased), i64(r.RowsSuppressed))
		}
	} else {
		row(eventCSVHeader...)
		for _, e := range p.View.Events {
			var details []string
			for _, k := range sortedKeys(e.Details) {
				details = append(details, k+"="+e.Details[k])
			}
			row(strconv.FormatUint(e.Index, 10), ts(e.Time), e.Type, e.Actor, e.ActorKey, e.EventID,
				strconv.FormatBool(e.OK), e.Summary, strings.Join(details, "; "))
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing the CSV export: %w", err)
	}
	return nil
}

// csvSafe keeps a spreadsheet from taking a cell for a formula: a cell
// that starts with =, +, -, @, a tab or a carriage return gets a leading
// single quote, which spreadsheets take as "text follows". So does a cell
// that starts with a quote, so that a reader recovers every value by
// dropping one leading quote (docs/audit.md §6.3).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r'", rune(s[0])) {
		return "'" + s
	}
	return s
}
