package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/cliout"
	"cleanroom.dev/cleanroom/internal/durable"
)

func newModelCmd(c *cli) *cobra.Command {
	cmd := group("model", "Commit to, submit and fetch models (WebAssembly scalar functions)")

	var commitSalt string
	var plain bool
	commit := &cobra.Command{
		Use:   "commit FILE.wasm --salt FILE | --plain",
		Short: "Print the commitment a contract's models[].sha256 names for a module",
		Long: `commit prints the commitment to the exact bytes of FILE.wasm that a contract
names as models[].sha256. For a confidential model it is the salted commitment

  SHA-256("cleanroom/model-commitment/v1" || 0x00 || salt || module bytes)

whose 32-byte salt is kept in the salt file --salt names: written (mode 0600)
with a fresh salt when missing, read when it exists, so the same file always
gives the same commitment. Keep it as secret as the module: with it, anyone
could test a guess of the module against the contract. cleanroom model submit
needs it and sends it only to the attested coordinator, sealed with the
module. With --plain, commit prints the module's plain SHA-256, for a model
that is not confidential.`,
		Args: cobra.ExactArgs(1),
	}
	commit.Flags().StringVar(&commitSalt, "salt", "", "the salt file: read when it exists, written (0600) with a fresh salt when not")
	commit.Flags().BoolVar(&plain, "plain", false, "print the plain SHA-256 (a model that is not confidential)")
	commit.RunE = func(_ *cobra.Command, args []string) error {
		if plain == (commitSalt != "") {
			return cliout.Usagef("give exactly one of --salt FILE (a confidential model) and --plain")
		}
		module, err := readLimitedFile(args[0], api.MaxModelSize)
		if err != nil {
			return err
		}
		sum, created, err := cleanroom.ModelDigest(module, commitSalt)
		if err != nil {
			return err
		}
		if !plain {
			if created {
				c.Infof("wrote a fresh salt to %s (secret, mode 0600): keep it with the module; cleanroom model submit needs it", commitSalt)
			} else {
				c.Infof("using the salt in %s", commitSalt)
			}
			c.Infof("commitment to the %d bytes of %s: put it in the contract as models[].sha256, with confidential: true", len(module), args[0])
		}
		fmt.Fprintf(c.Stdout, "%x\n", sum)
		return nil
	}

	var name, submitSalt string
	submit := &cobra.Command{
		Use:   "submit FILE.wasm --name NAME --contract FILE --key NAME.key --coordinator URL [--salt FILE]",
		Short: "Submit the module of one of the contract's models",
		Long: `submit sends FILE.wasm, the module of the contract's model NAME, to the
attested coordinator. Only the model's provider may. A confidential model is
sealed to the attested coordinator key together with the salt of its
commitment (the salt file of cleanroom model commit, --salt), so only the
coordinator ever sees either besides you. The module must match the contract's commitment and the
model ABI of docs/models.md.`,
		Args: cobra.ExactArgs(1),
	}
	submit.Flags().StringVar(&name, "name", "", "the model's name in the contract (its SQL function name)")
	submit.Flags().StringVar(&submitSalt, "salt", "", "the salt file of the model's commitment (confidential models only)")
	addSessionFlags(submit)
	s := bindSettings(submit)
	submit.RunE = func(cmd *cobra.Command, args []string) error {
		ss, err := c.connect(s, "", false, "name")
		if err != nil {
			return err
		}
		defer ss.client.Close()
		m := ss.contract.Model(name)
		if m == nil || m.Name != name {
			return cliout.Usagef("the contract names no model %q (it names %s)", name, modelNames(ss.contract))
		}
		if me := ss.me(); me.ID != m.Provider {
			return fmt.Errorf("participant %q is not the provider of model %s (%s is)", me.ID, name, m.Provider)
		}
		module, err := readLimitedFile(args[0], api.MaxModelSize)
		if err != nil {
			return err
		}
		switch {
		case m.Confidential && submitSalt == "":
			return cliout.WithHint(cliout.Usagef("model %s is confidential: --salt FILE is required", name),
				"give the salt file cleanroom model commit wrote when it printed the model's commitment")
		case !m.Confidential && submitSalt != "":
			return cliout.WithHint(cliout.Usagef("model %s is not confidential: its sha256 is the plain SHA-256 of the module, and takes no --salt", name), "drop --salt")
		}
		var salt *cleanroom.Salt
		if submitSalt != "" {
			s, err := cleanroom.ReadSaltFile(submitSalt)
			if err != nil {
				return err
			}
			salt = &s
		}
		if err := m.Check(module, salt); err != nil {
			return cliout.WithHint(fmt.Errorf("%s: %w", args[0], err), "submit the exact module (and salt file) cleanroom model commit was run on")
		}
		rec, err := ss.client.SubmitModel(cmd.Context(), name, module, salt)
		if err != nil {
			return explain(err)
		}
		how := "as it is"
		if m.Confidential {
			how = "sealed to the attested coordinator"
		}
		if rec.Already {
			c.Infof("model %s: already present (same digest): submitted at log index %d, commitment %s; nothing changed", name, rec.LogIndex, rec.Commitment)
		} else {
			c.Infof("model %s submitted %s, commitment %s, log index %d", name, how, rec.Commitment, rec.LogIndex)
		}
		fmt.Fprintln(c.Stdout, rec.Commitment)
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
		ss, err := c.connect(gs, "", false, "name", "out")
		if err != nil {
			return err
		}
		defer ss.client.Close()
		ctx := cmd.Context()
		if _, err := ss.client.Attest(ctx); err != nil {
			return explain(err)
		}
		module, err := ss.client.Model(ctx, getName)
		if err != nil {
			return explain(err)
		}
		if err := durable.WriteFile(out, module, 0o600); err != nil {
			return err
		}
		c.Infof("model %s: %d bytes written to %s", getName, len(module), out)
		fmt.Fprintln(c.Stdout, out)
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
