package scenario

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/connectors"
)

func TestFill(t *testing.T) {
	tmpl := []byte("a: \"{{A}}\"\nb: [\"{{B_2}}\", \"{{A}}\"]\n# {{lower}} and {{ A }} are not placeholders\n")
	if got := Placeholders(tmpl); strings.Join(got, ",") != "A,B_2" {
		t.Fatalf("placeholders %v", got)
	}
	out, err := Fill(tmpl, map[string]string{"A": "cleanroom-pub-1:abc_-", "B_2": "2027-01-01T00:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	want := "a: \"cleanroom-pub-1:abc_-\"\nb: [\"2027-01-01T00:00:00Z\", \"cleanroom-pub-1:abc_-\"]\n# {{lower}} and {{ A }} are not placeholders\n"
	if string(out) != want {
		t.Errorf("filled:\n%s\nwant:\n%s", out, want)
	}
	for _, tc := range []struct {
		name   string
		values map[string]string
		want   string
	}{
		{"missing", map[string]string{"A": "x"}, "no value for {{B_2}}"},
		{"unknown", map[string]string{"A": "x", "B_2": "y", "C": "z"}, "no placeholder {{C}}"},
		{"quote", map[string]string{"A": `x", evil: "y`, "B_2": "y"}, "not allowed"},
		{"backslash", map[string]string{"A": `x\`, "B_2": "y"}, "not allowed"},
		{"newline", map[string]string{"A": "x\nevil: y", "B_2": "y"}, "not allowed"},
		{"non-ascii", map[string]string{"A": "é", "B_2": "y"}, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fill(tmpl, tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

var testResult = MustColumns("campaign", "string", "users", "int64", "revenue", "decimal(38,2)")

// writeExpected writes an expected-results file with two released groups
// and one suppressed.
func writeExpected(t *testing.T, dir string) string {
	t.Helper()
	o, err := NewOutput(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = WriteExpected(o, testResult, [][]any{
		{"a", int64(60), int64(12345), true},
		{"b", int64(3), int64(100), false},
		{"c", int64(50), int64(5), true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, ExpectedFile)
}

func TestExpectedFileFormat(t *testing.T) {
	path := writeExpected(t, t.TempDir())
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "campaign,users,revenue,released\na,60,123.45,true\nb,3,1.00,false\nc,50,0.05,true\n"
	if string(got) != want {
		t.Errorf("expected.csv:\n%s\nwant:\n%s", got, want)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	exp := writeExpected(t, dir)
	for _, tc := range []struct {
		name       string
		result     string
		suppressed int64
		want       string // "" for a match
	}{
		{"match", "campaign,users,revenue\na,60,123.45\nc,50,0.05\n", 1, ""},
		{"match, suppressed unknown", "campaign,users,revenue\na,60,123.45\nc,50,0.05\n", -1, ""},
		{"match, other spelling of a decimal", "campaign,users,revenue\na,60,123.450\nc,50,.05\n", -1, ""},
		{"columns in another order", "users,campaign,revenue\n60,a,123.45\n50,c,0.05\n", -1, ""},
		{"wrong value", "campaign,users,revenue\na,61,123.45\nc,50,0.05\n", -1, "row 1 (campaign a): users is 61, expected 60"},
		{"wrong revenue", "campaign,users,revenue\na,60,123.44\nc,50,0.05\n", -1, "revenue is 123.44, expected 123.45"},
		{"missing row", "campaign,users,revenue\na,60,123.45\n", -1, "row 2 is missing: expected campaign=c"},
		{"suppressed row released", "campaign,users,revenue\na,60,123.45\nb,3,1.00\nc,50,0.05\n", -1, "row 2 is campaign=b users=3 revenue=1, expected campaign=c users=50 revenue=0.05"},
		{"extra row", "campaign,users,revenue\na,60,123.45\nc,50,0.05\nd,70,1\n", -1, "row 3 is not expected: campaign=d"},
		{"wrong order", "campaign,users,revenue\nc,50,0.05\na,60,123.45\n", -1, "row 1 is campaign=c users=50 revenue=0.05, expected campaign=a"},
		{"suppressed count", "campaign,users,revenue\na,60,123.45\nc,50,0.05\n", 2, "2 rows were suppressed, expected 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := filepath.Join(t.TempDir(), "result.csv")
			if err := os.WriteFile(res, []byte(tc.result), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Check(exp, res, testResult, tc.suppressed)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected mismatch: %v", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want a mismatch containing %q", err, tc.want)
			}
		})
	}
	t.Run("unreadable result", func(t *testing.T) {
		res := filepath.Join(t.TempDir(), "result.csv")
		os.WriteFile(res, []byte("campaign,users\na,1\n"), 0o644)
		err := Check(exp, res, testResult, -1)
		if err == nil || errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), `column "revenue"`) {
			t.Fatalf("error %v, want a read error naming the missing column", err)
		}
	})
}

func TestOutputCommitsAllOrNothing(t *testing.T) {
	schema := connectors.Schema(MustColumns("x", "int64"))
	batch := func() arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
		return b.NewRecordBatch()
	}
	formats, _ := ParseFormats("both")

	t.Run("commit", func(t *testing.T) {
		dir := t.TempDir()
		o, err := NewOutput(dir)
		if err != nil {
			t.Fatal(err)
		}
		w, err := o.Dataset("d", schema, formats)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := w.Write(batch()); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if names := list(t, dir); len(names) != 2 || !strings.HasPrefix(names[0], ".d.csv.tmp-") {
			t.Fatalf("before commit: %v, want two temporary files", names)
		}
		if err := o.Commit(); err != nil {
			t.Fatal(err)
		}
		if names := list(t, dir); strings.Join(names, " ") != "d.csv d.parquet" {
			t.Fatalf("after commit: %v", names)
		}
		csv, _ := os.ReadFile(filepath.Join(dir, "d.csv"))
		if string(csv) != "x\n1\n2\n3\n1\n2\n3\n1\n2\n3\n" {
			t.Errorf("d.csv = %q", csv)
		}
	})
	t.Run("abort", func(t *testing.T) {
		dir := t.TempDir()
		o, _ := NewOutput(dir)
		w, _ := o.Dataset("d", schema, formats)
		w.Write(batch())
		o.Abort()
		if names := list(t, dir); len(names) != 0 {
			t.Fatalf("after abort: %v", names)
		}
		if err := o.Commit(); err == nil {
			t.Fatal("commit after abort succeeded")
		}
	})
	t.Run("commit of an unfinished dataset", func(t *testing.T) {
		dir := t.TempDir()
		o, _ := NewOutput(dir)
		w, _ := o.Dataset("d", schema, formats)
		w.Write(batch())
		if err := o.Commit(); err == nil {
			t.Fatal("commit with an open dataset succeeded")
		}
		if names := list(t, dir); len(names) != 0 {
			t.Fatalf("after a failed commit: %v", names)
		}
	})
	t.Run("wrong schema", func(t *testing.T) {
		o, _ := NewOutput(t.TempDir())
		defer o.Abort()
		w, _ := o.Dataset("d", connectors.Schema(MustColumns("y", "int64")), formats)
		if err := w.Write(batch()); err == nil {
			t.Fatal("a batch of another schema was accepted")
		}
	})
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestCommandLine exercises the command line on a tiny scenario: generate, check
// a matching and a wrong result, fill the template, and usage errors.
func TestCommandLine(t *testing.T) {
	spec := Spec{
		Name:             "tiny",
		DefaultRows:      3,
		DefaultK:         2,
		ContractTemplate: []byte("key: \"{{KEY}}\"\n"),
		ResultColumns:    MustColumns("g", "string", "n", "int64"),
		Generate: func(_ context.Context, cfg Config) (*Summary, error) {
			o, err := NewOutput(cfg.Dir)
			if err != nil {
				return nil, err
			}
			var rows [][]any
			for i := range cfg.Rows {
				rows = append(rows, []any{string(rune('a' + i)), i, i >= cfg.K})
			}
			if err := WriteExpected(o, MustColumns("g", "string", "n", "int64"), rows); err != nil {
				o.Abort()
				return nil, err
			}
			return &Summary{Groups: cfg.Rows, Released: max(cfg.Rows-cfg.K, 0), Files: o.Paths()}, o.Commit()
		},
	}
	dir := t.TempDir()
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Main(spec, args, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, _, msg := run("--out", dir, "--rows", "4"); code != 0 || !strings.Contains(msg, "4 groups, 2 released, 2 below k=2") {
		t.Fatalf("generate: %d %s", code, msg)
	}
	exp := filepath.Join(dir, ExpectedFile)
	good := filepath.Join(dir, "good.csv")
	os.WriteFile(good, []byte("g,n\nc,2\nd,3\n"), 0o644)
	if code, _, msg := run("check", "--expected", exp, "--suppressed", "2", good); code != 0 || !strings.Contains(msg, "2 rows released, 2 groups suppressed") {
		t.Fatalf("check: %d %s", code, msg)
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("g,n\nc,2\n"), 0o644)
	if code, _, msg := run("check", "--expected", exp, bad); code != 1 || !strings.Contains(msg, "tiny-gen: error: result does not match") {
		t.Fatalf("check of a wrong result: %d %s", code, msg)
	}
	if code, out, msg := run("contract", "--set", "KEY=v"); code != 0 || out != "key: \"v\"\n" {
		t.Fatalf("contract: %d %q %s", code, out, msg)
	}
	if code, _, msg := run("contract", "--set", "KEY=v", "--set", "OTHER=w"); code != 1 || !strings.Contains(msg, "no placeholder {{OTHER}}") {
		t.Fatalf("contract with an unknown name: %d %s", code, msg)
	}
	for _, args := range [][]string{
		{"--rows", "4"},
		{"--out", dir, "--rows", "0"},
		{"--out", dir, "--format", "xml"},
		{"--out", dir, "extra"},
		{"--nope"},
		{"check"},
	} {
		if code, _, msg := run(args...); code != 2 || !strings.Contains(msg, "error") {
			t.Errorf("%v: exit %d, %s; want a usage error", args, code, msg)
		}
	}
}
