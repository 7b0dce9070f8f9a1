package cleanroom

import (
	"bytes"
	"crypto/hpke"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommitVectors pins the commitment construction of docs/contract.md
// and docs/bundle.md: SHA-256(label ‖ 0x00 ‖ salt ‖ data), computed here
// with salt = 00 01 … 1f by an independent implementation (Python's
// hashlib).
func TestCommitVectors(t *testing.T) {
	var salt Salt
	for i := range salt {
		salt[i] = byte(i)
	}
	for _, v := range []struct {
		label, data, want string
	}{
		{CommitmentAlgorithm, "SELECT 1 AS users", "60173c05677bcae7833bf85eed2bb2db2956c9e4cd22a52b14da86030c7ed4ff"},
		{CommitmentResult, "", "c91ea4b5d1db3da3d493f47de38a004ff82f0aee95f4bd509703be66311e90fb"},
	} {
		got := Commit(v.label, salt, []byte(v.data))
		if hex.EncodeToString(got[:]) != v.want {
			t.Errorf("Commit(%q, %q) = %x, want %s", v.label, v.data, got, v.want)
		}
	}
	if CommitAlgorithm(salt, []byte("SELECT 1 AS users")) != Commit(CommitmentAlgorithm, salt, []byte("SELECT 1 AS users")) {
		t.Error("CommitAlgorithm is not Commit under the algorithm label")
	}
	if NewSalt() == NewSalt() {
		t.Error("two fresh salts are equal")
	}
}

func TestSaltFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "query.salt")
	s, err := WriteSaltFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("salt file mode %v, %v", fi.Mode(), err)
	}
	if back, err := ReadSaltFile(path); err != nil || back != s {
		t.Fatalf("read back %v, %v", back, err)
	}
	if _, err := WriteSaltFile(path); err == nil || !strings.Contains(err.Error(), "refusing to overwrite a salt") {
		t.Fatalf("overwrote a salt file: %v", err)
	}
	if back, _ := ReadSaltFile(path); back != s {
		t.Fatal("a refused overwrite changed the salt")
	}

	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	line := "CLEANROOM-SALT-1:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"readable by others", line + "\n", 0o644, "must not be accessible by group or others"},
		{"no prefix", strings.Repeat("ab", 32) + "\n", 0o600, "starting \"CLEANROOM-SALT-1:\""},
		{"short", "CLEANROOM-SALT-1:abcd\n", 0o600, "64 hex digits"},
		{"not hex", "CLEANROOM-SALT-1:" + strings.Repeat("zz", 32), 0o600, "64 hex digits"},
		{"a key file", "CLEANROOM-SECRET-KEY-1:AAAA\n", 0o600, "made by cleanroom algorithm commit"},
		{"long", line + strings.Repeat("\n", 300), 0o600, "one short line"},
	} {
		_, err := ReadSaltFile(write(strings.ReplaceAll(tc.name, " ", "-"), tc.content, tc.mode))
		if !errors.Is(err, ErrBadSalt) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrBadSalt mentioning %q", tc.name, err, tc.want)
		}
	}
	if s, err := ReadSaltFile(write("crlf", line+"\r\n", 0o600)); err != nil || s.String() != strings.Repeat("ab", 32) {
		t.Errorf("a CRLF salt file: %v, %v", s, err)
	}
	if _, err := ReadSaltFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing salt file: %v", err)
	}
}

// TestCommitAlgorithmFile: the first call makes the salt file, later ones
// read it and give the same commitment; a damaged salt file is refused,
// not replaced.
func TestCommitAlgorithmFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "query.salt")
	query := []byte("SELECT 1 AS n")
	first, created, err := CommitAlgorithmFile(query, path)
	if err != nil || !created {
		t.Fatalf("first commit: created %v, %v", created, err)
	}
	salt, err := ReadSaltFile(path)
	if err != nil || first != CommitAlgorithm(salt, query) {
		t.Fatalf("the commitment is not the one of the written salt: %v", err)
	}
	again, created, err := CommitAlgorithmFile(query, path)
	if err != nil || created || again != first {
		t.Fatalf("second commit: %x, created %v, %v; want %x from the kept salt", again, created, err, first)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := CommitAlgorithmFile(query, path); !errors.Is(err, ErrBadSalt) {
		t.Fatalf("a salt file readable by others: %v", err)
	}
	if back, _ := os.ReadFile(path); !strings.Contains(string(back), salt.String()) {
		t.Fatal("a refused salt file was replaced")
	}
}

func TestSealAlgorithm(t *testing.T) {
	coord, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	cid := [32]byte{1}
	salt := NewSalt()
	sealed, err := SealAlgorithm(coord.Public(), cid, salt, []byte("SELECT 1"))
	if err != nil {
		t.Fatal(err)
	}
	s, text, err := OpenAlgorithm(coord.HPKE(), cid, sealed)
	if err != nil || s != salt || string(text) != "SELECT 1" {
		t.Fatalf("opened %v %q, %v", s, text, err)
	}
	if _, _, err := OpenAlgorithm(coord.HPKE(), [32]byte{2}, sealed); err == nil {
		t.Fatal("opened for another contract")
	}
	old, err := sealV1(coord.Public(), cid, []byte("SELECT 1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenAlgorithm(coord.HPKE(), cid, old); !errors.Is(err, ErrOldAlgorithmFormat) {
		t.Fatalf("the v1 format: %v", err)
	}
}

func TestSealReason(t *testing.T) {
	provider, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	cid, run := [32]byte{3}, "0123456789abcdef0123456789abcdef"
	short, err := SealReason(provider.Public(), cid, run, "no column \"users\"; its columns are a, b")
	if err != nil {
		t.Fatal(err)
	}
	long, err := SealReason(provider.Public(), cid, run, strings.Repeat("é", MaxPrivateReason/2))
	if err != nil {
		t.Fatal(err)
	}
	if len(short) != 5744 { // docs/api.md: enc (1120) ‖ padded reason (4608) ‖ tag (16)
		t.Errorf("a sealed reason has %d bytes, want 5744", len(short))
	}
	if len(short) != len(long) {
		t.Fatalf("sealed reasons of different lengths have sizes %d and %d: the size leaks the length", len(short), len(long))
	}
	if got, err := OpenReason(provider, cid, run, short); err != nil || got != "no column \"users\"; its columns are a, b" {
		t.Fatalf("opened %q, %v", got, err)
	}
	if got, err := OpenReason(provider, cid, run, long); err != nil || got != strings.Repeat("é", MaxPrivateReason/2) {
		t.Fatalf("opened %d bytes, %v", len(got), err)
	}
	for name, open := range map[string]func() (string, error){
		"another key":      func() (string, error) { return OpenReason(other, cid, run, short) },
		"another contract": func() (string, error) { return OpenReason(provider, [32]byte{4}, run, short) },
		"another run":      func() (string, error) { return OpenReason(provider, cid, "fedcba9876543210fedcba9876543210", short) },
		"truncated":        func() (string, error) { return OpenReason(provider, cid, run, short[:len(short)-1]) },
	} {
		if _, err := open(); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	if _, err := SealReason(provider.Public(), cid, run, strings.Repeat("x", MaxPrivateReason+1)); err == nil {
		t.Error("sealed a reason over the limit")
	}
	if _, err := SealReason(provider.Public(), cid, run, "\xff"); err == nil {
		t.Error("sealed a reason that is not UTF-8")
	}
}

// FuzzOpenReason feeds arbitrary bytes as a sealed refusal reason (what a
// coordinator returns to the provider): opening never panics and nothing
// but the sealed reason opens.
func FuzzOpenReason(f *testing.F) {
	provider, err := GenerateIdentity()
	if err != nil {
		f.Fatal(err)
	}
	cid, run := [32]byte{5}, "0123456789abcdef0123456789abcdef"
	sealed, err := SealReason(provider.Public(), cid, run, "the reason")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(sealed[:1120])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := OpenReason(provider, cid, run, data)
		if err != nil {
			return
		}
		if got != "the reason" || !bytes.Equal(data, sealed) {
			t.Fatalf("opened %d bytes that are not the sealed reason: %q", len(data), got)
		}
	})
}

// sealV1 seals an algorithm as the first format did: the text alone.
func sealV1(coordinator *PublicKey, contractID [32]byte, text []byte) ([]byte, error) {
	return hpke.Seal(coordinator.HPKE(), hpke.HKDFSHA256(), hpke.AES256GCM(), algorithmInfoV1(contractID), text)
}

// FuzzParseSalt: a salt file's line parses only in its one form, and what
// parses prints back the same.
func FuzzParseSalt(f *testing.F) {
	f.Add("CLEANROOM-SALT-1:" + strings.Repeat("0f", 32))
	f.Add("CLEANROOM-SALT-1:")
	f.Add("CLEANROOM-SECRET-KEY-1:AAAA")
	f.Fuzz(func(t *testing.T, line string) {
		s, err := ParseSalt(line)
		if err != nil {
			if !errors.Is(err, ErrBadSalt) {
				t.Fatalf("error does not wrap ErrBadSalt: %v", err)
			}
			return
		}
		if !strings.EqualFold("CLEANROOM-SALT-1:"+s.String(), line) {
			t.Fatalf("%q parses to salt %s", line, s)
		}
	})
}
