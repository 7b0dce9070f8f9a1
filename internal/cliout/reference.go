package cliout

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Reference writes the command reference of docs/cli.md for a program:
// every runnable command under root, in the order of the tree, with its
// usage line, its description and a table of its flags (name and value,
// default, meaning). It is generated from the commands themselves, so the
// reference cannot drift from them (the commands' tests compare it with
// the file).
func Reference(root *cobra.Command) string {
	var b strings.Builder
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c.Runnable() && c != root {
			writeCommand(&b, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return b.String()
}

func writeCommand(b *strings.Builder, c *cobra.Command) {
	path := c.CommandPath()
	fmt.Fprintf(b, "### %s\n\n", path)
	use := c.Use
	if i := strings.IndexByte(use, ' '); i >= 0 {
		use = path + use[i:]
	} else {
		use = path
	}
	fmt.Fprintf(b, "```\n%s\n```\n\n", use)
	text := strings.TrimSpace(c.Long)
	if text == "" {
		text = c.Short
	}
	if text != "" {
		fmt.Fprintf(b, "%s\n\n", indentCode(text))
	}
	var rows []string
	c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		name := "--" + f.Name
		if f.Shorthand != "" {
			name = "-" + f.Shorthand + ", " + name
		}
		if vn, _ := pflag.UnquoteUsage(f); vn != "" {
			name += " " + vn
		}
		def := f.DefValue
		switch {
		case def == "" || def == "[]" || (f.Value.Type() == "bool" && def == "false"):
			def = ""
		default:
			def = "`" + def + "`"
		}
		usage := strings.ReplaceAll(f.Usage, "|", `\|`)
		rows = append(rows, fmt.Sprintf("| `%s` | %s | %s |", name, def, usage))
	})
	if len(rows) > 0 {
		b.WriteString("| flag | default | meaning |\n| --- | --- | --- |\n")
		b.WriteString(strings.Join(rows, "\n"))
		b.WriteString("\n\n")
	}
}

// indentCode keeps a description's indented lines (examples, lists) as
// they are written: markdown would otherwise reflow them into the
// paragraph, so an indented block is fenced.
func indentCode(text string) string {
	lines := strings.Split(text, "\n")
	var out []string
	inBlock := false
	for _, l := range lines {
		indented := strings.HasPrefix(l, "  ")
		switch {
		case indented && !inBlock:
			out = append(out, "```")
			inBlock = true
		case !indented && inBlock && strings.TrimSpace(l) != "":
			out = append(out, "```")
			inBlock = false
		}
		out = append(out, l)
	}
	if inBlock {
		if out[len(out)-1] == "" {
			out = out[:len(out)-1]
			out = append(out, "```", "")
		} else {
			out = append(out, "```")
		}
	}
	return strings.Join(out, "\n")
}

// Markers delimit the generated reference of one program in docs/cli.md.
func Markers(prog string) (begin, end string) {
	return "<!-- BEGIN GENERATED: " + prog + " commands (a test writes this part from the commands; edit the commands, not this) -->",
		"<!-- END GENERATED: " + prog + " commands -->"
}

// CheckReference compares the part of the file at path between prog's
// markers with want. With update set, it writes want there instead. It
// returns a description of the difference, or "".
func CheckReference(path, prog, want string, update bool) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	text := string(data)
	begin, end := Markers(prog)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("%s lacks the markers %q and %q", path, begin, end)
	}
	got := text[i+len(begin) : j]
	want = "\n\n" + want
	if got == want {
		return "", nil
	}
	if update {
		return "", os.WriteFile(path, []byte(text[:i+len(begin)]+want+text[j:]), 0o644)
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for k := 0; k < min(len(gl), len(wl)); k++ {
		if gl[k] != wl[k] {
			return fmt.Sprintf("line %d of the %s reference: the file has\n\t%s\nthe commands say\n\t%s", k+1, prog, gl[k], wl[k]), nil
		}
	}
	return fmt.Sprintf("the %s reference has %d lines; the commands give %d", prog, len(gl), len(wl)), nil
}
