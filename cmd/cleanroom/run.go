package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/api"
)

// formatParams writes a run's parameter values as name="value" pairs
// sorted by name, as result verify and the audit timeline write them.
func formatParams(params map[string]string) string {
	parts := make([]string, 0, len(params))
	for _, name := range slices.Sorted(maps.Keys(params)) {
		parts = append(parts, fmt.Sprintf("%s=%q", name, params[name]))
	}
	return strings.Join(parts, " ")
}

// parseParams reads --param NAME=VALUE flags; a name given twice is an
// error. The coordinator checks names, types and bounds against the
// contract.
func parseParams(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(flags))
	for _, f := range flags {
		name, value, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--param %q: write it as NAME=VALUE, NAME being a parameter the contract's algorithm.parameters declare", f)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--param %s is given twice; give each parameter once", name)
		}
		out[name] = value
	}
	return out, nil
}

func newRunCmd(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run --contract FILE --key NAME.key --coordinator URL [--param NAME=VALUE]... [--json]",
		Short: "Run the agreed algorithm; print the run id",
		Long: `run asks the coordinator to run the contract's algorithm over the uploaded
datasets and waits for the outcome. It prints the run id on stdout and a
summary on stderr: rows released, rows suppressed by the k threshold, and the
salted commitment to the result that the result statement names. Every run
started counts against max_runs, whatever its outcome.

--param NAME=VALUE (repeatable) gives a value to each parameter the
contract's algorithm.parameters declare; the query reads it as $NAME, bound
as a value, never written into its text. A value missing, undeclared, not of
the parameter's type or outside its bounds is refused before anything is
decrypted, naming the parameter, and no run is counted. The values are
logged in run.started and named in the result statement.

When the engine or the output policy refuses a confidential algorithm, the
reason may describe the algorithm or its output: the coordinator tells it in
full only to the algorithm provider, and everyone else reads a generic one
(cleanroom run status shows both to the provider).

With --json, stdout carries the run's status as one JSON object (the API's
run status, docs/api.md, with max_runs) instead of the run id.`,
		Args: cobra.NoArgs,
	}
	addSessionFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the run's status as JSON instead of its id")
	s := bindSettings(cmd)
	var paramFlags []string
	cmd.Flags().StringArrayVar(&paramFlags, "param", nil, "NAME=VALUE: a value of the algorithm's parameter $NAME (repeatable)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		params, err := parseParams(paramFlags)
		if err != nil {
			return err
		}
		ss, err := c.connect(s, "", false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		rs, err := ss.client.RunWith(cmd.Context(), params)
		if err != nil {
			return explain(err)
		}
		with := ""
		if len(rs.Parameters) > 0 {
			with = " with " + formatParams(rs.Parameters)
		}
		c.Infof("run %d of %d (%s)%s finished: %s released, %d suppressed below k; result commitment %s",
			rs.Number, ss.contract.Output.MaxRuns, rs.RunID, with, plural(rs.RowsKept, "row"), rs.RowsSuppressed, rs.ResultCommitment)
		if p := rs.Privacy; p != nil {
			c.Infof("differential privacy: the run was charged ε=%v, δ=%v; the contract's budget left: ε=%v, δ=%v", p.Epsilon, p.Delta, p.EpsilonLeft, p.DeltaLeft)
		}
		if asJSON {
			return writeJSON(c.Stdout, struct {
				*api.RunStatus
				MaxRuns int64 `json:"max_runs"`
			}{rs, ss.contract.Output.MaxRuns})
		}
		fmt.Fprintln(c.Stdout, rs.RunID)
		return nil
	}
	cmd.AddCommand(newRunStatusCmd(c))
	return cmd
}

func newRunStatusCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status RUN_ID --contract FILE --key NAME.key --coordinator URL",
		Short: "Print a run's status; to a confidential algorithm's provider, with the full reason of a refusal",
		Long: `status prints a run's status as the coordinator tells it to you: its number,
status (running, finished, refused or aborted), the reason of a refusal, and
for a finished run the rows released and suppressed and the result
commitment.

The reason of a confidential algorithm's refusal by the engine or the output
policy may describe the algorithm or its output, so the coordinator seals it
to the algorithm provider's key; the detail of a model's failure is sealed to
the model's provider (docs/models.md). For that participant, status opens it
and prints it as "private reason"; everyone else sees only the generic
reason.`,
		Args: cobra.ExactArgs(1),
	}
	addSessionFlags(cmd)
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ss, err := c.connect(s, "", true)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		rs, err := ss.client.RunStatus(cmd.Context(), args[0])
		if err != nil {
			return explain(err)
		}
		private, err := ss.client.PrivateReason(rs)
		if err != nil {
			return err
		}
		printRunStatus(c.Stdout, rs, private)
		return nil
	}
	return cmd
}

// printRunStatus writes a run's status as aligned "label value" lines.
func printRunStatus(w io.Writer, rs *api.RunStatus, private string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run id\t%s\n", rs.RunID)
	fmt.Fprintf(tw, "number\t%d\n", rs.Number)
	fmt.Fprintf(tw, "status\t%s\n", rs.Status)
	if len(rs.Parameters) > 0 {
		fmt.Fprintf(tw, "parameters\t%s\n", formatParams(rs.Parameters))
	}
	if rs.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", rs.Reason)
	}
	if private != "" {
		fmt.Fprintf(tw, "private reason\t%s\n", private)
	}
	if rs.Status == "finished" {
		fmt.Fprintf(tw, "rows kept\t%d\n", rs.RowsKept)
		fmt.Fprintf(tw, "rows suppressed\t%d\n", rs.RowsSuppressed)
		fmt.Fprintf(tw, "result commitment\t%s\n", rs.ResultCommitment)
	}
	fmt.Fprintf(tw, "log index\t%d\n", rs.LogIndex)
	tw.Flush()
}
