package coordinator_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
	"cleanroom.dev/cleanroom/internal/wasmtest"
)

// modelQuery calls the model score over the advertiser's conversions.
const modelQuery = "SELECT count(score(c.value)) AS users FROM impressions i JOIN conversions c USING (user_id)"

func modelSpec(t *testing.T, module []byte, salt *cleanroom.Salt) *testenv.Spec {
	spec := testenv.AdSpec(t, "model", 5)
	spec.Query = modelQuery
	spec.Recipients = []string{"advertiser"}
	spec.K = 0
	spec.Models = []testenv.Model{{Name: "score", Provider: "measurer", Args: "[float64]", Result: "float64", Module: module, Salt: salt}}
	return spec
}

// hostile call bodies of raw modules (see coordinator/engine's tests).
var (
	bodyLoop  = []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x41, 0x00}                                     // loop forever
	bodyTrap  = []byte{0x00}                                                                         // unreachable
	bodyGrow  = []byte{0x03, 0x40, 0x41, 0x10, 0x40, 0x00, 0x41, 0x7f, 0x47, 0x0d, 0x00, 0x0b, 0x00} // grow until refused, then trap
	bodyNulls = []byte{0x41, 0x00}                                                                   // all results NULL
	badShape  = []byte{0x20, 0x01, 0x28, 0x02, 0x08, 0x41, 0x02, 0x3a, 0x00, 0x00, 0x41, 0x00}       // validity byte 2
)

// TestHostileModelsFailRunsCleanly runs each hostile module through a real
// coordinator: the run is refused with a reason naming the model and the
// failure but not the detail, the model's provider alone gets the detail,
// and the daemon goes on serving (the next contract runs).
func TestHostileModelsFailRunsCleanly(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{RunTimeout: 3 * time.Second, ModelMemory: 32 << 20, QueryThreads: 2})
	ctx := context.Background()
	for _, tc := range []struct {
		name, want string
		module     []byte
	}{
		{"infinite loop", "ran past the run's deadline", wasmtest.Model(bodyLoop)},
		{"trap", "trapped", wasmtest.Model(bodyTrap)},
		{"memory growth", "exceeded its memory limit", wasmtest.Model(bodyGrow)},
		{"wrong result shape", "returned a result of the wrong shape", wasmtest.Model(badShape)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			salt := newSalt()
			spec := modelSpec(t, tc.module, salt)
			spec.Name = "model-" + strings.ReplaceAll(tc.name, " ", "-")
			sc := testenv.New(t, srv, spec)
			sc.Submit(t, "publisher")
			sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
			sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
			if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(spec.Query), nil); err != nil {
				t.Fatal(err)
			}
			// Runs wait for the model.
			if _, err := sc.Client(t, "advertiser").Run(ctx); err == nil || !strings.Contains(err.Error(), "models not submitted yet: score (from measurer)") {
				t.Fatalf("a run before the model was submitted: %v", err)
			}
			if _, err := sc.Client(t, "measurer").SubmitModel(ctx, "score", tc.module, salt); err != nil {
				t.Fatal(err)
			}
			_, err := sc.Client(t, "advertiser").Run(ctx)
			if err == nil || !strings.Contains(err.Error(), "model score (from measurer) "+tc.want) || strings.Contains(err.Error(), "wasm") {
				t.Fatalf("the recipient's run: %v", err)
			}
			st, err := sc.Client(t, "advertiser").Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			runID := st.Runs[len(st.Runs)-1].RunID
			if rs, err := sc.Client(t, "advertiser").RunStatus(ctx, runID); err != nil || rs.Status != "refused" || rs.SealedReason != nil {
				t.Fatalf("the recipient sees %+v, %v", rs, err)
			}
			rs, err := sc.Client(t, "measurer").RunStatus(ctx, runID)
			if err != nil || rs.SealedReason == nil {
				t.Fatalf("the model's provider sees %+v, %v", rs, err)
			}
			detail, err := cleanroom.OpenReason(sc.Party("measurer").Identity, sc.Contract.ID(), runID, rs.SealedReason)
			if err != nil || !strings.Contains(detail, tc.want+": ") || detail == rs.Reason {
				t.Fatalf("the sealed detail %q, %v", detail, err)
			}
			t.Logf("public: %s; sealed to the provider: %s", rs.Reason, detail)
		})
	}
	// The daemon still runs models.
	salt := newSalt()
	spec := modelSpec(t, wasmtest.Model(bodyNulls), salt)
	spec.Name = "model-after"
	sc := testenv.New(t, srv, spec)
	sc.Submit(t, "publisher")
	sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(spec.Query), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Client(t, "measurer").SubmitModel(ctx, "score", wasmtest.Model(bodyNulls), salt); err != nil {
		t.Fatal(err)
	}
	if rs, err := sc.Client(t, "advertiser").Run(ctx); err != nil || rs.Status != "finished" {
		t.Fatalf("a good model after the hostile ones: %+v, %v", rs, err)
	}
}

// TestModelSubmission checks what the coordinator refuses at submission
// and who may read a confidential model: a module (or salt) that does not
// match the commitment, a module outside the ABI, plain bytes for a
// confidential model, and submissions by anyone but the provider are
// refused; only the provider reads it back; nothing on the coordinator's
// disk holds it.
func TestModelSubmission(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.Start(t, dir, coordinator.Config{})
	// A recognisable module: a long custom name on its memory export would
	// change the ABI, so the marker rides in an export of a spare function.
	module := wasmtest.Model(bodyNulls, func(m *wasmtest.Module) {
		m.Funcs = append(m.Funcs, wasmtest.Func{Export: "secret_weights_marker_7f3a", Results: []byte{wasmtest.I32}, Body: wasmtest.ReturnOne})
	})
	salt := newSalt()
	spec := modelSpec(t, module, salt)
	sc := testenv.New(t, srv, spec)
	sc.Submit(t, "publisher")
	ctx := context.Background()
	cid := sc.Contract.ID().String()
	measurer := sc.Client(t, "measurer")

	other := append(bytes.Clone(module[:len(module)-1]), module[len(module)-1]^1)
	if _, err := measurer.SubmitModel(ctx, "score", other, salt); !isStatus(err, http.StatusUnprocessableEntity) || !errorMentions(err, "commitment of this module with this salt") {
		t.Fatalf("a module that does not match the commitment: %v", err)
	}
	if _, err := measurer.SubmitModel(ctx, "score", module, newSalt()); !isStatus(err, http.StatusUnprocessableEntity) || !errorMentions(err, "commitment of this module with this salt", "salt file") {
		t.Fatalf("the right module with another salt: %v", err)
	}
	hc := httpClient(t, sc, "measurer")
	if status, resp := callCT(t, hc, sc.URL, "/v1/contracts/"+cid+"/models/score", api.ContentTypeWasm, module); status != http.StatusBadRequest || !strings.Contains(string(resp), "confidential") {
		t.Fatalf("plain bytes for a confidential model: %d %s", status, resp)
	}
	if _, err := sc.Client(t, "publisher").SubmitModel(ctx, "score", module, salt); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("the publisher submitting the measurer's model: %v", err)
	}
	if _, err := measurer.SubmitModel(ctx, "nosuch", module, salt); err == nil {
		t.Fatal("a model the contract does not name was accepted")
	}

	// A module whose commitment matches but which imports outside WASI.
	leaky := wasmtest.Model(bodyNulls, func(m *wasmtest.Module) {
		m.Imports = []wasmtest.Import{{Module: "env", Name: "send", Params: []byte{wasmtest.I32}}}
	})
	lsalt := newSalt()
	lspec := modelSpec(t, leaky, lsalt)
	lspec.Name = "leaky"
	lsc := testenv.New(t, srv, lspec)
	lsc.Submit(t, "publisher")
	if _, err := lsc.Client(t, "measurer").SubmitModel(ctx, "score", leaky, lsalt); !isStatus(err, http.StatusUnprocessableEntity) || !strings.Contains(err.Error(), "env.send") {
		t.Fatalf("a module importing env.send: %v", err)
	}

	rec, err := measurer.SubmitModel(ctx, "score", module, salt)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Commitment != fmt.Sprintf("%x", sc.Contract.Models[0].SHA256) {
		t.Fatalf("receipt commitment %s", rec.Commitment)
	}
	// The same module again (a retry): acknowledged with the first
	// receipt, nothing logged.
	size := sc.LogSize()
	again, err := measurer.SubmitModel(ctx, "score", module, salt)
	if err != nil || !again.Already || again.LogIndex != rec.LogIndex || again.Commitment != rec.Commitment || sc.LogSize() != size {
		t.Fatalf("a second submission of the same module: %+v, %v (log %d → %d)", again, err, size, sc.LogSize())
	}
	got, err := measurer.Model(ctx, "score")
	if err != nil || !bytes.Equal(got, module) {
		t.Fatalf("the provider reads back %d bytes, %v", len(got), err)
	}
	for _, p := range []string{"publisher", "advertiser", "auditor"} {
		if b, err := sc.Client(t, p).Model(ctx, "score"); !isStatus(err, http.StatusForbidden) || b != nil {
			t.Fatalf("%s fetched the confidential model: %d bytes, %v", p, len(b), err)
		}
	}
	st, err := sc.Client(t, "publisher").Status(ctx)
	if err != nil || len(st.Models) != 1 || !st.Models[0].Submitted || st.Models[0].Provider != "measurer" || st.Models[0].Commitment != rec.Commitment {
		t.Fatalf("status models %+v, %v", st.Models, err)
	}
	// The operator's disk holds the module only sealed.
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if bytes.Contains(b, []byte("secret_weights_marker_7f3a")) || bytes.Contains(b, module[8:64]) {
			t.Errorf("%s holds the confidential model", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The sealed model runs.
	sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	if _, err := measurer.SubmitAlgorithm(ctx, []byte(spec.Query), nil); err != nil {
		t.Fatal(err)
	}
	if rs, err := sc.Client(t, "advertiser").Run(ctx); err != nil || rs.Status != "finished" {
		t.Fatalf("run: %+v, %v", rs, err)
	}
}

func newSalt() *cleanroom.Salt {
	s := cleanroom.NewSalt()
	return &s
}

func errorMentions(err error, words ...string) bool {
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			return false
		}
	}
	return true
}

func callCT(t *testing.T, hc *http.Client, url, path, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// TestModelSurvivesKill: a submitted model is durable — after kill -9 the
// coordinator rebuilds it from the log and its sealed blob, refuses a
// second submission, serves it to its provider only, and runs it.
func TestModelSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	inst, err := coordinator.ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	module := wasmtest.Model(bodyNulls)
	salt := newSalt()
	spec := modelSpec(t, module, salt)
	sc := testenv.NewRemote(t, d.url, inst, spec)
	sc.Submit(t, "publisher")
	sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	ctx := context.Background()
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(spec.Query), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Client(t, "measurer").SubmitModel(ctx, "score", module, salt); err != nil {
		t.Fatal(err)
	}
	d.kill()

	d = startDaemon(t, dir)
	defer d.kill()
	sc.URL = d.url
	// The model survived: the same module again is acknowledged as
	// already present.
	if rec, err := sc.Client(t, "measurer").SubmitModel(ctx, "score", module, salt); err != nil || !rec.Already {
		t.Fatalf("a second submission after the restart: %+v, %v", rec, err)
	}
	if got, err := sc.Client(t, "measurer").Model(ctx, "score"); err != nil || !bytes.Equal(got, module) {
		t.Fatalf("the provider reads back %d bytes, %v", len(got), err)
	}
	if _, err := sc.Client(t, "auditor").Model(ctx, "score"); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("the auditor fetching the model: %v", err)
	}
	if rs, err := sc.Client(t, "advertiser").Run(ctx); err != nil || rs.Status != "finished" {
		t.Fatalf("run after the restart: %+v, %v", rs, err)
	}
}
