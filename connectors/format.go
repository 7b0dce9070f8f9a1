package connectors

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Format names a file format. The zero value, FormatAuto, asks Open to
// detect the format with DetectFormat.
type Format int

// Formats. CSV, JSONL, Parquet, ArrowFile and ArrowStream can be read and
// written; JSON (one array of objects) and Table (aligned text for a
// terminal) can only be written.
const (
	FormatAuto        Format = iota // detect from the file name and content
	FormatCSV                       // RFC 4180 CSV with a header row
	FormatJSONL                     // JSON lines: one object per line
	FormatParquet                   // Apache Parquet
	FormatArrowFile                 // Arrow IPC file format ("Feather v2")
	FormatArrowStream               // Arrow IPC streaming format
	FormatJSON                      // one JSON array of objects (write only)
	FormatTable                     // aligned text table (write only)
)

var formatNames = [...]string{
	FormatAuto:        "auto",
	FormatCSV:         "csv",
	FormatJSONL:       "jsonl",
	FormatParquet:     "parquet",
	FormatArrowFile:   "arrow",
	FormatArrowStream: "arrows",
	FormatJSON:        "json",
	FormatTable:       "table",
}

// String returns the format's name as ParseFormat accepts it: auto, csv,
// jsonl, parquet, arrow (IPC file), arrows (IPC stream), json or table.
func (f Format) String() string {
	if f >= 0 && int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Readable reports whether Open and NewReader accept the format.
func (f Format) Readable() bool {
	switch f {
	case FormatCSV, FormatJSONL, FormatParquet, FormatArrowFile, FormatArrowStream:
		return true
	}
	return false
}

// Streamable reports whether the format can be read from a plain io.Reader
// (such as standard input) with NewReader. Parquet and the Arrow IPC file
// format keep their index at the end of the file and need random access.
func (f Format) Streamable() bool {
	return f == FormatCSV || f == FormatJSONL || f == FormatArrowStream
}

// ParseFormat parses a format name: one of the names String returns, or the
// aliases ndjson (= jsonl), feather and ipc (= arrow), and arrow-stream
// (= arrows). Names are case-insensitive.
func ParseFormat(name string) (Format, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch n {
	case "ndjson":
		return FormatJSONL, nil
	case "feather", "ipc":
		return FormatArrowFile, nil
	case "arrow-stream":
		return FormatArrowStream, nil
	}
	for f, s := range formatNames {
		if s == n {
			return Format(f), nil
		}
	}
	return FormatAuto, fmt.Errorf("unknown format %q (want csv, jsonl, parquet, arrow, arrows, json or table)", name)
}

// FormatFromExtension returns the format a file name's extension names:
// .csv, .jsonl and .ndjson, .parquet (and .pq), .arrow, .feather and .ipc
// (IPC file), .arrows (IPC stream), .json. It reports false for any other
// extension. The match is case-insensitive.
func FormatFromExtension(path string) (Format, bool) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return FormatCSV, true
	case ".jsonl", ".ndjson":
		return FormatJSONL, true
	case ".parquet", ".pq":
		return FormatParquet, true
	case ".arrow", ".feather", ".ipc":
		return FormatArrowFile, true
	case ".arrows":
		return FormatArrowStream, true
	case ".json":
		return FormatJSON, true
	}
	return FormatAuto, false
}

// Magic numbers of the binary formats.
var (
	parquetMagic     = []byte("PAR1")
	arrowFileMagic   = []byte("ARROW1")
	arrowStreamMagic = []byte{0xff, 0xff, 0xff, 0xff} // IPC continuation marker
)

// SniffFormat guesses a readable format from the first bytes of an input:
// Parquet and Arrow IPC by their magic numbers, JSON lines by a leading '{'.
// It reports false when the bytes identify no format (CSV has no magic
// number).
func SniffFormat(head []byte) (Format, bool) {
	switch {
	case bytes.HasPrefix(head, parquetMagic):
		return FormatParquet, true
	case bytes.HasPrefix(head, arrowFileMagic):
		return FormatArrowFile, true
	case bytes.HasPrefix(head, arrowStreamMagic):
		return FormatArrowStream, true
	}
	t := bytes.TrimLeft(bytes.TrimPrefix(head, utf8BOM), " \t\r\n")
	if len(t) > 0 && t[0] == '{' {
		return FormatJSONL, true
	}
	return FormatAuto, false
}

// ErrUnknownFormat is returned (wrapped) by DetectFormat when neither a
// file's name nor its content identifies a readable format.
var ErrUnknownFormat = errors.New("cannot tell the input format")

// DetectFormat returns the readable format of the file at path. The
// extension decides (see FormatFromExtension); the file's first bytes are
// then checked against the magic numbers of the binary formats, and a
// contradiction (a .csv file that starts with PAR1, a .parquet file that
// does not) is an error rather than a guess. Without a known extension the
// content alone decides. JSON (an array) is not a readable format.
func DetectFormat(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return FormatAuto, err
	}
	defer f.Close()
	head := make([]byte, 8)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return FormatAuto, fmt.Errorf("%s: %w", path, err)
	}
	head = head[:n]
	sniffed, sniffOK := SniffFormat(head)
	ext, extOK := FormatFromExtension(path)
	if !extOK {
		if sniffOK {
			return sniffed, nil
		}
		return FormatAuto, fmt.Errorf("%s: %w: the extension is not .csv, .jsonl, .ndjson, .parquet, .arrow, .feather or .arrows and the content has no known magic number; name the format explicitly", path, ErrUnknownFormat)
	}
	if !ext.Readable() {
		return FormatAuto, fmt.Errorf("%s: %w: %s files cannot be read; convert to JSON lines (one object per line, .jsonl)", path, ErrUnknownFormat, ext)
	}
	binary := func(f Format) bool { return f == FormatParquet || f == FormatArrowFile || f == FormatArrowStream }
	switch {
	case binary(ext) && n == 0:
		return FormatAuto, fmt.Errorf("%s: the file is empty, not %s", path, ext)
	case binary(ext) && sniffed != ext:
		return FormatAuto, fmt.Errorf("%s: the extension says %s but the content does not start with the %s magic number", path, ext, ext)
	case !binary(ext) && sniffOK && binary(sniffed):
		return FormatAuto, fmt.Errorf("%s: the extension says %s but the content is %s", path, ext, sniffed)
	}
	return ext, nil
}
