package simulated

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"

	"github.com/veraison/ccatoken"
	"github.com/veraison/ccatoken/platform"
	"github.com/veraison/ccatoken/realm"
	"github.com/veraison/go-cose"
	"github.com/veraison/psatoken"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// CCAPlatform is a fake Arm CCA platform: a throw-away Initial Attestation
// Key (ECDSA P-384) that signs platform tokens and a Realm Attestation Key
// (ECDSA P-384) that signs realm tokens, in the formats of Arm's RMM and
// CCA security model (via Veraison's ccatoken). It PROTECTS NOTHING. A
// verifier trusts the IAK only when pinned by RootSHA256, the SHA-256 of
// its DER SubjectPublicKeyInfo.
type CCAPlatform struct {
	iak, rak *ecdsa.PrivateKey
}

// NewCCA makes a fresh simulated CCA platform.
func NewCCA() (*CCAPlatform, error) {
	iak, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rak, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &CCAPlatform{iak: iak, rak: rak}, nil
}

func (p *CCAPlatform) iakDER() []byte {
	der, _ := x509.MarshalPKIXPublicKey(&p.iak.PublicKey) // an ECDSA key always marshals
	return der
}

// RootSHA256 returns the SHA-256 of the IAK's DER SubjectPublicKeyInfo:
// the value a contract pins as simulated_root_sha256.
func (p *CCAPlatform) RootSHA256() [32]byte { return sha256.Sum256(p.iakDER()) }

// CCAImplementationID is the simulated platform's implementation id.
var CCAImplementationID = sha256.Sum256([]byte("cleanroom simulated cca platform"))

// CCAPlatformSoftware is the measurement of the simulated platform's one
// software component.
var CCAPlatformSoftware = sha256.Sum256([]byte("cleanroom simulated cca firmware"))

// Attest returns a CCA token whose realm initial measurement is
// req.Measurement (SHA-384) and whose realm challenge is req.ReportData;
// the platform is in the secured lifecycle state, or a debug state when
// req.Debug.
func (p *CCAPlatform) Attest(req Request) (*attest.CCAEvidence, error) {
	rakKey, err := cose.NewKeyFromPublic(&p.rak.PublicKey)
	if err != nil {
		return nil, err
	}
	rakCOSE, err := rakKey.MarshalCBOR()
	if err != nil {
		return nil, err
	}
	r := realm.NewClaims()
	rem := make([][]byte, 4)
	for i := range rem {
		rem[i] = make([]byte, 48)
	}
	pv := make([]byte, 64)
	for _, set := range []error{
		r.SetChallenge(req.ReportData[:]),
		r.SetPersonalizationValue(pv),
		r.SetInitialMeasurement(req.Measurement[:]),
		r.SetExtensibleMeasurements(rem),
		r.SetHashAlgID("sha-384"),
		r.SetPubKey(rakCOSE),
		r.SetPubKeyHashAlgID("sha-256"),
	} {
		if set != nil {
			return nil, fmt.Errorf("simulated CCA realm claims: %w", set)
		}
	}
	lifecycle := uint16(platform.LifecycleSecuredMin)
	if req.Debug {
		lifecycle = platform.LifecycleRecoverableCCAPlatformDebugMin
	}
	sw := CCAPlatformSoftware[:]
	signer := CCAImplementationID[:]
	iakHash := sha256.Sum256(p.iakDER())
	inst := append([]byte{0x01}, iakHash[:]...) // type RAND, then 32 bytes
	pc := platform.NewClaims()
	for _, set := range []error{
		pc.SetSecurityLifeCycle(lifecycle),
		pc.SetImplID(CCAImplementationID[:]),
		pc.SetInstID(inst),
		pc.SetSoftwareComponents([]psatoken.ISwComponent{&psatoken.SwComponent{MeasurementValue: &sw, SignerID: &signer}}),
		pc.SetHashAlgID("sha-256"),
		pc.SetConfig([]byte("cleanroom simulated")),
	} {
		if set != nil {
			return nil, fmt.Errorf("simulated CCA platform claims: %w", set)
		}
	}
	var ev ccatoken.Evidence
	if err := ev.SetClaims(pc, r); err != nil {
		return nil, err
	}
	pSigner, err := cose.NewSigner(cose.AlgorithmES384, p.iak)
	if err != nil {
		return nil, err
	}
	rSigner, err := cose.NewSigner(cose.AlgorithmES384, p.rak)
	if err != nil {
		return nil, err
	}
	token, err := ev.ValidateAndSign(pSigner, rSigner)
	if err != nil {
		return nil, fmt.Errorf("signing the simulated CCA token: %w", err)
	}
	return attest.NewCCAEvidence(contracts.PlatformCCASimulated, token, p.iakDER())
}

// MarshalPEM returns the platform as PEM: the IAK, then the RAK. Store it
// with mode 0600.
func (p *CCAPlatform) MarshalPEM() ([]byte, error) {
	i, err := keyBlock(p.iak)
	if err != nil {
		return nil, err
	}
	r, err := keyBlock(p.rak)
	if err != nil {
		return nil, err
	}
	return writePEM(i, r)
}

// ParseCCAPEM loads a platform written by MarshalPEM.
func ParseCCAPEM(data []byte) (*CCAPlatform, error) {
	blocks, err := readPEM(data, pemKey, pemKey)
	if err != nil {
		return nil, err
	}
	p := &CCAPlatform{}
	if p.iak, err = ecKey(blocks[0].Bytes, elliptic.P384(), "IAK"); err != nil {
		return nil, err
	}
	if p.rak, err = ecKey(blocks[1].Bytes, elliptic.P384(), "RAK"); err != nil {
		return nil, err
	}
	return p, nil
}
