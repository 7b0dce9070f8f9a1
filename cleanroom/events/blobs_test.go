package events

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBlobs checks Event.Blobs against each event's encoded form: every
// JSON object of exactly the keys sha256 and size is a blob the event
// names, and Blobs returns exactly those, for every event type.
func TestBlobs(t *testing.T) {
	h := strings.Repeat("12", 32)
	evs := append(sample(), &Event{V: Version, ID: NewID(), Salt: NewSalt(), Seq: 30, Prev: strings.Repeat("e", 64),
		Type: TypeModelSubmitted, Time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Contract: strings.Repeat("cd", 32),
		Actor: "modeller", ActorKey: h, ModelSubmitted: &ModelSubmitted{Name: "risk", Commitment: h, Module: Blob{h, 77}}})
	seen := map[Type]bool{}
	for _, e := range evs {
		b, err := Encode(e)
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		var want []Blob
		jsonBlobs(doc, &want)
		got := e.Blobs()
		key := func(b Blob) string { return fmt.Sprintf("%s/%d", b.SHA256, b.Size) }
		slices.SortFunc(want, func(a, b Blob) int { return strings.Compare(key(a), key(b)) })
		slices.SortFunc(got, func(a, b Blob) int { return strings.Compare(key(a), key(b)) })
		if !slices.Equal(got, want) {
			t.Errorf("%s: Blobs() = %v, the encoded event names %v", e.Type, got, want)
		}
		if len(want) > 0 {
			seen[e.Type] = true
		}
	}
	for _, typ := range []Type{TypeContractRegistered, TypeDatasetUploaded, TypeAlgorithmSubmitted, TypeModelSubmitted,
		TypeRunFinished, TypeDatasetWithdrawn, TypeDatasetExpired, TypeResultExpired} {
		if !seen[typ] {
			t.Errorf("no %s event with a blob was checked", typ)
		}
	}
	// Stored is found beside Ciphertext, and the zero Blob is not a name.
	e := &Event{DatasetUploaded: &DatasetUploaded{Ciphertext: Blob{h, 1}, Stored: Blob{strings.Repeat("34", 32), 2}}}
	if got := e.Blobs(); len(got) != 2 || got[1].SHA256 != strings.Repeat("34", 32) {
		t.Errorf("DatasetUploaded: %v", got)
	}
	if got := (&Event{RunFinished: &RunFinished{}}).Blobs(); len(got) != 0 {
		t.Errorf("a zero Blob is named: %v", got)
	}
}

// jsonBlobs collects the objects of exactly the keys sha256 and size.
func jsonBlobs(v any, out *[]Blob) {
	switch v := v.(type) {
	case map[string]any:
		if d, ok := v["sha256"].(string); ok && len(v) == 2 {
			if n, ok := v["size"].(float64); ok {
				*out = append(*out, Blob{d, int64(n)})
				return
			}
		}
		for _, x := range v {
			jsonBlobs(x, out)
		}
	case []any:
		for _, x := range v {
			jsonBlobs(x, out)
		}
	}
}

func BenchmarkBlobs(b *testing.B) {
	evs := sample()
	for _, e := range evs {
		if e.DatasetUploaded != nil {
			e.DatasetUploaded.UploadStatement = make([]byte, 2048)
		}
		if e.RunFinished != nil {
			e.RunFinished.Statement = make([]byte, 4096)
		}
	}
	for b.Loop() {
		for _, e := range evs {
			e.Blobs()
		}
	}
}
