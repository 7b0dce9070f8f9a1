package tlog_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

func goldenCheckpoint(f *testing.F) []byte {
	raw, err := os.ReadFile(filepath.Join("testdata", "golden-log", "checkpoint"))
	if err != nil {
		f.Fatal(err)
	}
	return raw
}

func FuzzVerifyCheckpoint(f *testing.F) {
	good := goldenCheckpoint(f)
	f.Add(good)
	f.Add(good[:bytes.Index(good, []byte("\n\n"))+1])
	f.Add([]byte("origin\n1\nAAAA\n\n— origin AAAAAAAA\n"))
	v := tlogtest.Verifier(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		cp, err := v.VerifyCheckpoint(raw)
		if err != nil {
			return
		}
		root := cp.Root()
		body := fmt.Sprintf("%s\n%d\n%s\n\n", cp.Origin(), cp.Size(), base64.StdEncoding.EncodeToString(root[:]))
		if !bytes.HasPrefix(raw, []byte(body)) || !bytes.Equal(cp.Bytes(), raw) {
			t.Fatalf("accepted %q, which is not the canonical form of %v", raw, cp)
		}
	})
}

func FuzzParseInclusionProof(f *testing.F) {
	enc, err := os.ReadFile(filepath.Join("testdata", "golden-log-entry-2.proof"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add(enc[:len(enc)-1])
	f.Add([]byte("cleanroom/tlog-inclusion-proof/v1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := tlog.ParseInclusionProof(b)
		if err != nil {
			return
		}
		again, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip of %x gave %x, %v", b, again, err)
		}
	})
}

func FuzzParseEntryBundle(f *testing.F) {
	bundle, err := os.ReadFile(filepath.Join("testdata", "golden-log", "tile", "entries", "000.p", "5"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bundle, 5)
	f.Add(bundle[:len(bundle)-2], 5)
	f.Add([]byte{0, 0}, 1)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > tlog.TileWidth {
			return
		}
		entries, err := tlog.ParseEntryBundle(b, n)
		if err != nil {
			return
		}
		if len(entries) != n {
			t.Fatalf("%d entries, asked for %d", len(entries), n)
		}
		var again []byte
		for _, e := range entries {
			again = binary.BigEndian.AppendUint16(again, uint16(len(e)))
			again = append(again, e...)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("bundle %x re-encodes as %x", b, again)
		}
	})
}

// goldenViewHead is a view head of the golden log signed with the test key:
// the view "view-a" shows 2 of its 5 entries.
func goldenViewHead(f *testing.F) []byte {
	v := tlogtest.Verifier(f)
	text, err := tlog.ViewHeadText(v.Origin(), "view-a", 5, 2)
	if err != nil {
		f.Fatal(err)
	}
	return tlogtest.SignNote(f, string(text), tlogtest.LogSigner(f))
}

func FuzzVerifyViewHead(f *testing.F) {
	good := goldenViewHead(f)
	f.Add(good)
	f.Add(good[:bytes.Index(good, []byte("\n\n"))+1])
	f.Add(goldenCheckpoint(f))
	v := tlogtest.Verifier(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := v.VerifyViewHead(raw, "view-a")
		if err != nil {
			return
		}
		body := fmt.Sprintf("%s/view/%s\n%d\n%d\n\n", v.Origin(), h.View(), h.Size(), h.Count())
		if !bytes.HasPrefix(raw, []byte(body)) || !bytes.Equal(h.Bytes(), raw) || h.Count() > h.Size() {
			t.Fatalf("accepted %q, which is not the canonical form of a head of %d of %d", raw, h.Count(), h.Size())
		}
	})
}
