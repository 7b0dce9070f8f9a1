package canon

import (
	"errors"
	"testing"
)

type pair struct {
	A uint64 `cbor:"a"`
	B string `cbor:"b"`
}

// TestDecoderStrict: the one canonical form decodes; every other byte form
// of the same value, and every shape the decoder refuses, does not.
func TestDecoderStrict(t *testing.T) {
	d := NewDecoder(Limits{MaxNestedLevels: 4, MaxArrayElements: 16, MaxMapPairs: 16})
	good, err := Marshal(pair{A: 1, B: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var p pair
	if err := d.Decode("pair", good, &p); err != nil || p != (pair{1, "x"}) {
		t.Fatalf("canonical bytes: %+v, %v", p, err)
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		shapeOK bool // Unmarshal accepts it; only Decode's canonical check refuses it
	}{
		{"keys out of order", []byte{0xa2, 0x61, 'b', 0x61, 'x', 0x61, 'a', 0x01}, true},
		{"integer not in its shortest form", []byte{0xa2, 0x61, 'a', 0x18, 0x01, 0x61, 'b', 0x61, 'x'}, true},
		{"trailing byte", append(append([]byte{}, good...), 0x00), false},
		{"duplicate key", []byte{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02}, false},
		{"unknown key", []byte{0xa1, 0x61, 'c', 0x01}, false},
		{"tag", append([]byte{0xc1}, good...), false},
		{"indefinite-length map", []byte{0xbf, 0x61, 'a', 0x01, 0x61, 'b', 0x61, 'x', 0xff}, false},
		{"invalid UTF-8", []byte{0xa2, 0x61, 'a', 0x01, 0x61, 'b', 0x61, 0xff}, false},
	} {
		var v pair
		if err := d.Decode(tc.name, tc.data, &v); !errors.Is(err, ErrNotCanonical) {
			t.Errorf("%s: Decode accepted it (%v)", tc.name, err)
		}
		var w pair
		if err := d.Unmarshal(tc.data, &w); (err == nil) != tc.shapeOK {
			t.Errorf("%s: Unmarshal: %v", tc.name, err)
		}
	}
}
