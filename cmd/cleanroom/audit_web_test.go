package main

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/internal/scenario"
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
func serveAudit(t *testing.T, state string) string {
	t.Helper()
	stdout, stderr := &scenario.SyncBuffer{}, &scenario.SyncBuffer{}
	c := newCLI(strings.NewReader(""), stdout, stderr)
	root := newRoot(c)
	root.SetArgs([]string{"audit", "serve", "--state", state, "--listen", "127.0.0.1:0"})
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

// browse loads url in headless Chromium and returns the DOM it rendered.
func browse(t *testing.T, url string) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv(skipBrowserEnv) == "1" {
			t.Skipf("%s is missing and %s=1: skipping the browser check of the audit web view", chromiumPath, skipBrowserEnv)
		}
		t.Fatalf("the audit web view is tested in headless Chromium, but %s is missing (%v): run `make test-deps` "+
			"(installs Debian's chromium package), or set %s=1 to skip this check", chromiumPath, err, skipBrowserEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, tail(stderr.String(), 2000))
	}
	dom := stdout.String()
	if !strings.Contains(dom, "</html>") {
		t.Fatalf("chromium rendered no page for %s:\n%s\n%s", url, dom, tail(stderr.String(), 2000))
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
	start := strings.Index(dom, "<"+tag+` id="`+id+`"`)
	if start < 0 {
		start = strings.Index(dom, "<"+tag+` class="banner verified" id="`+id+`"`)
	}
	if start < 0 {
		t.Fatalf("the page has no <%s id=%q>", tag, id)
	}
	end := strings.Index(dom[start:], "</"+tag+">")
	return dom[start : start+end]
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
