package audit_test

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/contracts"
)

// The fixture in testdata/scenario is the log of the shared scenario,
// written by
//
//	go test -tags duckdb_arrow ./cleanroom/audit -run TestWriteFixture -update-fixture
//
// with the contract and the attested coordinator it belongs to, so the
// fuzz targets start from a real, valid log.
var updateFixture = flag.Bool("update-fixture", false, "rewrite testdata/scenario and the fuzz seeds from a fresh scenario")

const fixtureDir = "testdata/scenario"

type fixtureCoordinator struct {
	PublicKey      string `json:"public_key"`
	Platform       string `json:"platform"`
	Measurement    string `json:"measurement"`
	EvidenceSHA256 string `json:"evidence_sha256"`
}

func TestWriteFixture(t *testing.T) {
	if !*updateFixture {
		t.Skip("run with -update-fixture to rewrite the fixture")
	}
	w := getWorld(t)
	if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	fc := fixtureCoordinator{
		PublicKey: w.coord.PublicKey.String(), Platform: string(w.coord.Platform),
		Measurement: hex.EncodeToString(w.coord.Measurement[:]), EvidenceSHA256: hex.EncodeToString(w.coord.EvidenceSHA256[:]),
	}
	cj, _ := json.MarshalIndent(fc, "", "  ")
	bundle := encodeBundle(w.entries)
	files := map[string][]byte{
		filepath.Join(fixtureDir, "contract.yaml"):    w.sc.Text,
		filepath.Join(fixtureDir, "coordinator.json"): append(cj, '\n'),
		filepath.Join(fixtureDir, "entries.bundle"):   bundle,
	}
	seeds := [][]byte{bundle, encodeBundle(w.entries[:4]), w.entries[1], []byte("\x00\x02{}")}
	for i, s := range seeds {
		files[filepath.Join("testdata", "fuzz", "FuzzTimeline", fmt.Sprintf("seed-%03d", i))] = []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s))
	}
	// A state directory's facts from a real audit, for FuzzReadFacts.
	dir := t.TempDir()
	if _, err := audit.Run(t.Context(), w.config(nil), openState(t, dir)); err != nil {
		t.Fatal(err)
	}
	facts, err := os.ReadFile(filepath.Join(dir, audit.FactsFile))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range [][]byte{facts, []byte(`{"format":"cleanroom/audit-state/v2","contracts":{"x":null}}`), []byte(`{}`)} {
		files[filepath.Join("testdata", "fuzz", "FuzzReadFacts", fmt.Sprintf("seed-%03d", i))] = []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s))
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// loadFixture returns the fixture's contract, coordinator and entries.
func loadFixture(t testing.TB) (*contracts.Contract, *audit.Coordinator, [][]byte) {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(fixtureDir, "contract.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := contracts.Parse(text, contracts.ParseOptions{AllowExpired: true})
	if err != nil {
		t.Fatal(err)
	}
	var fc fixtureCoordinator
	cj, err := os.ReadFile(filepath.Join(fixtureDir, "coordinator.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cj, &fc); err != nil {
		t.Fatal(err)
	}
	pub, err := cleanroom.ParsePublicKey(fc.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	co := &audit.Coordinator{PublicKey: pub, Platform: contracts.Platform(fc.Platform)}
	m, _ := hex.DecodeString(fc.Measurement)
	e, _ := hex.DecodeString(fc.EvidenceSHA256)
	copy(co.Measurement[:], m)
	copy(co.EvidenceSHA256[:], e)
	bundle, err := os.ReadFile(filepath.Join(fixtureDir, "entries.bundle"))
	if err != nil {
		t.Fatal(err)
	}
	return c, co, bundleEntries(bundle)
}

// TestFixtureTimeline checks the committed fixture still verifies: the
// event format, contract signatures, upload and result statements it
// carries are checked by the code as it is now.
func TestFixtureTimeline(t *testing.T) {
	c, co, entries := loadFixture(t)
	r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
	audit.CheckTimeline(r, entries, c, co, nil)
	if len(r.Problems) != 0 || len(r.Runs) != 2 || r.Coordinator.EvidenceLoggedAt == nil {
		t.Fatalf("fixture: problems %+v, runs %d", r.Problems, len(r.Runs))
	}
}

// FuzzTimeline checks that no sequence of entries, however malformed, makes
// the timeline checks panic, and that a log with any problem is never
// reported without one.
func FuzzTimeline(f *testing.F) {
	c, co, _ := loadFixture(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := tlog.ParseEntryBundle(data, countEntries(data))
		if err != nil {
			entries = [][]byte{data}
		}
		r := &audit.Report{Problems: []audit.Finding{}, Warnings: []audit.Finding{}}
		audit.CheckTimeline(r, entries, c, co, nil)
		for _, e := range r.Timeline {
			if !e.OK {
				found := false
				for _, p := range r.Problems {
					found = found || (p.Index != nil && *p.Index == e.Index)
				}
				if !found {
					t.Fatalf("entry %d flagged without a problem", e.Index)
				}
			}
		}
	})
}

// countEntries counts the length-prefixed entries of a bundle (best
// effort: ParseEntryBundle checks).
func countEntries(b []byte) int {
	n := 0
	for len(b) >= 2 {
		l := int(b[0])<<8 | int(b[1])
		if len(b) < 2+l {
			return n + 1
		}
		b = b[2+l:]
		n++
	}
	if len(b) != 0 {
		n++
	}
	return n
}

// FuzzReadFacts checks that any state.json either is refused or renders in
// the web view without panicking.
func FuzzReadFacts(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, audit.FactsFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		facts, err := audit.ReadFacts(dir)
		h := audit.Handler(dir, audit.ViewOptions{})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("index page: %d %s", rec.Code, rec.Body)
		}
		if err != nil {
			return
		}
		for id := range facts.Contracts {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/contracts/"+id, nil))
			if rec.Code != http.StatusOK && rec.Code != http.StatusNotFound {
				t.Fatalf("contract page: %d %s", rec.Code, rec.Body)
			}
		}
	})
}
