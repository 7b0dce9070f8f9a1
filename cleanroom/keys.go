// Package cleanroom is the client SDK of Cleanroom: participant identities,
// signed statements and the helpers every other package builds on.
//
// Subpackages hold attestation verification, attested TLS, the dataset
// envelope, result bundles, log verification and the API client; they import
// this package, never the other way round.
package cleanroom

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"cleanroom.dev/cleanroom/internal/durable"
)

// Text prefixes of the two key encodings. The version digit is part of the
// prefix: a future format gets a new prefix and old parsers refuse it.
const (
	publicKeyPrefix = "cleanroom-pub-1:"
	secretKeyPrefix = "CLEANROOM-SECRET-KEY-1:"
)

// Sizes of the raw key material.
const (
	seedSize      = ed25519.SeedSize // Ed25519 seed; the HPKE seed has the same size
	hpkePublicLen = 1184 + 32        // ML-KEM-768 encapsulation key ‖ X25519 public key
	publicKeyLen  = ed25519.PublicKeySize + hpkePublicLen
	secretKeyLen  = 2 * seedSize
)

// KEM returns the HPKE KEM every Cleanroom key uses: ML-KEM-768 + X25519
// (RFC 9180 with the hybrid KEM of draft-ietf-hpke-pq, as in crypto/hpke).
func KEM() hpke.KEM { return hpke.MLKEM768X25519() }

// ErrBadKey reports key material that cannot be parsed or used. Errors that
// wrap it say which file or field held the key.
var ErrBadKey = errors.New("bad key")

// Fingerprint is the SHA-256 of a public key's raw bytes (Ed25519 public key
// followed by the HPKE public key). It identifies a key in signatures (the
// COSE kid), logs and messages.
type Fingerprint [32]byte

// String returns the fingerprint as 64 lowercase hex digits.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// Short returns the first 16 hex digits, for human-facing output.
func (f Fingerprint) Short() string { return f.String()[:16] }

// ParseFingerprint parses 64 hex digits.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(f) {
		return f, fmt.Errorf("%w: fingerprint must be 64 hex digits, got %q", ErrBadKey, s)
	}
	copy(f[:], b)
	return f, nil
}

// PublicKey is a participant's (or the coordinator's) public key: an Ed25519
// key for signatures and TLS, and an HPKE key for receiving encrypted data.
//
// The HPKE key is kept in its compact wire form and expanded when used: an
// expanded ML-KEM-768 key takes several times the memory, and the
// coordinator holds the keys of every participant of every contract.
type PublicKey struct {
	sign ed25519.PublicKey
	raw  []byte
}

// ParsePublicKey parses the one-line text form written by keygen
// ("cleanroom-pub-1:" followed by unpadded base64url of the raw key).
// Surrounding white space is ignored.
func ParsePublicKey(line string) (*PublicKey, error) {
	line = strings.TrimSpace(line)
	rest, ok := strings.CutPrefix(line, publicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: a public key starts with %q", ErrBadKey, publicKeyPrefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not unpadded base64url: %v", ErrBadKey, err)
	}
	return PublicKeyFromBytes(raw)
}

// PublicKeyFromBytes parses the raw form of a public key (Ed25519 public key
// ‖ HPKE public key, 1248 bytes).
func PublicKeyFromBytes(raw []byte) (*PublicKey, error) {
	if len(raw) != publicKeyLen {
		return nil, fmt.Errorf("%w: public key has %d bytes, want %d", ErrBadKey, len(raw), publicKeyLen)
	}
	if _, err := KEM().NewPublicKey(raw[ed25519.PublicKeySize:]); err != nil {
		return nil, fmt.Errorf("%w: HPKE public key: %v", ErrBadKey, err)
	}
	raw = bytes.Clone(raw)
	return &PublicKey{sign: ed25519.PublicKey(raw[:ed25519.PublicKeySize]), raw: raw}, nil
}

// String returns the one-line text form that goes into a contract.
func (k *PublicKey) String() string {
	return publicKeyPrefix + base64.RawURLEncoding.EncodeToString(k.raw)
}

// Bytes returns the raw form (Ed25519 public key ‖ HPKE public key).
func (k *PublicKey) Bytes() []byte { return bytes.Clone(k.raw) }

// SigningKey returns the Ed25519 public key.
func (k *PublicKey) SigningKey() ed25519.PublicKey { return bytes.Clone(k.sign) }

// HPKE returns the HPKE public key.
func (k *PublicKey) HPKE() hpke.PublicKey {
	kem, err := KEM().NewPublicKey(k.raw[ed25519.PublicKeySize:])
	if err != nil {
		panic("cleanroom: a public key checked when parsed no longer parses: " + err.Error())
	}
	return kem
}

// Fingerprint returns SHA-256 of the raw form.
func (k *PublicKey) Fingerprint() Fingerprint { return sha256.Sum256(k.raw) }

// Equal reports whether two public keys are the same.
func (k *PublicKey) Equal(o *PublicKey) bool {
	return k != nil && o != nil && bytes.Equal(k.raw, o.raw)
}

// Identity is a secret key pair: the Ed25519 signing key and the HPKE
// decryption key, both derived from 32-byte seeds kept in the key file.
type Identity struct {
	sign     ed25519.PrivateKey
	kem      hpke.PrivateKey
	kemSeed  []byte
	public   *PublicKey
	fileName string
}

// GenerateIdentity makes a fresh key pair from the system's random source.
func GenerateIdentity() (*Identity, error) {
	seeds := make([]byte, secretKeyLen)
	if _, err := rand.Read(seeds); err != nil {
		return nil, err
	}
	return identityFromSeeds(seeds)
}

func identityFromSeeds(seeds []byte) (*Identity, error) {
	if len(seeds) != secretKeyLen {
		return nil, fmt.Errorf("%w: secret key has %d bytes, want %d", ErrBadKey, len(seeds), secretKeyLen)
	}
	sign := ed25519.NewKeyFromSeed(seeds[:seedSize])
	kem, err := KEM().NewPrivateKey(seeds[seedSize:])
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE secret key: %v", ErrBadKey, err)
	}
	raw := append(bytes.Clone(sign.Public().(ed25519.PublicKey)), kem.PublicKey().Bytes()...)
	pub, err := PublicKeyFromBytes(raw)
	if err != nil {
		return nil, err
	}
	return &Identity{sign: sign, kem: kem, kemSeed: bytes.Clone(seeds[seedSize:]), public: pub}, nil
}

// Public returns the public half.
func (id *Identity) Public() *PublicKey { return id.public }

// Signer returns the Ed25519 signing key (usable for TLS and COSE).
func (id *Identity) Signer() crypto.Signer { return id.sign }

// HPKE returns the HPKE private key.
func (id *Identity) HPKE() hpke.PrivateKey { return id.kem }

// Sign signs msg with Ed25519.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.sign, msg) }

// Source names the file the identity was read from, or "" if it was not read
// from a file.
func (id *Identity) Source() string { return id.fileName }

// MarshalText returns the secret key file content: two comment lines and the
// secret key line. It contains secret material.
func (id *Identity) MarshalText() ([]byte, error) {
	seeds := append(bytes.Clone(id.sign.Seed()), id.kemSeed...)
	var b strings.Builder
	b.WriteString("# Cleanroom secret key: keep this file private (mode 0600).\n")
	fmt.Fprintf(&b, "# fingerprint: %s\n", id.public.Fingerprint())
	b.WriteString(secretKeyPrefix + base64.RawURLEncoding.EncodeToString(seeds) + "\n")
	return []byte(b.String()), nil
}

// ParseIdentity parses the content of a secret key file. Lines that start
// with '#' and blank lines are ignored; exactly one key line must remain.
func ParseIdentity(data []byte) (*Identity, error) {
	var keyLine string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if keyLine != "" {
			return nil, fmt.Errorf("%w: more than one key line", ErrBadKey)
		}
		keyLine = line
	}
	if keyLine == "" {
		return nil, fmt.Errorf("%w: no key line", ErrBadKey)
	}
	rest, ok := strings.CutPrefix(keyLine, secretKeyPrefix)
	if !ok {
		if strings.HasPrefix(keyLine, publicKeyPrefix) {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, errPublicNotSecret)
		}
		return nil, fmt.Errorf("%w: a secret key starts with %q", ErrBadKey, secretKeyPrefix)
	}
	seeds, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: secret key is not unpadded base64url: %v", ErrBadKey, err)
	}
	return identityFromSeeds(seeds)
}

var errPublicNotSecret = errors.New("this is a public key; a secret key file (NAME.key) is needed")

// ReadIdentityFile reads a secret key file. It refuses a file that group or
// others can read or write, as ssh does, so a key copied carelessly is noticed.
func ReadIdentityFile(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	// The content is judged first: a public key or another file given by
	// mistake is named as what it is, not as a key with a loose mode.
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s is larger than a key file (%d bytes at most)", ErrBadKey, path, maxKeyFile)
	}
	id, err := ParseIdentity(data)
	if err != nil {
		if base, ok := strings.CutSuffix(path, ".pub"); ok && errors.Is(err, errPublicNotSecret) {
			return nil, fmt.Errorf("%s: %w (did you mean %s.key?)", path, err, base)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; a secret key must not be accessible by group or others (run: chmod 600 %s)",
			ErrBadKey, path, fi.Mode().Perm(), path)
	}
	id.fileName = path
	return id, nil
}

// maxKeyFile bounds a secret key file: one key line and comments.
const maxKeyFile = 64 << 10

// WriteIdentityFiles writes NAME.key (mode 0600) and NAME.pub for a fresh
// identity. It refuses to overwrite either file, and leaves neither behind
// when it fails.
func WriteIdentityFiles(name string, id *Identity) (keyPath, pubPath string, err error) {
	keyPath, pubPath = name+".key", name+".pub"
	secret, err := id.MarshalText()
	if err != nil {
		return "", "", err
	}
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("%s already exists: refusing to overwrite a key", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", "", err
		}
	}
	if err := durable.WriteFile(keyPath, secret, 0o600); err != nil {
		return "", "", err
	}
	if err := durable.WriteFile(pubPath, []byte(id.Public().String()+"\n"), 0o644); err != nil {
		os.Remove(keyPath)
		return "", "", err
	}
	return keyPath, pubPath, nil
}

// DeriveKey derives a 32-byte secret key for purpose from the identity's
// secret seeds (HKDF-SHA256, salt empty, info "cleanroom/derive/v1" ‖ 0x00 ‖
// purpose). The coordinator seals its blobs with such a key, so they open
// only where its sealed identity does.
func (id *Identity) DeriveKey(purpose string) []byte {
	ikm := append(bytes.Clone(id.sign.Seed()), id.kemSeed...)
	key, err := hkdf.Key(sha256.New, ikm, nil, "cleanroom/derive/v1\x00"+purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot produce
	}
	return key
}
