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
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// commandFactories are filled by init functions of the files that define
// sub-commands, so each command lives in a file of its own.
var commandFactories []func(*cli) *cobra.Command

func register(f func(*cli) *cobra.Command) { commandFactories = append(commandFactories, f) }

// cli carries the streams a command writes to.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// infof prints a message for a person on stderr.
func (c *cli) infof(format string, args ...any) {
	fmt.Fprintf(c.stderr, "cleanroomd: "+format+"\n", args...)
}

// warnf prints a loud warning on stderr.
func (c *cli) warnf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "cleanroomd: WARNING: "+format+"\n", args...)
}

// usageError is a command called wrongly: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// hintError carries a suggestion printed after the error.
type hintError struct {
	err  error
	hint string
}

func (e hintError) Error() string { return e.err.Error() }
func (e hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return hintError{err, hint} }

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
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(c.stdin)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
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
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(c)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	msg := err.Error()
	fmt.Fprintf(stderr, "cleanroomd: error: %s\n", strings.TrimSpace(msg))
	var hint hintError
	if errors.As(err, &hint) {
		fmt.Fprintf(stderr, "cleanroomd: hint: %s\n", hint.hint)
	}
	var usage usageError
	if errors.As(err, &usage) || strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
		strings.HasPrefix(msg, "requires ") || strings.HasPrefix(msg, "unknown flag") || strings.Contains(msg, "required flag") {
		return 2
	}
	return 1
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
