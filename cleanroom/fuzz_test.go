package cleanroom

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParsePublicKey feeds arbitrary text as a contract's public_key line:
// it never panics, refuses with ErrBadKey, and what it accepts prints back
// as the same canonical line.
func FuzzParsePublicKey(f *testing.F) {
	id, err := GenerateIdentity()
	if err != nil {
		f.Fatal(err)
	}
	good := id.Public().String()
	f.Add(good)
	f.Add("  " + good + "\n")
	f.Add(good[:len(good)-4])
	f.Add(good + "=")
	f.Add(strings.Replace(good, "cleanroom-pub-1:", "cleanroom-pub-2:", 1))
	f.Add("cleanroom-pub-1:")
	f.Fuzz(func(t *testing.T, line string) {
		k, err := ParsePublicKey(line)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("refusal %v does not wrap ErrBadKey", err)
			}
			return
		}
		if k.String() != strings.TrimSpace(line) {
			t.Fatalf("accepted %q, which prints as %q", line, k.String())
		}
		again, err := ParsePublicKey(k.String())
		if err != nil || !again.Equal(k) {
			t.Fatalf("canonical form does not parse back: %v", err)
		}
	})
}

// FuzzDecodeStatement feeds arbitrary bytes as a signed COSE_Sign1
// statement (contract approvals, upload and result statements all arrive
// this way): decoding and verifying never panic, refusals wrap
// ErrBadSignature, and only the signer's untouched statement verifies.
func FuzzDecodeStatement(f *testing.F) {
	signer, err := GenerateIdentity()
	if err != nil {
		f.Fatal(err)
	}
	good, err := SignStatement(signer, ContentTypeUploadStatement, []byte("payload"))
	if err != nil {
		f.Fatal(err)
	}
	other, err := SignStatement(signer, ContentTypeResultStatement, bytes.Repeat([]byte{0xa5}, 300))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(other)
	f.Add(good[:len(good)-1])
	f.Add(good[1:])
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40}) // tag 18, [h'', {}, nil, h'']
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeStatement(data)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("refusal %v does not wrap ErrBadSignature", err)
			}
			return
		}
		err = st.Verify(signer.Public(), ContentTypeUploadStatement)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("refusal %v does not wrap ErrBadSignature", err)
			}
			return
		}
		// EdDSA signatures are not malleable, but the CBOR around them
		// could be: whatever verifies must carry the signed payload.
		if !bytes.Equal(st.Payload, []byte("payload")) {
			t.Fatalf("verified a statement with payload %q that the signer never signed", st.Payload)
		}
	})
}

// FuzzOpenAlgorithm feeds arbitrary bytes as a sealed confidential
// algorithm (the body of PUT /v1/contracts/{cid}/algorithm): opening never
// panics and nothing but the sealed salt and text for this contract opens.
func FuzzOpenAlgorithm(f *testing.F) {
	coord, err := GenerateIdentity()
	if err != nil {
		f.Fatal(err)
	}
	var cid, otherCID [32]byte
	cid[0], otherCID[0] = 1, 2
	const text = "SELECT count(*) AS users FROM impressions"
	salt := Salt{7}
	sealed, err := SealAlgorithm(coord.Public(), cid, salt, []byte(text))
	if err != nil {
		f.Fatal(err)
	}
	wrong, err := SealAlgorithm(coord.Public(), otherCID, salt, []byte(text))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(wrong)
	f.Add(sealed[:len(sealed)-1])
	f.Add(sealed[:1120])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		gotSalt, got, err := OpenAlgorithm(coord.HPKE(), cid, data)
		if err != nil {
			return
		}
		if string(got) != text || gotSalt != salt || !bytes.Equal(data, sealed) {
			t.Fatalf("opened %d bytes that are not the sealed algorithm: %q", len(data), got)
		}
	})
}
