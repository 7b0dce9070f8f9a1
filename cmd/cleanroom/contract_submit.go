package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/cliout"
)

func newContractSubmitCmd(c *cli) *cobra.Command {
	var sigPaths []string
	cmd := &cobra.Command{
		Use:   "submit [CONTRACT] --sig a.sig ... --key NAME.key --coordinator URL",
		Short: "Register a signed contract with the coordinator",
		Long: `submit sends the contract and every participant's signature to the
coordinator, over attested TLS verified against the contract itself. The
coordinator registers it only if every participant signed, it has not
expired, you are a participant, and its own attestation satisfies the
contract's coordinator section. Submitting a registered contract again is
harmless. The contract id is printed on stdout. CONTRACT defaults to
CLEANROOM_CONTRACT.`,
		Args: cobra.MaximumNArgs(1),
	}
	cmd.Flags().StringArrayVar(&sigPaths, "sig", nil, "a signature file (repeat for each participant)")
	cmd.Flags().String("key", "", "your secret key file (env CLEANROOM_KEY)")
	cmd.Flags().String("coordinator", "", "coordinator URL https://HOST:PORT (env CLEANROOM_COORDINATOR)")
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		path, missing := contractArgOr(args), []string(nil)
		if path == "" {
			missing = append(missing, missingContractArg)
		}
		if len(sigPaths) == 0 {
			missing = append(missing, "--sig FILE (one per participant's signature)")
		}
		if err := missingError(append(missing, s.missing("key", "coordinator")...)); err != nil {
			return err
		}
		text, err := readLimitedFile(path, contracts.MaxSize)
		if err != nil {
			return err
		}
		ss, err := c.connect(s, path, false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		var sigs []contracts.SignedBy
		for _, p := range sigPaths {
			data, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("reading signature: %w", err)
			}
			sigs = append(sigs, contracts.SignedBy{Source: p, Data: data})
		}
		reg, err := ss.client.RegisterContract(cmd.Context(), text, sigs)
		switch {
		case errors.Is(err, client.ErrNotSigned):
			return cliout.WithHint(err, "check with: cleanroom contract verify")
		case err != nil:
			return explain(err)
		case reg.Already:
			c.Infof("contract %s: already present (same digest): registered before; nothing changed", ss.contract.ID())
		default:
			c.Infof("contract %s (%s) registered at log index %d", ss.contract.Name, reg.ContractID, reg.LogIndex)
		}
		fmt.Fprintln(c.Stdout, ss.contract.ID())
		return nil
	}
	return cmd
}
