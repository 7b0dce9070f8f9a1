package envelope

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
)

// Info is what an envelope shows without a key: its header, the layout of
// its body and the SHA-256 of the whole file (the ciphertext digest that
// upload statements name). Nothing in it is authenticated.
type Info struct {
	Version          int             `json:"version"`
	Kind             string          `json:"kind"`
	ContractID       string          `json:"contract_id"`
	ObjectID         string          `json:"object_id"`
	SchemaDigest     string          `json:"schema_digest"`
	HPKESuite        string          `json:"hpke_suite"`
	SegmentSize      int             `json:"segment_size"`
	Segments         int64           `json:"segments"`
	HeaderSize       int             `json:"header_size"`
	PlaintextSize    int64           `json:"plaintext_size"`
	CiphertextSize   int64           `json:"ciphertext_size"`
	CiphertextSHA256 string          `json:"ciphertext_sha256"`
	Recipients       []RecipientInfo `json:"recipients"`
}

// RecipientInfo names one recipient stanza by its key id (the SHA-256 of
// the recipient's HPKE public key).
type RecipientInfo struct {
	KeyID string `json:"key_id"`
}

// Inspect reads an envelope once, parsing its header, hashing every byte
// and checking that the body's length fits the segment structure. It
// decrypts nothing, so it authenticates nothing either: an envelope that
// inspects cleanly may still be refused when opened. A malformed header is
// an error naming the field and its offset.
func Inspect(r io.Reader) (*Info, error) {
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(r, h), 1<<20)
	hdr, err := ParseHeader(br)
	if err != nil {
		return nil, err
	}
	body, err := io.Copy(io.Discard, br)
	if err != nil {
		return nil, err
	}
	layout, err := BodyLayout(body, hdr.SegmentSize, hdr.Len())
	if err != nil {
		return nil, &LayoutError{err}
	}
	info := &Info{
		Version:          hdr.Version,
		Kind:             hdr.Kind.String(),
		ContractID:       hex.EncodeToString(hdr.ContractID[:]),
		ObjectID:         hdr.ObjectID,
		SchemaDigest:     hex.EncodeToString(hdr.SchemaDigest[:]),
		HPKESuite:        "ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM",
		SegmentSize:      hdr.SegmentSize,
		Segments:         layout.Segments,
		HeaderSize:       hdr.Len(),
		PlaintextSize:    layout.PlaintextSize,
		CiphertextSize:   int64(hdr.Len()) + body,
		CiphertextSHA256: hex.EncodeToString(h.Sum(nil)),
	}
	for _, s := range hdr.Recipients {
		info.Recipients = append(info.Recipients, RecipientInfo{KeyID: hex.EncodeToString(s.KeyID[:])})
	}
	return info, nil
}

// LayoutError is Inspect's error for a body whose length does not fit the
// header's segment structure: a file cut short or with bytes appended.
type LayoutError struct{ Err error }

func (e *LayoutError) Error() string { return e.Err.Error() }
func (e *LayoutError) Unwrap() error { return e.Err }
