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
	fmt.Fprintf(c.stderr, "cleanroom: "+format+"\n", args...)
}

// warnf prints a loud warning on stderr.
func (c *cli) warnf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "cleanroom: WARNING: "+format+"\n", args...)
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

// silentError is a refusal whose details the command already printed; only
// the exit status is left to set.
type silentError struct{ msg string }

func (e silentError) Error() string { return e.msg }

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

// run executes the CLI and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(c)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var silent silentError
	if errors.As(err, &silent) {
		return 1
	}
	msg := err.Error()
	fmt.Fprintf(stderr, "cleanroom: error: %s\n", strings.TrimSpace(msg))
	var hint hintError
	if errors.As(err, &hint) {
		fmt.Fprintf(stderr, "cleanroom: hint: %s\n", hint.hint)
	}
	var usage usageError
	if errors.As(err, &usage) || strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
		strings.HasPrefix(msg, "requires ") || strings.HasPrefix(msg, "unknown flag") || strings.Contains(msg, "required flag") {
		return 2
	}
	return 1
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
