package scenario

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"cleanroom.dev/cleanroom/internal/durable"
)

// Main runs a scenario generator's command line and returns the exit code:
// 0 on success, 1 on failure (a mismatch included), 2 on a usage error.
//
//	gen [--rows N] [--seed S] [--format csv|parquet|both] [--k K] --out DIR
//	gen check [--expected FILE] [--suppressed N] RESULT
//	gen contract [--template FILE] [--set NAME=VALUE]... [--out FILE]
//	gen compare EXACT.csv PRIVATE.csv     (a private result beside the exact one)
//
// Data (a filled contract) goes to stdout, messages to stderr, errors as
// "NAME-gen: error: ...".
func Main(spec Spec, args []string, stdout, stderr io.Writer) int {
	prog := spec.Name + "-gen"
	var err error
	switch {
	case len(args) > 0 && args[0] == "check":
		err = checkCmd(spec, prog, args[1:], stderr)
	case len(args) > 0 && args[0] == "contract":
		err = contractCmd(spec, prog, args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "compare":
		err = compareCmd(prog, args[1:], stdout, stderr)
	default:
		err = generateCmd(spec, prog, args, stderr)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "%s: error: %v\n", prog, err)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: error: %v\n", prog, err)
		return 1
	}
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

func newFlagSet(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

func generateCmd(spec Spec, prog string, args []string, stderr io.Writer) error {
	fs := newFlagSet(prog, stderr, prog+" [--rows N] [--seed S] [--format csv|parquet|both] [--k K] --out DIR\n       "+
		prog+" check [--expected FILE] [--suppressed N] RESULT\n       "+
		prog+" contract [--template FILE] [--set NAME=VALUE]... [--out FILE]")
	rows := fs.Int64("rows", spec.DefaultRows, spec.RowsHelp)
	seed := fs.Uint64("seed", 1, "seed of the generated data (same seed and rows, same files)")
	format := fs.String("format", "both", "file format of each dataset: csv, parquet or both")
	k := fs.Int64("k", spec.DefaultK, "the contract's min_group_size, to mark expected groups as released or suppressed")
	out := fs.String("out", "", "output directory (created if needed)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))}
	}
	if *out == "" {
		return usageError{errors.New("no output directory: give --out DIR")}
	}
	if *rows < 1 {
		return usageError{fmt.Errorf("--rows must be at least 1, not %d", *rows)}
	}
	if *k < 0 {
		return usageError{fmt.Errorf("--k must not be negative, not %d", *k)}
	}
	formats, err := ParseFormats(*format)
	if err != nil {
		return usageError{fmt.Errorf("--format: %w", err)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := spec.Generate(ctx, Config{Dir: *out, Rows: *rows, Seed: *seed, Formats: formats, K: *k})
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted: nothing was written")
	}
	if err != nil {
		return err
	}
	for _, f := range sum.Files {
		fmt.Fprintf(stderr, "wrote %s\n", f)
	}
	for _, name := range sortedKeys(sum.Datasets) {
		fmt.Fprintf(stderr, "%s: %d rows\n", name, sum.Datasets[name])
	}
	fmt.Fprintf(stderr, "expected result: %d groups, %d released, %d below k=%d (suppressed)\n", sum.Groups, sum.Released, sum.Suppressed(), *k)
	return nil
}

func checkCmd(spec Spec, prog string, args []string, stderr io.Writer) error {
	fs := newFlagSet(prog+" check", stderr, prog+" check [--expected FILE] [--suppressed N] RESULT")
	expected := fs.String("expected", ExpectedFile, "the expected-results file the generator wrote")
	suppressed := fs.Int64("suppressed", -1, "the number of rows the clean room reports as suppressed (negative: not checked)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("give exactly one RESULT file (csv, parquet, arrow or jsonl, as `cleanroom result show --format ...` writes it)")}
	}
	result := fs.Arg(0)
	if err := Check(*expected, result, spec.ResultColumns, *suppressed); err != nil {
		return err
	}
	exp, err := ReadExpected(*expected, spec.ResultColumns)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s matches %s: %d rows released, %d groups suppressed\n", result, *expected, len(exp.Released), len(exp.Suppressed))
	return nil
}

func contractCmd(spec Spec, prog string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(prog+" contract", stderr, prog+" contract [--template FILE] [--set NAME=VALUE]... [--out FILE]\n\n"+
		"Fills the scenario's contract template (placeholders {{NAME}}). Placeholders: "+strings.Join(Placeholders(spec.ContractTemplate), ", "))
	tmplPath := fs.String("template", "", "template file (default: the scenario's contract.yaml.tmpl, built in)")
	outPath := fs.String("out", "", "write the contract to this file instead of stdout")
	values := map[string]string{}
	fs.Func("set", "NAME=VALUE: the value of placeholder {{NAME}} (repeat for each)", func(s string) error {
		name, value, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return fmt.Errorf("want NAME=VALUE, got %q", s)
		}
		if _, dup := values[name]; dup {
			return fmt.Errorf("%s is set twice", name)
		}
		values[name] = value
		return nil
	})
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))}
	}
	tmpl := spec.ContractTemplate
	if *tmplPath != "" {
		var err error
		if tmpl, err = os.ReadFile(*tmplPath); err != nil {
			return fmt.Errorf("reading the template: %w", err)
		}
	}
	filled, err := Fill(tmpl, values)
	if err != nil {
		return err
	}
	if *outPath == "" {
		_, err := stdout.Write(filled)
		return err
	}
	if err := durable.WriteFile(*outPath, filled, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", *outPath, err)
	}
	fmt.Fprintf(stderr, "wrote %s\n", filepath.Clean(*outPath))
	return nil
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
