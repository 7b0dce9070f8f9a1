package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/internal/cliout"
)

func newDatasetUploadCmd(c *cli) *cobra.Command {
	var in inputFlags
	var datasetID, envelopePath, stmtPath string
	cmd := &cobra.Command{
		Use:   "upload (INPUT [--format FORMAT] [--assume-utc] | --envelope FILE [--statement FILE]) --contract FILE --dataset ID --key NAME.key --coordinator URL",
		Short: "Attest the coordinator, then convert, encrypt and upload a dataset in one pass (or upload an envelope encrypted earlier)",
		Long: `upload does the whole job of a data provider: it connects to the coordinator
over attested TLS (refusing one that does not satisfy the contract), checks
its evidence afresh, reads INPUT (CSV, Parquet, Arrow IPC file or stream, or
JSON lines; "-" for standard input) against the dataset's columns, encrypts
it to the attested coordinator key and streams the envelope, then sends the
signed upload statement. Plaintext never leaves your machine and no
temporary file is written. The coordinator checks every byte before it
acknowledges; the ciphertext's SHA-256 is printed on stdout, and a profile
of what was uploaded (rows; per column empty values, distinct values,
smallest and largest) on stderr. cleanroom dataset check shows the same
profile before anything is sent.

--envelope uploads an envelope made earlier by cleanroom dataset encrypt
(perhaps on a machine with no network), with the upload statement it
signed (--statement, default FILE.stmt): upload checks that both are for
this contract, dataset and schema, that the statement is yours over exactly
this file, and that the envelope is encrypted to the attested coordinator.

A dataset is uploaded once and never replaced. Sending the same content
again (the same envelope, or the same input read again) is acknowledged as
"already present (same digest)" with exit status 0, so a script can be
retried; different content is refused.`,
		Args: cobra.MaximumNArgs(1),
	}
	in.add(cmd)
	addSessionFlags(cmd)
	cmd.Flags().StringVar(&datasetID, "dataset", "", "dataset id in the contract")
	cmd.Flags().StringVar(&envelopePath, "envelope", "", "upload this envelope (from cleanroom dataset encrypt) instead of encrypting INPUT")
	cmd.Flags().StringVar(&stmtPath, "statement", "", "the envelope's signed upload statement (default: the envelope's name with .stmt appended)")
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case envelopePath == "" && len(args) == 0:
			return cliout.Usagef("give the data file to encrypt and upload (INPUT), or --envelope FILE")
		case envelopePath != "" && len(args) > 0:
			return cliout.Usagef("give either INPUT or --envelope FILE, not both")
		case stmtPath != "" && envelopePath == "":
			return cliout.Usagef("--statement goes with --envelope")
		case envelopePath == "" && args[0] != "-" && client.IsEnvelopeFile(args[0]):
			return cliout.WithHint(cliout.Usagef("%s is an envelope (already encrypted), not a data file", args[0]),
				fmt.Sprintf("upload it with: cleanroom dataset upload --envelope %s --dataset ID", args[0]))
		}
		ss, err := c.connect(s, "", false, "dataset")
		if err != nil {
			return err
		}
		defer ss.client.Close()
		ds, err := datasetOf(ss.contract, s.get("contract"), datasetID)
		if err != nil {
			return err
		}
		var rec *client.DatasetReceipt
		var profile *connectors.Profile
		if envelopePath != "" {
			if stmtPath == "" {
				stmtPath = envelopePath + ".stmt"
			}
			stmt, err := os.ReadFile(stmtPath)
			if errors.Is(err, os.ErrNotExist) {
				return cliout.WithHint(fmt.Errorf("no upload statement at %s", stmtPath),
					"cleanroom dataset encrypt --key NAME.key signs it beside the envelope; give it with --statement FILE")
			}
			if err != nil {
				return err
			}
			rec, err = ss.client.UploadEnvelopeFile(cmd.Context(), datasetID, envelopePath, stmt)
			if err != nil {
				return explainUpload(err)
			}
		} else {
			rr, size, err := in.open(c, args[0], ds)
			if err != nil {
				return err
			}
			defer rr.Release()
			prof := connectors.NewProfiler(ds.Columns)
			observed := prof.Observe(rr)
			bar := c.startProgress("uploading "+datasetID, size, func() (int64, int64) { return rr.BytesRead(), rr.Rows() })
			rec, err = ss.client.UploadDataset(cmd.Context(), datasetID, observed, client.UploadOptions{})
			bar.finish()
			observed.Wait()
			if err != nil {
				return explainUpload(err)
			}
			profile = prof.Profile()
		}
		if rec.Already {
			c.Infof("dataset %s: already present (same digest): the coordinator holds this content since log index %d (%s, sha256 %x); nothing changed",
				datasetID, rec.LogIndex, plural(rec.Rows, "row"), rec.CiphertextSHA256)
		} else {
			c.Infof("uploaded dataset %s: %s, %d bytes of ciphertext, sha256 %x, log index %d",
				datasetID, plural(rec.Rows, "row"), rec.Size, rec.CiphertextSHA256, rec.LogIndex)
		}
		if profile != nil {
			c.printProfile(c.Stderr, datasetID, profile, true)
		}
		fmt.Fprintf(c.Stdout, "%x\n", rec.CiphertextSHA256)
		return nil
	}
	return cmd
}

// explainUpload adds what to do to an upload's refusal.
func explainUpload(err error) error {
	var ne *client.NullError
	switch {
	case errors.As(err, &ne):
		return cliout.WithHint(err, "fill the empty values in the file, or amend the contract (nullable: true); cleanroom dataset check lists them before anything is sent")
	case isConflict(err):
		return cliout.WithHint(explain(err), "datasets are immutable once uploaded; cleanroom status shows what the coordinator holds")
	}
	return explain(err)
}

// printProfile writes a dataset's profile as a table, each line prefixed
// as a message when it goes to stderr (prefixed).
func (c *cli) printProfile(w io.Writer, datasetID string, p *connectors.Profile, prefixed bool) {
	prefix := ""
	if prefixed {
		prefix = c.Prog + ": "
	}
	fmt.Fprintf(w, "%sdataset %s: %s\n", prefix, datasetID, plural(p.Rows, "row"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s  COLUMN\tTYPE\tEMPTY\tDISTINCT\tMIN\tMAX\n", prefix)
	for _, col := range p.Columns {
		distinct := fmt.Sprint(col.Distinct)
		if col.DistinctApprox {
			distinct = "~" + distinct
		}
		typ := col.Type
		if col.NotNull {
			typ += " not null"
		}
		min, max := col.Min, col.Max
		if min == "" {
			min, max = "-", "-"
		}
		fmt.Fprintf(tw, "%s  %s\t%s\t%d\t%s\t%s\t%s\n", prefix, col.Name, typ, col.Nulls, distinct, min, max)
	}
	tw.Flush()
}

func newDatasetCheckCmd(c *cli) *cobra.Command {
	var in inputFlags
	var datasetID string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check INPUT --contract FILE --dataset ID [--format FORMAT] [--assume-utc] [--json]",
		Short: "Check a data file against the contract before uploading it: its profile, and what an upload would refuse",
		Long: `check reads INPUT exactly as cleanroom dataset upload would (CSV, Parquet,
Arrow IPC file or stream, or JSON lines; "-" for standard input) against the
dataset's columns in the contract, on your machine, with no connection and
nothing written, and prints its profile: the number of rows and, per column,
the empty values, the distinct values (exact up to 4096, estimated beyond,
marked ~), and the smallest and largest values.

An upload cannot be undone, so check first: a value that does not fit its
column is refused naming the line, as upload would refuse it; an empty value
in a column the contract declares nullable: false is listed, and makes check
exit 1; empty values elsewhere are reported, since they reach the query as
NULL. With --json the profile and the problems go to stdout as JSON.`,
		Args: cobra.ExactArgs(1),
	}
	in.add(cmd)
	cmd.Flags().String("contract", "", "the contract (env CLEANROOM_CONTRACT)")
	cmd.Flags().StringVar(&datasetID, "dataset", "", "dataset id in the contract")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the profile and the problems as JSON")
	s := bindSettings(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if err := s.required("contract", "dataset"); err != nil {
			return err
		}
		ct, err := c.loadContract(s.get("contract"), true)
		if err != nil {
			return err
		}
		ds, err := datasetOf(ct, s.get("contract"), datasetID)
		if err != nil {
			return err
		}
		if args[0] != "-" && client.IsEnvelopeFile(args[0]) {
			return cliout.Usagef("%s is an envelope (already encrypted): check reads the data file it was made from", args[0])
		}
		rr, _, err := in.open(c, args[0], ds)
		if err != nil {
			return err
		}
		defer rr.Release()
		chk, err := client.CheckDataset(rr, ct, datasetID)
		if err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		if asJSON {
			if err := writeJSON(c.Stdout, chk); err != nil {
				return err
			}
		} else {
			c.printProfile(c.Stdout, datasetID, chk.Profile, false)
			for _, col := range chk.Profile.Columns {
				if col.Nulls > 0 && !col.NotNull {
					c.Infof("column %s has %d empty %s: the query reads them as NULL (if they are mistakes, fix the file; a column declared nullable: false refuses them)",
						col.Name, col.Nulls, map[bool]string{true: "value", false: "values"}[col.Nulls == 1])
				}
			}
		}
		if !chk.OK() {
			for _, p := range chk.Problems {
				fmt.Fprintf(c.Stderr, "%s: error: %s\n", c.Prog, p)
			}
			return cliout.SilentError{Msg: "the upload would be refused"}
		}
		c.Infof("%s fits dataset %s of %s: %s", args[0], datasetID, s.get("contract"), plural(chk.Profile.Rows, "row"))
		return nil
	}
	return cmd
}
