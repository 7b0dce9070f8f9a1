package cleanroom

import (
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// ModelSaltSize is the size of a confidential model's commitment salt.
const ModelSaltSize = 32

// modelCommitmentDomain separates model commitments from every other hash.
const modelCommitmentDomain = "cleanroom/model-commitment/v1\x00"

// NewModelSalt returns a fresh random salt for ModelCommitment.
func NewModelSalt() []byte {
	salt := make([]byte, ModelSaltSize)
	rand.Read(salt) // never fails (crypto/rand)
	return salt
}

// ModelCommitment returns what a contract's models[].sha256 holds for a
// module:
//
//   - for a confidential model, the salted commitment
//     SHA-256("cleanroom/model-commitment/v1" ‖ 0x00 ‖ salt ‖ module), with
//     a 32-byte salt that only the model's provider and the coordinator
//     hold, so nobody else can test a guess of the module against the
//     contract or the log;
//   - for a model that is not confidential (salt nil), SHA-256(module).
func ModelCommitment(salt, module []byte) [32]byte {
	if salt == nil {
		return sha256.Sum256(module)
	}
	h := sha256.New()
	h.Write([]byte(modelCommitmentDomain))
	h.Write(salt)
	h.Write(module)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// modelInfo is the HPKE info of a sealed model:
// "cleanroom-model-v1" ‖ 0x00 ‖ contract id ‖ model name, so a sealed
// module opens only as the model it was sealed for.
func modelInfo(contractID [32]byte, name string) []byte {
	info := append([]byte("cleanroom-model-v1\x00"), contractID[:]...)
	return append(info, name...)
}

// SealModel encrypts a confidential model for the attested coordinator
// key, for one model of one contract: single-shot HPKE (RFC 9180 base
// mode, the key's KEM, HKDF-SHA256, AES-256-GCM, empty AAD) of
// salt (32 bytes) ‖ module. The salt travels only inside it.
func SealModel(coordinator *PublicKey, contractID [32]byte, name string, salt, module []byte) ([]byte, error) {
	if len(salt) != ModelSaltSize {
		return nil, fmt.Errorf("a model's commitment salt is %d bytes; got %d", ModelSaltSize, len(salt))
	}
	plain := make([]byte, 0, len(salt)+len(module))
	plain = append(append(plain, salt...), module...)
	return hpke.Seal(coordinator.HPKE(), hpke.HKDFSHA256(), hpke.AES256GCM(), modelInfo(contractID, name), plain)
}

// OpenModel decrypts what SealModel produced and returns the salt and the
// module.
func OpenModel(key hpke.PrivateKey, contractID [32]byte, name string, sealed []byte) (salt, module []byte, err error) {
	plain, err := hpke.Open(key, hpke.HKDFSHA256(), hpke.AES256GCM(), modelInfo(contractID, name), sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("sealed model does not open with this coordinator's key for model %s of this contract: %w", name, err)
	}
	if len(plain) < ModelSaltSize {
		return nil, nil, errors.New("sealed model is shorter than its salt")
	}
	return plain[:ModelSaltSize], plain[ModelSaltSize:], nil
}
