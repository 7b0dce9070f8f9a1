package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/client"
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

func newAlgorithmCheckCmd(c *cli) *cobra.Command {
	var saltPath string
	cmd := &cobra.Command{
		Use:   "check QUERY.sql --contract FILE [--salt FILE]",
		Short: "Check a query against the contract's datasets on this machine, before signing or submitting it",
		Long: `check runs on your machine, with no connection and nothing consumed, the
checks the coordinator applies when the algorithm is submitted: DuckDB's
parser, the statement check (exactly one SELECT, reading only the contract's
datasets and its own CTEs, calling only allowed functions and the contract's
models) and, in output mode aggregate, the privacy analysis; then DuckDB binds
the query against empty tables with the contract's columns, which names a
column or function the datasets lack. A refusal names the check and what is
at fault, and exits 1.

Check a template's query before the contract is signed: once registered, a
contract's algorithm cannot change. check also says whether the text is the
one the contract's algorithm.sha256 names (with --salt for a confidential
algorithm's commitment); a contract still being written may name another.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().String("contract", "", "the contract (env CLEANROOM_CONTRACT)")
	cmd.Flags().StringVar(&saltPath, "salt", "", "the salt file of a confidential algorithm's commitment, to compare the text with algorithm.sha256")
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := s.required("contract"); err != nil {
			return err
		}
		ct, err := c.loadContract(s.get("contract"), true)
		if err != nil {
			return err
		}
		text, err := readLimitedFile(args[0], maxAlgorithmFile)
		if err != nil {
			return err
		}
		if err := client.CheckAlgorithm(cmd.Context(), text, ct); err != nil {
			return algorithmRefused(args[0], err)
		}
		c.Infof("%s passes the statement check%s and binds against the datasets of %s", args[0],
			map[bool]string{true: " and the privacy analysis (mode aggregate)", false: ""}[ct.Output.Mode == contracts.ModeAggregate], s.get("contract"))
		salt, err := readSalt(saltPath)
		if err != nil {
			return err
		}
		switch err := ct.Algorithm.Check(text, salt); {
		case err == nil:
			c.Infof("%s is the algorithm the contract names (algorithm.sha256)", args[0])
		case ct.Algorithm.Confidential && salt == nil:
			c.Infof("the contract's algorithm is confidential: give --salt FILE to compare %s with its commitment", args[0])
		default:
			c.Warnf("%s is not the algorithm the contract names: %v", args[0], err)
		}
		return nil
	}
	return cmd
}

// algorithmRefused reports the local check's refusal of a query file.
func algorithmRefused(path string, err error) error {
	var r *client.AlgorithmRefusal
	if errors.As(err, &r) {
		return cliout.WithHint(fmt.Errorf("%s is refused by the %s check: %s", path, r.Stage, r.Reason),
			"nothing was sent; the coordinator would refuse it the same way (docs/privacy.md lists the rules)")
	}
	return err
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
		salt, err := readSalt(saltPath)
		if err != nil {
			return err
		}
		if err := ss.contract.Algorithm.Check(text, salt); err == nil {
			// The text is the contract's: check it here as the coordinator
			// will, so that one it would refuse is never sent.
			if err := client.CheckAlgorithm(cmd.Context(), text, ss.contract); err != nil {
				return algorithmRefused(args[0], err)
			}
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
		if rec.Already {
			c.Infof("algorithm %s: already present (same digest): submitted at log index %d; nothing changed", rec.SHA256, rec.LogIndex)
		} else {
			c.Infof("algorithm %s submitted %s, log index %d", rec.SHA256, how, rec.LogIndex)
		}
		fmt.Fprintln(c.Stdout, rec.SHA256)
		return nil
	}
	return submit
}

// readSalt reads a confidential algorithm's salt file (--salt), or returns
// nil when none is given.
func readSalt(path string) (*cleanroom.Salt, error) {
	if path == "" {
		return nil, nil
	}
	s, err := cleanroom.ReadSaltFile(path)
	if err != nil {
		return nil, err
	}
	return &s, nil
}
