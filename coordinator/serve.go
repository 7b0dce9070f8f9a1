package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/tee"
)

// Mode is the attestation mode of a data directory: the platform the
// coordinator attests on (docs/attestation.md).
type Mode = tee.Mode

// The attestation modes. ModeSimulated is the simulated SEV-SNP platform
// (also spelled sev-snp-simulated); every simulated mode protects nothing.
const (
	ModeSEVSNP         = tee.ModeSEVSNP
	ModeSimulated      = tee.ModeSimulated
	ModeTDX            = tee.ModeTDX
	ModeTDXSimulated   = tee.ModeTDXSimulated
	ModeNitro          = tee.ModeNitro
	ModeNitroSimulated = tee.ModeNitroSimulated
	ModeCCA            = tee.ModeCCA
	ModeCCASimulated   = tee.ModeCCASimulated
)

// ParseMode parses an --attestation value: a mode, or a contract platform
// name.
func ParseMode(s string) (Mode, error) { return tee.ParseMode(s) }

// Errors about the state of a data directory, for errors.Is.
var (
	ErrNotInitialised     = tee.ErrNotInitialised
	ErrAlreadyInitialised = tee.ErrAlreadyInitialised
	ErrNotEmpty           = tee.ErrNotEmpty
)

// Identity is what a coordinator shows the world about itself: its
// attestation mode, public key, the identity document participants verify
// (its evidence binds the key), and the coordinator section a contract
// pins to accept exactly this coordinator. It holds nothing secret.
type Identity struct {
	Mode      Mode
	PublicKey *cleanroom.PublicKey
	// Document is the identity document of the evidence the TLS
	// certificate carries (`cleanroomd identity` prints it).
	Document *attest.IdentityDocument
	// Reference is the platform, measurements and (simulated) root the
	// coordinator's own verified evidence shows. Parties should check it
	// against a build they reproduced rather than take it from the
	// coordinator.
	Reference *contracts.CoordinatorPolicy
}

func identityOf(inst *tee.Instance) (*Identity, error) {
	doc, err := inst.IdentityDocument()
	if err != nil {
		return nil, err
	}
	ref, err := inst.ReferenceValues()
	if err != nil {
		return nil, err
	}
	return &Identity{Mode: inst.Mode(), PublicKey: inst.PublicKey(), Document: doc, Reference: ref}, nil
}

// Init makes a new coordinator identity in dir, which must be missing or
// empty, and seals it there for mode (`cleanroomd init`). On failure it
// leaves dir as it found it.
func Init(dir string, mode Mode) (*Identity, error) {
	inst, err := tee.Init(dir, mode)
	if err != nil {
		return nil, err
	}
	return identityOf(inst)
}

// ReadIdentity unseals the identity in an initialised data directory and
// returns what it shows, with fresh evidence (`cleanroomd identity`).
func ReadIdentity(dir string) (*Identity, error) {
	inst, err := tee.Open(dir)
	if err != nil {
		return nil, err
	}
	return identityOf(inst)
}

// ExecutableMeasurement returns the SHA-384 of the running executable:
// the MEASUREMENT a simulated platform reports for this coordinator, so
// the value a simulated contract pins (`cleanroomd --version`).
func ExecutableMeasurement() ([48]byte, error) { return tee.ExecutableMeasurement() }

// InsecureSimulatedIdentity unseals the coordinator key pair of a data
// directory initialised for a simulated platform, with its static evidence:
// for tests that play a coordinator misbehaving with its key (a simulated
// coordinator protects nothing: its seal key is a file in the directory).
// It refuses a directory of a real platform.
func InsecureSimulatedIdentity(dir string) (*cleanroom.Identity, attest.Evidence, error) {
	inst, err := tee.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	if !inst.Mode().Simulated() {
		return nil, nil, fmt.Errorf("%s is a %s coordinator: its key stays sealed", dir, inst.Mode())
	}
	return inst.Identity(), inst.StaticEvidence(), nil
}

// Identity returns what the running coordinator shows the world.
func (c *Coordinator) Identity() *Identity { return c.identity }

// LogSize returns the number of events in the audit log.
func (c *Coordinator) LogSize() uint64 { return c.state.Size() }

// Options configure Serve.
type Options struct {
	// Config is the coordinator's: data directory, attestation mode,
	// limits of uploads and runs, operator access, logger.
	Config
	// Limits bound the connections and the time clients can hold of the
	// HTTPS server; the zero value takes the defaults of ServerLimits.
	Limits ServerLimits
	// ShutdownTimeout bounds how long a graceful shutdown waits for the
	// requests in flight. Default 30 s.
	ShutdownTimeout time.Duration
	// Ready, when set, is called once the coordinator is open and the
	// server is about to accept connections on the listener.
	Ready func(*Coordinator)
}

// DefaultShutdownTimeout is the default of Options.ShutdownTimeout.
const DefaultShutdownTimeout = 30 * time.Second

// Serve opens the coordinator (initialising an empty data directory for
// opts.Attestation), then serves its API (docs/api.md) over attested TLS
// on ln, with the connection limits and timeouts of opts.Limits, until ctx
// is done. It then stops gracefully: requests in flight finish (up to
// opts.ShutdownTimeout), a final checkpoint covers every event, and the log
// is closed. It closes ln. This is the one way the coordinator is served:
// by `cleanroomd serve` and by every test that needs a coordinator.
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	coord, err := Open(ctx, opts.Config)
	if err != nil {
		ln.Close()
		return err
	}
	logger := coord.logger
	srv, err := atls.NewHTTPServer(ln.Addr().String(), coord.handler(), atls.ServerOptions{
		Identity: coord.tee.Identity(), Evidence: coord.tee.StaticEvidence(),
	})
	if err != nil {
		ln.Close()
		coord.Close(context.Background())
		return err
	}
	srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	ln = opts.Limits.apply(srv, ln)
	logger.Info("serving", "url", "https://"+ln.Addr().String(), "data_dir", opts.DataDir,
		"platform", coord.tee.Platform(), "key", coord.tee.PublicKey().Fingerprint().String())
	if opts.Ready != nil {
		opts.Ready(coord)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-served:
		coord.Close(context.Background())
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	timeout := opts.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("requests still in flight at shutdown", "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("server stopped with an error", "err", err)
	}
	if err := coord.Close(sctx); err != nil {
		return fmt.Errorf("closing the audit log: %w", err)
	}
	logger.Info("stopped")
	return nil
}
