package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/cliout"
	"cleanroom.dev/cleanroom/internal/durable"
)

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
		return cliout.Usagef("give either --report FILE or --identity FILE")
	}
	if f.identity != "" && (f.vcek != "" || f.product != "" || f.platform != "" || f.iak != "") {
		return cliout.Usagef("--platform, --vcek, --product and --iak go with --report, not --identity")
	}
	if f.identity != "" && f.reportData != "" {
		return cliout.Usagef("--identity checks REPORT_DATA against the document's public key; drop --report-data")
	}
	if contractPath != "" && (len(f.measurements) > 0 || f.allowDebug) {
		return cliout.Usagef("--contract supplies the measurements and allow_debug; drop --measurement and --allow-debug")
	}
	platform := contracts.Platform(f.platform)
	if platform != "" && (!platform.Known() || platform.Simulated()) {
		return cliout.Usagef("--platform %q is not sev-snp, tdx, nitro or cca (simulated evidence comes only in Cleanroom's encoding)", f.platform)
	}
	opts := attest.AppraisalOptions{AllowDebug: f.allowDebug, EARBuild: buildName()}
	if f.ear != "" {
		if keyPath == "" {
			return cliout.Usagef("--ear FILE signs the appraisal with your key: give --key NAME.key (or set CLEANROOM_KEY)")
		}
		id, err := cleanroom.ReadIdentityFile(keyPath)
		if err != nil {
			return err
		}
		opts.EARSigner = id
	}
	if f.at != "" {
		t, err := time.Parse(time.RFC3339, f.at)
		if err != nil {
			return cliout.Usagef("--at %q is not an RFC 3339 time (e.g. 2023-07-01T00:00:00Z)", f.at)
		}
		opts.At = t
	}
	var err error
	if opts.Product, err = parseProduct(f.product); err != nil {
		return err
	}
	if f.reportData != "" {
		b, err := hex.DecodeString(strings.TrimSpace(f.reportData))
		if err != nil || len(b) != 64 {
			return cliout.Usagef("--report-data %q is not 128 hex digits (64 bytes)", f.reportData)
		}
		opts.ReportData = (*[64]byte)(b)
	}
	for _, m := range f.measurements {
		b, err := hex.DecodeString(strings.TrimSpace(m))
		if err != nil {
			return cliout.Usagef("--measurement %q is not hex", m)
		}
		opts.Measurements = append(opts.Measurements, b)
	}
	if contractPath != "" {
		if opts.Contract, err = c.loadContract(contractPath, true); err != nil {
			return err
		}
	}

	// Evidence.
	var ev attest.Evidence
	var doc *attest.IdentityDocument
	if f.identity != "" {
		data, err := readLimitedFile(f.identity, maxEvidenceFile)
		if err != nil {
			return err
		}
		if doc, err = attest.ParseIdentityDocument(data); err != nil {
			return fmt.Errorf("%s: %w", f.identity, err)
		}
		ev = doc.Evidence
	} else if ev, err = c.loadReport(f, platform); err != nil {
		return err
	}
	if f.collateral != "" {
		t, ok := ev.(*attest.TDXEvidence)
		if !ok {
			return cliout.Usagef("--collateral goes with TDX evidence, not %s", ev.Platform())
		}
		col, err := attest.LoadTDXCollateral(f.collateral)
		if err != nil {
			return err
		}
		if ev, err = t.WithCollateral(col); err != nil {
			return err
		}
	}

	// Appraise: is it genuine, and is it acceptable.
	a, err := attest.Appraise(ev, doc, opts)
	if errors.Is(err, attest.ErrSimulatedUnpinned) {
		return cliout.WithHint(err, "pass --contract FILE whose coordinator section pins simulated_root_sha256")
	}
	if err != nil {
		return cliout.UsageError{Err: err}
	}
	if a.IAKTrustedAsGiven != nil {
		c.Infof("CCA platform key %x trusted as given by --iak (a contract pins it with cca.platform_refs.iak_sha256)", *a.IAKTrustedAsGiven)
	}
	if ev.Platform().Simulated() {
		c.Warnf("this evidence comes from a SIMULATED platform: it proves nothing about confidentiality")
	}
	if a.Claims != nil {
		printClaims(c.Stdout, a.Claims, doc)
	}
	if a.EAR != nil {
		if err := durable.WriteFile(f.ear, append(a.EAR, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing the EAR: %w", err)
		}
		for name, status := range a.EARStatus {
			c.Infof("wrote %s: EAR for %s, status %s, signed by %s", f.ear, name, status, opts.EARSigner.Public().Fingerprint().Short())
		}
	}
	if a.Err != nil {
		var ce *attest.CheckError
		if errors.As(a.Err, &ce) && ce.Check == attest.CheckDebug && contractPath == "" {
			return cliout.WithHint(a.Err, "--allow-debug accepts a debuggable guest (never for real data)")
		}
		return a.Err
	}
	if !a.MeasurementChecked {
		c.Infof("measurement not checked (no --measurement or --contract)")
	}
	if !a.ReportDataChecked && doc == nil {
		c.Infof("report data not checked (no --report-data, --identity or --contract)")
	}
	c.Infof("verified: the evidence is genuine (chained to %s) and meets the policy", a.Root)
	if doc != nil {
		c.Infof("its report data binds the coordinator key %s", doc.PublicKeys[0].Fingerprint())
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
	return "", cliout.Usagef("--product %q is not milan, genoa or turin", s)
}

// loadReport reads --report (with --vcek or --iak) into evidence.
func (c *cli) loadReport(f attestationVerifyFlags, platform contracts.Platform) (attest.Evidence, error) {
	data, err := readLimitedFile(f.report, maxEvidenceFile)
	if err != nil {
		return nil, err
	}
	raw := attest.RawEvidence{Data: data, Platform: platform}
	if attest.IsEncoded(data) && (f.vcek != "" || f.iak != "") {
		return nil, cliout.Usagef("%s is Cleanroom evidence, which carries its certificates and keys; drop --vcek and --iak", f.report)
	}
	if !attest.IsEncoded(data) {
		switch {
		case platform != "" && platform != contracts.PlatformSEVSNP && f.vcek != "":
			return nil, cliout.Usagef("--vcek goes with sev-snp evidence")
		case platform != contracts.PlatformCCA && f.iak != "":
			return nil, cliout.Usagef("--iak goes with --platform cca")
		case platform == contracts.PlatformCCA && f.iak == "":
			return nil, cliout.Usagef("a CCA token verifies with its platform's Initial Attestation Key: give --iak FILE")
		}
	}
	if f.vcek != "" {
		if raw.VCEK, err = readLimitedFile(f.vcek, maxEvidenceFile); err != nil {
			return nil, err
		}
	}
	if f.iak != "" {
		if raw.IAK, err = readLimitedFile(f.iak, maxEvidenceFile); err != nil {
			return nil, err
		}
	}
	ev, err := attest.LoadEvidence(raw)
	if errors.Is(err, attest.ErrNeedVCEK) {
		return nil, cliout.WithHint(fmt.Errorf("%s is a bare report: verifying it offline needs the VCEK certificate", f.report),
			"pass --vcek FILE (the VCEK of this chip and TCB, as the host serves it in its certificate table)")
	}
	if errors.Is(err, attest.ErrBadVCEK) {
		return nil, fmt.Errorf("%s: %w", f.vcek, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.report, err)
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
		fmt.Fprintf(w, "policy\t%#016x (%s)\n", s.Policy, attest.DescribeSNPPolicy(s.Policy))
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

// buildName names this program's build for an EAR's verifier-id.
func buildName() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return "cleanroom " + info.Main.Version
	}
	return "cleanroom"
}
