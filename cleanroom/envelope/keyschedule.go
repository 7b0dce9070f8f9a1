package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// Domain separation labels (docs/envelope.md, "Key schedule").
const (
	labelKeyWrap = "cleanroom-envelope-v1 key-wrap"
	labelPayload = "cleanroom-envelope-v1 payload"
)

const (
	payloadKeySize  = 32
	noncePrefixSize = 7
	nonceSize       = noncePrefixSize + 4 + 1
)

// KeyID returns the identifier of an HPKE public key as recorded in a
// recipient stanza: the SHA-256 of its bytes.
func KeyID(pk hpke.PublicKey) [32]byte { return sha256.Sum256(pk.Bytes()) }

// wrapKey seals dataKey to each recipient under the header's HPKE info.
func wrapKey(h *Header, dataKey []byte, recipients []hpke.PublicKey) ([]Stanza, error) {
	info := h.hpkeInfo()
	stanzas := make([]Stanza, len(recipients))
	for i, pk := range recipients {
		if pk == nil {
			return nil, fmt.Errorf("envelope: recipient %d is nil", i+1)
		}
		if id := pk.KEM().ID(); id != kemID {
			return nil, fmt.Errorf("envelope: recipient %d has an HPKE key of KEM 0x%04x; envelopes use ML-KEM-768+X25519 (0x%04x)", i+1, id, kemID)
		}
		stanzas[i].KeyID = KeyID(pk)
		for j := range i {
			if stanzas[j].KeyID == stanzas[i].KeyID {
				return nil, fmt.Errorf("envelope: recipients %d and %d are the same key", j+1, i+1)
			}
		}
		enc, sender, err := hpke.NewSender(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), info)
		if err != nil {
			return nil, fmt.Errorf("envelope: recipient %d: %w", i+1, err)
		}
		wrapped, err := sender.Seal(nil, dataKey)
		if err != nil {
			return nil, fmt.Errorf("envelope: recipient %d: %w", i+1, err)
		}
		if len(enc) != encSize || len(wrapped) != wrappedKeySize {
			return nil, fmt.Errorf("envelope: recipient %d: HPKE produced %d+%d bytes, want %d+%d", i+1, len(enc), len(wrapped), encSize, wrappedKeySize)
		}
		stanzas[i].Enc, stanzas[i].WrappedKey = enc, wrapped
	}
	return stanzas, nil
}

// unwrapKey finds the stanza for key and opens the data key.
func unwrapKey(h *Header, key hpke.PrivateKey) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: no private key given", ErrNotRecipient)
	}
	if id := key.KEM().ID(); id != kemID {
		return nil, fmt.Errorf("%w: the key is for KEM 0x%04x; envelopes use ML-KEM-768+X25519 (0x%04x)", ErrNotRecipient, id, kemID)
	}
	id := KeyID(key.PublicKey())
	for i, s := range h.Recipients {
		if s.KeyID != id {
			continue
		}
		r, err := hpke.NewRecipient(s.Enc, key, hpke.HKDFSHA256(), hpke.AES256GCM(), h.hpkeInfo())
		if err != nil {
			return nil, fmt.Errorf("%w: recipient %d: the encapsulated key is invalid: %v", ErrAuthentication, i+1, err)
		}
		dataKey, err := r.Open(nil, s.WrappedKey)
		if err != nil || len(dataKey) != dataKeySize {
			return nil, fmt.Errorf("%w: the data key of recipient %d does not unwrap with this key: the header was modified or the stanza was made for another envelope", ErrAuthentication, i+1)
		}
		return dataKey, nil
	}
	ids := make([]string, len(h.Recipients))
	for i, s := range h.Recipients {
		ids[i] = hex.EncodeToString(s.KeyID[:8])
	}
	return nil, fmt.Errorf("%w: it is encrypted to key ids %s, and this key's id is %s",
		ErrNotRecipient, strings.Join(ids, ", "), hex.EncodeToString(id[:8]))
}

// segmentKeys holds what every segment's AEAD needs: the payload key, the
// nonce prefix and the additional data (the SHA-256 of the header).
type segmentKeys struct {
	key    [payloadKeySize]byte
	prefix [noncePrefixSize]byte
	aad    [32]byte
}

// recipientKeys unwraps an envelope's data key with a recipient's key and
// derives its segment keys from it; the data key is wiped.
func recipientKeys(h *Header, key hpke.PrivateKey) (*segmentKeys, error) {
	dataKey, err := unwrapKey(h, key)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	return deriveSegmentKeys(dataKey, h)
}

// deriveSegmentKeys derives the payload key and nonce prefix from the data
// key and the header's salt:
//
//	payload key ‖ nonce prefix = HKDF-SHA256(ikm = data key, salt = salt,
//	                             info = labelPayload, L = 32 + 7)
func deriveSegmentKeys(dataKey []byte, h *Header) (*segmentKeys, error) {
	okm, err := hkdf.Key(sha256.New, dataKey, h.Salt[:], labelPayload, payloadKeySize+noncePrefixSize)
	if err != nil {
		return nil, err
	}
	k := &segmentKeys{aad: h.SHA256()}
	copy(k.key[:], okm)
	copy(k.prefix[:], okm[payloadKeySize:])
	clear(okm)
	return k, nil
}

// aead returns a fresh AES-256-GCM instance for the payload key.
func (k *segmentKeys) aead() cipher.AEAD {
	block, err := aes.NewCipher(k.key[:])
	if err != nil {
		panic("envelope: AES-256 rejected a 32-byte key: " + err.Error())
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		panic("envelope: GCM: " + err.Error())
	}
	return g
}

// nonce sets n to prefix ‖ uint32 big-endian segment index ‖ last flag and
// returns it as a slice. n is the caller's, so that no nonce is allocated
// per segment.
func (k *segmentKeys) nonce(n *[nonceSize]byte, i uint64, last bool) []byte {
	copy(n[:], k.prefix[:])
	binary.BigEndian.PutUint32(n[noncePrefixSize:], uint32(i))
	n[nonceSize-1] = 0
	if last {
		n[nonceSize-1] = 1
	}
	return n[:]
}

func (k *segmentKeys) wipe() { clear(k.key[:]) }
