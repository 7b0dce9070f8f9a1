package audit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWebView checks the web view's answers on a real state directory:
// what it serves, what it refuses, and that a failed audit after a
// verified one is shown as NOT VERIFIED while the verified facts stay.
// (cmd/cleanroom checks the rendered pages in headless Chromium.)
func TestWebView(t *testing.T) {
	w := getWorld(t)
	dir := t.TempDir()
	h := Handler(dir, ViewOptions{})
	get := func(method, url string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, url, nil))
		return rec
	}
	if rec := get(http.MethodGet, "http://127.0.0.1:8080/"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "NOTHING VERIFIED YET") {
		t.Fatalf("empty state: %d %s", rec.Code, rec.Body)
	}
	st := openState(t, dir)
	if _, err := Run(context.Background(), w.config(nil), st); err != nil {
		t.Fatal(err)
	}
	cid := w.sc.Contract.ID().String()
	for _, tc := range []struct {
		method, url string
		code        int
		want        string
	}{
		{http.MethodGet, "http://127.0.0.1:8080/", 200, "VERIFIED"},
		{http.MethodGet, "http://localhost:8080/contracts/" + cid, 200, "Participants and their signatures"},
		{http.MethodGet, "http://[::1]:8080/", 200, "VERIFIED"},
		{http.MethodHead, "http://127.0.0.1:8080/", 200, ""},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/" + strings.Repeat("0", 64), 404, "no verified audit"},
		{http.MethodGet, "http://127.0.0.1:8080/contracts/../state.json", 404, ""},
		{http.MethodGet, "http://127.0.0.1:8080/state.json", 404, ""},
		{http.MethodPost, "http://127.0.0.1:8080/", 405, "read-only"},
		{http.MethodGet, "http://evil.example:8080/", 403, "forbidden"},
	} {
		rec := get(tc.method, tc.url)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s %s: %d %.200s", tc.method, tc.url, rec.Code, rec.Body)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s %s: CSP %q", tc.method, tc.url, csp)
		}
	}
	// A failed audit after the verified one.
	bad := tamper(w.auditor.LogFetcher(), isPath("tile/entries/"), func(b []byte) ([]byte, error) {
		b[len(b)-3] ^= 1
		return b, nil
	})
	if _, err := Run(context.Background(), w.config(bad), st); err == nil {
		t.Fatal("tampered log verified")
	}
	body := get(http.MethodGet, "http://127.0.0.1:8080/").Body.String()
	if !strings.Contains(body, "NOT VERIFIED: the last audit failed (bad-log)") || !strings.Contains(body, "tile/entries/") ||
		!strings.Contains(body, "The facts below are from the last audit that verified") {
		t.Errorf("index after a failed audit:\n%s", body)
	}
	// Then a good one again: VERIFIED, with the earlier failure noted.
	if _, err := Run(context.Background(), w.config(nil), st); err != nil {
		t.Fatal(err)
	}
	body = get(http.MethodGet, "http://127.0.0.1:8080/").Body.String()
	if strings.Contains(body, "NOT VERIFIED") || !strings.Contains(body, "An earlier audit failed") {
		t.Errorf("index after a good audit:\n%s", body)
	}
}
