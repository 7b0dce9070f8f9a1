// Declarations shared by scan.go and scan.c: the Arrow C data interface
// structures and the few DuckDB C API functions the window scan calls.
#ifndef CLEANROOM_SCAN_H
#define CLEANROOM_SCAN_H

#include <pthread.h>
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

// One window of a block: rows [off, off+count) of the block's batch `batch`.
typedef struct {
	int64_t batch;
	int64_t off;
	int64_t count;
} cleanroom_window;

// A block of a dataset: record batches exported through the Arrow C data
// interface, and the windows they are cut into. A block read from a source
// lives while someone holds a reference: the worker handing out its
// windows, and every window view DuckDB still holds; the last to let go
// frees it (cleanroom_block_free, in Go). A block of a dataset held in
// memory has one more reference, the dataset's own, so it lives as long as
// the dataset.
typedef struct {
	struct ArrowArray **batches;
	int64_t nbatches;
	cleanroom_window *windows;
	int64_t nwindows;
	int64_t refs;     // atomic
	uintptr_t handle; // cgo handle of the Go side of the block
} cleanroom_block;

// A loaded dataset as the scan sees it: its blocks, either held (blocks is
// set) or read from the dataset's source at every scan (blocks is NULL and
// source is the cgo handle through which they are fetched).
typedef struct {
	cleanroom_block **blocks;
	int64_t nblocks;
	uintptr_t source;
} cleanroom_dataset;

// One execution of a scan. Workers claim blocks in order (next); the
// windows of a claimed block are handed out through its counter in wnext,
// so that a worker with no block left to claim takes windows of a block
// another worker is still going through (active).
typedef struct {
	const cleanroom_dataset *d;
	int64_t next;  // the next block to claim (atomic)
	int64_t ncols; // output columns
	int64_t *cols; // dataset column of each output column; -1 for the row id
	int64_t nconv; // output columns that are dataset columns
	void *conv;    // duckdb_arrow_converted_schema of those columns
	int64_t *wnext;           // per block: the next window to hand out (atomic)
	cleanroom_block **active; // per block: the claimed block while it has windows left, holding a reference; under mu
	pthread_mutex_t mu;
	int mu_ready; // mu is initialised
} cleanroom_scan_state;

// A worker thread's state.
typedef struct {
	void *conn;             // duckdb_connection for Arrow conversion
	uintptr_t handle;       // cgo handle of the Go side of the state
	cleanroom_block *block; // the block whose windows it takes, or NULL
	int64_t bi;             // block's index in the dataset
} cleanroom_scan_local;

void cleanroom_scan_function(void *info, void *output);
void cleanroom_scan_state_free(void *state);
int cleanroom_scan_state_share(cleanroom_scan_state *st);
void cleanroom_block_unref(cleanroom_block *b);

#endif
