package bundle_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/internal/bundletest"
)

// One world (simulated coordinator, log, contract, uploads) serves every
// test of the package: runs only append to its log.
var (
	worldOnce sync.Once
	theWorld  *bundletest.World
	worldErr  error

	honestOnce sync.Once
	honestRun  *bundletest.Run
	honestErr  error
)

func world(t testing.TB) *bundletest.World {
	t.Helper()
	worldOnce.Do(func() { theWorld, worldErr = bundletest.New() })
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
