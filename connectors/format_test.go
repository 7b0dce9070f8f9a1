package connectors

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestDetectFormat(t *testing.T) {
	rec := allRecord(t, memory.DefaultAllocator)
	defer rec.Release()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pq := mustWrite(t, FormatParquet, rec.Schema(), rec)
	af := mustWrite(t, FormatArrowFile, rec.Schema(), rec)
	as := mustWrite(t, FormatArrowStream, rec.Schema(), rec)
	cases := []struct {
		name string
		data []byte
		want Format
		err  string
	}{
		{"a.csv", []byte("x,y\n"), FormatCSV, ""},
		{"a.CSV", []byte("x,y\n"), FormatCSV, ""},
		{"a.jsonl", []byte(`{"x":1}`), FormatJSONL, ""},
		{"a.ndjson", []byte(`{"x":1}`), FormatJSONL, ""},
		{"a.parquet", pq, FormatParquet, ""},
		{"a.arrow", af, FormatArrowFile, ""},
		{"a.feather", af, FormatArrowFile, ""},
		{"a.arrows", as, FormatArrowStream, ""},
		{"noext-parquet", pq, FormatParquet, ""},
		{"noext-arrow", af, FormatArrowFile, ""},
		{"noext-stream", as, FormatArrowStream, ""},
		{"noext-json", []byte("\ufeff  {\"x\":1}\n"), FormatJSONL, ""},
		{"noext-csv", []byte("x,y\n"), FormatAuto, "cannot tell"},
		{"wrong.parquet", []byte("x,y\n"), FormatAuto, "does not start with the parquet magic"},
		{"wrong.csv", pq, FormatAuto, "the content is parquet"},
		{"empty.arrow", nil, FormatAuto, "empty"},
		{"a.json", []byte("[]"), FormatAuto, "cannot be read"},
	}
	for _, c := range cases {
		got, err := DetectFormat(write(c.name, c.data))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), c.name) {
				t.Errorf("%s: got %v, %v; want an error with %q", c.name, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if _, err := DetectFormat(filepath.Join(dir, "absent.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}

func TestParseFormat(t *testing.T) {
	for name, want := range map[string]Format{
		"csv": FormatCSV, "JSONL": FormatJSONL, "ndjson": FormatJSONL, "parquet": FormatParquet, "arrow": FormatArrowFile,
		"feather": FormatArrowFile, "arrows": FormatArrowStream, "arrow-stream": FormatArrowStream, "json": FormatJSON, "table": FormatTable,
	} {
		got, err := ParseFormat(name)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", name, got, err)
		}
		if want.String() != strings.ToLower(name) && name != "ndjson" && name != "feather" && name != "arrow-stream" {
			t.Errorf("%v.String() = %q", want, want.String())
		}
	}
	if _, err := ParseFormat("xlsx"); err == nil {
		t.Error("ParseFormat accepted xlsx")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	cols := allCols
	if _, err := Open(dir, FormatCSV, cols, Options{}); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "x.csv"), FormatCSV, cols, Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent: %v", err)
	}
	p := filepath.Join(dir, "x.json")
	os.WriteFile(p, []byte("[]"), 0o600)
	if _, err := Open(p, FormatJSON, cols, Options{}); err == nil {
		t.Error("opened JSON")
	}
	if _, err := NewReader(strings.NewReader(""), FormatParquet, cols, Options{}); err == nil || !strings.Contains(err.Error(), "stream") {
		t.Errorf("parquet from a stream: %v", err)
	}
	if _, err := NewReader(strings.NewReader("a\n"), FormatCSV, nil, Options{}); err == nil {
		t.Error("no columns accepted")
	}
	if _, err := NewReader(strings.NewReader("a\n"), FormatCSV, append(cols[:1:1], cols[0]), Options{}); err == nil {
		t.Error("duplicate contract columns accepted")
	}
	if _, err := NewReader(strings.NewReader("a\n"), FormatCSV, cols, Options{BatchSize: -1}); err == nil {
		t.Error("negative batch size accepted")
	}
}

// TestCorruptBinaryInputs truncates and damages Parquet and Arrow files:
// the reader must return an error, never panic.
func TestCorruptBinaryInputs(t *testing.T) {
	rec := allRecord(t, memory.DefaultAllocator)
	defer rec.Release()
	dir := t.TempDir()
	for _, format := range []Format{FormatParquet, FormatArrowFile, FormatArrowStream} {
		data := mustWrite(t, format, rec.Schema(), rec)
		variants := map[string][]byte{}
		for _, n := range []int{0, 4, 8, 12, len(data) / 2, len(data) - 9, len(data) - 1} {
			variants["truncated to "+strconv.Itoa(n)] = data[:n]
		}
		for i := 0; i < len(data); i += max(1, len(data)/97) {
			d := append([]byte(nil), data...)
			d[i] ^= 0x5a
			variants["flipped byte "+strconv.Itoa(i)] = d
		}
		for name, d := range variants {
			p := filepath.Join(dir, "bad."+format.String())
			if err := os.WriteFile(p, d, 0o600); err != nil {
				t.Fatal(err)
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s %s: panic %v", format, name, r)
					}
				}()
				r, err := Open(p, format, allCols, Options{})
				if err != nil {
					return
				}
				recs, _ := readAll(t, r)
				releaseAll(recs)
			}()
		}
	}
}
