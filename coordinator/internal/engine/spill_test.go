package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestSpillLockdown: with a spill directory, the session spills only to
// encrypted temporary files in a directory of its own (mode 0700), capped
// by MaxSpill; SQL still cannot reach a file, the spill directory
// included; and Close removes the directory.
func TestSpillLockdown(t *testing.T) {
	parent := t.TempDir()
	s, err := New(Config{MemoryLimit: 64 << 20, Threads: 1, SpillDir: parent, MaxSpill: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.SpillDir()
	if filepath.Dir(dir) != parent {
		t.Fatalf("the session spills to %q, not a directory of its own in %q", dir, parent)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the session's spill directory: %v, %v", fi, err)
	}
	got, err := s.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"temp_directory":          dir,
		"temp_file_encryption":    "true",
		"max_temp_directory_size": "1.0 GiB",
		"enable_external_access":  "false",
		"lock_configuration":      "true",
	} {
		if got[name] != want {
			t.Errorf("setting %s = %q, want %q", name, got[name], want)
		}
	}
	// DuckDB lets SQL reach its own temporary directory even with external
	// access off, so at the sandbox layer the spill directory is reachable
	// (and nothing else is); the statement check is what keeps a query
	// from it: no COPY, no file-reading table function.
	conn := openRawConn(t, s)
	for _, q := range []string{
		"SELECT count(*) FROM glob('" + parent + "/*')",
		"SELECT * FROM read_blob('" + filepath.Join(parent, "x") + "')",
		"COPY (SELECT 1) TO '" + filepath.Join(parent, "x.csv") + "'",
		"SET temp_file_encryption = false",
		"SET temp_directory = '" + parent + "'",
	} {
		if err := rawExec(conn, q); err == nil {
			t.Errorf("%s: ran in a spilling session", q)
		}
	}
	for _, q := range []string{
		"SELECT count(*) AS n FROM glob('" + dir + "/*')",
		"SELECT content AS c FROM read_blob('" + filepath.Join(dir, "x") + "')",
		"SELECT * FROM read_csv('" + filepath.Join(dir, "x.csv") + "')",
		"COPY (SELECT 1) TO '" + filepath.Join(dir, "x.csv") + "'",
	} {
		q2, err := New(Config{MemoryLimit: 64 << 20, Threads: 1, SpillDir: parent})
		if err != nil {
			t.Fatal(err)
		}
		_, err = q2.Run(context.Background(), q, noThreshold)
		q2.Close()
		var re *RefusalError
		if !errors.As(err, &re) || re.Layer != LayerStatement {
			t.Errorf("%s: the statement check did not refuse it: %v", q, err)
		}
	}
	conn.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the session's spill directory is still there after Close: %v", err)
	}
	if left, _ := os.ReadDir(parent); len(left) > 0 {
		t.Errorf("Config.SpillDir holds %d entries after Close", len(left))
	}
}
