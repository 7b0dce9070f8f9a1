package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/cliout"
	"cleanroom.dev/cleanroom/internal/durable"
)

func newContractInitCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Print a commented contract template",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprint(c.Stdout, contracts.Template)
			return err
		},
	}
}

func newContractHashCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "hash CONTRACT",
		Short: "Print the contract id (64 hex digits) that every participant signs",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ct, err := c.loadContract(args[0], false)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Stdout, ct.ID())
			return nil
		},
	}
}

func newContractShowCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "show CONTRACT",
		Short: "Print a summary of the contract and warn about its weaknesses",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ct, err := c.loadContract(args[0], true)
			if err != nil {
				return err
			}
			printSummary(c, ct)
			for _, w := range ct.Warnings() {
				if w.Field == "coordinator.platform" {
					continue // loadContract printed it already
				}
				c.Warnf("%s", w)
			}
			return nil
		},
	}
}

// loadContract parses a contract file and prints the simulated-platform
// warning that every command touching such a contract must show.
// allowExpired is for commands that only look at a contract.
func (c *cli) loadContract(path string, allowExpired bool) (*contracts.Contract, error) {
	ct, err := contracts.ParseFile(path, contracts.ParseOptions{AllowExpired: allowExpired})
	if err != nil {
		return nil, err
	}
	if ct.Coordinator.Platform == contracts.PlatformSEVSNPSimulated {
		c.Warnf("%s names a SIMULATED coordinator (platform %s): it protects nothing; use it only for development, tests and demos",
			path, contracts.PlatformSEVSNPSimulated)
	}
	if allowExpired && ct.Expired(time.Now()) {
		c.Warnf("%s expired at %s: nothing new can happen under it", path, ct.ExpiresAt.Format(time.RFC3339))
	}
	return ct, nil
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
	fmt.Fprintf(c.Stdout, "output: to %s; mode %s; k threshold: %s; at most %d rows, %d runs\n",
		strings.Join(o.Recipients, ", "), o.Mode, k, o.MaxRows, o.MaxRuns)
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
		Use:   "sign CONTRACT --key NAME.key [--out NAME.sig]",
		Short: "Sign the contract id with your participant key",
		Long: `sign writes your approval of the contract: a COSE_Sign1 over the contract
id, made with your participant key. The default output is PARTICIPANT.sig in
the current directory, where PARTICIPANT is your id in the contract.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().String("key", "", "your secret key file (NAME.key)")
	cmd.Flags().StringVar(&out, "out", "", "where to write the signature (default PARTICIPANT.sig)")
	s := bindSettings(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		keyPath, err := s.require("key")
		if err != nil {
			return err
		}
		id, err := cleanroom.ReadIdentityFile(keyPath)
		if err != nil {
			return err
		}
		ct, err := c.loadContract(args[0], false)
		if err != nil {
			return err
		}
		p := ct.ParticipantByKey(id.Public().Fingerprint())
		if p == nil {
			return cliout.WithHint(fmt.Errorf("key %s (%s) is not the key of any participant of %s", keyPath, id.Public().Fingerprint().Short(), args[0]),
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
		return nil
	}
	return cmd
}

func newContractVerifyCmd(c *cli) *cobra.Command {
	var sigPaths []string
	cmd := &cobra.Command{
		Use:   "verify CONTRACT --sig a.sig --sig b.sig ...",
		Short: "Check that every participant signed the contract; exit 0 only if all did",
		Long: `verify checks each signature (a participant's key, valid, over this
contract) and that every participant has signed. It prints one line per
participant on stdout and exits 0 only if all signed validly; every problem
is named, with the participant and the reason.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ct, err := c.loadContract(args[0], true)
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
			w := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
			for _, p := range ct.Participants {
				status := "signed"
				if _, ok := a.Valid[p.ID]; !ok {
					status = "NOT SIGNED"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", p.ID, p.PublicKey.Fingerprint().Short(), status)
			}
			w.Flush()
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
	return cmd
}
