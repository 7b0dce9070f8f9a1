package coordinator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// operatorOnly are series that move with what the parties do: polled, they
// tell what each run suppressed or refused and when every contract acts.
var operatorOnly = []string{
	"cleanroomd_rows_suppressed_total", "cleanroomd_runs_total", "cleanroomd_events_total",
	"cleanroomd_upload_bytes_total", "cleanroomd_requests_total", "cleanroomd_refusals_total",
	"cleanroomd_request_duration_seconds", "cleanroomd_log_entries", "cleanroomd_contracts",
}

// TestMetricsOperatorOnly: after a run that suppressed rows, /metrics shows
// anyone who is not the operator — anonymous, a participant, a stranger, a
// wrong token — only that the coordinator is up, and /v1/health only its
// status; the operator, with its token or from loopback when allowed, gets
// every series and the counts.
func TestMetricsOperatorOnly(t *testing.T) {
	const token = "operator-token-0123456789abcdef0123456789"
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{OperatorToken: token})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "metrics", 3))
	prepare(t, sc, testenv.ImpressionsCSV)
	rs, err := sc.Client(t, "advertiser").Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rs.RowsSuppressed == 0 {
		t.Fatal("the run suppressed no rows: nothing to hide")
	}

	cs := callers(t, sc)
	get := func(hc *http.Client, url, path, bearer string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	public := func(who, body string) {
		t.Helper()
		if !strings.Contains(body, "cleanroomd_up 1") {
			t.Errorf("%s: /metrics lacks cleanroomd_up:\n%s", who, body)
		}
		for _, s := range operatorOnly {
			if strings.Contains(body, s) {
				t.Errorf("%s is served %s, the operator's:\n%s", who, s, body)
			}
		}
	}
	healthPublic := func(who, body string) {
		t.Helper()
		var h map[string]any
		if err := json.Unmarshal([]byte(body), &h); err != nil || len(h) != 1 || h["status"] != "ok" {
			t.Errorf("%s: /v1/health tells more than the status: %s", who, body)
		}
	}
	for _, c := range cs {
		for _, bearer := range []string{"", "wrong-" + token, token[:len(token)-1]} {
			who := c.name + " with token " + bearer
			status, body := get(c.hc, srv.URL, "/metrics", bearer)
			if status != http.StatusOK {
				t.Fatalf("%s: /metrics %d", who, status)
			}
			public(who, body)
			_, body = get(c.hc, srv.URL, "/v1/health", bearer)
			healthPublic(who, body)
		}
	}

	// The operator, with its token, from any client.
	anon := cs[len(cs)-1].hc
	_, body := get(anon, srv.URL, "/metrics", token)
	for _, s := range operatorOnly {
		if !strings.Contains(body, s) && s != "cleanroomd_refusals_total" { // nothing was refused
			t.Errorf("the operator is not served %s:\n%s", s, body)
		}
	}
	if !strings.Contains(body, "cleanroomd_rows_suppressed_total ") || !strings.Contains(body, `cleanroomd_runs_total{outcome="finished"} 1`) {
		t.Errorf("the operator's metrics do not count the run:\n%s", body)
	}
	_, body = get(anon, srv.URL, "/v1/health", token)
	var h api.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.LogSize == nil || *h.LogSize != sc.LogSize() || h.Contracts == nil || *h.Contracts != 1 {
		t.Errorf("the operator's health: %s", body)
	}

	// Loopback counts as the operator only when the operator says so.
	srv.Stop()
	loop := testenv.Start(t, srv.Dir, coordinator.Config{OperatorLoopback: true})
	hc, err := atls.NewHTTPClient(atls.ClientOptions{Policy: &sc.Contract.Coordinator})
	if err != nil {
		t.Fatal(err)
	}
	_, body = get(hc, loop.URL, "/metrics", "")
	if !strings.Contains(body, "cleanroomd_log_entries") {
		t.Errorf("a loopback client is not the operator with OperatorLoopback:\n%s", body)
	}
}

// TestOperatorTokenChecked: a short operator token, or one that cannot
// travel in a header, stops the coordinator from starting.
func TestOperatorTokenChecked(t *testing.T) {
	for _, tok := range []string{"short", strings.Repeat("a", 31), strings.Repeat("a", 40) + " b", strings.Repeat("é", 20)} {
		_, err := coordinator.Open(context.Background(), coordinator.Config{DataDir: t.TempDir(), OperatorToken: tok})
		if err == nil || !strings.Contains(err.Error(), "operator token") {
			t.Errorf("token %q: %v", tok, err)
		}
	}
}
