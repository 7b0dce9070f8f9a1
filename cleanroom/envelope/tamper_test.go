package envelope

import (
	"bytes"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var sentinels = []error{ErrMalformed, ErrMismatch, ErrNotRecipient, ErrAuthentication, ErrTruncated}

// mustReject checks that both decoders refuse env: Open returns no
// plaintext, NewReader releases only an authentic prefix, and both errors
// wrap one of the package's sentinels. It returns Open's error.
func mustReject(t *testing.T, what string, env []byte, key hpke.PrivateKey, want Expect, plaintext []byte) error {
	t.Helper()
	got, hdr, err := Open(env, key, want)
	if err == nil {
		t.Fatalf("%s: Open accepted the envelope", what)
	}
	if got != nil || hdr != nil {
		t.Fatalf("%s: Open returned output with error %v", what, err)
	}
	if !classified(err) {
		t.Fatalf("%s: Open error %q wraps no sentinel", what, err)
	}
	part, rerr := readAll(env, key, want)
	if rerr == nil {
		t.Fatalf("%s: NewReader accepted the envelope", what)
	}
	if !classified(rerr) {
		t.Fatalf("%s: NewReader error %q wraps no sentinel", what, rerr)
	}
	if !bytes.HasPrefix(plaintext, part) {
		t.Fatalf("%s: NewReader released %d bytes that are not a prefix of the plaintext", what, len(part))
	}
	return err
}

func classified(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// smallEnvelope is an envelope of several 64-byte segments, the last one
// partial.
func smallEnvelope(t *testing.T, recipients ...hpke.PublicKey) (env, plaintext []byte, hdrLen int) {
	plaintext = pseudoRandom(4*64+10, 42)
	env, sum := seal(t, testHeader(64), recipients, plaintext, 0)
	return env, plaintext, sum.Header.Len()
}

func flip(env []byte, i int) []byte {
	b := bytes.Clone(env)
	b[i] ^= 1 << (i % 8)
	return b
}

func TestHeaderBitFlips(t *testing.T) {
	key := testKey(t, "coordinator")
	env, plaintext, hdrLen := smallEnvelope(t, key.PublicKey())
	for i := range hdrLen {
		mustReject(t, fmt.Sprintf("flip in header byte %d", i), flip(env, i), key, testExpect(), plaintext)
	}
}

func TestBodyBitFlips(t *testing.T) {
	key := testKey(t, "coordinator")
	env, plaintext, hdrLen := smallEnvelope(t, key.PublicKey())
	for i := hdrLen; i < len(env); i++ {
		err := mustReject(t, fmt.Sprintf("flip in body byte %d", i), flip(env, i), key, testExpect(), plaintext)
		if !errors.Is(err, ErrAuthentication) {
			t.Fatalf("flip in body byte %d: %v, want ErrAuthentication", i, err)
		}
		seg := (i - hdrLen) / 80
		if !strings.Contains(err.Error(), fmt.Sprintf("segment %d ", seg)) {
			t.Fatalf("flip in body byte %d: error %q does not name segment %d", i, err, seg)
		}
	}
}

// TestBodyBitFlipsLarge flips sampled bits of an envelope of default-size
// segments.
func TestBodyBitFlipsLarge(t *testing.T) {
	key := testKey(t, "coordinator")
	plaintext := pseudoRandom(3*DefaultSegmentSize+1000, 7)
	env, sum := seal(t, testHeader(0), []hpke.PublicKey{key.PublicKey()}, plaintext, 0)
	full := DefaultSegmentSize + TagSize
	var positions []int
	for s := range 4 {
		base := sum.Header.Len() + s*full
		positions = append(positions, base, base+1)
		if s < 3 {
			positions = append(positions, base+full/2, base+full-TagSize, base+full-1) // middle, tag
		}
	}
	positions = append(positions, len(env)-1)
	for _, i := range positions {
		got, _, err := Open(flip(env, i), key, testExpect())
		if !errors.Is(err, ErrAuthentication) || got != nil {
			t.Fatalf("flip at byte %d: %v", i, err)
		}
	}
}

func TestTruncation(t *testing.T) {
	key := testKey(t, "coordinator")
	env, plaintext, hdrLen := smallEnvelope(t, key.PublicKey())
	for n := range len(env) {
		err := mustReject(t, fmt.Sprintf("truncated to %d bytes", n), env[:n], key, testExpect(), plaintext)
		if n > hdrLen && (n-hdrLen)%80 == 0 {
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("truncated at the segment boundary %d: %v, want ErrTruncated", n, err)
			}
			_, rerr := readAll(env[:n], key, testExpect())
			if !errors.Is(rerr, ErrTruncated) {
				t.Fatalf("NewReader truncated at the segment boundary %d: %v, want ErrTruncated", n, rerr)
			}
		}
	}
}

func TestAppendedBytes(t *testing.T) {
	key := testKey(t, "coordinator")
	env, plaintext, _ := smallEnvelope(t, key.PublicKey())
	for _, tail := range [][]byte{{0}, make([]byte, TagSize), make([]byte, 17), make([]byte, 80)} {
		mustReject(t, fmt.Sprintf("%d bytes appended", len(tail)), append(bytes.Clone(env), tail...), key, testExpect(), plaintext)
	}
	// An envelope whose last segment is full, with its own full last
	// segment duplicated: the first copy is now followed by data.
	full := pseudoRandom(2*64, 3)
	env2, sum := seal(t, testHeader(64), []hpke.PublicKey{key.PublicKey()}, full, 0)
	last := env2[len(env2)-80:]
	err := mustReject(t, "last segment repeated", append(bytes.Clone(env2), last...), key, testExpect(), full)
	if !errors.Is(err, ErrAuthentication) {
		t.Fatalf("last segment repeated: %v", err)
	}
	_ = sum
}

// segments splits an envelope into its header and segments.
func segments(env []byte, hdrLen, segSize int) (hdr []byte, segs [][]byte) {
	full := segSize + TagSize
	for b := env[hdrLen:]; len(b) > 0; {
		k := min(full, len(b))
		segs = append(segs, b[:k])
		b = b[k:]
	}
	return env[:hdrLen], segs
}

func join(hdr []byte, segs ...[]byte) []byte {
	out := bytes.Clone(hdr)
	for _, s := range segs {
		out = append(out, s...)
	}
	return out
}

func TestSegmentsDroppedDuplicatedReordered(t *testing.T) {
	key := testKey(t, "coordinator")
	env, plaintext, hdrLen := smallEnvelope(t, key.PublicKey())
	hdr, segs := segments(env, hdrLen, 64)
	if len(segs) != 5 {
		t.Fatalf("%d segments, want 5", len(segs))
	}
	without := func(i int) [][]byte {
		var out [][]byte
		for j, s := range segs {
			if j != i {
				out = append(out, s)
			}
		}
		return out
	}
	for i := range segs {
		mustReject(t, fmt.Sprintf("segment %d dropped", i), join(hdr, without(i)...), key, testExpect(), plaintext)
		dup := append(append([][]byte{}, segs[:i+1]...), segs[i:]...)
		mustReject(t, fmt.Sprintf("segment %d duplicated", i), join(hdr, dup...), key, testExpect(), plaintext)
		for j := i + 1; j < len(segs); j++ {
			swapped := append([][]byte{}, segs...)
			swapped[i], swapped[j] = swapped[j], swapped[i]
			mustReject(t, fmt.Sprintf("segments %d and %d swapped", i, j), join(hdr, swapped...), key, testExpect(), plaintext)
		}
	}
	mustReject(t, "no segments", join(hdr), key, testExpect(), plaintext)
}

func TestSpliceAcrossEnvelopes(t *testing.T) {
	key := testKey(t, "coordinator")
	envA, plaintext, hdrLen := smallEnvelope(t, key.PublicKey())
	envB, _, _ := smallEnvelope(t, key.PublicKey()) // same plaintext and header fields, fresh data key
	hdrA, segsA := segments(envA, hdrLen, 64)
	hdrB, segsB := segments(envB, hdrLen, 64)
	mustReject(t, "header of A, body of B", join(hdrA, segsB...), key, testExpect(), plaintext)
	mustReject(t, "header of B, body of A", join(hdrB, segsA...), key, testExpect(), plaintext)
	for i := range segsA {
		mixed := append([][]byte{}, segsA...)
		mixed[i] = segsB[i]
		err := mustReject(t, fmt.Sprintf("segment %d from B", i), join(hdrA, mixed...), key, testExpect(), plaintext)
		if !errors.Is(err, ErrAuthentication) {
			t.Fatalf("segment %d from B: %v", i, err)
		}
	}
}

func TestStanzaSwaps(t *testing.T) {
	a, b := testKey(t, "a"), testKey(t, "b")
	env, plaintext, hdrLen := smallEnvelope(t, a.PublicKey(), b.PublicKey())
	first := hdrLen - 2*stanzaSize
	s1 := bytes.Clone(env[first : first+stanzaSize])
	s2 := bytes.Clone(env[first+stanzaSize : hdrLen])

	swapped := bytes.Clone(env)
	copy(swapped[first:], s2)
	copy(swapped[first+stanzaSize:], s1)
	for _, k := range []hpke.PrivateKey{a, b} {
		err := mustReject(t, "stanzas swapped", swapped, k, testExpect(), plaintext)
		if !errors.Is(err, ErrAuthentication) {
			t.Fatalf("stanzas swapped: %v", err)
		}
	}

	// A stanza for the same key and same header fields, from another envelope.
	other, _, _ := smallEnvelope(t, a.PublicKey(), b.PublicKey())
	replaced := bytes.Clone(env)
	copy(replaced[first:first+stanzaSize], other[first:first+stanzaSize])
	err := mustReject(t, "stanza from another envelope", replaced, a, testExpect(), plaintext)
	if !errors.Is(err, ErrAuthentication) || !strings.Contains(err.Error(), "recipient 1") {
		t.Fatalf("stanza from another envelope: %v", err)
	}
	// The untouched stanza unwraps, but the header no longer matches.
	if err := mustReject(t, "other stanza replaced", replaced, b, testExpect(), plaintext); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("other stanza replaced: %v", err)
	}
}

func TestWrongKey(t *testing.T) {
	key := testKey(t, "coordinator")
	env, plaintext, _ := smallEnvelope(t, key.PublicKey())
	err := mustReject(t, "wrong key", env, testKey(t, "someone else"), testExpect(), plaintext)
	if !errors.Is(err, ErrNotRecipient) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, _, err := Open(env, nil, testExpect()); !errors.Is(err, ErrNotRecipient) {
		t.Fatalf("nil key: %v", err)
	}
}

func TestMismatch(t *testing.T) {
	key := testKey(t, "coordinator")
	otherContract := [32]byte{1}
	otherSchema := [32]byte{2}
	tests := []struct {
		name  string
		edit  func(*Header)
		field string
	}{
		{"another contract", func(h *Header) { h.ContractID = otherContract }, "contract id"},
		{"another dataset", func(h *Header) { h.ObjectID = "conversions" }, "dataset id"},
		{"another kind", func(h *Header) { h.Kind = KindResult }, "kind"},
		{"another schema", func(h *Header) { h.SchemaDigest = otherSchema }, "schema digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := testHeader(64)
			tt.edit(&hdr)
			plaintext := []byte("rows")
			env, _ := seal(t, hdr, []hpke.PublicKey{key.PublicKey()}, plaintext, 0)
			err := mustReject(t, tt.name, env, key, testExpect(), plaintext)
			var m *MismatchError
			if !errors.As(err, &m) || m.Field != tt.field {
				t.Fatalf("error %v, want a mismatch of %q", err, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not name %q", err, tt.field)
			}
		})
	}
	// Without a pinned schema digest, another schema is accepted.
	hdr := testHeader(64)
	hdr.SchemaDigest = otherSchema
	env, _ := seal(t, hdr, []hpke.PublicKey{key.PublicKey()}, []byte("rows"), 0)
	want := testExpect()
	want.SchemaDigest = nil
	if _, _, err := Open(env, key, want); err != nil {
		t.Fatalf("Open without a schema pin: %v", err)
	}
	// An Expect that pins nothing is a caller error, not an acceptance.
	for _, w := range []Expect{{}, {Kind: KindDataset}, {Kind: KindDataset, ContractID: testContract}} {
		if _, _, err := Open(env, key, w); err == nil || !strings.Contains(err.Error(), "Expect.") {
			t.Fatalf("Open with Expect %+v: %v", w, err)
		}
	}
}

func TestParseHeaderErrors(t *testing.T) {
	key := testKey(t, "coordinator")
	env, _, hdrLen := smallEnvelope(t, key.PublicKey())
	objLenOff := fixedPreambleLen - 1
	countOff := fixedPreambleLen + len("impressions")
	put16 := func(off int, v uint16) func([]byte) { return func(b []byte) { binary.BigEndian.PutUint16(b[off:], v) } }
	put32 := func(off int, v uint32) func([]byte) { return func(b []byte) { binary.BigEndian.PutUint32(b[off:], v) } }
	tests := []struct {
		name   string
		edit   func([]byte)
		cut    int // if > 0, the file is cut to this length
		field  string
		offset int64
	}{
		{"bad magic", func(b []byte) { b[1] = 'X' }, 0, "magic", 0},
		{"version 2", put16(8, 2), 0, "version", 8},
		{"kind 0", func(b []byte) { b[10] = 0 }, 0, "kind", 10},
		{"kind 3", func(b []byte) { b[10] = 3 }, 0, "kind", 10},
		{"KEM", put16(11, 0x0020), 0, "HPKE KEM id", 11},
		{"KDF", put16(13, 0x0002), 0, "HPKE KDF id", 13},
		{"AEAD", put16(15, 0x0003), 0, "HPKE AEAD id", 15},
		{"segment size 0", put32(17, 0), 0, "segment size", 17},
		{"segment size huge", put32(17, MaxSegmentSize+1), 0, "segment size", 17},
		{"object id length 0", func(b []byte) { b[objLenOff] = 0 }, 0, "object id length", int64(objLenOff)},
		{"object id length 65", func(b []byte) { b[objLenOff] = 65 }, 0, "object id length", int64(objLenOff)},
		{"object id control byte", func(b []byte) { b[objLenOff+3] = '\n' }, 0, "object id", int64(objLenOff + 1)},
		{"no recipients", put16(countOff, 0), 0, "recipient count", int64(countOff)},
		{"too many recipients", put16(countOff, MaxRecipients+1), 0, "recipient count", int64(countOff)},
		{"two recipients, one present", put16(countOff, 2), 0, "recipient 2 encapsulated key", int64(len(env))},
		{"empty file", nil, -1, "magic", 0},
		{"cut in magic", nil, 5, "magic", 5},
		{"cut in contract id", nil, 30, "contract id", 30},
		{"cut in stanza", nil, hdrLen - 10, "recipient 1 wrapped key", int64(hdrLen - 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(env)
			if tt.edit != nil {
				tt.edit(b)
			}
			switch {
			case tt.cut < 0:
				b = nil
			case tt.cut > 0:
				b = b[:tt.cut]
			}
			_, err := ParseHeader(bytes.NewReader(b))
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseHeader: %v, want a FormatError", err)
			}
			if fe.Field != tt.field || fe.Offset != tt.offset {
				t.Fatalf("error at %q offset %d, want %q offset %d: %v", fe.Field, fe.Offset, tt.field, tt.offset, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("byte offset %d", tt.offset)) {
				t.Fatalf("error %q does not name the offset", err)
			}
		})
	}
}

func TestParseHeaderShortTextFile(t *testing.T) {
	_, err := ParseHeader(strings.NewReader("hello\n"))
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Field != "magic" || fe.Offset != 0 || !strings.Contains(err.Error(), "not a Cleanroom envelope") {
		t.Fatalf("ParseHeader of a short text file: %v", err)
	}
}

func TestDuplicateStanzaRefused(t *testing.T) {
	a, b := testKey(t, "a"), testKey(t, "b")
	env, _, hdrLen := smallEnvelope(t, a.PublicKey(), b.PublicKey())
	first := hdrLen - 2*stanzaSize
	dup := bytes.Clone(env)
	copy(dup[first+stanzaSize:hdrLen], env[first:first+stanzaSize])
	_, err := ParseHeader(bytes.NewReader(dup))
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Field != "recipient 2 key id" || fe.Offset != int64(first+stanzaSize) {
		t.Fatalf("ParseHeader: %v", err)
	}
}

func TestBodyLayout(t *testing.T) {
	tests := []struct {
		body          int64
		seg           int
		segments, pt  int64
		wantErr       error
		lastPlaintext int64
	}{
		{15, 64, 0, 0, ErrTruncated, 0},
		{16, 64, 1, 0, nil, 0},
		{17, 64, 1, 1, nil, 1},
		{80, 64, 1, 64, nil, 64},
		{81, 64, 0, 0, ErrMalformed, 0},
		{96, 64, 0, 0, ErrMalformed, 0},
		{97, 64, 2, 65, nil, 1},
		{160, 64, 2, 128, nil, 64},
		{int64(MaxSegments) * 80, 64, MaxSegments, int64(MaxSegments) * 64, nil, 64},
		{int64(MaxSegments)*80 + 17, 64, 0, 0, ErrMalformed, 0},
	}
	for _, tt := range tests {
		l, err := BodyLayout(tt.body, tt.seg, 100)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("BodyLayout(%d, %d): %v, want %v", tt.body, tt.seg, err, tt.wantErr)
			}
			continue
		}
		if err != nil || l.Segments != tt.segments || l.PlaintextSize != tt.pt || l.LastSegment != tt.lastPlaintext {
			t.Errorf("BodyLayout(%d, %d) = %+v, %v; want %d segments, %d bytes", tt.body, tt.seg, l, err, tt.segments, tt.pt)
		}
	}
}
