package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/cliout"
)

// Flags that the environment may supply, and the variables that do.
var envFlags = map[string]string{
	"coordinator": "CLEANROOM_COORDINATOR",
	"key":         "CLEANROOM_KEY",
	"contract":    "CLEANROOM_CONTRACT",
}

// settings resolves the flags of a command: the flag when given, else (for
// the shared flags of envFlags) the environment variable, else "".
type settings struct {
	v   *viper.Viper
	cmd *cobra.Command
}

// bindSettings binds the flags of cmd named in envFlags to their
// environment variables. Call it after the flags are defined.
func bindSettings(cmd *cobra.Command) settings {
	v := viper.New()
	for name, env := range envFlags {
		if f := cmd.Flags().Lookup(name); f != nil {
			_ = v.BindPFlag(name, f)
			_ = v.BindEnv(name, env)
		}
	}
	return settings{v, cmd}
}

// get returns the value of a flag.
func (s settings) get(name string) string {
	if _, ok := envFlags[name]; ok {
		return s.v.GetString(name)
	}
	if f := s.cmd.Flags().Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// require returns the value of a flag, or a usage error naming the flag
// and its environment variable.
func (s settings) require(name string) (string, error) {
	if err := s.required(name); err != nil {
		return "", err
	}
	return s.get(name), nil
}

// required checks that every named flag has a value, and reports all the
// missing ones at once, each with its environment variable if it has one.
func (s settings) required(names ...string) error {
	return missingError(s.missing(names...))
}

// missing describes each named flag that has no value, with its
// environment variable if it has one.
func (s settings) missing(names ...string) []string {
	var missing []string
	for _, name := range names {
		if s.get(name) != "" {
			continue
		}
		what := "--" + name
		if f := s.cmd.Flags().Lookup(name); f != nil && f.Value.Type() == "string" {
			if arg := flagArg(name); arg != "" {
				what += " " + arg
			}
		}
		if env, ok := envFlags[name]; ok {
			what += " (or set " + env + ")"
		}
		missing = append(missing, what)
	}
	return missing
}

// missingError is the usage error naming everything missing at once, or
// nil.
func missingError(missing []string) error {
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return cliout.Usagef("%s is required", missing[0])
	}
	return cliout.Usagef("missing %d required flags: %s", len(missing), strings.Join(missing, ", "))
}

// flagArg names a flag's value as its usage line does in the command's
// Use line, e.g. FILE for --contract.
func flagArg(name string) string {
	switch name {
	case "contract", "out", "salt", "statement", "envelope", "coordinator-identity", "state":
		return "FILE"
	case "key":
		return "NAME.key"
	case "coordinator":
		return "URL"
	case "dataset", "run":
		return "ID"
	case "name":
		return "NAME"
	case "reason":
		return "TEXT"
	}
	return ""
}

// contractArg returns the contract file a command takes as its argument:
// the argument when given, else CLEANROOM_CONTRACT.
func contractArg(args []string) (string, error) {
	if p := contractArgOr(args); p != "" {
		return p, nil
	}
	return "", cliout.Usagef("give the contract file as the argument (or set CLEANROOM_CONTRACT)")
}

// contractArgOr returns the contract file of the argument or
// CLEANROOM_CONTRACT, or "" when neither gives one.
func contractArgOr(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return os.Getenv(envFlags["contract"])
}

// missingContractArg describes a missing contract argument.
const missingContractArg = "the contract file as the argument (or set CLEANROOM_CONTRACT)"

// datasetOf returns the dataset id of the contract at path, or a usage
// error that lists the contract's datasets.
func datasetOf(ct *contracts.Contract, path, id string) (*contracts.Dataset, error) {
	if ds := ct.Dataset(id); ds != nil {
		return ds, nil
	}
	ids := make([]string, len(ct.Datasets))
	for i, ds := range ct.Datasets {
		ids[i] = ds.ID
	}
	return nil, cliout.Usagef("contract %s has no dataset %q; its datasets are: %s", path, id, strings.Join(ids, ", "))
}
