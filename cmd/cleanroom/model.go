package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/contracts"
)

func init() { register(newModelCmd) }

// saltPath is where a module's commitment salt is kept by default.
func saltPath(module, flag string) string {
	if flag != "" {
		return flag
	}
	return module + ".salt"
}

// readSalt reads a salt file: 64 hex digits and an optional newline.
func readSalt(path string) ([]byte, error) {
	b, err := readLimitedFile(path, 1<<10)
	if err != nil {
		return nil, err
	}
	salt, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(salt) != cleanroom.ModelSaltSize {
		return nil, fmt.Errorf("%s is not a model salt (%d hex digits)", path, 2*cleanroom.ModelSaltSize)
	}
	return salt, nil
}

func newModelCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Commit to, submit and fetch models (WebAssembly scalar functions)"}

	var commitSalt string
	var plain bool
	commit := &cobra.Command{
		Use:   "commit FILE.wasm [--salt FILE] [--plain]",
		Short: "Print the commitment a contract's models[].sha256 names for a module",
		Long: `commit prints the commitment to FILE.wasm that goes into the contract's
models[].sha256. For a confidential model (the default) it is a salted
commitment: a fresh 32-byte salt is written to FILE.wasm.salt (or --salt),
which you keep with the module and which only the coordinator receives, inside
the sealed submission; nobody else can test a guess of the module against the
commitment. An existing salt file is reused, so the command is repeatable.
With --plain it prints the module's plain SHA-256, for a model that is not
confidential.`,
		Args: cobra.ExactArgs(1),
	}
	commit.Flags().StringVar(&commitSalt, "salt", "", "salt file (default FILE.wasm.salt)")
	commit.Flags().BoolVar(&plain, "plain", false, "print the plain SHA-256 (a model that is not confidential)")
	commit.RunE = func(_ *cobra.Command, args []string) error {
		module, err := readLimitedFile(args[0], api.MaxModelSize)
		if err != nil {
			return err
		}
		if plain {
			fmt.Fprintf(c.stdout, "%x\n", cleanroom.ModelCommitment(nil, module))
			return nil
		}
		path := saltPath(args[0], commitSalt)
		salt, err := readSalt(path)
		if errors.Is(err, fs.ErrNotExist) {
			salt = cleanroom.NewModelSalt()
			if err := cleanroom.WriteFileAtomic(path, []byte(hex.EncodeToString(salt)+"\n"), 0o600); err != nil {
				return err
			}
			c.infof("new salt written to %s: keep it with the module, and share it with nobody", path)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%x\n", cleanroom.ModelCommitment(salt, module))
		return nil
	}

	var name, submitSalt string
	submit := &cobra.Command{
		Use:   "submit FILE.wasm --name NAME [--salt FILE] --contract FILE --key NAME.key --coordinator URL",
		Short: "Submit the module of one of the contract's models",
		Long: `submit sends FILE.wasm, the module of the contract's model NAME, to the
attested coordinator. Only the model's provider may. A confidential model is
sealed to the attested coordinator key together with the salt of its
commitment (FILE.wasm.salt, or --salt), so only the coordinator ever sees the
module besides you. The module must match the contract's commitment and the
model ABI of docs/models.md.`,
		Args: cobra.ExactArgs(1),
	}
	submit.Flags().StringVar(&name, "name", "", "the model's name in the contract (its SQL function name)")
	submit.Flags().StringVar(&submitSalt, "salt", "", "salt file of a confidential model (default FILE.wasm.salt)")
	addSessionFlags(submit)
	s := bindSettings(submit)
	submit.RunE = func(cmd *cobra.Command, args []string) error {
		if name == "" {
			return usagef("--name NAME is required: the model's name in the contract")
		}
		ss, err := c.connect(s, "", false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		m := ss.contract.Model(name)
		if m == nil || m.Name != name {
			return fmt.Errorf("the contract names no model %q (it names %s)", name, modelNames(ss.contract))
		}
		if me := ss.me(); me.ID != m.Provider {
			return fmt.Errorf("participant %q is not the provider of model %s (%s is)", me.ID, name, m.Provider)
		}
		module, err := readLimitedFile(args[0], api.MaxModelSize)
		if err != nil {
			return err
		}
		var salt []byte
		if m.Confidential {
			if salt, err = readSalt(saltPath(args[0], submitSalt)); err != nil {
				return withHint(err, "a confidential model's salt is made by cleanroom model commit, next to the module")
			}
		}
		if sum := cleanroom.ModelCommitment(salt, module); sum != m.SHA256 {
			return withHint(fmt.Errorf("%s (with its salt) commits to %x; the contract approves %x for model %s", args[0], sum, m.SHA256, name),
				"submit the exact module (and salt) that cleanroom model commit was run on")
		}
		ctx := cmd.Context()
		if err := c.attested(ctx, ss); err != nil {
			return err
		}
		rec, err := ss.client.SubmitModel(ctx, name, module, salt)
		if err != nil {
			return explain(err)
		}
		how := "as it is"
		if m.Confidential {
			how = "sealed to the attested coordinator"
		}
		c.infof("model %s submitted %s, commitment %s, log index %d", name, how, rec.Commitment, rec.LogIndex)
		fmt.Fprintln(c.stdout, rec.Commitment)
		return nil
	}

	var getName, out string
	get := &cobra.Command{
		Use:   "get --name NAME --out FILE --contract FILE --key NAME.key --coordinator URL",
		Short: "Fetch a submitted model's module (a confidential one: its provider only)",
		Args:  cobra.NoArgs,
	}
	get.Flags().StringVar(&getName, "name", "", "the model's name in the contract")
	get.Flags().StringVar(&out, "out", "", "file to write the module to")
	addSessionFlags(get)
	gs := bindSettings(get)
	get.RunE = func(cmd *cobra.Command, _ []string) error {
		if getName == "" || out == "" {
			return usagef("--name NAME and --out FILE are required")
		}
		ss, err := c.connect(gs, "", false)
		if err != nil {
			return err
		}
		defer ss.client.Close()
		ctx := cmd.Context()
		if err := c.attested(ctx, ss); err != nil {
			return err
		}
		module, err := ss.client.Model(ctx, getName)
		if err != nil {
			return explain(err)
		}
		if err := cleanroom.WriteFileAtomic(out, module, 0o600); err != nil {
			return err
		}
		c.infof("model %s: %d bytes written to %s", getName, len(module), out)
		fmt.Fprintln(c.stdout, out)
		return nil
	}
	cmd.AddCommand(commit, submit, get)
	return cmd
}

func modelNames(ct *contracts.Contract) string {
	if len(ct.Models) == 0 {
		return "no model"
	}
	names := make([]string, len(ct.Models))
	for i, m := range ct.Models {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}
