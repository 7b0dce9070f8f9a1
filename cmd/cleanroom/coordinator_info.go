package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/durable"
)

func init() { register(newCoordinatorCmd) }

func newCoordinatorCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "coordinator", Short: "Look at a coordinator"}
	var simRoot, out string
	info := &cobra.Command{
		Use:   "info --coordinator URL [--contract FILE] [--simulated-root HEX] [--out FILE]",
		Short: "Fetch the coordinator's evidence, verify it and print what it proves",
		Long: `info connects to the coordinator over attested TLS, asks it for evidence
bound to a fresh random nonce, verifies that evidence, and prints what it
proves: platform, measurement, TCB, guest policy, public key.

With --contract (or CLEANROOM_CONTRACT) everything is checked against the
contract's coordinator section. Without one, only authenticity is checked
(genuine AMD evidence binding the coordinator's key): use it to learn the
measurement to pin before a contract exists. A simulated coordinator is
accepted only under a pinned root: --simulated-root (from cleanroomd
identity) or the contract's.

--out writes the verified identity document, for cleanroom dataset encrypt
--coordinator-identity.`,
		Args: cobra.NoArgs,
	}
	info.Flags().String("coordinator", "", "coordinator URL https://HOST:PORT (env CLEANROOM_COORDINATOR)")
	info.Flags().String("contract", "", "check against this contract's coordinator section (env CLEANROOM_CONTRACT)")
	info.Flags().String("key", "", "connect with this participant key (env CLEANROOM_KEY; optional)")
	info.Flags().StringVar(&simRoot, "simulated-root", "", "pin a simulated coordinator's root (64 hex digits), without a contract")
	info.Flags().StringVar(&out, "out", "", "write the verified identity document to this file")
	s := bindSettings(info)
	info.RunE = func(cmd *cobra.Command, _ []string) error {
		url, err := s.require("coordinator")
		if err != nil {
			return err
		}
		opts := client.Options{}
		if p := s.get("contract"); p != "" {
			if opts.Contract, err = c.loadContract(p, true); err != nil {
				return err
			}
		} else {
			opts.InsecureSkipPolicy = true
			c.warnf("no contract given: checking authenticity only (genuine evidence binding the coordinator's key), not whether its code is the one you trust")
		}
		if simRoot != "" {
			b, err := hex.DecodeString(simRoot)
			if err != nil || len(b) != 32 {
				return usagef("--simulated-root must be 64 hex digits")
			}
			var pin [32]byte
			copy(pin[:], b)
			opts.SimulatedRootSHA256 = &pin
		}
		if p := s.get("key"); p != "" {
			if opts.Identity, err = cleanroom.ReadIdentityFile(p); err != nil {
				return err
			}
		}
		cl, err := client.New(url, opts)
		if err != nil {
			return usageError{Err: err}
		}
		defer cl.Close()
		doc, claims, err := cl.FreshIdentity(cmd.Context())
		if err != nil {
			return withHint(explain(err), "a simulated coordinator needs --simulated-root or a contract pinning its root")
		}
		if claims.Platform == contracts.PlatformSEVSNPSimulated {
			c.warnf("the coordinator is SIMULATED: its evidence comes from a fake AMD root and protects nothing")
		}
		fmt.Fprintf(c.stdout, "coordinator\t%s\n", url)
		printClaims(c.stdout, claims, doc)
		if opts.Contract != nil {
			c.infof("verified against contract %s: fresh evidence (nonce-bound), measurement, debug, TCB, VMPL and key binding all hold", opts.Contract.ID())
		}
		if out != "" {
			static, _, err := cl.Identity(cmd.Context())
			if err != nil {
				return explain(err)
			}
			data, err := json.MarshalIndent(static, "", "  ")
			if err != nil {
				return err
			}
			if err := durable.WriteFile(out, append(data, '\n'), 0o644); err != nil {
				return err
			}
			c.infof("wrote the identity document to %s", out)
		}
		return nil
	}
	cmd.AddCommand(info)
	return cmd
}
