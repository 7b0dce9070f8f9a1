package atls

import (
	"bytes"
	"testing"

	"cleanroom.dev/cleanroom/internal/canon"
	"cleanroom.dev/cleanroom/internal/fuzzseed"
)

// FuzzParseExtension: parsing the attestation extension never panics, and
// what parses re-encodes to the same bytes.
func FuzzParseExtension(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		key, ev, err := ParseExtension(data)
		if err != nil {
			return
		}
		again, err := marshalExtension(key, ev)
		if err != nil {
			t.Fatalf("parsed extension does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatal("extension parsed from non-canonical bytes")
		}
	})
}

// TestWriteFuzzSeeds rewrites testdata/fuzz/FuzzParseExtension when run
// with -update-seeds.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*fuzzseed.Update {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz")
	}
	p1, _ := twoPlatforms(t)
	coord := newIdentity(t)
	value, err := marshalExtension(coord.Public(), evidenceFor(t, p1, coord.Public()))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := canon.Marshal(cmwRecord{Type: "application/other", Value: []byte{0xa0}})
	empty, _ := canon.Marshal(cmwRecord{Type: MediaType, Value: []byte{0xa0}})
	fuzzseed.Write(t, "FuzzParseExtension", fuzzseed.Bytes(value, other, empty, value[:len(value)/2])...)
}
