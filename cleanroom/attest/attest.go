// Package attest verifies the coordinator's attestation evidence: is it
// genuine (made by the platform's hardware, chained to a trusted root), and
// is it acceptable (the measurement, debug state, guest policy, firmware,
// TCB, VMPL and REPORT_DATA a contract requires).
//
// The two questions are kept apart, as in go-sev-guest and sigstore-go: a
// Verifier, built from trusted roots, answers "is it genuine" and returns the
// Claims it proved; a Policy answers "is it acceptable" for those Claims.
// VerifyCoordinator does both for a contract's coordinator section.
//
// Verification is offline: AMD's roots are embedded (go-sev-guest's trust
// package), the evidence carries the VCEK or VLEK certificate from the host's
// certificate table, and nothing is ever fetched from the network.
//
// The formats (evidence encoding, REPORT_DATA, identity document) are
// specified in docs/attestation.md.
package attest

import (
	"errors"
	"fmt"

	"cleanroom.dev/cleanroom/contracts"
)

// Errors. Every refusal wraps one of these, usually inside a *CheckError
// that names the check and the values seen and expected.
var (
	// ErrMalformed reports evidence or an identity document that cannot be
	// parsed.
	ErrMalformed = errors.New("malformed attestation evidence")
	// ErrNotGenuine reports evidence whose authenticity could not be
	// established: a bad signature, a broken certificate chain, an
	// unpinned or wrong simulated root, the wrong platform.
	ErrNotGenuine = errors.New("attestation evidence is not genuine")
	// ErrRefused reports genuine evidence that the policy does not accept.
	ErrRefused = errors.New("attestation evidence refused by policy")
)

// Names of the checks a CheckError reports.
const (
	CheckPlatform       = "platform"
	CheckSignature      = "report signature"
	CheckChain          = "certificate chain"
	CheckSimulatedRoot  = "simulated root"
	CheckProduct        = "product"
	CheckTCBBinding     = "tcb binding"
	CheckMeasurement    = "measurement"
	CheckDebug          = "debug"
	CheckGuestPolicy    = "guest policy"
	CheckMigrationAgent = "migration agent"
	CheckFirmware       = "firmware"
	CheckTCB            = "minimum tcb"
	CheckVMPL           = "vmpl"
	CheckReportData     = "report data"
	CheckKeyBinding     = "key binding"
	CheckCollateral     = "collateral"
	CheckMRTD           = "mrtd"
	CheckRTMR           = "rtmr"
	CheckTEETCBSVN      = "tee tcb svn"
	CheckTDAttributes   = "td attributes"
	CheckPCR            = "pcr"
	CheckRIM            = "rim"
	CheckPlatformRefs   = "platform reference values"
	CheckIAK            = "platform key"
)

// CheckError is a failed check: which one, and what was seen and expected.
// It wraps ErrNotGenuine (authenticity checks) or ErrRefused (policy
// checks).
type CheckError struct {
	// Check is one of the Check* names.
	Check string
	// Detail says what was seen and what was expected.
	Detail string
	kind   error
}

func (e *CheckError) Error() string { return e.Check + " check failed: " + e.Detail }

// Unwrap returns ErrNotGenuine or ErrRefused.
func (e *CheckError) Unwrap() error { return e.kind }

func notGenuine(check, format string, args ...any) error {
	return &CheckError{Check: check, Detail: fmt.Sprintf(format, args...), kind: ErrNotGenuine}
}

func refused(check, format string, args ...any) error {
	return &CheckError{Check: check, Detail: fmt.Sprintf(format, args...), kind: ErrRefused}
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// knownPlatform reports whether p is a platform this package can verify.
func knownPlatform(p contracts.Platform) bool { return p.Known() }

// NewCheckError returns a CheckError for a check made outside this package
// (attested TLS's key binding, for one): with genuine false it wraps
// ErrNotGenuine, otherwise ErrRefused.
func NewCheckError(check string, genuine bool, detail string) *CheckError {
	kind := ErrRefused
	if !genuine {
		kind = ErrNotGenuine
	}
	return &CheckError{Check: check, Detail: detail, kind: kind}
}
