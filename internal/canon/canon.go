// Package canon is Cleanroom's canonical CBOR: the deterministic encoding
// (RFC 8949 §4.2.1, core deterministic) of every hashed or signed
// structure, and a strict decoder that accepts only that encoding, so every
// value has exactly one byte form.
package canon

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

var encMode = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// Marshal encodes v in core deterministic CBOR: preferred serialisation,
// definite lengths, map keys (and struct fields) sorted by encoded bytes.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// ErrNotCanonical is wrapped by every decoding error.
var ErrNotCanonical = errors.New("not canonical CBOR of the expected shape")

// Limits bound what a decoder accepts, against resource exhaustion.
type Limits struct {
	MaxNestedLevels  int
	MaxArrayElements int
	MaxMapPairs      int
}

// Decoder decodes strictly: no unknown or duplicate keys, no tags, no
// indefinite lengths, valid UTF-8 text, within its limits. Decode also
// requires nothing after the item and the bytes to be exactly the canonical
// encoding of the decoded value; Unmarshal and UnmarshalFirst stop at the
// strict shape, for callers that check canonical form themselves or read a
// format that is not canonical (AWS's Nitro attestation documents). Every
// strict CBOR decode in Cleanroom goes through a Decoder.
type Decoder struct{ mode cbor.DecMode }

// NewDecoder returns a strict decoder within limits.
func NewDecoder(l Limits) Decoder {
	m, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   l.MaxNestedLevels,
		MaxArrayElements:  l.MaxArrayElements,
		MaxMapPairs:       l.MaxMapPairs,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return Decoder{m}
}

// Decode decodes data into v; what names the data in errors, which wrap
// ErrNotCanonical.
func (d Decoder) Decode(what string, data []byte, v any) error {
	rest, err := d.mode.UnmarshalFirst(data, v)
	if err != nil {
		return fmt.Errorf("%w: %s is not valid CBOR of the expected shape: %v", ErrNotCanonical, what, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %s has %d bytes after its end", ErrNotCanonical, what, len(rest))
	}
	again, err := encMode.Marshal(v)
	if err != nil || !bytes.Equal(again, data) {
		return fmt.Errorf("%w: %s is not in canonical (core deterministic) CBOR encoding", ErrNotCanonical, what)
	}
	return nil
}

// Unmarshal decodes the one item data holds into v, strictly (see
// Decoder), without the canonical-form check of Decode. Its errors are the
// CBOR library's.
func (d Decoder) Unmarshal(data []byte, v any) error { return d.mode.Unmarshal(data, v) }

// UnmarshalFirst decodes the first item of data into v, strictly, and
// returns the bytes after it.
func (d Decoder) UnmarshalFirst(data []byte, v any) ([]byte, error) {
	return d.mode.UnmarshalFirst(data, v)
}
