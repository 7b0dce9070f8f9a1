package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/contracts"
)

// IdentityDocumentVersion is the version of the identity document format.
const IdentityDocumentVersion = 1

// MaxIdentityDocumentSize bounds the identity document the parser accepts.
const MaxIdentityDocumentSize = 256 << 10

// IdentityDocument is what `cleanroomd identity` prints and clients verify:
// the coordinator's public keys and evidence binding them, plus the two
// values a contract pins (measurement, and for the simulated platform the
// fake root's hash) copied out of the evidence for people to read.
// Verification never trusts the copies: it uses the evidence.
type IdentityDocument struct {
	Platform            contracts.Platform
	Measurement         [48]byte
	PublicKeys          []*cleanroom.PublicKey // exactly one in version 1: the coordinator's key
	Evidence            Evidence
	SimulatedRootSHA256 *[32]byte // set exactly on the simulated platform
}

// NewIdentityDocument builds the document for the coordinator key and the
// evidence binding it (without a nonce).
func NewIdentityDocument(key *cleanroom.PublicKey, ev Evidence) (*IdentityDocument, error) {
	if key == nil || ev == nil {
		return nil, errors.New("an identity document needs the coordinator key and its evidence")
	}
	d := &IdentityDocument{Platform: ev.Platform(), PublicKeys: []*cleanroom.PublicKey{key}, Evidence: ev}
	if err := d.fillFromEvidence(); err != nil {
		return nil, err
	}
	return d, nil
}

// fillFromEvidence sets the pinned values from the (unverified) evidence.
func (d *IdentityDocument) fillFromEvidence() error {
	if err := d.Evidence.check(); err != nil {
		return err
	}
	m, err := d.Evidence.measurement()
	if err != nil {
		return err
	}
	root, err := d.Evidence.simulatedRoot()
	if err != nil {
		return err
	}
	d.Measurement, d.SimulatedRootSHA256 = m, root
	return nil
}

// identityWire is the JSON form; field order is the output order.
type identityWire struct {
	Version             int      `json:"version"`
	Platform            string   `json:"platform"`
	Measurement         string   `json:"measurement"`
	SimulatedRootSHA256 string   `json:"simulated_root_sha256,omitempty"`
	PublicKeys          []string `json:"public_keys"`
	Evidence            string   `json:"evidence"`
}

var identityFields = map[string]bool{
	"version": true, "platform": true, "measurement": true, "simulated_root_sha256": true,
	"public_keys": true, "evidence": true,
}

// MarshalJSON returns the document as indented JSON with a final newline.
func (d *IdentityDocument) MarshalJSON() ([]byte, error) {
	ev, err := d.Evidence.MarshalBinary()
	if err != nil {
		return nil, err
	}
	w := identityWire{
		Version:     IdentityDocumentVersion,
		Platform:    string(d.Platform),
		Measurement: hex.EncodeToString(d.Measurement[:]),
		Evidence:    base64.StdEncoding.EncodeToString(ev),
	}
	if d.SimulatedRootSHA256 != nil {
		w.SimulatedRootSHA256 = hex.EncodeToString(d.SimulatedRootSHA256[:])
	}
	for _, k := range d.PublicKeys {
		w.PublicKeys = append(w.PublicKeys, k.String())
	}
	out, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// ParseIdentityDocument parses an identity document strictly: one JSON
// object, no unknown, duplicate or differently-cased fields, nothing after
// it, every field well-formed, and the readable copies (platform,
// measurement, simulated_root_sha256) equal to what the evidence says. It
// verifies nothing: call Verify.
func ParseIdentityDocument(data []byte) (*IdentityDocument, error) {
	if len(data) > MaxIdentityDocumentSize {
		return nil, malformed("identity document of %d bytes exceeds %d", len(data), MaxIdentityDocumentSize)
	}
	if err := checkJSONObjectKeys(data, identityFields); err != nil {
		return nil, err
	}
	var w identityWire
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, malformed("identity document: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed("identity document: data after the JSON object")
	}
	if w.Version != IdentityDocumentVersion {
		return nil, malformed("identity document version is %d, want %d", w.Version, IdentityDocumentVersion)
	}
	d := &IdentityDocument{Platform: contracts.Platform(w.Platform)}
	if !knownPlatform(d.Platform) {
		return nil, malformed("identity document platform %s is unknown (want one of %s)", describePlatform(d.Platform), platformNames())
	}
	m, err := decodeHexField("measurement", w.Measurement, 48)
	if err != nil {
		return nil, err
	}
	copy(d.Measurement[:], m)
	if len(w.PublicKeys) != 1 {
		return nil, malformed("identity document has %d public keys, want exactly 1 (the coordinator's)", len(w.PublicKeys))
	}
	for i, line := range w.PublicKeys {
		k, err := cleanroom.ParsePublicKey(line)
		if err != nil {
			return nil, malformed("identity document public_keys[%d]: %v", i, err)
		}
		d.PublicKeys = append(d.PublicKeys, k)
	}
	if w.Evidence == "" {
		return nil, malformed("identity document has no evidence")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(w.Evidence)
	if err != nil {
		return nil, malformed("identity document evidence is not standard base64: %v", err)
	}
	if d.Evidence, err = ParseEvidence(raw); err != nil {
		return nil, fmt.Errorf("identity document evidence: %w", err)
	}
	claimed := *d
	if err := claimed.fillFromEvidence(); err != nil {
		return nil, err
	}
	if d.Evidence.Platform() != d.Platform {
		return nil, malformed("identity document says platform %q but its evidence comes from %q", d.Platform, d.Evidence.Platform())
	}
	if claimed.Measurement != d.Measurement {
		return nil, malformed("identity document measurement %x differs from its evidence's %x", d.Measurement, claimed.Measurement)
	}
	switch {
	case claimed.SimulatedRootSHA256 == nil && w.SimulatedRootSHA256 != "":
		return nil, malformed("identity document has simulated_root_sha256 but platform %q", d.Platform)
	case claimed.SimulatedRootSHA256 != nil:
		root, err := decodeHexField("simulated_root_sha256", w.SimulatedRootSHA256, 32)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(root, claimed.SimulatedRootSHA256[:]) {
			return nil, malformed("identity document simulated_root_sha256 %x differs from its evidence's root %x", root, claimed.SimulatedRootSHA256[:])
		}
		d.SimulatedRootSHA256 = claimed.SimulatedRootSHA256
	}
	return d, nil
}

// Verify checks the document's evidence against a contract's coordinator
// section and that its REPORT_DATA binds the document's public keys (no
// nonce). Like VerifyCoordinator it returns genuine claims with a policy
// refusal.
func (d *IdentityDocument) Verify(cp *contracts.CoordinatorPolicy) (*Claims, error) {
	return VerifyCoordinator(d.Evidence, cp, d.PublicKeys, nil)
}

// VerifyFresh is Verify for a document made for a client's nonce (the
// coordinator's answer to an attestation request): its REPORT_DATA must
// bind the document's public keys and exactly this nonce.
func (d *IdentityDocument) VerifyFresh(cp *contracts.CoordinatorPolicy, nonce []byte) (*Claims, error) {
	if len(nonce) == 0 {
		return nil, errors.New("a fresh identity document is checked against a nonce; none was given")
	}
	return VerifyCoordinator(d.Evidence, cp, d.PublicKeys, nonce)
}

// VerifyWith checks the document with an explicit verifier and policy; the
// policy's REPORT_DATA is set to the binding of the document's keys and the
// nonce (nil for a document made without one, such as cleanroomd identity's;
// the client's nonce for the answer to an attestation request). Use it when
// there is no contract (e.g. with measurements given on a command line).
func (d *IdentityDocument) VerifyWith(v *Verifier, p Policy, nonce []byte) (*Claims, error) {
	want, err := ReportData(d.PublicKeys, nonce)
	if err != nil {
		return nil, err
	}
	claims, err := v.Verify(d.Evidence)
	if err != nil {
		return nil, err
	}
	p.ReportData, p.InsecureAnyReportData = &want, false
	if err := p.Validate(claims); err != nil {
		var ce *CheckError
		if errors.As(err, &ce) && ce.Check == CheckReportData {
			err = refused(CheckReportData, "report data %x does not bind the document's public key %s (want %x)", claims.ReportData, describeKeys(d.PublicKeys), want)
		}
		return claims, err
	}
	return claims, nil
}

// decodeHexField decodes exactly n bytes of lowercase hex.
func decodeHexField(name, s string, n int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != n || hex.EncodeToString(b) != s {
		return nil, malformed("%s must be %d lowercase hex digits, got %q", name, 2*n, truncate(s, 40))
	}
	return b, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkJSONObjectKeys checks that data is one JSON object whose keys are all
// in allowed, spelled exactly, and none repeated. (encoding/json matches
// keys case-insensitively and keeps the last duplicate.)
func checkJSONObjectKeys(data []byte, allowed map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return malformed("identity document is not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return malformed("identity document is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return malformed("identity document: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return malformed("identity document: object key is not a string")
		}
		if !allowed[key] {
			return malformed("identity document: unknown field %q", key)
		}
		if seen[key] {
			return malformed("identity document: field %q appears twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return malformed("identity document field %q: %v", key, err)
		}
	}
	return nil
}
