package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// fuzzSeeds adds the test vectors' envelopes, whole and cut, to f.
func fuzzSeeds(f *testing.F) {
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		f.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(data, &vf); err != nil {
		f.Fatal(err)
	}
	for _, v := range vf.Valid {
		f.Add([]byte(v.Envelope))
		f.Add([]byte(v.Envelope[:v.HeaderLen]))
	}
	for _, v := range vf.Invalid {
		f.Add([]byte(v.Envelope))
	}
}

// FuzzParseHeader checks that ParseHeader never panics, that a header it
// accepts re-encodes to exactly the bytes it read, and that it reads no
// byte past the header.
func FuzzParseHeader(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := ParseHeader(r)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseHeader error %v is not ErrMalformed", err)
			}
			return
		}
		if int(r.Size())-r.Len() != h.Len() {
			t.Fatalf("ParseHeader consumed %d bytes of a %d-byte header", int(r.Size())-r.Len(), h.Len())
		}
		enc := appendStanzas(h.appendPreamble(nil), h.Recipients)
		if !bytes.Equal(enc, data[:h.Len()]) {
			t.Fatal("the parsed header does not re-encode to its bytes")
		}
		h2, err := ParseHeader(bytes.NewReader(h.Bytes()))
		if err != nil || !bytes.Equal(h2.Bytes(), h.Bytes()) {
			t.Fatalf("re-parsing the header: %v", err)
		}
	})
}

// FuzzDecrypt runs Open and NewReader on mutated envelopes for the test
// vectors' recipient key. Neither may panic, every error must be one of the
// package's, and the two decoders must agree: an envelope one accepts, the
// other accepts with the same plaintext.
func FuzzDecrypt(f *testing.F) {
	fuzzSeeds(f)
	key := vectorKey(&testing.T{}, vectorSeed("coordinator"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Expect what the header says, so that mutations reach the segments.
		want := Expect{Kind: h.Kind, ContractID: h.ContractID, ObjectID: h.ObjectID}
		if want.ContractID == ([32]byte{}) {
			want.ContractID[0] = 1
		}
		pt, _, err := OpenWithOptions(data, key, want, OpenOptions{Workers: 2})
		if err != nil && !classified(err) {
			t.Fatalf("Open error %v wraps no sentinel", err)
		}
		rpt, rerr := readAll(data, key, want)
		if rerr != nil && !classified(rerr) {
			t.Fatalf("NewReader error %v wraps no sentinel", rerr)
		}
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Open says %v, NewReader says %v", err, rerr)
		}
		if err == nil && !bytes.Equal(pt, rpt) {
			t.Fatal("Open and NewReader return different plaintexts")
		}
		if err != nil && pt != nil {
			t.Fatal("Open returned plaintext with an error")
		}
	})
}
