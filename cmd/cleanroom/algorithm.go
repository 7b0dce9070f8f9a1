package main

import (
	"crypto/sha256"
	"fmt"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/contracts"
)

func init() { register(newAlgorithmCmd) }

func newAlgorithmCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "algorithm", Short: "Submit the agreed algorithm"}
	submit := &cobra.Command{
		Use:   "submit QUERY.sql --contract FILE --key NAME.key --coordinator URL",
		Short: "Submit the query whose SHA-256 the contract names",
		Long: `submit sends the exact bytes of QUERY.sql, whose SHA-256 must equal the
contract's algorithm.sha256, to the attested coordinator. A confidential
algorithm is encrypted to the attested coordinator key first, so only the
coordinator ever sees it besides you. The coordinator also checks that it is
exactly one SELECT statement that reads only the contract's datasets and its
own CTEs, and calls only the functions its statement check allows.`,
		Args: cobra.ExactArgs(1),
	}
	addSessionFlags(submit)
	s := bindSettings(submit)
	submit.RunE = func(cmd *cobra.Command, args []string) error {
		ss, err := c.connect(s, "", false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		if me := ss.me(); !me.Has(contracts.RoleAlgorithmProvider) {
			return fmt.Errorf("participant %q does not have role algorithm_provider", me.ID)
		}
		text, err := readLimitedFile(args[0], 1<<20)
		if err != nil {
			return err
		}
		if sum := sha256.Sum256(text); sum != ss.contract.Algorithm.SHA256 {
			return withHint(fmt.Errorf("%s has SHA-256 %x; the contract approves %x", args[0], sum, ss.contract.Algorithm.SHA256),
				"the hash covers the exact bytes, including any final newline")
		}
		ctx := cmd.Context()
		if err := c.attested(ctx, ss); err != nil {
			return err
		}
		rec, err := ss.client.SubmitAlgorithm(ctx, text)
		if err != nil {
			return explain(err)
		}
		how := "in plain text"
		if ss.contract.Algorithm.Confidential {
			how = "sealed to the attested coordinator"
		}
		c.infof("algorithm %s submitted %s, log index %d", rec.SHA256, how, rec.LogIndex)
		fmt.Fprintln(c.stdout, rec.SHA256)
		return nil
	}
	cmd.AddCommand(submit)
	return cmd
}
