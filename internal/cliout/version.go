package cliout

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Build describes the executable that runs: what a measurement or a bug
// report is pinned to.
type Build struct {
	// Module is the main module's version ("(devel)" for a build from a
	// working tree).
	Module string
	// Revision is the VCS revision the build was made from, "" when the
	// build carries none (go run, go test); Modified reports uncommitted
	// changes in the working tree, Time the revision's commit time.
	Revision string
	Modified bool
	Time     string
	// Go is the toolchain and platform, e.g. "go1.26.8 linux/amd64".
	Go string
}

// ReadBuild returns this executable's build information, as the Go
// toolchain embedded it.
func ReadBuild() Build {
	b := Build{Module: "(unknown)", Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Version != "" {
		b.Module = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		case "vcs.time":
			b.Time = s.Value
		}
	}
	return b
}

// Lines renders the build as "label value" lines, with extra lines (label,
// value pairs) after the standard ones.
func (b Build) Lines(prog string, extra ...[2]string) string {
	rev := b.Revision
	switch {
	case rev == "":
		rev = "none recorded (built outside a version-control checkout, or by go run/go test)"
	case b.Modified:
		rev += " (with uncommitted changes)"
	}
	rows := [][2]string{{prog, b.Module}, {"revision", rev}}
	if b.Time != "" {
		rows = append(rows, [2]string{"commit time", b.Time})
	}
	rows = append(rows, [2]string{"go", b.Go})
	rows = append(rows, extra...)
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&sb, "%-*s  %s\n", width, r[0], r[1])
	}
	return sb.String()
}

// SetVersion gives root a --version flag that prints what text returns on
// stdout (computed only then); without it, root prints its help.
func (c *CLI) SetVersion(root *cobra.Command, text func() (string, error)) {
	version := root.Flags().Bool("version", false, "print the build (module version, VCS revision, Go) and exit")
	root.Args = cobra.NoArgs
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		if !*version {
			return cmd.Help()
		}
		t, err := text()
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(c.Stdout, t)
		return err
	}
}
