package eventlog

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveLog mounts l's handler under /log/ on a real TLS server on loopback,
// through a ServeMux (which cleans paths with redirects) or directly.
func serveLog(t *testing.T, l *Log, withMux bool) (*httptest.Server, func(method, path string) (*http.Response, []byte)) {
	t.Helper()
	var h http.Handler = http.StripPrefix("/log", l.Handler())
	if withMux {
		mux := http.NewServeMux()
		mux.Handle("/log/", h)
		h = mux
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	do := func(method, path string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctxT(t), method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	return srv, do
}

func TestHandler(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	l := openTest(t, dir)
	appendN(t, l, 0, 260)
	cp, err := l.WaitCheckpoint(ctx, 260)
	if err != nil {
		t.Fatal(err)
	}
	for _, withMux := range []bool{false, true} {
		_, do := serveLog(t, l, withMux)
		checkHandler(t, dir, cp.Bytes(), do)
	}
}

func checkHandler(t *testing.T, dir string, cp []byte, do func(method, path string) (*http.Response, []byte)) {
	resp, body := do("GET", "/log/checkpoint")
	if resp.StatusCode != 200 || !bytes.Equal(body, cp) {
		t.Fatalf("checkpoint: %s %q", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("checkpoint content type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("checkpoint cache control %q", cc)
	}
	for _, p := range []string{"tile/0/000", "tile/0/001.p/4", "tile/entries/000", "tile/entries/001.p/4", "tile/1/000.p/1"} {
		resp, body := do("GET", "/log/"+p)
		want, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("%s: %s, %d bytes, want %d", p, resp.Status, len(body), len(want))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("%s: content type %q", p, ct)
		}
		head, hbody := do("HEAD", "/log/"+p)
		if head.StatusCode != 200 || len(hbody) != 0 || head.ContentLength != int64(len(want)) {
			t.Errorf("HEAD %s: %s, body %d bytes, length %d", p, head.Status, len(hbody), head.ContentLength)
		}
	}
	// A partial tile from a smaller tree stays available to old readers.
	if resp, _ := do("GET", "/log/tile/entries/001.p/1"); resp.StatusCode != 200 && resp.StatusCode != 404 {
		t.Errorf("old partial bundle: %s", resp.Status)
	}

	refused := []string{
		"/log/", "/log", "/log/..", "/log/../log/checkpoint", "/log/tile/../checkpoint", "/log/tile/0/../../.state/treeState",
		"/log/.state/treeState", "/log/.state/", "/log/.lock", "/log/tile/", "/log/tile/0/", "/log/tile/entries/",
		"/log/tile/0/0", "/log/tile/00/000", "/log/tile/64/000", "/log/tile/0/000.p/0", "/log/tile/0/000.p/256",
		"/log/tile/0/000/", "/log//checkpoint", "/log/checkpoint/", "/log/tile/%2e%2e/checkpoint", "/log/%2e%2e/%2e%2e/etc/passwd",
		"/log/tile/0/x000/000", "/log/tile/0/000.p/05",
		// Well formed but beyond the published checkpoint:
		"/log/tile/0/001", "/log/tile/entries/001", "/log/tile/0/002", "/log/tile/1/000", "/log/tile/0/001.p/5", "/log/tile/2/000.p/1",
	}
	for _, p := range refused {
		resp, body := do("GET", p)
		if resp.StatusCode == 200 || resp.StatusCode >= 500 {
			t.Errorf("GET %s: %s %q, want a refusal", p, resp.Status, truncateBody(body))
		}
		if bytes.Contains(body, cp[:10]) {
			t.Errorf("GET %s leaks content: %q", p, truncateBody(body))
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		resp, _ := do(m, "/log/checkpoint")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %s, Allow %q", m, resp.Status, resp.Header.Get("Allow"))
		}
	}
}

// TestHandlerHidesUnpublished checks that entries integrated after the last
// published checkpoint are not served until a checkpoint covers them.
func TestHandlerHidesUnpublished(t *testing.T) {
	ctx := ctxT(t)
	id, origin := testKey(t)
	l, err := Open(t.TempDir(), id.Signer(), origin, &Options{CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// No checkpoint will cover the entry: do not wait for one.
		short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		l.Close(short)
	}()
	_, do := serveLog(t, l, false)
	if _, err := l.Append(ctx, []byte("unpublished")); err != nil {
		t.Fatal(err)
	}
	// The new log's first checkpoint is of size 0; with an hour's interval
	// no other is published during the test.
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size() != 0 {
		t.Skipf("a checkpoint of %d entries was published", cp.Size())
	}
	for _, p := range []string{"/log/tile/entries/000.p/1", "/log/tile/0/000.p/1"} {
		if resp, _ := do("GET", p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s before any checkpoint covers it", p, resp.Status)
		}
	}
}

func truncateBody(b []byte) string {
	s := string(b)
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return strings.TrimSpace(s)
}
