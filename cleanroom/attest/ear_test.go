package attest_test

import (
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/veraison/ear"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// An EAR signed with a participant's key verifies with veraison/ear against
// that participant's public key, names the platform and carries the
// appraisal status; another key does not verify it.
func TestEARSignedByParticipant(t *testing.T) {
	id, err := cleanroom.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := cleanroom.GenerateIdentity()
	v := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformNitro}, time.Now())
	claims, err := v.Verify(nitroSample(t))
	if err != nil {
		t.Fatal(err)
	}
	good := attest.Policy{Nitro: &contracts.NitroRefs{PCR0: [][48]byte{{}}}, InsecureAllowDebug: true, InsecureAnyReportData: true}
	bad := attest.Policy{Nitro: &contracts.NitroRefs{PCR0: [][48]byte{{1}}}, InsecureAllowDebug: true, InsecureAnyReportData: true}
	cases := []struct {
		name   string
		policy attest.Policy
		status ear.TrustTier
		exec   ear.TrustClaim
	}{
		{"debug allowed: a warning", good, ear.TrustTierWarning, ear.ApprovedRuntimeClaim},
		{"wrong pcr0", bad, ear.TrustTierContraindicated, ear.ContraindicatedRuntimeClaim},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ar, err := attest.NewEAR(claims, nil, tc.policy.Validate(claims), attest.EAROptions{Build: "test", PolicyID: "test-policy"})
			if err != nil {
				t.Fatal(err)
			}
			jwt, err := attest.SignEAR(ar, id)
			if err != nil {
				t.Fatal(err)
			}
			var got ear.AttestationResult
			if err := got.Verify(jwt, jwa.EdDSA(), id.Public().SigningKey()); err != nil {
				t.Fatal(err)
			}
			sub, ok := got.Submods[string(contracts.PlatformNitro)]
			if !ok || len(got.Submods) != 1 {
				t.Fatalf("submods %v", got.Submods)
			}
			if *sub.Status != tc.status || sub.TrustVector.Executables != tc.exec {
				t.Fatalf("status %v, executables %v", *sub.Status, sub.TrustVector.Executables)
			}
			if sub.TrustVector.Hardware != ear.GenuineHardwareClaim || sub.TrustVector.RuntimeOpaque != ear.IsolatedMemoryRuntimeClaim {
				t.Errorf("trust vector %+v", sub.TrustVector)
			}
			if _, err := attest.VerifyEAR(jwt, other.Public()); err == nil {
				t.Fatal("verified with another participant's key")
			}
		})
	}
	// Evidence that is not genuine.
	pin := [32]byte{3}
	_, verr := verifierAt(t, attest.VerifierOptions{Platform: contracts.PlatformNitroSimulated, SimulatedRootSHA256: &pin}, time.Now()).Verify(nitroSample(t))
	ar, err := attest.NewEAR(nil, verr, nil, attest.EAROptions{})
	if err != nil {
		t.Fatal(err)
	}
	jwt, _ := attest.SignEAR(ar, id)
	got, err := attest.VerifyEAR(jwt, id.Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range got.Submods {
		if *sub.Status != ear.TrustTierContraindicated {
			t.Fatalf("status %v", *sub.Status)
		}
	}
}
