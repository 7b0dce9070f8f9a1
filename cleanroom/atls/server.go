package atls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

// ServerOptions configure the coordinator's side of attested TLS.
type ServerOptions struct {
	// Identity is the coordinator's key pair (required).
	Identity *cleanroom.Identity
	// Evidence binds Identity's public key, without a nonce (required): the
	// static evidence of the coordinator's TEE.
	Evidence attest.Evidence
	// AuthorizeClient, when set, is called during every handshake with the
	// key the client proved, or nil for a client that sent no certificate;
	// an error refuses the connection (and is the handshake's error on the
	// server). When nil, every client is accepted, anonymous or not, and
	// authorisation is left to the layer above (see PeerKey).
	AuthorizeClient func(key ed25519.PublicKey) error
}

// NewServerConfig returns the coordinator's TLS configuration: TLS 1.3
// only, the attested certificate, and client certificates requested (not
// required) and checked to be self-signed Ed25519 certificates.
func NewServerConfig(opts ServerOptions) (*tls.Config, error) {
	cert, err := CoordinatorCertificate(opts.Identity, opts.Evidence)
	if err != nil {
		return nil, err
	}
	authorize := opts.AuthorizeClient
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			var key ed25519.PublicKey
			if len(cs.PeerCertificates) > 0 {
				k, err := selfSignedKey(cs.PeerCertificates)
				if err != nil {
					return fmt.Errorf("client: %w", err)
				}
				key = k
			}
			if authorize != nil {
				if err := authorize(key); err != nil {
					return err
				}
			}
			return nil
		},
	}, nil
}

// ErrNotParticipant reports a client key that is not a participant's.
var ErrNotParticipant = errors.New("not a participant")

// AuthorizeParticipants returns an AuthorizeClient hook that accepts only
// the keys of the contracts' participants, and anonymous clients when
// allowAnonymous is set. registered is called at every handshake, so the
// set can change as contracts are registered.
func AuthorizeParticipants(registered func() []*contracts.Contract, allowAnonymous bool) func(ed25519.PublicKey) error {
	return func(key ed25519.PublicKey) error {
		if key == nil {
			if allowAnonymous {
				return nil
			}
			return fmt.Errorf("%w: the client presented no key", ErrNotParticipant)
		}
		for _, c := range registered() {
			if ParticipantOf(c, key) != nil {
				return nil
			}
		}
		return fmt.Errorf("%w: client key %x… is not the key of any participant of a registered contract", ErrNotParticipant, []byte(key[:8]))
	}
}

// ParticipantOf returns the participant of c whose key's Ed25519 part is
// key, or nil.
func ParticipantOf(c *contracts.Contract, key ed25519.PublicKey) *contracts.Participant {
	if c == nil || key == nil {
		return nil
	}
	for i := range c.Participants {
		if bytes.Equal(c.Participants[i].PublicKey.SigningKey(), key) {
			return &c.Participants[i]
		}
	}
	return nil
}

// RequestKey returns the participant key of the client that sent r over a
// server configured by NewServerConfig, or nil for an anonymous client.
func RequestKey(r *http.Request) ed25519.PublicKey { return PeerKey(r.TLS) }

// NewHTTPServer returns an HTTP server for handler on addr with the
// coordinator's attested TLS configuration. Serve it with
// srv.ServeTLS(listener, "", "") or srv.ListenAndServeTLS("", "").
func NewHTTPServer(addr string, handler http.Handler, opts ServerOptions) (*http.Server, error) {
	cfg, err := NewServerConfig(opts)
	if err != nil {
		return nil, err
	}
	return &http.Server{
		Addr:              addr,
		Handler:           handler,
		TLSConfig:         cfg,
		ReadHeaderTimeout: 30 * time.Second,
	}, nil
}
