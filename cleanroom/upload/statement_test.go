package upload

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/internal/canon"
)

var (
	testContract = sha256.Sum256([]byte("contract"))
	testSchema   = sha256.Sum256([]byte("schema"))
)

// sealed writes a real dataset envelope and returns its summary.
func sealed(t *testing.T, rows []byte) envelope.Summary {
	t.Helper()
	coord, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := envelope.NewWriter(&buf, envelope.Header{
		Kind: envelope.KindDataset, ContractID: testContract, ObjectID: "impressions", SchemaDigest: testSchema, SegmentSize: 64,
	}, []hpke.PublicKey{coord.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(rows)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := w.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if sum.SHA256 != sha256.Sum256(buf.Bytes()) {
		t.Fatal("summary digest differs from the envelope's")
	}
	return sum
}

func expect(sum envelope.Summary) Expect {
	d, h, s := sum.SHA256, sum.Header.SHA256(), testSchema
	return Expect{ContractID: testContract, DatasetID: "impressions", CiphertextSHA256: &d, HeaderSHA256: &h, SchemaDigest: &s}
}

func TestSignVerify(t *testing.T) {
	provider, err := cleanroom.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	sum := sealed(t, []byte(strings.Repeat("row\n", 100)))
	st, err := FromEnvelope(sum, 100)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := st.Sign(provider)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(signed, provider.Public(), expect(sum))
	if err != nil {
		t.Fatal(err)
	}
	if *got != st {
		t.Fatalf("verified %+v, signed %+v", got, st)
	}
	if got.CiphertextSize != sum.Size || got.PlaintextSize != 400 || got.SegmentSize != 64 || got.RowCount != 100 || got.HeaderSHA256 != sum.Header.SHA256() {
		t.Fatalf("statement %+v does not describe the envelope", got)
	}

	// Only the digest and contract/dataset pins are required.
	if _, err := Verify(signed, provider.Public(), Expect{ContractID: testContract, DatasetID: "impressions"}); err != nil {
		t.Fatal(err)
	}

	other, _ := cleanroom.GenerateIdentity()
	if _, err := Verify(signed, other.Public(), expect(sum)); !errors.Is(err, cleanroom.ErrBadSignature) {
		t.Fatalf("verified with another key: %v", err)
	}
	payload, _ := st.Payload()
	approval, _ := cleanroom.SignStatement(provider, cleanroom.ContentTypeContractApproval, payload)
	if _, err := Verify(approval, provider.Public(), expect(sum)); !errors.Is(err, cleanroom.ErrBadSignature) || !strings.Contains(err.Error(), "content type") {
		t.Fatalf("verified a statement of another content type: %v", err)
	}
	tampered := bytes.Clone(signed)
	tampered[len(tampered)-70] ^= 1
	if _, err := Verify(tampered, provider.Public(), expect(sum)); err == nil {
		t.Fatal("verified a tampered statement")
	}
}

func TestVerifyMismatch(t *testing.T) {
	provider, _ := cleanroom.GenerateIdentity()
	sum := sealed(t, []byte("rows"))
	st, _ := FromEnvelope(sum, 1)
	signed, _ := st.Sign(provider)
	otherDigest := [32]byte{9}
	tests := []struct {
		field string
		edit  func(*Expect)
	}{
		{"contract_id", func(e *Expect) { e.ContractID = [32]byte{1} }},
		{"dataset_id", func(e *Expect) { e.DatasetID = "conversions" }},
		{"ciphertext_sha256", func(e *Expect) { e.CiphertextSHA256 = &otherDigest }},
		{"header_sha256", func(e *Expect) { e.HeaderSHA256 = &otherDigest }},
		{"schema_digest", func(e *Expect) { e.SchemaDigest = &otherDigest }},
	}
	for _, tt := range tests {
		want := expect(sum)
		tt.edit(&want)
		_, err := Verify(signed, provider.Public(), want)
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: %v", tt.field, err)
		}
	}
	if _, err := Verify(signed, provider.Public(), Expect{}); err == nil {
		t.Error("Verify with an empty Expect succeeded")
	}
}

// TestVersion1Refused checks that a version 1 statement — the same
// signature and payload layout, without header_sha256 — is refused with a
// message that says what to do, even when it is validly signed.
func TestVersion1Refused(t *testing.T) {
	provider, _ := cleanroom.GenerateIdentity()
	sum := sealed(t, []byte("rows"))
	st, _ := FromEnvelope(sum, 1)
	payload, err := canon.Marshal(struct {
		ContractID       []byte `cbor:"contract_id"`
		DatasetID        string `cbor:"dataset_id"`
		CiphertextSHA256 []byte `cbor:"ciphertext_sha256"`
		CiphertextSize   uint64 `cbor:"ciphertext_size"`
		PlaintextSize    uint64 `cbor:"plaintext_size"`
		SegmentSize      uint64 `cbor:"segment_size"`
		RowCount         uint64 `cbor:"row_count"`
		SchemaDigest     []byte `cbor:"schema_digest"`
	}{st.ContractID[:], st.DatasetID, st.CiphertextSHA256[:], uint64(st.CiphertextSize), uint64(st.PlaintextSize),
		uint64(st.SegmentSize), uint64(st.RowCount), st.SchemaDigest[:]})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := cleanroom.SignStatement(provider, "application/vnd.cleanroom.upload-statement.v1+cbor", payload)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(v1, provider.Public(), expect(sum))
	if !errors.Is(err, ErrOldVersion) || !strings.Contains(err.Error(), "version 1") || !strings.Contains(err.Error(), "upload the dataset again") {
		t.Fatalf("a version 1 statement: %v", err)
	}
	// The same payload under the version 2 content type lacks a field.
	v2, _ := cleanroom.SignStatement(provider, cleanroom.ContentTypeUploadStatement, payload)
	if _, err := Verify(v2, provider.Public(), expect(sum)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `missing field "header_sha256"`) {
		t.Fatalf("a version 1 payload signed as version 2: %v", err)
	}
}

func TestFromEnvelopeRefusesResults(t *testing.T) {
	sum := sealed(t, nil)
	sum.Header.Kind = envelope.KindResult
	if _, err := FromEnvelope(sum, 0); err == nil {
		t.Fatal("FromEnvelope accepted a result envelope")
	}
}

func goldenStatement() Statement {
	return Statement{
		ContractID:       testContract,
		DatasetID:        "impressions",
		CiphertextSHA256: sha256.Sum256([]byte("ciphertext")),
		HeaderSHA256:     sha256.Sum256([]byte("header")),
		CiphertextSize:   1_500_000,
		PlaintextSize:    1_048_576,
		SegmentSize:      1 << 20,
		RowCount:         10_000,
		SchemaDigest:     testSchema,
	}
}

// TestPayloadGolden pins the canonical encoding (docs/envelope.md shows it).
func TestPayloadGolden(t *testing.T) {
	st := goldenStatement()
	p, err := st.Payload()
	if err != nil {
		t.Fatal(err)
	}
	const want = "a9" +
		"6972 6f775f636f756e74 192710" + // "row_count": 10000
		"6a 646174617365745f6964 6b 696d7072657373696f6e73" + // "dataset_id": "impressions"
		"6b 636f6e74726163745f6964 5820 " + "%contract%" +
		"6c 7365676d656e745f73697a65 1a00100000" + // "segment_size": 1048576
		"6d 6865616465725f736861323536 5820 " + "%header%" +
		"6d 736368656d615f646967657374 5820 " + "%schema%" +
		"6e 706c61696e746578745f73697a65 1a00100000" + // "plaintext_size": 1048576
		"6f 636970686572746578745f73697a65 1a0016e360" + // "ciphertext_size": 1500000
		"71 636970686572746578745f736861323536 5820 " + "%digest%"
	w := strings.NewReplacer(" ", "", "%contract%", hex.EncodeToString(st.ContractID[:]),
		"%schema%", hex.EncodeToString(st.SchemaDigest[:]), "%header%", hex.EncodeToString(st.HeaderSHA256[:]), "%digest%", hex.EncodeToString(st.CiphertextSHA256[:])).Replace(want)
	if got := hex.EncodeToString(p); got != w {
		t.Fatalf("payload\n got %s\nwant %s", got, w)
	}
	back, err := ParsePayload(p)
	if err != nil || *back != st {
		t.Fatalf("ParsePayload: %v", err)
	}
}

func TestParsePayloadRefuses(t *testing.T) {
	st := goldenStatement()
	good, _ := st.Payload()
	var fields map[string]cbor.RawMessage
	if err := cbor.Unmarshal(good, &fields); err != nil {
		t.Fatal(err)
	}
	enc := func(m map[string]any) []byte {
		b, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			t.Fatal(err)
		}
		out, err := b.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	with := func(edit func(map[string]any)) []byte {
		m := map[string]any{}
		for k, v := range fields {
			m[k] = v
		}
		edit(m)
		return enc(m)
	}
	unsorted, _ := cbor.EncOptions{Sort: cbor.SortNone}.EncMode()
	unsortedPayload, _ := unsorted.Marshal(wire{ContractID: st.ContractID[:], DatasetID: st.DatasetID, CiphertextSHA256: st.CiphertextSHA256[:],
		HeaderSHA256: st.HeaderSHA256[:], CiphertextSize: 1_500_000, PlaintextSize: 1 << 20, SegmentSize: 1 << 20, RowCount: 10_000, SchemaDigest: st.SchemaDigest[:]})
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"empty", nil, "not a CBOR map"},
		{"array", []byte{0x80}, "not a CBOR map"},
		{"trailing byte", append(bytes.Clone(good), 0), "not a CBOR map"},
		{"unknown field", with(func(m map[string]any) { m["extra"] = 1 }), `unknown field "extra"`},
		{"missing field", with(func(m map[string]any) { delete(m, "row_count") }), `missing field "row_count"`},
		{"row_count as text", with(func(m map[string]any) { m["row_count"] = "10000" }), "row_count"},
		{"negative row_count", with(func(m map[string]any) { m["row_count"] = -1 }), "row_count"},
		{"short contract_id", with(func(m map[string]any) { m["contract_id"] = make([]byte, 31) }), "contract_id has 31 bytes"},
		{"zero contract_id", with(func(m map[string]any) { m["contract_id"] = make([]byte, 32) }), "contract_id: is all zeros"},
		{"bad dataset_id", with(func(m map[string]any) { m["dataset_id"] = "a b" }), "dataset_id"},
		{"segment_size 0", with(func(m map[string]any) { m["segment_size"] = 0 }), "segment_size"},
		{"huge size", with(func(m map[string]any) { m["plaintext_size"] = uint64(1) << 63 }), "plaintext_size"},
		{"ciphertext smaller than plaintext", with(func(m map[string]any) { m["ciphertext_size"] = 100 }), "ciphertext_size"},
		{"non-minimal integer", with(func(m map[string]any) { m["row_count"] = cbor.RawMessage{0x1a, 0, 0, 0x27, 0x10} }), "canonical"},
		{"unsorted keys", unsortedPayload, "canonical"},
		{"duplicate key", append([]byte{0xaa}, append(good[1:], good[1:1+1+9+3]...)...), "duplicate map key"},
		{"short header_sha256", with(func(m map[string]any) { m["header_sha256"] = make([]byte, 16) }), "header_sha256 has 16 bytes"},
		{"tagged", append([]byte{0xd8, 0x18}, good...), "not a CBOR map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePayload(tt.payload)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParsePayload: %v, want ErrMalformed mentioning %q", err, tt.want)
			}
		})
	}
}

// FuzzParsePayload checks that ParsePayload never panics and that what it
// accepts is exactly the canonical encoding of the statement it returns.
func FuzzParsePayload(f *testing.F) {
	st := goldenStatement()
	good, _ := st.Payload()
	f.Add(good)
	f.Fuzz(func(t *testing.T, payload []byte) {
		s, err := ParsePayload(payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		again, err := s.Payload()
		if err != nil || !bytes.Equal(again, payload) {
			t.Fatalf("accepted payload does not re-encode to itself: %v", err)
		}
	})
}
