package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"cleanroom.dev/cleanroom/cleanroom/atls"
)

// The kinds of ConnectionError.
var (
	// ErrUnreachable: no connection could be made (nothing listens at the
	// address, the host is unknown, the network is down, a timeout).
	ErrUnreachable = errors.New("cannot reach the coordinator")
	// ErrAttestationFailed: a connection was made, but the coordinator's
	// certificate or attestation evidence did not pass the client's
	// verification (against the contract's coordinator section, or for
	// authenticity). Send it nothing.
	ErrAttestationFailed = errors.New("the coordinator failed attestation")
	// ErrTLS: the TLS handshake failed for another reason, e.g. the
	// address is not a Cleanroom coordinator.
	ErrTLS = errors.New("TLS with the coordinator failed")
)

// ConnectionError reports a request that never reached the coordinator's
// API: what happened (Kind: ErrUnreachable, ErrAttestationFailed or
// ErrTLS), where, and the underlying error. errors.Is matches the kind.
type ConnectionError struct {
	URL  string
	Kind error
	Err  error
}

func (e *ConnectionError) Error() string {
	return fmt.Sprintf("%v at %s: %v", e.Kind, e.URL, e.Err)
}

func (e *ConnectionError) Unwrap() []error { return []error{e.Kind, e.Err} }

// Hint says what to do about it.
func (e *ConnectionError) Hint() string {
	switch e.Kind {
	case ErrUnreachable:
		return "is the coordinator running, and listening at " + e.URL + "? Check --coordinator (or CLEANROOM_COORDINATOR): it is the URL cleanroomd serve printed"
	case ErrAttestationFailed:
		return "the coordinator's evidence does not satisfy the contract's coordinator section (measurement, root, TCB, debug): send it nothing. If it was upgraded on purpose, the contract must pin the new measurement"
	}
	return "is " + e.URL + " a Cleanroom coordinator (https, attested TLS)?"
}

// connectionError classifies the error of a request that failed before an
// HTTP response came back. Cancellation is returned as it is.
func (c *Client) connectionError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && !isDialError(err) {
		return err
	}
	kind := error(nil)
	var rh tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.Is(err, atls.ErrCoordinatorRefused):
		kind = ErrAttestationFailed
	case isDialError(err):
		kind = ErrUnreachable
	case errors.As(err, &rh), errors.As(err, &alert), strings.Contains(err.Error(), "tls: "):
		kind = ErrTLS
	default:
		return err
	}
	return &ConnectionError{URL: c.base.String(), Kind: kind, Err: innermost(err)}
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// innermost drops the request's own wrapping ("Post https://...: ") and a
// dial's, so the message says the cause once.
func innermost(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && op.Err != nil {
		return op.Err
	}
	return err
}
