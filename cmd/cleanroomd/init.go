package main

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/cliout"
)

// simulatedWarning is printed by every command that runs or initialises a
// simulated coordinator.
const simulatedWarning = "SIMULATED attestation: the keys are sealed with a local key file and the evidence is signed by a fake vendor root made for this data directory. It protects nothing; use it only for development, tests and demos."

func newInitCmd(c *cliout.CLI) *cobra.Command {
	var dataDir, mode string
	cmd := &cobra.Command{
		Use:   "init --data-dir DIR --attestation MODE",
		Short: "Make the coordinator's keys and seal them in DIR",
		Long: `init makes the coordinator's identity (an Ed25519 key for COSE, TLS and log
checkpoints, and an HPKE key for receiving data keys) and seals it in DIR,
which must be missing or empty.

  sev-snp    the keys are sealed with a key the SEV-SNP firmware derives from
             this chip, the VM's launch measurement, its guest policy and the
             platform TCB; only the same code on the same machine can open
             them. Run it inside the confidential VM.
  tdx, nitro, cca
             the evidence comes from the platform (configfs-tsm on TDX and
             CCA, the Nitro Secure Module on Nitro). These platforms give a
             guest no sealing key: the keys live only in memory, DIR records
             that, and a restart needs a new, empty DIR (docs/deploy-*.md).
  simulated, sev-snp-simulated, tdx-simulated, nitro-simulated, cca-simulated
             a throw-away vendor root is made for DIR and the keys are sealed
             with a local key file. It protects nothing.

It prints the coordinator's public key on stdout; "cleanroomd identity"
prints the identity document that participants verify and pin.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if dataDir == "" {
				return cliout.Usagef("--data-dir DIR is required")
			}
			if mode == "" {
				return cliout.Usagef("--attestation MODE is required (sev-snp, tdx, nitro, cca, or one of them followed by -simulated)")
			}
			m, err := coordinator.ParseMode(mode)
			if err != nil {
				return cliout.UsageError{Err: err}
			}
			if m.Simulated() {
				c.Warnf("%s", simulatedWarning)
			}
			id, err := coordinator.Init(dataDir, m)
			if err != nil {
				switch {
				case errors.Is(err, coordinator.ErrAlreadyInitialised):
					return cliout.WithHint(err, "cleanroomd identity --data-dir "+dataDir+" prints the existing identity")
				case errors.Is(err, coordinator.ErrNotEmpty):
					return cliout.WithHint(err, "choose a new directory")
				}
				return err
			}
			fmt.Fprintln(c.Stdout, id.PublicKey.String())
			c.Infof("initialised %s for attestation %s", dataDir, id.Mode)
			c.Infof("coordinator key fingerprint %s", id.PublicKey.Fingerprint())
			c.Infof("measurement %s", hex.EncodeToString(id.Document.Measurement[:]))
			if root := id.Document.SimulatedRootSHA256; root != nil {
				c.Infof("simulated_root_sha256 %s", hex.EncodeToString(root[:]))
			}
			c.Infof("a contract pins it with: coordinator: %s", id.Reference.FlowYAML())
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory to create (missing or empty)")
	cmd.Flags().StringVar(&mode, "attestation", "", "attestation mode: sev-snp, tdx, nitro, cca, or NAME-simulated (simulated = sev-snp-simulated)")
	return cmd
}
