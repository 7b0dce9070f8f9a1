package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"cleanroom.dev/cleanroom/internal/cliout"
)

// Flags that the environment may supply, and the variables that do.
var envFlags = map[string]string{
	"coordinator": "CLEANROOM_COORDINATOR",
	"key":         "CLEANROOM_KEY",
	"contract":    "CLEANROOM_CONTRACT",
}

// settings resolves the shared flags of a command: the flag when given, else
// the environment variable, else "".
type settings struct{ v *viper.Viper }

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
	return settings{v}
}

// get returns the value of a shared flag.
func (s settings) get(name string) string { return s.v.GetString(name) }

// require returns the value of a shared flag, or a usage error naming the
// flag and its environment variable.
func (s settings) require(name string) (string, error) {
	val := s.get(name)
	if val == "" {
		if env, ok := envFlags[name]; ok {
			return "", cliout.Usagef("--%s is required (or set %s)", name, env)
		}
		return "", cliout.Usagef("--%s is required", name)
	}
	return val, nil
}
