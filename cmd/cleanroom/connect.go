package main

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/cliout"
)

// session is what a command that talks to the coordinator holds: the
// contract, the participant's key and an attested client.
type session struct {
	contract *contracts.Contract
	identity *cleanroom.Identity
	client   *client.Client
	url      string
}

// addSessionFlags defines --contract, --key and --coordinator.
func addSessionFlags(cmd *cobra.Command) {
	cmd.Flags().String("contract", "", "the contract (env CLEANROOM_CONTRACT)")
	cmd.Flags().String("key", "", "your secret key file (env CLEANROOM_KEY)")
	cmd.Flags().String("coordinator", "", "coordinator URL https://HOST:PORT (env CLEANROOM_COORDINATOR)")
}

// connect loads the contract (contractPath, or --contract when empty) and
// the key, and makes an attested client whose every connection checks the
// coordinator against the contract. Expired contracts load only when
// allowExpired (for reading history). Every missing flag (the session's and
// the command's own flags named in also) is reported at once.
func (c *cli) connect(s settings, contractPath string, allowExpired bool, also ...string) (*session, error) {
	need := append([]string{"key", "coordinator"}, also...)
	if contractPath == "" {
		need = append([]string{"contract"}, need...)
	}
	if err := s.required(need...); err != nil {
		return nil, err
	}
	if contractPath == "" {
		contractPath = s.get("contract")
	}
	keyPath, url := s.get("key"), s.get("coordinator")
	id, err := cleanroom.ReadIdentityFile(keyPath)
	if err != nil {
		return nil, err
	}
	ct, err := c.loadContract(contractPath, allowExpired)
	if err != nil {
		return nil, err
	}
	if ct.ParticipantByKey(id.Public().Fingerprint()) == nil {
		return nil, cliout.WithHint(fmt.Errorf("key %s (%s) is not a participant's in contract %s", keyPath, id.Public().Fingerprint().Short(), contractPath),
			"use your own participant key, the one whose public line the contract lists")
	}
	cl, err := client.New(url, client.Options{Contract: ct, Identity: id, OnAttested: func(a *client.Attestation) {
		c.Infof("coordinator %s attested: %s, measurement %x..., key %s", url, a.Claims.Platform, a.Claims.Measurement[:8], a.Document.PublicKeys[0].Fingerprint().Short())
	}})
	if err != nil {
		return nil, cliout.UsageError{Err: err}
	}
	return &session{contract: ct, identity: id, client: cl, url: url}, nil
}

// me returns the caller's participant in the contract.
func (s *session) me() *contracts.Participant {
	return s.contract.ParticipantByKey(s.identity.Public().Fingerprint())
}

// explain turns a coordinator refusal, or a connection that failed, into
// an error with its hint.
func explain(err error) error {
	var ce *client.ConnectionError
	if errors.As(err, &ce) {
		return cliout.WithHint(err, ce.Hint())
	}
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		e := fmt.Errorf("%s", apiErr.Message)
		if apiErr.Hint != "" {
			return cliout.WithHint(e, apiErr.Hint)
		}
		return e
	}
	return err
}

// isConflict reports a 409 refusal.
func isConflict(err error) bool {
	var apiErr *api.Error
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict
}
