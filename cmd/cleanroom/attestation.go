package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/verify/trust"
	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

func init() { register(newAttestationCmd) }

func newAttestationCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attestation",
		Short: "Verify attestation evidence of a coordinator",
	}
	cmd.AddCommand(newAttestationVerifyCmd(c))
	return cmd
}

// maxEvidenceFile bounds the files attestation verify reads.
const maxEvidenceFile = 1 << 20

type attestationVerifyFlags struct {
	report, vcek, product, identity, reportData string
	platform, collateral, iak, ear, at          string
	measurements                                []string
	allowDebug                                  bool
}

func newAttestationVerifyCmd(c *cli) *cobra.Command {
	var f attestationVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify (--report FILE [--platform P] [--vcek FILE] [--product milan|genoa|turin] [--collateral DIR] [--iak FILE] | --identity FILE) [--measurement HEX]... [--allow-debug] [--report-data HEX] [--contract FILE] [--at TIME] [--ear FILE --key NAME.key]",
		Short: "Verify attestation evidence offline and print what it proves",
		Long: `verify checks attestation evidence offline, down to the vendor's root keys
(embedded in this program; nothing is fetched from the network), and prints
the measurements, TCB, debug state and report data it proves. It exits 0 only
if the evidence is genuine and meets the policy.

Evidence:
  --report FILE     the evidence of --platform (default sev-snp), or
                    Cleanroom's evidence encoding of any platform:
                      sev-snp  the raw 1184-byte report (with --vcek) or an
                               extended report (the report followed by the
                               host's certificate table)
                      tdx      a TDX quote (version 4) with its PCK chain
                      nitro    a Nitro Enclaves attestation document
                      cca      a CCA attestation token (with --iak)
  --platform P      sev-snp, tdx, nitro or cca (simulated platforms come only
                    in Cleanroom's encoding)
  --vcek FILE       sev-snp: the VCEK (or VLEK) certificate, DER or PEM
  --product NAME    sev-snp: the AMD product line the report must come from
  --collateral DIR  tdx: Intel PCS collateral (tcb_info.json,
                    tcb_info_issuer_chain.pem, qe_identity.json,
                    qe_identity_issuer_chain.pem) to rate the TCB
  --iak FILE        cca: the platform's Initial Attestation Key (PEM or DER
                    public key); without --contract it is trusted as given
  --identity FILE   a coordinator's identity document (cleanroomd identity):
                    its evidence must bind the document's public key

Policy (without --contract):
  --measurement HEX  an acceptable measurement (repeatable): sev-snp
                     MEASUREMENT, tdx MRTD, nitro PCR0, cca RIM; without one
                     the measurement is shown but not checked
  --allow-debug      accept a debuggable guest, TD, enclave or platform
  --report-data HEX  the exact REPORT_DATA expected (64 bytes; nitro: the
                     user_data)
  the TCB is not checked and VMPL must be 0.

--contract FILE takes the whole policy from the contract's coordinator
section: platform, its reference values, and for a simulated coordinator the
pinned simulated root.

--at TIME (RFC 3339) verifies as of that time instead of now: certificates
and TDX collateral must be valid then. Nitro documents are always checked at
the time they were signed.

--ear FILE also writes the appraisal as an EAT Attestation Result (EAR, a JWT
signed with EdDSA by the participant key of --key or CLEANROOM_KEY), whether
the evidence passed or not.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&f.report, "report", "", "attestation evidence file")
	cmd.Flags().StringVar(&f.platform, "platform", "", "platform of --report: sev-snp, tdx, nitro or cca")
	cmd.Flags().StringVar(&f.vcek, "vcek", "", "VCEK or VLEK certificate file (DER or PEM)")
	cmd.Flags().StringVar(&f.product, "product", "", "AMD product line: milan, genoa or turin")
	cmd.Flags().StringVar(&f.collateral, "collateral", "", "directory of Intel PCS collateral for a TDX quote")
	cmd.Flags().StringVar(&f.iak, "iak", "", "CCA platform key file (PEM or DER public key)")
	cmd.Flags().StringVar(&f.identity, "identity", "", "coordinator identity document (JSON)")
	cmd.Flags().StringArrayVar(&f.measurements, "measurement", nil, "acceptable measurement in hex (repeatable)")
	cmd.Flags().BoolVar(&f.allowDebug, "allow-debug", false, "accept a debuggable guest")
	cmd.Flags().StringVar(&f.reportData, "report-data", "", "expected REPORT_DATA, 128 hex digits")
	cmd.Flags().StringVar(&f.at, "at", "", "verify as of this time (RFC 3339) instead of now")
	cmd.Flags().StringVar(&f.ear, "ear", "", "write the appraisal as a signed EAR (JWT) to this file")
	cmd.Flags().String("contract", "", "contract whose coordinator section is the policy (env CLEANROOM_CONTRACT)")
	cmd.Flags().String("key", "", "your secret key file, to sign the EAR (env CLEANROOM_KEY)")
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return c.attestationVerify(f, s.get("contract"), s.get("key"))
	}
	return cmd
}

func (c *cli) attestationVerify(f attestationVerifyFlags, contractPath, keyPath string) error {
	// Flags.
	if (f.report == "") == (f.identity == "") {
		return usagef("give either --report FILE or --identity FILE")
	}
	if f.identity != "" && (f.vcek != "" || f.product != "" || f.platform != "" || f.iak != "") {
		return usagef("--platform, --vcek, --product and --iak go with --report, not --identity")
	}
	if f.identity != "" && f.reportData != "" {
		return usagef("--identity checks REPORT_DATA against the document's public key; drop --report-data")
	}
	if contractPath != "" && (len(f.measurements) > 0 || f.allowDebug) {
		return usagef("--contract supplies the measurements and allow_debug; drop --measurement and --allow-debug")
	}
	var signer *cleanroom.Identity
	if f.ear != "" {
		if keyPath == "" {
			return usagef("--ear FILE signs the appraisal with your key: give --key NAME.key (or set CLEANROOM_KEY)")
		}
		id, err := cleanroom.ReadIdentityFile(keyPath)
		if err != nil {
			return err
		}
		signer = id
	}
	var at time.Time
	if f.at != "" {
		t, err := time.Parse(time.RFC3339, f.at)
		if err != nil {
			return usagef("--at %q is not an RFC 3339 time (e.g. 2023-07-01T00:00:00Z)", f.at)
		}
		at = t
	}
	product, err := parseProduct(f.product)
	if err != nil {
		return err
	}
	var reportData *[64]byte
	if f.reportData != "" {
		b, err := hex.DecodeString(strings.TrimSpace(f.reportData))
		if err != nil || len(b) != 64 {
			return usagef("--report-data %q is not 128 hex digits (64 bytes)", f.reportData)
		}
		reportData = (*[64]byte)(b)
	}

	// Evidence.
	var ev attest.Evidence
	var doc *attest.IdentityDocument
	if f.identity != "" {
		data, err := readEvidenceFile(f.identity)
		if err != nil {
			return err
		}
		if doc, err = attest.ParseIdentityDocument(data); err != nil {
			return fmt.Errorf("%s: %w", f.identity, err)
		}
		ev = doc.Evidence
	} else if ev, err = loadReport(f); err != nil {
		return err
	}
	if f.collateral != "" {
		t, ok := ev.(*attest.TDXEvidence)
		if !ok {
			return usagef("--collateral goes with TDX evidence, not %s", ev.Platform())
		}
		col, err := attest.LoadTDXCollateral(f.collateral)
		if err != nil {
			return err
		}
		if ev, err = t.WithCollateral(col); err != nil {
			return err
		}
	}
	measurements, err := parseMeasurements(f.measurements, ev.Platform())
	if err != nil {
		return err
	}

	// Trust and policy.
	opts := attest.VerifierOptions{Platform: ev.Platform(), Product: product}
	if !at.IsZero() {
		opts.Now = func() time.Time { return at }
	}
	var policy attest.Policy
	policyID := "command-line"
	if contractPath != "" {
		ct, err := c.loadContract(contractPath, true)
		if err != nil {
			return err
		}
		cp := &ct.Coordinator
		opts.Platform, opts.SimulatedRootSHA256 = cp.Platform, cp.SimulatedRootSHA256
		if cp.Platform == contracts.PlatformCCA && cp.CCA != nil {
			opts.CCAIAKSHA256 = cp.CCA.Platform.IAKSHA256
		}
		policy = attest.PolicyFromContract(cp, [64]byte{})
		policy.ReportData, policy.Origin = nil, "the contract's"
		policyID = "contract:" + ct.ID().String()
	} else {
		if ev.Platform().Simulated() {
			return withHint(errors.New("this evidence comes from a SIMULATED platform: it is genuine only against a pinned simulated root, and none is given"),
				"pass --contract FILE whose coordinator section pins simulated_root_sha256")
		}
		if cca, ok := ev.(*attest.CCAEvidence); ok {
			opts.CCAIAKSHA256 = [][32]byte{sha256.Sum256(cca.IAK())}
			c.infof("CCA platform key %x trusted as given by --iak (a contract pins it with cca.platform_refs.iak_sha256)", opts.CCAIAKSHA256[0])
		}
		policy = measurements
		policy.InsecureAllowDebug = f.allowDebug
		policy.Origin = "the --measurement"
		if len(f.measurements) == 0 {
			policy.InsecureAnyMeasurement = true
		}
	}
	if ev.Platform().Simulated() {
		c.warnf("this evidence comes from a SIMULATED platform: it proves nothing about confidentiality")
	}
	switch {
	case doc != nil:
		// VerifyWith binds the document's keys.
	case reportData != nil:
		policy.ReportData = reportData
	default:
		policy.InsecureAnyReportData = true
	}
	v, err := attest.NewVerifier(opts)
	if err != nil {
		return err
	}

	// Verify (is it genuine), print, then validate (is it acceptable).
	var claims *attest.Claims
	var verifyErr, validateErr error
	if doc != nil {
		claims, err = doc.VerifyWith(v, policy, nil)
		if claims == nil {
			verifyErr = err
		} else {
			validateErr = err
		}
	} else if claims, verifyErr = v.Verify(ev); verifyErr == nil {
		validateErr = policy.Validate(claims)
	}
	if claims != nil {
		printClaims(c.stdout, claims, doc)
	}
	if signer != nil {
		if err := c.writeEAR(f.ear, signer, claims, verifyErr, validateErr, policyID); err != nil {
			return err
		}
	}
	if err := errors.Join(verifyErr, validateErr); err != nil {
		var ce *attest.CheckError
		if errors.As(err, &ce) && ce.Check == attest.CheckDebug && contractPath == "" {
			return withHint(err, "--allow-debug accepts a debuggable guest (never for real data)")
		}
		return err
	}
	if policy.InsecureAnyMeasurement {
		c.infof("measurement not checked (no --measurement or --contract)")
	}
	if policy.InsecureAnyReportData {
		c.infof("report data not checked (no --report-data, --identity or --contract)")
	}
	root := ev.Platform().Vendor() + "'s root"
	if ev.Platform() == contracts.PlatformCCA {
		root = "the pinned platform key"
	}
	if claims.SimulatedRoot() != nil {
		root = "the pinned SIMULATED root"
	}
	c.infof("verified: the evidence is genuine (chained to %s) and meets the policy", root)
	if doc != nil {
		c.infof("its report data binds the coordinator key %s", doc.PublicKeys[0].Fingerprint())
	}
	return nil
}

// writeEAR writes the appraisal as an EAR signed with the participant's
// key.
func (c *cli) writeEAR(path string, id *cleanroom.Identity, claims *attest.Claims, verifyErr, validateErr error, policyID string) error {
	ar, err := attest.NewEAR(claims, verifyErr, validateErr, attest.EAROptions{Build: buildName(), PolicyID: policyID})
	if err != nil {
		return err
	}
	jwt, err := attest.SignEAR(ar, id)
	if err != nil {
		return err
	}
	if err := cleanroom.WriteFileAtomic(path, append(jwt, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the EAR: %w", err)
	}
	for name, sub := range ar.Submods {
		c.infof("wrote %s: EAR for %s, status %s, signed by %s", path, name, sub.Status, id.Public().Fingerprint().Short())
	}
	return nil
}

// parseMeasurements reads --measurement values as the platform's
// measurement: SEV-SNP MEASUREMENT, TDX MRTD and Nitro PCR0 (48 bytes),
// CCA RIM (32, 48 or 64 bytes).
func parseMeasurements(list []string, p contracts.Platform) (attest.Policy, error) {
	var pol attest.Policy
	switch p.Real() {
	case contracts.PlatformTDX:
		pol.TDX = &contracts.TDXRefs{}
	case contracts.PlatformNitro:
		pol.Nitro = &contracts.NitroRefs{}
	case contracts.PlatformCCA:
		pol.CCA = &contracts.CCARefs{}
	}
	for _, m := range list {
		b, err := hex.DecodeString(strings.TrimSpace(m))
		if pol.CCA != nil {
			if err != nil || (len(b) != 32 && len(b) != 48 && len(b) != 64) {
				return pol, usagef("--measurement %q is not a Realm Initial Measurement of 64, 96 or 128 hex digits", m)
			}
			pol.CCA.RIM = append(pol.CCA.RIM, b)
			continue
		}
		if err != nil || len(b) != 48 {
			return pol, usagef("--measurement %q is not 96 hex digits (48 bytes)", m)
		}
		switch {
		case pol.TDX != nil:
			pol.TDX.MRTD = append(pol.TDX.MRTD, [48]byte(b))
		case pol.Nitro != nil:
			pol.Nitro.PCR0 = append(pol.Nitro.PCR0, [48]byte(b))
		default:
			pol.Measurements = append(pol.Measurements, [48]byte(b))
		}
	}
	return pol, nil
}

func parseProduct(s string) (string, error) {
	switch strings.ToLower(s) {
	case "":
		return "", nil
	case "milan":
		return attest.ProductMilan, nil
	case "genoa":
		return attest.ProductGenoa, nil
	case "turin":
		return attest.ProductTurin, nil
	}
	return "", usagef("--product %q is not milan, genoa or turin", s)
}

func readEvidenceFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxEvidenceFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v", path, err)
	}
	if len(data) > maxEvidenceFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not attestation evidence", path, maxEvidenceFile)
	}
	return data, nil
}

// loadReport reads --report (with --vcek or --iak) into evidence.
func loadReport(f attestationVerifyFlags) (attest.Evidence, error) {
	reportPath, vcekPath := f.report, f.vcek
	data, err := readEvidenceFile(reportPath)
	if err != nil {
		return nil, err
	}
	platform := contracts.Platform(f.platform)
	if platform != "" && (!platform.Known() || platform.Simulated()) {
		return nil, usagef("--platform %q is not sev-snp, tdx, nitro or cca (simulated evidence comes only in Cleanroom's encoding)", f.platform)
	}
	if len(data) > 0 && data[0]&0xe0 == 0xa0 { // a CBOR map: Cleanroom's evidence encoding
		if vcekPath != "" || f.iak != "" {
			return nil, usagef("%s is Cleanroom evidence, which carries its certificates and keys; drop --vcek and --iak", reportPath)
		}
		ev, err := attest.ParseEvidence(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", reportPath, err)
		}
		if platform != "" && ev.Platform().Real() != platform {
			return nil, fmt.Errorf("%s holds evidence from platform %s, not %s", reportPath, ev.Platform(), platform)
		}
		return ev, nil
	}
	if platform != "" && platform != contracts.PlatformSEVSNP && vcekPath != "" {
		return nil, usagef("--vcek goes with sev-snp evidence")
	}
	if platform != contracts.PlatformCCA && f.iak != "" {
		return nil, usagef("--iak goes with --platform cca")
	}
	switch platform {
	case contracts.PlatformTDX:
		ev, err := attest.NewTDXEvidence(platform, data, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", reportPath, err)
		}
		return ev, nil
	case contracts.PlatformNitro:
		ev, err := attest.NewNitroEvidence(platform, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", reportPath, err)
		}
		return ev, nil
	case contracts.PlatformCCA:
		if f.iak == "" {
			return nil, usagef("a CCA token verifies with its platform's Initial Attestation Key: give --iak FILE")
		}
		keyData, err := readEvidenceFile(f.iak)
		if err != nil {
			return nil, err
		}
		if b, _ := pem.Decode(keyData); b != nil {
			keyData = b.Bytes
		}
		ev, err := attest.NewCCAEvidence(platform, data, keyData)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", reportPath, err)
		}
		return ev, nil
	}
	if len(data) < abi.ReportSize {
		return nil, fmt.Errorf("%s has %d bytes: an SEV-SNP attestation report has %d", reportPath, len(data), abi.ReportSize)
	}
	if vcekPath == "" {
		if len(data) == abi.ReportSize {
			return nil, withHint(fmt.Errorf("%s is a bare report: verifying it offline needs the VCEK certificate", reportPath),
				"pass --vcek FILE (the VCEK of this chip and TCB, as the host serves it in its certificate table)")
		}
		ev, err := attest.SNPEvidenceFromExtendedReport(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", reportPath, err)
		}
		return ev, nil
	}
	certData, err := readEvidenceFile(vcekPath)
	if err != nil {
		return nil, err
	}
	cert, err := trust.ParseCert(certData)
	if err != nil {
		return nil, fmt.Errorf("%s is not a certificate (DER or PEM): %v", vcekPath, err)
	}
	ev, err := attest.NewSNPEvidence(contracts.PlatformSEVSNP, data[:abi.ReportSize], cert.Raw, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", reportPath, err)
	}
	return ev, nil
}

// printClaims writes what genuine evidence proves, one field per line.
func printClaims(out io.Writer, c *attest.Claims, doc *attest.IdentityDocument) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "platform\t%s\n", c.Platform)
	if doc != nil {
		fmt.Fprintf(w, "public_key\t%s\n", doc.PublicKeys[0].Fingerprint())
	}
	fmt.Fprintf(w, "measurement\t%s\n", hex.EncodeToString(c.Measurement[:]))
	if s := c.SNP; s != nil {
		fmt.Fprintf(w, "tcb\t%s (reported_tcb %#016x)\n", s.ReportedTCB, s.ReportedTCB.Raw)
		fmt.Fprintf(w, "policy\t%#016x (%s)\n", s.Policy, describePolicy(s.Policy))
		fmt.Fprintf(w, "debug\t%v\n", c.Debug)
		fmt.Fprintf(w, "vmpl\t%d\n", s.VMPL)
	}
	if t := c.TDX; t != nil {
		fmt.Fprintf(w, "mrtd\t%s\n", hex.EncodeToString(t.MRTD[:]))
		for i, r := range t.RTMR {
			fmt.Fprintf(w, "rtmr%d\t%s\n", i, hex.EncodeToString(r[:]))
		}
		fmt.Fprintf(w, "tee_tcb_svn\t%s\n", hex.EncodeToString(t.TEETCBSVN[:]))
		fmt.Fprintf(w, "td_attributes\t%s\n", hex.EncodeToString(t.TDAttributes[:]))
		fmt.Fprintf(w, "debug\t%v\n", c.Debug)
		fmt.Fprintf(w, "fmspc\t%s\n", t.FMSPC)
		if t.TCBStatus != "" {
			fmt.Fprintf(w, "tcb_status\t%s\n", t.TCBStatus)
		}
	}
	if n := c.Nitro; n != nil {
		fmt.Fprintf(w, "module_id\t%s\n", n.ModuleID)
		fmt.Fprintf(w, "timestamp\t%s\n", n.Timestamp.Format(time.RFC3339Nano))
		for _, i := range []uint{0, 1, 2} {
			p := n.PCR(i)
			fmt.Fprintf(w, "pcr%d\t%s\n", i, hex.EncodeToString(p[:]))
		}
		fmt.Fprintf(w, "debug\t%v\n", c.Debug)
		fmt.Fprintf(w, "user_data\t%s\n", hex.EncodeToString(n.UserData))
	}
	if k := c.CCA; k != nil {
		fmt.Fprintf(w, "rim\t%s\n", hex.EncodeToString(k.RIM))
		fmt.Fprintf(w, "hash_algorithm\t%s\n", k.HashAlgorithm)
		fmt.Fprintf(w, "platform_key_sha256\t%s\n", hex.EncodeToString(k.IAKSHA256[:]))
		fmt.Fprintf(w, "implementation_id\t%s\n", hex.EncodeToString(k.ImplementationID))
		fmt.Fprintf(w, "lifecycle\t%#04x (%s)\n", k.Lifecycle, k.LifecycleState())
		fmt.Fprintf(w, "debug\t%v\n", c.Debug)
	}
	if c.Nitro == nil {
		fmt.Fprintf(w, "report_data\t%s\n", hex.EncodeToString(c.ReportData[:]))
	}
	if s := c.SNP; s != nil {
		fmt.Fprintf(w, "product\t%s\n", s.Product)
		fmt.Fprintf(w, "signer\t%s\n", s.Signer)
		fmt.Fprintf(w, "chip_id\t%s\n", hex.EncodeToString(s.ChipID))
		fmt.Fprintf(w, "firmware\t%s\n", s.Firmware)
		fmt.Fprintf(w, "report_version\t%d\n", s.Version)
	}
	if r := c.SimulatedRoot(); r != nil {
		fmt.Fprintf(w, "simulated_root_sha256\t%s\n", hex.EncodeToString(r[:]))
	}
	w.Flush()
}

// describePolicy names the guest policy's set flags and minimum ABI.
func describePolicy(p uint64) string {
	pol, err := abi.ParseSnpPolicy(p)
	if err != nil {
		return "unparsable"
	}
	parts := []string{fmt.Sprintf("abi>=%d.%d", pol.ABIMajor, pol.ABIMinor)}
	flags := []struct {
		on   bool
		name string
	}{
		{pol.Debug, "DEBUG"}, {pol.SMT, "smt"}, {pol.MigrateMA, "migrate_ma"}, {pol.SingleSocket, "single_socket"},
		{pol.CXLAllowed, "cxl_allowed"}, {pol.MemAES256XTS, "mem_aes_256_xts"}, {pol.RAPLDis, "rapl_dis"},
		{pol.CipherTextHidingDRAM, "ciphertext_hiding"}, {pol.PageSwapDisable, "page_swap_disable"},
	}
	for _, f := range flags {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	return strings.Join(parts, " ")
}

// buildName names this program's build for an EAR's verifier-id.
func buildName() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return "cleanroom " + info.Main.Version
	}
	return "cleanroom"
}
