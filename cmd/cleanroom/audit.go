package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/cliout"
)

func newAuditLogCmd(c *cli) *cobra.Command {
	var stateDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "log --contract FILE --key NAME.key --coordinator URL [--state DIR] [--json]",
		Short: "Verify the coordinator's log and print the contract's timeline",
		Long: `log verifies the coordinator's audit log and prints the contract's timeline.

Over attested TLS (the coordinator's evidence checked against the contract),
it fetches the log's checkpoint and verifies its signature with the attested
coordinator key; proves that the log extends the checkpoint kept in the
state directory from the last audit; fetches the contract's view of the log
(every other contract's event redacted to its leaf hash) and recomputes the
whole Merkle tree, so the inclusion of every event of the contract is
proved; checks that the view shows as many events as the coordinator's
signed view head says and that the contract's events chain without a gap,
so none was withheld; verifies every signature inside the contract's events
(the participants' contract signatures, the providers' upload statements,
the coordinator's result statements); and checks the timeline (registration
first, run numbers, max_runs, each run ending once, the coordinator's
starts).

Only when all of it verifies does it keep the new checkpoint and the
verified facts in the state directory (default: a directory per coordinator
key under your configuration directory). A log that does not extend the
kept checkpoint is reported as a ROLLBACK or FORK, the two signed
checkpoints are saved under DIR/evidence/, and the kept checkpoint stays.

The timeline goes to stdout as a table, or with --json as the report
described in docs/audit.md. Exit status 0 only if everything verified.
'cleanroom audit serve --state DIR' shows the verified facts in a browser.`,
		Args: cobra.NoArgs,
	}
	addSessionFlags(cmd)
	cmd.Flags().StringVar(&stateDir, "state", "", "state directory kept between audits (default: under your configuration directory, per coordinator key)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON (docs/audit.md) instead of a table")
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ss, err := c.connect(s, "", true)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		ctx := cmd.Context()
		contractPath := s.get("contract")
		text, err := os.ReadFile(contractPath)
		if err != nil {
			return err
		}
		if stateDir == "" {
			peer, err := ss.client.Coordinator(ctx)
			if err != nil {
				return explain(err)
			}
			if stateDir, err = audit.DefaultStateDir(peer.PublicKey); err != nil {
				return cliout.WithHint(err, "give --state DIR")
			}
		}
		st, err := audit.OpenState(stateDir)
		if err != nil {
			return err
		}
		defer st.Close()
		if me := ss.me(); !me.Has(contracts.RoleAuditor) {
			c.Warnf("participant %s does not hold the auditor role in %s; the coordinator serves its log only to auditors", me.ID, contractPath)
		}
		rep, err := ss.client.AuditLog(ctx, text, st)
		if rep != nil {
			if asJSON {
				if werr := writeReportJSON(c.Stdout, rep); werr != nil {
					return werr
				}
			} else if rep.Failure == nil || rep.Failure.Kind == audit.FailEvents {
				printTimeline(c.Stdout, rep)
			}
		}
		if err != nil {
			return c.auditFailed(rep, err, stateDir)
		}
		cp := rep.Checkpoint
		switch cp.Consistency {
		case "extended":
			c.Infof("log verified: checkpoint of %d entries (root %s) extends the one of %d entries kept from the last audit (consistency proof of %d hashes)",
				cp.Size, cp.Root[:16], *cp.KeptSize, cp.ProofHashes)
		case "unchanged":
			c.Infof("log verified: checkpoint of %d entries (root %s), unchanged since the last audit", cp.Size, cp.Root[:16])
		default:
			c.Infof("log verified: checkpoint of %d entries (root %s); first audit into this state directory, nothing kept to compare with", cp.Size, cp.Root[:16])
		}
		c.Infof("the whole tree, all %s of contract %s (as many as the signed view head counts, chained without a gap), their signatures and the timeline verified; %d of %s started",
			plural(rep.Log.ContractEvents, "event"), rep.Contract.Name, rep.Contract.RunsStarted, plural(rep.Contract.MaxRuns, "run"))
		c.Infof("%d entries of other contracts were verified by their leaf hashes only: their events are not shown to this contract", rep.Log.OtherEvents)
		for _, w := range rep.Warnings {
			c.Warnf("%s", w.Message)
		}
		c.Infof("kept the checkpoint and the verified facts in %s", stateDir)
		return nil
	}
	return cmd
}

// auditFailed reports a failed audit on stderr and returns the error that
// sets the exit status.
func (c *cli) auditFailed(rep *audit.Report, err error, stateDir string) error {
	var ce *tlog.ConsistencyError
	var content *tlog.ContentError
	var withheld *tlog.ViewCountError
	if rep == nil || rep.Failure == nil {
		return explain(err)
	}
	f := rep.Failure
	switch {
	case errors.As(err, &ce):
		what := "ROLLBACK"
		if ce.Kind == tlog.Fork {
			what = "FORK"
		}
		c.Infof("%s: the coordinator's log is not an extension of the checkpoint kept from the last audit", what)
		c.Infof("%s: kept checkpoint: %d entries, root %x", what, ce.Old.Size(), ce.Old.Root())
		c.Infof("%s: new checkpoint:  %d entries, root %x", what, ce.New.Size(), ce.New.Root())
		c.Infof("%s: %s", what, ce.Reason)
		if f.Evidence != "" {
			c.Infof("%s: evidence saved in %s (%s, %s, %s, %s)", what, filepath.Join(stateDir, filepath.FromSlash(f.Evidence)),
				audit.EvidenceOld, audit.EvidenceNew, audit.EvidenceProof, audit.EvidenceReport)
		}
		c.Infof("the kept checkpoint was not replaced")
		return cliout.WithHint(fmt.Errorf("%s detected: the coordinator's log was %s", strings.ToLower(what), map[bool]string{true: "rolled back", false: "forked"}[ce.Kind == tlog.Rollback]),
			"keep the evidence directory; anyone holding the coordinator's key can re-check the two signed checkpoints")
	case errors.As(err, &withheld):
		c.Infof("WITHHELD: %v", withheld)
		c.Infof("WITHHELD: the coordinator's signed view head (evidence, also in --json as log.view_head):\n%s", withheld.Head.Bytes())
		c.Infof("the kept checkpoint was not replaced")
		return cliout.WithHint(errors.New("the coordinator's view of the log does not show every event of the contract that it signed for"),
			"keep the signed view head: with the log it shows which of the contract's events the coordinator withheld")
	case errors.As(err, &content):
		at := ""
		if content.Index >= 0 {
			at = fmt.Sprintf(", entry %d", content.Index)
		}
		return fmt.Errorf("the log does not match its signed checkpoint: %s%s: %s; the kept checkpoint was not replaced", content.Path, at, content.Reason)
	case f.Kind == audit.FailEvents:
		for _, p := range rep.Problems {
			if p.Index != nil {
				c.Infof("problem: entry %d: %s", *p.Index, p.Message)
			} else {
				c.Infof("problem: %s", p.Message)
			}
		}
		return fmt.Errorf("the log verified, but %d of its events break the contract's or the log's rules (listed above); the kept checkpoint was not replaced", len(rep.Problems))
	}
	return err
}

func writeReportJSON(w io.Writer, rep *audit.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// printTimeline writes the timeline as a table.
func printTimeline(w io.Writer, rep *audit.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tEVENT\tACTOR\tDETAILS")
	for _, e := range rep.Timeline {
		actor := "-"
		if e.Actor != "" {
			actor = e.Actor + " " + e.ActorKey[:16]
		}
		mark := ""
		if !e.OK {
			mark = "!! "
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s%s\n", e.Index, e.Time.UTC().Format(time.RFC3339), e.Type, actor, mark, e.Summary)
	}
	tw.Flush()
}
