package coordinator_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/coordinator/internal/eventlog"
	"cleanroom.dev/cleanroom/coordinator/internal/tee"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// secretSpec is a contract whose names appear nowhere else: whatever of
// them reaches a stranger is a leak.
func secretSpec(t testing.TB) *testenv.Spec {
	sp := testenv.AdSpec(t, "zeta-secret-merger", 3)
	for _, p := range sp.Parties {
		p.ID = "zeta-" + p.ID
	}
	sp.Datasets[0].Provider, sp.Datasets[1].Provider = "zeta-publisher", "zeta-advertiser"
	sp.AlgorithmBy, sp.Recipients = "zeta-measurer", []string{"zeta-advertiser"}
	return sp
}

// strangerSpec is a throw-away contract in which one key holds every role,
// signed by itself and pinning the coordinator's measurement and simulated
// root, as anyone can make.
func strangerSpec(t testing.TB) *testenv.Spec {
	return &testenv.Spec{
		Name: "throw-away",
		Parties: []*testenv.Party{testenv.NewParty(t, "stranger",
			contracts.RoleDataProvider, contracts.RoleAlgorithmProvider, contracts.RoleResultRecipient, contracts.RoleAuditor)},
		Datasets:    []testenv.Dataset{{ID: "samples", Provider: "stranger", Columns: "[{name: k, type: int64}]"}},
		Query:       "SELECT count(*) AS n FROM samples",
		AlgorithmBy: "stranger", Recipients: []string{"stranger"},
		MaxRows: 10, MaxRuns: 1,
	}
}

var saltField = regexp.MustCompile(`"salt":"[0-9a-f]{64}"`)

// TestStrangerLearnsNothing: a stranger who registers a self-made contract
// (every role its own, signed by itself, pinning this coordinator) becomes
// an auditor of that contract only. Through the log API — checkpoint, hash
// tiles, entry bundles, the whole-log path of old — and every other
// endpoint it reads nothing of another contract's events: no name, id,
// digest, participant or salt, and no answer that differs from one about a
// contract that does not exist. Holding every leaf hash of the log, it
// cannot confirm a guess of another contract's event, even one right in
// every field but the salt it was never shown.
func TestStrangerLearnsNothing(t *testing.T) {
	ctx := context.Background()
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	a := testenv.New(t, srv, secretSpec(t))
	a.Submit(t, "zeta-publisher")
	a.MustUpload(t, "zeta-publisher", "impressions", testenv.ImpressionsCSV)
	a.MustUpload(t, "zeta-advertiser", "conversions", testenv.ConversionsCSV)
	if _, err := a.Client(t, "zeta-measurer").SubmitAlgorithm(ctx, []byte(a.Spec.Query), nil); err != nil {
		t.Fatal(err)
	}
	run, err := a.Client(t, "zeta-advertiser").Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := testenv.New(t, srv, strangerSpec(t))
	b.Submit(t, "stranger")
	// A acts after the stranger arrived, so its events sit among the
	// stranger's in the log.
	if _, err := a.Client(t, "zeta-advertiser").Result(ctx, run.RunID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client(t, "zeta-advertiser").Run(ctx); err != nil {
		t.Fatal(err)
	}
	b.MustUpload(t, "stranger", "samples", "k\n1\n2\n")
	size := a.LogSize()

	// A's events as the log on the coordinator's disk holds them: what
	// must not reach the stranger.
	aid := a.Contract.ID().String()
	aEntries := contractEntries(t, srv, size, aid)
	if len(aEntries) != 9 { // registered, 2 uploads, algorithm, 2 runs started and finished, 1 fetch
		t.Fatalf("A's auditor was shown %d of A's events", len(aEntries))
	}
	needles := secretsOf(t, a, aEntries)

	// Everything the stranger can fetch.
	stranger := partyHTTP(t, b, "stranger")
	bid := b.Contract.ID().String()
	var seen [][]byte
	get := func(method, path string, body []byte) (int, []byte) {
		status, resp := call(t, stranger, srv.URL, method, path, body)
		seen = append(seen, resp)
		return status, resp
	}
	var tiles []byte // every level-0 hash the stranger could read
	for _, root := range []string{"/v1/log/", "/v1/contracts/" + bid + "/log/"} {
		if status, _ := get("GET", root+"checkpoint", nil); status != http.StatusOK {
			continue
		}
		for k := uint64(0); k*256 < size; k++ {
			_, bundle := get("GET", root+resourcePath("entries", k, size), nil)
			if status, tile := get("GET", root+resourcePath("0", k, size), nil); status == http.StatusOK {
				tiles = append(tiles, tile...)
			}
			for _, e := range splitBundle(bundle) {
				if len(e) > 0 && !bytes.Contains(e, []byte(`"contract":"`+bid+`"`)) && !bytes.Contains(e, []byte(`"coordinator.started"`)) {
					t.Errorf("the stranger's view of the log shows an event of another contract: %.120s…", e)
				}
			}
		}
		get("GET", root+"head/"+strconv.FormatUint(size, 10), nil)
	}
	for _, p := range []string{"/v1/health", "/metrics", "/v1/identity", "/v1/contracts/" + bid} {
		get("GET", p, nil)
	}
	get("POST", "/v1/attestation", []byte(`{"nonce":"0011"}`))

	// About A, the stranger gets exactly what it gets about a contract that
	// does not exist (the test even tells it A's id and A's run id, which
	// it could not know; the answers only echo them).
	nobody, noRun := randomHex(t, 32), randomHex(t, 16)
	same := func(method, path, other string, body []byte, secret, stand string) {
		t.Helper()
		sa, ba := call(t, stranger, srv.URL, method, path, body)
		sn, bn := call(t, stranger, srv.URL, method, other, body)
		ba = bytes.ReplaceAll(ba, []byte(secret), []byte(stand))
		seen = append(seen, ba)
		if sa != sn || !bytes.Equal(ba, bn) {
			t.Errorf("%s %s: %d %s\nbut about nothing: %d %s", method, path, sa, ba, sn, bn)
		}
	}
	for _, r := range []struct{ method, path string }{
		{"GET", ""}, {"GET", "/algorithm"}, {"PUT", "/algorithm"}, {"POST", "/runs"}, {"GET", "/runs/" + run.RunID},
		{"GET", "/runs/" + run.RunID + "/result"}, {"GET", "/log/checkpoint"}, {"GET", "/log/tile/0/000.p/1"},
		{"GET", "/log/tile/entries/000.p/1"}, {"GET", "/log/head/1"},
	} {
		var body []byte
		if r.method == "PUT" {
			body = []byte(`{"text":"SELECT 1"}`)
		}
		same(r.method, "/v1/contracts/"+aid+r.path, "/v1/contracts/"+nobody+r.path, body, aid, nobody)
	}
	// Nor is A's run one of the stranger's own contract.
	same("GET", "/v1/contracts/"+bid+"/runs/"+run.RunID, "/v1/contracts/"+bid+"/runs/"+noRun, nil, run.RunID, noRun)

	all := bytes.Join(seen, []byte("\n"))
	for _, n := range needles {
		if i := bytes.Index(all, []byte(n)); i >= 0 {
			t.Errorf("the stranger read %q of contract A: …%s…", n, all[max(0, i-80):min(len(all), i+80)])
		}
	}

	// The stranger holds A's leaf hashes, but a guess of an A event right
	// in everything except the salt hashes to none of them.
	leaves := map[[32]byte]bool{}
	for i := 0; i+32 <= len(tiles); i += 32 {
		leaves[[32]byte(tiles[i:i+32])] = true
	}
	if len(leaves) == 0 {
		t.Fatal("the stranger could read no hash tile: the log's consistency could not be checked")
	}
	for _, e := range aEntries {
		if !leaves[leafHash(e)] {
			t.Fatalf("A's event is not among the leaves the stranger holds: %.80s", e)
		}
		guess := saltField.ReplaceAll(e, []byte(`"salt":"`+randomHex(t, 32)+`"`))
		if leaves[leafHash(guess)] {
			t.Errorf("the stranger confirms a guess of A's event from the leaf hashes: %.120s…", guess)
		}
	}
}

// partyHTTP returns an attested HTTP client acting as party id of sc.
func partyHTTP(t *testing.T, sc *testenv.Scenario, id string) *http.Client {
	t.Helper()
	hc, err := atls.NewHTTPClient(atls.ClientOptions{Policy: &sc.Contract.Coordinator, Identity: sc.Party(id).Identity})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// contractEntries reads the log on srv's disk, verified, once a checkpoint
// covers size entries, and returns the entries of contract cid.
func contractEntries(t *testing.T, srv *testenv.Server, size uint64, cid string) [][]byte {
	t.Helper()
	ctx := context.Background()
	cp, err := srv.Coord.Log().WaitCheckpoint(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	all, err := tlog.VerifyEntries(ctx, tlog.DirFetcher(filepath.Join(srv.Dir, "log")), cp)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range all {
		if bytes.Contains(e, []byte(`"contract":"`+cid+`"`)) {
			out = append(out, e)
		}
	}
	return out
}

// resourcePath names tile (level or "entries") k of a tree of size entries.
func resourcePath(level string, k, size uint64) string {
	p := fmt.Sprintf("tile/%s/%03d", level, k)
	if w := size - k*256; w < 256 {
		p += fmt.Sprintf(".p/%d", w)
	}
	return p
}

func splitBundle(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 2 {
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			break
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

// secretsOf lists what a stranger must not learn of contract sc: its name,
// id, participants and datasets, and every id, salt and digest in its
// events.
func secretsOf(t *testing.T, sc *testenv.Scenario, entries [][]byte) []string {
	t.Helper()
	out := []string{sc.Contract.Name, sc.Contract.ID().String(), "impressions", "conversions"}
	for _, p := range sc.Spec.Parties {
		out = append(out, p.ID, p.Identity.Public().Fingerprint().String())
	}
	hexValue := regexp.MustCompile(`"([0-9a-f]{32,})"`)
	for _, e := range entries {
		var v map[string]any
		if err := json.Unmarshal(e, &v); err != nil {
			t.Fatalf("A's entry is no JSON: %v", err)
		}
		for _, m := range hexValue.FindAllSubmatch(e, -1) {
			out = append(out, string(m[1]))
		}
	}
	return out
}

func leafHash(e []byte) [32]byte { return sha256.Sum256(append([]byte{0}, e...)) }

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestVersion1LogRefused: a data directory whose log holds events of the
// format before contract isolation (no salt, seq or prev) is refused at
// start with a message that says what to do, and left as it was.
func TestVersion1LogRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	inst, err := tee.OpenOrInit(dir, tee.ModeSimulated)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := eventlog.Open(filepath.Join(dir, "log"), inst.Identity().Signer(), tlog.Origin(inst.PublicKey()), nil)
	if err != nil {
		t.Fatal(err)
	}
	v1 := fmt.Sprintf(`{"v":1,"id":"00112233445566778899aabbccddeeff","type":"coordinator.started","time":"2026-11-25T12:00:00Z",`+
		`"coordinator_started":{"platform":"sev-snp-simulated","measurement":"%x","public_key":"%s","evidence_sha256":"%s","software":"old"}}`,
		inst.Measurement(), inst.PublicKey().Fingerprint(), randomHex(t, 32))
	if _, err := lg.Append(ctx, []byte(v1)); err != nil {
		t.Fatal(err)
	}
	if err := lg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = coordinator.Open(ctx, coordinator.Config{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "log entry 0") || !strings.Contains(err.Error(), "event format version 1") ||
		!strings.Contains(err.Error(), "new data directory") {
		t.Fatalf("a version-1 log: %v", err)
	}
	lg, err = eventlog.Open(filepath.Join(dir, "log"), inst.Identity().Signer(), tlog.Origin(inst.PublicKey()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(ctx)
	if n, err := lg.Size(ctx); err != nil || n != 1 {
		t.Fatalf("the refused log now has %d entries (%v)", n, err)
	}
}
