// Command cleanroom is the participants' CLI: keys, contracts, attestation
// checks, dataset encryption and upload, runs, results and audits. Each
// command parses its flags, makes one call to the client SDK
// (cleanroom/client and the packages beside it) and prints the outcome.
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
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/internal/cliout"
)

// cli is the command line on its streams, by the output rules of package
// cliout.
type cli struct {
	*cliout.CLI
	// now is the clock of the commands that tell the time (audit serve);
	// nil means time.Now. Tests set it to look at a later day.
	now func() time.Time
	// simulatedWarned records that the command has warned that its
	// coordinator is simulated: one such warning per command.
	simulatedWarned bool
}

// run executes the CLI and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := newCLI(stdin, stdout, stderr)
	root := newRoot(c)
	c.SetVersion(root, func() (string, error) { return cliout.ReadBuild().Lines("cleanroom"), nil })
	return c.Execute(root, args)
}

// newCLI returns the command-line context writing to these streams.
func newCLI(stdin io.Reader, stdout, stderr io.Writer) *cli {
	c := &cli{CLI: cliout.New("cleanroom", stdin, stdout, stderr)}
	c.Hint = func(err error) string {
		var ce *client.ConnectionError
		if errors.As(err, &ce) {
			return ce.Hint()
		}
		return ""
	}
	return c
}

// newRoot lists every command.
func newRoot(c *cli) *cobra.Command {
	return c.Root("Cleanroom participants' CLI: keys, contracts, attestation, datasets, runs, results, audits",
		`cleanroom is the command every participant of a Cleanroom contract uses:
make keys, write and sign contracts, verify the coordinator's attestation,
encrypt and upload datasets, submit the algorithm, run it, fetch and verify
results, and audit the coordinator's log.

Environment: CLEANROOM_COORDINATOR, CLEANROOM_KEY and CLEANROOM_CONTRACT stand
in for --coordinator, --key and --contract.`,
		newKeygenCmd(c),
		group("contract", "Write, hash, inspect, sign, verify and submit contracts",
			newContractInitCmd(c), newContractHashCmd(c), newContractShowCmd(c),
			newContractSignCmd(c), newContractVerifyCmd(c), newContractSubmitCmd(c),
			newContractSuspendCmd(c), newContractResumeCmd(c)),
		group("coordinator", "Look at a coordinator", newCoordinatorInfoCmd(c)),
		group("attestation", "Verify attestation evidence of a coordinator", newAttestationVerifyCmd(c)),
		group("dataset", "Check, encrypt, upload and inspect datasets",
			newDatasetCheckCmd(c), newDatasetEncryptCmd(c), newDatasetUploadCmd(c), newDatasetInspectCmd(c), newDatasetWithdrawCmd(c)),
		group("algorithm", "Check, commit to and submit the agreed algorithm",
			newAlgorithmCheckCmd(c), newAlgorithmCommitCmd(c), newAlgorithmSubmitCmd(c)),
		newModelCmd(c),
		newRunCmd(c),
		newStatusCmd(c),
		group("result", "Fetch, verify and decrypt run results",
			newResultGetCmd(c), newResultVerifyCmd(c), newResultShowCmd(c)),
		group("audit", "Verify the coordinator's audit log and look at what was verified",
			newAuditLogCmd(c), newAuditServeCmd(c)),
	)
}

// group is a command that only holds sub-commands.
func group(use, short string, cmds ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short}
	g.AddCommand(cmds...)
	return g
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
