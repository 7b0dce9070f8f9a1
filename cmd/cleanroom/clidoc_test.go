package main

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/internal/cliout"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated command reference in docs/cli.md")

func testRoot() *cobra.Command {
	c := newCLI(nil, &bytes.Buffer{}, &bytes.Buffer{})
	root := newRoot(c)
	c.SetVersion(root, func() (string, error) { return "", nil })
	return root
}

// TestCLIReference: the command reference in docs/cli.md is the one the
// commands generate (go test ./cmd/cleanroom -run TestCLIReference
// -update-docs rewrites it).
func TestCLIReference(t *testing.T) {
	diff, err := cliout.CheckReference("../../docs/cli.md", "cleanroom", cliout.Reference(testRoot()), *updateDocs)
	if err != nil {
		t.Fatal(err)
	}
	if diff != "" {
		t.Fatalf("docs/cli.md is out of date (go test ./cmd/cleanroom -run TestCLIReference -update-docs): %s", diff)
	}
}

var flagRE = regexp.MustCompile(`--[a-z][a-z0-9-]*`)

// TestUsageLinesNameRealFlags: every flag a usage line names exists.
func TestUsageLinesNameRealFlags(t *testing.T) {
	for _, path := range leafCommands(testRoot()) {
		cmd, _, err := testRoot().Find(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flagRE.FindAllString(cmd.Use, -1) {
			if cmd.Flags().Lookup(f[2:]) == nil {
				t.Errorf("cleanroom %s: the usage line names %s, which the command does not have", strings.Join(path, " "), f)
			}
		}
	}
}

// TestREADMECLISummary: the CLI summary in README.md names every command,
// each with the flags its usage line names, and no flag a command lacks.
func TestREADMECLISummary(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n## CLI\n")
	if start < 0 {
		t.Fatal("README.md has no CLI section")
	}
	section := text[start:]
	section = section[:strings.Index(section[1:], "\n## ")+1]
	block := section[strings.Index(section, "```\n")+4:]
	block = block[:strings.Index(block, "```")]
	// Each command's line with its continuation lines (indented), comments
	// dropped.
	lines := map[string]string{}
	var cur string
	for _, l := range strings.Split(block, "\n") {
		code, _, _ := strings.Cut(l, "#")
		switch {
		case strings.HasPrefix(l, "cleanroom "):
			cur = strings.Join(strings.Fields(code), " ")
			lines[cur] = cur
		case cur != "" && strings.HasPrefix(l, " "):
			lines[cur] += " " + strings.Join(strings.Fields(code), " ")
		}
	}
	root := testRoot()
	found := map[string]bool{}
	for key, line := range lines {
		words := strings.Fields(line)[1:]
		cmd, _, err := root.Find(words)
		if err != nil || (cmd == root && !strings.HasPrefix(words[0], "--")) {
			t.Errorf("README names a command that does not exist: %s", key)
			continue
		}
		found[cmd.CommandPath()] = true
		for _, f := range flagRE.FindAllString(line, -1) {
			if cmd.Flags().Lookup(f[2:]) == nil {
				t.Errorf("README: %s has no flag %s: %s", cmd.CommandPath(), f, key)
			}
		}
		for _, f := range flagRE.FindAllString(cmd.Use, -1) {
			if !strings.Contains(line+" ", f+" ") && !strings.Contains(line, f+"]") && !strings.Contains(line, f+")") {
				t.Errorf("README: the line of %s lacks %s, which its usage line names: %s", cmd.CommandPath(), f, key)
			}
		}
	}
	for _, path := range leafCommands(root) {
		if name := "cleanroom " + strings.Join(path, " "); !found[name] {
			t.Errorf("README's CLI summary lacks %s", name)
		}
	}
}
