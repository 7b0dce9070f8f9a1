package eventlog_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

// proofFor builds the audit path of entry index at size from the fixture's
// tiles with Tessera's proof builder, independently of the code under test.
func proofFor(t *testing.T, dir string, index, size uint64) [][]byte {
	t.Helper()
	pb, err := client.NewProofBuilder(tlogtest.Context(t), size, func(_ context.Context, level, idx uint64, p uint8) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, layout.TilePath(level, idx, p)))
		if errors.Is(err, os.ErrNotExist) && p != 0 {
			b, err = os.ReadFile(filepath.Join(dir, layout.TilePath(level, idx, 0)))
		}
		return b, err
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pb.InclusionProof(tlogtest.Context(t), index)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyInclusion(t *testing.T) {
	fx := getFixture(t)
	v := tlogtest.Verifier(t)
	cp := tlogtest.MustVerify(t, v, fx.cps[600])
	for _, i := range []uint64{0, 1, 255, 256, 511, 512, 599} {
		p := proofFor(t, fx.dir, i, 600)
		if err := tlog.VerifyInclusion(cp, i, fx.entries[i], p); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		bad := []struct {
			name  string
			index uint64
			leaf  []byte
			proof [][]byte
		}{
			{"wrong bytes", i, append(bytes.Clone(fx.entries[i]), 'x'), p},
			{"wrong index", (i + 1) % 600, fx.entries[i], p},
			{"index beyond size", 600, fx.entries[i], p},
			{"extra hash", i, fx.entries[i], append(append([][]byte{}, p...), make([]byte, 32))},
			{"missing hash", i, fx.entries[i], p[:len(p)-1]},
			{"short hash", i, fx.entries[i], append([][]byte{p[0][:31]}, p[1:]...)},
			{"altered hash", i, fx.entries[i], append([][]byte{flipByte(0)(p[0])}, p[1:]...)},
		}
		for _, tc := range bad {
			if err := tlog.VerifyInclusion(cp, tc.index, tc.leaf, tc.proof); !errors.Is(err, tlog.ErrBadProof) {
				t.Errorf("entry %d, %s: err = %v, want ErrBadProof", i, tc.name, err)
			}
		}
	}
}

func TestInclusionProofEncoding(t *testing.T) {
	fx := getFixture(t)
	v := tlogtest.Verifier(t)
	const index = 300
	path := proofFor(t, fx.dir, index, 600)
	ip := &tlog.InclusionProof{Checkpoint: fx.cps[600], Index: index, Hashes: make([][32]byte, len(path))}
	for i, h := range path {
		copy(ip.Hashes[i][:], h)
	}
	enc, err := ip.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := tlog.ParseInclusionProof(enc)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := v.VerifyInclusionProof(dec, fx.entries[index])
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size() != 600 {
		t.Fatalf("proof checkpoint size %d", cp.Size())
	}
	if _, err := v.VerifyInclusionProof(dec, fx.entries[index+1]); !errors.Is(err, tlog.ErrBadProof) {
		t.Fatalf("other entry: err = %v", err)
	}
	other, err := tlog.NewVerifier("example.com/other", tlogtest.Identity().Public().SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.VerifyInclusionProof(dec, fx.entries[index]); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Fatalf("other log's verifier: err = %v", err)
	}

	magicLen := len("cleanroom/tlog-inclusion-proof/v1\n")
	bad := map[string][]byte{
		"empty":           nil,
		"wrong magic":     append([]byte("cleanroom/tlog-inclusion-proof/v2\n"), enc[magicLen:]...),
		"trailing byte":   append(bytes.Clone(enc), 0),
		"truncated":       enc[:len(enc)-1],
		"cut in index":    enc[:magicLen+4],
		"zero checkpoint": append(append(bytes.Clone(enc[:magicLen+8]), 0, 0), enc[magicLen+10:]...),
		"too many hashes": func() []byte { b := bytes.Clone(enc); b[magicLen+10+len(fx.cps[600])] = 65; return b }(),
		"checkpoint too long": func() []byte {
			b := bytes.Clone(enc)
			b[magicLen+8], b[magicLen+9] = 0x10, 0x01
			return b
		}(),
	}
	for name, b := range bad {
		if _, err := tlog.ParseInclusionProof(b); !errors.Is(err, tlog.ErrBadProof) {
			t.Errorf("%s: err = %v, want ErrBadProof", name, err)
		}
	}
	if _, err := (&tlog.InclusionProof{}).MarshalBinary(); err == nil {
		t.Error("proof without a checkpoint encoded")
	}
}
