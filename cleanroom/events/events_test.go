package events

import (
	"cleanroom.dev/cleanroom/internal/fuzzseed"
	"errors"
	"strings"
	"testing"
	"time"
)

func sample() []*Event {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h := strings.Repeat("ab", 32)
	c := strings.Repeat("cd", 32)
	run := NewID()
	return []*Event{
		{V: 1, ID: NewID(), Type: TypeCoordinatorStarted, Time: now, CoordinatorStarted: &CoordinatorStarted{
			Platform: "sev-snp-simulated", Measurement: strings.Repeat("0f", 48), PublicKey: h, EvidenceSHA256: h, Software: "test"}},
		{V: 1, ID: NewID(), Type: TypeContractRegistered, Time: now, Contract: c, Actor: "publisher", ActorKey: h, ContractRegistered: &ContractRegistered{
			Name: "x", ExpiresAt: now, Document: Blob{h, 10}, DocSHA256: h, Signatures: map[string][]byte{"publisher": {1, 2}}}},
		{V: 1, ID: NewID(), Type: TypeDatasetUploaded, Time: now, Contract: c, Actor: "publisher", ActorKey: h, DatasetUploaded: &DatasetUploaded{
			Dataset: "impressions", Ciphertext: Blob{h, 100}, HeaderSHA256: h, Rows: 5, SchemaDigest: h, UploadStatement: []byte{1},
			Stored: Blob{c, 100}, StoredHeaderSHA256: c}},
		{V: 1, ID: NewID(), Type: TypeAlgorithmSubmitted, Time: now, Contract: c, Actor: "measurer", ActorKey: h, AlgorithmSubmitted: &AlgorithmSubmitted{SHA256: h, Text: Blob{h, 3}}},
		{V: 1, ID: NewID(), Type: TypeRunStarted, Time: now, Contract: c, Actor: "advertiser", ActorKey: h, RunStarted: &RunStarted{RunID: run, Number: 1, AlgorithmSHA256: h, Datasets: map[string]string{"impressions": h}}},
		{V: 1, ID: NewID(), Type: TypeRunFinished, Time: now, Contract: c, RunFinished: &RunFinished{RunID: run, ResultSHA256: h, EncryptedResult: Blob{h, 9}, RowsKept: 3, RowsSuppressed: 1, Statement: []byte{1}}},
		{V: 1, ID: NewID(), Type: TypeRunRefused, Time: now, Contract: c, Actor: "advertiser", ActorKey: h, RunRefused: &RunRefused{Stage: "admission", Reason: "max_runs reached"}},
		{V: 1, ID: NewID(), Type: TypeRunAborted, Time: now, Contract: c, RunAborted: &RunAborted{RunID: run, Reason: "restart"}},
		{V: 1, ID: NewID(), Type: TypeResultFetched, Time: now, Contract: c, Actor: "advertiser", ActorKey: h, ResultFetched: &ResultFetched{RunID: run}},
	}
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

func TestMalformed(t *testing.T) {
	good, _ := Encode(sample()[2])
	s := string(good)
	for name, bad := range map[string]string{
		"unknown field":           strings.Replace(s, `"v":1`, `"v":1,"extra":2`, 1),
		"wrong version":           strings.Replace(s, `"v":1`, `"v":2`, 1),
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
	seeds = append(seeds, []byte("{}"), []byte(`{"v":1}`), []byte("null"))
	fuzzseed.Write(t, "FuzzDecode", fuzzseed.Bytes(seeds...)...)
}
