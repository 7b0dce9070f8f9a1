package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/contracts"
)

func init() { contractCommands = append(contractCommands, newContractSubmitCmd) }

func newContractSubmitCmd(c *cli) *cobra.Command {
	var sigPaths []string
	cmd := &cobra.Command{
		Use:   "submit CONTRACT --sig a.sig ... --key NAME.key --coordinator URL",
		Short: "Register a signed contract with the coordinator",
		Long: `submit sends the contract and every participant's signature to the
coordinator, over attested TLS verified against the contract itself. The
coordinator registers it only if every participant signed, it has not
expired, you are a participant, and its own attestation satisfies the
contract's coordinator section. Submitting a registered contract again is
harmless. The contract id is printed on stdout.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringArrayVar(&sigPaths, "sig", nil, "a signature file (repeat for each participant)")
	cmd.Flags().String("key", "", "your secret key file (env CLEANROOM_KEY)")
	cmd.Flags().String("coordinator", "", "coordinator URL https://HOST:PORT (env CLEANROOM_COORDINATOR)")
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		text, err := readLimitedFile(args[0], contracts.MaxSize)
		if err != nil {
			return err
		}
		ss, err := c.connect(s, args[0], false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		var sigs [][]byte
		var given []contracts.SignedBy
		for _, p := range sigPaths {
			data, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("reading signature: %w", err)
			}
			sigs = append(sigs, data)
			given = append(given, contracts.SignedBy{Source: p, Data: data})
		}
		if a := ss.contract.VerifySignatures(given); !a.Complete() {
			return withHint(fmt.Errorf("not every participant signed validly:\n%w", a.Err()), "check with: cleanroom contract verify")
		}
		ctx := cmd.Context()
		if err := c.attested(ctx, ss); err != nil {
			return err
		}
		rec, err := ss.client.SubmitContract(ctx, text, sigs)
		switch {
		case isConflict(err):
			c.infof("contract %s is already registered", ss.contract.ID())
		case err != nil:
			return explain(err)
		default:
			c.infof("contract %s (%s) registered at log index %d", ss.contract.Name, rec.ContractID, rec.LogIndex)
		}
		fmt.Fprintln(c.stdout, ss.contract.ID())
		return nil
	}
	return cmd
}
