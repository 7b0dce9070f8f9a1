package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/internal/cliout"
	"cleanroom.dev/cleanroom/internal/durable"
)

func newCoordinatorInfoCmd(c *cli) *cobra.Command {
	var simRoot, out string
	var asJSON bool
	info := &cobra.Command{
		Use:   "info --coordinator URL [--contract FILE] [--simulated-root HEX] [--out FILE] [--json]",
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
--coordinator-identity and cleanroom contract init --coordinator-identity.
--json prints what was verified as one JSON object.`,
		Args: cobra.NoArgs,
	}
	info.Flags().String("coordinator", "", "coordinator URL https://HOST:PORT (env CLEANROOM_COORDINATOR)")
	info.Flags().String("contract", "", "check against this contract's coordinator section (env CLEANROOM_CONTRACT)")
	info.Flags().String("key", "", "connect with this participant key (env CLEANROOM_KEY; optional)")
	info.Flags().StringVar(&simRoot, "simulated-root", "", "pin a simulated coordinator's root (64 hex digits), without a contract")
	info.Flags().StringVar(&out, "out", "", "write the verified identity document to this file")
	info.Flags().BoolVar(&asJSON, "json", false, "print what was verified as JSON")
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
			c.Warnf("no contract given: checking authenticity only (genuine evidence binding the coordinator's key), not whether its code is the one you trust")
		}
		if simRoot != "" {
			b, err := hex.DecodeString(simRoot)
			if err != nil || len(b) != 32 {
				return cliout.Usagef("--simulated-root must be 64 hex digits")
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
			return cliout.UsageError{Err: err}
		}
		defer cl.Close()
		a, err := cl.Attest(cmd.Context())
		if err != nil {
			if errors.Is(err, client.ErrUnreachable) {
				return explain(err)
			}
			return cliout.WithHint(explain(err), "a simulated coordinator needs --simulated-root or a contract pinning its root")
		}
		if a.Claims.Platform.Simulated() {
			c.warnSimulated("the coordinator is SIMULATED: its evidence comes from a fake vendor root and protects nothing")
		}
		if asJSON {
			cid := ""
			if opts.Contract != nil {
				cid = opts.Contract.ID().String()
			}
			if err := writeJSON(c.Stdout, claimsJSON(url, a.Claims, a.Document, cid)); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(c.Stdout, "coordinator\t%s\n", url)
			printClaims(c.Stdout, a.Claims, a.Document)
		}
		if opts.Contract != nil {
			c.Infof("verified against contract %s: fresh evidence (nonce-bound), measurement, debug, TCB, VMPL and key binding all hold", opts.Contract.ID())
		}
		if out != "" {
			static, err := cl.Identity(cmd.Context())
			if err != nil {
				return explain(err)
			}
			data, err := json.MarshalIndent(static.Document, "", "  ")
			if err != nil {
				return err
			}
			if err := durable.WriteFile(out, append(data, '\n'), 0o644); err != nil {
				return err
			}
			c.Infof("wrote the identity document to %s", out)
		}
		return nil
	}
	return info
}
