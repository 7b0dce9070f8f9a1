package engine

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// IPC returns the result as Arrow IPC stream bytes (the streaming format:
// schema message, record batches, end-of-stream marker), uncompressed. A
// result with no rows is a stream with the schema and no batches.
func (r *Result) IPC() ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(r.Schema))
	for i, b := range r.Batches {
		if err := w.Write(b); err != nil {
			w.Close()
			return nil, fmt.Errorf("engine: encoding result batch %d as Arrow IPC: %w", i, err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("engine: encoding the result as Arrow IPC: %w", err)
	}
	return buf.Bytes(), nil
}
