package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/cliout"
)

// inputFlags are the flags of commands that read a provider's data file.
type inputFlags struct {
	format    string
	assumeUTC bool
}

func (f *inputFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.format, "format", "auto", "input format: auto, csv, jsonl, parquet, arrow (IPC file) or arrows (IPC stream)")
	cmd.Flags().BoolVar(&f.assumeUTC, "assume-utc", false, "read timestamps without a time zone as UTC (default: refuse them)")
}

// open opens INPUT ("-" for standard input) as the dataset's columns.
func (f *inputFlags) open(c *cli, path string, ds *contracts.Dataset) (connectors.Reader, int64, error) {
	format, err := connectors.ParseFormat(f.format)
	if err != nil {
		return nil, 0, cliout.UsageError{Err: err}
	}
	opts := connectors.Options{AssumeUTC: f.assumeUTC}
	if path == "-" {
		if format == connectors.FormatAuto || !format.Streamable() {
			return nil, 0, cliout.Usagef("reading standard input needs --format csv, jsonl or arrows")
		}
		r, err := connectors.NewReader(c.Stdin, format, ds.Columns, opts)
		return r, 0, err
	}
	var size int64
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	r, err := connectors.Open(path, format, ds.Columns, opts)
	return r, size, err
}

func readLimitedFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

func newDatasetEncryptCmd(c *cli) *cobra.Command {
	var in inputFlags
	var datasetID, identityPath, out, stmtPath string
	cmd := &cobra.Command{
		Use:   "encrypt INPUT --contract FILE --dataset ID --coordinator-identity FILE --out FILE [--key NAME.key [--statement FILE]] [--format FORMAT] [--assume-utc]",
		Short: "Convert a data file and encrypt it to the attested coordinator, on your machine",
		Long: `encrypt reads INPUT (CSV, Parquet, Arrow IPC file or stream, or JSON lines;
"-" for standard input), checks it against the dataset's columns in the
contract, and seals it in an envelope that only the coordinator can open,
for this contract and this dataset only.

Before encrypting it verifies the coordinator's identity document (from
cleanroomd identity or cleanroom coordinator info) against the contract's
coordinator section. With --key (or CLEANROOM_KEY) it also signs the upload
statement, written to OUT.stmt unless --statement says otherwise.

Nothing is written unless everything succeeds. The ciphertext's SHA-256 is
printed on stdout.`,
		Args: cobra.ExactArgs(1),
	}
	in.add(cmd)
	cmd.Flags().String("contract", "", "the signed contract (env CLEANROOM_CONTRACT)")
	cmd.Flags().StringVar(&datasetID, "dataset", "", "dataset id in the contract")
	cmd.Flags().StringVar(&identityPath, "coordinator-identity", "", "the coordinator's identity document (JSON)")
	cmd.Flags().StringVar(&out, "out", "", "envelope file to write")
	cmd.Flags().String("key", "", "your secret key, to sign the upload statement (env CLEANROOM_KEY)")
	cmd.Flags().StringVar(&stmtPath, "statement", "", "where to write the signed upload statement (default OUT.stmt)")
	s := bindSettings(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if err := s.required("contract", "dataset", "coordinator-identity", "out"); err != nil {
			return err
		}
		contractPath := s.get("contract")
		ct, err := c.loadContract(contractPath, false)
		if err != nil {
			return err
		}
		ds, err := datasetOf(ct, contractPath, datasetID)
		if err != nil {
			return err
		}
		var provider *cleanroom.Identity
		if keyPath := s.get("key"); keyPath != "" {
			if provider, err = cleanroom.ReadIdentityFile(keyPath); err != nil {
				return err
			}
			if stmtPath == "" {
				stmtPath = out + ".stmt"
			}
		}
		doc, err := readLimitedFile(identityPath, attest.MaxIdentityDocumentSize)
		if err != nil {
			return err
		}
		rr, size, err := in.open(c, args[0], ds)
		if err != nil {
			return err
		}
		defer rr.Release()
		bar := c.startProgress("encrypting "+datasetID, size, func() (int64, int64) { return rr.BytesRead(), rr.Rows() })
		enc, a, err := client.EncryptDatasetFile(out, rr, ct, datasetID, doc, provider, stmtPath)
		bar.finish()
		if errors.Is(err, client.ErrIdentityRefused) {
			return cliout.WithHint(fmt.Errorf("%s: %w", identityPath, err),
				"the contract's coordinator section pins what the coordinator must attest; never encrypt to an unverified key")
		}
		if err != nil {
			return err
		}
		c.Infof("coordinator attested: %s, measurement %x, key %s", a.Claims.Platform, a.Claims.Measurement, a.Document.PublicKeys[0].Fingerprint().Short())
		c.Infof("encrypted %s of %s: %s (%d bytes, sha256 %x)", plural(enc.Rows, "row"), datasetID, out, enc.Summary.Size, enc.Summary.SHA256)
		if provider != nil {
			c.Infof("signed upload statement: %s", stmtPath)
		}
		fmt.Fprintf(c.Stdout, "%x\n", enc.Summary.SHA256)
		return nil
	}
	return cmd
}
