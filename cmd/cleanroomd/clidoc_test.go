package main

import (
	"bytes"
	"flag"
	"testing"

	"cleanroom.dev/cleanroom/internal/cliout"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated command reference in docs/cli.md")

// TestCLIReference: the cleanroomd part of the command reference in
// docs/cli.md is the one the commands generate (go test ./cmd/cleanroomd
// -run TestCLIReference -update-docs rewrites it).
func TestCLIReference(t *testing.T) {
	root := newRoot(cliout.New("cleanroomd", nil, &bytes.Buffer{}, &bytes.Buffer{}))
	diff, err := cliout.CheckReference("../../docs/cli.md", "cleanroomd", cliout.Reference(root), *updateDocs)
	if err != nil {
		t.Fatal(err)
	}
	if diff != "" {
		t.Fatalf("docs/cli.md is out of date (go test ./cmd/cleanroomd -run TestCLIReference -update-docs): %s", diff)
	}
}
