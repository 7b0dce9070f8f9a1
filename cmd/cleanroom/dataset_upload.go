package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/internal/cliout"
)

func newDatasetUploadCmd(c *cli) *cobra.Command {
	var in inputFlags
	var datasetID string
	cmd := &cobra.Command{
		Use:   "upload INPUT --contract FILE --dataset ID --key NAME.key --coordinator URL",
		Short: "Attest the coordinator, then convert, encrypt and upload a dataset in one pass",
		Long: `upload does the whole job of a data provider: it connects to the coordinator
over attested TLS (refusing one that does not satisfy the contract), checks
its evidence afresh, reads INPUT (CSV, Parquet, Arrow IPC file or stream, or
JSON lines; "-" for standard input) against the dataset's columns, encrypts
it to the attested coordinator key and streams the envelope, then sends the
signed upload statement. Plaintext never leaves your machine and no
temporary file is written. The coordinator checks every byte before it
acknowledges; the ciphertext's SHA-256 is printed on stdout.`,
		Args: cobra.ExactArgs(1),
	}
	in.add(cmd)
	addSessionFlags(cmd)
	cmd.Flags().StringVar(&datasetID, "dataset", "", "dataset id in the contract")
	s := bindSettings(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if datasetID == "" {
			return cliout.Usagef("--dataset ID is required")
		}
		ss, err := c.connect(s, "", false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		ds := ss.contract.Dataset(datasetID)
		if ds == nil {
			return fmt.Errorf("the contract has no dataset %q", datasetID)
		}

		rr, size, err := in.open(c, args[0], ds)
		if err != nil {
			return err
		}
		defer rr.Release()
		bar := c.startProgress("uploading "+datasetID, size, func() (int64, int64) { return rr.BytesRead(), rr.Rows() })
		rec, err := ss.client.UploadDataset(cmd.Context(), datasetID, rr, client.UploadOptions{})
		bar.finish()
		if isConflict(err) {
			return cliout.WithHint(explain(err), "datasets are immutable once uploaded")
		}
		if err != nil {
			return explain(err)
		}
		c.Infof("uploaded dataset %s: %d rows, %d bytes of ciphertext, sha256 %x, log index %d",
			datasetID, rec.Rows, rec.Size, rec.CiphertextSHA256, rec.LogIndex)
		fmt.Fprintf(c.Stdout, "%x\n", rec.CiphertextSHA256)
		return nil
	}
	return cmd
}
