package tee

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/contracts"
)

func initSimulated(t *testing.T) (string, *Instance) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	inst, err := Init(dir, ModeSimulated)
	if err != nil {
		t.Fatal(err)
	}
	return dir, inst
}

func contractFor(inst *Instance) *contracts.CoordinatorPolicy {
	return &contracts.CoordinatorPolicy{
		Platform:            inst.Platform(),
		Measurements:        [][48]byte{inst.Measurement()},
		SimulatedRootSHA256: inst.SimulatedRootSHA256(),
	}
}

func TestSimulatedInitOpen(t *testing.T) {
	dir, inst := initSimulated(t)
	if inst.Mode() != ModeSimulated || inst.Platform() != contracts.PlatformSEVSNPSimulated {
		t.Fatalf("mode %q platform %q", inst.Mode(), inst.Platform())
	}
	for _, f := range []string{SealedIdentityFile, SimulatedPlatformFile, SimulatedSealKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory has mode %04o, want 0700", fi.Mode().Perm())
	}
	// The simulated measurement is the SHA-384 of the running executable.
	want, err := ExecutableMeasurement()
	if err != nil {
		t.Fatal(err)
	}
	if inst.Measurement() != want {
		t.Errorf("measurement %x, want the executable's %x", inst.Measurement(), want)
	}

	// Restart: the same identity comes back, and its evidence verifies.
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.PublicKey().Equal(inst.PublicKey()) {
		t.Fatal("re-opening the data directory gives another identity")
	}
	if !bytes.Equal(again.Identity().Sign([]byte("m")), inst.Identity().Sign([]byte("m"))) {
		t.Fatal("re-opened signing key differs")
	}
	if *again.SimulatedRootSHA256() != *inst.SimulatedRootSHA256() {
		t.Fatal("the simulated root changed across a restart")
	}
	keys := []*cleanroom.PublicKey{again.PublicKey()}
	if _, err := attest.VerifyCoordinator(again.StaticEvidence(), contractFor(inst), keys, nil); err != nil {
		t.Fatalf("static evidence: %v", err)
	}
	nonce := []byte("client nonce")
	fresh, err := again.Evidence(nonce)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.VerifyCoordinator(fresh, contractFor(inst), keys, nonce); err != nil {
		t.Fatalf("fresh evidence: %v", err)
	}
	if _, err := attest.VerifyCoordinator(fresh, contractFor(inst), keys, []byte("other")); !errors.Is(err, attest.ErrRefused) {
		t.Fatalf("fresh evidence accepted for another nonce: %v", err)
	}
	freshDoc, err := again.FreshIdentityDocument(nonce)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := freshDoc.VerifyFresh(contractFor(inst), nonce); err != nil {
		t.Fatalf("fresh identity document: %v", err)
	}
	if _, err := freshDoc.Verify(contractFor(inst)); !errors.Is(err, attest.ErrRefused) {
		t.Fatalf("a nonce-bound document verified without its nonce: %v", err)
	}
	doc, err := again.IdentityDocument()
	if err != nil {
		t.Fatal(err)
	}
	data, err := doc.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := attest.ParseIdentityDocument(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsed.Verify(contractFor(inst)); err != nil {
		t.Fatalf("identity document: %v", err)
	}
}

func TestInitRefuses(t *testing.T) {
	dir, _ := initSimulated(t)
	before, _ := os.ReadFile(filepath.Join(dir, SealedIdentityFile))
	if _, err := Init(dir, ModeSimulated); !errors.Is(err, ErrAlreadyInitialised) {
		t.Fatalf("second init: %v, want ErrAlreadyInitialised", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, SealedIdentityFile))
	if !bytes.Equal(before, after) {
		t.Fatal("a refused init changed the sealed identity")
	}

	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o644)
	_, err := Init(other, ModeSimulated)
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("init of a non-empty directory: %v", err)
	}
	if names, _ := dirEntries(other); len(names) != 1 {
		t.Fatalf("a refused init left %v", names)
	}
	if _, err := Init(t.TempDir(), "tdx"); err == nil {
		t.Fatal("unknown mode accepted")
	}
	if ok, err := Initialised(other); ok || !errors.Is(err, ErrNotInitialised) {
		t.Fatalf("Initialised on a foreign directory: %v %v", ok, err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrNotInitialised) {
		t.Fatalf("open of an empty directory: %v", err)
	}
}

func TestInitLeavesNothingOnFailure(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	o := defaultOptions()
	o.hardware = func() (snpHardware, error) { return nil, errors.New("no SEV-SNP here") }
	if _, err := initWith(dir, ModeSEVSNP, o); err == nil {
		t.Fatal("init without hardware succeeded")
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed init left the directory behind: %v", err)
	}
	// A simulated init whose self-check cannot pass (no executable to
	// measure) removes its files too.
	o = defaultOptions()
	o.measure = func() ([48]byte, error) { return [48]byte{}, errors.New("cannot measure") }
	empty := t.TempDir()
	if _, err := initWith(empty, ModeSimulated, o); err == nil {
		t.Fatal("init succeeded")
	}
	if names, _ := dirEntries(empty); len(names) != 0 {
		t.Fatalf("a failed init left %v", names)
	}
}

func TestOpenOrInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := OpenOrInit(dir, ""); !errors.Is(err, ErrNotInitialised) {
		t.Fatalf("OpenOrInit without a mode on an empty directory: %v", err)
	}
	first, err := OpenOrInit(dir, ModeSimulated)
	if err != nil {
		t.Fatal(err)
	}
	second, err := OpenOrInit(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !first.PublicKey().Equal(second.PublicKey()) {
		t.Fatal("OpenOrInit made a new identity for an initialised directory")
	}
	if _, err := OpenOrInit(dir, ModeSEVSNP); err == nil || !strings.Contains(err.Error(), `"simulated"`) {
		t.Fatalf("mode mismatch: %v", err)
	}
}

// TestTamperedSealIsRefused flips every byte of the sealed identity (three
// ways) and cuts and extends it: every variant is refused, naming the file.
func TestTamperedSealIsRefused(t *testing.T) {
	dir, _ := initSimulated(t)
	path := filepath.Join(dir, SealedIdentityFile)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o := defaultOptions()
	o.selfCheck = false // fails before evidence anyway; keeps the loop fast
	try := func(what string, data []byte) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := openWith(dir, o)
		if err == nil {
			t.Fatalf("%s: tampered sealed identity opened", what)
		}
		if !errors.Is(err, ErrSealBroken) || !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: refused with %v, want ErrSealBroken naming %s", what, err, path)
		}
	}
	for i := range orig {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(orig)
			bad[i] ^= mask
			try("byte "+string(rune('0'+i%10)), bad)
		}
	}
	try("truncated", orig[:len(orig)-1])
	try("header only", orig[:sealHeaderLen])
	try("extended", append(bytes.Clone(orig), 0))
	try("empty", nil)

	// The seal key of another data directory does not open it.
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	otherDir, _ := initSimulated(t)
	otherKey, _ := os.ReadFile(filepath.Join(otherDir, SimulatedSealKeyFile))
	os.WriteFile(filepath.Join(dir, SimulatedSealKeyFile), otherKey, 0o600)
	if _, err := Open(dir); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("opened with another directory's seal key: %v", err)
	}
}

func TestSecretFilePermissions(t *testing.T) {
	dir, _ := initSimulated(t)
	key := filepath.Join(dir, SimulatedSealKeyFile)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readable seal key accepted: %v", err)
	}
}
