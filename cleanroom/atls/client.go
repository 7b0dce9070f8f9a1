package atls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// ClientOptions configure a participant's side of attested TLS.
type ClientOptions struct {
	// Policy is the contract's coordinator section the coordinator must
	// satisfy: platform (and simulated root pin), measurements, debug,
	// minimum TCB, VMPL 0, and REPORT_DATA binding its key. Required unless
	// InsecureSkipPolicy is set.
	Policy *contracts.CoordinatorPolicy
	// Identity is the participant's key pair, presented as a self-signed
	// client certificate. nil connects anonymously (e.g. to fetch the
	// coordinator's identity).
	Identity *cleanroom.Identity
	// InsecureSkipPolicy verifies authenticity only, for showing a
	// coordinator's evidence without a contract: the evidence is genuine
	// (chained to AMD's root, or to SimulatedRootSHA256 for a simulated
	// coordinator) and binds the certificate's key, but nothing says the
	// code it runs (measurement), its debug state or its TCB are
	// acceptable. Never send data over such a connection.
	InsecureSkipPolicy bool
	// SimulatedRootSHA256 pins a simulated coordinator's root with
	// InsecureSkipPolicy; without it a simulated coordinator is refused.
	// (With a Policy, the policy's pin is used.)
	SimulatedRootSHA256 *[32]byte
	// OnVerified, when set, is called after each successful verification
	// with what the handshake proved.
	OnVerified func(*Coordinator)
}

// Coordinator is what a client proved about the coordinator during a
// handshake.
type Coordinator struct {
	// PublicKey is the coordinator's attested key (its HPKE part receives
	// data keys; its Ed25519 part is the TLS key and signs results).
	PublicKey *cleanroom.PublicKey
	// Evidence is the evidence of the certificate.
	Evidence attest.Evidence
	// Claims are what the evidence proves.
	Claims *attest.Claims
	// PolicyChecked is false when the connection was made with
	// InsecureSkipPolicy.
	PolicyChecked bool
}

// NewClientConfig returns a participant's TLS configuration: TLS 1.3 only,
// the participant's certificate (if any), and a check of the coordinator's
// attestation during every handshake. It is an error to give both or
// neither of Policy and InsecureSkipPolicy.
//
// crypto/tls's own chain verification is off (InsecureSkipVerify): the
// coordinator's certificate is self-signed, and VerifyConnection does the
// verification that matters.
//
// A handshake with a coordinator that fails verification fails with an
// error wrapping ErrCoordinatorRefused and the verification's error.
func NewClientConfig(opts ClientOptions) (*tls.Config, error) {
	if (opts.Policy == nil) == !opts.InsecureSkipPolicy {
		return nil, errors.New("attested TLS needs either the contract's coordinator policy or InsecureSkipPolicy, not both or neither")
	}
	if opts.Policy != nil {
		if opts.SimulatedRootSHA256 != nil {
			return nil, errors.New("with a policy, the simulated root pin comes from the policy")
		}
		// Fail now, not at every handshake, on a policy that cannot verify
		// anything (e.g. a simulated platform without a pin).
		if _, err := attest.VerifierForContract(opts.Policy, nil); err != nil {
			return nil, err
		}
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			c, err := verifyCoordinator(cs, opts)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrCoordinatorRefused, err)
			}
			if opts.OnVerified != nil {
				opts.OnVerified(c)
			}
			return nil
		},
	}
	if opts.Identity != nil {
		cert, err := ParticipantCertificate(opts.Identity)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ErrCoordinatorRefused is wrapped by the error of a handshake whose
// coordinator failed the client's verification (its certificate, its
// evidence, or the policy).
var ErrCoordinatorRefused = errors.New("coordinator refused")

func verifyCoordinator(cs tls.ConnectionState, opts ClientOptions) (*Coordinator, error) {
	certKey, err := selfSignedKey(cs.PeerCertificates)
	if err != nil {
		return nil, err
	}
	value, err := findExtension(cs.PeerCertificates[0])
	if err != nil {
		return nil, err
	}
	key, ev, err := ParseExtension(value)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(key.SigningKey(), certKey) {
		return nil, attest.NewCheckError(attest.CheckKeyBinding, false,
			fmt.Sprintf("the TLS certificate's key %x… is not the Ed25519 part of the attested coordinator key %s", []byte(certKey[:8]), key.Fingerprint().Short()))
	}
	keys := []*cleanroom.PublicKey{key}
	c := &Coordinator{PublicKey: key, Evidence: ev}
	if opts.Policy != nil {
		claims, err := attest.VerifyCoordinator(ev, opts.Policy, keys, nil)
		if err != nil {
			return nil, err
		}
		c.Claims, c.PolicyChecked = claims, true
		return c, nil
	}
	// Authenticity only: genuine, and bound to this key.
	v, err := attest.NewVerifier(attest.VerifierOptions{Platform: ev.Platform(), SimulatedRootSHA256: opts.SimulatedRootSHA256})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", attest.ErrNotGenuine, err)
	}
	claims, err := v.Verify(ev)
	if err != nil {
		return nil, err
	}
	want, err := attest.ReportData(keys, nil)
	if err != nil {
		return nil, err
	}
	if claims.ReportData != want {
		return nil, attest.NewCheckError(attest.CheckReportData, false,
			fmt.Sprintf("report data %x does not bind the coordinator key %s (want %x)", claims.ReportData, key.Fingerprint().Short(), want))
	}
	c.Claims = claims
	return c, nil
}

// NewHTTPClient returns an HTTP client whose every connection is attested
// TLS configured by opts (HTTP/2 when the server offers it).
func NewHTTPClient(opts ClientOptions) (*http.Client, error) {
	cfg, err := NewClientConfig(opts)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     cfg,
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 30 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			Proxy:               nil, // the coordinator is reached directly
		},
	}, nil
}
