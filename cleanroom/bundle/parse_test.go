package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/internal/bundletest"
	"cleanroom.dev/cleanroom/internal/fuzzseed"
)

var canonical = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// asMap decodes a canonical CBOR map into a generic map for editing.
func asMap(t testing.TB, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := cbor.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := canonical.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reversed re-encodes a CBOR map of fewer than 24 text keys with its
// pairs in reverse canonical order.
func reversed(t testing.TB, data []byte) []byte {
	t.Helper()
	var m map[string]cbor.RawMessage
	if err := cbor.Unmarshal(data, &m); err != nil || len(m) > 23 {
		t.Fatalf("not a small map: %v", err)
	}
	keys := make([][]byte, 0, len(m))
	for k := range m {
		keys = append(keys, encode(t, k))
	}
	slices.SortFunc(keys, func(a, b []byte) int { return -bytes.Compare(a, b) })
	out := []byte{0xa0 + byte(len(m))}
	for _, k := range keys {
		var name string
		if err := cbor.Unmarshal(k, &name); err != nil {
			t.Fatal(err)
		}
		out = append(append(out, k...), m[name]...)
	}
	return out
}

func statementPayload(t testing.TB, signed []byte) []byte {
	t.Helper()
	st, err := cleanroom.DecodeStatement(signed)
	if err != nil {
		t.Fatal(err)
	}
	return st.Payload
}

func TestStatementRoundTrip(t *testing.T) {
	run := honest(t)
	payload := statementPayload(t, run.Signed)
	s, err := bundle.ParseStatement(payload)
	if err != nil {
		t.Fatal(err)
	}
	want := *run.Statement
	want.Time = want.Time.UTC()
	if !reflect.DeepEqual(*s, want) {
		t.Fatalf("parsed statement differs:\n got %+v\nwant %+v", *s, want)
	}
	again, err := s.Payload()
	if err != nil || !bytes.Equal(again, payload) {
		t.Fatalf("payload does not round-trip: %v", err)
	}
	// Times keep their nanoseconds; whole seconds have no fraction.
	for _, tm := range []time.Time{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 25, 12, 0, 0, 120, time.FixedZone("x", 3600))} {
		s.Time = tm
		p, err := s.Payload()
		if err != nil {
			t.Fatal(err)
		}
		got, err := bundle.ParseStatement(p)
		if err != nil || !got.Time.Equal(tm) || got.Time.Location() != time.UTC {
			t.Fatalf("time %v: %v, %v", tm, got.Time, err)
		}
	}
}

func TestParseStatementRefuses(t *testing.T) {
	run := honest(t)
	payload := statementPayload(t, run.Signed)
	edit := func(f func(m map[string]any)) []byte {
		m := asMap(t, payload)
		f(m)
		return encode(t, m)
	}
	dataset0 := func(m map[string]any) map[any]any { return m["datasets"].([]any)[0].(map[any]any) }
	cases := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"empty", nil, "not a CBOR map"},
		{"an array", encode(t, []any{1}), "not a CBOR map"},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = 1 }), `unknown field "extra"`},
		{"missing field", edit(func(m map[string]any) { delete(m, "rows_kept") }), `missing field "rows_kept"`},
		{"unknown nested field", edit(func(m map[string]any) { dataset0(m)["extra"] = 1 }), "unknown field"},
		{"missing nested field", edit(func(m map[string]any) { delete(dataset0(m), "row_count") }), "canonical"},
		{"run id in upper case", edit(func(m map[string]any) { m["run_id"] = strings.ToUpper(m["run_id"].(string)) }), "run_id"},
		{"short commitment", edit(func(m map[string]any) { m["result_commitment"] = make([]byte, 31) }), "result_commitment has 31 bytes"},
		{"v1 result digest", edit(func(m map[string]any) { m["result_sha256"] = m["result_commitment"]; delete(m, "result_commitment") }), `unknown field "result_sha256"`},
		{"digest as text", edit(func(m map[string]any) { m["contract_id"] = strings.Repeat("a", 32) }), "contract_id"},
		{"zero contract id", edit(func(m map[string]any) { m["contract_id"] = make([]byte, 32) }), "all zeros"},
		{"run number 0", edit(func(m map[string]any) { m["run_number"] = 0 }), "run_number"},
		{"negative rows", edit(func(m map[string]any) { m["rows_kept"] = -1 }), "rows_kept"},
		{"huge rows", edit(func(m map[string]any) { m["rows_suppressed"] = uint64(1) << 63 }), "out of range"},
		{"no datasets", edit(func(m map[string]any) { m["datasets"] = []any{} }), "0 datasets"},
		{"dataset twice", edit(func(m map[string]any) { d := m["datasets"].([]any); m["datasets"] = append(d, d[0]) }), "appears twice"},
		{"empty upload statement", edit(func(m map[string]any) { dataset0(m)["upload_statement"] = []byte{} }), "upload_statement"},
		{"no recipients", edit(func(m map[string]any) { m["recipients"] = []any{} }), "0 recipients"},
		{"recipient twice", edit(func(m map[string]any) { r := m["recipients"].([]any); m["recipients"] = append(r, r[0]) }), "appears twice"},
		{"time with an offset", edit(func(m map[string]any) { m["time"] = "2026-11-25T12:00:00+00:00" }), "canonical form"},
		{"time with trailing zeros", edit(func(m map[string]any) { m["time"] = "2026-11-25T12:00:00.100Z" }), "canonical form"},
		{"time not RFC 3339", edit(func(m map[string]any) { m["time"] = "yesterday" }), "not RFC 3339"},
		{"tagged", append([]byte{0xd9, 0xd9, 0xf7}, payload...), "tag"},
		{"trailing byte", append(bytes.Clone(payload), 0), "extraneous data"},
		{"keys out of order", reversed(t, payload), "canonical"},
		{"non-shortest integer", func() []byte {
			b := bytes.Clone(payload)
			// "rows_kept" (69 726f77735f6b657074) is followed by 03.
			i := bytes.Index(b, []byte("\x69rows_kept\x03"))
			if i < 0 {
				t.Fatal("rows_kept not found")
			}
			return append(append(b[:i+10:i+10], 0x18, 0x03), b[i+11:]...)
		}(), "canonical"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bundle.ParseStatement(tc.payload)
			if !errors.Is(err, bundle.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
}

// TestVerifyStatementRefusesV1 checks that a statement of the first
// format, which named the plain SHA-256 of the result, is refused with a
// message that says what to do, even when its signature is good.
func TestVerifyStatementRefusesV1(t *testing.T) {
	w, run := world(t), honest(t)
	payload := statementPayload(t, run.Signed)
	id := w.Coordinator.Identity()
	old, err := cleanroom.SignStatement(id, "application/vnd.cleanroom.result-statement.v1+cbor", payload)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bundle.VerifyStatement(old, id.Public())
	if !errors.Is(err, bundle.ErrMalformed) || !strings.Contains(err.Error(), "format v1") || !strings.Contains(err.Error(), "run the contract again") {
		t.Fatalf("a v1 statement: %v", err)
	}
}

func TestParseRefuses(t *testing.T) {
	run := honest(t)
	data, err := run.Bundle.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Parse(data); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		m := asMap(t, data)
		f(m)
		return encode(t, m)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty bundle"},
		{"an envelope", run.Bundle.EncryptedResult, "is it a result envelope"},
		{"an array", encode(t, []any{1}), "a CBOR map"},
		{"version 3", edit(func(m map[string]any) { m["version"] = 3 }), "version 3 is not supported"},
		{"version 1", edit(func(m map[string]any) { m["version"] = 1 }), "version 1 is not supported: its statement names the unsalted SHA-256 of the result"},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = []byte{1} }), "unknown field"},
		{"missing field", edit(func(m map[string]any) { delete(m, "evidence") }), "evidence has 0 bytes"},
		{"missing entry field", edit(func(m map[string]any) { delete(m["run_started"].(map[any]any), "proof") }), "run_started.proof has 0 bytes"},
		{"field of the wrong type", edit(func(m map[string]any) { m["statement"] = "text" }), "statement"},
		{"oversized statement", edit(func(m map[string]any) { m["statement"] = make([]byte, cleanroom.MaxStatementSize+1) }), "statement has 65537 bytes"},
		{"oversized entry", edit(func(m map[string]any) { m["run_finished"].(map[any]any)["entry"] = make([]byte, bundle.MaxEntrySize+1) }), "run_finished.entry"},
		{"trailing byte", append(bytes.Clone(data), 0), "after its end"},
		{"tagged", append([]byte{0xd9, 0xd9, 0xf7}, data...), "a CBOR map"},
		{"duplicate key", func() []byte {
			b := bytes.Clone(data)
			b[0]++ // one more pair
			return append(b, append([]byte{0x67}, "version\x02"...)...)
		}(), "duplicate"},
		{"non-shortest version", func() []byte {
			b := bytes.Clone(data)
			i := bytes.Index(b, []byte("\x67version\x02"))
			return append(append(b[:i+8:i+8], 0x18, 0x02), b[i+9:]...)
		}(), "canonical"},
		{"keys out of order", reversed(t, data), "canonical"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bundle.Parse(tc.data)
			if !errors.Is(err, bundle.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Parse(data)
		if err != nil {
			if !errors.Is(err, bundle.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		again, err := b.Marshal()
		if err != nil {
			t.Fatalf("a parsed bundle does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatal("a parsed bundle marshals to other bytes")
		}
	})
}

func FuzzParseStatement(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		s, err := bundle.ParseStatement(payload)
		if err != nil {
			if !errors.Is(err, bundle.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		again, err := s.Payload()
		if err != nil {
			t.Fatalf("a parsed statement does not encode: %v", err)
		}
		if !bytes.Equal(again, payload) {
			t.Fatal("a parsed statement encodes to other bytes")
		}
	})
}

// TestWriteFuzzSeeds rewrites the committed seed corpora from an honest run:
// go test ./cleanroom/bundle -run TestWriteFuzzSeeds -update-seeds
func TestWriteFuzzSeeds(t *testing.T) {
	if !*fuzzseed.Update {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz")
	}
	run := honest(t)
	data, err := run.Bundle.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	payload := statementPayload(t, run.Signed)
	// Small valid-looking bundles: the honest one with a short result.
	small := clone(run.Bundle)
	small.EncryptedResult = small.EncryptedResult[:200]
	smallData, err := small.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	fuzzseed.Write(t, "FuzzParse", fuzzseed.Bytes(data, smallData, []byte{0xa0}, []byte{0xa7}, encode(t, map[string]any{"version": 1}))...)
	private, err := privateWorld(t).Run(context.Background(), bundletest.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fuzzseed.Write(t, "FuzzParseStatement", fuzzseed.Bytes(payload, []byte{0xa0}, encode(t, map[string]any{"run_id": "x"}), statementPayload(t, private.Signed))...)
}
