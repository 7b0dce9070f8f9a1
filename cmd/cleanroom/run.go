package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { register(newRunCmd) }

func newRunCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run --contract FILE --key NAME.key --coordinator URL",
		Short: "Run the agreed algorithm; print the run id",
		Long: `run asks the coordinator to run the contract's algorithm over the uploaded
datasets and waits for the outcome. It prints the run id on stdout and a
summary on stderr: rows released and rows suppressed by the k threshold.
Every run started counts against max_runs, whatever its outcome.`,
		Args: cobra.NoArgs,
	}
	addSessionFlags(cmd)
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ss, err := c.connect(s, "", false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		ctx := cmd.Context()
		if err := c.attested(ctx, ss); err != nil {
			return err
		}
		rs, err := ss.client.Run(ctx)
		if err != nil {
			return explain(err)
		}
		c.infof("run %d of %d (%s) finished: %d rows released, %d suppressed below k; result sha256 %s",
			rs.Number, ss.contract.Output.MaxRuns, rs.RunID, rs.RowsKept, rs.RowsSuppressed, rs.ResultSHA256)
		fmt.Fprintln(c.stdout, rs.RunID)
		return nil
	}
	return cmd
}
