package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/internal/cliout"
	"cleanroom.dev/cleanroom/internal/durable"
)

func newResultGetCmd(c *cli) *cobra.Command {
	var runID, out string
	cmd := &cobra.Command{
		Use:   "get --contract FILE --run ID --key NAME.key --coordinator URL --out FILE",
		Short: "Download a run's result bundle; verify it before writing it",
		Long: `get downloads the result bundle of a finished run (result recipients only),
verifies it offline against the contract, as cleanroom result verify does,
and only then writes it to --out. The coordinator records the download in
its audit log. Decrypt and show it with cleanroom result show.`,
		Args: cobra.NoArgs,
	}
	addSessionFlags(cmd)
	cmd.Flags().StringVar(&runID, "run", "", "run id (printed by cleanroom run)")
	cmd.Flags().StringVar(&out, "out", "", "file to write the bundle to")
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ss, err := c.connect(s, "", true, "run", "out")
		if err != nil {
			return err
		}
		defer ss.client.Close()
		if !ss.contract.IsRecipient(ss.me().ID) {
			return fmt.Errorf("participant %q is not a result recipient of the contract", ss.me().ID)
		}
		res, err := ss.client.Result(cmd.Context(), runID)
		var ve *bundle.VerifyError
		if errors.As(err, &ve) {
			return cliout.WithHint(fmt.Errorf("%w; nothing written", err), hintFor(ve))
		}
		if err != nil {
			return explain(err)
		}
		if err := durable.WriteFile(out, res.Bundle, 0o600); err != nil {
			return err
		}
		st := res.Report.Statement
		c.Infof("wrote %s: run %s, %s kept, %d suppressed, verified down to the coordinator's attestation (see cleanroom result verify %s)",
			out, st.RunID, plural(st.RowsKept, "row"), st.RowsSuppressed, filepath.Base(out))
		fmt.Fprintln(c.Stdout, out)
		return nil
	}
	return cmd
}
