// Package cliout holds the output rules that cleanroom and cleanroomd share
// (docs/cli.md): data on stdout; messages for people on stderr, prefixed
// with the program's name; one error line, an optional hint line; exit
// status 0 (done), 1 (refused or failed) or 2 (called wrongly).
package cliout

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// CLI is a program's command line: its standard streams, the output rules
// of its messages, and the root command both binaries build the same way.
type CLI struct {
	Printer
	Stdin  io.Reader
	Stdout io.Writer
}

// New returns the command line of program prog on these streams.
func New(prog string, stdin io.Reader, stdout, stderr io.Writer) *CLI {
	return &CLI{Printer: Printer{Prog: prog, Stderr: stderr}, Stdin: stdin, Stdout: stdout}
}

// Root returns the program's root command, writing to the CLI's streams,
// with the sub-commands cmds (listed by the program's main, in the order
// they are given; help lists them sorted).
func (c *CLI) Root(short, long string, cmds ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{Use: c.Prog, Short: short, Long: long}
	root.SetIn(c.Stdin)
	root.SetOut(c.Stdout)
	root.SetErr(c.Stderr)
	root.AddCommand(cmds...)
	return root
}

// Printer writes a program's messages for people to stderr.
type Printer struct {
	Prog   string
	Stderr io.Writer
	// Hint, when set, suggests what to do about an error that carries no
	// hint of its own ("" for none): for errors many commands share, such
	// as a coordinator that cannot be reached.
	Hint func(error) string
}

// Infof prints "PROG: message".
func (p Printer) Infof(format string, args ...any) {
	fmt.Fprintf(p.Stderr, p.Prog+": "+format+"\n", args...)
}

// Warnf prints "PROG: WARNING: message".
func (p Printer) Warnf(format string, args ...any) {
	fmt.Fprintf(p.Stderr, p.Prog+": WARNING: "+format+"\n", args...)
}

// UsageError is a command called wrongly: exit status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// HintError carries a suggestion printed after the error.
type HintError struct {
	Err  error
	Hint string
}

func (e HintError) Error() string { return e.Err.Error() }
func (e HintError) Unwrap() error { return e.Err }

// WithHint attaches a hint to err.
func WithHint(err error, hint string) error { return HintError{err, hint} }

// SilentError is a refusal whose details the command already printed;
// only the exit status (1) is left to set.
type SilentError struct{ Msg string }

func (e SilentError) Error() string { return e.Msg }

// Execute runs root with args and returns the exit status, printing the
// error and its hint by the rules above. Cobra's own argument and flag
// errors count as usage errors.
func (p Printer) Execute(root *cobra.Command, args []string) int {
	root.SilenceUsage, root.SilenceErrors = true, true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{err} })
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var silent SilentError
	if errors.As(err, &silent) {
		return 1
	}
	msg := err.Error()
	fmt.Fprintf(p.Stderr, "%s: error: %s\n", p.Prog, strings.TrimSpace(msg))
	var hint HintError
	if errors.As(err, &hint) {
		fmt.Fprintf(p.Stderr, "%s: hint: %s\n", p.Prog, hint.Hint)
	} else if p.Hint != nil {
		if h := p.Hint(err); h != "" {
			fmt.Fprintf(p.Stderr, "%s: hint: %s\n", p.Prog, h)
		}
	}
	var usage UsageError
	if errors.As(err, &usage) || strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
		strings.HasPrefix(msg, "requires ") || strings.HasPrefix(msg, "unknown flag") || strings.Contains(msg, "required flag") {
		return 2
	}
	return 1
}
