package attest_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sgtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/validate"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
	"cleanroom.dev/cleanroom/contracts"
)

// These tests alter one field of a genuine report, have the report signed
// again by a test root, and run it through the real verification code:
// Verifier.Verify then Policy.Validate. Each must be refused by the named
// check. Beside each, go-sev-guest's own validator (validate.SnpAttestation)
// runs on the same report with the options that match Cleanroom's policy,
// and must refuse it too: Cleanroom checks at least what go-sev-guest
// checks, field by field (docs/attestation.md §5.3).

// withByte returns tcb with byte i (0 the least significant) replaced by v.
func withByte(tcb uint64, i int, v uint8) uint64 {
	return tcb&^(0xff<<(8*i)) | uint64(v)<<(8*i)
}

func byteOf(tcb uint64, i int) uint8 { return uint8(tcb >> (8 * i)) }

// Bytes of a Milan TCB_VERSION.
const (
	tcbBootloaderByte = 0
	tcbReserved2Byte  = 2
	tcbSNPByte        = 6
	tcbMicrocodeByte  = 7
)

// reportCase is one altered field and who must refuse it.
type reportCase struct {
	name   string
	change func(r *spb.Report)
	check  string
	kind   error
	says   []string // in Cleanroom's refusal
	gsg    string   // in go-sev-guest's refusal
}

// refusedReports are the report alterations every platform must refuse. The
// policy they are checked under has min_tcb equal to the report's TCB.
func refusedReports() []reportCase {
	ff := bytes.Repeat([]byte{0xff}, abi.ReportIDMASize)
	return []reportCase{
		{"MIGRATE_MA in the guest policy", func(r *spb.Report) { r.Policy |= 1 << 18 },
			attest.CheckGuestPolicy, attest.ErrRefused, []string{"MIGRATE_MA (bit 18)"}, "unauthorized migration agent"},
		{"CXL_ALLOW in the guest policy", func(r *spb.Report) { r.Policy |= 1 << 21 },
			attest.CheckGuestPolicy, attest.ErrRefused, []string{"CXL_ALLOW (bit 21)"}, "unauthorized CXL"},
		{"REPORT_ID_MA of a migration agent", func(r *spb.Report) { r.ReportIdMa = bytes.Repeat([]byte{0x5a}, abi.ReportIDMASize) },
			attest.CheckMigrationAgent, attest.ErrRefused, []string{"REPORT_ID_MA is 5a5a5a", "not all ff"}, "REPORT_ID_MA"},
		{"REPORT_ID_MA zero", func(r *spb.Report) { r.ReportIdMa = make([]byte, abi.ReportIDMASize) },
			attest.CheckMigrationAgent, attest.ErrRefused, []string{"REPORT_ID_MA is 0000"}, "REPORT_ID_MA"},
		{"REPORT_ID_MA one byte", func(r *spb.Report) { r.ReportIdMa = append(bytes.Clone(ff[:31]), 0xfe) },
			attest.CheckMigrationAgent, attest.ErrRefused, []string{"fffe"}, "REPORT_ID_MA"},
		{"COMMITTED_TCB below CURRENT_TCB", func(r *spb.Report) {
			r.CommittedTcb = withByte(r.CurrentTcb, tcbSNPByte, byteOf(r.CurrentTcb, tcbSNPByte)-1)
		}, attest.CheckFirmware, attest.ErrRefused, []string{"COMMITTED_TCB", "CURRENT_TCB", "snp differs"}, "COMMITTED_TCB"},
		{"COMMITTED_TCB above CURRENT_TCB", func(r *spb.Report) {
			r.CommittedTcb = withByte(r.CurrentTcb, tcbMicrocodeByte, byteOf(r.CurrentTcb, tcbMicrocodeByte)+1)
		}, attest.CheckFirmware, attest.ErrRefused, []string{"microcode differs"}, "COMMITTED_TCB"},
		{"COMMITTED_TCB differs in a reserved byte", func(r *spb.Report) { r.CommittedTcb = withByte(r.CurrentTcb, tcbReserved2Byte, 1) },
			attest.CheckFirmware, attest.ErrRefused, []string{"reserved byte 2 differs"}, "COMMITTED_TCB"},
		{"committed build below current", func(r *spb.Report) { r.CommittedBuild = r.CurrentBuild - 1 },
			attest.CheckFirmware, attest.ErrRefused, []string{"committed firmware", "is not the current firmware"}, "committed build number"},
		{"committed API version below current", func(r *spb.Report) { r.CommittedMinor = r.CurrentMinor - 1 },
			attest.CheckFirmware, attest.ErrRefused, []string{"committed firmware"}, "committed API version"},
		{"LAUNCH_TCB below the minimum", func(r *spb.Report) {
			r.LaunchTcb = withByte(r.LaunchTcb, tcbBootloaderByte, byteOf(r.LaunchTcb, tcbBootloaderByte)-1)
		}, attest.CheckTCB, attest.ErrRefused, []string{"LAUNCH_TCB", "bootloader was too old"}, "minimum launch TCB"},
		{"REPORTED_TCB not the VCEK's, in a reserved byte", func(r *spb.Report) { r.ReportedTcb = withByte(r.ReportedTcb, tcbReserved2Byte, 1) },
			attest.CheckTCBBinding, attest.ErrNotGenuine, []string{"REPORTED_TCB", "reserved byte 2 differs"}, "REPORTED_TCB"},
		{"REPORTED_TCB below the VCEK's", func(r *spb.Report) {
			r.ReportedTcb = withByte(r.ReportedTcb, tcbSNPByte, byteOf(r.ReportedTcb, tcbSNPByte)-1)
		}, attest.CheckTCBBinding, attest.ErrNotGenuine, []string{"REPORTED_TCB", "snp differs"}, "REPORTED_TCB"},
		{"VCEK's TCB above CURRENT_TCB", func(r *spb.Report) {
			r.CurrentTcb = withByte(r.CurrentTcb, tcbMicrocodeByte, byteOf(r.CurrentTcb, tcbMicrocodeByte)-1)
			r.CommittedTcb = r.CurrentTcb
		}, attest.CheckTCBBinding, attest.ErrNotGenuine, []string{"above the firmware's CURRENT_TCB", "in microcode"}, "CURRENT_TCB"},
	}
}

// changeReport returns raw with change applied to its fields (signature
// left as it was).
func changeReport(t testing.TB, raw []byte, change func(*spb.Report)) []byte {
	t.Helper()
	r, err := abi.ReportToProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	change(r)
	out, err := abi.ReportToAbiBytes(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// goSevGuestOptions are go-sev-guest's validate.Options matching a
// Cleanroom policy with these values (go-sev-guest's GuestPolicy is the
// most a report may allow).
func goSevGuestOptions(measurement [48]byte, reportData [64]byte, debug bool, min uint64) *validate.Options {
	vmpl := 0
	minTCB := kds.DecomposeTCBVersion(kds.TCBVersion(min))
	return &validate.Options{
		GuestPolicy:      abi.SnpPolicy{SMT: true, Debug: debug},
		Measurement:      measurement[:],
		ReportData:       reportData[:],
		ReportIDMA:       bytes.Repeat([]byte{0xff}, abi.ReportIDMASize),
		MinimumTCB:       minTCB,
		MinimumLaunchTCB: minTCB,
		VMPL:             &vmpl,
	}
}

// goSevGuestValidate runs go-sev-guest's validator on evidence.
func goSevGuestValidate(t testing.TB, ev *attest.SNPEvidence, opts *validate.Options) error {
	t.Helper()
	r, err := abi.ReportToProto(ev.Report())
	if err != nil {
		t.Fatal(err)
	}
	return validate.SnpAttestation(&spb.Attestation{Report: r, CertificateChain: &spb.CertificateChain{VcekCert: ev.EndorsementKeyCert()}}, opts)
}

func tcbToMin(raw uint64) contracts.TCB {
	p := kds.DecomposeTCBVersion(kds.TCBVersion(raw))
	return contracts.TCB{Bootloader: p.BlSpl, TEE: p.TeeSpl, SNP: p.SnpSpl, Microcode: p.UcodeSpl}
}

// TestSimulatedReportFields: reports of the simulated platform with one
// field altered, signed again by its VCEK, through VerifyCoordinator (the
// path of attested TLS and of every client).
func TestSimulatedReportFields(t *testing.T) {
	p1, _ := twoPlatforms(t)
	key := newKey(t)
	keys := []*cleanroom.PublicKey{key}
	rd, err := attest.ReportData(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := [48]byte{9, 9}
	good, err := p1.Attest(simulated.Request{Measurement: m, ReportData: rd})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := abi.ReportToProto(good.Report())
	tcb := r.GetReportedTcb()
	cp := simPolicy(p1, m)
	cp.MinTCB = tcbToMin(tcb)
	gsg := goSevGuestOptions(m, rd, false, tcb)

	if _, err := attest.VerifyCoordinator(good, cp, keys, nil); err != nil {
		t.Fatalf("the simulated platform's own report is refused: %v", err)
	}
	if err := goSevGuestValidate(t, good, gsg); err != nil {
		t.Fatalf("go-sev-guest refuses the simulated platform's own report: %v", err)
	}
	for _, tc := range refusedReports() {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := p1.SignReport(changeReport(t, good.Report(), tc.change))
			if err != nil {
				t.Fatal(err)
			}
			_, err = attest.VerifyCoordinator(ev, cp, keys, nil)
			checkFailed(t, err, tc.check, tc.kind, tc.says...)
			if err := goSevGuestValidate(t, ev, gsg); err == nil || !strings.Contains(err.Error(), tc.gsg) {
				t.Errorf("go-sev-guest's validator: %v, want a refusal mentioning %q", err, tc.gsg)
			}
		})
	}
}

// milanChain is go-sev-guest's test-only AMD chain (its published test
// keys, see go-sev-guest/testing) with a VCEK issued, as the real one was,
// for the real Milan report's chip and TCB — or, with certTCB, for another
// TCB.
var milanChains sync.Map // uint64 -> *sgtest.AmdSigner

func milanChain(t testing.TB, certTCB uint64) *sgtest.AmdSigner {
	t.Helper()
	if s, ok := milanChains.Load(certTCB); ok {
		return s.(*sgtest.AmdSigner)
	}
	report, vcekDER := milanFiles(t)
	vcek, err := x509.ParseCertificate(vcekDER)
	if err != nil {
		t.Fatal(err)
	}
	exts, err := kds.VcekCertificateExtensions(vcek)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := abi.ReportToProto(report)
	now := time.Now()
	b := &sgtest.AmdSignerBuilder{
		ProductName:      exts.ProductName,
		ArkCreationTime:  now,
		AskCreationTime:  now,
		AsvkCreationTime: now,
		VcekCreationTime: now,
		VcekCustom: sgtest.CertOverride{
			Extensions: sgtest.CustomExtensions(kds.DecomposeTCBVersion(kds.TCBVersion(certTCB)), r.GetChipId(), "", exts.ProductName),
		},
	}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		t.Fatal(err)
	}
	milanChains.Store(certTCB, s)
	return s
}

// signMilan signs a (changed) copy of the real Milan report with chain's
// VCEK and returns it as evidence under chain's root, which must be pinned
// as a simulated root: it is not AMD's.
func signMilan(t testing.TB, chain *sgtest.AmdSigner, raw []byte) (*attest.SNPEvidence, *attest.Verifier) {
	t.Helper()
	raw = bytes.Clone(raw)
	rr, ss, err := chain.Sign(abi.SignedComponent(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := abi.SetSignature(rr, ss, raw); err != nil {
		t.Fatal(err)
	}
	ev, err := attest.NewSNPEvidence(contracts.PlatformSEVSNPSimulated, raw, chain.Vcek.Raw, chain.Ask.Raw, chain.Ark.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return ev, simVerifier(t, sha256.Sum256(chain.Ark.Raw))
}

// TestMilanReportFields: the real Milan report with one field altered,
// signed again with go-sev-guest's test-only chain for its chip and TCB.
func TestMilanReportFields(t *testing.T) {
	report, _ := milanFiles(t)
	r, _ := abi.ReportToProto(report)
	tcb := r.GetReportedTcb()
	chain := milanChain(t, tcb)
	policy := attest.Policy{
		Measurements:       [][48]byte{mustHex48(t, milanMeasurement)},
		InsecureAllowDebug: true, // the real report comes from a debuggable VM
		ReportData:         mustHex64(t, milanReportData),
		MinTCB:             tcbToMin(tcb),
	}
	gsg := goSevGuestOptions(mustHex48(t, milanMeasurement), *mustHex64(t, milanReportData), true, tcb)

	verifyAndValidate := func(t *testing.T, raw []byte) (*attest.SNPEvidence, error) {
		ev, v := signMilan(t, chain, raw)
		claims, err := v.Verify(ev)
		if err != nil {
			return ev, err
		}
		return ev, policy.Validate(claims)
	}
	// Unchanged but for the signature: accepted by both, as the original is
	// under AMD's chain (TestMilanPolicy).
	ev, err := verifyAndValidate(t, report)
	if err != nil {
		t.Fatalf("the re-signed Milan report is refused: %v", err)
	}
	if err := goSevGuestValidate(t, ev, gsg); err != nil {
		t.Fatalf("go-sev-guest refuses the re-signed Milan report: %v", err)
	}
	for _, tc := range refusedReports() {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := verifyAndValidate(t, changeReport(t, report, tc.change))
			checkFailed(t, err, tc.check, tc.kind, tc.says...)
			if err := goSevGuestValidate(t, ev, gsg); err == nil || !strings.Contains(err.Error(), tc.gsg) {
				t.Errorf("go-sev-guest's validator: %v, want a refusal mentioning %q", err, tc.gsg)
			}
		})
	}
}

// TestEndorsementKeyTCB: a VCEK issued for a TCB other than the report's
// REPORTED_TCB — above it, below it, or differing only in a reserved
// component — is refused by the tcb binding check, on the real Milan report
// (go-sev-guest's test chain) and on the simulated platform (whose VCEK is
// issued for the TCB asked for).
func TestEndorsementKeyTCB(t *testing.T) {
	report, _ := milanFiles(t)
	r, _ := abi.ReportToProto(report)
	tcb := r.GetReportedTcb()
	certs := []struct {
		name    string
		certTCB uint64
		says    string
	}{
		{"above in snp", withByte(tcb, tcbSNPByte, byteOf(tcb, tcbSNPByte)+1), "snp differs"},
		{"above in a reserved component", withByte(tcb, tcbReserved2Byte, 1), "reserved byte 2 differs"},
		{"below in microcode", withByte(tcb, tcbMicrocodeByte, byteOf(tcb, tcbMicrocodeByte)-1), "microcode differs"},
	}
	t.Run("milan", func(t *testing.T) {
		for _, c := range certs {
			t.Run(c.name, func(t *testing.T) {
				ev, v := signMilan(t, milanChain(t, c.certTCB), report)
				_, err := v.Verify(ev)
				checkFailed(t, err, attest.CheckTCBBinding, attest.ErrNotGenuine, "REPORTED_TCB", "certificate was issued for", c.says)
				gsg := goSevGuestOptions(mustHex48(t, milanMeasurement), *mustHex64(t, milanReportData), true, 0)
				if err := goSevGuestValidate(t, ev, gsg); err == nil || !strings.Contains(err.Error(), "V[CL]EK certificate") {
					t.Errorf("go-sev-guest's validator: %v, want a refusal naming the VCEK's TCB", err)
				}
			})
		}
	})
	t.Run("simulated", func(t *testing.T) {
		if testing.Short() {
			t.Skip("makes a simulated platform per case (RSA key generation)")
		}
		simTCB := uint64(0xd5_16_00_00_00_00_00_04) // the default: bootloader 4, snp 22, microcode 213
		for _, c := range []struct {
			name      string
			certTCB   uint64
			reportTCB uint64 // every TCB field of the report
			says      string
		}{
			{"above in snp", withByte(simTCB, tcbSNPByte, 23), simTCB, "snp differs"},
			{"above in a reserved component", withByte(simTCB, tcbReserved2Byte, 1), simTCB, "reserved byte 2 differs"},
		} {
			t.Run(c.name, func(t *testing.T) {
				p, err := simulated.NewWithOptions(simulated.Options{TCB: c.certTCB})
				if err != nil {
					t.Fatal(err)
				}
				v := simVerifier(t, p.RootSHA256())
				own, err := p.Attest(simulated.Request{})
				if err != nil {
					t.Fatal(err)
				}
				// Its own reports show the TCB its VCEK is issued for.
				claims, err := v.Verify(own)
				if err != nil {
					t.Fatalf("the platform's own report: %v", err)
				}
				if claims.SNP.ReportedTCB.Raw != c.certTCB || claims.SNP.CurrentTCB.Raw != c.certTCB {
					t.Fatalf("reported %#x current %#x, want %#x", claims.SNP.ReportedTCB.Raw, claims.SNP.CurrentTCB.Raw, c.certTCB)
				}
				// A report showing another TCB in every field: the VCEK does
				// not speak for it.
				ev, err := p.SignReport(changeReport(t, own.Report(), func(r *spb.Report) {
					r.ReportedTcb, r.CurrentTcb, r.CommittedTcb, r.LaunchTcb = c.reportTCB, c.reportTCB, c.reportTCB, c.reportTCB
				}))
				if err != nil {
					t.Fatal(err)
				}
				_, err = v.Verify(ev)
				checkFailed(t, err, attest.CheckTCBBinding, attest.ErrNotGenuine, "REPORTED_TCB", c.says)
			})
		}
	})
}

func TestSimulatedOptions(t *testing.T) {
	if _, err := simulated.NewWithOptions(simulated.Options{TCB: withByte(0, tcbSNPByte, 200)}); err == nil || !strings.Contains(err.Error(), "TCB") {
		t.Fatalf("a TCB component above 127 was accepted: %v", err)
	}
	p1, _ := twoPlatforms(t)
	if _, err := p1.SignReport(make([]byte, 100)); err == nil {
		t.Fatal("a 100-byte report was signed")
	}
}

// TestReportVersion: a genuine signature over a report whose VERSION is
// outside 2–5 is refused as malformed: its fields cannot be located.
func TestReportVersion(t *testing.T) {
	p1, _ := twoPlatforms(t)
	good, err := p1.Attest(simulated.Request{})
	if err != nil {
		t.Fatal(err)
	}
	v := simVerifier(t, p1.RootSHA256())
	for _, version := range []uint32{0, 1, 6, 0xffffffff} {
		raw := good.Report()
		binary.LittleEndian.PutUint32(raw[0:4], version)
		ev, err := p1.SignReport(raw)
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(ev)
		if !errors.Is(err, attest.ErrMalformed) || !strings.Contains(err.Error(), fmt.Sprintf("VERSION is %d", version)) {
			t.Errorf("version %d: %v, want a malformed report naming its VERSION", version, err)
		}
	}
}
