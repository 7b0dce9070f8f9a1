package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestPlatformScripts runs the attestation scripts of the TDX, Nitro and
// CCA real samples, copied into each script's work directory from
// cleanroom/attest/testdata (whose README.md says where they come from).
func TestPlatformScripts(t *testing.T) {
	p := scriptParams("testdata/platforms")
	p.Setup = func(env *testscript.Env) error {
		for _, dir := range []string{"tdx", "nitro", "cca"} {
			src := filepath.Join("..", "..", "cleanroom", "attest", "testdata", dir)
			entries, err := os.ReadDir(src)
			if err != nil {
				return err
			}
			if err := os.Mkdir(filepath.Join(env.WorkDir, dir), 0o755); err != nil {
				return err
			}
			for _, e := range entries {
				data, err := os.ReadFile(filepath.Join(src, e.Name()))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(env.WorkDir, dir, e.Name()), data, 0o644); err != nil {
					return err
				}
			}
		}
		return nil
	}
	testscript.Run(t, p)
}
