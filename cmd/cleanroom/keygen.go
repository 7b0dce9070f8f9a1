package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/internal/cliout"
)

func newKeygenCmd(c *cli) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out NAME",
		Short: "Make a participant key pair: NAME.key (secret, 0600) and NAME.pub",
		Long: `keygen makes a participant key pair: an Ed25519 signing key and an HPKE
(ML-KEM-768+X25519) encryption key. It writes NAME.key (secret, mode 0600) and
NAME.pub (the one public line that goes into a contract), prints the public
line on stdout and the fingerprint on stderr. It never overwrites a file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return cliout.Usagef("--out NAME is required")
			}
			id, err := cleanroom.GenerateIdentity()
			if err != nil {
				return err
			}
			keyPath, pubPath, err := cleanroom.WriteIdentityFiles(out, id)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Stdout, id.Public().String())
			c.Infof("wrote %s (secret, mode 0600) and %s", keyPath, pubPath)
			c.Infof("fingerprint %s", id.Public().Fingerprint())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "base name of the key files (writes NAME.key and NAME.pub)")
	return cmd
}
