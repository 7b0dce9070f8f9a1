package connectors

import (
	"bufio"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// WriteOptions tune Write. The zero value is ready to use.
type WriteOptions struct {
	// Allocator allocates the writers' buffers; nil means
	// memory.DefaultAllocator.
	Allocator memory.Allocator
}

// Write writes every batch of rr to w in format, and returns the number of
// rows written. It does not close w. All formats but FormatTable stream
// batch by batch; FormatTable holds the formatted rows until the end to
// align the columns, so it suits results of terminal size. On an error,
// from rr or from w, what was written is incomplete and must be discarded.
//
// Output conventions (docs/connectors.md has the details):
//   - FormatCSV: a header row of the field names, then one record per row,
//     "\n" line ends; null is an empty field, an empty string is "".
//   - FormatJSON: one array of objects, one object per line; FormatJSONL:
//     one object per line. Keys are field names in schema order.
//   - FormatTable: column headers, right-aligned numbers, "NULL" for null,
//     control characters escaped, and a "(N rows)" footer.
//   - FormatParquet: zstd-compressed, one row group per batch, the Arrow
//     schema stored in the file metadata.
//   - FormatArrowFile, FormatArrowStream: Arrow IPC, batches unchanged.
func Write(w io.Writer, format Format, rr array.RecordReader, opts WriteOptions) (int64, error) {
	if opts.Allocator == nil {
		opts.Allocator = memory.DefaultAllocator
	}
	var (
		rows int64
		err  error
	)
	switch format {
	case FormatCSV, FormatJSON, FormatJSONL, FormatTable:
		bw := bufio.NewWriterSize(w, 64<<10)
		switch format {
		case FormatCSV:
			rows, err = writeCSV(bw, rr)
		case FormatJSON, FormatJSONL:
			rows, err = writeJSON(bw, rr, format == FormatJSON)
		case FormatTable:
			rows, err = writeTable(bw, rr)
		}
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
	case FormatParquet:
		rows, err = writeParquet(w, rr, opts.Allocator)
	case FormatArrowFile, FormatArrowStream:
		rows, err = writeIPC(w, rr, format, opts.Allocator)
	default:
		return 0, fmt.Errorf("connectors: cannot write format %s (want table, csv, json, jsonl, parquet, arrow or arrows)", format)
	}
	return rows, err
}

// WriteRecords writes batches of the given schema, as Write does.
func WriteRecords(w io.Writer, format Format, schema *arrow.Schema, recs []arrow.RecordBatch, opts WriteOptions) (int64, error) {
	rr, err := array.NewRecordReader(schema, recs)
	if err != nil {
		return 0, fmt.Errorf("connectors: %w", err)
	}
	defer rr.Release()
	return Write(w, format, rr, opts)
}

// nopCloser hides a writer's Close method from writers that would
// otherwise close it.
type nopCloser struct{ io.Writer }

func writeParquet(w io.Writer, rr array.RecordReader, mem memory.Allocator) (int64, error) {
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithAllocator(mem))
	fw, err := pqarrow.NewFileWriter(rr.Schema(), nopCloser{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem)))
	if err != nil {
		return 0, fmt.Errorf("connectors: parquet: %w", err)
	}
	var rows int64
	for rr.Next() {
		rec := rr.RecordBatch()
		if rec.NumRows() == 0 {
			continue
		}
		if err := fw.Write(rec); err != nil {
			fw.Close()
			return rows, fmt.Errorf("connectors: parquet: %w", err)
		}
		rows += rec.NumRows()
	}
	if err := rr.Err(); err != nil {
		fw.Close()
		return rows, err
	}
	if err := fw.Close(); err != nil {
		return rows, fmt.Errorf("connectors: parquet: %w", err)
	}
	return rows, nil
}

func writeIPC(w io.Writer, rr array.RecordReader, format Format, mem memory.Allocator) (int64, error) {
	opts := []ipc.Option{ipc.WithSchema(rr.Schema()), ipc.WithAllocator(mem)}
	var iw interface {
		Write(arrow.RecordBatch) error
		Close() error
	}
	if format == FormatArrowFile {
		fw, err := ipc.NewFileWriter(nopCloser{w}, opts...)
		if err != nil {
			return 0, fmt.Errorf("connectors: arrow: %w", err)
		}
		iw = fw
	} else {
		iw = ipc.NewWriter(nopCloser{w}, opts...)
	}
	var rows int64
	for rr.Next() {
		rec := rr.RecordBatch()
		if err := iw.Write(rec); err != nil {
			iw.Close()
			return rows, fmt.Errorf("connectors: %s: %w", format, err)
		}
		rows += rec.NumRows()
	}
	if err := rr.Err(); err != nil {
		iw.Close()
		return rows, err
	}
	if err := iw.Close(); err != nil {
		return rows, fmt.Errorf("connectors: %s: %w", format, err)
	}
	return rows, nil
}
