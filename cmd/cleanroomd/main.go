// Command cleanroomd is the Cleanroom coordinator daemon: it runs inside a
// confidential VM (AMD SEV-SNP, Intel TDX, AWS Nitro Enclaves or Arm CCA,
// or a simulated platform for development), holds the coordinator's sealed
// keys, and serves the participants over attested TLS.
//
// Output rules, as for the cleanroom CLI: data goes to stdout; everything
// meant for a person goes to stderr with the prefix "cleanroomd: "; errors
// are "cleanroomd: error: ..." followed by an optional "cleanroomd: hint:
// ..." line; warnings are "cleanroomd: WARNING: ...". Exit status 0 means
// the command did all it was asked; 1 means it refused or failed; 2 means it
// was called wrongly.
//
// Each sub-command lives in its own file; run lists them. The daemon
// itself is coordinator.Serve.
package main

import (
	"encoding/hex"
	"io"
	"os"

	"cleanroom.dev/cleanroom/coordinator"
	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/internal/cliout"
)

// run executes the daemon's command line and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := cliout.New("cleanroomd", stdin, stdout, stderr)
	root := newRoot(c)
	c.SetVersion(root, version)
	return c.Execute(root, args)
}

// newRoot lists every command.
func newRoot(c *cliout.CLI) *cobra.Command {
	return c.Root("The Cleanroom coordinator daemon",
		`cleanroomd is the Cleanroom coordinator. It runs inside a confidential VM,
keeps its keys sealed to that VM, proves what it runs with attestation
evidence, and serves the participants of signed contracts over attested TLS.

"--attestation simulated" runs the same protocol on a fake AMD platform made
for the data directory: it protects nothing and exists for development,
tests and demos.`,
		newInitCmd(c),
		newIdentityCmd(c),
		newServeCmd(c),
	)
}

// version describes this build of the daemon: the module and VCS revision,
// the software version its coordinator.started events record, and the
// SHA-384 of this executable, which is the MEASUREMENT its simulated
// platform reports (a real platform measures the whole VM image instead:
// docs/deploy-sev-snp.md).
func version() (string, error) {
	m, err := coordinator.ExecutableMeasurement()
	if err != nil {
		return "", err
	}
	return cliout.ReadBuild().Lines("cleanroomd",
		[2]string{"software", coordinator.Version},
		[2]string{"measurement", hex.EncodeToString(m[:]) + " (SHA-384 of this executable: the simulated platform's MEASUREMENT)"}), nil
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
