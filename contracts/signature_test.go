package contracts

import (
	"errors"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
)

func signAll(t *testing.T, c *Contract, names ...string) []SignedBy {
	t.Helper()
	var sigs []SignedBy
	for _, n := range names {
		sig, err := c.Sign(parties[n])
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, SignedBy{Source: n + ".sig", Data: sig})
	}
	return sigs
}

func TestAllPartiesSigned(t *testing.T) {
	c := mustParse(t, baseYAML())
	a := c.VerifySignatures(signAll(t, c, "publisher", "advertiser", "measurer", "auditor"))
	if !a.Complete() || a.Err() != nil || len(a.Valid) != 4 {
		t.Fatalf("complete set refused: %v", a.Err())
	}
}

func TestSignatureProblems(t *testing.T) {
	c := mustParse(t, baseYAML())
	other := mustParse(t, strings.Replace(baseYAML(), "max_runs: 5", "max_runs: 50", 1))
	good := signAll(t, c, "publisher", "advertiser", "measurer")
	auditorSig, err := c.Sign(parties["auditor"])
	if err != nil {
		t.Fatal(err)
	}
	otherSig, err := other.Sign(parties["auditor"])
	if err != nil {
		t.Fatal(err)
	}
	// A stranger cannot even produce a signature through Sign; forge one
	// with the statement layer directly.
	payload, _ := CanonicalCBOR(approval{ContractID: c.id[:]})
	strangerSig, err := cleanroom.SignStatement(parties["stranger"], cleanroom.ContentTypeContractApproval, payload)
	if err != nil {
		t.Fatal(err)
	}
	wrongType, err := cleanroom.SignStatement(parties["auditor"], cleanroom.ContentTypeUploadStatement, payload)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		extra       []SignedBy
		participant string
		want        error
	}{
		{"missing", nil, "auditor", ErrSignatureMissing},
		{"stranger", []SignedBy{{"auditor.sig", strangerSig}}, "", ErrSignerUnknown},
		{"other contract", []SignedBy{{"auditor.sig", otherSig}}, "auditor", ErrOtherContract},
		{"wrong statement type", []SignedBy{{"auditor.sig", wrongType}}, "auditor", ErrSignatureInvalid},
		{"garbage", []SignedBy{{"auditor.sig", []byte("not cbor")}}, "", ErrSignatureMalformed},
	}
	// A flipped byte anywhere either breaks decoding, changes the signer,
	// or breaks the signature: never accepted.
	for i := 0; i < len(auditorSig); i++ {
		b := append([]byte(nil), auditorSig...)
		b[i] ^= 0x01
		cases = append(cases, struct {
			name        string
			extra       []SignedBy
			participant string
			want        error
		}{"flip", []SignedBy{{"auditor.sig", b}}, "?", nil})
	}
	for _, tc := range cases {
		a := c.VerifySignatures(append(append([]SignedBy{}, good...), tc.extra...))
		if a.Complete() {
			t.Fatalf("%s: accepted", tc.name)
		}
		if _, ok := a.Valid["auditor"]; ok {
			t.Fatalf("%s: auditor counted as signed", tc.name)
		}
		if tc.want == nil {
			continue
		}
		var found bool
		for _, p := range a.Problems {
			if errors.Is(p, tc.want) && p.Participant == tc.participant {
				found = true
				if tc.participant != "" && !strings.Contains(p.Error(), "participant "+tc.participant) {
					t.Errorf("%s: message does not name the participant: %v", tc.name, p)
				}
			}
		}
		if !found {
			t.Errorf("%s: want %v for %q, got %v", tc.name, tc.want, tc.participant, a.Err())
		}
	}
}

func TestSignRefusesStranger(t *testing.T) {
	c := mustParse(t, baseYAML())
	if _, err := c.Sign(parties["stranger"]); err == nil {
		t.Fatal("a stranger's key signed")
	}
}
