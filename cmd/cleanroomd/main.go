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
	"io"
	"os"

	"cleanroom.dev/cleanroom/internal/cliout"
)

// run executes the daemon's command line and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := cliout.New("cleanroomd", stdin, stdout, stderr)
	root := c.Root("The Cleanroom coordinator daemon",
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
	return c.Execute(root, args)
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
