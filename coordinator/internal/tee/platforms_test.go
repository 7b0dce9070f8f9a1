package tee

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
	"cleanroom.dev/cleanroom/contracts"
)

// Every simulated platform initialises, reopens with the same identity,
// and its evidence verifies as a client verifies it, against the reference
// values the instance reports; it is refused under another platform's
// contract.
func TestSimulatedPlatformsInitOpen(t *testing.T) {
	for _, mode := range []Mode{ModeSimulated, ModeTDXSimulated, ModeNitroSimulated, ModeCCASimulated} {
		t.Run(string(mode), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			inst, err := Init(dir, mode)
			if err != nil {
				t.Fatal(err)
			}
			if inst.Mode() != mode || inst.Platform() != mode.Platform() || !inst.Platform().Simulated() || inst.SimulatedRootSHA256() == nil {
				t.Fatalf("mode %q platform %q", inst.Mode(), inst.Platform())
			}
			again, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !again.PublicKey().Equal(inst.PublicKey()) || *again.SimulatedRootSHA256() != *inst.SimulatedRootSHA256() || again.Mode() != mode {
				t.Fatal("reopened as another coordinator")
			}
			cp, err := again.ReferenceValues()
			if err != nil {
				t.Fatal(err)
			}
			doc, err := again.IdentityDocument()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := doc.Verify(cp); err != nil {
				t.Fatal(err)
			}
			fresh, err := again.FreshIdentityDocument([]byte("nonce"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fresh.VerifyFresh(cp, []byte("nonce")); err != nil {
				t.Fatal(err)
			}
			// The same evidence under a contract for the SEV-SNP twin.
			other := &contracts.CoordinatorPolicy{Platform: contracts.PlatformSEVSNPSimulated, Measurements: [][48]byte{inst.Measurement()}, SimulatedRootSHA256: inst.SimulatedRootSHA256()}
			if mode == ModeSimulated {
				other = &contracts.CoordinatorPolicy{Platform: contracts.PlatformNitroSimulated, Nitro: &contracts.NitroRefs{PCR0: [][48]byte{inst.Measurement()}}, SimulatedRootSHA256: inst.SimulatedRootSHA256()}
			}
			if _, err := doc.Verify(other); err == nil || !strings.Contains(err.Error(), "platform check failed") {
				t.Fatalf("evidence of %s under a %s contract: %v", mode, other.Platform, err)
			}
		})
	}
}

// The real TDX, Nitro and CCA modes refuse clearly on a machine without
// their device.
func TestRealPlatformsRefuseWithoutDevice(t *testing.T) {
	wants := map[Mode]string{ModeTDX: "configfs-tsm", ModeCCA: "configfs-tsm", ModeNitro: "Nitro Secure Module"}
	for mode, want := range wants {
		if mode == ModeNitro {
			if _, err := os.Stat(NSMDevice); err == nil {
				t.Logf("%s exists here; not testing its absence", NSMDevice)
				continue
			}
		} else if _, err := os.Stat("/sys/kernel/config/tsm/report"); err == nil {
			t.Logf("configfs-tsm exists here; not testing its absence")
			continue
		}
		dir := filepath.Join(t.TempDir(), "data")
		_, err := Init(dir, mode)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), string(mode)+"-simulated") {
			t.Errorf("%s: %v", mode, err)
		}
		if _, statErr := os.Stat(dir); statErr == nil {
			t.Errorf("%s: a refused init left %s behind", mode, dir)
		}
	}
}

// A real platform without a sealing key keeps its identity in memory: the
// data directory records that, and a restart on it is refused.
func TestRealPlatformIdentityInMemory(t *testing.T) {
	nitro, err := simulated.NewNitro()
	if err != nil {
		t.Fatal(err)
	}
	o := defaultOptions()
	o.selfCheck = false // the fake device is the simulated one, not nitro's
	o.collector = func(Mode) (backend, error) {
		return &twinBackend{attest: func(r simulated.Request) (attest.Evidence, error) {
			ev, err := nitro.Attest(r)
			if err != nil {
				return nil, err
			}
			return attest.NewNitroEvidence(contracts.PlatformNitro, ev.Document())
		}}, nil
	}
	dir := filepath.Join(t.TempDir(), "data")
	inst, err := initWith(dir, ModeNitro, o)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Platform() != contracts.PlatformNitro || inst.SimulatedRootSHA256() != nil {
		t.Fatalf("platform %s", inst.Platform())
	}
	data, err := os.ReadFile(filepath.Join(dir, SealedIdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := inst.Identity().MarshalText()
	if strings.Contains(string(data), string(secret)) || len(data) != sealHeaderLen+16 {
		t.Fatalf("the marker holds %d bytes", len(data))
	}
	_, err = openWith(dir, o)
	if err == nil || !strings.Contains(err.Error(), "no sealing key") {
		t.Fatalf("reopening: %v", err)
	}
}
