package coordinator_test

import (
	"bytes"
	"context"
	"crypto/hpke"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// sharedSigningKey returns sc's contract text with the auditor's public key
// replaced by one made of the publisher's Ed25519 key and the auditor's
// HPKE key.
func sharedSigningKey(t *testing.T, sc *testenv.Scenario) []byte {
	t.Helper()
	pub, aud := sc.Spec.Parties[0].Identity.Public(), sc.Spec.Parties[3].Identity.Public()
	mixed, err := cleanroom.PublicKeyFromBytes(append(pub.Bytes()[:32:32], aud.Bytes()[32:]...))
	if err != nil {
		t.Fatal(err)
	}
	text := bytes.Replace(sc.Text, []byte(aud.String()), []byte(mixed.String()), 1)
	if bytes.Equal(text, sc.Text) {
		t.Fatal("the auditor's key is not in the contract text")
	}
	return text
}

// TestBadInputChangesNothing sends malformed and wrong input of every kind
// and checks each is refused with the right status and a message that says
// what was wrong, and that neither the log nor the state changed.
func TestBadInputChangesNothing(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "bad-input", 3))
	// A second contract on the same coordinator, with the same dataset ids,
	// to make envelopes that are valid but for another contract.
	other := testenv.New(t, srv, testenv.AdSpec(t, "other", 3))
	// A contract for another coordinator's measurement.
	elsewhere := testenv.AdSpec(t, "elsewhere", 3)
	ctx := context.Background()

	// Bad contracts first.
	contractCases := []struct {
		name   string
		text   []byte
		sigs   [][]byte
		status int
		msg    string
	}{
		{"missing signature", sc.Text, sc.Sigs[:3], 422, `participant auditor: has not signed`},
		{"signature by a stranger's key", sc.Text, append(append([][]byte{}, sc.Sigs[:3]...), other.Sigs[3]), 422, "signed by a key that is not a participant's"},
		{"signature over another contract", sc.Text, append(append([][]byte{}, sc.Sigs[:3]...), renamedSig(t, sc)), 422, "participant auditor: signature is over a different contract"},
		{"malformed contract", []byte("version: 1\nname: x\n"), sc.Sigs, 422, "required field is missing"},
		{"participants sharing one Ed25519 key", sharedSigningKey(t, sc), sc.Sigs, 422,
			`participants "auditor" and "publisher" (participants[0]) share one Ed25519 signing key`},
	}
	for _, tc := range contractCases {
		before := sc.LogSize()
		_, err := sc.Client(t, "publisher").SubmitContract(ctx, tc.text, tc.sigs)
		expectRefusal(t, tc.name, err, tc.status, tc.msg)
		if sc.LogSize() != before {
			t.Errorf("%s: the log changed", tc.name)
		}
	}
	// An expired contract: build it with an expiry in the past.
	expired := testenv.AdSpec(t, "expired", 3)
	expired.Expires = time.Now().Add(-time.Hour)
	text := expired.Text(srv.Coord.Identity())
	before := sc.LogSize()
	cl := sc.ClientWith(t, clientOptsFor(sc, expired.Parties[0]))
	_, err := cl.SubmitContract(ctx, text, nil)
	expectRefusal(t, "expired contract", err, 422, "expired")
	// A contract this coordinator does not satisfy: it pins another
	// measurement. Every party signs it; the coordinator still refuses.
	text = elsewhere.Text(srv.Coord.Identity())
	m := srv.Coord.TEE().Measurement()
	text = bytes.Replace(text, []byte(fmt.Sprintf("%x", m)), []byte(strings.Repeat("00", 48)), 1)
	ec, err := contracts.Parse(text, contracts.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var esigs [][]byte
	for _, p := range elsewhere.Parties {
		sig, err := ec.Sign(p.Identity)
		if err != nil {
			t.Fatal(err)
		}
		esigs = append(esigs, sig)
	}
	_, err = sc.ClientWith(t, clientOptsFor(sc, elsewhere.Parties[0])).SubmitContract(ctx, text, esigs)
	expectRefusal(t, "contract pinning another measurement", err, 422, "does not satisfy")
	if sc.LogSize() != before {
		t.Fatal("refused contracts changed the log")
	}

	sc.Submit(t, "publisher")
	other.Submit(t, "publisher")
	imp := sc.Seal(t, "publisher", "impressions", testenv.ImpressionsCSV)
	conv := sc.Seal(t, "advertiser", "conversions", testenv.ConversionsCSV)
	otherImp := other.Seal(t, "publisher", "impressions", testenv.ImpressionsCSV)
	truncated := &testenv.Sealed{Envelope: imp.Envelope[:len(imp.Envelope)-5], Statement: imp.Statement}
	flipped := &testenv.Sealed{Envelope: bytes.Clone(imp.Envelope), Statement: imp.Statement}
	flipped.Envelope[len(flipped.Envelope)/2] ^= 1
	wrongStatement := &testenv.Sealed{Envelope: imp.Envelope, Statement: otherImp.Statement}

	uploadCases := []struct {
		name    string
		party   string
		dataset string
		sealed  *testenv.Sealed
		status  int
		msg     string
	}{
		{"envelope for another contract", "publisher", "impressions", otherImp, 422, "contract"},
		{"envelope for another dataset", "advertiser", "conversions", &testenv.Sealed{Envelope: imp.Envelope, Statement: conv.Statement}, 422, "dataset"},
		{"truncated envelope", "publisher", "impressions", truncated, 422, "envelope for dataset impressions refused: envelope"},
		{"flipped byte", "publisher", "impressions", flipped, 422, "does not authenticate"},
		{"garbage", "publisher", "impressions", &testenv.Sealed{Envelope: []byte("not an envelope at all"), Statement: imp.Statement}, 422, "refused"},
		{"statement of another envelope", "publisher", "impressions", wrongStatement, 422, "upload statement"},
		{"statement signed by another party", "publisher", "impressions", &testenv.Sealed{Envelope: imp.Envelope, Statement: conv.Statement}, 422, "upload statement"},
		{"no statement", "publisher", "impressions", &testenv.Sealed{Envelope: imp.Envelope}, 400, "trailer is missing"},
		{"unknown dataset", "publisher", "clicks", imp, 404, "no dataset"},
	}
	for _, tc := range uploadCases {
		before := sc.LogSize()
		_, err := sc.Upload(t, tc.party, tc.dataset, tc.sealed)
		expectRefusal(t, tc.name, err, tc.status, tc.msg)
		if sc.LogSize() != before {
			t.Errorf("%s: the log changed", tc.name)
		}
	}
	st, err := sc.Client(t, "auditor").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range st.Datasets {
		if d.Uploaded {
			t.Fatalf("a refused upload left dataset %s uploaded", d.ID)
		}
	}

	// A good upload, then a second one: refused, the first intact.
	first := sc.MustUpload(t, "publisher", "impressions", testenv.ImpressionsCSV)
	before = sc.LogSize()
	_, err = sc.Upload(t, "publisher", "impressions", sc.Seal(t, "publisher", "impressions", testenv.ImpressionsCSV+"u9,winter\n"))
	expectRefusal(t, "second upload", err, 409, "already uploaded")
	st, _ = sc.Client(t, "auditor").Status(ctx)
	if st.Datasets[0].CiphertextSHA256 != hex.EncodeToString(first.CiphertextSHA256[:]) || sc.LogSize() != before {
		t.Fatal("a second upload changed the first")
	}

	// Algorithms.
	wrong := "SELECT 1 AS users"
	algCases := []struct {
		name   string
		text   string
		status int
		msg    string
	}{
		{"hash differs", wrong, 422, "contract " + sc.Contract.ID().String() + ": the algorithm is not the one the contract approves: its SHA-256 is"},
		{"trailing newline", sc.Spec.Query + "\n", 422, "SHA-256"},
	}
	for _, tc := range algCases {
		before := sc.LogSize()
		// Sent as it is: the client's SubmitAlgorithm refuses it first.
		body, _ := json.Marshal(api.SubmitAlgorithmRequest{Text: &tc.text})
		status, resp := call(t, httpClient(t, sc, "measurer"), srv.URL, http.MethodPut, "/v1/contracts/"+sc.Contract.ID().String()+"/algorithm", body)
		expectRefusal(t, tc.name, apiError(t, status, resp), tc.status, tc.msg)
		if sc.LogSize() != before {
			t.Errorf("%s: the log changed", tc.name)
		}
	}

	// Malformed bodies and paths.
	hc, err := atls.NewHTTPClient(atls.ClientOptions{Policy: &sc.Contract.Coordinator, Identity: sc.Party("measurer").Identity})
	if err != nil {
		t.Fatal(err)
	}
	cid := sc.Contract.ID().String()
	rawCases := []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"not JSON", "PUT", "/v1/contracts/" + cid + "/algorithm", "{", 400, "malformed request body"},
		{"unknown field", "PUT", "/v1/contracts/" + cid + "/algorithm", `{"text":"x","extra":1}`, 400, "unknown field"},
		{"both text and sealed", "PUT", "/v1/contracts/" + cid + "/algorithm", `{"text":"x","sealed":"AA=="}`, 400, "exactly one"},
		{"trailing JSON", "POST", "/v1/contracts", `{"contract":"x"} {}`, 400, "after the JSON value"},
		{"huge body", "POST", "/v1/contracts", `{"contract":"` + strings.Repeat("a", api.MaxJSONBody) + `"}`, 413, "larger than"},
		{"bad contract id", "GET", "/v1/contracts/xyz", "", 400, "64 hex digits"},
		{"unknown contract", "GET", "/v1/contracts/" + strings.Repeat("ab", 32), "", 404, "not registered"},
		{"bad nonce", "POST", "/v1/attestation", `{"nonce":"zz"}`, 400, "nonce"},
		{"no such endpoint", "GET", "/v2/anything", "", 404, "no such endpoint"},
	}
	for _, tc := range rawCases {
		before := sc.LogSize()
		status, body := call(t, hc, srv.URL, tc.method, tc.path, []byte(tc.body))
		var eb api.ErrorBody
		json.Unmarshal(body, &eb)
		if status != tc.status || !strings.Contains(eb.Error.Message, tc.msg) {
			t.Errorf("%s: status %d %q, want %d containing %q", tc.name, status, eb.Error.Message, tc.status, tc.msg)
		}
		if sc.LogSize() != before {
			t.Errorf("%s: the log changed", tc.name)
		}
	}
}

// renamedSig is the auditor's signature of the scenario's contract under
// another name: valid, by a participant, but over a different contract.
func renamedSig(t *testing.T, sc *testenv.Scenario) []byte {
	spec := *sc.Spec
	spec.Name = "renamed"
	c, err := contracts.Parse(spec.Text(sc.Server.Coord.Identity()), contracts.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := c.Sign(sc.Party("auditor").Identity)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func clientOptsFor(sc *testenv.Scenario, p *testenv.Party) client.Options {
	return client.Options{Contract: sc.Contract, Identity: p.Identity}
}

// apiError decodes an error response as the client does.
func apiError(t *testing.T, status int, body []byte) error {
	t.Helper()
	var e api.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("status %d with a body that is not an API error: %s", status, body)
	}
	return &api.Error{Status: status, ErrorDetail: e.Error}
}

func expectRefusal(t *testing.T, name string, err error, status int, msg string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: want a %d refusal, got %v", name, status, err)
		return
	}
	if e.Status != status || !strings.Contains(e.Message, msg) {
		t.Errorf("%s: got %d %q, want %d containing %q", name, e.Status, e.Message, status, msg)
	}
	if e.Status == http.StatusInternalServerError {
		t.Errorf("%s: internal error for bad input: %s", name, e.Message)
	}
}

// sealRaw seals arbitrary plaintext as dataset ds of the scenario's
// contract, with a valid statement signed by party id claiming rows rows:
// an authentic envelope from a hostile provider.
func sealRaw(t *testing.T, sc *testenv.Scenario, id, ds string, plain []byte, rows int64) *testenv.Sealed {
	t.Helper()
	d := sc.Contract.Dataset(ds)
	var buf bytes.Buffer
	w, err := envelope.NewWriter(&buf, envelope.Header{Kind: envelope.KindDataset, ContractID: sc.Contract.ID(), ObjectID: ds,
		SchemaDigest: d.SchemaDigest()}, []hpke.PublicKey{sc.Coordinator.PublicKey.HPKE()})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sum, _ := w.Summary()
	st, err := upload.FromEnvelope(sum, rows)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := st.Sign(sc.Party(id).Identity)
	if err != nil {
		t.Fatal(err)
	}
	return &testenv.Sealed{Envelope: buf.Bytes(), Statement: signed}
}

// TestHostileProviderPlaintext uploads authentic envelopes whose plaintext
// is not what the contract says: the coordinator refuses each, stays up,
// and changes nothing.
func TestHostileProviderPlaintext(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "hostile", 3))
	sc.Submit(t, "publisher")
	good := sc.Seal(t, "publisher", "impressions", testenv.ImpressionsCSV)
	// Recover the plaintext of the good envelope to build variants.
	plain, _, err := envelope.Open(good.Envelope, srv.Coord.TEE().Identity().HPKE(), envelope.Expect{
		Kind: envelope.KindDataset, ContractID: sc.Contract.ID(), ObjectID: "impressions"})
	if err != nil {
		t.Fatal(err)
	}
	otherSchema := sc.Seal(t, "advertiser", "conversions", testenv.ConversionsCSV)
	otherPlain, _, err := envelope.Open(otherSchema.Envelope, srv.Coord.TEE().Identity().HPKE(), envelope.Expect{
		Kind: envelope.KindDataset, ContractID: sc.Contract.ID(), ObjectID: "conversions"})
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(plain)
	for i := 8; i < len(corrupt) && i < 200; i += 3 {
		corrupt[i] ^= 0x5a
	}
	cases := []struct {
		name  string
		plain []byte
		rows  int64
		msg   string
	}{
		{"not Arrow at all", []byte("id,campaign\nu1,x\n"), 1, "not an Arrow IPC stream"},
		{"corrupted Arrow", corrupt, 5, "refused"},
		{"another dataset's schema", otherPlain, 4, "is not the contract's"},
		{"bytes after the stream", append(bytes.Clone(plain), 1, 2, 3), 5, "follow the end of the Arrow stream"},
		{"row count lies", plain, 6, "claims 6 rows; the envelope holds 5"},
		{"empty plaintext", nil, 0, "refused"},
	}
	for _, tc := range cases {
		before := sc.LogSize()
		_, err := sc.Upload(t, "publisher", "impressions", sealRaw(t, sc, "publisher", "impressions", tc.plain, tc.rows))
		expectRefusal(t, tc.name, err, 422, tc.msg)
		if sc.LogSize() != before {
			t.Errorf("%s: the log changed", tc.name)
		}
	}
	// Still serving, and the honest upload goes through.
	if _, err := sc.Upload(t, "publisher", "impressions", sealRaw(t, sc, "publisher", "impressions", plain, 5)); err != nil {
		t.Fatalf("the honest upload after hostile ones: %v", err)
	}
}
