package coordinator_test

import (
	"bytes"
	"context"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// observed is everything one party, or the operator, can read: byte strings
// gathered from API answers, log entries, files and logs, with every
// base64 string inside JSON decoded too (signed statements travel so).
type observed struct {
	blobs [][]byte
}

func (o *observed) add(b []byte) {
	o.blobs = append(o.blobs, bytes.Clone(b))
	var v any
	if json.Unmarshal(b, &v) == nil {
		o.addStrings(v)
	}
}

// addStrings adds the base64 decoding of every string in a JSON value.
func (o *observed) addStrings(v any) {
	switch v := v.(type) {
	case string:
		if d, err := base64.StdEncoding.DecodeString(v); err == nil && len(d) > 0 {
			o.blobs = append(o.blobs, d)
		}
	case []any:
		for _, e := range v {
			o.addStrings(e)
		}
	case map[string]any:
		for _, e := range v {
			o.addStrings(e)
		}
	}
}

func (o *observed) addJSON(t *testing.T, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	o.add(b)
}

// addDir adds every file under dir.
func (o *observed) addDir(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		o.add(b)
		n++
		return err
	})
	if err != nil || n == 0 {
		t.Fatalf("reading %s: %v (%d files)", dir, err, n)
	}
}

// matches reports where a digest appears in what was observed: raw, or
// as hex in either case.
func (o *observed) matches(d [32]byte) bool {
	hexd := []byte(hex.EncodeToString(d[:]))
	upper := bytes.ToUpper(hexd)
	for _, b := range o.blobs {
		if bytes.Contains(b, d[:]) || bytes.Contains(b, hexd) || bytes.Contains(b, upper) {
			return true
		}
	}
	return false
}

func (o *observed) contains(s string) bool {
	for _, b := range o.blobs {
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// logEntries reads every entry of the coordinator's log as an auditor
// does: over attested TLS, under a checkpoint verified with the attested
// key and covering every event.
func logEntries(t *testing.T, sc *testenv.Scenario, auditor string) [][]byte {
	t.Helper()
	ctx := context.Background()
	fetch := sc.Client(t, auditor).LogFetcher()
	v, err := tlog.NewCoordinatorVerifier(sc.Coordinator.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	want := sc.LogSize()
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := fetch(ctx, "checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		cp, err := v.VerifyCheckpoint(raw)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size() >= want {
			entries, err := tlog.VerifyEntries(ctx, fetch, cp)
			if err != nil {
				t.Fatal(err)
			}
			return entries
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %d entries after 10 s", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// observeAll gathers what the parties in who, the auditor's log and the
// operator (data directory, daemon log, metrics) can read about run runID.
func observeAll(t *testing.T, srv *testenv.Server, sc *testenv.Scenario, runID string, who ...string) *observed {
	t.Helper()
	ctx := context.Background()
	o := &observed{}
	for _, p := range who {
		cl := sc.Client(t, p)
		rs, err := cl.RunStatus(ctx, runID)
		if err != nil {
			t.Fatal(err)
		}
		o.addJSON(t, rs)
		st, err := cl.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		o.addJSON(t, st)
		if v, err := cl.Algorithm(ctx); err == nil {
			o.addJSON(t, v)
		}
	}
	for _, e := range logEntries(t, sc, "auditor") {
		o.add(e)
	}
	o.add(sc.Text)
	o.addDir(t, srv.Dir)
	o.add([]byte(srv.Logs.String()))
	hc, err := atls.NewHTTPClient(atls.ClientOptions{Policy: &sc.Contract.Coordinator})
	if err != nil {
		t.Fatal(err)
	}
	status, metrics := call(t, hc, sc.URL, http.MethodGet, "/metrics", nil)
	if status == http.StatusOK {
		o.add(metrics)
	}
	return o
}

// oneRowResults returns the Arrow IPC streams of every one-row result with
// plain's schema (one int64 column) and a value in 0..n-1, encoded as the
// coordinator encodes results.
func oneRowResults(t *testing.T, plain []byte, n int64) [][]byte {
	t.Helper()
	r, err := ipc.NewReader(bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	schema := r.Schema()
	r.Release()
	if schema.NumFields() != 1 {
		t.Fatalf("the result has schema %s, want one column", schema)
	}
	out := make([][]byte, n)
	for v := range n {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		b.Field(0).(*array.Int64Builder).Append(v)
		rec := b.NewRecordBatch()
		var buf bytes.Buffer
		w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		b.Release()
		out[v] = buf.Bytes()
	}
	return out
}

// TestNonRecipientCannotGuessResult reproduces the brute force of a small
// result by a participant who does not receive it: a one-row, one-number
// result, every candidate value encoded exactly as the coordinator encodes
// results, and every digest compared with everything the publisher and the
// algorithm provider (not recipients), the auditor's log and the operator
// (data directory, daemon log, metrics) can read. With the unsalted
// result_sha256 of the first format the true result's digest was among
// them (the run status, run.finished and the operator's log files named
// it); with the salted commitment none is, and the commitment opens only
// with the salt the recipient finds inside the encrypted result.
func TestNonRecipientCannotGuessResult(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	spec := testenv.AdSpec(t, "guess-result", 1)
	spec.Query = "SELECT count(DISTINCT i.user_id) AS users FROM impressions i JOIN conversions c USING (user_id)"
	sc := testenv.New(t, srv, spec)
	prepare(t, sc, testenv.ImpressionsCSV)
	ctx := context.Background()
	rs, err := sc.Client(t, "advertiser").Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What the recipient learns: the plaintext and the salt.
	data, err := sc.Client(t, "advertiser").ResultBundle(ctx, rs.RunID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	report, err := bundle.Verify(b, sc.Contract, bundle.VerifyOptions{Recipient: sc.Party("advertiser").Identity})
	if err != nil {
		t.Fatal(err)
	}
	plain := report.Result
	if got := bundle.CommitResult(report.ResultSalt, plain); hex.EncodeToString(got[:]) != rs.ResultCommitment {
		t.Fatalf("the run status names commitment %s; the recipient computes %x", rs.ResultCommitment, got)
	}

	// The guesses: every one-row result 0..9999. The enumeration
	// reproduces the true result byte for byte (4 users), so an unsalted
	// digest of it would be found.
	candidates := oneRowResults(t, plain, 10_000)
	if !bytes.Equal(candidates[4], plain) {
		t.Fatalf("the candidate for 4 users (%d bytes) is not the result (%d bytes): the brute force would prove nothing", len(candidates[4]), len(plain))
	}
	o := observeAll(t, srv, sc, rs.RunID, "publisher", "measurer", "auditor")
	if !o.contains(rs.ResultCommitment) {
		t.Fatal("the observations do not even hold the public commitment: they are incomplete")
	}
	for v, c := range candidates {
		if o.matches(sha256.Sum256(c)) {
			t.Fatalf("a non-recipient confirms the result is %d users: its SHA-256 is in what it can read", v)
		}
		// Nor does any salt the observer could guess open the commitment.
		for _, salt := range []cleanroom.Salt{{}, cleanroom.NewSalt()} {
			if o.matches(bundle.CommitResult(salt, c)) {
				t.Fatalf("the commitment opens with a guessed salt for %d users", v)
			}
		}
	}
}

// confidentialSpec is a contract whose algorithm is confidential; query
// comes from a template a competitor could guess.
func confidentialSpec(t *testing.T, name, query string, maxRuns int) *testenv.Spec {
	spec := protect(testenv.AdSpec(t, name, maxRuns))
	spec.Confidential = true
	spec.Query = query
	return spec
}

// algorithmTemplate is a family of plausible queries: which aggregate of
// the conversions' value, above which threshold.
func algorithmTemplate(agg string, threshold int) string {
	return fmt.Sprintf("SELECT i.campaign, count(DISTINCT i.user_id) AS users, %s(c.value) AS revenue "+
		"FROM impressions i JOIN conversions c USING (user_id) WHERE c.value > %d GROUP BY i.campaign ORDER BY i.campaign", agg, threshold)
}

// TestConfidentialAlgorithmGuess reproduces the template guess of a
// confidential algorithm: 4 000 queries of one template, the true one among
// them, each hashed and compared with everything the other participants
// (the result recipient's bundle included), the auditor's log and the
// operator can read. With the plain SHA-256 in the contract the true query
// was confirmed at once; with the salted commitment no guess is, and the
// commitment opens only with the salt the provider kept and sent sealed to
// the coordinator.
func TestConfidentialAlgorithmGuess(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	secret := algorithmTemplate("sum", 5)
	spec := confidentialSpec(t, "guess-algorithm", secret, 1)
	sc := testenv.New(t, srv, spec)
	prepare(t, sc, testenv.ImpressionsCSV)
	ctx := context.Background()
	rs, err := sc.Client(t, "advertiser").Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o := observeAll(t, srv, sc, rs.RunID, "publisher", "advertiser", "auditor")
	data, err := sc.Client(t, "advertiser").ResultBundle(ctx, rs.RunID)
	if err != nil {
		t.Fatal(err)
	}
	o.add(data)
	b, err := bundle.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	o.add(b.Statement)

	var guesses []string
	for _, agg := range []string{"sum", "avg", "max", "min"} {
		for threshold := range 1000 {
			guesses = append(guesses, algorithmTemplate(agg, threshold))
		}
	}
	found := false
	for _, g := range guesses {
		found = found || g == secret
		if o.matches(sha256.Sum256([]byte(g))) {
			t.Fatalf("a template guess is confirmed by what others can read: %q", g)
		}
		if o.matches(cleanroom.CommitAlgorithm(cleanroom.Salt{}, []byte(g))) {
			t.Fatalf("a template guess opens the commitment with a guessed salt: %q", g)
		}
	}
	if !found {
		t.Fatal("the true query is not among the guesses: the test would prove nothing")
	}
	// The contract names the commitment, which opens with the provider's
	// salt and no other.
	if sc.Contract.Algorithm.SHA256 == sha256.Sum256([]byte(secret)) {
		t.Fatal("the contract names the plain SHA-256 of the confidential query")
	}
	if err := sc.Contract.Algorithm.Check([]byte(secret), spec.AlgorithmSalt()); err != nil {
		t.Fatalf("the commitment does not open with the provider's salt: %v", err)
	}
	other := cleanroom.NewSalt()
	if err := sc.Contract.Algorithm.Check([]byte(secret), &other); err == nil {
		t.Fatal("the commitment opens with another salt")
	}
	if !o.contains(hex.EncodeToString(sc.Contract.Algorithm.SHA256[:])) {
		t.Fatal("the observations do not even hold the contract's commitment: they are incomplete")
	}
}

// TestConfidentialAlgorithmPlainDigestRefused checks that a confidential
// algorithm whose contract names the plain SHA-256 of its text (a contract
// that lets anyone confirm a guess of it) is not accepted, with a message
// that says what to do, and that the old sealed format is refused by name.
func TestConfidentialAlgorithmPlainDigestRefused(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	spec := confidentialSpec(t, "plain-digest", algorithmTemplate("sum", 5), 1)
	spec.InsecurePlainDigest = true
	sc := testenv.New(t, srv, spec)
	sc.Submit(t, "publisher")
	ctx := context.Background()
	before := sc.LogSize()
	salt := cleanroom.NewSalt()
	// The client refuses it before sending; sent as it is, so does the
	// coordinator.
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(spec.Query), &salt); !errors.Is(err, contracts.ErrAlgorithmMismatch) ||
		!strings.Contains(err.Error(), "algorithm.sha256 is the plain SHA-256 of this confidential algorithm") {
		t.Errorf("the client submitted it: %v", err)
	}
	sealed, err := cleanroom.SealAlgorithm(sc.Coordinator.PublicKey, sc.Contract.ID(), salt, []byte(spec.Query))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(api.SubmitAlgorithmRequest{Sealed: sealed})
	status, resp := call(t, httpClient(t, sc, "measurer"), sc.URL, http.MethodPut, "/v1/contracts/"+sc.Contract.ID().String()+"/algorithm", raw)
	err = apiError(t, status, resp)
	expectRefusal(t, "plain digest", err, 422, "algorithm.sha256 is the plain SHA-256 of this confidential algorithm")
	expectRefusal(t, "plain digest", err, 422, "cleanroom algorithm commit")

	// The first sealed format (the text alone) is refused by name.
	old := oldSealedAlgorithm(t, sc.Coordinator.PublicKey, sc.Contract.ID(), []byte(spec.Query))
	hc := httpClient(t, sc, "measurer")
	body, _ := json.Marshal(map[string][]byte{"sealed": old})
	status, resp = call(t, hc, sc.URL, http.MethodPut, "/v1/contracts/"+sc.Contract.ID().String()+"/algorithm", body)
	if status != http.StatusUnprocessableEntity || !strings.Contains(string(resp), "old format v1") || !strings.Contains(string(resp), "--salt") {
		t.Fatalf("the v1 sealed format: %d %s", status, resp)
	}
	if sc.LogSize() != before {
		t.Fatal("a refused algorithm changed the log")
	}
}

// TestConfidentialRefusalReasonIsPrivate reproduces the policy refusal that
// published a confidential algorithm's output column names: the engine's
// reason names a result column (here one that holds a nested value, which
// mode aggregate refuses; in mode custom, the result's columns when the
// group_size_column is missing). The run.refused event, the run status the others read,
// the refusal a recipient who started the run gets, the daemon's log, the
// metrics and the data directory carry only a generic reason; the provider
// reads the full one (sealed to its key in the event, in its run status
// and in the refusal of its own run), also after a restart. An algorithm
// that is not confidential keeps its reasons public.
func TestConfidentialRefusalReasonIsPrivate(t *testing.T) {
	const query = "SELECT [i.campaign] AS secret_campaign_column, count(DISTINCT i.user_id) AS secret_count_column " +
		"FROM impressions i JOIN conversions c USING (user_id) GROUP BY i.campaign"
	ctx := context.Background()

	t.Run("confidential", func(t *testing.T) {
		dir := t.TempDir()
		srv := testenv.Start(t, dir, coordinator.Config{})
		sc := testenv.New(t, srv, confidentialSpec(t, "private-reason", query, 2))
		prepare(t, sc, testenv.ImpressionsCSV)

		_, err := sc.Client(t, "advertiser").Run(ctx)
		expectRefusal(t, "recipient's run", err, 422, "refused (policy): the confidential algorithm's result was refused by the output policy")
		expectRefusal(t, "recipient's run", err, 422, "sealed to its provider measurer")
		if strings.Contains(err.Error(), "secret_") {
			t.Fatalf("the recipient's refusal names the algorithm's columns: %v", err)
		}
		_, err = sc.Client(t, "measurer").Run(ctx)
		expectRefusal(t, "provider's run", err, 422, `the result column "secret_campaign_column" has the nested type`)

		st, err := sc.Client(t, "auditor").Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range st.Runs {
			o := observeAll(t, srv, sc, r.RunID, "publisher", "advertiser", "auditor")
			if o.contains("secret_campaign_column") || o.contains("secret_count_column") {
				t.Fatal("a party other than the provider, the auditor's log or the operator reads the algorithm's column names")
			}
		}
		var refused []*events.RunRefused
		for _, e := range logEntries(t, sc, "auditor") {
			ev, err := events.Decode(e)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type == events.TypeRunRefused {
				refused = append(refused, ev.RunRefused)
			}
		}
		if len(refused) != 2 {
			t.Fatalf("%d run.refused events, want 2", len(refused))
		}
		for _, r := range refused {
			if r.Stage != "policy" || len(r.SealedReason) == 0 || !strings.Contains(r.Reason, "sealed to its provider measurer") {
				t.Fatalf("run.refused: %+v", r)
			}
			// Only the provider's key opens it.
			for _, p := range []string{"publisher", "advertiser", "auditor"} {
				if _, err := cleanroom.OpenReason(sc.Party(p).Identity, sc.Contract.ID(), r.RunID, r.SealedReason); err == nil {
					t.Fatalf("%s opens the sealed reason", p)
				}
			}
		}

		providerReads := func(sc *testenv.Scenario) {
			t.Helper()
			for _, r := range refused {
				rs, err := sc.Client(t, "measurer").RunStatus(ctx, r.RunID)
				if err != nil {
					t.Fatal(err)
				}
				full, err := sc.Client(t, "measurer").PrivateReason(rs)
				if err != nil || !strings.Contains(full, `the result column "secret_campaign_column" has the nested type`) {
					t.Fatalf("the provider reads %q, %v", full, err)
				}
				for _, p := range []string{"publisher", "advertiser", "auditor"} {
					rs, err := sc.Client(t, p).RunStatus(ctx, r.RunID)
					if err != nil || rs.SealedReason != nil || rs.Reason != r.Reason {
						t.Fatalf("%s reads %+v, %v", p, rs, err)
					}
				}
			}
		}
		providerReads(sc)
		// The reason lives in the log: a restarted coordinator still has it.
		srv.Stop()
		srv = testenv.Start(t, dir, coordinator.Config{})
		sc.URL, sc.Server = srv.URL, srv
		providerReads(sc)
	})

	t.Run("not confidential", func(t *testing.T) {
		srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
		spec := testenv.AdSpec(t, "public-reason", 1)
		spec.Query = query
		sc := testenv.New(t, srv, spec)
		prepare(t, sc, testenv.ImpressionsCSV)
		_, err := sc.Client(t, "advertiser").Run(ctx)
		expectRefusal(t, "public algorithm", err, 422, "secret_campaign_column")
		st, err := sc.Client(t, "publisher").Status(ctx)
		if err != nil || !strings.Contains(st.Runs[0].Reason, "secret_campaign_column") || st.Runs[0].SealedReason != nil {
			t.Fatalf("status %+v, %v", st.Runs, err)
		}
	})
}

// oldSealedAlgorithm seals text as the first format did: the text alone,
// HPKE info "cleanroom-algorithm-v1" ‖ 0x00 ‖ contract id.
func oldSealedAlgorithm(t *testing.T, coord *cleanroom.PublicKey, cid [32]byte, text []byte) []byte {
	t.Helper()
	sealed, err := hpke.Seal(coord.HPKE(), hpke.HKDFSHA256(), hpke.AES256GCM(), append([]byte("cleanroom-algorithm-v1\x00"), cid[:]...), text)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}
