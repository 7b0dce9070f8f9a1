// Command cleanroom is the participants' CLI: keys, contracts, attestation
// checks, dataset encryption and upload, runs, results and audits.
//
// Output rules (docs/cli.md): data goes to stdout, everything meant for a
// person goes to stderr with the prefix "cleanroom: "; errors are
// "cleanroom: error: ..." followed by an optional "cleanroom: hint: ..." line;
// warnings are "cleanroom: WARNING: ...". Exit status 0 means the command did
// all it was asked; 1 means it refused or failed; 2 means it was called
// wrongly.
package main

import (
	"io"
	"os"
	"sort"
	"time"

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
	// now is the clock of the commands that tell the time (audit serve);
	// nil means time.Now. Tests set it to look at a later day.
	now func() time.Time
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
		Use:   "cleanroom",
		Short: "Cleanroom participants' CLI: keys, contracts, attestation, datasets, runs, results, audits",
		Long: `cleanroom is the command every participant of a Cleanroom contract uses:
make keys, write and sign contracts, verify the coordinator's attestation,
encrypt and upload datasets, submit the algorithm, run it, fetch and verify
results, and audit the coordinator's log.

Environment: CLEANROOM_COORDINATOR, CLEANROOM_KEY and CLEANROOM_CONTRACT stand
in for --coordinator, --key and --contract.`,
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

// run executes the CLI and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := newCLI(stdin, stdout, stderr)
	return c.Execute(newRoot(c), args)
}

// newCLI returns the command-line context writing to these streams.
func newCLI(stdin io.Reader, stdout, stderr io.Writer) *cli {
	return &cli{Printer: cliout.Printer{Prog: "cleanroom", Stderr: stderr}, stdin: stdin, stdout: stdout, stderr: stderr}
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
