// Package fuzzseed writes fuzz seed corpora in the format `go test` reads
// from testdata/fuzz/<Target>/, so seeds live in the repository and every
// `go test` run replays them.
package fuzzseed

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Update is set by -update-seeds: tests that produce seeds write them only
// then.
var Update = flag.Bool("update-seeds", false, "rewrite the committed fuzz seed corpora under testdata/fuzz")

// Write replaces the seed corpus of target with one file per input. Each
// input is a list of the fuzz function's arguments ([]byte or string).
func Write(t testing.TB, target string, inputs ...[]any) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, args := range inputs {
		body := "go test fuzz v1\n"
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				body += fmt.Sprintf("[]byte(%q)\n", v)
			case string:
				body += fmt.Sprintf("string(%q)\n", v)
			default:
				t.Fatalf("fuzzseed: unsupported argument type %T", a)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%03d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Bytes wraps each input as a single []byte argument.
func Bytes(inputs ...[]byte) [][]any {
	out := make([][]any, len(inputs))
	for i, in := range inputs {
		out[i] = []any{in}
	}
	return out
}
