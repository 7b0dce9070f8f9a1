package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/veraison/ccatoken"
	"github.com/veraison/ccatoken/platform"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/canon"
)

const (
	maxCCATokenSize = 16 << 10
	maxCCAKeySize   = 1 << 10
)

// CCAEvidence is Arm CCA evidence: the CCA attestation token (a CBOR
// collection, tag 399, of the platform token signed by the platform's
// Initial Attestation Key and the realm token signed by the Realm
// Attestation Key that the platform token binds), and the IAK's public key
// (DER SubjectPublicKeyInfo) that a verifier checks against the key pinned
// in the contract.
type CCAEvidence struct {
	platform contracts.Platform
	token    []byte
	iak      []byte
}

// NewCCAEvidence assembles CCA evidence. It checks the structure only,
// never the signatures.
func NewCCAEvidence(platform contracts.Platform, token, iak []byte) (*CCAEvidence, error) {
	e := &CCAEvidence{platform: platform, token: bytes.Clone(token), iak: bytes.Clone(iak)}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

// Platform returns cca or cca-simulated.
func (e *CCAEvidence) Platform() contracts.Platform { return e.platform }

// Token returns the raw CCA attestation token.
func (e *CCAEvidence) Token() []byte { return bytes.Clone(e.token) }

// IAK returns the platform key's DER SubjectPublicKeyInfo.
func (e *CCAEvidence) IAK() []byte { return bytes.Clone(e.iak) }

func (e *CCAEvidence) check() error {
	if e.platform != contracts.PlatformCCA && e.platform != contracts.PlatformCCASimulated {
		return malformed("platform %q is not %q or %q", e.platform, contracts.PlatformCCA, contracts.PlatformCCASimulated)
	}
	if len(e.token) == 0 || len(e.token) > maxCCATokenSize {
		return malformed("the CCA token has %d bytes (want 1 to %d)", len(e.token), maxCCATokenSize)
	}
	if len(e.iak) == 0 || len(e.iak) > maxCCAKeySize {
		return malformed("the CCA platform key has %d bytes (want 1 to %d)", len(e.iak), maxCCAKeySize)
	}
	if _, err := x509.ParsePKIXPublicKey(e.iak); err != nil {
		return malformed("the CCA platform key is not a DER SubjectPublicKeyInfo: %v", err)
	}
	return nil
}

// MarshalBinary returns the canonical evidence encoding.
func (e *CCAEvidence) MarshalBinary() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	return canon.Marshal(evidenceWire{Platform: string(e.platform), F2: e.token, F3: e.iak})
}

func (e *CCAEvidence) parse() (*ccatoken.Evidence, error) {
	ev, err := ccatoken.DecodeAndValidateEvidenceFromCBOR(e.token)
	if err != nil {
		return nil, malformed("the CCA token: %v", err)
	}
	return ev, nil
}

// ccaMeasurement is the 48-byte value identity documents and the audit log
// show for a realm: the SHA-384 of its Realm Initial Measurement (which is
// 32, 48 or 64 bytes long, as the realm's hash algorithm makes it).
func ccaMeasurement(rim []byte) [48]byte { return sha512.Sum384(rim) }

func (e *CCAEvidence) measurement() ([48]byte, error) {
	ev, err := e.parse()
	if err != nil {
		return [48]byte{}, err
	}
	rim, err := ev.RealmClaims.GetInitialMeasurement()
	if err != nil {
		return [48]byte{}, malformed("the CCA realm token has no initial measurement: %v", err)
	}
	return ccaMeasurement(rim), nil
}

func (e *CCAEvidence) simulatedRoot() (*[32]byte, error) {
	if e.platform != contracts.PlatformCCASimulated {
		return nil, nil
	}
	h := sha256.Sum256(e.iak)
	return &h, nil
}

// CCAClaims are the fields of a verified CCA token.
type CCAClaims struct {
	// Realm token.
	RIM                  []byte
	REM                  [][]byte
	HashAlgorithm        string
	PersonalizationValue []byte
	RealmProfile         string
	// Platform token.
	IAKSHA256        [32]byte
	PlatformProfile  string
	ImplementationID []byte
	InstanceID       []byte
	Lifecycle        uint16
	SWComponents     []CCASWComponent
	// SimulatedRootSHA256 is set for simulated evidence: the pinned key.
	SimulatedRootSHA256 *[32]byte
}

// LifecycleSecured reports whether the platform is in the secured state.
func (c *CCAClaims) LifecycleSecured() bool {
	return c.Lifecycle >= platform.LifecycleSecuredMin && c.Lifecycle <= platform.LifecycleSecuredMax
}

// CCASWComponent is a measured software component of the platform.
type CCASWComponent struct {
	Type        string
	Measurement []byte
	Version     string
	SignerID    []byte
}

func (e *CCAEvidence) verify(v *Verifier) (*Claims, error) {
	ev, err := e.parse()
	if err != nil {
		return nil, err
	}
	iakHash := sha256.Sum256(e.iak)
	var simRoot *[32]byte
	switch e.platform {
	case contracts.PlatformCCA:
		pinned := false
		for _, h := range v.ccaIAKs {
			pinned = pinned || h == iakHash
		}
		if !pinned {
			return nil, notGenuine(CheckIAK, "the platform key has SHA-256 %s, which the contract does not pin (cca.platform_refs.iak_sha256)", hex.EncodeToString(iakHash[:]))
		}
	case contracts.PlatformCCASimulated:
		if iakHash != v.simRoot {
			return nil, notGenuine(CheckSimulatedRoot, "the token's simulated platform key has SHA-256 %s; the contract pins %s (is this another simulated coordinator?)",
				hex.EncodeToString(iakHash[:]), hex.EncodeToString(v.simRoot[:]))
		}
		simRoot = &iakHash
	}
	iak, _ := x509.ParsePKIXPublicKey(e.iak) // check parsed it
	if err := ev.Verify(iak); err != nil {
		return nil, notGenuine(CheckSignature, "the CCA token does not verify with the pinned platform key (%v): a token was altered after it was signed, another key signed it, or the realm token is not the one the platform token binds", err)
	}

	r, p := ev.RealmClaims, ev.PlatformClaims
	c := &CCAClaims{IAKSHA256: iakHash, SimulatedRootSHA256: simRoot}
	var challenge []byte
	for _, get := range []func() error{
		func() (err error) { c.RIM, err = r.GetInitialMeasurement(); return },
		func() (err error) { c.REM, err = r.GetExtensibleMeasurements(); return },
		func() (err error) { c.HashAlgorithm, err = r.GetHashAlgID(); return },
		func() (err error) { c.PersonalizationValue, err = r.GetPersonalizationValue(); return },
		func() (err error) { challenge, err = r.GetChallenge(); return },
		func() (err error) { c.ImplementationID, err = p.GetImplID(); return },
		func() (err error) { c.InstanceID, err = p.GetInstID(); return },
		func() (err error) { c.Lifecycle, err = p.GetSecurityLifeCycle(); return },
		func() (err error) { c.PlatformProfile, err = p.GetProfile(); return },
	} {
		if err := get(); err != nil {
			return nil, malformed("the CCA token: %v", err)
		}
	}
	c.RealmProfile, _ = r.GetProfile() // optional in the legacy profile
	sw, err := p.GetSoftwareComponents()
	if err != nil {
		return nil, malformed("the CCA platform token's software components: %v", err)
	}
	for _, s := range sw {
		comp := CCASWComponent{}
		comp.Type, _ = s.GetMeasurementType()
		comp.Measurement, _ = s.GetMeasurementValue()
		comp.Version, _ = s.GetVersion()
		comp.SignerID, _ = s.GetSignerID()
		c.SWComponents = append(c.SWComponents, comp)
	}
	if len(challenge) != 64 {
		return nil, malformed("the CCA realm challenge has %d bytes, want 64", len(challenge))
	}
	claims := &Claims{Platform: e.platform, Measurement: ccaMeasurement(c.RIM), ReportData: [64]byte(challenge), Debug: !c.LifecycleSecured(), CCA: c}
	return claims, nil
}

// validateCCA checks a realm's claims against a contract's reference
// values.
func validateCCA(c *CCAClaims, refs *contracts.CCARefs, origin string) error {
	found := false
	for _, rim := range refs.RIM {
		found = found || bytes.Equal(rim, c.RIM)
	}
	if !found {
		return refused(CheckRIM, "the Realm Initial Measurement %x is not in %s list [%s]", c.RIM, origin, hexList(refs.RIM))
	}
	pr := refs.Platform
	if len(pr.ImplementationIDs) > 0 {
		found = false
		for _, id := range pr.ImplementationIDs {
			found = found || bytes.Equal(id, c.ImplementationID)
		}
		if !found {
			return refused(CheckPlatformRefs, "the platform implementation id %x is not in %s list [%s]", c.ImplementationID, origin, hexList(pr.ImplementationIDs))
		}
	}
	if len(pr.SWMeasurements) > 0 {
		for i, s := range c.SWComponents {
			found = false
			for _, m := range pr.SWMeasurements {
				found = found || bytes.Equal(m, s.Measurement)
			}
			if !found {
				return refused(CheckPlatformRefs, "platform software component %d (%s) has measurement %x, which is not in %s list of sw_measurements", i, s.Type, s.Measurement, origin)
			}
		}
	}
	return nil
}

func hexList(list [][]byte) string {
	var b bytes.Buffer
	for i, x := range list {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%x", x)
	}
	return b.String()
}

func platformLifecycle(v uint16) string { return platform.LifeCycleToState(v).String() }

// LifecycleState names the platform's lifecycle state.
func (c *CCAClaims) LifecycleState() string { return platformLifecycle(c.Lifecycle) }
