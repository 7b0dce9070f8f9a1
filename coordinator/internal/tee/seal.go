package tee

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// The sealed identity file (docs/attestation.md, "Sealing"):
//
//	offset size field
//	 0      8   magic "CRSEAL01"
//	 8      1   mode: 1 = sev-snp, 2 = simulated, 3 = in memory only
//	 9      1   root key: 0 = VCEK (sev-snp); the simulated platform
//	            (simulated: 0 = sev-snp, 1 = tdx, 2 = nitro, 3 = cca);
//	            the platform (in memory only: 1 = tdx, 2 = nitro, 3 = cca)
//	10      2   reserved, zero
//	12      8   guest field select (big-endian; sev-snp), zero (simulated)
//	20      4   VMPL (big-endian; sev-snp), zero (simulated)
//	24      4   guest SVN (big-endian; sev-snp), zero (simulated)
//	28      8   TCB version (big-endian; sev-snp), zero (simulated)
//	36     12   AES-GCM nonce
//	48      …   AES-256-GCM ciphertext and 16-byte tag of the identity
//
// The 48-byte header is the additional data. The AES key is
// HKDF-SHA256(secret, salt = none, info = sealInfo, 32 bytes), where the
// secret is the key the SEV-SNP firmware derives from the header's
// parameters, or the simulated seal key file.
const (
	sealMagic     = "CRSEAL01"
	sealHeaderLen = 48
	sealNonceOff  = 36
	sealInfo      = "cleanroom.dev/seal/identity/v1"
	maxSealedSize = 4096
)

const (
	sealModeSEVSNP    byte = 1
	sealModeSimulated byte = 2
	// sealModeEphemeral marks a data directory whose identity was never
	// written: its platform has no sealing key. The file is the header and
	// 16 zero bytes.
	sealModeEphemeral byte = 3
)

// ErrSealBroken reports a sealed identity that cannot be opened: altered,
// truncated, or sealed by another coordinator (another measurement, chip or
// data directory).
var ErrSealBroken = errors.New("sealed identity cannot be unsealed")

// sealParams are the key-derivation parameters kept in the header.
type sealParams struct {
	mode        byte
	rootKey     byte
	fieldSelect uint64
	vmpl        uint32
	guestSVN    uint32
	tcb         uint64
}

func (p sealParams) header(nonce []byte) []byte {
	h := make([]byte, sealHeaderLen)
	copy(h, sealMagic)
	h[8], h[9] = p.mode, p.rootKey
	binary.BigEndian.PutUint64(h[12:20], p.fieldSelect)
	binary.BigEndian.PutUint32(h[20:24], p.vmpl)
	binary.BigEndian.PutUint32(h[24:28], p.guestSVN)
	binary.BigEndian.PutUint64(h[28:36], p.tcb)
	copy(h[sealNonceOff:], nonce)
	return h
}

// parseSealHeader reads the header of a sealed file; it does not
// authenticate it (decryption does).
func parseSealHeader(data []byte) (sealParams, error) {
	if len(data) > maxSealedSize {
		return sealParams{}, fmt.Errorf("%w: %d bytes is more than a sealed identity can be", ErrSealBroken, len(data))
	}
	if len(data) < sealHeaderLen+16 {
		return sealParams{}, fmt.Errorf("%w: only %d bytes", ErrSealBroken, len(data))
	}
	if string(data[:8]) != sealMagic {
		return sealParams{}, fmt.Errorf("%w: not a Cleanroom sealed identity (bad magic)", ErrSealBroken)
	}
	p := sealParams{
		mode:        data[8],
		rootKey:     data[9],
		fieldSelect: binary.BigEndian.Uint64(data[12:20]),
		vmpl:        binary.BigEndian.Uint32(data[20:24]),
		guestSVN:    binary.BigEndian.Uint32(data[24:28]),
		tcb:         binary.BigEndian.Uint64(data[28:36]),
	}
	if data[10] != 0 || data[11] != 0 {
		return p, fmt.Errorf("%w: reserved header bytes are not zero", ErrSealBroken)
	}
	switch p.mode {
	case sealModeSEVSNP:
		if p.rootKey != 0 {
			return p, fmt.Errorf("%w: unknown root key %d", ErrSealBroken, p.rootKey)
		}
	case sealModeSimulated, sealModeEphemeral:
		if p != (sealParams{mode: p.mode, rootKey: p.rootKey}) || p.rootKey > 3 || (p.mode == sealModeEphemeral && p.rootKey == 0) {
			return p, fmt.Errorf("%w: a simulated or in-memory seal carries no key-derivation parameters, only a platform", ErrSealBroken)
		}
	default:
		return p, fmt.Errorf("%w: unknown sealing mode %d", ErrSealBroken, p.mode)
	}
	return p, nil
}

func sealAEAD(secret []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, sealInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts plaintext under secret with the header of p.
func seal(p sealParams, secret, plaintext []byte) ([]byte, error) {
	aead, err := sealAEAD(secret)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	h := p.header(nonce)
	return aead.Seal(bytes.Clone(h), nonce, plaintext, h), nil
}

// unseal authenticates and decrypts a sealed file whose header parsed.
func unseal(data, secret []byte) ([]byte, error) {
	aead, err := sealAEAD(secret)
	if err != nil {
		return nil, err
	}
	h := data[:sealHeaderLen]
	pt, err := aead.Open(nil, h[sealNonceOff:sealHeaderLen], data[sealHeaderLen:], h)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrSealBroken)
	}
	return pt, nil
}
