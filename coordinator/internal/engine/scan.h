// Declarations shared by scan.go and scan.c: the Arrow C data interface
// structures and the few DuckDB C API functions the window scan calls.
#ifndef CLEANROOM_SCAN_H
#define CLEANROOM_SCAN_H

#include <stdint.h>

#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE
#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4
struct ArrowSchema {
	const char *format;
	const char *name;
	const char *metadata;
	int64_t flags;
	int64_t n_children;
	struct ArrowSchema **children;
	struct ArrowSchema *dictionary;
	void (*release)(struct ArrowSchema *);
	void *private_data;
};
struct ArrowArray {
	int64_t length;
	int64_t null_count;
	int64_t offset;
	int64_t n_buffers;
	int64_t n_children;
	const void **buffers;
	struct ArrowArray **children;
	struct ArrowArray *dictionary;
	void (*release)(struct ArrowArray *);
	void *private_data;
};
#endif

// One window of a dataset: rows [off, off+count) of batch `batch`.
typedef struct {
	int64_t batch;
	int64_t off;
	int64_t count;
} cleanroom_window;

// A loaded dataset as the scan sees it: its batches exported once through
// the Arrow C data interface, and the windows they are cut into.
typedef struct {
	struct ArrowArray **batches;
	int64_t nbatches;
	cleanroom_window *windows;
	int64_t nwindows;
} cleanroom_dataset;

// One execution of a scan.
typedef struct {
	const cleanroom_dataset *d;
	int64_t next;  // the next window to hand out (atomic)
	int64_t ncols; // output columns
	int64_t *cols; // dataset column of each output column; -1 for the row id
	int64_t nconv; // output columns that are dataset columns
	void *conv;    // duckdb_arrow_converted_schema of those columns
} cleanroom_scan_state;

// A worker thread's state.
typedef struct {
	void *conn;        // duckdb_connection for Arrow conversion
	uintptr_t handle;  // cgo handle of the Go side of the state
} cleanroom_scan_local;

void cleanroom_scan_function(void *info, void *output);
void cleanroom_scan_state_free(void *state);

#endif
