package cleanroom

import (
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
)

// CommitmentModel labels the commitment a contract names (as
// models[].sha256) for a confidential model's WebAssembly module.
const CommitmentModel = "cleanroom/model-commitment/v1"

// CommitModel returns the commitment a contract names for a confidential
// model's exact module: Commit(CommitmentModel, salt, module).
func CommitModel(salt Salt, module []byte) [32]byte {
	return Commit(CommitmentModel, salt, module)
}

// ModelDigest returns what a contract names as models[].sha256 for module.
// For a confidential model, saltPath names the salt file: read when it
// exists, made fresh and written (mode 0600) when it does not (created
// reports it), and the digest is CommitModel's salted commitment. For a
// model that is not confidential, saltPath is empty and the digest is the
// module's plain SHA-256.
func ModelDigest(module []byte, saltPath string) (sum [32]byte, created bool, err error) {
	if saltPath == "" {
		return sha256.Sum256(module), false, nil
	}
	salt, err := ReadSaltFile(saltPath)
	if errors.Is(err, fs.ErrNotExist) {
		salt, err = WriteSaltFile(saltPath)
		created = true
	}
	if err != nil {
		return sum, false, err
	}
	return CommitModel(salt, module), created, nil
}

// modelInfo is the HPKE info of a sealed model:
// "cleanroom-model-v1" ‖ 0x00 ‖ contract id ‖ model name, so a sealed
// module opens only as the model it was sealed for.
func modelInfo(contractID [32]byte, name string) []byte {
	info := append([]byte("cleanroom-model-v1\x00"), contractID[:]...)
	return append(info, name...)
}

// SealModel encrypts a confidential model's module, with the salt of the
// commitment the contract names, to the attested coordinator key for one
// model of one contract: single-shot HPKE (RFC 9180 base mode, the key's
// KEM, HKDF-SHA256, AES-256-GCM, empty AAD) of salt (32 bytes) ‖ module.
// Only the coordinator can open it, and only as that model.
func SealModel(coordinator *PublicKey, contractID [32]byte, name string, salt Salt, module []byte) ([]byte, error) {
	plain := make([]byte, 0, SaltSize+len(module))
	plain = append(append(plain, salt[:]...), module...)
	return hpke.Seal(coordinator.HPKE(), hpke.HKDFSHA256(), hpke.AES256GCM(), modelInfo(contractID, name), plain)
}

// OpenModel decrypts what SealModel produced and returns the salt and the
// module.
func OpenModel(key hpke.PrivateKey, contractID [32]byte, name string, sealed []byte) (Salt, []byte, error) {
	plain, err := hpke.Open(key, hpke.HKDFSHA256(), hpke.AES256GCM(), modelInfo(contractID, name), sealed)
	if err != nil {
		return Salt{}, nil, fmt.Errorf("sealed model does not open with this coordinator's key as model %s of this contract: %w", name, err)
	}
	if len(plain) < SaltSize {
		return Salt{}, nil, fmt.Errorf("sealed model holds %d bytes, less than its %d-byte salt", len(plain), SaltSize)
	}
	var salt Salt
	copy(salt[:], plain)
	return salt, plain[SaltSize:], nil
}
