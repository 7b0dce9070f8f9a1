package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/cliout"
)

func newResultVerifyCmd(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify FILE --contract FILE [--json]",
		Short: "Verify a result bundle offline, from the platform's root to the encrypted result",
		Long: `verify checks a result bundle (written by cleanroom result get) against the
contract, offline, and prints each step with its outcome (docs/bundle.md):

  evidence          the coordinator's attestation is genuine (AMD's root, or the
                    contract's pinned simulated root), meets the contract's
                    coordinator policy, and binds the coordinator key
  statement         the result statement is signed by that key and names this
                    contract, its algorithm, datasets and recipients
  log               both run events are in the coordinator's audit log under a
                    checkpoint signed by that key
  entries           the run.started and run.finished events agree with the
                    statement
  uploads           each dataset's upload statement is signed by its provider
                    and names the ciphertext and rows the run used
  encrypted result  the encrypted result is the one the statement names, sealed
                    to exactly the contract's recipients

It stops at the first step that fails and exits 0 only if all pass. It needs
no key, and so cannot check the result itself: the statement names only a
salted commitment to it, whose salt is inside the encrypted result.
cleanroom result show decrypts and checks it.

With --json, stdout carries one JSON object: each step with its status
(passed, failed, not checked) and detail, and once all passed what the
bundle proves (run, rows, result commitment, log indices).`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().String("contract", "", "the contract the result was produced under (env CLEANROOM_CONTRACT)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the steps and the outcome as JSON")
	s := bindSettings(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		contractPath, err := s.require("contract")
		if err != nil {
			return err
		}
		ct, err := c.loadContract(contractPath, true)
		if err != nil {
			return err
		}
		if !asJSON {
			_, err = c.verifyResult(args[0], ct, nil, c.Stdout)
			return err
		}
		var r *bundle.Report
		data, err := readLimitedFile(args[0], client.MaxBundleSize)
		if err == nil {
			r, err = client.VerifyResult(data, ct, nil)
		}
		if werr := writeJSON(c.Stdout, verificationJSON(args[0], r, false, err)); werr != nil {
			return werr
		}
		if err != nil {
			return fmt.Errorf("%s does not verify: %w", args[0], err)
		}
		return nil
	}
	return cmd
}

// verifyResult reads a bundle file and verifies it (client.VerifyResult),
// printing each step to steps (nil prints nothing), and returns the report
// of a bundle that passed every step.
func (c *cli) verifyResult(path string, ct *contracts.Contract, recipient *cleanroom.Identity, steps io.Writer) (*bundle.Report, error) {
	data, err := readLimitedFile(path, client.MaxBundleSize)
	if err != nil {
		return nil, err
	}
	r, err := client.VerifyResult(data, ct, recipient)
	if steps != nil && r != nil {
		printSteps(steps, r, recipient != nil)
	}
	var ve *bundle.VerifyError
	switch {
	case errors.As(err, &ve):
		return nil, cliout.WithHint(fmt.Errorf("%s does not verify: %w", path, err), hintFor(ve))
	case errors.Is(err, bundle.ErrMalformed):
		return nil, cliout.WithHint(fmt.Errorf("%s: %w", path, err), "a result bundle is the file cleanroom result get writes")
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := r.Statement
	c.Infof("verified: run %s (run %d of contract %s) on platform %s: %s kept, %d suppressed, result commitment %x",
		s.RunID, s.RunNumber, ct.ID(), r.Claims.Platform, plural(s.RowsKept, "row"), s.RowsSuppressed, s.ResultCommitment)
	return r, nil
}

// printSteps writes one line per step: ✓ or ✗ and what it established or
// why it failed, then "-" for the steps not reached.
func printSteps(w io.Writer, r *bundle.Report, decrypt bool) {
	done := map[bundle.Step]bool{}
	for _, s := range r.Steps {
		mark := "✓"
		if !s.OK {
			mark = "✗"
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, s.Step, s.Detail)
		done[s.Step] = true
	}
	for _, s := range bundle.Steps {
		if done[s] || (s == bundle.StepDecryption && !decrypt) {
			continue
		}
		fmt.Fprintf(w, "- %s: not checked\n", s)
	}
}

// hintFor suggests what to do about a failed step.
func hintFor(ve *bundle.VerifyError) string {
	switch ve.Step {
	case bundle.StepEvidence:
		return "the coordinator that made this bundle does not satisfy the contract's coordinator section, or the bundle was altered; do not trust the result"
	case bundle.StepDecryption:
		if ve.Part == bundle.PartRecipientKey {
			return "only the contract's result recipients can decrypt; pass a recipient's key with --key"
		}
	}
	return "the bundle was altered or the coordinator misbehaved; do not trust the result, and keep the bundle as evidence"
}
