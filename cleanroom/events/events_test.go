package events

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/internal/fuzzseed"
)

func sample() (evs []*Event) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h := strings.Repeat("ab", 32)
	c := strings.Repeat("cd", 32)
	run := NewID()
	evs = []*Event{
		{V: Version, ID: NewID(), Type: TypeCoordinatorStarted, Time: now, CoordinatorStarted: &CoordinatorStarted{
			Platform: "sev-snp-simulated", Measurement: strings.Repeat("0f", 48), PublicKey: h, EvidenceSHA256: h, Software: "test"}},
		{V: Version, ID: NewID(), Type: TypeContractRegistered, Time: now, Contract: c, Actor: "publisher", ActorKey: h, ContractRegistered: &ContractRegistered{
			Name: "x", ExpiresAt: now, Document: Blob{h, 10}, DocSHA256: h, Signatures: map[string][]byte{"publisher": {1, 2}}}},
		{V: Version, ID: NewID(), Type: TypeDatasetUploaded, Time: now, Contract: c, Actor: "publisher", ActorKey: h, DatasetUploaded: &DatasetUploaded{
			Dataset: "impressions", Ciphertext: Blob{h, 100}, HeaderSHA256: h, Rows: 5, SchemaDigest: h, UploadStatement: []byte{1},
			Stored: Blob{c, 100}, StoredHeaderSHA256: c}},
		{V: Version, ID: NewID(), Type: TypeAlgorithmSubmitted, Time: now, Contract: c, Actor: "measurer", ActorKey: h, AlgorithmSubmitted: &AlgorithmSubmitted{SHA256: h, Text: Blob{h, 3}}},
		{V: Version, ID: NewID(), Type: TypeRunStarted, Time: now, Contract: c, Actor: "advertiser", ActorKey: h, RunStarted: &RunStarted{RunID: run, Number: 1, AlgorithmSHA256: h, Datasets: map[string]string{"impressions": h}}},
		{V: Version, ID: NewID(), Type: TypeRunFinished, Time: now, Contract: c, RunFinished: &RunFinished{RunID: run, ResultCommitment: h, EncryptedResult: Blob{h, 9}, RowsKept: 3, RowsSuppressed: 1, Statement: []byte{1}}},
		{V: Version, ID: NewID(), Type: TypeRunRefused, Time: now, Contract: c, Actor: "advertiser", ActorKey: h, RunRefused: &RunRefused{Stage: "admission", Reason: "max_runs reached"}},
		{V: Version, ID: NewID(), Type: TypeRunRefused, Time: now, Contract: c, RunRefused: &RunRefused{RunID: run, Stage: "policy", Reason: "generic", SealedReason: []byte{1, 2, 3}}},
		{V: Version, ID: NewID(), Type: TypeRunAborted, Time: now, Contract: c, RunAborted: &RunAborted{RunID: run, Reason: "restart"}},
		{V: Version, ID: NewID(), Type: TypeResultFetched, Time: now, Contract: c, Actor: "advertiser", ActorKey: h, ResultFetched: &ResultFetched{RunID: run}},
		// Contracts over time.
		{V: Version, ID: NewID(), Type: TypeRunStarted, Time: now, Contract: c, Actor: "advertiser", ActorKey: h, RunStarted: &RunStarted{RunID: NewID(), Number: 2, AlgorithmSHA256: h,
			Datasets: map[string]string{"impressions": h}, Parameters: map[string]string{"since": "2026-10-01", "campaign": "spring"}}},
		{V: Version, ID: NewID(), Type: TypeContractSuspended, Time: now, Contract: c, Actor: "publisher", ActorKey: h, ContractSuspended: &ContractSuspended{Reason: "a leak"}},
		{V: Version, ID: NewID(), Type: TypeContractResumed, Time: now, Contract: c, Actor: "publisher", ActorKey: h, ContractResumed: &ContractResumed{SuspensionIndex: 12, Approvals: map[string][]byte{"publisher": {1}}}},
		{V: Version, ID: NewID(), Type: TypeContractSuperseded, Time: now, Contract: c, Actor: "publisher", ActorKey: h, ContractSuperseded: &ContractSuperseded{By: h}},
		{V: Version, ID: NewID(), Type: TypeDatasetWithdrawn, Time: now, Contract: c, Actor: "publisher", ActorKey: h, DatasetWithdrawn: &DatasetDeleted{Dataset: "impressions", Stored: Blob{c, 100}}},
		{V: Version, ID: NewID(), Type: TypeDatasetExpired, Time: now, Contract: c, DatasetExpired: &DatasetDeleted{Dataset: "conversions", Stored: Blob{h, 100}}},
		{V: Version, ID: NewID(), Type: TypeResultExpired, Time: now, Contract: c, ResultExpired: &ResultExpired{RunID: run, EncryptedResult: Blob{h, 9}}},
	}
	// Chain them as a coordinator would: the coordinator's start alone in
	// its scope, the contract's events 1, 2, … (the leaf hashes are made
	// up: events does not compute them).
	for i, e := range evs {
		e.Salt, e.Seq = NewSalt(), uint64(max(i, 1))
		if e.Seq > 1 {
			e.Prev = strings.Repeat("e", 64)
		}
	}
	return evs
}

func TestRoundTrip(t *testing.T) {
	for _, e := range sample() {
		b, err := Encode(e)
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		b2, _ := Encode(back)
		if string(b) != string(b2) {
			t.Fatalf("%s: re-encoding differs:\n%s\n%s", e.Type, b, b2)
		}
	}
}

var (
	saltRe = regexp.MustCompile(`"salt":"[0-9a-f]{64}",`)
	seqRe  = regexp.MustCompile(`"seq":[0-9]+,`)
	prevRe = regexp.MustCompile(`"prev":"[0-9a-f]{64}",`)
)

// TestVersion1Refused: an entry of the format before per-contract views
// (no salt, seq or prev) is refused with a message that says what to do.
func TestVersion1Refused(t *testing.T) {
	v1 := `{"v":1,"id":"00112233445566778899aabbccddeeff","type":"result.fetched","time":"2026-11-25T12:00:00Z",` +
		`"contract":"` + strings.Repeat("cd", 32) + `","result_fetched":{"run_id":"00112233445566778899aabbccddeeff"}}`
	_, err := Decode([]byte(v1))
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "version 1") || !strings.Contains(err.Error(), "new data directory") {
		t.Fatalf("got %v", err)
	}
}

// TestScope: coordinator.started is the coordinator's; everything else its
// contract's.
func TestScope(t *testing.T) {
	for _, e := range sample() {
		want := e.Contract
		if e.Type == TypeCoordinatorStarted {
			want = CoordinatorScope
		}
		if got := e.Scope(); got != want {
			t.Errorf("%s: scope %q, want %q", e.Type, got, want)
		}
	}
}

func TestMalformed(t *testing.T) {
	good, _ := Encode(sample()[2])
	s := string(good)
	for name, bad := range map[string]string{
		"unknown field":           strings.Replace(s, `"v":2`, `"v":2,"extra":2`, 1),
		"wrong version":           strings.Replace(s, `"v":2`, `"v":3`, 1),
		"version 1":               strings.Replace(s, `"v":2`, `"v":1`, 1),
		"no salt":                 saltRe.ReplaceAllString(s, ""),
		"short salt":              saltRe.ReplaceAllString(s, `"salt":"abcd",`),
		"seq 0":                   seqRe.ReplaceAllString(s, `"seq":0,`),
		"seq 1 with prev":         seqRe.ReplaceAllString(s, `"seq":1,`),
		"no prev":                 prevRe.ReplaceAllString(s, ""),
		"bad prev":                prevRe.ReplaceAllString(s, `"prev":"xyz",`),
		"wrong body":              strings.Replace(s, `"dataset_uploaded"`, `"algorithm_submitted"`, 1),
		"unknown type":            strings.Replace(s, `"dataset.uploaded"`, `"dataset.deleted"`, 1),
		"bad contract":            strings.Replace(s, strings.Repeat("cd", 32), "cd", 1),
		"trailing data":           s + "{}",
		"not json":                "garbage",
		"actor, no key":           strings.Replace(s, `"actor_key":"`+strings.Repeat("ab", 32)+`",`, "", 1),
		"negative rows":           strings.Replace(s, `"rows":5`, `"rows":-5`, 1),
		"empty statement":         strings.Replace(s, `"upload_statement":"AQ=="`, `"upload_statement":""`, 1),
		"no stored envelope":      strings.Replace(s, `,"stored":{"sha256":"`+strings.Repeat("cd", 32)+`","size":100},"stored_header_sha256":"`+strings.Repeat("cd", 32)+`"`, "", 1),
		"bad stored header":       strings.Replace(s, `"stored_header_sha256":"`+strings.Repeat("cd", 32)+`"`, `"stored_header_sha256":"cd"`, 1),
		"stored without a digest": strings.Replace(s, `"stored":{"sha256":"`+strings.Repeat("cd", 32)+`"`, `"stored":{"sha256":""`, 1),
	} {
		if bad == s {
			t.Fatalf("%s: edit did not apply", name)
		}
		if _, err := Decode([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	// An upload logged by a coordinator that stored the provider's own
	// envelope is refused with what to do.
	old := strings.Replace(s, `,"stored":{"sha256":"`+strings.Repeat("cd", 32)+`","size":100},"stored_header_sha256":"`+strings.Repeat("cd", 32)+`"`, "", 1)
	if _, err := Decode([]byte(old)); err == nil || !strings.Contains(err.Error(), "upload the datasets again") {
		t.Errorf("an upload without a stored envelope: %v", err)
	}
}

// TestVersion1 checks that an event of the first format is refused with a
// message that says what to do.
func TestVersion1(t *testing.T) {
	good, _ := Encode(sample()[5])
	old := strings.Replace(strings.Replace(string(good), `"v":2`, `"v":1`, 1), `"result_commitment"`, `"result_sha256"`, 1)
	_, err := Decode([]byte(old))
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "event format version 1") || !strings.Contains(err.Error(), "new data directory") {
		t.Fatalf("a version 1 event: %v", err)
	}
}

// TestSealedReason checks where run.refused may carry a sealed reason: only
// for a run refused at stage query or policy, and bounded.
func TestSealedReason(t *testing.T) {
	c, run := strings.Repeat("cd", 32), NewID()
	refused := func(r *RunRefused) *Event {
		return &Event{V: Version, ID: NewID(), Type: TypeRunRefused, Time: time.Now().UTC(), Contract: c, Salt: NewSalt(), Seq: 1, RunRefused: r}
	}
	for _, tc := range []struct {
		name string
		r    *RunRefused
		ok   bool
	}{
		{"policy", &RunRefused{RunID: run, Stage: "policy", Reason: "generic", SealedReason: make([]byte, 5744)}, true},
		{"query", &RunRefused{RunID: run, Stage: "query", Reason: "generic", SealedReason: []byte{1}}, true},
		{"admission", &RunRefused{Stage: "admission", Reason: "x", SealedReason: []byte{1}}, false},
		{"release", &RunRefused{RunID: run, Stage: "release", Reason: "x", SealedReason: []byte{1}}, false},
		{"no run", &RunRefused{Stage: "policy", Reason: "x", SealedReason: []byte{1}}, false},
		{"too large", &RunRefused{RunID: run, Stage: "policy", Reason: "x", SealedReason: make([]byte, MaxSealedReason+1)}, false},
		{"empty", &RunRefused{RunID: run, Stage: "policy", Reason: "x", SealedReason: []byte{}}, false},
	} {
		b, err := Encode(refused(tc.r))
		if (err == nil) != tc.ok {
			t.Errorf("%s: Encode: %v", tc.name, err)
			continue
		}
		if tc.ok {
			if back, err := Decode(b); err != nil || !bytes.Equal(back.RunRefused.SealedReason, tc.r.SealedReason) {
				t.Errorf("%s: Decode: %v", tc.name, err)
			}
		}
	}
}

// FuzzDecode: log entries come from disk and, for auditors, from the
// network; decoding must never panic, and what decodes re-encodes.
func FuzzDecode(f *testing.F) {
	for _, e := range sample() {
		b, _ := Encode(e)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			return
		}
		if _, err := Encode(e); err != nil {
			t.Fatalf("decoded event does not re-encode: %v", err)
		}
	})
}

func TestWriteFuzzSeeds(t *testing.T) {
	if !*fuzzseed.Update {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz")
	}
	var seeds [][]byte
	for _, e := range sample() {
		b, _ := Encode(e)
		seeds = append(seeds, b)
	}
	seeds = append(seeds, []byte("{}"), []byte(`{"v":2}`), []byte("null"))
	fuzzseed.Write(t, "FuzzDecode", fuzzseed.Bytes(seeds...)...)
}
