package main

import (
	"errors"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/cliout"
)

func newIdentityCmd(c *cliout.CLI) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "identity --data-dir DIR",
		Short: "Print the coordinator's identity document (JSON)",
		Long: `identity unseals the coordinator's keys in DIR, makes fresh attestation
evidence binding its public key, and prints the identity document on stdout:

  version                 1
  platform                sev-snp or sev-snp-simulated
  measurement             the launch measurement (hex) a contract pins
  simulated_root_sha256   (simulated only) the fake root's hash a contract pins
  public_keys             the coordinator's public key
  evidence                the attestation evidence (base64)

Participants check it with "cleanroom attestation verify --identity FILE".`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if dataDir == "" {
				return cliout.Usagef("--data-dir DIR is required")
			}
			id, err := coordinator.ReadIdentity(dataDir)
			if err != nil {
				if errors.Is(err, coordinator.ErrNotInitialised) {
					return cliout.WithHint(err, "run: cleanroomd init --data-dir "+dataDir+" --attestation MODE")
				}
				return err
			}
			if id.Mode.Simulated() {
				c.Warnf("%s", simulatedWarning)
			}
			out, err := id.Document.MarshalJSON()
			if err != nil {
				return err
			}
			_, err = c.Stdout.Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the coordinator's data directory")
	return cmd
}
