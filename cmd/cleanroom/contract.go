package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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

func newContractInitCmd(c *cli) *cobra.Command {
	var from, name, expires, identity, query, salt, out string
	var pubs []string
	cmd := &cobra.Command{
		Use:   "init [--from DRAFT] [--pub [ID=]NAME.pub]... [--identity FILE] [--query QUERY.sql [--salt FILE]] [--name NAME] [--expires-at TIME] [--out FILE]",
		Short: "Print a commented contract template, or fill a draft with the parties' keys, the coordinator's identity and the query's digest",
		Long: `init with no flag prints a commented contract template to start from.

With flags it fills a draft (--from FILE, default the template) so that
nothing is pasted by hand: --pub writes a participant's public key from its
NAME.pub file (ID=NAME.pub, or NAME.pub for the participant NAME; repeat per
party); --identity writes the coordinator's platform, measurement and, for a
simulated coordinator, its simulated root from the identity document
(cleanroomd identity, or cleanroom coordinator info --out FILE: check it
first with cleanroom attestation verify --identity FILE); --query writes
algorithm.sha256 for the query file (the salted commitment of --salt FILE
when the draft's algorithm is confidential); --name and --expires-at (RFC
3339, or a number of days from today such as 90d) write those fields.

The filled contract goes to --out FILE or stdout. It is then parsed as
every command will parse it: what is still missing or wrong (a placeholder
left, a participant without a key) is named, and init exits 1.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&from, "from", "", "the draft to fill (default: the template init prints)")
	cmd.Flags().StringArrayVar(&pubs, "pub", nil, "a participant's public key file, [ID=]NAME.pub (repeat per participant)")
	cmd.Flags().StringVar(&identity, "identity", "", "the coordinator's identity document (JSON)")
	cmd.Flags().StringVar(&query, "query", "", "the query file whose digest goes into algorithm.sha256")
	cmd.Flags().StringVar(&salt, "salt", "", "the salt file of a confidential query's commitment (cleanroom algorithm commit)")
	cmd.Flags().StringVar(&name, "name", "", "the contract's name")
	cmd.Flags().StringVar(&expires, "expires-at", "", "expiry: RFC 3339 (2027-03-31T00:00:00Z) or days from today (90d)")
	cmd.Flags().StringVar(&out, "out", "", "write the contract to FILE instead of stdout")
	cmd.RunE = func(*cobra.Command, []string) error {
		if cmd.Flags().NFlag() == 0 {
			_, err := fmt.Fprint(c.Stdout, contracts.Template)
			return err
		}
		if salt != "" && query == "" {
			return cliout.Usagef("--salt goes with --query")
		}
		draft, draftName := []byte(contracts.Template), "the template"
		if from != "" {
			var err error
			if draft, err = readLimitedFile(from, contracts.MaxSize); err != nil {
				return err
			}
			draftName = from
		}
		var f contracts.Fill
		f.Name = name
		if expires != "" {
			t, err := parseExpiry(expires, time.Now())
			if err != nil {
				return cliout.Usagef("--expires-at: %v", err)
			}
			f.ExpiresAt = t
		}
		for _, p := range pubs {
			id, file, ok := strings.Cut(p, "=")
			if !ok {
				file = p
				id = strings.TrimSuffix(filepath.Base(p), ".pub")
			}
			line, err := readLimitedFile(file, 64<<10)
			if err != nil {
				return err
			}
			if f.Keys == nil {
				f.Keys = map[string]string{}
			}
			f.Keys[id] = string(line)
		}
		if identity != "" {
			raw, err := readLimitedFile(identity, attest.MaxIdentityDocumentSize)
			if err != nil {
				return err
			}
			doc, err := attest.ParseIdentityDocument(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", identity, err)
			}
			f.Platform, f.Measurement, f.SimulatedRoot = doc.Platform, &doc.Measurement, doc.SimulatedRootSHA256
		}
		if query != "" {
			text, err := readLimitedFile(query, maxAlgorithmFile)
			if err != nil {
				return err
			}
			var sum [32]byte
			if salt != "" {
				if sum, _, err = cleanroom.CommitAlgorithmFile(text, salt); err != nil {
					return err
				}
			} else {
				sum = sha256Plain(text)
			}
			f.AlgorithmSHA256 = &sum
		}
		filled, err := contracts.FillTemplate(draft, f)
		if err != nil {
			return fmt.Errorf("%s: %w", draftName, err)
		}
		if out != "" {
			if err := durable.WriteFile(out, filled, 0o644); err != nil {
				return err
			}
			c.Infof("wrote %s from %s", out, draftName)
		} else if _, err := c.Stdout.Write(filled); err != nil {
			return err
		}
		where := out
		if where == "" {
			where = "the contract"
		}
		ct, err := contracts.Parse(filled, contracts.ParseOptions{Now: time.Now()})
		if err != nil {
			return cliout.WithHint(fmt.Errorf("%s is not complete yet: %w", where, err), "fill the rest (more --pub, --identity, --query flags, or by hand), then cleanroom contract show")
		}
		if ct.Algorithm.Confidential && query != "" && salt == "" {
			return cliout.WithHint(fmt.Errorf("%s names a confidential algorithm, whose algorithm.sha256 is a salted commitment: the plain digest written is wrong", where), "give --salt FILE with --query")
		}
		c.Infof("%s is complete: contract id %s; every party reads it (cleanroom contract show) and signs it", where, ct.ID())
		return nil
	}
	return cmd
}

// parseExpiry reads --expires-at: RFC 3339, or a number of days from
// today's midnight (UTC).
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 {
			return time.Time{}, fmt.Errorf("%q is not a number of days such as 90d", s)
		}
		y, m, d := now.UTC().Date()
		return time.Date(y, m, d+n, 0, 0, 0, 0, time.UTC), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2027-03-31T00:00:00Z) nor a number of days (90d)", s)
	}
	return t, nil
}

// sha256Plain is a non-confidential algorithm's algorithm.sha256.
func sha256Plain(text []byte) [32]byte {
	sum, _ := (&contracts.Algorithm{}).Digest(text, nil)
	return sum
}

func newContractHashCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "hash [CONTRACT]",
		Short: "Print the contract id (64 hex digits) that every participant signs",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			path, err := contractArg(args)
			if err != nil {
				return err
			}
			ct, err := c.loadContract(path, false)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Stdout, ct.ID())
			return nil
		},
	}
}

func newContractShowCmd(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [CONTRACT] [--json]",
		Short: "Print a summary of the contract and warn about its weaknesses",
		Long: `show prints a summary of the contract on stdout and its weaknesses on
stderr: first whether the coordinator is simulated, then, last and marked
"RISK:", every term that changes what a party risks by signing (no k
threshold, a result recipient who also provides data, a debug VM allowed, a
confidential algorithm or model). With --json the summary and the warnings
go to stdout as one JSON object. CONTRACT defaults to CLEANROOM_CONTRACT.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			path, err := contractArg(args)
			if err != nil {
				return err
			}
			ct, err := c.loadContract(path, true)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.Stdout, contractJSON(ct))
			}
			printSummary(c, ct)
			c.riskWarnings(ct)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary and the warnings as JSON")
	return cmd
}

// riskWarnings prints the contract's warnings that change what a party
// risks (all but the simulated platform's, which loadContract printed),
// marked, so they stand out after everything else a command said.
func (c *cli) riskWarnings(ct *contracts.Contract) {
	for _, w := range ct.Warnings() {
		if w.Field == "coordinator.platform" {
			continue
		}
		c.Warnf("RISK: %s", w)
	}
}

// loadContract parses a contract file and prints the simulated-platform
// warning that every command touching such a contract must show (once per
// command). allowExpired is for commands that only look at a contract.
func (c *cli) loadContract(path string, allowExpired bool) (*contracts.Contract, error) {
	ct, err := contracts.ParseFile(path, contracts.ParseOptions{AllowExpired: allowExpired})
	if err != nil {
		return nil, err
	}
	if ct.Coordinator.Platform.Simulated() {
		c.warnSimulated(fmt.Sprintf("%s names a SIMULATED coordinator (platform %s): it protects nothing; use it only for development, tests and demos",
			path, ct.Coordinator.Platform))
	}
	if allowExpired && ct.Expired(time.Now()) {
		c.Warnf("%s expired at %s: nothing new can happen under it", path, ct.ExpiresAt.Format(time.RFC3339))
	}
	return ct, nil
}

// warnSimulated prints the warning about a simulated coordinator, once per
// command however many files or connections show one.
func (c *cli) warnSimulated(msg string) {
	if c.simulatedWarned {
		return
	}
	c.simulatedWarned = true
	c.Warnf("%s", msg)
}

func printSummary(c *cli, ct *contracts.Contract) {
	w := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "contract\t%s\n", ct.Name)
	fmt.Fprintf(w, "id\t%s\n", ct.ID())
	fmt.Fprintf(w, "expires\t%s\n", ct.ExpiresAt.Format(time.RFC3339))
	w.Flush()
	fmt.Fprintln(c.Stdout, "\nparticipants:")
	w = tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	for _, p := range ct.Participants {
		roles := make([]string, len(p.Roles))
		for i, r := range p.Roles {
			roles[i] = string(r)
		}
		fmt.Fprintf(w, "  %s\t%s\tkey %s\n", p.ID, strings.Join(roles, ", "), p.PublicKey.Fingerprint().Short())
	}
	w.Flush()
	fmt.Fprintln(c.Stdout, "\ndatasets:")
	for _, ds := range ct.Datasets {
		cols := make([]string, len(ds.Columns))
		for i, col := range ds.Columns {
			cols[i] = col.Name + " " + col.Type.String()
		}
		unit := ""
		if ds.PrivacyUnit != "" {
			unit = "; privacy unit " + ds.PrivacyUnit
		}
		fmt.Fprintf(c.Stdout, "  %s (from %s): %s%s\n", ds.ID, ds.Provider, strings.Join(cols, ", "), unit)
	}
	a := ct.Algorithm
	conf := ""
	if a.Confidential {
		conf = ", confidential"
	}
	fmt.Fprintf(c.Stdout, "\nalgorithm: %s from %s, sha256 %x%s\n", a.Language, a.Provider, a.SHA256, conf)
	if len(ct.Models) > 0 {
		fmt.Fprintln(c.Stdout, "models (WebAssembly scalar functions the algorithm may call):")
		for _, m := range ct.Models {
			args := make([]string, len(m.Args))
			for i, t := range m.Args {
				args[i] = t.String()
			}
			what, conf := "sha256", ""
			if m.Confidential {
				what, conf = "commitment", ", confidential"
			}
			fmt.Fprintf(c.Stdout, "  %s(%s) -> %s from %s, %s %x%s\n", m.Name, strings.Join(args, ", "), m.Result, m.Provider, what, m.SHA256, conf)
		}
	}
	o := ct.Output
	k := "none"
	switch {
	case o.Mode == contracts.ModeCustom && o.MinGroupSize > 0:
		k = fmt.Sprintf("rows with %s < %d suppressed", o.GroupSizeColumn, o.MinGroupSize)
	case o.Mode == contracts.ModeAggregate && o.MinGroupSize > 0:
		k = fmt.Sprintf("rows with fewer than %d distinct persons of a protected dataset suppressed", o.MinGroupSize)
	}
	fmt.Fprintf(c.Stdout, "output: to %s; mode %s; k threshold: %s; at most %s, %s\n",
		strings.Join(o.Recipients, ", "), o.Mode, k, plural(o.MaxRows, "row"), plural(o.MaxRuns, "run"))
	for _, line := range ct.Protection() {
		fmt.Fprintf(c.Stdout, "  %s\n", line)
	}
	cp := ct.Coordinator
	debug := map[bool]string{true: "ALLOWED", false: "refused"}
	switch cp.Platform.Real() {
	case contracts.PlatformSEVSNP:
		fmt.Fprintf(c.Stdout, "coordinator: %s, debug %s, min TCB bootloader %d tee %d snp %d microcode %d\n",
			cp.Platform, debug[cp.AllowDebug], cp.MinTCB.Bootloader, cp.MinTCB.TEE, cp.MinTCB.SNP, cp.MinTCB.Microcode)
	case contracts.PlatformTDX:
		fmt.Fprintf(c.Stdout, "coordinator: %s, debug %s, min TEE_TCB_SVN %x\n", cp.Platform, debug[cp.TDX.AllowDebug], cp.TDX.MinTEETCBSVN)
		for _, m := range cp.TDX.MRTD {
			fmt.Fprintf(c.Stdout, "  mrtd %x\n", m)
		}
		for _, set := range cp.TDX.RTMR {
			fmt.Fprintf(c.Stdout, "  rtmr %x %x %x %x\n", set[0], set[1], set[2], set[3])
		}
	case contracts.PlatformNitro:
		fmt.Fprintf(c.Stdout, "coordinator: %s, debug %s\n", cp.Platform, debug[cp.AllowDebug])
		for i, list := range [][][48]byte{cp.Nitro.PCR0, cp.Nitro.PCR1, cp.Nitro.PCR2} {
			for _, m := range list {
				fmt.Fprintf(c.Stdout, "  pcr%d %x\n", i, m)
			}
		}
	case contracts.PlatformCCA:
		fmt.Fprintf(c.Stdout, "coordinator: %s, debug %s\n", cp.Platform, debug[cp.AllowDebug])
		for _, m := range cp.CCA.RIM {
			fmt.Fprintf(c.Stdout, "  rim %x\n", m)
		}
		for _, h := range cp.CCA.Platform.IAKSHA256 {
			fmt.Fprintf(c.Stdout, "  platform key sha256 %x\n", h)
		}
		for _, m := range cp.CCA.Platform.ImplementationIDs {
			fmt.Fprintf(c.Stdout, "  implementation id %x\n", m)
		}
		for _, m := range cp.CCA.Platform.SWMeasurements {
			fmt.Fprintf(c.Stdout, "  platform software %x\n", m)
		}
	}
	for _, m := range cp.Measurements {
		fmt.Fprintf(c.Stdout, "  measurement %x\n", m)
	}
	if cp.SimulatedRootSHA256 != nil {
		fmt.Fprintf(c.Stdout, "  simulated root %x\n", *cp.SimulatedRootSHA256)
	}
}

func newContractSignCmd(c *cli) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "sign [CONTRACT] --key NAME.key [--out NAME.sig]",
		Short: "Sign the contract id with your participant key",
		Long: `sign writes your approval of the contract: a COSE_Sign1 over the contract
id, made with your participant key. The default output is PARTICIPANT.sig in
the current directory, where PARTICIPANT is your id in the contract.
The terms that change what you risk by signing are repeated last, marked
"RISK:". CONTRACT defaults to CLEANROOM_CONTRACT.`,
		Args: cobra.MaximumNArgs(1),
	}
	cmd.Flags().String("key", "", "your secret key file (NAME.key)")
	cmd.Flags().StringVar(&out, "out", "", "where to write the signature (default PARTICIPANT.sig)")
	s := bindSettings(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		path, missing := contractArgOr(args), s.missing("key")
		if path == "" {
			missing = append([]string{missingContractArg}, missing...)
		}
		if err := missingError(missing); err != nil {
			return err
		}
		keyPath := s.get("key")
		id, err := cleanroom.ReadIdentityFile(keyPath)
		if err != nil {
			return err
		}
		ct, err := c.loadContract(path, false)
		if err != nil {
			return err
		}
		p := ct.ParticipantByKey(id.Public().Fingerprint())
		if p == nil {
			return cliout.WithHint(fmt.Errorf("key %s (%s) is not the key of any participant of %s", keyPath, id.Public().Fingerprint().Short(), path),
				"the contract's participants[].public_key must hold the line from your NAME.pub")
		}
		sig, err := ct.Sign(id)
		if err != nil {
			return err
		}
		if out == "" {
			out = p.ID + ".sig"
		}
		if err := durable.WriteFile(out, sig, 0o644); err != nil {
			return err
		}
		c.Infof("signed contract %s (%s) as %s: wrote %s", ct.Name, ct.ID(), p.ID, out)
		c.riskWarnings(ct)
		return nil
	}
	return cmd
}

func newContractVerifyCmd(c *cli) *cobra.Command {
	var sigPaths []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [CONTRACT] --sig a.sig --sig b.sig ... [--json]",
		Short: "Check that every participant signed the contract; exit 0 only if all did",
		Long: `verify checks each signature (a participant's key, valid, over this
contract) and that every participant has signed. It prints one line per
participant on stdout (with --json, one JSON object) and exits 0 only if all
signed validly; every problem is named, with the participant and the reason.
CONTRACT defaults to CLEANROOM_CONTRACT.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			path, missing := contractArgOr(args), []string(nil)
			if path == "" {
				missing = append(missing, missingContractArg)
			}
			if len(sigPaths) == 0 {
				missing = append(missing, "--sig FILE (one per participant's signature)")
			}
			if err := missingError(missing); err != nil {
				return err
			}
			ct, err := c.loadContract(path, true)
			if err != nil {
				return err
			}
			var sigs []contracts.SignedBy
			for _, p := range sigPaths {
				data, err := os.ReadFile(p)
				if err != nil {
					return fmt.Errorf("reading signature: %w", err)
				}
				sigs = append(sigs, contracts.SignedBy{Source: filepath.Base(p), Data: data})
			}
			a := ct.VerifySignatures(sigs)
			if asJSON {
				if err := writeJSON(c.Stdout, signaturesJSON(ct, a)); err != nil {
					return err
				}
			} else {
				w := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
				for _, p := range ct.Participants {
					status := "signed"
					if _, ok := a.Valid[p.ID]; !ok {
						status = "NOT SIGNED"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", p.ID, p.PublicKey.Fingerprint().Short(), status)
				}
				w.Flush()
			}
			if a.Complete() {
				c.Infof("all %d participants signed contract %s", len(ct.Participants), ct.ID())
				return nil
			}
			for _, p := range a.Problems {
				fmt.Fprintf(c.Stderr, "cleanroom: error: %s\n", p)
			}
			return cliout.SilentError{Msg: "not every participant signed validly"}
		},
	}
	cmd.Flags().StringArrayVar(&sigPaths, "sig", nil, "a signature file (repeat for each participant)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each participant's outcome as JSON")
	return cmd
}
