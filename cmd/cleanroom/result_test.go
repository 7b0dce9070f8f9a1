package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/internal/bundletest"
)

// resultFixture makes a simulated coordinator with its log and contract
// (cleanroom/bundle/bundletest) and the bundles the result scripts use,
// keyed by file name:
//
//	contract.yaml, other.yaml    the contract, and one that differs only in its name
//	NAME.key, NAME.pub           publisher, advertiser, measurer (recipients: advertiser, measurer), auditor
//	bundle.cbor                  an honest run's bundle
//	v1.cbor                      bundle.cbor with its version set to 1, the format before salted result commitments
//	tampered-statement.cbor      bundle.cbor with a bit of the statement's signature flipped
//	bad-upload.cbor              a run whose coordinator signed the conversions upload statement as the impressions one
//	dp-contract.yaml             a contract in differential-privacy mode (ε 3 at 0.5 a run, δ 1e-6 at 1e-7)
//	dp-advertiser.key            its recipient advertiser's key
//	dp-bundle.cbor               the bundle of its second run
func resultFixture(t *testing.T) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	w, err := bundletest.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, name := range []string{"contract.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	for _, id := range bundletest.ParticipantIDs {
		for _, ext := range []string{".key", ".pub"} {
			b, err := os.ReadFile(filepath.Join(dir, id+ext))
			if err != nil {
				t.Fatal(err)
			}
			files[id+ext] = b
		}
	}
	files["other.yaml"] = bytes.Replace(w.ContractText, []byte("name: bundle-test"), []byte("name: other-contract"), 1)

	ctx := context.Background()
	marshal := func(b *bundle.Bundle) []byte {
		data, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	honest, err := w.Run(ctx, bundletest.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files["bundle.cbor"] = marshal(honest.Bundle)
	files["v1.cbor"] = bytes.Replace(files["bundle.cbor"], []byte("\x67version\x02"), []byte("\x67version\x01"), 1)
	tampered := *honest.Bundle
	tampered.Statement = bytes.Clone(tampered.Statement)
	tampered.Statement[len(tampered.Statement)-1] ^= 1
	files["tampered-statement.cbor"] = marshal(&tampered)
	bad, err := w.Run(ctx, bundletest.RunOptions{Unchecked: true, EditStatement: func(s *bundle.Statement) {
		s.Datasets[0].UploadStatement = w.Uploads["conversions"].Signed
	}})
	if err != nil {
		t.Fatal(err)
	}
	files["bad-upload.cbor"] = marshal(bad.Bundle)

	// A contract whose runs are differentially private, and the bundle of
	// its second run.
	dp, err := bundletest.NewWith(bundletest.Options{DifferentialPrivacy: "{epsilon_total: 3, delta_total: 1.0e-6, " +
		"epsilon_per_run: 0.5, delta_per_run: 1.0e-7, max_groups_contributed: 1, max_contributions_per_group: 1}"})
	if err != nil {
		t.Fatal(err)
	}
	files["dp-contract.yaml"] = dp.ContractText
	if files["dp-advertiser.key"], err = dp.Keys["advertiser"].MarshalText(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		run, err := dp.Run(ctx, bundletest.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		files["dp-bundle.cbor"] = marshal(run.Bundle)
	}
	return files
}

// TestResultScripts runs the scripts in testdata/result with the files of
// resultFixture in the work directory.
func TestResultScripts(t *testing.T) {
	files := resultFixture(t)
	p := scriptParams(filepath.Join("testdata", "result"))
	p.Setup = func(env *testscript.Env) error {
		for name, b := range files {
			perm := os.FileMode(0o644)
			if strings.HasSuffix(name, ".key") {
				perm = 0o600
			}
			if err := os.WriteFile(filepath.Join(env.WorkDir, name), b, perm); err != nil {
				return err
			}
		}
		return nil
	}
	testscript.Run(t, p)
}

// openPTY returns the terminal end of a new pseudo-terminal.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlocking a pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Skipf("naming a pseudo-terminal: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR, 0)
	if err != nil {
		t.Skipf("opening a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty
}

// TestResultShowRefusesTerminal checks that binary formats are not written
// to a terminal, and that other character devices (/dev/null) are not
// taken for one.
func TestResultShowRefusesTerminal(t *testing.T) {
	tty := openPTY(t)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, format := range []string{"parquet", "arrow", "arrows"} {
		args := []string{"result", "show", "bundle.cbor", "--key", "k.key", "--contract", "c.yaml", "--format", format}
		var stderr bytes.Buffer
		code := run(args, strings.NewReader(""), tty, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "is binary and stdout is a terminal") || !strings.Contains(stderr.String(), "--out FILE") {
			t.Errorf("%s to a terminal: exit %d: %s", format, code, stderr.String())
		}
		stderr.Reset()
		run(args, strings.NewReader(""), devnull, &stderr)
		if strings.Contains(stderr.String(), "terminal") {
			t.Errorf("%s to /dev/null: taken for a terminal: %s", format, stderr.String())
		}
	}
}
