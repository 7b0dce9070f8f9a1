// Package tee is the coordinator's trusted execution environment: it makes
// the coordinator's identity (cleanroom.Identity: Ed25519 for COSE, TLS and
// log checkpoints, HPKE for receiving data keys) when a data directory is
// initialised, seals it there, unseals it at every start, and produces the
// attestation evidence that binds its public key.
//
// Two back ends, chosen in one place (Init and Open) and used the same way:
//
//   - sev-snp: the identity is sealed with a key the SEV-SNP firmware
//     derives from the chip's VCEK, the launch measurement, the guest policy
//     and the TCB (go-sev-guest's derived-key request), and evidence is the
//     firmware's extended report with the host's VCEK/VLEK certificate.
//   - simulated: a fake AMD chain made at init and kept in the data
//     directory, a local seal key file, and reports whose MEASUREMENT is the
//     SHA-384 of the running executable. It protects nothing.
//
// The data directory layout and the sealed file format are specified in
// docs/attestation.md.
package tee

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/durable"
)

// Files of a data directory that this package owns. Other parts of the
// coordinator may keep their own files beside them.
const (
	// SealedIdentityFile holds the sealed coordinator identity. It is
	// written last by Init: its presence means the directory is initialised.
	SealedIdentityFile = "identity.sealed"
	// SimulatedPlatformFile holds the simulated platform's fake AMD chain
	// and VCEK key (simulated mode only, mode 0600).
	SimulatedPlatformFile = "simulated-platform.pem"
	// SimulatedSealKeyFile holds the simulated mode's 32-byte seal key
	// (simulated mode only, mode 0600).
	SimulatedSealKeyFile = "simulated-seal.key"
)

// Mode is the attestation mode of a data directory: a platform (SPEC §5.1)
// the coordinator attests on.
type Mode string

// The modes. ModeSimulated is the simulated SEV-SNP platform; it is also
// spelled sev-snp-simulated. The real TDX, Nitro and CCA modes have no
// sealing key (docs/attestation.md, "Sealing"): their identity lives only in
// memory.
const (
	ModeSEVSNP         Mode = "sev-snp"
	ModeSimulated      Mode = "simulated"
	ModeTDX            Mode = "tdx"
	ModeTDXSimulated   Mode = "tdx-simulated"
	ModeNitro          Mode = "nitro"
	ModeNitroSimulated Mode = "nitro-simulated"
	ModeCCA            Mode = "cca"
	ModeCCASimulated   Mode = "cca-simulated"
)

// Modes lists every mode, as --attestation takes them.
var Modes = []Mode{ModeSEVSNP, ModeTDX, ModeNitro, ModeCCA, ModeSimulated, ModeTDXSimulated, ModeNitroSimulated, ModeCCASimulated}

// ParseMode parses an --attestation value: a mode, or a contract platform
// name (sev-snp-simulated is ModeSimulated).
func ParseMode(s string) (Mode, error) {
	if contracts.Platform(s) == contracts.PlatformSEVSNPSimulated {
		return ModeSimulated, nil
	}
	for _, m := range Modes {
		if Mode(s) == m {
			return m, nil
		}
	}
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("unknown attestation mode %q (want one of %s)", s, strings.Join(names, ", "))
}

// Platform returns the contract platform of the mode.
func (m Mode) Platform() contracts.Platform {
	if m == ModeSimulated {
		return contracts.PlatformSEVSNPSimulated
	}
	return contracts.Platform(m)
}

// Simulated reports whether the mode is a simulated platform: it protects
// nothing.
func (m Mode) Simulated() bool { return m.Platform().Simulated() }

// Errors about the state of a data directory.
var (
	// ErrNotInitialised reports a data directory without a sealed identity.
	ErrNotInitialised = errors.New("data directory is not initialised")
	// ErrAlreadyInitialised reports an init of a directory that holds a
	// sealed identity.
	ErrAlreadyInitialised = errors.New("data directory is already initialised")
	// ErrNotEmpty reports an init of a directory that holds other files.
	ErrNotEmpty = errors.New("data directory is not empty")
)

// backend produces evidence for 64 bytes of REPORT_DATA.
type backend interface {
	evidence(reportData [64]byte) (attest.Evidence, error)
}

// Instance is an opened data directory: the unsealed identity and the
// evidence producer. It is safe for concurrent use.
type Instance struct {
	dir         string
	mode        Mode
	id          *cleanroom.Identity
	be          backend
	static      attest.Evidence
	measurement [48]byte
	simRoot     *[32]byte
	claims      *attest.Claims // of the static evidence, once checked
}

// options are the seams tests use to run the sev-snp code paths on a fake
// guest device; production uses defaultOptions.
type options struct {
	hardware  func() (snpHardware, error)
	collector func(Mode) (backend, error)
	measure   func() ([48]byte, error)
	selfCheck bool
}

func defaultOptions() options {
	return options{
		hardware:  func() (snpHardware, error) { return openGuestDevice() },
		collector: openCollector,
		measure:   ExecutableMeasurement,
		selfCheck: true,
	}
}

// Init makes a new coordinator identity in dir, which must be missing or
// empty, and seals it for mode; then it opens the directory. On failure it
// leaves dir as it found it.
func Init(dir string, mode Mode) (*Instance, error) { return initWith(dir, mode, defaultOptions()) }

// Open unseals the identity in an initialised data directory and prepares
// evidence. It refuses a sealed file that was altered or sealed elsewhere.
func Open(dir string) (*Instance, error) { return openWith(dir, defaultOptions()) }

// Initialised reports whether dir holds a sealed identity. A missing or
// empty directory is not initialised; a directory with other files but no
// sealed identity is an error (an interrupted init, or the wrong
// directory).
func Initialised(dir string) (bool, error) {
	names, err := dirEntries(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(names) == 0 {
		return false, nil
	}
	for _, n := range names {
		if n == SealedIdentityFile {
			return true, nil
		}
	}
	return false, fmt.Errorf("%w: %s holds %s but no %s (an interrupted init? empty the directory and run init again)",
		ErrNotInitialised, dir, strings.Join(names, ", "), SealedIdentityFile)
}

// OpenOrInit opens dir, initialising it for mode first when it is missing
// or empty (what `cleanroomd serve` does). When dir is initialised and mode
// is not empty, mode must be the directory's.
func OpenOrInit(dir string, mode Mode) (*Instance, error) {
	ok, err := Initialised(dir)
	if err != nil {
		return nil, err
	}
	if !ok {
		if mode == "" {
			return nil, fmt.Errorf("%w: %s is empty and no attestation mode was given", ErrNotInitialised, dir)
		}
		return Init(dir, mode)
	}
	inst, err := Open(dir)
	if err != nil {
		return nil, err
	}
	if mode != "" && inst.mode != mode {
		return nil, fmt.Errorf("%s was initialised for attestation %q, not %q", dir, inst.mode, mode)
	}
	return inst, nil
}

func dirEntries(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

func initWith(dir string, mode Mode, o options) (inst *Instance, err error) {
	if _, err := ParseMode(string(mode)); err != nil {
		return nil, err
	}
	created := false
	switch names, err := dirEntries(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		created = true
	case err != nil:
		return nil, err
	case len(names) > 0:
		for _, n := range names {
			if n == SealedIdentityFile {
				return nil, fmt.Errorf("%w: %s holds a sealed identity; refusing to replace the coordinator's keys", ErrAlreadyInitialised, dir)
			}
		}
		return nil, fmt.Errorf("%w: %s holds %s; init needs a missing or empty directory", ErrNotEmpty, dir, strings.Join(names, ", "))
	}
	var written []string
	defer func() {
		if err == nil {
			return
		}
		for _, f := range written {
			os.Remove(f)
		}
		if created {
			os.Remove(dir)
		}
	}()
	write := func(name string, data []byte) error {
		p := filepath.Join(dir, name)
		written = append(written, p)
		return durable.WriteFile(p, data, 0o600)
	}

	id, err := cleanroom.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	secret, err := id.MarshalText()
	if err != nil {
		return nil, err
	}
	var sealed []byte
	switch {
	case mode.Simulated():
		pem, err := newSimulatedPlatform(mode)
		if err != nil {
			return nil, err
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := write(SimulatedPlatformFile, pem); err != nil {
			return nil, err
		}
		if err := write(SimulatedSealKeyFile, key); err != nil {
			return nil, err
		}
		if sealed, err = seal(sealParams{mode: sealModeSimulated, rootKey: simulatedSealKind(mode)}, key, secret); err != nil {
			return nil, err
		}
	case mode == ModeSEVSNP:
		hw, err := o.hardware()
		if err != nil {
			return nil, err
		}
		params, err := snpSealParams(hw)
		if err != nil {
			return nil, err
		}
		key, err := snpSealSecret(hw, params)
		if err != nil {
			return nil, err
		}
		if sealed, err = seal(params, key, secret); err != nil {
			return nil, err
		}
	default:
		// TDX, Nitro, CCA: no sealing key. The identity stays in memory; the
		// data directory records that it had one, so a restart is refused
		// rather than silently making another.
		be, err := o.collector(mode)
		if err != nil {
			return nil, err
		}
		if err := write(SealedIdentityFile, ephemeralMarker(mode)); err != nil {
			return nil, err
		}
		inst, err = newInstance(dir, mode, id, be, o)
		if err != nil {
			return nil, err
		}
		return inst, nil
	}
	if err := write(SealedIdentityFile, sealed); err != nil {
		return nil, err
	}
	inst, err = openWith(dir, o)
	if err != nil {
		return nil, fmt.Errorf("the new data directory does not open: %w", err)
	}
	return inst, nil
}

func openWith(dir string, o options) (*Instance, error) {
	path := filepath.Join(dir, SealedIdentityFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s (run: cleanroomd init --data-dir %s --attestation MODE)", ErrNotInitialised, dir, SealedIdentityFile, dir)
	}
	if err != nil {
		return nil, err
	}
	params, err := parseSealHeader(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	inst := &Instance{dir: dir}
	var plaintext []byte
	switch params.mode {
	case sealModeSimulated:
		if inst.mode, err = simulatedModeOfSeal(params.rootKey); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		key, err := readSecretFile(filepath.Join(dir, SimulatedSealKeyFile))
		if err != nil {
			return nil, err
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("%s: %w: the seal key has %d bytes, want 32", filepath.Join(dir, SimulatedSealKeyFile), ErrSealBroken, len(key))
		}
		if plaintext, err = unseal(data, key); err != nil {
			return nil, fmt.Errorf("%s: %w (altered, or sealed with another data directory's key)", path, err)
		}
		pem, err := readSecretFile(filepath.Join(dir, SimulatedPlatformFile))
		if err != nil {
			return nil, err
		}
		m, err := o.measure()
		if err != nil {
			return nil, err
		}
		if inst.be, err = loadSimulatedPlatform(inst.mode, pem, m); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, SimulatedPlatformFile), err)
		}
	case sealModeEphemeral:
		mode, _ := ephemeralModeOfSeal(params.rootKey)
		return nil, fmt.Errorf("%s: the coordinator initialised here attested on %s, which has no sealing key: its identity lived only in memory and is gone with it; start on an empty data directory (docs/deploy-%s.md)", dir, mode, mode)
	case sealModeSEVSNP:
		inst.mode = ModeSEVSNP
		for _, f := range []string{SimulatedPlatformFile, SimulatedSealKeyFile} {
			if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
				return nil, fmt.Errorf("%s: %w: it is sealed for sev-snp but %s holds the simulated platform's %s: the file was altered, or the directory mixes two data directories",
					path, ErrSealBroken, dir, f)
			}
		}
		hw, err := o.hardware()
		if err != nil {
			return nil, err
		}
		key, err := snpSealSecret(hw, params)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if plaintext, err = unseal(data, key); err != nil {
			return nil, fmt.Errorf("%s: %w (altered, or sealed by another VM: another measurement, guest policy or chip)", path, err)
		}
		inst.be = &snpBackend{hw: hw}
	}
	id, err := cleanroom.ParseIdentity(plaintext)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: the unsealed identity does not parse: %v", path, ErrSealBroken, err)
	}
	return newInstance(dir, inst.mode, id, inst.be, o)
}

// newInstance makes the static evidence of an unsealed (or in-memory)
// identity and checks it as a client would.
func newInstance(dir string, mode Mode, id *cleanroom.Identity, be backend, o options) (*Instance, error) {
	inst := &Instance{dir: dir, mode: mode, id: id, be: be}
	rd, err := attest.ReportData([]*cleanroom.PublicKey{inst.id.Public()}, nil)
	if err != nil {
		return nil, err
	}
	if inst.static, err = inst.be.evidence(rd); err != nil {
		return nil, err
	}
	if inst.static.Platform() != mode.Platform() {
		return nil, fmt.Errorf("internal error: %s evidence on platform %s", inst.static.Platform(), mode.Platform())
	}
	doc, err := attest.NewIdentityDocument(inst.id.Public(), inst.static)
	if err != nil {
		return nil, fmt.Errorf("this coordinator's own evidence: %w", err)
	}
	inst.measurement, inst.simRoot = doc.Measurement, doc.SimulatedRootSHA256
	if o.selfCheck {
		if err := inst.checkOwnEvidence(rd); err != nil {
			return nil, err
		}
	}
	return inst, nil
}

// checkOwnEvidence verifies the instance's evidence as any client would
// (authenticity and key binding, not a contract's measurements), so a host
// that serves the wrong certificates is noticed at start, not by clients.
func (inst *Instance) checkOwnEvidence(rd [64]byte) error {
	opts := attest.VerifierOptions{Platform: inst.mode.Platform(), SimulatedRootSHA256: inst.simRoot}
	if cca, ok := inst.static.(*attest.CCAEvidence); ok && inst.mode == ModeCCA {
		opts.CCAIAKSHA256 = [][32]byte{sha256.Sum256(cca.IAK())} // clients pin it; here only the binding is checked
	}
	v, err := attest.NewVerifier(opts)
	if err != nil {
		return err
	}
	claims, err := v.Verify(inst.static)
	if err != nil {
		return fmt.Errorf("this coordinator's own evidence does not verify: %w", err)
	}
	inst.claims = claims
	p := attest.Policy{InsecureAnyMeasurement: true, InsecureAllowDebug: true, ReportData: &rd}
	if err := p.Validate(claims); err != nil {
		return fmt.Errorf("this coordinator's own evidence is not acceptable: %w", err)
	}
	return nil
}

// readSecretFile reads a file that must not be accessible by group or
// others.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing", ErrSealBroken, path)
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o; it holds secret material and must not be accessible by group or others (run: chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	return os.ReadFile(path)
}

// Dir returns the data directory.
func (inst *Instance) Dir() string { return inst.dir }

// Mode returns the attestation mode the directory was initialised for.
func (inst *Instance) Mode() Mode { return inst.mode }

// Platform returns the contract platform of the mode.
func (inst *Instance) Platform() contracts.Platform { return inst.mode.Platform() }

// Identity returns the coordinator's unsealed key pair.
func (inst *Instance) Identity() *cleanroom.Identity { return inst.id }

// PublicKey returns the coordinator's public key: the one its evidence
// binds.
func (inst *Instance) PublicKey() *cleanroom.PublicKey { return inst.id.Public() }

// Measurement returns the launch measurement the evidence reports (on the
// simulated platform, the SHA-384 of the running executable).
func (inst *Instance) Measurement() [48]byte { return inst.measurement }

// SimulatedRootSHA256 returns the simulated platform's root pin, or nil on
// real hardware.
func (inst *Instance) SimulatedRootSHA256() *[32]byte {
	if inst.simRoot == nil {
		return nil
	}
	r := *inst.simRoot
	return &r
}

// StaticEvidence returns the evidence made at Open whose REPORT_DATA binds
// the coordinator's public key without a nonce: the evidence of the TLS
// certificate and the identity document.
func (inst *Instance) StaticEvidence() attest.Evidence { return inst.static }

// Evidence returns fresh evidence whose REPORT_DATA binds the coordinator's
// public key and the client's nonce (at most attest.MaxNonceSize bytes).
func (inst *Instance) Evidence(nonce []byte) (attest.Evidence, error) {
	rd, err := attest.ReportData([]*cleanroom.PublicKey{inst.id.Public()}, nonce)
	if err != nil {
		return nil, err
	}
	return inst.be.evidence(rd)
}

// FreshIdentityDocument returns an identity document whose evidence binds
// the coordinator's public key and the client's nonce (1 to
// attest.MaxNonceSize bytes): the answer to an attestation request, checked
// with IdentityDocument.VerifyFresh.
func (inst *Instance) FreshIdentityDocument(nonce []byte) (*attest.IdentityDocument, error) {
	if len(nonce) == 0 {
		return nil, errors.New("a fresh identity document needs the client's nonce")
	}
	ev, err := inst.Evidence(nonce)
	if err != nil {
		return nil, err
	}
	return attest.NewIdentityDocument(inst.id.Public(), ev)
}

// IdentityDocument returns the identity document of the static evidence.
func (inst *Instance) IdentityDocument() (*attest.IdentityDocument, error) {
	return attest.NewIdentityDocument(inst.id.Public(), inst.static)
}
