package attest

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
)

// ReportDataDomain is the domain-separation prefix of the REPORT_DATA
// binding. A new binding gets a new prefix.
const ReportDataDomain = "cleanroom.dev/attest/report-data/v1"

// MaxNonceSize is the largest client nonce REPORT_DATA binds.
const MaxNonceSize = 64

// ReportData returns the 64 bytes the coordinator puts into its attestation
// report's REPORT_DATA: a SHA-512 over the domain prefix, the number of keys,
// each key's raw bytes (cleanroom.PublicKey.Bytes), and the client nonce
// (empty when there is none), every variable-length part prefixed by its
// length as a 4-byte big-endian integer:
//
//	SHA-512( ReportDataDomain
//	         ‖ u32(len(keys))
//	         ‖ u32(len(key_1)) ‖ key_1 ‖ … ‖ u32(len(key_n)) ‖ key_n
//	         ‖ u32(len(nonce)) ‖ nonce )
//
// Evidence whose REPORT_DATA equals this value binds exactly these keys (in
// this order) and this nonce. It fails for no keys, a nil key, or a nonce
// longer than MaxNonceSize.
func ReportData(keys []*cleanroom.PublicKey, nonce []byte) ([64]byte, error) {
	if len(keys) == 0 {
		return [64]byte{}, fmt.Errorf("report data binds at least one public key")
	}
	if len(nonce) > MaxNonceSize {
		return [64]byte{}, fmt.Errorf("nonce of %d bytes is longer than %d", len(nonce), MaxNonceSize)
	}
	h := sha512.New()
	h.Write([]byte(ReportDataDomain))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(keys)))
	h.Write(n[:])
	for i, k := range keys {
		if k == nil {
			return [64]byte{}, fmt.Errorf("public key %d is missing", i)
		}
		raw := k.Bytes()
		binary.BigEndian.PutUint32(n[:], uint32(len(raw)))
		h.Write(n[:])
		h.Write(raw)
	}
	binary.BigEndian.PutUint32(n[:], uint32(len(nonce)))
	h.Write(n[:])
	h.Write(nonce)
	var out [64]byte
	h.Sum(out[:0])
	return out, nil
}
