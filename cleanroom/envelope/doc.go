// Package envelope implements the Cleanroom envelope: the encrypted file
// format of datasets (sealed by a data provider to the attested coordinator)
// and of results (sealed by the coordinator to each result recipient).
//
// An envelope is a header followed by segments. The header names what the
// envelope holds (kind, contract id, object id, schema digest) and carries,
// for each recipient, a random 32-byte data key wrapped with HPKE (RFC 9180;
// ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM) under an HPKE info that binds
// those fields. The plaintext is sealed in fixed-size AES-256-GCM segments
// following the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár,
// "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
// CRYPTO 2015): each nonce holds the segment index and a last-segment flag,
// and each segment's additional data is the SHA-256 of the header. So any
// changed bit, truncation, reordering, duplication, dropped segment or
// splice between envelopes is detected, and segments decrypt independently,
// in parallel. The byte layout is specified in docs/envelope.md.
//
// NewWriter encrypts a stream in bounded memory; Open decrypts a whole
// envelope in memory on all CPUs; NewReader decrypts a stream in one pass;
// ParseHeader reads a header without a key.
package envelope
