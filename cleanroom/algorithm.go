package cleanroom

import (
	"crypto/hpke"
	"errors"
	"fmt"
)

// algorithmInfo is the HPKE info of a sealed confidential algorithm:
// "cleanroom-algorithm-v2" ‖ 0x00 ‖ contract id.
func algorithmInfo(contractID [32]byte) []byte {
	return append([]byte("cleanroom-algorithm-v2\x00"), contractID[:]...)
}

// algorithmInfoV1 is the info of the first format, which sealed the text
// alone, without the commitment's salt. It is recognised only to refuse it
// with a clear message.
func algorithmInfoV1(contractID [32]byte) []byte {
	return append([]byte("cleanroom-algorithm-v1\x00"), contractID[:]...)
}

// ErrOldAlgorithmFormat reports a confidential algorithm sealed in the first
// format (the text alone, no commitment salt), by an older cleanroom.
var ErrOldAlgorithmFormat = errors.New("the algorithm is sealed in the old format v1 (text without the commitment's salt): submit it again with an up-to-date cleanroom, giving the salt of the contract's commitment (cleanroom algorithm submit --salt FILE)")

// SealAlgorithm encrypts a confidential algorithm's text, with the salt of
// the commitment the contract names, to the attested coordinator key for
// one contract: single-shot HPKE (RFC 9180 base mode, the key's KEM,
// HKDF-SHA256, AES-256-GCM, empty AAD) of salt (32 bytes) ‖ text. Only the
// coordinator can open it, and only for that contract; so only the
// coordinator, besides the provider, can check the text against the
// contract's commitment.
func SealAlgorithm(coordinator *PublicKey, contractID [32]byte, salt Salt, text []byte) ([]byte, error) {
	plain := make([]byte, 0, SaltSize+len(text))
	plain = append(append(plain, salt[:]...), text...)
	return hpke.Seal(coordinator.HPKE(), hpke.HKDFSHA256(), hpke.AES256GCM(), algorithmInfo(contractID), plain)
}

// OpenAlgorithm decrypts what SealAlgorithm produced and returns the salt
// and the text. A submission sealed in the old format v1 is refused with
// ErrOldAlgorithmFormat.
func OpenAlgorithm(key hpke.PrivateKey, contractID [32]byte, sealed []byte) (Salt, []byte, error) {
	plain, err := hpke.Open(key, hpke.HKDFSHA256(), hpke.AES256GCM(), algorithmInfo(contractID), sealed)
	if err != nil {
		if _, err1 := hpke.Open(key, hpke.HKDFSHA256(), hpke.AES256GCM(), algorithmInfoV1(contractID), sealed); err1 == nil {
			return Salt{}, nil, ErrOldAlgorithmFormat
		}
		return Salt{}, nil, fmt.Errorf("sealed algorithm does not open with this coordinator's key for this contract: %w", err)
	}
	if len(plain) < SaltSize {
		return Salt{}, nil, fmt.Errorf("sealed algorithm holds %d bytes, less than its %d-byte salt", len(plain), SaltSize)
	}
	var salt Salt
	copy(salt[:], plain)
	return salt, plain[SaltSize:], nil
}
