package tee

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	spb "github.com/google/go-sev-guest/proto/sevsnp"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
	"cleanroom.dev/cleanroom/contracts"
)

// fakeGuest stands in for the SEV-SNP guest device, which is not here: the
// simulated platform signs the reports, the host's certificate table is
// built as the GHCB specification lays it out, and derived keys mix the
// selected fields into a chip secret and refuse a TCB above the committed
// one, as the firmware does. It lets the sev-snp code paths run.
type fakeGuest struct {
	platform    *simulated.Platform
	chipSecret  []byte
	measurement [48]byte
	debug       bool
	noCerts     bool
	committed   uint64
}

func newFakeGuest(t *testing.T) *fakeGuest {
	p, err := simulated.New()
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGuest{platform: p, chipSecret: []byte("chip secret"), measurement: [48]byte{0x5e}}
	ev, err := p.Attest(simulated.Request{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := abi.ReportToProto(ev.Report())
	if err != nil {
		t.Fatal(err)
	}
	g.committed = r.GetCommittedTcb()
	return g
}

func (g *fakeGuest) extendedReport(rd [64]byte) ([]byte, error) {
	ev, err := g.platform.Attest(simulated.Request{Measurement: g.measurement, ReportData: rd, Debug: g.debug})
	if err != nil {
		return nil, err
	}
	if g.noCerts {
		return ev.Report(), nil
	}
	table := abi.CertsFromProto(&spb.CertificateChain{VcekCert: ev.EndorsementKeyCert(), AskCert: ev.ASKCert(), ArkCert: ev.ARKCert()})
	return append(ev.Report(), table.Marshal()...), nil
}

func (g *fakeGuest) deriveKey(req *client.SnpDerivedKeyReq) ([]byte, error) {
	if req.TCBVersion > g.committed {
		return nil, fmt.Errorf("firmware: TCB %#x above the committed %#x", req.TCBVersion, g.committed)
	}
	mac := hmac.New(sha256.New, g.chipSecret)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], req.GuestFieldSelect.ABI())
	mac.Write(b[:])
	binary.BigEndian.PutUint64(b[:], req.TCBVersion)
	mac.Write(b[:])
	fmt.Fprintf(mac, "vcek=%v vmpl=%d svn=%d", req.UseVCEK, req.Vmpl, req.GuestSVN)
	if req.GuestFieldSelect.Measurement {
		mac.Write(g.measurement[:])
	}
	if req.GuestFieldSelect.GuestPolicy {
		fmt.Fprintf(mac, "debug=%v", g.debug)
	}
	return mac.Sum(nil), nil
}

func fakeOptions(g *fakeGuest) options {
	o := defaultOptions()
	o.hardware = func() (snpHardware, error) { return g, nil }
	o.selfCheck = false // the fake VCEK does not chain to AMD
	return o
}

func TestSEVSNPSealingOnFakeGuest(t *testing.T) {
	g := newFakeGuest(t)
	dir := filepath.Join(t.TempDir(), "data")
	inst, err := initWith(dir, ModeSEVSNP, fakeOptions(g))
	if err != nil {
		t.Fatal(err)
	}
	if inst.Mode() != ModeSEVSNP || inst.SimulatedRootSHA256() != nil || inst.Measurement() != g.measurement {
		t.Fatalf("mode %q root %v measurement %x", inst.Mode(), inst.SimulatedRootSHA256(), inst.Measurement())
	}
	if names, _ := dirEntries(dir); len(names) != 1 || names[0] != SealedIdentityFile {
		t.Fatalf("a sev-snp data directory holds %v", names)
	}
	sealed, _ := os.ReadFile(filepath.Join(dir, SealedIdentityFile))
	params, err := parseSealHeader(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if params.mode != sealModeSEVSNP || params.tcb != g.committed || params.fieldSelect != sealFields.ABI() {
		t.Fatalf("seal parameters %+v", params)
	}

	// The evidence is the report from the guest with the VCEK from the
	// host's table; relabelled as simulated (with the fake roots) it
	// verifies and binds the coordinator key.
	ev := inst.StaticEvidence().(*attest.SNPEvidence)
	if ev.Platform() != contracts.PlatformSEVSNP || len(ev.ASKCert()) != 0 {
		t.Fatalf("evidence platform %q", ev.Platform())
	}
	simEv, _ := g.platform.Attest(simulated.Request{})
	relabelled, err := attest.NewSNPEvidence(contracts.PlatformSEVSNPSimulated, ev.Report(), ev.EndorsementKeyCert(), simEv.ASKCert(), simEv.ARKCert())
	if err != nil {
		t.Fatal(err)
	}
	root := g.platform.RootSHA256()
	cp := &contracts.CoordinatorPolicy{Platform: contracts.PlatformSEVSNPSimulated, Measurements: [][48]byte{g.measurement}, SimulatedRootSHA256: &root}
	if _, err := attest.VerifyCoordinator(relabelled, cp, []*cleanroom.PublicKey{inst.PublicKey()}, nil); err != nil {
		t.Fatal(err)
	}

	// Restart on the same guest: same identity.
	again, err := openWith(dir, fakeOptions(g))
	if err != nil {
		t.Fatal(err)
	}
	if !again.PublicKey().Equal(inst.PublicKey()) {
		t.Fatal("another identity after a restart")
	}

	// Another measurement or a debuggable policy derives another key.
	for name, change := range map[string]func(*fakeGuest){
		"measurement": func(g *fakeGuest) { g.measurement[0]++ },
		"debug":       func(g *fakeGuest) { g.debug = true },
		"chip":        func(g *fakeGuest) { g.chipSecret = []byte("another chip") },
	} {
		other := *g
		change(&other)
		_, err := openWith(dir, fakeOptions(&other))
		if !errors.Is(err, ErrSealBroken) || !strings.Contains(err.Error(), "another measurement") {
			t.Errorf("%s: opened or wrong error: %v", name, err)
		}
	}
	// A firmware rolled back below the recorded TCB cannot derive the key.
	older := *g
	older.committed--
	if _, err := openWith(dir, fakeOptions(&older)); err == nil || !strings.Contains(err.Error(), "above the committed") {
		t.Errorf("rolled-back firmware: %v", err)
	}
	// The mode byte switched to simulated is refused.
	bad := append([]byte(nil), sealed...)
	bad[8] = sealModeSimulated
	os.WriteFile(filepath.Join(dir, SealedIdentityFile), bad, 0o600)
	if _, err := openWith(dir, fakeOptions(g)); !errors.Is(err, ErrSealBroken) {
		t.Errorf("mode switched: %v", err)
	}
}

func TestSEVSNPWithoutHostCertificates(t *testing.T) {
	g := newFakeGuest(t)
	g.noCerts = true
	dir := filepath.Join(t.TempDir(), "data")
	_, err := initWith(dir, ModeSEVSNP, fakeOptions(g))
	if !errors.Is(err, attest.ErrMalformed) || !strings.Contains(err.Error(), "never fetches") {
		t.Fatalf("init without the host's certificates: %v", err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed init left the directory")
	}
}
