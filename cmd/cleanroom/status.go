package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/contracts"
)

func newStatusCmd(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --contract FILE --key NAME.key --coordinator URL [--json]",
		Short: "Say where the contract stands: registered, datasets, algorithm, runs left, what a run waits for",
		Long: `status asks the attested coordinator where the contract stands, as your
participant sees it, and prints: whether it is registered; each dataset,
uploaded (rows, ciphertext digest, log index) or missing, with its provider;
the algorithm and each model, submitted or pending; the runs started and
left; the privacy budget left (mode differential_privacy); whether the
contract is suspended; and what a run still waits for, with who must
provide it. It changes
nothing and is never logged as a refusal: run it before a command whose
outcome you are unsure of.

It exits 0 whatever it finds (1 only when the coordinator cannot be asked).
With --json, stdout carries one JSON object: the coordinator's answer
(docs/api.md) with registered, runs_left, ready, missing, budget_left (null
when the mode spends no budget) and suspended.`,
		Args: cobra.NoArgs,
	}
	addSessionFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ss, err := c.connect(s, "", true)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		p, err := ss.client.Progress(cmd.Context())
		if err != nil {
			return explain(err)
		}
		if asJSON {
			return writeJSON(c.Stdout, p)
		}
		printProgress(c.Stdout, ss.contract, p)
		switch {
		case !p.Registered:
			c.Infof("contract %s is not registered at %s", ss.contract.ID(), ss.url)
		case p.Ready:
			c.Infof("ready: a run may start (%s left)", plural(p.RunsLeft, "run"))
		default:
			c.Infof("a run waits for %s", plural(len(p.Missing), "thing"))
		}
		return nil
	}
	return cmd
}

// printProgress writes a contract's progress as aligned lines.
func printProgress(w io.Writer, ct *contracts.Contract, p *client.Progress) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "contract\t%s\t%s\n", ct.Name, ct.ID())
	if !p.Registered {
		fmt.Fprintf(tw, "registered\tno\n")
		for _, m := range p.Missing {
			fmt.Fprintf(tw, "missing\t%s\n", m)
		}
		return
	}
	st := p.ContractStatus
	fmt.Fprintf(tw, "registered\tyes, log index %d\texpires %s\n", st.LogIndex, st.ExpiresAt)
	for _, d := range st.Datasets {
		switch {
		case !d.Uploaded:
			fmt.Fprintf(tw, "dataset %s\tMISSING\tfrom %s\n", d.ID, d.Provider)
		case d.Damaged != "":
			fmt.Fprintf(tw, "dataset %s\tDAMAGED\t%s\n", d.ID, d.Damaged)
		default:
			fmt.Fprintf(tw, "dataset %s\tuploaded\tby %s: %s, sha256 %s, log index %d\n", d.ID, d.Provider, plural(d.Rows, "row"), d.CiphertextSHA256, d.LogIndex)
		}
	}
	a := st.Algorithm
	conf := ""
	if a.Confidential {
		conf = " (confidential)"
	}
	if a.Submitted {
		fmt.Fprintf(tw, "algorithm\tsubmitted\tby %s%s, sha256 %s, log index %d\n", ct.Algorithm.Provider, conf, a.SHA256, a.LogIndex)
	} else {
		fmt.Fprintf(tw, "algorithm\tPENDING\tfrom %s%s\n", ct.Algorithm.Provider, conf)
	}
	for _, m := range st.Models {
		if m.Submitted {
			fmt.Fprintf(tw, "model %s\tsubmitted\tby %s, log index %d\n", m.Name, m.Provider, m.LogIndex)
		} else {
			fmt.Fprintf(tw, "model %s\tPENDING\tfrom %s\n", m.Name, m.Provider)
		}
	}
	fmt.Fprintf(tw, "runs\t%d of %d used\t%s left\n", st.RunsUsed, st.MaxRuns, plural(p.RunsLeft, "run"))
	switch {
	case p.BudgetLeft != nil:
		fmt.Fprintf(tw, "budget left\tepsilon %g\n", *p.BudgetLeft)
	case ct.Output.Mode == contracts.ModeDifferentialPrivacy:
		fmt.Fprintf(tw, "budget left\tnot reported by this coordinator\n")
	default:
		fmt.Fprintf(tw, "budget left\tnone spent\tmode %s spends no privacy budget\n", ct.Output.Mode)
	}
	if p.Suspended {
		fmt.Fprintf(tw, "suspended\tYES\t%s\n", p.Suspension)
	} else {
		fmt.Fprintf(tw, "suspended\tno\n")
	}
	if n := len(st.Runs); n > 0 {
		r := st.Runs[n-1]
		detail := r.Reason
		if r.Status == "finished" {
			detail = fmt.Sprintf("%s released, %d suppressed", plural(r.RowsKept, "row"), r.RowsSuppressed)
		}
		fmt.Fprintf(tw, "last run\t%d: %s\t%s %s\n", r.Number, r.Status, r.RunID, detail)
	}
	for _, m := range p.Missing {
		fmt.Fprintf(tw, "waiting for\t%s\n", m)
	}
}
