// Package connectors converts a data provider's files into Arrow record
// batches that match a dataset's contract columns, and writes query results
// back out in the formats people read.
//
// Readers accept CSV, Parquet, Arrow IPC (file and stream) and JSON lines.
// Every reader streams: it holds at most one batch of rows (Options.BatchSize
// rows, and for text formats at most Options.MaxBatchBytes of input) plus
// fixed-size buffers, whatever the size of the input. Every batch a reader
// returns has exactly the contract's schema (contracts.Dataset.Schema): one
// nullable field per contract column, in contract order, whatever the order
// of the columns in the input. A missing, extra, duplicated or mistyped
// column, or a value that cannot be represented exactly in the contract's
// type, stops the reader with an *InputError naming the column and the line
// (text formats) or row group, batch and row (Parquet and Arrow).
//
// Writers (Write) render an Arrow record stream as an aligned text table,
// CSV, a JSON array, JSON lines, Parquet, or Arrow IPC. What the writers
// produce in CSV, JSON lines, Parquet and Arrow the readers read back to
// identical batches.
//
// The formats, the type mapping and the exact conventions are specified in
// docs/connectors.md.
package connectors
