package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/contracts"
)

func init() { register(newAlgorithmCmd) }

// maxAlgorithmFile bounds a query file.
const maxAlgorithmFile = 1 << 20

func newAlgorithmCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "algorithm", Short: "Commit to and submit the agreed algorithm"}
	cmd.AddCommand(newAlgorithmCommitCmd(c), newAlgorithmSubmitCmd(c))
	return cmd
}

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
				return usagef("--salt FILE is required: the file that keeps the commitment's salt (written when missing)")
			}
			text, err := readLimitedFile(args[0], maxAlgorithmFile)
			if err != nil {
				return err
			}
			salt, err := cleanroom.ReadSaltFile(saltPath)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				if salt, err = cleanroom.WriteSaltFile(saltPath); err != nil {
					return err
				}
				c.infof("wrote a fresh salt to %s (secret, mode 0600): keep it with the query; cleanroom algorithm submit needs it", saltPath)
			case err != nil:
				return err
			default:
				c.infof("using the salt in %s", saltPath)
			}
			sum := cleanroom.CommitAlgorithm(salt, text)
			c.infof("commitment to the %d bytes of %s: put it in the contract as algorithm.sha256, with confidential: true", len(text), args[0])
			fmt.Fprintf(c.stdout, "%x\n", sum)
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
		a := &ss.contract.Algorithm
		switch {
		case a.Confidential && saltPath == "":
			return withHint(usagef("the contract's algorithm is confidential: --salt FILE is required"),
				"give the salt file cleanroom algorithm commit wrote when it printed the contract's algorithm.sha256")
		case !a.Confidential && saltPath != "":
			return withHint(usagef("the contract's algorithm is not confidential: its algorithm.sha256 is the plain SHA-256 of the query, and takes no --salt"),
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
		if err := a.Check(text, salt); err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		ctx := cmd.Context()
		if err := c.attested(ctx, ss); err != nil {
			return err
		}
		rec, err := ss.client.SubmitAlgorithm(ctx, text, salt)
		if err != nil {
			return explain(err)
		}
		how := "in plain text"
		if a.Confidential {
			how = "sealed with its salt to the attested coordinator"
		}
		c.infof("algorithm %s submitted %s, log index %d", rec.SHA256, how, rec.LogIndex)
		fmt.Fprintln(c.stdout, rec.SHA256)
		return nil
	}
	return submit
}
