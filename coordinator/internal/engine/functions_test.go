package engine

import (
	"context"
	"database/sql/driver"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
)

var update = flag.Bool("update", false, "rewrite the committed snapshot of DuckDB's functions")

// snapshotPath is the list of DuckDB's functions the statement check's
// allow-lists classify (see cleanroom/sqlcheck/functions.go).
var snapshotPath = filepath.Join("..", "..", "..", "cleanroom", "sqlcheck", "testdata", "duckdb_functions.tsv")

const snapshotHeader = `# Every function DuckDB lists in duckdb_functions() inside a locked-down
# engine session (with the engine's dataset scan registered), except PRAGMA
# functions, which no SELECT can call: function type, schema, name.
# Written by: go test -tags duckdb_arrow ./coordinator/internal/engine -run TestFunctionSnapshot -update
# cleanroom/sqlcheck's TestEveryFunctionClassified requires each name to be
# classified by its allow-lists.
`

// query runs a query on a raw connection of the session, for tests.
func (s *Session) rawQuery(t testing.TB, q string) [][]driver.Value {
	t.Helper()
	conn, err := s.connector.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.(driver.QueryerContext).QueryContext(context.Background(), q, nil)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out [][]driver.Value
	for {
		dest := make([]driver.Value, len(rows.Columns()))
		if err := rows.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatal(err)
		}
		out = append(out, dest)
	}
}

// TestFunctionSnapshot fails when the DuckDB linked into the engine lists
// other functions than the committed snapshot the allow-lists were reviewed
// against: after a DuckDB upgrade, rerun it with -update and classify what
// changed in cleanroom/sqlcheck/functions.go.
func TestFunctionSnapshot(t *testing.T) {
	s := newSession(t, Config{Threads: 1, MemoryLimit: 64 << 20})
	var b strings.Builder
	b.WriteString(snapshotHeader)
	for _, r := range s.rawQuery(t, `SELECT DISTINCT function_type, schema_name, function_name FROM duckdb_functions()
		WHERE function_type <> 'pragma' ORDER BY function_type, schema_name, function_name`) {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", r[0], r[1], r[2])
	}
	if *update {
		if err := os.WriteFile(snapshotPath, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(snapshotPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		var added, removed []string
		for _, l := range gl {
			if !slices.Contains(wl, l) {
				added = append(added, l)
			}
		}
		for _, l := range wl {
			if !slices.Contains(gl, l) {
				removed = append(removed, l)
			}
		}
		t.Errorf("DuckDB's functions differ from %s (rerun with -update, then classify them in cleanroom/sqlcheck/functions.go):\nnew: %q\ngone: %q",
			snapshotPath, added, removed)
	}
}

// TestAllowedMacrosPassTheCheck runs the body of every macro the allow-list
// allows through the statement check: a macro expands into its body, so an
// allowed macro must call only allowed functions and read no relation.
func TestAllowedMacrosPassTheCheck(t *testing.T) {
	s := newSession(t, Config{Threads: 1, MemoryLimit: 64 << 20})
	allowed := sqlcheck.ExpressionFunctions()
	conn, err := s.connector.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n := 0
	for _, r := range s.rawQuery(t, `SELECT function_name, macro_definition FROM duckdb_functions() WHERE function_type = 'macro' ORDER BY ALL`) {
		name, def := r[0].(string), r[1].(string)
		v, ok := allowed[name]
		if !ok {
			t.Errorf("macro %s is not classified", name)
			continue
		}
		if !v.Allowed {
			continue
		}
		n++
		if _, err := checkStatement(context.Background(), conn, "SELECT "+def, nil, nil); err != nil {
			t.Errorf("allowed macro %s: its body %q: %v", name, def, err)
		}
	}
	if n < 50 {
		t.Errorf("only %d allowed macros checked", n)
	}
}
