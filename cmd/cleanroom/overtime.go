package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/internal/cliout"
)

// Contracts over time (SPEC §13): suspend, resume, withdraw.

func newContractSuspendCmd(c *cli) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "suspend --reason TEXT --contract FILE --key NAME.key --coordinator URL",
		Short: "Stop every new run of the contract at once (a data provider's emergency stop)",
		Long: `suspend is any data provider's emergency stop: from the moment the
coordinator logs contract.suspended, every run not yet started is refused.
Runs already started finish. The reason is logged for every participant and
auditor to read. The contract runs again only when every participant signs
its resumption (cleanroom contract resume). The suspension's log index, which
those signatures name, is printed on stdout.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the other participants (required)")
	addSessionFlags(cmd)
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := s.required("reason", "contract", "key", "coordinator"); err != nil {
			return err
		}
		if strings.TrimSpace(reason) == "" {
			return cliout.Usagef("--reason TEXT is blank: the other participants read why the contract is suspended")
		}
		ss, err := c.connect(s, "", false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		rec, err := ss.client.Suspend(cmd.Context(), reason)
		if err != nil {
			return explain(err)
		}
		c.Infof("contract %s suspended (log index %d): no run starts until every participant signs its resumption (cleanroom contract resume --approve)", ss.contract.ID(), rec.LogIndex)
		fmt.Fprintln(c.Stdout, rec.LogIndex)
		return nil
	}
	return cmd
}

func newContractResumeCmd(c *cli) *cobra.Command {
	var approve bool
	var out string
	var approvals []string
	cmd := &cobra.Command{
		Use:   "resume (--approve [--out FILE] | --approval FILE ...) --contract FILE --key NAME.key --coordinator URL",
		Short: "Approve, or submit every participant's approval, to resume a suspended contract",
		Long: `resume lifts a suspension when every participant of the contract agrees.

With --approve, it asks the coordinator which suspension is in force and
signs your approval of resuming from it: a COSE_Sign1 over the contract id
and the suspension's log index (so it lifts that suspension only), written
to --out (default NAME.resume after your key file). Send it to whoever
submits.

With --approval FILE (one per participant), it submits the approvals; the
coordinator resumes the contract only if every participant's approval is
there and valid, and logs contract.resumed with them.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().BoolVar(&approve, "approve", false, "sign your approval of resuming from the suspension in force")
	cmd.Flags().StringVar(&out, "out", "", "where --approve writes your approval (default NAME.resume)")
	cmd.Flags().StringArrayVar(&approvals, "approval", nil, "a participant's approval file (repeat for each participant)")
	addSessionFlags(cmd)
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := s.required("contract", "key", "coordinator"); err != nil {
			return err
		}
		if approve == (len(approvals) > 0) {
			return cliout.Usagef("give either --approve (to sign your approval) or --approval FILE for each participant (to submit them)")
		}
		ss, err := c.connect(s, "", false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		if approve {
			st, err := ss.client.Status(cmd.Context())
			if err != nil {
				return explain(err)
			}
			if st.Suspended == nil {
				return fmt.Errorf("contract %s is not suspended: there is nothing to approve", ss.contract.ID())
			}
			sig, err := ss.client.ApproveResumption(st.Suspended.LogIndex)
			if err != nil {
				return err
			}
			if out == "" {
				key, _ := s.require("key")
				out = strings.TrimSuffix(key, ".key") + ".resume"
			}
			if err := os.WriteFile(out, sig, 0o644); err != nil {
				return err
			}
			c.Infof("approved resuming contract %s from the suspension at log index %d (by %s: %s); wrote %s",
				ss.contract.ID(), st.Suspended.LogIndex, st.Suspended.By, st.Suspended.Reason, out)
			return nil
		}
		var sigs [][]byte
		for _, p := range approvals {
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("reading approval: %w", err)
			}
			sigs = append(sigs, b)
		}
		rec, err := ss.client.Resume(cmd.Context(), sigs)
		if err != nil {
			return explain(err)
		}
		c.Infof("contract %s resumed (log index %d)", ss.contract.ID(), rec.LogIndex)
		fmt.Fprintln(c.Stdout, rec.LogIndex)
		return nil
	}
	return cmd
}

func newDatasetWithdrawCmd(c *cli) *cobra.Command {
	var datasetID string
	cmd := &cobra.Command{
		Use:   "withdraw --dataset ID --contract FILE --key NAME.key --coordinator URL",
		Short: "Delete your dataset inside the coordinator: its envelope and data key",
		Long: `withdraw takes a dataset back: its provider asks, the coordinator logs
dataset.withdrawn and then deletes the stored envelope, whose header holds
the only copy of its data key (wrapped to the coordinator's key). Every run
that needs the dataset is refused from then on; runs already started finish.
The log index of dataset.withdrawn is printed on stdout.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&datasetID, "dataset", "", "the dataset id (required)")
	addSessionFlags(cmd)
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := s.required("dataset", "contract", "key", "coordinator"); err != nil {
			return err
		}
		ss, err := c.connect(s, "", false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		rec, err := ss.client.Withdraw(cmd.Context(), datasetID)
		if err != nil {
			return explain(err)
		}
		c.Infof("dataset %s withdrawn (log index %d): its envelope and data key are deleted; runs that need it are refused", datasetID, rec.LogIndex)
		fmt.Fprintln(c.Stdout, rec.LogIndex)
		return nil
	}
	return cmd
}
