package tlog_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

func TestVerifyCheckpoint(t *testing.T) {
	id := tlogtest.Identity()
	v := tlogtest.Verifier(t)
	origin := v.Origin()
	if !strings.HasPrefix(origin, tlog.OriginPrefix) || !strings.HasSuffix(origin, id.Public().Fingerprint().String()) {
		t.Fatalf("origin %q does not follow the convention", origin)
	}
	key := id.Signer().(ed25519.PrivateKey)
	signer := tlogtest.NewSigner(t, origin, key)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	otherSameName := tlogtest.NewSigner(t, origin, otherKey)
	otherName := tlogtest.NewSigner(t, "example.com/other-log", otherKey)
	wrongNameSameKey := tlogtest.NewSigner(t, "example.com/other-log", key)

	root := sha256.Sum256([]byte("root"))
	rootB64 := base64.StdEncoding.EncodeToString(root[:])
	empty := sha256.Sum256(nil)
	if !strings.ContainsAny(base64.URLEncoding.EncodeToString(root[:]), "-_") {
		t.Fatal("the URL-alphabet case needs a root whose base64 has '-' or '_'")
	}
	body := fmt.Sprintf("%s\n42\n%s\n", origin, rootB64)
	good := tlogtest.SignNote(t, body, signer)

	cp, err := v.VerifyCheckpoint(good)
	if err != nil {
		t.Fatalf("good checkpoint: %v", err)
	}
	if cp.Size() != 42 || cp.Root() != root || cp.Origin() != origin || string(cp.Bytes()) != string(good) {
		t.Fatalf("parsed %v, origin %q", cp, cp.Origin())
	}

	tests := []struct {
		name string
		raw  []byte
		want string // part of the error
	}{
		{"wrong key", tlogtest.SignNote(t, body, otherSameName), "signed by another key under the same name"},
		{"wrong origin line", tlogtest.SignNote(t, fmt.Sprintf("example.com/other-log\n42\n%s\n", rootB64), signer), "origin is"},
		{"signed under another name", tlogtest.SignNote(t, body, wrongNameSameKey), "not signed by the log key"},
		{"unsigned", []byte(body), "not a signed note"},
		{"unsigned with blank line", []byte(body + "\n"), "not a signed note"},
		{"extra signature", tlogtest.SignNote(t, body, signer, otherName), "keys other than the log's"},
		{"duplicate signature line", append(good, good[len(body)+1:]...), "signature lines"},
		{"extension line", tlogtest.SignNote(t, body+"extra\n", signer), "extension lines"},
		{"missing root", tlogtest.SignNote(t, fmt.Sprintf("%s\n42\n", origin), signer), "want origin, size and root"},
		{"size with leading zero", tlogtest.SignNote(t, fmt.Sprintf("%s\n042\n%s\n", origin, rootB64), signer), "canonical form"},
		{"negative size", tlogtest.SignNote(t, fmt.Sprintf("%s\n-1\n%s\n", origin, rootB64), signer), "canonical form"},
		{"size too large", tlogtest.SignNote(t, fmt.Sprintf("%s\n18446744073709551616\n%s\n", origin, rootB64), signer), "canonical form"},
		{"short root", tlogtest.SignNote(t, fmt.Sprintf("%s\n42\n%s\n", origin, base64.StdEncoding.EncodeToString(root[:31])), signer), "32 bytes"},
		{"unpadded root", tlogtest.SignNote(t, fmt.Sprintf("%s\n42\n%s\n", origin, strings.TrimRight(rootB64, "=")), signer), "32 bytes"},
		{"url base64 root", tlogtest.SignNote(t, fmt.Sprintf("%s\n42\n%s\n", origin, base64.URLEncoding.EncodeToString(root[:])), signer), ""},
		{"empty tree with a root", tlogtest.SignNote(t, fmt.Sprintf("%s\n0\n%s\n", origin, rootB64), signer), "empty tree"},
		{"altered after signing", []byte(strings.Replace(string(good), "\n42\n", "\n43\n", 1)), "does not verify"},
		{"too large", append(good, make([]byte, tlog.MaxCheckpointSize)...), "more than"},
		{"carriage returns", []byte(strings.ReplaceAll(string(good), "\n", "\r\n")), "not a signed note"},
		{"empty", nil, "not a signed note"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.VerifyCheckpoint(tc.raw)
			if !errors.Is(err, tlog.ErrBadCheckpoint) {
				t.Fatalf("err = %v, want ErrBadCheckpoint", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	emptyCP := tlogtest.SignNote(t, fmt.Sprintf("%s\n0\n%s\n", origin, base64.StdEncoding.EncodeToString(empty[:])), signer)
	if cp, err := v.VerifyCheckpoint(emptyCP); err != nil || cp.Size() != 0 {
		t.Fatalf("empty tree checkpoint: %v", err)
	}
}

func TestNewVerifierRefusals(t *testing.T) {
	pub := tlogtest.Identity().Public().SigningKey()
	if _, err := tlog.NewVerifier("has space", pub); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Errorf("origin with a space: %v", err)
	}
	if _, err := tlog.NewVerifier("a+b", pub); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Errorf("origin with '+': %v", err)
	}
	if _, err := tlog.NewVerifier("ok", pub[:31]); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Errorf("short key: %v", err)
	}
}

// TestUnverifiedCheckpointRefused checks that functions taking a Checkpoint
// refuse one not made by VerifyCheckpoint.
func TestUnverifiedCheckpointRefused(t *testing.T) {
	var zero tlog.Checkpoint
	if err := tlog.VerifyInclusion(&zero, 0, nil, nil); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Errorf("VerifyInclusion: %v", err)
	}
	if err := tlog.VerifyInclusion(nil, 0, nil, nil); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Errorf("VerifyInclusion(nil): %v", err)
	}
	if _, err := tlog.VerifyEntries(tlogtest.Context(t), tlog.DirFetcher(t.TempDir()), &zero); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Errorf("VerifyEntries: %v", err)
	}
	if _, err := tlog.CheckConsistency(tlogtest.Context(t), tlog.DirFetcher(t.TempDir()), &zero, &zero); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Errorf("CheckConsistency: %v", err)
	}
}
