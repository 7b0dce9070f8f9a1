package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/internal/cliout"
)

func newDatasetInspectCmd(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print an encrypted dataset's (or result's) envelope header without decrypting it",
		Long: `inspect reads an envelope file (docs/envelope.md) and prints its header: format
version, kind, contract id, dataset or run id, schema digest, HPKE suite,
segment size and count, sizes, the SHA-256 of the whole file (the ciphertext
digest named by upload statements) and the key id of each recipient (the
SHA-256 of the recipient's HPKE public key). It needs no key and decrypts
nothing, so it authenticates nothing either: a file that inspects cleanly may
still be refused when decrypted. A malformed file is an error naming the
field and its byte offset.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			info, err := envelope.Inspect(f)
			var layout *envelope.LayoutError
			switch {
			case errors.As(err, &layout):
				return cliout.WithHint(fmt.Errorf("%s: %w", args[0], err), "the file is truncated or has bytes appended; fetch or copy it again")
			case err != nil:
				return cliout.WithHint(fmt.Errorf("%s: %w", args[0], err), "the file is damaged or is not a Cleanroom envelope")
			}
			if asJSON {
				enc := json.NewEncoder(c.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					File string `json:"file"`
					*envelope.Info
				}{args[0], info})
			}
			printEnvelopeInfo(c.Stdout, args[0], info)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the header as JSON")
	return cmd
}

func printEnvelopeInfo(w io.Writer, file string, info *envelope.Info) {
	idLabel := "object id"
	switch info.Kind {
	case envelope.KindDataset.String():
		idLabel = "dataset id"
	case envelope.KindResult.String():
		idLabel = "run id"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "file\t%s\n", file)
	fmt.Fprintf(tw, "format\tcleanroom envelope version %d\n", info.Version)
	fmt.Fprintf(tw, "kind\t%s\n", info.Kind)
	fmt.Fprintf(tw, "contract id\t%s\n", info.ContractID)
	fmt.Fprintf(tw, "%s\t%s\n", idLabel, info.ObjectID)
	fmt.Fprintf(tw, "schema digest\t%s\n", info.SchemaDigest)
	fmt.Fprintf(tw, "hpke suite\t%s\n", info.HPKESuite)
	fmt.Fprintf(tw, "segment size\t%d bytes\n", info.SegmentSize)
	fmt.Fprintf(tw, "segments\t%d\n", info.Segments)
	fmt.Fprintf(tw, "header size\t%d bytes\n", info.HeaderSize)
	fmt.Fprintf(tw, "plaintext size\t%d bytes\n", info.PlaintextSize)
	fmt.Fprintf(tw, "ciphertext size\t%d bytes\n", info.CiphertextSize)
	fmt.Fprintf(tw, "ciphertext sha256\t%s\n", info.CiphertextSHA256)
	fmt.Fprintf(tw, "recipients\t%d\n", len(info.Recipients))
	for i, r := range info.Recipients {
		fmt.Fprintf(tw, "  recipient %d\tkey id %s\n", i+1, r.KeyID)
	}
	tw.Flush()
}
