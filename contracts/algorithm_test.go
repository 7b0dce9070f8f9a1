package contracts

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
)

// TestAlgorithmCheck checks the rule of algorithm.sha256: the plain SHA-256
// of the text when the algorithm is not confidential, the salted
// commitment when it is, and a confidential contract naming the plain
// SHA-256 refused with its own message.
func TestAlgorithmCheck(t *testing.T) {
	text := []byte("SELECT count(*) AS users FROM impressions")
	salt, other := cleanroom.NewSalt(), cleanroom.NewSalt()
	plain := Algorithm{SHA256: sha256.Sum256(text)}
	committed := Algorithm{SHA256: cleanroom.CommitAlgorithm(salt, text), Confidential: true}
	unsalted := Algorithm{SHA256: sha256.Sum256(text), Confidential: true}
	cases := []struct {
		name string
		a    Algorithm
		text []byte
		salt *cleanroom.Salt
		want string // "" for accepted
	}{
		{"plain", plain, text, nil, ""},
		{"plain, another text", plain, append(text, '\n'), nil, "its SHA-256 is"},
		{"plain with a salt", plain, text, &salt, "takes no salt"},
		{"committed", committed, text, &salt, ""},
		{"committed without a salt", committed, text, nil, "needs its salt"},
		{"committed, another salt", committed, text, &other, "the commitment of this text with this salt is"},
		{"committed, another text", committed, append(text, ' '), &salt, "the commitment of this text with this salt is"},
		{"confidential naming the plain SHA-256", unsalted, text, &salt, "algorithm.sha256 is the plain SHA-256 of this confidential algorithm"},
	}
	for _, tc := range cases {
		err := tc.a.Check(tc.text, tc.salt)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
		if err != nil && (tc.salt != nil) == tc.a.Confidential && !errors.Is(err, ErrAlgorithmMismatch) {
			t.Errorf("%s: a mismatch does not wrap ErrAlgorithmMismatch: %v", tc.name, err)
		}
	}
	// The commitment hides the text: it is neither the plain SHA-256 nor
	// the same under two salts.
	if committed.SHA256 == plain.SHA256 || cleanroom.CommitAlgorithm(other, text) == committed.SHA256 {
		t.Fatal("the commitment does not depend on the salt")
	}
}

// TestConfidentialWarning checks that contract show's warnings tell the
// parties that a confidential algorithm's sha256 must be a salted
// commitment.
func TestConfidentialWarning(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(aggregateYAML(baseYAML()), "confidential: false", "confidential: true", 1)), ParseOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range c.Warnings() {
		if w.Field == "algorithm.confidential" && strings.Contains(w.Msg, "salted commitment made by cleanroom algorithm commit") {
			return
		}
	}
	t.Fatalf("no warning about the commitment: %+v", c.Warnings())
}
