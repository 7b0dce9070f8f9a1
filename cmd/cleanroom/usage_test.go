package main

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// leafCommands returns the path of every runnable command under root.
func leafCommands(root *cobra.Command) [][]string {
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.Runnable() && c != root {
			out = append(out, path)
		}
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(root, nil)
	return out
}

// TestUsageErrorsExit2: every command called wrongly — an unknown flag,
// too many arguments, or nothing of what it needs — exits 2 with an error
// on stderr and nothing on stdout, before it reads or writes anything.
func TestUsageErrorsExit2(t *testing.T) {
	for _, name := range []string{"CLEANROOM_CONTRACT", "CLEANROOM_KEY", "CLEANROOM_COORDINATOR"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	t.Chdir(t.TempDir())
	// The commands that do their job with no argument and no flag.
	needNothing := map[string]bool{"contract init": true}
	cmds := leafCommands(newRoot(newCLI(nil, &bytes.Buffer{}, &bytes.Buffer{})))
	if len(cmds) < 25 {
		t.Fatalf("found only %d commands", len(cmds))
	}
	for _, path := range cmds {
		name := strings.Join(path, " ")
		calls := map[string][]string{
			"an unknown flag":    append(append([]string{}, path...), "--no-such-flag"),
			"too many arguments": append(append([]string{}, path...), "a1", "a2", "a3", "a4", "a5"),
		}
		if !needNothing[name] {
			calls["nothing"] = path
		}
		for what, args := range calls {
			var stdout, stderr bytes.Buffer
			rc := run(args, strings.NewReader(""), &stdout, &stderr)
			if rc != 2 || !strings.Contains(stderr.String(), "cleanroom: error: ") || stdout.Len() > 0 {
				t.Errorf("cleanroom %s with %s: exit %d, want 2 with an error and no output\nstdout: %s\nstderr: %s", name, what, rc, stdout.String(), stderr.String())
			}
		}
	}
	for _, path := range cmds {
		name := strings.Join(path, " ")
		cmd, _, err := newRoot(newCLI(nil, &bytes.Buffer{}, &bytes.Buffer{})).Find(path)
		if err != nil {
			t.Fatal(err)
		}
		positional, required := usageLine(cmd.Use)
		if len(required) == 0 {
			continue
		}
		// Every required flag missing: all of them named in one error.
		args := append(append([]string{}, path...), slices.Repeat([]string{"x"}, positional)...)
		var stdout, stderr bytes.Buffer
		rc := run(args, strings.NewReader(""), &stdout, &stderr)
		for _, f := range required {
			if rc != 2 || !strings.Contains(stderr.String(), f) {
				t.Errorf("cleanroom %s with no flags: exit %d, want 2 naming every required flag (%s)\nstderr: %s", name, rc, strings.Join(required, ", "), stderr.String())
				break
			}
		}
	}
	if entries, _ := os.ReadDir("."); len(entries) > 0 {
		t.Errorf("usage errors wrote %d files", len(entries))
	}
}

// usageLine reads a command's usage line: the number of positional
// arguments (a parenthesised choice that starts with one counts as one)
// and the flags it requires (those outside brackets and choices).
func usageLine(use string) (positional int, required []string) {
	tokens := strings.Fields(use)[1:]
	depth := 0
	for i := 0; i < len(tokens); i++ {
		tok := tokens[i]
		open := strings.Count(tok, "[") + strings.Count(tok, "(")
		if depth == 0 && strings.HasPrefix(tok, "(") && !strings.HasPrefix(tok, "(--") {
			positional++
		}
		depth += open
		closeN := strings.Count(tok, "]") + strings.Count(tok, ")")
		if depth == 0 && open == 0 {
			switch {
			case strings.HasPrefix(tok, "--"):
				if !slices.Contains(required, tok) {
					required = append(required, tok)
				}
				if i+1 < len(tokens) && !strings.HasPrefix(tokens[i+1], "-") && !strings.ContainsAny(tokens[i+1], "[(") {
					i++
				}
			case tok != "..." && tok != "|":
				positional++
			}
		}
		depth -= closeN
	}
	return positional, required
}
