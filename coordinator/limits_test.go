package coordinator_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// guard bounds how long a limit test waits for the server to act, so a
// limit that does not work fails the test instead of hanging it. It is
// never what makes a test pass.
const guard = 20 * time.Second

// TestQueryMemoryLimit runs an approved query that needs far more memory
// than the coordinator allows (a self cross join of 3000 rows grouped by a
// key per pair) on a coordinator started with a 64 MiB query memory limit.
// The run is refused with an error that names the limit, nothing is
// released, the run counts against max_runs, and the daemon goes on
// serving.
func TestQueryMemoryLimit(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{QueryMemory: 64 << 20, QueryThreads: 2})
	spec := testenv.AdSpec(t, "memory-hog", 3)
	spec.Query = "SELECT a.user_id || '/' || b.user_id AS pair, count(*) AS users " +
		"FROM impressions a, impressions b GROUP BY pair ORDER BY pair"
	sc := testenv.New(t, srv, spec)
	var csv strings.Builder
	csv.WriteString("user_id,campaign\n")
	for i := range 3000 {
		fmt.Fprintf(&csv, "user-%05d,c%d\n", i, i%7)
	}
	sc.Submit(t, "publisher")
	sc.MustUpload(t, "publisher", "impressions", csv.String())
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	ctx := context.Background()
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(spec.Query), spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}

	_, err := sc.Client(t, "advertiser").Run(ctx)
	expectRefusal(t, "memory hog", err, http.StatusUnprocessableEntity, "query memory limit of 64 MiB (cleanroomd --query-memory)")

	// Still serving; the run is refused, counted, and has no result.
	st, err := sc.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatalf("a request after the refused run: %v", err)
	}
	if len(st.Runs) != 1 || st.Runs[0].Status != "refused" || st.Runs[0].ResultCommitment != "" || st.RunsUsed != 1 {
		t.Fatalf("run after the memory refusal: %+v", st.Runs)
	}
	if !strings.Contains(st.Runs[0].Reason, "memory") {
		t.Errorf("the logged reason does not name the memory limit: %q", st.Runs[0].Reason)
	}
	if _, err := sc.Client(t, "advertiser").Result(ctx, st.Runs[0].RunID); err == nil {
		t.Fatal("a result was released for a refused run")
	}
	if h, err := sc.Client(t, "").Health(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("health after the refused run: %+v, %v", h, err)
	}
}

// TestLongRefusalReason runs a query whose engine error quotes a 70 KB
// value, more than a log entry holds: the run is still recorded as refused
// (saying only DuckDB's error class), not left running with a 500.
func TestLongRefusalReason(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	spec := testenv.AdSpec(t, "long-reason", 3)
	spec.Query = "SELECT count(*) AS users, sum(CAST(i.user_id || repeat('x', 70000) AS INTEGER)) AS v FROM impressions i"
	sc := testenv.New(t, srv, spec)
	prepare(t, sc, testenv.ImpressionsCSV)
	ctx := context.Background()
	_, err := sc.Client(t, "advertiser").Run(ctx)
	// DuckDB's message (which would quote the 70 KB value) never leaves the
	// VM: the reason is the class alone, well within a log entry.
	expectRefusal(t, "long reason", err, http.StatusUnprocessableEntity, "DuckDB Conversion Error")
	st, err := sc.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Runs) != 1 || st.Runs[0].Status != "refused" || len(st.Runs[0].Reason) > 5000 {
		t.Fatalf("runs: %.500v", st.Runs)
	}
}

// TestJSONBodyLimit sends JSON bodies just over api.MaxJSONBody to every
// JSON endpoint: each is refused with 413 too_large and changes nothing.
func TestJSONBodyLimit(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "json-limit", 3))
	sc.Submit(t, "publisher")
	hc := httpClient(t, sc, "measurer")
	big := append([]byte(`{"text":"`), bytes.Repeat([]byte("a"), api.MaxJSONBody)...)
	big = append(big, `"}`...)
	cid := sc.Contract.ID().String()
	for _, path := range []string{"/v1/attestation", "/v1/contracts", "/v1/contracts/" + cid + "/algorithm"} {
		method := http.MethodPost
		if strings.HasSuffix(path, "/algorithm") {
			method = http.MethodPut
		}
		before := sc.LogSize()
		status, body := call(t, hc, sc.URL, method, path, big)
		if status != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), `"too_large"`) {
			t.Errorf("%s %s with %d bytes: %d %s", method, path, len(big), status, body)
		}
		if sc.LogSize() != before {
			t.Errorf("%s %s: the log changed", method, path)
		}
	}
}

// countingReader counts what the server pulled of a request body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestUploadSizeLimit uploads more than MaxUploadBytes, announced with a
// Content-Length and streamed without one (a genuine envelope, so that
// only the size can stop it, followed by an endless tail): both are refused
// with 413 without the coordinator reading the whole body, and nothing is
// stored.
func TestUploadSizeLimit(t *testing.T) {
	const limit = 256 << 10
	const size = 128 << 20
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{MaxUploadBytes: limit})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "upload-limit", 3))
	sc.Submit(t, "publisher")
	path := "/v1/contracts/" + sc.Contract.ID().String() + "/datasets/impressions"
	var csv strings.Builder
	csv.WriteString("user_id,campaign\n")
	for i := range 40000 {
		fmt.Fprintf(&csv, "user-%06d,campaign-%d\n", i, i%13)
	}
	sealed := sc.Seal(t, "publisher", "impressions", csv.String())
	if len(sealed.Envelope) < 2*limit {
		t.Fatalf("the envelope has %d bytes, not well over the limit", len(sealed.Envelope))
	}
	blobsBefore := blobFiles(t, srv.Dir)

	for _, announced := range []bool{true, false} {
		name := map[bool]string{true: "with Content-Length", false: "chunked"}[announced]
		before := sc.LogSize()
		body := &countingReader{r: io.LimitReader(io.MultiReader(bytes.NewReader(sealed.Envelope), zeros{}), size)}
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, sc.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		req.ContentLength = -1
		if announced {
			req.ContentLength = size
		}
		resp, err := httpClient(t, sc, "publisher").Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", name, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), fmt.Sprintf("limit of %d bytes", limit)) {
			t.Errorf("%s: %d %s", name, resp.StatusCode, msg)
		}
		// The server stops reading at the limit (plus what it drains so
		// the client reads the answer, and what the transport had in
		// flight): a small part of the body.
		if sent := body.n.Load(); sent > size/8 {
			t.Errorf("%s: the client got to send %d of %d bytes against a %d-byte limit", name, sent, size, limit)
		}
		if sc.LogSize() != before {
			t.Errorf("%s: the log changed", name)
		}
		t.Logf("%s: %d %s; %d of %d bytes sent", name, resp.StatusCode, bytes.TrimSpace(msg), body.n.Load(), size)
	}
	if after := blobFiles(t, srv.Dir); !slices.Equal(after, blobsBefore) {
		t.Errorf("blobs before the refused uploads %v, after %v", blobsBefore, after)
	}
}

// blobFiles lists every file under the data directory's blob store,
// stored or half-written.
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSlowUploads opens uploads that stall, over HTTP/1.1 and HTTP/2: one
// that sends nothing after its headers is cut off by the read deadline
// (UploadIdleTimeout), one that trickles a byte at a time by the minimum
// rate after UploadGracePeriod. Each is refused with 400 naming why,
// nothing is stored or logged, and the coordinator serves the next upload.
func TestSlowUploads(t *testing.T) {
	const short, long = 300 * time.Millisecond, time.Hour
	for _, tc := range []struct {
		name        string
		idle, grace time.Duration
		http1       bool
		trickle     bool
		msg         string
	}{
		{"silent after the headers, HTTP/1.1", short, long, true, false, "no data for 300ms"},
		{"silent after the headers, HTTP/2", short, long, false, false, "no data for 300ms"},
		{"one byte at a time, HTTP/2", long, short, false, true, "upload slower than 65536 bytes per second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.Start(t, t.TempDir(), coordinator.Config{UploadIdleTimeout: tc.idle, UploadGracePeriod: tc.grace})
			sc := testenv.New(t, srv, testenv.AdSpec(t, "slow-uploads", 3))
			sc.Submit(t, "publisher")
			sealed := sc.Seal(t, "publisher", "impressions", testenv.ImpressionsCSV)
			blobsBefore := blobFiles(t, srv.Dir)
			before := sc.LogSize()
			var status int
			var msg string
			if tc.http1 {
				status, msg = stallHTTP1(t, sc)
			} else {
				status, msg = stallHTTP2(t, sc, srv, sealed, tc.trickle)
			}
			if status != http.StatusBadRequest || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %d %q, want 400 naming %q", status, msg, tc.msg)
			}
			if sc.LogSize() != before {
				t.Error("the log changed")
			}
			if after := blobFiles(t, srv.Dir); !slices.Equal(after, blobsBefore) {
				t.Errorf("blobs before %v, after %v", blobsBefore, after)
			}
			if _, err := sc.Upload(t, "publisher", "impressions", sealed); err != nil {
				t.Fatalf("an upload at full speed after the slow one: %v", err)
			}
		})
	}
}

// stallHTTP1 starts a chunked upload on a raw HTTP/1.1 connection, sends
// nothing more, and returns the answer the server gives.
func stallHTTP1(t *testing.T, sc *testenv.Scenario) (int, string) {
	conn := rawTLS(t, sc, "publisher")
	fmt.Fprintf(conn, "PUT /v1/contracts/%s/datasets/impressions HTTP/1.1\r\nHost: coordinator\r\n"+
		"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nTrailer: %s\r\n\r\n",
		sc.Contract.ID(), api.UploadStatementTrailer)
	conn.SetReadDeadline(time.Now().Add(guard))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the stalled upload: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stallHTTP2 uploads through the client SDK (HTTP/2) a body that sends
// nothing, or one byte of the envelope at a time, until the daemon logs
// that it refused the upload; it returns the refusal the client got.
func stallHTTP2(t *testing.T, sc *testenv.Scenario, srv *testenv.Server, sealed *testenv.Sealed, trickle bool) (int, string) {
	pr, pw := io.Pipe()
	stop := make(chan struct{})
	if trickle {
		go func() {
			for _, b := range sealed.Envelope {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if _, err := pw.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
	}
	errc := make(chan error, 1)
	go func() {
		_, err := sc.Client(t, "publisher").UploadEnvelope(context.Background(), "impressions", pr,
			func() ([]byte, error) { return sealed.Statement, nil })
		errc <- err
	}()
	// The client's body blocks in Read until its source ends; a real
	// client's source would go on or fail. End it once the daemon has
	// refused the upload.
	deadline := time.Now().Add(guard)
	for !strings.Contains(srv.Logs.String(), `msg="request refused" route="PUT /v1/contracts/{cid}/datasets/{ds}"`) {
		if time.Now().After(deadline) {
			close(stop)
			pw.CloseWithError(errors.New("the test gave up"))
			t.Fatalf("the coordinator did not cut the upload off within %s", guard)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// End the source cleanly: an error here could reach the client before
	// the server's answer, which is what the test looks at.
	close(stop)
	pw.Close()
	err := <-errc
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("the client did not get the refusal: %v", err)
	}
	return e.Status, e.Message
}

// rawTLS opens an attested TLS connection speaking HTTP/1.1, as party id.
func rawTLS(t *testing.T, sc *testenv.Scenario, id string) *tls.Conn {
	t.Helper()
	cfg, err := atls.NewClientConfig(atls.ClientOptions{Policy: &sc.Contract.Coordinator, Identity: sc.Party(id).Identity})
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	d := &net.Dialer{Timeout: guard}
	conn, err := tls.DialWithDialer(d, "tcp", strings.TrimPrefix(sc.URL, "https://"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestSlowHeaders sends half a request's headers and then nothing: the
// server closes the connection after ReadHeaderTimeout. A client that
// connects and never starts TLS is dropped the same way.
func TestSlowHeaders(t *testing.T) {
	srv := testenv.StartLimited(t, t.TempDir(), coordinator.Config{}, coordinator.ServerLimits{ReadHeaderTimeout: 300 * time.Millisecond})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "slow-headers", 3))
	sc.Submit(t, "publisher")

	conn := rawTLS(t, sc, "publisher")
	if _, err := io.WriteString(conn, "GET /v1/health HTTP/1.1\r\nHost: coordinator\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	expectClosedByServer(t, conn, "half-sent headers")

	raw, err := net.DialTimeout("tcp", strings.TrimPrefix(sc.URL, "https://"), guard)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	expectClosedByServer(t, raw, "no TLS handshake")

	// A prompt client is served.
	conn = rawTLS(t, sc, "publisher")
	io.WriteString(conn, "GET /v1/health HTTP/1.1\r\nHost: coordinator\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(guard))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a prompt request: %v %v", resp, err)
	}
}

// expectClosedByServer reads from c until the server closes it; it fails
// if the test's own guard deadline fires first.
func expectClosedByServer(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(guard))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server kept the connection open for %s", what, guard)
	}
}

// TestLimitListener checks the connection limit on a bare listener: with a
// limit of 2, a third connection waits until one of the first two closes,
// each connection frees its slot once however often it is closed, and
// closing the listener ends an Accept waiting for a slot.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := coordinator.LimitListener(inner, 2)
	defer ln.Close()
	for range 4 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted while two were open")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	first.Close() // a second Close must not free a second slot
	var third net.Conn
	select {
	case third = <-accepted:
	case <-time.After(guard):
		t.Fatal("closing a connection did not let the waiting one in")
	}
	if third == nil {
		t.Fatal("Accept failed")
	}
	// Two open again (the second and the third): the fourth waits, and
	// closing the listener ends that wait.
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
			c = nil
		}
		accepted <- c
	}()
	select {
	case <-accepted:
		t.Fatal("a fourth connection was accepted (a double Close freed two slots?)")
	case <-time.After(200 * time.Millisecond):
	}
	ln.Close()
	select {
	case <-accepted:
	case <-time.After(guard):
		t.Fatal("closing the listener did not end an Accept waiting for a slot")
	}
}

// TestMaxConnections serves the coordinator with a limit of two
// connections: while two clients hold theirs open, a third client's
// request waits; it is served as soon as one of them closes.
func TestMaxConnections(t *testing.T) {
	srv := testenv.StartLimited(t, t.TempDir(), coordinator.Config{}, coordinator.ServerLimits{MaxConnections: 2, MaxConnectionsPerHost: 2})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "max-connections", 3))
	// Registered in process: a client's idle connection would hold a slot.
	if _, err := srv.Coord.SubmitContract(context.Background(), sc.Party("publisher").Identity.Public().SigningKey(), sc.Text, sc.Sigs); err != nil {
		t.Fatal(err)
	}

	held := []*tls.Conn{rawTLS(t, sc, "publisher"), rawTLS(t, sc, "advertiser")}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		_, err := sc.Client(t, "auditor").Status(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a third connection was served while two were held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	held[0].Close()
	if err := <-done; err != nil {
		t.Fatalf("the waiting request after a connection closed: %v", err)
	}
}

// TestHostileArrowMetadata uploads authentic envelopes whose plaintext is
// each Arrow stream the fuzzers found crashing the decoder (kept in
// testdata/fuzz/FuzzDecodeArrowStream; one claims billions of schema
// fields): each upload is refused, the coordinator stays up, and the
// honest upload then goes through.
func TestHostileArrowMetadata(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "hostile-arrow", 3))
	sc.Submit(t, "publisher")
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecodeArrowStream", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fuzz findings to replay: %v", err)
	}
	for _, f := range files {
		plain := fuzzBytes(t, f)
		before := sc.LogSize()
		_, err := sc.Upload(t, "publisher", "impressions", sealRaw(t, sc, "publisher", "impressions", plain, 1))
		expectRefusal(t, f, err, http.StatusUnprocessableEntity, "Arrow")
		if sc.LogSize() != before {
			t.Errorf("%s: the log changed", f)
		}
	}
	if _, err := sc.Client(t, "").Health(context.Background()); err != nil {
		t.Fatalf("after hostile Arrow metadata: %v", err)
	}
	sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
}

// fuzzBytes reads the single []byte value of a go test fuzz corpus file.
func fuzzBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s is not a one-value []byte corpus file", path)
	}
	v, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(v)
}

// httpClient is an attested HTTP client acting as party id.
func httpClient(t *testing.T, sc *testenv.Scenario, id string) *http.Client {
	t.Helper()
	hc, err := atls.NewHTTPClient(atls.ClientOptions{Policy: &sc.Contract.Coordinator, Identity: sc.Party(id).Identity})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// TestMaxConnectionsPerHost checks that one client address cannot hold
// every connection slot: past MaxConnectionsPerHost its further
// connections are closed at once, while slots remain for others.
func TestMaxConnectionsPerHost(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	ln := coordinator.ServerLimits{MaxConnections: 8, MaxConnectionsPerHost: 2}.Apply(srv, inner)
	go srv.Serve(ln)
	defer srv.Close()
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Let the server accept the two.
	time.Sleep(100 * time.Millisecond)
	extra, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection from the same host was kept open: %v", err)
	}
	// Closing one frees its place.
	held[0].Close()
	held = held[1:]
	time.Sleep(100 * time.Millisecond)
	again, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	again.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := again.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after one closed, a new connection was refused: %v", err)
	}
}
