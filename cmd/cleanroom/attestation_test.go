package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// The real Milan fixtures of package attest (see its testdata/README.md).
const (
	milanReport = "../../cleanroom/attest/testdata/attestation.bin"
	milanVCEK   = "../../cleanroom/attest/testdata/vcek.testcer"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestAttestationVerifyForms checks the inputs the script tests cannot hold:
// the VCEK in DER, and the report as Cleanroom's evidence encoding.
func TestAttestationVerifyForms(t *testing.T) {
	code, out, errOut := runCLI(t, "attestation", "verify", "--report", milanReport, "--vcek", milanVCEK, "--product", "MILAN", "--allow-debug")
	if code != 0 || !strings.Contains(out, "signer          VCEK") {
		t.Fatalf("DER VCEK: exit %d\n%s%s", code, out, errOut)
	}

	report, err := os.ReadFile(milanReport)
	if err != nil {
		t.Fatal(err)
	}
	vcek, err := os.ReadFile(milanVCEK)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := attest.NewSNPEvidence(contracts.PlatformSEVSNP, report, vcek, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := ev.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "evidence.cbor")
	if err := os.WriteFile(path, enc, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "attestation", "verify", "--report", path, "--allow-debug")
	if code != 0 || !strings.Contains(out, "b07af9620f3b839b") {
		t.Fatalf("evidence encoding: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "attestation", "verify", "--report", path, "--vcek", milanVCEK)
	if code != 2 || !strings.Contains(errOut, "drop --vcek") {
		t.Fatalf("evidence with --vcek: exit %d: %s", code, errOut)
	}
	code, _, errOut = runCLI(t, "attestation", "verify", "--identity", path, "--measurement", strings.Repeat("00", 48), "--contract", "x.yaml")
	if code != 2 || !strings.Contains(errOut, "--contract supplies") {
		t.Fatalf("contract with --measurement: exit %d: %s", code, errOut)
	}
}
