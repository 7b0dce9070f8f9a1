package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// The web view is checked in a real browser: headless Chromium from
// Debian's package (make test-deps installs it), pointed at `cleanroom
// audit serve` on 127.0.0.1; the tests read the DOM it rendered.

const chromiumPath = "/usr/bin/chromium"

// skipBrowserEnv set to 1 skips the browser checks where Chromium cannot
// be installed. CI installs it, so there they run.
const skipBrowserEnv = "CLEANROOM_SKIP_BROWSER"

// serveAudit runs `cleanroom audit serve --state DIR --listen 127.0.0.1:0`
// until the test ends and returns the URL it printed.
func serveAudit(t *testing.T, state string) string { return serveAuditAt(t, state, nil) }

// serveAuditAt is serveAudit with the view's clock now (nil: time.Now) and
// more flags.
func serveAuditAt(t *testing.T, state string, now func() time.Time, flags ...string) string {
	t.Helper()
	stdout, stderr := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	c := newCLI(strings.NewReader(""), stdout, stderr)
	c.now = now
	root := newRoot(c)
	root.SetArgs(append([]string{"audit", "serve", "--state", state, "--listen", "127.0.0.1:0"}, flags...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("audit serve: %v\n%s", err, stderr)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if out := stdout.String(); strings.HasSuffix(out, "\n") {
			url := strings.TrimSpace(out)
			if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/$`).MatchString(url) {
				t.Fatalf("audit serve printed %q", out)
			}
			return url
		}
		select {
		case err := <-done:
			t.Fatalf("audit serve stopped: %v\n%s", err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit serve printed no URL in 10 s\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireBrowser skips the test when Chromium is missing and the skip is
// asked for, and fails it when it is missing otherwise.
func requireBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv(skipBrowserEnv) == "1" {
			t.Skipf("%s is missing and %s=1: skipping the browser check of the audit web view", chromiumPath, skipBrowserEnv)
		}
		t.Fatalf("the audit web view is tested in headless Chromium, but %s is missing (%v): run `make test-deps` "+
			"(installs Debian's chromium package), or set %s=1 to skip this check", chromiumPath, err, skipBrowserEnv)
	}
}

// browse loads url in headless Chromium and returns the DOM it rendered.
func browse(t *testing.T, url string) string { return browseShot(t, url, "", 0) }

// browseShot is browse that also saves a screenshot of the window (1400
// pixels wide, height pixels high) to the PNG file shot, when shot is set.
func browseShot(t *testing.T, url, shot string, height int) string {
	t.Helper()
	requireBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--dump-dom"}
	if shot != "" {
		args = append(args, "--screenshot="+shot, fmt.Sprintf("--window-size=1400,%d", height),
			"--hide-scrollbars", "--force-device-scale-factor=1", "--force-color-profile=srgb")
	}
	cmd := exec.CommandContext(ctx, chromiumPath, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, tail(stderr.String(), 2000))
	}
	dom := stdout.String()
	if !strings.Contains(dom, "</html>") {
		t.Fatalf("chromium rendered no page for %s:\n%s\n%s", url, dom, tail(stderr.String(), 2000))
	}
	if shot != "" {
		if _, err := os.Stat(shot); err != nil {
			t.Fatalf("chromium saved no screenshot of %s: %v\n%s", url, err, tail(stderr.String(), 2000))
		}
	}
	return dom
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

var (
	styleRE = regexp.MustCompile(`(?s)<head>.*?</head>`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
	rowRE   = regexp.MustCompile(`(?s)<tr data-index="(\d+)"[^>]*>(.*?)</tr>`)
	hrefRE  = regexp.MustCompile(`href="(/contracts/[0-9a-f]{64})"`)
)

// visible returns the text a person sees in a DOM: no markup, no head,
// entities decoded, white space collapsed.
func visible(dom string) string {
	s := styleRE.ReplaceAllString(dom, " ")
	s = tagRE.ReplaceAllString(s, " ")
	return strings.TrimSpace(spaceRE.ReplaceAllString(html.UnescapeString(s), " "))
}

// section returns the DOM of the element with the given id, up to the
// closing tag of its kind.
func section(t *testing.T, dom, tag, id string) string {
	t.Helper()
	m := regexp.MustCompile(`<` + tag + `( [^>]*)? id="` + regexp.QuoteMeta(id) + `"`).FindStringIndex(dom)
	if m == nil {
		t.Fatalf("the page has no <%s id=%q>", tag, id)
	}
	end := strings.Index(dom[m[0]:], "</"+tag+">")
	return dom[m[0] : m[0]+end]
}

// checkBrowserVerified looks at the verified scenario in the browser: the
// status says VERIFIED with the checkpoint, the contract page lists every
// event of the timeline with its actor, every signature is valid and the
// runs show their outcome.
func checkBrowserVerified(t *testing.T, e *auditEnv, events int) {
	t.Helper()
	url := serveAudit(t, e.state)
	dom := browse(t, url)
	text := visible(dom)
	for _, s := range []string{"VERIFIED", "Last verified", fmt.Sprintf("checkpoint of %d entries", events), "ad-attribution", "2 of 2", "SIMULATED"} {
		if !strings.Contains(text, s) {
			t.Errorf("the index page does not show %q:\n%s", s, text)
		}
	}
	for _, s := range []string{"NOT VERIFIED", "ROLLBACK", "FORK"} {
		if strings.Contains(text, s) {
			t.Errorf("the index page of a verified log shows %q", s)
		}
	}
	m := hrefRE.FindStringSubmatch(dom)
	if m == nil || m[1] != "/contracts/"+e.sc.Contract.ID().String() {
		t.Fatalf("no link to the contract's page: %v", m)
	}
	dom = browse(t, strings.TrimSuffix(url, "/")+m[1])
	status := visible(section(t, dom, "div", "status"))
	if !strings.HasPrefix(status, "VERIFIED") {
		t.Errorf("contract page status: %s", status)
	}
	rows := rowRE.FindAllStringSubmatch(dom, -1)
	if len(rows) != events {
		t.Fatalf("the timeline shows %d rows, want %d", len(rows), events)
	}
	types := []string{"coordinator.started", "contract.registered", "dataset.uploaded", "dataset.uploaded", "algorithm.submitted",
		"run.started", "run.finished", "run.started", "run.finished", "run.refused", "result.fetched"}
	actors := []string{"", "auditor", "publisher", "advertiser", "measurer", "advertiser", "", "advertiser", "", "measurer", "advertiser"}
	for i, r := range rows {
		cells := visible(r[2])
		if r[1] != fmt.Sprint(i) || !strings.HasPrefix(cells, fmt.Sprint(i)+" ") || !strings.Contains(cells, types[i]) || !strings.Contains(cells, actors[i]) {
			t.Errorf("timeline row %d: %q; want %s by %q", i, cells, types[i], actors[i])
		}
		if strings.Contains(r[0], `class="problem"`) {
			t.Errorf("timeline row %d is flagged", i)
		}
	}
	parts := visible(section(t, dom, "table", "participants"))
	if strings.Count(parts, "valid") != 4 || strings.Contains(parts, "NO") {
		t.Errorf("participants: %s", parts)
	}
	ds := visible(section(t, dom, "table", "datasets"))
	if strings.Count(ds, "valid") != 2 || !strings.Contains(ds, "publisher") || !strings.Contains(ds, "advertiser") {
		t.Errorf("datasets: %s", ds)
	}
	runs := visible(section(t, dom, "table", "runs"))
	if strings.Count(runs, "signed by the attested key") != 2 || strings.Count(runs, "finished") != 2 {
		t.Errorf("runs: %s", runs)
	}
}

// checkBrowserRollback looks at the state after the rollback and the fork:
// both are shown prominently with their evidence, and the status says the
// last audit failed.
func checkBrowserRollback(t *testing.T, e *auditEnv) {
	t.Helper()
	url := serveAudit(t, e.state)
	dom := browse(t, url)
	text := visible(dom)
	for _, s := range []string{"ROLLBACK DETECTED", "FORK DETECTED", "kept checkpoint: 8 entries", "new checkpoint: 6 entries",
		"NOT VERIFIED: the last audit failed (fork)", "evidence/"} {
		if !strings.Contains(text, s) {
			t.Errorf("the index page does not show %q:\n%s", s, text)
		}
	}
	if strings.Count(dom, `id="rollback-warning"`) != 2 {
		t.Errorf("want two evidence banners, got %d", strings.Count(dom, `id="rollback-warning"`))
	}
	// The banner comes before everything else on the page.
	if i, j := strings.Index(dom, `id="rollback-warning"`), strings.Index(dom, "<h2>"); i < 0 || i > j {
		t.Error("the rollback warning is not at the top of the page")
	}
}

// screenshotsEnv names a directory where TestAuditWebView keeps its
// screenshots of the view, for people to look at; without it they go to
// the test's temporary directory. They are artefacts, never goldens: the
// test checks the DOM and a few colours, not pixels against a reference.
const screenshotsEnv = "CLEANROOM_SCREENSHOTS"

func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of the audit view in %s", dir)
	return dir
}

// offsetClock is a clock some duration ahead of time.Now.
type offsetClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *offsetClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// TestAuditWebView plays two contracts on one coordinator and looks at
// what the auditor's web view shows of them in headless Chromium:
//
//   - ad-attribution: two finished runs over the same inputs, a third
//     refused at admission (max_runs), a result fetched;
//   - ad-attribution-capped: a run refused by the output policy (max_rows
//     1), then — the coordinator's clock two hours later — a run refused
//     because the contract expired an hour after it was registered.
//
// The view is served on a clock three hours ahead, so the second contract
// is EXPIRED. Each item of the view is checked in the DOM the browser
// rendered (and the CSS it applied, by colour, in its screenshots), and
// the exports are fetched over HTTP.
func TestAuditWebView(t *testing.T) {
	requireBrowser(t)
	ctx := context.Background()
	clock := &offsetClock{}
	e := newAuditEnvAt(t, 2, clock.Now)
	e.setUp()
	run1 := e.run()
	e.run()
	if _, err := e.sc.Client(t, "measurer").Run(ctx); err == nil {
		t.Fatal("a third run was admitted under max_runs 2")
	}
	if _, err := e.sc.Client(t, "advertiser").Result(ctx, run1); err != nil {
		t.Fatal(err)
	}

	// The capped contract: max_rows 1 and every group kept, so the
	// three-row result is refused; it expires an hour after registration.
	spec := *e.spec
	spec.Name, spec.K, spec.MaxRows, spec.MaxRuns = "ad-attribution-capped", 1, 1, 3
	spec.Expires = clock.Now().Add(time.Hour)
	spec.Parties = nil
	for _, p := range e.spec.Parties {
		spec.Parties = append(spec.Parties, testenv.NewParty(t, p.ID, p.Roles...))
	}
	capped := testenv.New(t, e.srv, &spec)
	capped.Submit(t, "auditor")
	capped.MustUpload(t, "publisher", "impressions", auditImpressions)
	capped.MustUpload(t, "advertiser", "conversions", auditConversions)
	if _, err := capped.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(spec.Query), spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
	if _, err := capped.Client(t, "advertiser").Run(ctx); err == nil || !strings.Contains(err.Error(), "max_rows") {
		t.Fatalf("a run over max_rows: %v", err)
	}
	clock.advance(2 * time.Hour)
	if _, err := capped.Client(t, "advertiser").Run(ctx); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("a run of an expired contract: %v", err)
	}
	e.settle()

	if code, _, stderr := e.auditLog(); code != 0 {
		t.Fatalf("audit log of %s: exit %d\n%s", e.spec.Name, code, stderr)
	}
	files := t.TempDir()
	cappedFile := filepath.Join(files, "capped.yaml")
	if err := os.WriteFile(cappedFile, capped.Text, 0o644); err != nil {
		t.Fatal(err)
	}
	cappedKey, _, err := cleanroom.WriteIdentityFiles(filepath.Join(files, "auditor"), capped.Party("auditor").Identity)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "audit", "log", "--contract", cappedFile, "--key", cappedKey, "--coordinator", e.srv.URL, "--state", e.state); code != 0 {
		t.Fatalf("audit log of %s: exit %d\n%s", spec.Name, code, stderr)
	}

	shots := screenshotDir(t)
	viewNow := func() time.Time { return time.Now().Add(3 * time.Hour) }
	base := strings.TrimSuffix(serveAuditAt(t, e.state, viewNow), "/")
	adURL, cappedURL := base+"/contracts/"+e.contractID(), base+"/contracts/"+capped.Contract.ID().String()

	// The home page: both contracts, the capped one EXPIRED with its
	// refusals highlighted; no warning of an old audit (3 h < 24 h).
	dom := browseShot(t, base+"/", filepath.Join(shots, "home.png"), 1100)
	noScripts(t, dom)
	contracts := rowsOf(t, dom, "contracts")
	if len(contracts) != 2 {
		t.Fatalf("the home page lists %d contracts, want 2", len(contracts))
	}
	ad, cp := contracts[0], contracts[1]
	if !strings.Contains(visible(ad), "ad-attribution ") || strings.Contains(ad, "EXPIRED") ||
		!strings.Contains(visible(ad), "REFUSED 0 after start, 1 at admission") || strings.Contains(ad, `class="refused"`) {
		t.Errorf("home row of ad-attribution: %s", visible(ad))
	}
	if !strings.Contains(visible(cp), "ad-attribution-capped") || !strings.Contains(cp, `<span class="badge expired">EXPIRED</span>`) || !strings.HasPrefix(cp, `<tr class="refused">`) ||
		!strings.Contains(visible(cp), "REFUSED 1 after start, 1 at admission") {
		t.Errorf("home row of ad-attribution-capped: %s", visible(cp))
	}
	if strings.Contains(dom, `id="stale-warning"`) || strings.Contains(dom, `class="badge stale-badge"`) {
		t.Error("the home page warns of an old audit three hours after it, under --stale-after 24h")
	}
	checkHashTitle(t, dom, e.contractID())
	checkColours(t, filepath.Join(shots, "home.png"), map[string]color.RGBA{
		"the verified banner": {0xe3, 0xf4, 0xe6, 0xff}, "the EXPIRED badge": {0x37, 0x47, 0x4f, 0xff}, "the refused rows": {0xff, 0xe9, 0xe0, 0xff},
	})

	// The first contract: its summary, repeated runs and results, the
	// admission refusal, the chart and short hashes.
	dom = browseShot(t, adURL, filepath.Join(shots, "contract.png"), 3000)
	noScripts(t, dom)
	if strings.Contains(dom, "expired-badge") {
		t.Error("a contract that expires in 30 days is shown EXPIRED")
	}
	sum := visible(between(t, dom, "<h2>Run outcomes</h2>", "<h2>Participants"))
	for _, s := range []string{"2 / 2 runs started", "2 finished, result released", "2 rows released in all", "4 rows suppressed in all",
		"0 refused after starting", "1 refused at admission", "1 result downloads",
		"REFUSED 1× at stage admission: all 2 runs the contract allows (max_runs) have been used (no run counted; log entry 9)",
		"SAME INPUTS Runs #1, #2 read the same inputs",
		"Whether two runs released identical results cannot be told from the log, by design"} {
		if !strings.Contains(sum, s) {
			t.Errorf("the run outcomes do not say %q:\n%s", s, sum)
		}
	}
	st, err := e.sc.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runs := section(t, dom, "table", "runs")
	if !strings.Contains(visible(runs), "same inputs as #1") || strings.Contains(runs, `class="refused"`) {
		t.Errorf("runs: %s", visible(runs))
	}
	checkHashTitle(t, runs, st.Runs[0].ResultCommitment)
	if strings.Contains(visible(runs), st.Runs[0].ResultCommitment) {
		t.Error("the runs table shows a whole result commitment; it should show its start, and the whole on hover")
	}
	checkChart(t, dom, 11, false)
	refusedRows := 0
	for _, r := range rowRE.FindAllStringSubmatch(dom, -1) {
		if strings.Contains(r[0], `class="refused"`) {
			refusedRows++
			if !strings.Contains(r[2], "run.refused") {
				t.Errorf("timeline row %s is highlighted as refused", r[1])
			}
		}
	}
	if refusedRows != 1 {
		t.Errorf("%d timeline rows are highlighted as refused, want 1", refusedRows)
	}

	// Filters, as the form sends them: by participant, by the coordinator,
	// by type; the form shows the filter it applied.
	form := between(t, dom, `<form class="filter"`, "</form>")
	for _, s := range []string{`method="get"`, `action="/contracts/` + e.contractID() + `"`, `name="type"`, `name="participant"`,
		`type="datetime-local"`, `name="from"`, `name="to"`, `<option value="run.refused">`, `<option value="measurer">`} {
		if !strings.Contains(form, s) {
			t.Errorf("the filter form lacks %s:\n%s", s, form)
		}
	}
	for _, tc := range []struct {
		query string
		types []string
		shown string
	}{
		{"?type=&participant=measurer&from=&to=", []string{"algorithm.submitted", "run.refused"}, "2 of 11 events, by measurer."},
		{"?participant=%28coordinator%29", []string{"coordinator.started", "run.finished", "run.finished"}, "3 of 11 events, by (coordinator)."},
		{"?type=run.finished", []string{"run.finished", "run.finished"}, "2 of 11 events, type run.finished."},
		{"?type=run.started&participant=measurer", nil, "0 of 11 events"},
	} {
		dom := browse(t, adURL+tc.query)
		var got []string
		for _, r := range rowRE.FindAllStringSubmatch(dom, -1) {
			got = append(got, typeRE.FindString(visible(r[2])))
		}
		if strings.Join(got, " ") != strings.Join(tc.types, " ") {
			t.Errorf("%s: timeline rows %v, want %v", tc.query, got, tc.types)
		}
		if shown := visible(section(t, dom, "p", "shown")); !strings.HasPrefix(shown, tc.shown) {
			t.Errorf("%s: the page says %q, want %q", tc.query, shown, tc.shown)
		}
		checkChart(t, dom, len(tc.types), false)
		if tc.types == nil && !strings.Contains(dom, "No event matches the filter.") {
			t.Errorf("%s: an empty result is not said", tc.query)
		}
	}
	if dom := browse(t, adURL+"?participant=measurer"); !strings.Contains(dom, `<option value="measurer" selected="">`) {
		t.Error("the form does not show the participant it filters by")
	}

	// The capped contract: EXPIRED, its refused run highlighted with the
	// reason, both refusals in the summary, a chart with the two-hour gap
	// cut short.
	dom = browseShot(t, cappedURL, filepath.Join(shots, "refused-expired.png"), 3000)
	noScripts(t, dom)
	h1 := visible(between(t, dom, "<h1>", "</h1>"))
	if !strings.HasPrefix(h1, "Contract ad-attribution-capped EXPIRED") {
		t.Errorf("the capped contract's heading: %q", h1)
	}
	if exp := visible(section(t, dom, "dd", "expires")); !strings.Contains(exp, "expired 2 h") || !strings.Contains(exp, "nothing new may happen under it") {
		t.Errorf("expiry: %q", exp)
	}
	sum = visible(between(t, dom, "<h2>Run outcomes</h2>", "<h2>Participants"))
	for _, s := range []string{"1 / 3 runs started", "0 finished", "0 rows released in all", "1 refused after starting", "1 refused at admission",
		"REFUSED 1× at stage policy: refused by the output policy: the result has more than max_rows (1) rows", "(run #1; log entry 16)",
		"REFUSED 1× at stage admission: the contract expired at", "(no run counted; log entry 17)",
		"No two runs read the same inputs", "Whether two runs released identical results cannot be told from the log"} {
		if !strings.Contains(sum, s) {
			t.Errorf("the capped contract's outcomes do not say %q:\n%s", s, sum)
		}
	}
	runs = section(t, dom, "table", "runs")
	if !strings.Contains(runs, `<tr data-run="1" class="refused">`) || !strings.Contains(visible(runs), "REFUSED at stage policy: refused by the output policy: the result has more than max_rows (1) rows") {
		t.Errorf("the refused run is not highlighted with its reason: %s", runs)
	}
	checkChart(t, dom, 8, true)
	if n := strings.Count(dom, `<polygon class="mark k-run-refused"`); n != 2 {
		t.Errorf("the chart draws %d refusals, want 2", n)
	}
	checkColours(t, filepath.Join(shots, "refused-expired.png"), map[string]color.RGBA{
		"the refused rows": {0xff, 0xe9, 0xe0, 0xff}, "the REFUSED badges": {0xc6, 0x28, 0x28, 0xff}, "the EXPIRED badge": {0x37, 0x47, 0x4f, 0xff},
	})
	// A time filter: from the first second after the gap, only the refusal
	// of the expired contract is left.
	var after time.Time
	for _, m := range markRE.FindAllStringSubmatch(dom, -1) {
		if tm := must(time.Parse(time.RFC3339Nano, m[4])); tm.After(after) {
			after = tm
		}
	}
	q := "?from=" + after.Truncate(time.Second).Format("2006-01-02T15:04:05") + "&to="
	dom = browseShot(t, cappedURL+q, filepath.Join(shots, "filtered.png"), 2500)
	if rows := rowRE.FindAllStringSubmatch(dom, -1); len(rows) != 1 || !strings.Contains(rows[0][2], "the contract expired at") {
		t.Errorf("%s: %d rows", q, len(rows))
	}
	checkColours(t, filepath.Join(shots, "filtered.png"), map[string]color.RGBA{"the header": {0x1b, 0x2a, 0x3a, 0xff}, "the refused rows": {0xff, 0xe9, 0xe0, 0xff}})

	// Exports: the links carry the filter; JSON and CSV come as
	// attachments of the right type.
	if !strings.Contains(dom, `href="/contracts/`+capped.Contract.ID().String()+`?format=json&amp;from=`) {
		t.Errorf("the JSON export link does not carry the filter")
	}
	checkExports(t, base, e.contractID(), capped.Contract.ID().String())

	// A proper 404 page, in the view's style, for unknown paths and
	// contracts.
	for _, path := range []string{"/nope", "/contracts/" + strings.Repeat("0", 64), "/contracts/../state.json"} {
		resp := must(http.Get(base + path))
		resp.Body.Close()
		if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	dom = browseShot(t, base+"/nope", filepath.Join(shots, "404.png"), 500)
	if text := visible(dom); !strings.Contains(text, "404 Not found There is no page") || !strings.Contains(text, "There is no page /nope in this view") ||
		!strings.Contains(dom, `<a href="/">Back to the audit's home page</a>`) {
		t.Errorf("the 404 page: %s", text)
	}
	checkColours(t, filepath.Join(shots, "404.png"), map[string]color.RGBA{"the header": {0x1b, 0x2a, 0x3a, 0xff}, "the message box": {0xee, 0xf1, 0xf4, 0xff}})
	dom = browse(t, base+"/contracts/"+strings.Repeat("0", 64))
	if !strings.Contains(visible(dom), "There is no verified audit of contract "+strings.Repeat("0", 64)) {
		t.Errorf("the 404 page of an unknown contract: %s", visible(dom))
	}

	// The same state three hours after the audits, with --stale-after 1h:
	// old, on the home page and on each contract's.
	old := strings.TrimSuffix(serveAuditAt(t, e.state, viewNow, "--stale-after", "1h"), "/")
	dom = browseShot(t, old+"/", filepath.Join(shots, "old-audit.png"), 900)
	if w := visible(section(t, dom, "div", "stale-warning")); !strings.HasPrefix(w, "OLD AUDIT: last verified 3 h ") ||
		!strings.Contains(w, "longer ago than 1 h 0 min") {
		t.Errorf("the warning of an old audit: %q", w)
	}
	if n := strings.Count(dom, `<span class="badge stale-badge">OLD</span>`); n != 2 {
		t.Errorf("%d contracts are marked OLD, want 2", n)
	}
	if dom := browse(t, old+"/contracts/"+e.contractID()); !strings.Contains(visible(dom), "The last audit that verified this contract") {
		t.Error("the contract page of an old audit does not warn")
	}
	// --stale-after 0: never, even a year later.
	never := serveAuditAt(t, e.state, func() time.Time { return time.Now().AddDate(1, 0, 0) }, "--stale-after", "0")
	resp := must(http.Get(never))
	body := string(must(io.ReadAll(resp.Body)))
	resp.Body.Close()
	if strings.Contains(body, `id="stale-warning"`) || strings.Count(body, `<span class="badge expired">EXPIRED</span>`) != 2 {
		t.Error("--stale-after 0 warns of an old audit, or a year later not every contract is EXPIRED")
	}
}

var typeRE = regexp.MustCompile(`\b(coordinator\.started|contract\.registered|dataset\.uploaded|algorithm\.submitted|run\.started|run\.finished|run\.refused|run\.aborted|result\.fetched)\b`)

var markRE = regexp.MustCompile(`<(circle|polygon) class="mark ([^"]*)" data-index="(\d+)" data-time="([^"]+)" data-x="(\d+)"`)

// checkChart checks the timeline's chart: one marker per event, placed
// left to right in time order across the whole axis, and (cut) a gap cut
// short.
func checkChart(t *testing.T, dom string, events int, cut bool) {
	t.Helper()
	marks := markRE.FindAllStringSubmatch(dom, -1)
	if len(marks) != events {
		t.Fatalf("the chart has %d markers, want %d", len(marks), events)
	}
	if events == 0 {
		return
	}
	type mark struct {
		t time.Time
		x int
	}
	var ms []mark
	for _, m := range marks {
		ms = append(ms, mark{must(time.Parse(time.RFC3339Nano, m[4])), must(strconv.Atoi(m[5]))})
		if !strings.HasPrefix(m[2], "k-") {
			t.Errorf("marker %s has no kind: %q", m[3], m[2])
		}
	}
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].t.Before(ms[j].t) })
	for i := 1; i < len(ms); i++ {
		if ms[i].x < ms[i-1].x || (ms[i].t.After(ms[i-1].t) && ms[i].x == ms[i-1].x && ms[i].t.Sub(ms[i-1].t) > time.Second) {
			t.Errorf("markers out of time order: %v at x %d, then %v at x %d", ms[i-1].t, ms[i-1].x, ms[i].t, ms[i].x)
		}
	}
	if events > 1 && (ms[0].x != 110 || ms[len(ms)-1].x != 976) {
		t.Errorf("the markers span x %d to %d, not the whole axis", ms[0].x, ms[len(ms)-1].x)
	}
	if got := strings.Contains(dom, `<line class="cut"`); got != cut {
		t.Errorf("the chart cuts a gap: %v, want %v", got, cut)
	}
	if cut && !strings.Contains(dom, "≈ 2 h 0 min") {
		t.Error("the cut gap is not labelled with its length")
	}
}

// rowsOf returns the rows of the table with the given id, without its
// header.
func rowsOf(t *testing.T, dom, id string) []string {
	t.Helper()
	rows := regexp.MustCompile(`(?s)<tr[ >].*?</tr>`).FindAllString(section(t, dom, "table", id), -1)
	if len(rows) == 0 {
		t.Fatalf("table %s has no header", id)
	}
	return rows[1:]
}

// between returns the DOM from the first from to the following to.
func between(t *testing.T, dom, from, to string) string {
	t.Helper()
	i := strings.Index(dom, from)
	if i < 0 {
		t.Fatalf("the page has no %q", from)
	}
	j := strings.Index(dom[i:], to)
	if j < 0 {
		t.Fatalf("the page has no %q after %q", to, from)
	}
	return dom[i : i+j+len(to)]
}

func noScripts(t *testing.T, dom string) {
	t.Helper()
	if strings.Contains(strings.ToLower(dom), "<script") || strings.Contains(dom, "javascript:") {
		t.Error("the page has a script")
	}
}

// checkHashTitle checks a digest is shown by its start, with the whole in
// the title a browser shows on hover.
func checkHashTitle(t *testing.T, dom, h string) {
	t.Helper()
	if want := `<span class="hash" title="` + h + `">` + h[:16] + `…</span>`; !strings.Contains(dom, want) {
		t.Errorf("the page does not show %s as %s", h, want)
	}
}

// checkColours checks a screenshot holds some pixels of each colour: the
// browser applied the page's style sheet (the Content-Security-Policy
// allows it by its hash), and the highlighted parts are there.
func checkColours(t *testing.T, file string, want map[string]color.RGBA) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	count := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			for _, c := range want {
				if near(r>>8, c.R) && near(g>>8, c.G) && near(bl>>8, c.B) {
					count[c]++
				}
			}
		}
	}
	for what, c := range want {
		if count[c] < 300 {
			t.Errorf("%s: %d pixels of %s (#%02x%02x%02x); the style sheet was not applied, or it is missing", filepath.Base(file), count[c], what, c.R, c.G, c.B)
		}
	}
}

func near(a uint32, b uint8) bool { return a+3 >= uint32(b) && a <= uint32(b)+3 }

// checkExports fetches the exports of the home page and of both contracts
// and checks their headers and content.
func checkExports(t *testing.T, base, adID, cappedID string) {
	t.Helper()
	get := func(path, ctype, file string) []byte {
		t.Helper()
		resp := must(http.Get(base + path))
		defer resp.Body.Close()
		body := must(io.ReadAll(resp.Body))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype ||
			resp.Header.Get("Content-Disposition") != `attachment; filename="`+file+`"` ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s: %d %v", path, resp.StatusCode, resp.Header)
		}
		return body
	}
	var home struct {
		Format    string `json:"format"`
		Status    string `json:"status"`
		Contracts []struct {
			Name               string `json:"name"`
			Expired            bool   `json:"expired"`
			RunsRefused        int    `json:"runs_refused"`
			RefusedAtAdmission int    `json:"refused_at_admission"`
			RowsReleased       int    `json:"rows_released"`
		} `json:"contracts"`
	}
	if err := json.Unmarshal(get("/?format=json", "application/json", "cleanroom-audit-contracts.json"), &home); err != nil {
		t.Fatal(err)
	}
	if home.Format != audit.ExportFormat || home.Status != "verified" || len(home.Contracts) != 2 ||
		home.Contracts[0].Expired || home.Contracts[0].RowsReleased != 2 || home.Contracts[0].RefusedAtAdmission != 1 ||
		!home.Contracts[1].Expired || home.Contracts[1].RunsRefused != 1 {
		t.Errorf("home JSON export: %+v", home)
	}
	rows := must(csv.NewReader(bytes.NewReader(get("/?format=csv", "text/csv; charset=utf-8", "cleanroom-audit-contracts.csv"))).ReadAll())
	if len(rows) != 3 || rows[0][0] != "id" || rows[1][1] != "ad-attribution" || rows[2][1] != "ad-attribution-capped" || rows[2][3] != "true" {
		t.Errorf("home CSV export: %q", rows)
	}
	var ad struct {
		Format  string `json:"format"`
		Summary struct {
			SameInputs []struct {
				Runs []int `json:"runs"`
			} `json:"same_inputs"`
		} `json:"summary"`
		Report audit.Report          `json:"report"`
		Events []audit.TimelineEntry `json:"events"`
	}
	if err := json.Unmarshal(get("/contracts/"+adID+"?format=json", "application/json", "cleanroom-audit-"+adID+".json"), &ad); err != nil {
		t.Fatal(err)
	}
	if ad.Format != audit.ExportFormat || !ad.Report.Verified || len(ad.Events) != 11 || len(ad.Summary.SameInputs) != 1 ||
		fmt.Sprint(ad.Summary.SameInputs[0].Runs) != "[1 2]" {
		t.Errorf("contract JSON export: %+v", ad)
	}
	rows = must(csv.NewReader(bytes.NewReader(get("/contracts/"+cappedID+"?format=csv&type=run.refused", "text/csv; charset=utf-8", "cleanroom-audit-"+cappedID+".csv"))).ReadAll())
	if len(rows) != 3 || strings.Join(rows[0], ",") != "index,time,type,actor,actor_key,event_id,ok,summary,details" ||
		rows[1][2] != "run.refused" || rows[2][2] != "run.refused" || !strings.Contains(rows[2][8], "stage=admission") {
		t.Errorf("contract CSV export: %q", rows)
	}
	resp := must(http.Get(base + "/?format=xml"))
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("format=xml: %d", resp.StatusCode)
	}
}
