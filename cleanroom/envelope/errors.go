package envelope

import (
	"errors"
	"fmt"
)

// Errors returned by the decoders. Each error wraps exactly one of these
// (test with errors.Is) and its message says what was wrong and where.
var (
	// ErrMalformed reports bytes that are not a well-formed envelope of this
	// version; the error is a *FormatError with the byte offset.
	ErrMalformed = errors.New("malformed envelope")
	// ErrMismatch reports a well-formed envelope made for another kind,
	// contract, object or schema than the caller expects; the error is a
	// *MismatchError.
	ErrMismatch = errors.New("envelope is not the one expected")
	// ErrNotRecipient reports an envelope that has no stanza for the key
	// given, or a key of another KEM.
	ErrNotRecipient = errors.New("envelope is not encrypted to this key")
	// ErrAuthentication reports a data key or a segment that does not
	// authenticate: the envelope was modified, reordered, spliced or cut
	// inside a segment.
	ErrAuthentication = errors.New("envelope does not authenticate")
	// ErrTruncated reports an envelope that stops at a segment boundary
	// before its last segment, or whose body is too short to hold one.
	ErrTruncated = errors.New("envelope is truncated")
)

// FormatError says which field of an envelope is malformed and at which
// byte offset of the file. It wraps ErrMalformed.
type FormatError struct {
	Offset int64  // byte offset of the field (or of the end of the file)
	Field  string // e.g. "segment size", "recipient 2 key id"
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("malformed envelope: %s at byte offset %d: %s", e.Field, e.Offset, e.Reason)
}

// Unwrap returns ErrMalformed.
func (e *FormatError) Unwrap() error { return ErrMalformed }

// MismatchError names the header field whose value differs from the
// expected one. It wraps ErrMismatch.
type MismatchError struct {
	Field string // "kind", "contract id", "object id" or "schema digest"
	Want  string
	Got   string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("envelope is for another %s: header has %s, expected %s", e.Field, e.Got, e.Want)
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }
