package coordinator

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
)

// sealer seals the blobs that are not already ciphertext (contract texts,
// algorithm texts) before they reach the disk, with AES-256-GCM under a key
// derived from the coordinator's sealed identity: they open only where the
// identity unseals, that is inside the attested VM.
//
// A sealed blob is nonce (12 bytes) ‖ AES-256-GCM(plaintext), with
// additional data "cleanroom/blob/v1" ‖ 0x00 ‖ kind, so a blob sealed as one
// kind cannot be opened as another.
type sealer struct{ aead cipher.AEAD }

func newSealer(id *cleanroom.Identity) (*sealer, error) {
	block, err := aes.NewCipher(id.DeriveKey("blob-seal"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead}, nil
}

func sealAAD(kind string) []byte { return []byte("cleanroom/blob/v1\x00" + kind) }

func (s *sealer) seal(kind string, plaintext []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return s.aead.Seal(nonce, nonce, plaintext, sealAAD(kind))
}

var errSealBroken = errors.New("sealed blob does not open")

func (s *sealer) open(kind string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("%w: %s blob is too short", errSealBroken, kind)
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], sealAAD(kind))
	if err != nil {
		return nil, fmt.Errorf("%w: %s blob was altered or sealed by another coordinator", errSealBroken, kind)
	}
	return plain, nil
}
