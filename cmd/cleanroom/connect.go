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
// allowExpired (for reading history).
func (c *cli) connect(s settings, contractPath string, allowExpired bool) (*session, error) {
	var err error
	if contractPath == "" {
		if contractPath, err = s.require("contract"); err != nil {
			return nil, err
		}
	}
	keyPath, err := s.require("key")
	if err != nil {
		return nil, err
	}
	url, err := s.require("coordinator")
	if err != nil {
		return nil, err
	}
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

// explain turns a coordinator refusal into an error with its hint.
func explain(err error) error {
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
