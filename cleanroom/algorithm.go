package cleanroom

import (
	"crypto/hpke"
	"fmt"
)

// algorithmInfo is the HPKE info of a sealed confidential algorithm:
// "cleanroom-algorithm-v1" ‖ 0x00 ‖ contract id.
func algorithmInfo(contractID [32]byte) []byte {
	return append([]byte("cleanroom-algorithm-v1\x00"), contractID[:]...)
}

// SealAlgorithm encrypts a confidential algorithm's text to the attested
// coordinator key for one contract: single-shot HPKE (RFC 9180 base mode,
// the key's KEM, HKDF-SHA256, AES-256-GCM, empty AAD). Only the coordinator
// can open it, and only for that contract.
func SealAlgorithm(coordinator *PublicKey, contractID [32]byte, text []byte) ([]byte, error) {
	return hpke.Seal(coordinator.HPKE(), hpke.HKDFSHA256(), hpke.AES256GCM(), algorithmInfo(contractID), text)
}

// OpenAlgorithm decrypts what SealAlgorithm produced.
func OpenAlgorithm(key hpke.PrivateKey, contractID [32]byte, sealed []byte) ([]byte, error) {
	text, err := hpke.Open(key, hpke.HKDFSHA256(), hpke.AES256GCM(), algorithmInfo(contractID), sealed)
	if err != nil {
		return nil, fmt.Errorf("sealed algorithm does not open with this coordinator's key for this contract: %w", err)
	}
	return text, nil
}
