package main

import (
	"errors"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/coordinator/tee"
)

func init() { register(newIdentityCmd) }

func newIdentityCmd(c *cli) *cobra.Command {
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
				return usagef("--data-dir DIR is required")
			}
			inst, err := tee.Open(dataDir)
			if err != nil {
				if errors.Is(err, tee.ErrNotInitialised) {
					return withHint(err, "run: cleanroomd init --data-dir "+dataDir+" --attestation MODE")
				}
				return err
			}
			if inst.Mode().Simulated() {
				c.warnf("%s", simulatedWarning)
			}
			doc, err := inst.IdentityDocument()
			if err != nil {
				return err
			}
			out, err := doc.MarshalJSON()
			if err != nil {
				return err
			}
			_, err = c.stdout.Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the coordinator's data directory")
	return cmd
}
