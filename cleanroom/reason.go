package cleanroom

import (
	"bytes"
	"crypto/hpke"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ReasonPaddedSize is the size every private refusal reason is padded to
// before it is sealed, so the sealed reason's length says nothing about the
// reason's.
const ReasonPaddedSize = 4608

// MaxPrivateReason bounds a private refusal reason: the padded size less
// the padding's marker byte.
const MaxPrivateReason = ReasonPaddedSize - 1

// reasonInfo is the HPKE info of a sealed refusal reason:
// "cleanroom-refusal-reason-v1" ‖ 0x00 ‖ contract id (32 bytes) ‖ run id
// (its 32 ASCII hex digits).
func reasonInfo(contractID [32]byte, runID string) []byte {
	info := append([]byte("cleanroom-refusal-reason-v1\x00"), contractID[:]...)
	return append(info, runID...)
}

// SealReason seals the full reason of a run's refusal to one participant
// (the provider of a confidential algorithm, whose text or output the
// reason may describe): single-shot HPKE (RFC 9180 base mode, the key's KEM,
// HKDF-SHA256, AES-256-GCM, empty AAD) to its key, with info binding the
// contract and the run, of the reason's UTF-8 bytes padded to
// ReasonPaddedSize (0x80, then zero bytes). Only that participant can read
// it; everyone sees its fixed size.
func SealReason(recipient *PublicKey, contractID [32]byte, runID, reason string) ([]byte, error) {
	if len(reason) > MaxPrivateReason {
		return nil, fmt.Errorf("refusal reason of %d bytes exceeds %d", len(reason), MaxPrivateReason)
	}
	if !utf8.ValidString(reason) {
		return nil, errors.New("refusal reason is not UTF-8")
	}
	padded := make([]byte, ReasonPaddedSize)
	copy(padded, reason)
	padded[len(reason)] = 0x80
	return hpke.Seal(recipient.HPKE(), hpke.HKDFSHA256(), hpke.AES256GCM(), reasonInfo(contractID, runID), padded)
}

// OpenReason opens a reason sealed by SealReason for this run of this
// contract with the recipient's identity.
func OpenReason(id *Identity, contractID [32]byte, runID string, sealed []byte) (string, error) {
	padded, err := hpke.Open(id.HPKE(), hpke.HKDFSHA256(), hpke.AES256GCM(), reasonInfo(contractID, runID), sealed)
	if err != nil {
		return "", fmt.Errorf("the sealed refusal reason of run %s does not open with key %s (it is sealed to the algorithm provider): %w",
			runID, id.Public().Fingerprint().Short(), err)
	}
	end := bytes.LastIndexByte(padded, 0x80)
	if len(padded) != ReasonPaddedSize || end < 0 || !allZero(padded[end+1:]) || !utf8.Valid(padded[:end]) {
		return "", fmt.Errorf("the sealed refusal reason of run %s is not a padded UTF-8 reason", runID)
	}
	return string(padded[:end]), nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
