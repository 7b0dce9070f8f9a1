package atls

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/internal/canon"
)

// OIDAttestation identifies the X.509 extension that carries the
// coordinator's attestation: TCG DICE's tcg-dice-conceptual-message-wrapper
// (2.23.133.5.4.9), whose value is a RATS Conceptual Message Wrapper (CMW).
// docs/attestation.md explains the choice (a 2.25.<UUID> OID cannot be
// parsed by Go's crypto/x509, which every Go TLS peer runs).
var OIDAttestation = asn1.ObjectIdentifier{2, 23, 133, 5, 4, 9}

// MediaType is the CMW type of Cleanroom's attestation payload.
const MediaType = "application/vnd.cleanroom.coordinator-attestation.v1+cbor"

// maxExtensionSize bounds the extension value a client parses.
const maxExtensionSize = attest.MaxEvidenceSize + 8<<10

// payload is the CBOR map inside the CMW record: the coordinator's public
// keys (raw, exactly one in version 1) and the evidence encoding.
type payload struct {
	Keys     [][]byte `cbor:"1,keyasint"`
	Evidence []byte   `cbor:"2,keyasint"`
}

// cmwRecord is a CMW CBOR record: [media type, value].
type cmwRecord struct {
	_     struct{} `cbor:",toarray"`
	Type  string
	Value []byte
}

var (
	decoder = canon.NewDecoder(canon.Limits{MaxNestedLevels: 4, MaxArrayElements: 16, MaxMapPairs: 16})
)

// decodeCanonical decodes v strictly and requires data to be exactly its
// core deterministic encoding.
func decodeCanonical(what string, data []byte, v any) error { return decoder.Decode(what, data, v) }

// marshalExtension returns the extension value for a key and its evidence.
func marshalExtension(key *cleanroom.PublicKey, ev attest.Evidence) ([]byte, error) {
	evBytes, err := ev.MarshalBinary()
	if err != nil {
		return nil, err
	}
	inner, err := canon.Marshal(payload{Keys: [][]byte{key.Bytes()}, Evidence: evBytes})
	if err != nil {
		return nil, err
	}
	return canon.Marshal(cmwRecord{Type: MediaType, Value: inner})
}

// ParseExtension parses the attestation extension value strictly. It
// verifies nothing.
func ParseExtension(value []byte) (*cleanroom.PublicKey, attest.Evidence, error) {
	if len(value) > maxExtensionSize {
		return nil, nil, fmt.Errorf("%w: attestation extension of %d bytes exceeds %d", attest.ErrMalformed, len(value), maxExtensionSize)
	}
	var rec cmwRecord
	if err := decodeCanonical("attestation extension", value, &rec); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", attest.ErrMalformed, err)
	}
	if rec.Type != MediaType {
		return nil, nil, fmt.Errorf("%w: attestation extension has media type %q, want %q", attest.ErrMalformed, rec.Type, MediaType)
	}
	var p payload
	if err := decodeCanonical("attestation payload", rec.Value, &p); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", attest.ErrMalformed, err)
	}
	if len(p.Keys) != 1 {
		return nil, nil, fmt.Errorf("%w: attestation payload has %d public keys, want 1", attest.ErrMalformed, len(p.Keys))
	}
	key, err := cleanroom.PublicKeyFromBytes(p.Keys[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: attestation payload key: %v", attest.ErrMalformed, err)
	}
	ev, err := attest.ParseEvidence(p.Evidence)
	if err != nil {
		return nil, nil, err
	}
	return key, ev, nil
}

// findExtension returns the value of the attestation extension of cert.
func findExtension(cert *x509.Certificate) ([]byte, error) {
	var found []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDAttestation) {
			if found != nil {
				return nil, fmt.Errorf("%w: the certificate carries the attestation extension twice", attest.ErrMalformed)
			}
			found = e.Value
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: the certificate carries no attestation extension (%s): this is not an attested Cleanroom coordinator", attest.ErrNotGenuine, OIDAttestation)
	}
	return found, nil
}
