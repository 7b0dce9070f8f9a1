package envelope

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/cryptotest"
)

// The test vectors in testdata/envelope/vectors.json (docs/envelope.md,
// "Test vectors") are made by `go test -run TestVectors -update`. They are
// deterministic because the random source is injected: the data key and
// salt come from a ChaCha8 stream seeded per vector (newWriter's random
// argument), and HPKE's ephemeral randomness from
// testing/cryptotest.SetGlobalRandom. Production code draws both from
// crypto/rand. The check below does not depend on how Go's HPKE consumes
// randomness: it opens each envelope with the recipients' keys and
// re-seals the body from the recorded data key and header.

var update = flag.Bool("update", false, "rewrite the test vectors in testdata/envelope")

var vectorsPath = filepath.Join("..", "..", "testdata", "envelope", "vectors.json")

// hexBytes is a byte string written as lowercase hex in JSON.
type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

func (h *hexBytes) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

type vectorFile struct {
	Format  string          `json:"format"`
	Comment []string        `json:"comment"`
	Valid   []validVector   `json:"valid"`
	Invalid []invalidVector `json:"invalid"`
}

type validVector struct {
	Name            string     `json:"name"`
	RecipientSeeds  []hexBytes `json:"recipient_seeds"`
	RecipientKeyIDs []hexBytes `json:"recipient_key_ids"`
	Kind            string     `json:"kind"`
	ContractID      hexBytes   `json:"contract_id"`
	ObjectID        string     `json:"object_id"`
	SchemaDigest    hexBytes   `json:"schema_digest"`
	SegmentSize     int        `json:"segment_size"`
	DataKey         hexBytes   `json:"data_key"`
	Salt            hexBytes   `json:"salt"`
	HPKEInfo        hexBytes   `json:"hpke_info"`
	PayloadKey      hexBytes   `json:"payload_key"`
	NoncePrefix     hexBytes   `json:"nonce_prefix"`
	HeaderLen       int        `json:"header_len"`
	HeaderSHA256    hexBytes   `json:"header_sha256"`
	Segments        int        `json:"segments"`
	Plaintext       hexBytes   `json:"plaintext"`
	Envelope        hexBytes   `json:"envelope"`
	EnvelopeSHA256  hexBytes   `json:"envelope_sha256"`
}

type invalidVector struct {
	Name          string   `json:"name"`
	RecipientSeed hexBytes `json:"recipient_seed"`
	Kind          string   `json:"expect_kind"`
	ContractID    hexBytes `json:"expect_contract_id"`
	ObjectID      string   `json:"expect_object_id"`
	SchemaDigest  hexBytes `json:"expect_schema_digest"`
	Envelope      hexBytes `json:"envelope"`
	Error         string   `json:"error"`
}

var errorNames = map[string]error{
	"malformed":      ErrMalformed,
	"mismatch":       ErrMismatch,
	"not-recipient":  ErrNotRecipient,
	"authentication": ErrAuthentication,
	"truncated":      ErrTruncated,
}

func parseKind(s string) Kind {
	switch s {
	case "dataset":
		return KindDataset
	case "result":
		return KindResult
	}
	return 0
}

func vectorSeed(name string) []byte {
	s := sha256.Sum256([]byte("cleanroom envelope vector recipient " + name))
	return s[:]
}

func vectorKey(t *testing.T, seed []byte) hpke.PrivateKey {
	t.Helper()
	k, err := hpke.MLKEM768X25519().NewPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func vectorPlaintext(n int) []byte {
	const text = "Cleanroom envelope test vector. The quick brown fox jumps over the lazy dog.\n"
	return []byte(strings.Repeat(text, n/len(text)+1)[:n])
}

func makeVectors(t *testing.T) *vectorFile {
	cryptotest.SetGlobalRandom(t, 1)
	contract := sha256.Sum256([]byte("vector contract"))
	schema := sha256.Sum256([]byte("vector schema"))
	cases := []struct {
		name       string
		kind       Kind
		objectID   string
		segSize    int
		size       int
		recipients []string
	}{
		{"empty plaintext", KindDataset, "impressions", 64, 0, []string{"coordinator"}},
		{"one byte", KindDataset, "impressions", 64, 1, []string{"coordinator"}},
		{"one byte short of a segment", KindDataset, "impressions", 64, 63, []string{"coordinator"}},
		{"exactly one segment", KindDataset, "impressions", 64, 64, []string{"coordinator"}},
		{"one byte over a segment", KindDataset, "impressions", 64, 65, []string{"coordinator"}},
		{"several segments", KindDataset, "conversions", 64, 200, []string{"coordinator"}},
		{"default segment size", KindDataset, "impressions", DefaultSegmentSize, 100, []string{"coordinator"}},
		{"result to two recipients", KindResult, "run-0001", 100, 250, []string{"advertiser", "auditor"}},
	}
	vf := &vectorFile{
		Format: "cleanroom envelope v1 test vectors",
		Comment: []string{
			"Made by `go test ./cleanroom/envelope -run TestVectors -update`; format in docs/envelope.md.",
			"Deterministic: data key and salt from a seeded ChaCha8 stream, HPKE randomness from testing/cryptotest.SetGlobalRandom.",
			"recipient_seeds are ML-KEM-768+X25519 private keys (32-byte seeds, as in crypto/hpke NewPrivateKey).",
		},
	}
	for i, c := range cases {
		var seeds, ids []hexBytes
		var pubs []hpke.PublicKey
		for _, r := range c.recipients {
			seed := vectorSeed(r)
			k := vectorKey(t, seed)
			id := KeyID(k.PublicKey())
			seeds, ids, pubs = append(seeds, seed), append(ids, id[:]), append(pubs, k.PublicKey())
		}
		// The first 64 bytes of the stream are the data key and the salt.
		stream := rand.NewChaCha8([32]byte{byte(i + 1)})
		random := make([]byte, dataKeySize+saltSize)
		stream.Read(random)

		hdr := Header{Kind: c.kind, ContractID: contract, ObjectID: c.objectID, SchemaDigest: schema, SegmentSize: c.segSize}
		plaintext := vectorPlaintext(c.size)
		var buf bytes.Buffer
		w, err := newWriter(&buf, hdr, pubs, bytes.NewReader(random), WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plaintext)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		sum, _ := w.Summary()
		h := sum.Header
		okm, err := hkdf.Key(sha256.New, random[:dataKeySize], h.Salt[:], labelPayload, payloadKeySize+noncePrefixSize)
		if err != nil {
			t.Fatal(err)
		}
		hs := h.SHA256()
		vf.Valid = append(vf.Valid, validVector{
			Name: c.name, RecipientSeeds: seeds, RecipientKeyIDs: ids,
			Kind: c.kind.String(), ContractID: contract[:], ObjectID: c.objectID, SchemaDigest: schema[:],
			SegmentSize: c.segSize, DataKey: random[:dataKeySize], Salt: h.Salt[:], HPKEInfo: h.hpkeInfo(),
			PayloadKey: okm[:payloadKeySize], NoncePrefix: okm[payloadKeySize:],
			HeaderLen: h.Len(), HeaderSHA256: hs[:], Segments: int(sum.Segments),
			Plaintext: plaintext, Envelope: buf.Bytes(), EnvelopeSHA256: sum.SHA256[:],
		})
	}

	// Invalid envelopes, all derived from "several segments" (4 segments
	// of 64+16 bytes, the last with 8 bytes of data).
	base := vf.Valid[5]
	env := []byte(base.Envelope)
	full := base.SegmentSize + TagSize
	hl := base.HeaderLen
	seg := func(i int) []byte { return env[hl+i*full : min(hl+(i+1)*full, len(env))] }
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(env)) }
	flipAt := func(off int) []byte { return edit(func(b []byte) []byte { b[off] ^= 0x01; return b }) }
	other := sha256.Sum256([]byte("another contract"))
	cases2 := []struct {
		name     string
		envelope []byte
		seed     []byte
		contract []byte
		err      string
		from     *validVector // default: base
	}{
		{"cut at a segment boundary (last segment dropped)", env[:hl+3*full], nil, nil, "truncated", nil},
		{"cut inside the last segment", env[:len(env)-5], nil, nil, "authentication", nil},
		{"no segments", env[:hl], nil, nil, "truncated", nil},
		{"first segment dropped", append(bytes.Clone(env[:hl]), env[hl+full:]...), nil, nil, "authentication", nil},
		{"segments 0 and 1 swapped", join(env[:hl], seg(1), seg(0), seg(2), seg(3)), nil, nil, "authentication", nil},
		{"segment 1 duplicated", join(env[:hl], seg(0), seg(1), seg(1), seg(2), seg(3)), nil, nil, "authentication", nil},
		{"bit flipped in segment 1", flipAt(hl + full + 10), nil, nil, "authentication", nil},
		{"bit flipped in the last tag", flipAt(len(env) - 1), nil, nil, "authentication", nil},
		{"bit flipped in the salt", flipAt(8 + 2 + 1 + 6 + 4 + 64), nil, nil, "authentication", nil},
		{"bit flipped in the wrapped key", flipAt(hl - 1), nil, nil, "authentication", nil},
		{"byte appended", append(bytes.Clone(env), 0), nil, nil, "authentication", nil},
		{"empty final segment after a full last segment", append(bytes.Clone(vf.Valid[3].Envelope), make([]byte, TagSize)...), nil, nil, "malformed", &vf.Valid[3]},
		{"bad magic", flipAt(0), nil, nil, "malformed", nil},
		{"version 2", edit(func(b []byte) []byte { binary.BigEndian.PutUint16(b[8:], 2); return b }), nil, nil, "malformed", nil},
		{"segment size below the minimum", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[17:], 63); return b }), nil, nil, "malformed", nil},
		{"another contract expected", env, nil, other[:], "mismatch", nil},
		{"another recipient's key", env, vectorSeed("someone else"), nil, "not-recipient", nil},
	}
	for _, c := range cases2 {
		from := c.from
		if from == nil {
			from = &base
		}
		seed := c.seed
		if seed == nil {
			seed = from.RecipientSeeds[0]
		}
		contract := c.contract
		if contract == nil {
			contract = from.ContractID
		}
		vf.Invalid = append(vf.Invalid, invalidVector{
			Name: c.name, RecipientSeed: seed, Kind: from.Kind, ContractID: contract, ObjectID: from.ObjectID,
			SchemaDigest: from.SchemaDigest, Envelope: c.envelope, Error: c.err,
		})
	}
	return vf
}

func TestVectors(t *testing.T) {
	if *update {
		vf := makeVectors(t)
		data, err := json.MarshalIndent(vf, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(data, &vf); err != nil {
		t.Fatal(err)
	}
	if len(vf.Valid) == 0 || len(vf.Invalid) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vf.Valid {
		t.Run(v.Name, func(t *testing.T) { checkValidVector(t, v) })
	}
	for _, v := range vf.Invalid {
		t.Run(v.Name, func(t *testing.T) {
			want := Expect{Kind: parseKind(v.Kind), ContractID: [32]byte(v.ContractID), ObjectID: v.ObjectID}
			if v.SchemaDigest != nil {
				s := [32]byte(v.SchemaDigest)
				want.SchemaDigest = &s
			}
			key := vectorKey(t, v.RecipientSeed)
			wantErr, ok := errorNames[v.Error]
			if !ok {
				t.Fatalf("unknown error name %q", v.Error)
			}
			if _, _, err := Open(v.Envelope, key, want); !errors.Is(err, wantErr) {
				t.Fatalf("Open: %v, want %s", err, v.Error)
			}
			// A streaming decoder meets the damage in another order and
			// may classify it differently, but must refuse.
			if _, err := readAll(v.Envelope, key, want); err == nil || !classified(err) {
				t.Fatalf("NewReader: %v, want a refusal", err)
			}
		})
	}
}

func checkValidVector(t *testing.T, v validVector) {
	env := []byte(v.Envelope)
	if got := sha256.Sum256(env); !bytes.Equal(got[:], v.EnvelopeSHA256) {
		t.Fatal("envelope_sha256 does not match the envelope")
	}
	hdr, err := ParseHeader(bytes.NewReader(env))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Kind.String() != v.Kind || !bytes.Equal(hdr.ContractID[:], v.ContractID) || hdr.ObjectID != v.ObjectID ||
		!bytes.Equal(hdr.SchemaDigest[:], v.SchemaDigest) || hdr.SegmentSize != v.SegmentSize || !bytes.Equal(hdr.Salt[:], v.Salt) {
		t.Fatal("header fields differ from the vector's")
	}
	if hs := hdr.SHA256(); hdr.Len() != v.HeaderLen || !bytes.Equal(hs[:], v.HeaderSHA256) {
		t.Fatal("header length or SHA-256 differs")
	}
	if !bytes.Equal(hdr.hpkeInfo(), v.HPKEInfo) {
		t.Fatal("HPKE info differs")
	}
	keys, err := deriveSegmentKeys(v.DataKey, hdr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keys.key[:], v.PayloadKey) || !bytes.Equal(keys.prefix[:], v.NoncePrefix) {
		t.Fatal("payload key or nonce prefix differs")
	}
	if len(hdr.Recipients) != len(v.RecipientSeeds) {
		t.Fatalf("%d stanzas, %d recipient seeds", len(hdr.Recipients), len(v.RecipientSeeds))
	}
	want := Expect{Kind: parseKind(v.Kind), ContractID: [32]byte(v.ContractID), ObjectID: v.ObjectID}
	for i, seed := range v.RecipientSeeds {
		key := vectorKey(t, seed)
		if id := KeyID(key.PublicKey()); !bytes.Equal(id[:], v.RecipientKeyIDs[i]) || hdr.Recipients[i].KeyID != id {
			t.Fatalf("recipient %d: key id differs", i+1)
		}
		dataKey, err := unwrapKey(hdr, key)
		if err != nil || !bytes.Equal(dataKey, v.DataKey) {
			t.Fatalf("recipient %d: data key does not unwrap to data_key: %v", i+1, err)
		}
		pt, _, err := Open(env, key, want)
		if err != nil || !bytes.Equal(pt, v.Plaintext) {
			t.Fatalf("recipient %d: Open: %v", i+1, err)
		}
		pt, err = readAll(env, key, want)
		if err != nil || !bytes.Equal(pt, v.Plaintext) {
			t.Fatalf("recipient %d: NewReader: %v", i+1, err)
		}
	}
	// Re-seal the body from the data key: the segment encryption is
	// deterministic given the header and the data key.
	var buf bytes.Buffer
	w, err := startWriter(&buf, hdr, v.DataKey, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(v.Plaintext)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), env) {
		t.Fatal("re-sealing the plaintext under data_key does not give the envelope")
	}
	if sum, _ := w.Summary(); sum.Segments != int64(v.Segments) {
		t.Fatalf("%d segments, vector says %d", sum.Segments, v.Segments)
	}
}
