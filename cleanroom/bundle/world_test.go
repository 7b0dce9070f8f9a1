package bundle_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/bundle/bundletest"
)

// One world (simulated coordinator, log, contract, uploads) serves every
// test of the package: making it measures the test binary and opens a log,
// and runs only append to it.
var (
	worldOnce sync.Once
	theWorld  *bundletest.World
	worldErr  error
	worldDir  string

	honestOnce sync.Once
	honestRun  *bundletest.Run
	honestErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theWorld != nil {
		theWorld.Close()
	}
	if dpWorld != nil {
		dpWorld.Close()
		os.RemoveAll(dpWorld.Dir)
	}
	if worldDir != "" {
		os.RemoveAll(worldDir)
	}
	os.Exit(code)
}

func world(t testing.TB) *bundletest.World {
	t.Helper()
	worldOnce.Do(func() {
		if worldDir, worldErr = os.MkdirTemp("", "bundle-test-"); worldErr != nil {
			return
		}
		theWorld, worldErr = bundletest.New(worldDir)
	})
	if worldErr != nil {
		t.Fatalf("making the test world: %v", worldErr)
	}
	return theWorld
}

// honest returns the bundle of an honest run, shared by the tests that only
// read it or tamper with copies.
func honest(t testing.TB) *bundletest.Run {
	t.Helper()
	w := world(t)
	honestOnce.Do(func() { honestRun, honestErr = w.Run(context.Background(), bundletest.RunOptions{}) })
	if honestErr != nil {
		t.Fatalf("honest run: %v", honestErr)
	}
	return honestRun
}

// clone deep-copies a bundle so a test can alter it.
func clone(b *bundle.Bundle) *bundle.Bundle {
	return &bundle.Bundle{
		Statement:       bytes.Clone(b.Statement),
		Evidence:        bytes.Clone(b.Evidence),
		CoordinatorKey:  bytes.Clone(b.CoordinatorKey),
		EncryptedResult: bytes.Clone(b.EncryptedResult),
		RunStarted:      bundle.LogEntry{Entry: bytes.Clone(b.RunStarted.Entry), Proof: bytes.Clone(b.RunStarted.Proof)},
		RunFinished:     bundle.LogEntry{Entry: bytes.Clone(b.RunFinished.Entry), Proof: bytes.Clone(b.RunFinished.Proof)},
	}
}

func describeSteps(r *bundle.Report) string {
	if r == nil {
		return "(no report)"
	}
	var b bytes.Buffer
	for _, s := range r.Steps {
		mark := "✓"
		if !s.OK {
			mark = "✗"
		}
		fmt.Fprintf(&b, "  %s %s: %s\n", mark, s.Step, s.Detail)
	}
	return b.String()
}
