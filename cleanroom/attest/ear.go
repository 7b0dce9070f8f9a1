package attest

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/veraison/ear"

	"cleanroom.dev/cleanroom/cleanroom"
)

// EARDeveloper is the verifier-id developer of the EARs this package
// writes.
const EARDeveloper = "cleanroom.dev"

// EAROptions describe one appraisal for an EAT Attestation Result.
type EAROptions struct {
	// Build names the verifier's build (verifier-id build), e.g.
	// "cleanroom v1.2.3".
	Build string
	// PolicyID names the policy the evidence was appraised against (e.g.
	// "contract:<id>"); empty leaves it out.
	PolicyID string
	// Now is the issue time; zero means time.Now.
	Now time.Time
}

// NewEAR returns the appraisal of one piece of evidence as an EAT
// Attestation Result (draft-ietf-rats-ear, github.com/veraison/ear): one
// submodule named for the platform whose status and AR4SI trust vector say
// what verification (claims, or verifyErr when it failed) and validation
// (validateErr) found. claims may be nil only when verifyErr is set.
//
// The trust vector: instance-identity and hardware are affirming when the
// evidence is genuine (hardware is a warning when TDX collateral rates the
// TCB below UpToDate), contraindicated when it is not; executables is
// affirming when the measurements matched the policy, contraindicated when
// they did not; configuration is contraindicated for a refused debug
// platform, a TCB below the minimum or a wrong VMPL; runtime-opaque is
// affirming (memory encrypted from the host), a warning for a debug
// platform the policy accepts, contraindicated for one it refuses. Any other refusal (the key binding) sets instance-identity to
// untrustworthy. The status is the worst claim.
func NewEAR(claims *Claims, verifyErr, validateErr error, opts EAROptions) (*ear.AttestationResult, error) {
	if claims == nil && verifyErr == nil {
		return nil, errors.New("an appraisal needs the verified claims or the verification error")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	platform := "unknown"
	if claims != nil {
		platform = string(claims.Platform)
	}
	tv := &ear.TrustVector{}
	notes := map[string]any{}
	var ce *CheckError
	switch {
	case verifyErr != nil:
		tv.InstanceIdentity = ear.UnrecognizedInstanceClaim
		tv.Hardware = ear.UnrecognizedHardwareClaim
		if errors.Is(verifyErr, ErrNotGenuine) && errors.As(verifyErr, &ce) && ce.Check == CheckSignature {
			tv.InstanceIdentity = ear.CryptoValidationFailedClaim
		}
		notes["error"] = verifyErr.Error()
	default:
		tv.InstanceIdentity = ear.TrustworthyInstanceClaim
		tv.Hardware = ear.GenuineHardwareClaim
		if t := claims.TDX; t != nil && t.TCBStatus != "" && t.TCBStatus != "UpToDate" {
			tv.Hardware = ear.UnsafeHardwareClaim
		}
		tv.Executables = ear.ApprovedRuntimeClaim
		tv.Configuration = ear.ApprovedConfigClaim
		tv.RuntimeOpaque = ear.EncryptedMemoryRuntimeClaim
		if claims.Debug {
			// Accepted by the policy (a refusal below makes it worse), but
			// the host can see the memory.
			tv.RuntimeOpaque = ear.IsolatedMemoryRuntimeClaim
		}
		for k, v := range annotate(claims) {
			notes[k] = v
		}
		if validateErr != nil {
			notes["error"] = validateErr.Error()
			errors.As(validateErr, &ce)
			check := ""
			if ce != nil {
				check = ce.Check
			}
			switch check {
			case CheckMeasurement, CheckMRTD, CheckRTMR, CheckPCR, CheckRIM, CheckPlatformRefs:
				tv.Executables = ear.ContraindicatedRuntimeClaim
			case CheckDebug:
				tv.Configuration = ear.UnsupportableConfigClaim
				tv.RuntimeOpaque = ear.VisibleMemoryRuntimeClaim
			case CheckTCB, CheckVMPL, CheckTEETCBSVN, CheckTDAttributes:
				tv.Configuration = ear.UnsupportableConfigClaim
			default:
				tv.InstanceIdentity = ear.UntrustworthyInstanceClaim
			}
		}
	}
	developer := EARDeveloper
	build := opts.Build
	if build == "" {
		build = "cleanroom"
	}
	profile := ear.EatProfile
	iat := now.Unix()
	status := ear.TrustTierAffirming
	appraisal := &ear.Appraisal{TrustVector: tv, Status: &status}
	if opts.PolicyID != "" {
		id := opts.PolicyID
		appraisal.AppraisalPolicyID = &id
	}
	appraisal.VeraisonAnnotatedEvidence = &notes
	appraisal.UpdateStatusFromTrustVector()
	ar := &ear.AttestationResult{
		Profile:    &profile,
		IssuedAt:   &iat,
		VerifierID: &ear.VerifierIdentity{Build: &build, Developer: &developer},
		Submods:    map[string]*ear.Appraisal{platform: appraisal},
	}
	return ar, nil
}

// annotate lists what the claims prove, as hex strings, for the EAR.
func annotate(c *Claims) map[string]any {
	h := func(b []byte) string { return hex.EncodeToString(b) }
	m := map[string]any{
		"platform":    string(c.Platform),
		"measurement": h(c.Measurement[:]),
		"report-data": h(c.ReportData[:]),
		"debug":       c.Debug,
	}
	if r := c.SimulatedRoot(); r != nil {
		m["simulated-root-sha256"] = h(r[:])
	}
	switch {
	case c.SNP != nil:
		m["product"] = c.SNP.Product
		m["reported-tcb"] = c.SNP.ReportedTCB.String()
		m["vmpl"] = c.SNP.VMPL
	case c.TDX != nil:
		t := c.TDX
		m["mrtd"] = h(t.MRTD[:])
		m["rtmr"] = []string{h(t.RTMR[0][:]), h(t.RTMR[1][:]), h(t.RTMR[2][:]), h(t.RTMR[3][:])}
		m["tee-tcb-svn"] = h(t.TEETCBSVN[:])
		m["fmspc"] = t.FMSPC
		if t.TCBStatus != "" {
			m["tcb-status"] = t.TCBStatus
		}
	case c.Nitro != nil:
		for _, i := range []uint{0, 1, 2} {
			p := c.Nitro.PCR(i)
			m[fmt.Sprintf("pcr%d", i)] = h(p[:])
		}
		m["module-id"] = c.Nitro.ModuleID
		m["timestamp"] = c.Nitro.Timestamp.Format(time.RFC3339Nano)
	case c.CCA != nil:
		m["rim"] = h(c.CCA.RIM)
		m["hash-algorithm"] = c.CCA.HashAlgorithm
		m["iak-sha256"] = h(c.CCA.IAKSHA256[:])
		m["implementation-id"] = h(c.CCA.ImplementationID)
		m["lifecycle"] = c.CCA.Lifecycle
	}
	return m
}

// SignEAR signs an Attestation Result as a JWT (EdDSA, RFC 8037) with a
// participant's Ed25519 key: the verifying participant vouches for its
// appraisal.
func SignEAR(ar *ear.AttestationResult, id *cleanroom.Identity) ([]byte, error) {
	key, ok := id.Signer().(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the participant key is not Ed25519")
	}
	return ar.Sign(jwa.EdDSA(), key)
}

// VerifyEAR checks an EAR JWT's signature with a participant's public key
// and returns the result it carries.
func VerifyEAR(data []byte, pub *cleanroom.PublicKey) (*ear.AttestationResult, error) {
	var ar ear.AttestationResult
	if err := ar.Verify(data, jwa.EdDSA(), pub.SigningKey()); err != nil {
		return nil, fmt.Errorf("the EAR does not verify with key %s: %w", pub.Fingerprint().Short(), err)
	}
	return &ar, nil
}
