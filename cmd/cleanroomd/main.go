// Command cleanroomd is the Cleanroom coordinator daemon: it runs inside an
// AMD SEV-SNP confidential VM (or on the simulated platform for
// development), holds the coordinator's sealed keys, and serves the
// participants over attested TLS.
//
// Output rules, as for the cleanroom CLI: data goes to stdout; everything
// meant for a person goes to stderr with the prefix "cleanroomd: "; errors
// are "cleanroomd: error: ..." followed by an optional "cleanroomd: hint:
// ..." line; warnings are "cleanroomd: WARNING: ...". Exit status 0 means
// the command did all it was asked; 1 means it refused or failed; 2 means it
// was called wrongly.
//
// Each sub-command lives in its own file and registers itself with
// register from an init function.
package main

import (
	"io"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/internal/cliout"
)

// commandFactories are filled by init functions of the files that define
// sub-commands, so each command lives in a file of its own.
var commandFactories []func(*cli) *cobra.Command

func register(f func(*cli) *cobra.Command) { commandFactories = append(commandFactories, f) }

// cli carries the streams a command writes to, and prints by the output
// rules of package cliout.
type cli struct {
	cliout.Printer
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// infof prints a message for a person on stderr.
func (c *cli) infof(format string, args ...any) { c.Infof(format, args...) }

// warnf prints a loud warning on stderr.
func (c *cli) warnf(format string, args ...any) { c.Warnf(format, args...) }

// The output rules' error kinds, under short local names.
type (
	usageError  = cliout.UsageError
	silentError = cliout.SilentError
)

var (
	usagef   = cliout.Usagef
	withHint = cliout.WithHint
)

func newRoot(c *cli) *cobra.Command {
	root := &cobra.Command{
		Use:   "cleanroomd",
		Short: "The Cleanroom coordinator daemon",
		Long: `cleanroomd is the Cleanroom coordinator. It runs inside an AMD SEV-SNP
confidential VM, keeps its keys sealed to that VM, proves what it runs with
attestation evidence, and serves the participants of signed contracts over
attested TLS.

"--attestation simulated" runs the same protocol on a fake AMD platform made
for the data directory: it protects nothing and exists for development,
tests and demos.`,
	}
	root.SetIn(c.stdin)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	cmds := make([]*cobra.Command, 0, len(commandFactories))
	for _, f := range commandFactories {
		cmds = append(cmds, f(c))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	return root
}

// run executes the daemon's command line and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := newCLI(stdin, stdout, stderr)
	return c.Execute(newRoot(c), args)
}

// newCLI returns the command-line context writing to these streams.
func newCLI(stdin io.Reader, stdout, stderr io.Writer) *cli {
	return &cli{Printer: cliout.Printer{Prog: "cleanroomd", Stderr: stderr}, stdin: stdin, stdout: stdout, stderr: stderr}
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
