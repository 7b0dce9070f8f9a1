package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestDatasetInspectScripts runs the scripts in testdata/dataset-inspect
// with envelope files from the envelope test vectors
// (testdata/envelope/vectors.json at the repository root) in the work
// directory: several.env (a dataset in four 64-byte segments), empty.env (a
// dataset with empty plaintext), result.env (a result to two recipients),
// and pieces of several.env: short.env (cut inside the header),
// headeronly.env (no segments) and cut.env (cut 5 bytes into segment 3).
// They are fixed bytes, so the scripts can compare whole outputs.
func TestDatasetInspectScripts(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "envelope", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vf struct {
		Valid []struct {
			Name     string `json:"name"`
			Envelope string `json:"envelope"`
		} `json:"valid"`
	}
	if err := json.Unmarshal(data, &vf); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"several segments": "several.env", "empty plaintext": "empty.env", "result to two recipients": "result.env"}
	fixtures := map[string][]byte{}
	for _, v := range vf.Valid {
		if name, ok := files[v.Name]; ok {
			b, err := hex.DecodeString(v.Envelope)
			if err != nil {
				t.Fatal(err)
			}
			fixtures[name] = b
		}
	}
	if len(fixtures) != len(files) {
		t.Fatalf("found %d of the %d vectors the scripts use", len(fixtures), len(files))
	}
	several := fixtures["several.env"]
	fixtures["short.env"] = several[:1000]
	fixtures["headeronly.env"] = several[:1331]
	fixtures["cut.env"] = several[:1331+3*80+5]
	p := scriptParams(filepath.Join("testdata", "dataset-inspect"))
	p.Setup = func(env *testscript.Env) error {
		for name, b := range fixtures {
			if err := os.WriteFile(filepath.Join(env.WorkDir, name), b, 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	testscript.Run(t, p)
}
