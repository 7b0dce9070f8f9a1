package coordinator_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// apiRoutes are the requests FuzzAPI sends: every POST and PUT endpoint
// with a fuzzed body, and the GET endpoints whose path parameters come from
// the client. The index is the fuzzer's route byte modulo the length.
var apiRoutes = []struct {
	method, pattern string
	changes         bool // a 2xx answer may append to the log
}{
	{"POST", "/v1/attestation", false},
	{"POST", "/v1/contracts", true},
	{"PUT", "/v1/contracts/{cid}/datasets/{param}", true},
	{"PUT", "/v1/contracts/{cid}/algorithm", true},
	{"POST", "/v1/contracts/{cid}/runs", true},
	{"GET", "/v1/contracts/{param}", false},
	{"GET", "/v1/contracts/{cid}/runs/{param}", false},
	{"GET", "/v1/contracts/{cid}/runs/{param}/result", true},
	{"GET", "/v1/log/{raw}", false},
}

// apiFixture is a real coordinator on a temporary directory with two
// registered contracts between the same parties: "a" (algorithm in the
// clear) and "b" (confidential algorithm, sent sealed). Nothing is
// uploaded or submitted, so every state-changing request the fuzzer can
// make reaches the checks of its body.
type apiFixture struct {
	coord   *coordinator.Coordinator
	handler http.Handler
	a, b, c *testenv.Scenario // c is not registered
	callers []*tls.ConnectionState
}

func newAPIFixture(f *testing.F) *apiFixture {
	coord, err := coordinator.Open(context.Background(), coordinator.Config{DataDir: f.TempDir(), Attestation: "simulated", CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { coord.Close(context.Background()) })
	fx := &apiFixture{coord: coord, handler: coord.Handler()}
	spec := testenv.AdSpec(f, "fuzz-a", 3)
	fx.a = testenv.NewRemote(f, "", coord.Identity(), spec)
	specB := *spec
	specB.Name, specB.Confidential = "fuzz-b", true
	specB.Datasets = slices.Clone(spec.Datasets)
	protect(&specB) // a confidential algorithm needs mode aggregate
	fx.b = testenv.NewRemote(f, "", coord.Identity(), &specB)
	specC := *spec
	specC.Name = "fuzz-c"
	fx.c = testenv.NewRemote(f, "", coord.Identity(), &specC)
	for _, sc := range []*testenv.Scenario{fx.a, fx.b} {
		key := sc.Party("publisher").Identity.Public().SigningKey()
		if _, err := coord.SubmitContract(context.Background(), key, sc.Text, sc.Sigs); err != nil {
			f.Fatal(err)
		}
	}
	// Callers: anonymous, each party of the contracts, a stranger.
	fx.callers = append(fx.callers, nil)
	for _, p := range spec.Parties {
		fx.callers = append(fx.callers, peerState(p.Identity.Public().SigningKey()))
	}
	stranger, err := cleanroom.GenerateIdentity()
	if err != nil {
		f.Fatal(err)
	}
	fx.callers = append(fx.callers, peerState(stranger.Public().SigningKey()))
	return fx
}

// peerState is the TLS state of a connection whose client proved key, as
// atls.RequestKey reads it.
func peerState(key ed25519.PublicKey) *tls.ConnectionState {
	return &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true,
		PeerCertificates: []*x509.Certificate{{PublicKey: key}}}
}

// who indexes the callers: 0 anonymous, 1 publisher, 2 advertiser,
// 3 measurer, 4 auditor, 5 stranger.
const (
	whoPublisher = 1
	whoMeasurer  = 3
	whoAuditor   = 4
)

// request builds the request of route for contract "a", "b" or, for any
// other cid, that path segment as given.
func (fx *apiFixture) request(route, who uint8, cid, param string, body, trailer []byte) (*http.Request, int) {
	rt := apiRoutes[int(route)%len(apiRoutes)]
	switch cid {
	case "":
		cid = fx.a.Contract.ID().String()
	case "b":
		cid = fx.b.Contract.ID().String()
	}
	path := strings.NewReplacer("{cid}", url.PathEscape(cid), "{param}", url.PathEscape(param), "{raw}", param).Replace(rt.pattern)
	r := httptest.NewRequest(rt.method, "/", bytes.NewReader(body))
	r.URL.Path, r.URL.RawPath, r.RequestURI = path, "", ""
	if rt.method == "GET" {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	if strings.Contains(rt.pattern, "datasets") {
		r.Header.Set("Content-Type", "application/octet-stream")
		if trailer != nil {
			r.Trailer = http.Header{api.UploadStatementTrailer: {base64.StdEncoding.EncodeToString(trailer)}}
		}
	} else if rt.method != "GET" {
		r.Header.Set("Content-Type", "application/json")
	}
	r.TLS = fx.callers[int(who)%len(fx.callers)]
	return r, int(route) % len(apiRoutes)
}

// FuzzAPI sends arbitrary bodies (and path parameters and upload
// statements) from every kind of caller to the coordinator's real handler.
// Invariants: no panic; never a 5xx; an error answer is the documented
// JSON error body; a refused request appends nothing to the audit log (the
// one exception the API documents: a run refused at admission appends its
// run.refused event); the log serves only tlog resources.
func FuzzAPI(f *testing.F) {
	fx := newAPIFixture(f)
	pub := fx.a.Party("publisher").Identity

	// Seeds: each route with a well-formed body that is refused deep in
	// its checks, and malformed variants. None may be accepted: an
	// accepted upload or algorithm would freeze that part of the state.
	contractBody := func(sc *testenv.Scenario, sigs [][]byte) []byte {
		b, _ := json.Marshal(api.SubmitContractRequest{Contract: string(sc.Text), Signatures: sigs})
		return b
	}
	f.Add(uint8(0), uint8(0), "", "", []byte(`{"nonce":"00112233"}`), []byte(nil))
	f.Add(uint8(0), uint8(0), "", "", []byte(`{"nonce":"`+strings.Repeat("ab", 65)+`"}`), []byte(nil))
	f.Add(uint8(1), uint8(whoPublisher), "", "", contractBody(fx.c, fx.c.Sigs[:3]), []byte(nil))
	f.Add(uint8(1), uint8(whoPublisher), "", "", contractBody(fx.c, append(fx.c.Sigs[:3:3], fx.a.Sigs[3])), []byte(nil))
	f.Add(uint8(1), uint8(whoPublisher), "", "", contractBody(fx.a, fx.a.Sigs), []byte(nil))
	f.Add(uint8(1), uint8(whoPublisher), "", "", []byte(`{"contract":"version: 1\n","signatures":["AAAA"]}`), []byte(nil))
	env, stmts := sealedForFuzz(f, fx.a, pub)
	for _, st := range stmts {
		f.Add(uint8(2), uint8(whoPublisher), "", "impressions", env, st)
	}
	f.Add(uint8(2), uint8(whoPublisher), "", "impressions", env[:len(env)-1], stmts[0])
	f.Add(uint8(2), uint8(whoPublisher), "", "impressions", env[:200], []byte(nil))
	f.Add(uint8(2), uint8(whoPublisher), "", "nonexistent", []byte("x"), []byte(nil))
	f.Add(uint8(3), uint8(whoMeasurer), "", "", []byte(`{"text":"SELECT 1 AS users"}`), []byte(nil))
	f.Add(uint8(3), uint8(whoMeasurer), "", "", []byte(`{"text":"SELECT 1","sealed":"AAAA"}`), []byte(nil))
	wrong, err := cleanroom.SealAlgorithm(fx.coord.TEE().PublicKey(), fx.b.Contract.ID(), cleanroom.NewSalt(), []byte("SELECT 2 AS users"))
	if err != nil {
		f.Fatal(err)
	}
	sealedBody, _ := json.Marshal(api.SubmitAlgorithmRequest{Sealed: wrong})
	f.Add(uint8(3), uint8(whoMeasurer), "b", "", sealedBody, []byte(nil))
	f.Add(uint8(3), uint8(whoMeasurer), "b", "", []byte(`{"text":"SELECT 1"}`), []byte(nil))
	f.Add(uint8(4), uint8(whoMeasurer), "", "", []byte(`{}`), []byte(nil))
	f.Add(uint8(4), uint8(whoPublisher), "not-a-contract-id", "", []byte(nil), []byte(nil))
	f.Add(uint8(5), uint8(whoAuditor), "", fx.a.Contract.ID().String(), []byte(nil), []byte(nil))
	f.Add(uint8(6), uint8(whoAuditor), "", "run-1", []byte(nil), []byte(nil))
	f.Add(uint8(7), uint8(2), "", "../../keys", []byte(nil), []byte(nil))
	f.Add(uint8(8), uint8(whoAuditor), "", "checkpoint", []byte(nil), []byte(nil))
	f.Add(uint8(8), uint8(whoAuditor), "", "tile/entries/000.p/1", []byte(nil), []byte(nil))
	f.Add(uint8(8), uint8(whoAuditor), "", "../../identity/sealed.key", []byte(nil), []byte(nil))

	f.Fuzz(func(t *testing.T, route, who uint8, cid, param string, body, trailer []byte) {
		r, idx := fx.request(route, who, cid, param, body, trailer)
		before := fx.coord.State().Size()
		w := httptest.NewRecorder()
		fx.handler.ServeHTTP(w, r)
		after := fx.coord.State().Size()
		rt := apiRoutes[idx]
		what := fmt.Sprintf("%s %s", r.Method, r.URL.Path)
		if w.Code >= 500 {
			t.Fatalf("%s: %d for client input: %s", what, w.Code, w.Body.Bytes())
		}
		ok := w.Code < 300
		switch {
		case after == before:
		case ok && rt.changes:
		case idx == 4 && w.Code == http.StatusUnprocessableEntity && after == before+1 && lastIsAdmissionRefusal(t, fx.coord):
		default:
			t.Fatalf("%s answered %d and the log grew from %d to %d: %s", what, w.Code, before, after, w.Body.Bytes())
		}
		if w.Code >= 400 && rt.pattern != "/v1/log/{raw}" && w.Code != http.StatusMethodNotAllowed {
			var e api.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s: %d with a body that is not a JSON error: %q", what, w.Code, w.Body.Bytes())
			}
		}
		if rt.pattern == "/v1/log/{raw}" && w.Code == http.StatusOK {
			if _, err := tlog.ParseResourcePath(strings.TrimPrefix(r.URL.Path, "/v1/log/")); err != nil {
				t.Fatalf("%s served something that is not a log resource: %v", what, err)
			}
		}
	})
}

// lastIsAdmissionRefusal reports whether the log's last event is a run
// refused at admission.
func lastIsAdmissionRefusal(t *testing.T, coord *coordinator.Coordinator) bool {
	t.Helper()
	var last []byte
	err := coord.Log().Replay(context.Background(), func(_ uint64, entry []byte) error {
		last = entry
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.Decode(last)
	if err != nil {
		t.Fatal(err)
	}
	return e.Type == events.TypeRunRefused && e.RunRefused.Stage == "admission"
}

// sealedForFuzz seals the impressions dataset of sc as the publisher and
// returns the envelope with upload statements that verify as far as
// possible but are each refused: wrong row count, wrong size, signed by
// another participant, and a statement of another type.
func sealedForFuzz(f *testing.F, sc *testenv.Scenario, pub *cleanroom.Identity) ([]byte, [][]byte) {
	d := sc.Contract.Dataset("impressions")
	rr, err := connectors.NewReader(strings.NewReader(testenv.ImpressionsCSV), connectors.FormatCSV, d.Columns, connectors.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer rr.Release()
	var buf bytes.Buffer
	enc, err := upload.Encrypt(&buf, rr, sc.Contract, d.ID, sc.Coordinator.PublicKey, pub, upload.EncryptOptions{})
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	sign := func(st upload.Statement, id *cleanroom.Identity) {
		b, err := st.Sign(id)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	st, err := upload.FromEnvelope(enc.Summary, enc.Rows+1)
	if err != nil {
		f.Fatal(err)
	}
	sign(st, pub)
	st, _ = upload.FromEnvelope(enc.Summary, enc.Rows)
	st.CiphertextSize++
	sign(st, pub)
	st, _ = upload.FromEnvelope(enc.Summary, enc.Rows)
	sign(st, sc.Party("advertiser").Identity)
	other, err := cleanroom.SignStatement(pub, cleanroom.ContentTypeResultStatement, []byte("x"))
	if err != nil {
		f.Fatal(err)
	}
	out = append(out, other)
	return buf.Bytes(), out
}
