package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/cliout"
)

// maxAlgorithmFile bounds a query file.
const maxAlgorithmFile = 1 << 20

func newAlgorithmCommitCmd(c *cli) *cobra.Command {
	var saltPath string
	cmd := &cobra.Command{
		Use:   "commit QUERY.sql --salt FILE",
		Short: "Print the salted commitment a contract names for a confidential algorithm",
		Long: `commit prints the commitment to the exact bytes of QUERY.sql that a contract
names as algorithm.sha256 when the algorithm is confidential:

  SHA-256("cleanroom/algorithm-commitment/v1" || 0x00 || salt || query bytes)

The salt is 32 random bytes kept in the salt file. When FILE does not exist,
commit makes a fresh salt and writes it there (mode 0600); when it exists,
commit reads it, so the same file always gives the same commitment. Keep the
salt file as secret as the query: with it, anyone could test a guess of the
query against the contract; without it, no one can. cleanroom algorithm
submit needs it, and sends it only to the attested coordinator, sealed with
the query.

A query that is not confidential needs no commitment: its contract names its
plain SHA-256 (sha256sum QUERY.sql), since every participant may read it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if saltPath == "" {
				return cliout.Usagef("--salt FILE is required: the file that keeps the commitment's salt (written when missing)")
			}
			text, err := readLimitedFile(args[0], maxAlgorithmFile)
			if err != nil {
				return err
			}
			sum, created, err := cleanroom.CommitAlgorithmFile(text, saltPath)
			if err != nil {
				return err
			}
			if created {
				c.Infof("wrote a fresh salt to %s (secret, mode 0600): keep it with the query; cleanroom algorithm submit needs it", saltPath)
			} else {
				c.Infof("using the salt in %s", saltPath)
			}
			c.Infof("commitment to the %d bytes of %s: put it in the contract as algorithm.sha256, with confidential: true", len(text), args[0])
			fmt.Fprintf(c.Stdout, "%x\n", sum)
			return nil
		},
	}
	cmd.Flags().StringVar(&saltPath, "salt", "", "the salt file: read when it exists, written (0600) with a fresh salt when not")
	return cmd
}

func newAlgorithmSubmitCmd(c *cli) *cobra.Command {
	var saltPath string
	submit := &cobra.Command{
		Use:   "submit QUERY.sql --contract FILE --key NAME.key --coordinator URL [--salt FILE]",
		Short: "Submit the query the contract names",
		Long: `submit sends the exact bytes of QUERY.sql to the attested coordinator, after
checking them against the contract's algorithm.sha256: their plain SHA-256
for an algorithm that is not confidential; for a confidential one, the
salted commitment of cleanroom algorithm commit, whose salt file --salt
names. A confidential algorithm is encrypted with its salt to the attested
coordinator key first, so only the coordinator ever sees either besides you.
The coordinator checks the same, and that the query is exactly one SELECT
statement that reads only the contract's datasets and its own CTEs, and
calls only the functions its statement check allows.`,
		Args: cobra.ExactArgs(1),
	}
	addSessionFlags(submit)
	submit.Flags().StringVar(&saltPath, "salt", "", "the salt file of the contract's commitment (confidential algorithms only)")
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
		confidential := ss.contract.Algorithm.Confidential
		switch {
		case confidential && saltPath == "":
			return cliout.WithHint(cliout.Usagef("the contract's algorithm is confidential: --salt FILE is required"),
				"give the salt file cleanroom algorithm commit wrote when it printed the contract's algorithm.sha256")
		case !confidential && saltPath != "":
			return cliout.WithHint(cliout.Usagef("the contract's algorithm is not confidential: its algorithm.sha256 is the plain SHA-256 of the query, and takes no --salt"),
				"drop --salt")
		}
		text, err := readLimitedFile(args[0], maxAlgorithmFile)
		if err != nil {
			return err
		}
		var salt *cleanroom.Salt
		if saltPath != "" {
			sv, err := cleanroom.ReadSaltFile(saltPath)
			if err != nil {
				return err
			}
			salt = &sv
		}
		rec, err := ss.client.SubmitAlgorithm(cmd.Context(), text, salt)
		if errors.Is(err, contracts.ErrAlgorithmMismatch) {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		if err != nil {
			return explain(err)
		}
		how := "in plain text"
		if confidential {
			how = "sealed with its salt to the attested coordinator"
		}
		c.Infof("algorithm %s submitted %s, log index %d", rec.SHA256, how, rec.LogIndex)
		fmt.Fprintln(c.Stdout, rec.SHA256)
		return nil
	}
	return submit
}
