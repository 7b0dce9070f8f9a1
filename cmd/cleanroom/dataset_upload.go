package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/upload"
)

func init() { datasetCommands = append(datasetCommands, newDatasetUploadCmd) }

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
			return usagef("--dataset ID is required")
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
		if me := ss.me(); ds.Provider != me.ID {
			return fmt.Errorf("dataset %s is provided by %q; your key is %q's", datasetID, ds.Provider, me.ID)
		}
		ctx := cmd.Context()
		if err := c.attested(ctx, ss); err != nil {
			return err
		}
		peer, err := ss.client.Coordinator(ctx)
		if err != nil {
			return explain(err)
		}
		rr, size, err := in.open(c, args[0], ds)
		if err != nil {
			return err
		}
		defer rr.Release()

		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		pr, pw := io.Pipe()
		encDone := make(chan struct{})
		var enc *upload.Encrypted
		var encErr error
		go func() {
			defer close(encDone)
			enc, encErr = upload.Encrypt(pw, rr, ss.contract, datasetID, peer.PublicKey, ss.identity, upload.EncryptOptions{})
			pw.CloseWithError(encErr)
		}()
		bar := c.startProgress("uploading "+datasetID, size, func() (int64, int64) { return rr.BytesRead(), rr.Rows() })
		rec, err := ss.client.UploadDataset(ctx, datasetID, pr, func() ([]byte, error) {
			<-encDone
			if encErr != nil {
				return nil, encErr
			}
			return enc.Signed, nil
		})
		bar.finish()
		pr.CloseWithError(errors.New("upload ended"))
		<-encDone
		if encErr != nil {
			return encErr
		}
		if isConflict(err) {
			return withHint(explain(err), "datasets are immutable once uploaded")
		}
		if err != nil {
			return explain(err)
		}
		if rec.CiphertextSHA256 != fmt.Sprintf("%x", enc.Summary.SHA256) || rec.Rows != enc.Rows {
			return fmt.Errorf("the coordinator acknowledged %s with %d rows, but %x with %d rows was sent", rec.CiphertextSHA256, rec.Rows, enc.Summary.SHA256, enc.Rows)
		}
		c.infof("uploaded dataset %s: %d rows, %d bytes of ciphertext, sha256 %s, log index %d",
			datasetID, rec.Rows, enc.Summary.Size, rec.CiphertextSHA256, rec.LogIndex)
		fmt.Fprintln(c.stdout, rec.CiphertextSHA256)
		return nil
	}
	return cmd
}
