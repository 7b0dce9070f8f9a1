package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/envelope"
)

func init() {
	register(newDatasetCmd)
	datasetCommands = append(datasetCommands, newDatasetInspectCmd)
}

// datasetCommands are the sub-commands of "cleanroom dataset". Each file
// that defines one appends its factory in an init function.
var datasetCommands []func(*cli) *cobra.Command

func newDatasetCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dataset",
		Short: "Encrypt, upload and inspect datasets",
	}
	for _, f := range datasetCommands {
		cmd.AddCommand(f(c))
	}
	return cmd
}

// envelopeInfo is what inspect reports about an envelope file.
type envelopeInfo struct {
	File             string          `json:"file"`
	Version          int             `json:"version"`
	Kind             string          `json:"kind"`
	ContractID       string          `json:"contract_id"`
	ObjectID         string          `json:"object_id"`
	SchemaDigest     string          `json:"schema_digest"`
	HPKESuite        string          `json:"hpke_suite"`
	SegmentSize      int             `json:"segment_size"`
	Segments         int64           `json:"segments"`
	HeaderSize       int             `json:"header_size"`
	PlaintextSize    int64           `json:"plaintext_size"`
	CiphertextSize   int64           `json:"ciphertext_size"`
	CiphertextSHA256 string          `json:"ciphertext_sha256"`
	Recipients       []recipientInfo `json:"recipients"`
}

type recipientInfo struct {
	KeyID string `json:"key_id"`
}

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
			info, err := inspectEnvelope(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			printEnvelopeInfo(c.stdout, info)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the header as JSON")
	return cmd
}

// inspectEnvelope reads the file once, parsing the header and hashing every
// byte, and checks that the body's length fits the segment structure.
func inspectEnvelope(path string) (*envelopeInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	r := bufio.NewReaderSize(io.TeeReader(f, h), 1<<20)
	hdr, err := envelope.ParseHeader(r)
	if err != nil {
		return nil, withHint(fmt.Errorf("%s: %w", path, err), "the file is damaged or is not a Cleanroom envelope")
	}
	body, err := io.Copy(io.Discard, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	layout, err := envelope.BodyLayout(body, hdr.SegmentSize, hdr.Len())
	if err != nil {
		return nil, withHint(fmt.Errorf("%s: %w", path, err), "the file is truncated or has bytes appended; fetch or copy it again")
	}
	info := &envelopeInfo{
		File:             path,
		Version:          hdr.Version,
		Kind:             hdr.Kind.String(),
		ContractID:       hex.EncodeToString(hdr.ContractID[:]),
		ObjectID:         hdr.ObjectID,
		SchemaDigest:     hex.EncodeToString(hdr.SchemaDigest[:]),
		HPKESuite:        "ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM",
		SegmentSize:      hdr.SegmentSize,
		Segments:         layout.Segments,
		HeaderSize:       hdr.Len(),
		PlaintextSize:    layout.PlaintextSize,
		CiphertextSize:   int64(hdr.Len()) + body,
		CiphertextSHA256: hex.EncodeToString(h.Sum(nil)),
	}
	for _, s := range hdr.Recipients {
		info.Recipients = append(info.Recipients, recipientInfo{KeyID: hex.EncodeToString(s.KeyID[:])})
	}
	return info, nil
}

func printEnvelopeInfo(w io.Writer, info *envelopeInfo) {
	idLabel := "object id"
	switch info.Kind {
	case envelope.KindDataset.String():
		idLabel = "dataset id"
	case envelope.KindResult.String():
		idLabel = "run id"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "file\t%s\n", info.File)
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
