package attest

import (
	"encoding/hex"
	"strings"

	"github.com/google/go-sev-guest/abi"

	"cleanroom.dev/cleanroom/contracts"
)

// Policy answers "is this genuine evidence acceptable". The zero value
// accepts nothing: it lists no measurement and expects no REPORT_DATA.
// Every weakening is spelled Insecure….
type Policy struct {
	// Measurements lists the acceptable launch measurements; the evidence's
	// must be one of them.
	Measurements [][48]byte
	// InsecureAnyMeasurement accepts any measurement: the evidence then
	// proves nothing about the code that runs.
	InsecureAnyMeasurement bool
	// InsecureAllowDebug accepts a guest whose policy lets the host debug
	// (read and write) its memory. A contract's allow_debug maps to it.
	InsecureAllowDebug bool
	// MinTCB is the lowest acceptable TCB, component by component, compared
	// with the report's REPORTED_TCB and with its LAUNCH_TCB (the firmware
	// the VM was launched under).
	MinTCB contracts.TCB
	// TDX, Nitro and CCA are the reference values of those platforms
	// (Measurements and MinTCB are SEV-SNP's). Evidence from one of them
	// is refused when its section is nil, unless InsecureAnyMeasurement.
	TDX   *contracts.TDXRefs
	Nitro *contracts.NitroRefs
	CCA   *contracts.CCARefs
	// ReportData is the REPORT_DATA the evidence must carry exactly (see
	// ReportData for the coordinator's binding).
	ReportData *[64]byte
	// InsecureAnyReportData skips the REPORT_DATA check: the evidence then
	// binds no key and no nonce.
	InsecureAnyReportData bool
	// Origin names, in messages, where the policy comes from, as a
	// possessive ("the contract's"). Empty means "the policy's".
	Origin string
}

func (p *Policy) origin() string {
	if p.Origin == "" {
		return "the policy's"
	}
	return p.Origin
}

// PolicyFromContract returns the policy of a contract's coordinator section,
// expecting the given REPORT_DATA.
func PolicyFromContract(cp *contracts.CoordinatorPolicy, reportData [64]byte) Policy {
	rd := reportData
	return Policy{
		Measurements:       cp.Measurements,
		InsecureAllowDebug: cp.AllowDebug,
		MinTCB:             cp.MinTCB,
		TDX:                cp.TDX,
		Nitro:              cp.Nitro,
		CCA:                cp.CCA,
		ReportData:         &rd,
		Origin:             "the contract's",
	}
}

// Validate checks genuine claims against the policy, in this order: the
// platform's measurements (SEV-SNP: MEASUREMENT; TDX: MRTD, RTMRs and
// go-tdx-guest's validation of TEE_TCB_SVN and the attribute bits; Nitro:
// PCR0, PCR1, PCR2; CCA: the Realm Initial Measurement and the platform
// reference values); debug; for SEV-SNP the guest policy (no migration
// agent allowed, no CXL), migration agent (REPORT_ID_MA empty), firmware
// (committed = current, TCB and version), minimum TCB (REPORTED_TCB and
// LAUNCH_TCB) and VMPL 0; and the key binding (REPORT_DATA, TDX REPORTDATA,
// Nitro user_data, CCA challenge). It returns the first failure as a
// *CheckError wrapping ErrRefused, naming the field, what was seen and what
// was expected. docs/attestation.md lists every field and whether it is
// checked.
func (p *Policy) Validate(c *Claims) error {
	if c == nil {
		return refused(CheckPlatform, "no verified claims")
	}
	if !p.InsecureAnyMeasurement {
		if err := p.validateMeasurements(c); err != nil {
			return err
		}
	}
	allowDebug := p.InsecureAllowDebug || (c.TDX != nil && p.TDX != nil && p.TDX.AllowDebug)
	if c.Debug && !allowDebug {
		switch {
		case c.TDX != nil:
			return refused(CheckDebug, "the TD's attributes allow debugging (the host can read and write the TD's memory) and debug is not allowed (tdx.allow_debug)")
		case c.Nitro != nil:
			return refused(CheckDebug, "the enclave runs in debug mode (its PCRs are all zero; the host can read its memory and console) and debug is not allowed")
		case c.CCA != nil:
			return refused(CheckDebug, "the CCA platform is in lifecycle state %#04x, not secured (%s), and debug is not allowed", c.CCA.Lifecycle, platformLifecycle(c.CCA.Lifecycle))
		}
		return refused(CheckDebug, "the guest policy allows debugging (the host can read and write the VM's memory) and debug is not allowed")
	}
	if s := c.SNP; s != nil {
		if err := validateGuestPolicy(s.Policy); err != nil {
			return err
		}
		if s.ReportIDMA != noMigrationAgent {
			return refused(CheckMigrationAgent, "the report's REPORT_ID_MA is %x, not all ff: the VM is bound to a migration agent, which can export its memory to a machine nobody attested",
				s.ReportIDMA)
		}
		if err := validateFirmware(s); err != nil {
			return err
		}
		if comp := s.ReportedTCB.below(p.MinTCB); comp != "" {
			return refused(CheckTCB, "the reported TCB (%s) is below %s minimum (%s): %s is too old", s.ReportedTCB, p.origin(), formatMinTCB(p.MinTCB), comp)
		}
		if comp := s.LaunchTCB.below(p.MinTCB); comp != "" {
			return refused(CheckTCB, "the VM was launched under TCB %s (LAUNCH_TCB), below %s minimum (%s): %s was too old when the VM started, and an update since does not undo what it allowed",
				s.LaunchTCB, p.origin(), formatMinTCB(p.MinTCB), comp)
		}
		if s.VMPL != 0 {
			return refused(CheckVMPL, "the report was made at VMPL %d; only VMPL 0 is accepted", s.VMPL)
		}
	}
	if !p.InsecureAnyReportData {
		if p.ReportData == nil {
			return refused(CheckReportData, "no expected REPORT_DATA was given, so the evidence binds nothing")
		}
		if c.Nitro != nil {
			return nitroReportData(c.Nitro, *p.ReportData)
		}
		if c.ReportData != *p.ReportData {
			return refused(CheckReportData, "report data %x is not the expected %x", c.ReportData, *p.ReportData)
		}
	}
	return nil
}

func (p *Policy) validateMeasurements(c *Claims) error {
	missing := func(section string) error {
		return refused(CheckMeasurement, "%s policy has no %s reference values, so evidence from platform %s proves nothing acceptable", p.origin(), section, c.Platform)
	}
	switch {
	case c.TDX != nil:
		if p.TDX == nil {
			return missing("tdx")
		}
		return validateTDX(c.TDX, p.TDX, p.origin())
	case c.Nitro != nil:
		if p.Nitro == nil {
			return missing("nitro")
		}
		return validateNitro(c.Nitro, p.Nitro, p.origin())
	case c.CCA != nil:
		if p.CCA == nil {
			return missing("cca")
		}
		return validateCCA(c.CCA, p.CCA, p.origin())
	}
	if !containsMeasurement(p.Measurements, c.Measurement) {
		if len(p.Measurements) == 0 {
			return refused(CheckMeasurement, "measurement %x is not acceptable: %s list of measurements is empty", c.Measurement, p.origin())
		}
		return refused(CheckMeasurement, "measurement %x is not in %s list [%s]", c.Measurement, p.origin(), formatMeasurements(p.Measurements))
	}
	return nil
}

func containsMeasurement(list [][48]byte, m [48]byte) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

func formatMeasurements(list [][48]byte) string {
	s := make([]string, len(list))
	for i, m := range list {
		s[i] = hex.EncodeToString(m[:])
	}
	return strings.Join(s, " ")
}

// noMigrationAgent is REPORT_ID_MA for a guest without a migration agent.
var noMigrationAgent = [32]byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
}

// validateGuestPolicy refuses the guest policy bits that would let the VM's
// memory leave the attested machine: MIGRATE_MA (a migration agent may
// move the VM) and CXL_ALLOW (memory on CXL devices outside the
// processor). DEBUG is the debug check's; the other bits are listed, with
// why they are accepted, in docs/attestation.md.
func validateGuestPolicy(policy uint64) error {
	pol, err := abi.ParseSnpPolicy(policy)
	if err != nil { // Verify parsed it; only hand-made claims get here
		return refused(CheckGuestPolicy, "the guest policy %#016x does not parse: %v", policy, err)
	}
	if pol.MigrateMA {
		return refused(CheckGuestPolicy, "the guest policy %#016x sets MIGRATE_MA (bit 18): the VM may be given a migration agent, which can export its memory to a machine nobody attested; launch the coordinator with MIGRATE_MA clear", policy)
	}
	if pol.CXLAllowed {
		return refused(CheckGuestPolicy, "the guest policy %#016x sets CXL_ALLOW (bit 21): the VM's memory may be placed on CXL devices outside the processor; launch the coordinator with CXL_ALLOW clear", policy)
	}
	return nil
}

// validateFirmware refuses firmware the host has not committed to: the
// COMMITTED_TCB must equal CURRENT_TCB, and the committed API version and
// build the current ones (go-sev-guest's rule when provisional firmware is
// not permitted). Uncommitted firmware can be rolled back by the host to
// the committed, older one while the VM runs.
func validateFirmware(s *SNPClaims) error {
	if i := firstDifferent(s.CommittedTCB.Raw, s.CurrentTCB.Raw); i >= 0 {
		return refused(CheckFirmware, "the COMMITTED_TCB (%s) is not the CURRENT_TCB (%s): %s differs; the host runs firmware it has not committed to and can roll back (accepted once it is committed)",
			s.CommittedTCB.describe(), s.CurrentTCB.describe(), tcbComponent(s.Product, i))
	}
	if s.CommittedFirmware != s.CurrentFirmware {
		return refused(CheckFirmware, "the committed firmware (%s) is not the current firmware (%s): the host runs firmware it has not committed to and can roll back (accepted once it is committed)",
			s.CommittedFirmware, s.CurrentFirmware)
	}
	return nil
}
