package main

import (
	"bytes"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/internal/cliout"
	"cleanroom.dev/cleanroom/internal/durable"
)

func newResultShowCmd(c *cli) *cobra.Command {
	var formatName, out string
	cmd := &cobra.Command{
		Use:   "show FILE --key NAME.key [--format table|csv|json|jsonl|parquet|arrow|arrows] [--out FILE]",
		Short: "Verify a result bundle, decrypt it with your key and print or write the result",
		Long: `show verifies a result bundle against the contract exactly as cleanroom result
verify does, then decrypts the result with your key (you must be one of the
contract's result recipients), checks that it and the salt it carries open
the commitment the coordinator signed, and writes it:

  --format table    an aligned table on stdout (the default)
  --format csv      CSV with a header row
  --format json     one JSON array of objects (jsonl: one object per line)
  --format parquet  Apache Parquet
  --format arrow    Arrow IPC file (arrows: Arrow IPC stream)

--out FILE writes the result to FILE (mode 0600: it is plaintext) instead of
stdout. Parquet and Arrow are binary: they are never written to a terminal,
so they need --out or a redirection.

Nothing is written unless the bundle verifies in full.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().String("key", "", "your secret key, a result recipient's (env CLEANROOM_KEY)")
	cmd.Flags().String("contract", "", "the contract the result was produced under (env CLEANROOM_CONTRACT)")
	cmd.Flags().StringVar(&formatName, "format", "table", "output format: table, csv, json, jsonl, parquet, arrow or arrows")
	cmd.Flags().StringVar(&out, "out", "", "write the result to this file instead of stdout")
	s := bindSettings(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		format, err := connectors.ParseFormat(formatName)
		if err != nil || format == connectors.FormatAuto {
			return cliout.Usagef("--format %q is not one of table, csv, json, jsonl, parquet, arrow or arrows", formatName)
		}
		binary := format == connectors.FormatParquet || format == connectors.FormatArrowFile || format == connectors.FormatArrowStream
		if binary && out == "" && isTerminal(c.Stdout) {
			return cliout.WithHint(cliout.Usagef("--format %s is binary and stdout is a terminal", format), "write it to a file with --out FILE (or redirect stdout)")
		}
		keyPath, err := s.require("key")
		if err != nil {
			return err
		}
		contractPath, err := s.require("contract")
		if err != nil {
			return err
		}
		ct, err := c.loadContract(contractPath, true)
		if err != nil {
			return err
		}
		id, err := cleanroom.ReadIdentityFile(keyPath)
		if err != nil {
			return err
		}
		r, err := c.verifyResult(args[0], ct, id, nil)
		if err != nil {
			return err
		}
		defer clear(r.Result)
		fp := id.Public().Fingerprint()
		c.Infof("decrypted with %s's key %s: the result opens the commitment the coordinator signed", ct.ParticipantByKey(fp).ID, fp.Short())

		if out == "" {
			_, err := writeResult(c.Stdout, r, format)
			return err
		}
		var buf bytes.Buffer
		rows, err := writeResult(&buf, r, format)
		if err != nil {
			return err
		}
		defer clear(buf.Bytes())
		if err := durable.WriteFile(out, buf.Bytes(), 0o600); err != nil {
			return err
		}
		c.Infof("wrote %s to %s (%s)", plural(rows, "row"), out, format)
		return nil
	}
	return cmd
}

// writeResult writes the verified, decrypted result in format.
func writeResult(w io.Writer, r *bundle.Report, format connectors.Format) (int64, error) {
	rr, err := client.ResultRecords(r)
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	rows, err := connectors.Write(w, format, rr, connectors.WriteOptions{})
	if err != nil {
		return rows, fmt.Errorf("writing the result as %s: %w", format, err)
	}
	return rows, nil
}
