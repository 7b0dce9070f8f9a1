package envelope

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Format constants of envelope version 1 (docs/envelope.md).
const (
	// Version is the format version this package writes and reads.
	Version = 1

	// DefaultSegmentSize is the plaintext size of each segment when
	// Header.SegmentSize is zero: large enough that the per-segment
	// overhead (a 16-byte tag, one nonce) is negligible, small enough that
	// a dataset splits into many segments for parallel decryption.
	DefaultSegmentSize = 1 << 20
	// MinSegmentSize and MaxSegmentSize bound the segment size recorded in
	// a header. The maximum bounds the memory a streaming reader or writer
	// needs (about two segments).
	MinSegmentSize = 64
	MaxSegmentSize = 16 << 20

	// MaxObjectIDLen is the maximum length in bytes of Header.ObjectID.
	MaxObjectIDLen = 64
	// MaxRecipients is the maximum number of recipient stanzas.
	MaxRecipients = 64
	// MaxSegments is the number of segments the 32-bit segment counter
	// allows.
	MaxSegments = 1 << 32

	// TagSize is the size of the AES-256-GCM tag that ends every segment.
	TagSize = 16

	// kemID, kdfID and aeadID are the HPKE suite of version 1:
	// ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM.
	kemID  = 0x647a
	kdfID  = 0x0001
	aeadID = 0x0002

	// encSize is the size of an ML-KEM-768+X25519 encapsulated key;
	// wrappedKeySize is the HPKE AES-256-GCM ciphertext of the data key.
	encSize        = 1088 + 32
	dataKeySize    = 32
	wrappedKeySize = dataKeySize + TagSize
	keyIDSize      = 32
	stanzaSize     = keyIDSize + encSize + wrappedKeySize
	saltSize       = 32

	// fixedPreambleLen is the length of the preamble up to and including
	// the object id length byte.
	fixedPreambleLen = 8 + 2 + 1 + 2 + 2 + 2 + 4 + 32 + 32 + saltSize + 1
)

// magic starts every envelope. Like PNG's signature it contains a byte with
// the high bit set and CR LF, SUB, LF, so that text-mode transfers that
// mangle bytes are detected at the first byte that changed.
var magic = [8]byte{0x89, 'C', 'R', 'E', '\r', '\n', 0x1a, '\n'}

// Kind says what an envelope holds.
type Kind uint8

// Kinds of envelope.
const (
	// KindDataset is a provider's dataset, encrypted to the coordinator;
	// ObjectID is the dataset id.
	KindDataset Kind = 1
	// KindResult is a run's result, encrypted to the result recipients;
	// ObjectID is the run id.
	KindResult Kind = 2
)

// String returns "dataset", "result" or "kind(N)".
func (k Kind) String() string {
	switch k {
	case KindDataset:
		return "dataset"
	case KindResult:
		return "result"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

func (k Kind) valid() bool { return k == KindDataset || k == KindResult }

// Header is the authenticated, unencrypted part of an envelope. Everything in
// it is visible to anyone who holds the file (the host, the operator); none
// of it is secret. Every segment's authentication tag covers the SHA-256 of
// the whole encoded header, so a header that decrypts is exactly the header
// the writer wrote.
type Header struct {
	// Kind, ContractID, ObjectID and SchemaDigest say what the envelope
	// holds. The writer records them; a decrypter compares them with what
	// it expects (see Expect) before using the plaintext.
	Kind         Kind
	ContractID   [32]byte
	ObjectID     string // 1 to MaxObjectIDLen printable ASCII bytes (0x21–0x7e)
	SchemaDigest [32]byte

	// SegmentSize is the plaintext size of every segment but the last.
	// Zero when writing means DefaultSegmentSize.
	SegmentSize int

	// The fields below are set by NewWriter and ParseHeader; NewWriter
	// ignores Version and Salt and refuses a Header with Recipients.

	// Version is the format version (always Version).
	Version int
	// Salt is the per-envelope random salt of the payload key derivation.
	Salt [32]byte
	// Recipients holds one stanza per key the data key is wrapped to.
	Recipients []Stanza

	raw         []byte // the encoded header
	preambleLen int    // length of the part of raw that the HPKE info binds
}

// Stanza is one recipient's copy of the data key.
type Stanza struct {
	// KeyID is the SHA-256 of the recipient's HPKE public key bytes
	// (crypto/hpke PublicKey.Bytes, 1216 bytes for ML-KEM-768+X25519).
	KeyID [32]byte
	// Enc is the HPKE encapsulated key (1120 bytes).
	Enc []byte
	// WrappedKey is the HPKE-sealed 32-byte data key (48 bytes).
	WrappedKey []byte
}

// Len returns the length in bytes of the encoded header; the first segment
// starts at this offset. It is zero for a Header that was not parsed or
// written.
func (h *Header) Len() int { return len(h.raw) }

// Bytes returns a copy of the encoded header, or nil for a Header that was
// not parsed or written.
func (h *Header) Bytes() []byte { return bytes.Clone(h.raw) }

// SHA256 returns the SHA-256 of the encoded header: the additional data of
// every segment.
func (h *Header) SHA256() [32]byte { return sha256.Sum256(h.raw) }

// checkDescription validates the fields a writer is given.
func (h *Header) checkDescription() error {
	if !h.Kind.valid() {
		return fmt.Errorf("envelope: header kind %d is neither dataset (1) nor result (2)", h.Kind)
	}
	if h.ContractID == ([32]byte{}) {
		return errors.New("envelope: header contract id is all zeros; set it to the contract's id")
	}
	if err := CheckObjectID(h.ObjectID); err != nil {
		return fmt.Errorf("envelope: header object id: %s", err)
	}
	if h.SegmentSize < MinSegmentSize || h.SegmentSize > MaxSegmentSize {
		return fmt.Errorf("envelope: segment size %d is outside %d..%d", h.SegmentSize, MinSegmentSize, MaxSegmentSize)
	}
	return nil
}

// CheckObjectID reports whether id can be an envelope's object id: 1 to
// MaxObjectIDLen bytes of printable ASCII without space. Contract dataset
// ids and run ids satisfy it.
func CheckObjectID(id string) error {
	if len(id) == 0 || len(id) > MaxObjectIDLen {
		return fmt.Errorf("length %d is outside 1..%d", len(id), MaxObjectIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("byte %d is 0x%02x; only printable ASCII without space (0x21–0x7e) is allowed", i, c)
		}
	}
	return nil
}

// appendPreamble appends the encoded preamble: every header field before
// the recipient count.
func (h *Header) appendPreamble(b []byte) []byte {
	b = append(b, magic[:]...)
	b = binary.BigEndian.AppendUint16(b, Version)
	b = append(b, byte(h.Kind))
	b = binary.BigEndian.AppendUint16(b, kemID)
	b = binary.BigEndian.AppendUint16(b, kdfID)
	b = binary.BigEndian.AppendUint16(b, aeadID)
	b = binary.BigEndian.AppendUint32(b, uint32(h.SegmentSize))
	b = append(b, h.ContractID[:]...)
	b = append(b, h.SchemaDigest[:]...)
	b = append(b, h.Salt[:]...)
	b = append(b, byte(len(h.ObjectID)))
	b = append(b, h.ObjectID...)
	return b
}

// appendStanzas appends the recipient count and the stanzas.
func appendStanzas(b []byte, stanzas []Stanza) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(stanzas)))
	for _, s := range stanzas {
		b = append(b, s.KeyID[:]...)
		b = append(b, s.Enc...)
		b = append(b, s.WrappedKey...)
	}
	return b
}

// headerReader reads header fields from r, keeping the bytes read and the
// offset for error messages.
type headerReader struct {
	r   io.Reader
	raw []byte
}

func (d *headerReader) off() int64 { return int64(len(d.raw)) }

// next reads n bytes of the named field.
func (d *headerReader) next(n int, field string) ([]byte, error) {
	start := len(d.raw)
	d.raw = append(d.raw, make([]byte, n)...)
	got, err := io.ReadFull(d.r, d.raw[start:])
	if err != nil {
		d.raw = d.raw[:start+got]
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &FormatError{Offset: int64(start + got), Field: field,
				Reason: fmt.Sprintf("the file ends inside the header (%s needs %d bytes, %d left)", field, n, got)}
		}
		return nil, fmt.Errorf("envelope: reading %s at byte offset %d: %w", field, start, err)
	}
	return d.raw[start:], nil
}

func (d *headerReader) uint16(field string) (uint16, int64, error) {
	off := d.off()
	b, err := d.next(2, field)
	if err != nil {
		return 0, off, err
	}
	return binary.BigEndian.Uint16(b), off, nil
}

// ParseHeader reads and checks an envelope header from r, reading exactly
// the header's bytes (r is then positioned at the first segment). It needs
// no key and authenticates nothing: the header is authenticated only when a
// segment decrypts under it (Open, NewReader). A malformed header is
// reported as a *FormatError naming the field and its byte offset.
func ParseHeader(r io.Reader) (*Header, error) {
	d := &headerReader{r: r, raw: make([]byte, 0, fixedPreambleLen+MaxObjectIDLen+2+stanzaSize)}
	bad := func(off int64, field, format string, args ...any) error {
		return &FormatError{Offset: off, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	m, err := d.next(len(magic), "magic")
	if err != nil {
		if len(d.raw) == 0 || bytes.HasPrefix(magic[:], d.raw) {
			return nil, err
		}
		m = d.raw // a short file that is not an envelope either
	}
	if !bytes.Equal(m, magic[:]) {
		return nil, bad(0, "magic", "the file does not start with the envelope signature 89 43 52 45 0d 0a 1a 0a (got %s): it is not a Cleanroom envelope", hex.EncodeToString(m))
	}
	h := &Header{}
	v, off, err := d.uint16("version")
	if err != nil {
		return nil, err
	}
	if v != Version {
		return nil, bad(off, "version", "format version %d is not supported (this program reads version %d)", v, Version)
	}
	h.Version = int(v)
	off = d.off()
	b, err := d.next(1, "kind")
	if err != nil {
		return nil, err
	}
	h.Kind = Kind(b[0])
	if !h.Kind.valid() {
		return nil, bad(off, "kind", "kind %d is neither dataset (1) nor result (2)", b[0])
	}
	for _, f := range []struct {
		name string
		want uint16
		desc string
	}{
		{"HPKE KEM id", kemID, "ML-KEM-768+X25519"},
		{"HPKE KDF id", kdfID, "HKDF-SHA256"},
		{"HPKE AEAD id", aeadID, "AES-256-GCM"},
	} {
		id, off, err := d.uint16(f.name)
		if err != nil {
			return nil, err
		}
		if id != f.want {
			return nil, bad(off, f.name, "0x%04x is not supported; version %d uses 0x%04x (%s)", id, Version, f.want, f.desc)
		}
	}
	off = d.off()
	if b, err = d.next(4, "segment size"); err != nil {
		return nil, err
	}
	ss := binary.BigEndian.Uint32(b)
	if ss < MinSegmentSize || ss > MaxSegmentSize {
		return nil, bad(off, "segment size", "%d is outside %d..%d", ss, MinSegmentSize, MaxSegmentSize)
	}
	h.SegmentSize = int(ss)
	for _, f := range []struct {
		name string
		dst  *[32]byte
	}{{"contract id", &h.ContractID}, {"schema digest", &h.SchemaDigest}, {"salt", &h.Salt}} {
		if b, err = d.next(32, f.name); err != nil {
			return nil, err
		}
		copy(f.dst[:], b)
	}
	off = d.off()
	if b, err = d.next(1, "object id length"); err != nil {
		return nil, err
	}
	n := int(b[0])
	if n == 0 || n > MaxObjectIDLen {
		return nil, bad(off, "object id length", "%d is outside 1..%d", n, MaxObjectIDLen)
	}
	off = d.off()
	if b, err = d.next(n, "object id"); err != nil {
		return nil, err
	}
	if err := CheckObjectID(string(b)); err != nil {
		return nil, bad(off, "object id", "%s", err)
	}
	h.ObjectID = string(b)
	h.preambleLen = len(d.raw)

	count, off, err := d.uint16("recipient count")
	if err != nil {
		return nil, err
	}
	if count == 0 || count > MaxRecipients {
		return nil, bad(off, "recipient count", "%d is outside 1..%d", count, MaxRecipients)
	}
	h.Recipients = make([]Stanza, count)
	for i := range h.Recipients {
		s := &h.Recipients[i]
		field := fmt.Sprintf("recipient %d", i+1)
		off = d.off()
		if b, err = d.next(keyIDSize, field+" key id"); err != nil {
			return nil, err
		}
		copy(s.KeyID[:], b)
		for j := range i {
			if h.Recipients[j].KeyID == s.KeyID {
				return nil, bad(off, field+" key id", "the same key as recipient %d: each key may appear once", j+1)
			}
		}
		if b, err = d.next(encSize, field+" encapsulated key"); err != nil {
			return nil, err
		}
		s.Enc = bytes.Clone(b)
		if b, err = d.next(wrappedKeySize, field+" wrapped key"); err != nil {
			return nil, err
		}
		s.WrappedKey = bytes.Clone(b)
	}
	h.raw = d.raw
	return h, nil
}

// hpkeInfo is the HPKE info of every stanza of the header: a domain
// separation label, a zero byte, then the preamble (which holds the format
// version, kind, suite, segment size, contract id, schema digest, salt and
// object id).
func (h *Header) hpkeInfo() []byte {
	info := make([]byte, 0, len(labelKeyWrap)+1+h.preambleLen)
	info = append(info, labelKeyWrap...)
	info = append(info, 0)
	return append(info, h.raw[:h.preambleLen]...)
}
