package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/verify/trust"
	"github.com/spf13/cobra"

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
	measurements                                []string
	allowDebug                                  bool
}

func newAttestationVerifyCmd(c *cli) *cobra.Command {
	var f attestationVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify (--report FILE [--vcek FILE] [--product milan|genoa|turin] | --identity FILE) [--measurement HEX]... [--allow-debug] [--report-data HEX] [--contract FILE]",
		Short: "Verify SEV-SNP evidence offline and print what it proves",
		Long: `verify checks attestation evidence offline, down to AMD's root keys (embedded
in this program; nothing is fetched from the network), and prints the
measurement, TCB, guest policy and report data it proves. It exits 0 only if
the evidence is genuine and meets the policy.

Evidence:
  --report FILE     an SEV-SNP attestation report: the raw 1184-byte report
                    (with --vcek), an extended report (the report followed by
                    the host's certificate table), or Cleanroom's evidence
                    encoding
  --vcek FILE       the VCEK (or VLEK) certificate, DER or PEM
  --product NAME    the AMD product line the report must come from
  --identity FILE   a coordinator's identity document (cleanroomd identity):
                    its evidence must bind the document's public key

Policy (without --contract):
  --measurement HEX  an acceptable launch measurement (repeatable); without
                     one the measurement is shown but not checked
  --allow-debug      accept a guest whose policy lets the host debug it
  --report-data HEX  the exact REPORT_DATA expected (64 bytes)
  the TCB is not checked and VMPL must be 0.

--contract FILE takes the whole policy from the contract's coordinator
section: platform, measurements, allow_debug, min_tcb and, for a simulated
coordinator, the pinned simulated root.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&f.report, "report", "", "attestation report file")
	cmd.Flags().StringVar(&f.vcek, "vcek", "", "VCEK or VLEK certificate file (DER or PEM)")
	cmd.Flags().StringVar(&f.product, "product", "", "AMD product line: milan, genoa or turin")
	cmd.Flags().StringVar(&f.identity, "identity", "", "coordinator identity document (JSON)")
	cmd.Flags().StringArrayVar(&f.measurements, "measurement", nil, "acceptable launch measurement, 96 hex digits (repeatable)")
	cmd.Flags().BoolVar(&f.allowDebug, "allow-debug", false, "accept a debuggable guest")
	cmd.Flags().StringVar(&f.reportData, "report-data", "", "expected REPORT_DATA, 128 hex digits")
	cmd.Flags().String("contract", "", "contract whose coordinator section is the policy (env CLEANROOM_CONTRACT)")
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return c.attestationVerify(f, s.get("contract"))
	}
	return cmd
}

func (c *cli) attestationVerify(f attestationVerifyFlags, contractPath string) error {
	// Flags.
	if (f.report == "") == (f.identity == "") {
		return usagef("give either --report FILE or --identity FILE")
	}
	if f.identity != "" && (f.vcek != "" || f.product != "") {
		return usagef("--vcek and --product go with --report, not --identity")
	}
	if f.identity != "" && f.reportData != "" {
		return usagef("--identity checks REPORT_DATA against the document's public key; drop --report-data")
	}
	if contractPath != "" && (len(f.measurements) > 0 || f.allowDebug) {
		return usagef("--contract supplies the measurements and allow_debug; drop --measurement and --allow-debug")
	}
	product, err := parseProduct(f.product)
	if err != nil {
		return err
	}
	measurements := make([][48]byte, len(f.measurements))
	for i, m := range f.measurements {
		b, err := hex.DecodeString(strings.TrimSpace(m))
		if err != nil || len(b) != 48 {
			return usagef("--measurement %q is not 96 hex digits (48 bytes)", m)
		}
		copy(measurements[i][:], b)
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
	} else if ev, err = loadReport(f.report, f.vcek); err != nil {
		return err
	}

	// Trust and policy.
	opts := attest.VerifierOptions{Platform: ev.Platform(), Product: product}
	var policy attest.Policy
	if contractPath != "" {
		ct, err := c.loadContract(contractPath, true)
		if err != nil {
			return err
		}
		cp := &ct.Coordinator
		opts.Platform, opts.SimulatedRootSHA256 = cp.Platform, cp.SimulatedRootSHA256
		policy = attest.Policy{Measurements: cp.Measurements, InsecureAllowDebug: cp.AllowDebug, MinTCB: cp.MinTCB, Origin: "the contract's"}
	} else {
		if ev.Platform() == contracts.PlatformSEVSNPSimulated {
			return withHint(errors.New("this evidence comes from a SIMULATED platform: it is genuine only against a pinned simulated root, and none is given"),
				"pass --contract FILE whose coordinator section pins simulated_root_sha256")
		}
		policy = attest.Policy{Measurements: measurements, InsecureAllowDebug: f.allowDebug, Origin: "the --measurement"}
		if len(measurements) == 0 {
			policy.InsecureAnyMeasurement = true
		}
	}
	if ev.Platform() == contracts.PlatformSEVSNPSimulated {
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
	if doc != nil {
		claims, err = doc.VerifyWith(v, policy, nil)
	} else if claims, err = v.Verify(ev); err == nil {
		err = policy.Validate(claims)
	}
	if claims != nil {
		printClaims(c.stdout, claims, doc)
	}
	if err != nil {
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
	root := "AMD's root"
	if claims.SNP != nil && claims.SNP.SimulatedRootSHA256 != nil {
		root = "the pinned SIMULATED root"
	}
	c.infof("verified: the evidence is genuine (chained to %s) and meets the policy", root)
	if doc != nil {
		c.infof("its report data binds the coordinator key %s", doc.PublicKeys[0].Fingerprint())
	}
	return nil
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

// loadReport reads --report (and --vcek) into sev-snp evidence.
func loadReport(reportPath, vcekPath string) (attest.Evidence, error) {
	data, err := readEvidenceFile(reportPath)
	if err != nil {
		return nil, err
	}
	if len(data) > 0 && data[0]&0xe0 == 0xa0 { // a CBOR map: Cleanroom's evidence encoding
		if vcekPath != "" {
			return nil, usagef("%s is Cleanroom evidence, which carries its certificates; drop --vcek", reportPath)
		}
		ev, err := attest.ParseEvidence(data)
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
	fmt.Fprintf(w, "report_data\t%s\n", hex.EncodeToString(c.ReportData[:]))
	if s := c.SNP; s != nil {
		fmt.Fprintf(w, "product\t%s\n", s.Product)
		fmt.Fprintf(w, "signer\t%s\n", s.Signer)
		fmt.Fprintf(w, "chip_id\t%s\n", hex.EncodeToString(s.ChipID))
		fmt.Fprintf(w, "firmware\t%s\n", s.Firmware)
		fmt.Fprintf(w, "report_version\t%d\n", s.Version)
		if s.SimulatedRootSHA256 != nil {
			fmt.Fprintf(w, "simulated_root_sha256\t%s\n", hex.EncodeToString(s.SimulatedRootSHA256[:]))
		}
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
