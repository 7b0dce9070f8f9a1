package contracts

import (
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/internal/fuzzseed"
)

// FuzzParse feeds arbitrary bytes to the contract parser: it must never
// panic, and whatever it accepts must have a stable id and re-verify.
func FuzzParse(f *testing.F) {
	f.Add([]byte(baseYAML()))
	f.Add([]byte(modelsYAML(scoreModel)))
	f.Add([]byte(paramsYAML(paramsBlock)))
	f.Add([]byte(baseYAML() + "supersedes: \"" + strings.Repeat("ab", 32) + "\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, ParseOptions{Now: testNow})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		c2, err := Parse(data, ParseOptions{Now: testNow})
		if err != nil || c2.ID() != c.ID() {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}

// FuzzVerifySignature feeds arbitrary bytes as a contract signature: never a
// panic, never accepted unless it is a real participant's signature.
func FuzzVerifySignature(f *testing.F) {
	c, err := Parse([]byte(baseYAML()), ParseOptions{Now: testNow})
	if err != nil {
		f.Fatal(err)
	}
	sig, err := c.Sign(parties["auditor"])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := c.VerifySignature(SignedBy{Source: "fuzz", Data: data})
		if err == nil && id == "" {
			t.Fatal("accepted without a participant")
		}
	})
}

// FuzzVerifyResumption feeds arbitrary bytes as a resumption approval:
// never a panic, never accepted unless it is a real participant's
// approval of this suspension.
func FuzzVerifyResumption(f *testing.F) {
	c, err := Parse([]byte(baseYAML()), ParseOptions{Now: testNow})
	if err != nil {
		f.Fatal(err)
	}
	sig, err := c.SignResumption(parties["auditor"], 7)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	approval, err := c.Sign(parties["auditor"])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(approval)
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := c.VerifyResumption(SignedBy{Source: "fuzz", Data: data}, 7)
		if err == nil && id == "" {
			t.Fatal("accepted without a participant")
		}
	})
}

// TestWriteFuzzSeeds rewrites the seed corpora when run with -update-seeds.
// The seeds are the valid contract, each bad contract of TestBadContracts,
// and signatures, valid and damaged.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*fuzzseed.Update {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz")
	}
	base := baseYAML()
	seeds := []string{base, reencode(t, base, true), reencode(t, base, false), Template, "", "{}", "[]", "version: 1", "a: &x 1\nb: *x\n"}
	for _, edit := range [][2]string{
		{"max_runs: 5", "max_runs: 0"}, {"id: publisher", "id: Publisher"}, {"roles: [auditor]", "roles: [watcher]"},
		{"platform: sev-snp", "platform: sev-snp-simulated"}, {"version: 1", "version: 1\nversion: 1"},
		{"{name: value, type: float64}", "{name: value, type: \"decimal(10,2)\"}"},
	} {
		seeds = append(seeds, strings.Replace(base, edit[0], edit[1], 1))
	}
	var parse [][]byte
	for _, s := range seeds {
		parse = append(parse, []byte(s))
	}
	fuzzseed.Write(t, "FuzzParse", fuzzseed.Bytes(parse...)...)
	c := mustParse(t, base)
	var sigs [][]byte
	for _, name := range []string{"publisher", "auditor"} {
		sig, err := c.Sign(parties[name])
		if err != nil {
			t.Fatal(err)
		}
		damaged := append([]byte(nil), sig...)
		damaged[len(damaged)/2] ^= 1
		sigs = append(sigs, sig, damaged)
	}
	sigs = append(sigs, []byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
	fuzzseed.Write(t, "FuzzVerifySignature", fuzzseed.Bytes(sigs...)...)
}
