package cleanroom

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityRoundTrip(t *testing.T) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	text, err := id.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseIdentity(text)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Public().Equal(id.Public()) {
		t.Fatal("public key changed in round trip")
	}
	pub, err := ParsePublicKey(id.Public().String())
	if err != nil {
		t.Fatal(err)
	}
	if pub.Fingerprint() != id.Public().Fingerprint() || !pub.Equal(id.Public()) {
		t.Fatal("public line does not round-trip")
	}
	if !strings.Contains(string(text), id.Public().Fingerprint().String()) {
		t.Fatal("key file does not name its fingerprint")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "alice")
	id, _ := GenerateIdentity()
	keyPath, pubPath, err := WriteIdentityFiles(name, id)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v", fi.Mode(), err)
	}
	pubText, _ := os.ReadFile(pubPath)
	if strings.Count(string(pubText), "\n") != 1 || strings.TrimSpace(string(pubText)) != id.Public().String() {
		t.Fatalf("pub file is not one line: %q", pubText)
	}
	got, err := ReadIdentityFile(keyPath)
	if err != nil || !got.Public().Equal(id.Public()) {
		t.Fatalf("read back: %v", err)
	}
	if _, _, err := WriteIdentityFiles(name, id); err == nil {
		t.Fatal("overwrote an existing key")
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		os.Chmod(keyPath, mode)
		if _, err := ReadIdentityFile(keyPath); err == nil || !errors.Is(err, ErrBadKey) {
			t.Errorf("mode %04o accepted: %v", mode, err)
		}
	}
}

func TestBadKeys(t *testing.T) {
	id, _ := GenerateIdentity()
	good := id.Public().String()
	secret, _ := id.MarshalText()
	for name, line := range map[string]string{
		"empty":        "",
		"wrong prefix": strings.Replace(good, "cleanroom-pub-1:", "cleanroom-pub-2:", 1),
		"short":        good[:len(good)-4],
		"bad base64":   good[:len(good)-1] + "!",
		"padded":       good + "=",
		"secret":       strings.Split(string(secret), "\n")[2],
	} {
		if _, err := ParsePublicKey(line); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	for name, text := range map[string]string{
		"empty":     "# nothing\n",
		"public":    good,
		"two lines": string(secret) + string(secret),
		"truncated": string(secret[:len(secret)-5]),
	} {
		if _, err := ParseIdentity([]byte(text)); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestStatements(t *testing.T) {
	alice, _ := GenerateIdentity()
	bob, _ := GenerateIdentity()
	msg, err := SignStatement(alice, ContentTypeUploadStatement, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := DecodeStatement(msg)
	if err != nil {
		t.Fatal(err)
	}
	if st.KeyID != alice.Public().Fingerprint() || !bytes.Equal(st.Payload, []byte("payload")) {
		t.Fatal("decoded fields differ")
	}
	if err := st.Verify(alice.Public(), ContentTypeUploadStatement); err != nil {
		t.Fatal(err)
	}
	if err := st.Verify(bob.Public(), ContentTypeUploadStatement); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("verified with the wrong key: %v", err)
	}
	if err := st.Verify(alice.Public(), ContentTypeResultStatement); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("verified as another statement type: %v", err)
	}
	for i := range msg {
		b := bytes.Clone(msg)
		b[i] ^= 0x80
		st, err := DecodeStatement(b)
		if err == nil {
			err = st.Verify(alice.Public(), ContentTypeUploadStatement)
		}
		if err == nil {
			t.Fatalf("flip at byte %d accepted", i)
		}
	}
}
