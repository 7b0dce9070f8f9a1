// The per-window part of the dataset scan, in C so that DuckDB's worker
// threads convert Arrow data without calling into Go for every window.

#include <stdlib.h>
#include <string.h>
#include "scan.h"

// The DuckDB C API functions used here (stable since DuckDB v1.5.6); every
// handle is an opaque pointer.
typedef void *duckdb_handle;
extern duckdb_handle duckdb_function_get_init_data(duckdb_handle info);
extern duckdb_handle duckdb_function_get_local_init_data(duckdb_handle info);
extern void duckdb_function_set_error(duckdb_handle info, const char *error);
extern void duckdb_data_chunk_set_size(duckdb_handle chunk, uint64_t size);
extern duckdb_handle duckdb_data_chunk_get_vector(duckdb_handle chunk, uint64_t col_idx);
extern void duckdb_destroy_data_chunk(duckdb_handle *chunk);
extern void duckdb_vector_reference_vector(duckdb_handle to_vector, duckdb_handle from_vector);
extern duckdb_handle duckdb_data_chunk_from_arrow(duckdb_handle connection, struct ArrowArray *arrow_array,
                                                  duckdb_handle converted_schema, duckdb_handle *out_chunk);
extern _Bool duckdb_error_data_has_error(duckdb_handle error_data);
extern const char *duckdb_error_data_message(duckdb_handle error_data);
extern void duckdb_destroy_error_data(duckdb_handle *error_data);
extern void duckdb_destroy_arrow_converted_schema(duckdb_handle *arrow_converted_schema);

// Implemented in Go (scan.go).
extern int cleanroom_scan_fetch(uintptr_t source, int64_t b, cleanroom_block **out, char **err);
extern void cleanroom_block_free(cleanroom_block *b);

void cleanroom_block_unref(cleanroom_block *b) {
	if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		cleanroom_block_free(b);
	}
}

// A window view: a struct array whose children are shallow copies of the
// batch's columns with the window's offset and length. It owns only its own
// memory; the buffers stay the batch's.
typedef struct {
	struct ArrowArray parent;
	const void *parent_buffers[1];
	struct ArrowArray **child_ptrs;
	struct ArrowArray *children;
	cleanroom_block *block; // the view holds a reference to it
} window_view;

static void release_child(struct ArrowArray *a) { a->release = NULL; }

static void release_view(struct ArrowArray *a) {
	window_view *v = (window_view *)a->private_data;
	for (int64_t i = 0; i < a->n_children; i++) {
		if (v->children[i].release) {
			v->children[i].release(&v->children[i]);
		}
	}
	a->release = NULL;
	cleanroom_block *b = v->block;
	free(v->child_ptrs);
	free(v->children);
	free(v);
	cleanroom_block_unref(b);
}

static window_view *make_view(const cleanroom_scan_state *st, cleanroom_block *b, const cleanroom_window *w) {
	const struct ArrowArray *batch = b->batches[w->batch];
	window_view *v = calloc(1, sizeof(window_view));
	if (!v) {
		return NULL;
	}
	v->children = calloc((size_t)st->nconv, sizeof(struct ArrowArray));
	v->child_ptrs = calloc((size_t)st->nconv, sizeof(struct ArrowArray *));
	if (!v->children || !v->child_ptrs) {
		free(v->children);
		free(v->child_ptrs);
		free(v);
		return NULL;
	}
	int64_t j = 0;
	for (int64_t i = 0; i < st->ncols; i++) {
		int64_t c = st->cols[i];
		if (c < 0) {
			continue;
		}
		struct ArrowArray *child = &v->children[j];
		*child = *batch->children[c];
		child->offset = batch->children[c]->offset + w->off;
		child->length = w->count;
		if (child->null_count != 0) {
			child->null_count = -1; // unknown for the window: DuckDB reads the bitmap
		}
		child->dictionary = NULL;
		child->release = release_child;
		child->private_data = NULL;
		v->child_ptrs[j] = child;
		j++;
	}
	v->parent.length = w->count;
	v->parent.null_count = 0;
	v->parent.offset = 0;
	v->parent.n_buffers = 1;
	v->parent_buffers[0] = NULL;
	v->parent.buffers = v->parent_buffers;
	v->parent.n_children = st->nconv;
	v->parent.children = v->child_ptrs;
	v->parent.dictionary = NULL;
	v->parent.release = release_view;
	v->parent.private_data = v;
	v->block = b;
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_ACQ_REL);
	return v;
}

// retire removes block i from the blocks whose windows can be taken, once
// it has none left, dropping the scan state's reference.
static void retire(cleanroom_scan_state *st, int64_t i, cleanroom_block *b) {
	cleanroom_block *drop = NULL;
	pthread_mutex_lock(&st->mu);
	if (st->active[i] == b) {
		st->active[i] = NULL;
		drop = b;
	}
	pthread_mutex_unlock(&st->mu);
	if (drop) {
		cleanroom_block_unref(drop);
	}
}

// next_window sets *b and *win to the next window this worker hands out:
// the next window of its block; when that is done, the first window of the
// next unclaimed block; when every block is claimed, the next window of a
// block another worker is still going through. It returns 0 when the scan
// is done, 1 with a window, -1 after setting the function's error.
static int next_window(void *info, cleanroom_scan_state *st, cleanroom_scan_local *local, cleanroom_block **b,
                       const cleanroom_window **win) {
	for (;;) {
		if (local->block) {
			int64_t w = __atomic_fetch_add(&st->wnext[local->bi], 1, __ATOMIC_RELAXED);
			if (w < local->block->nwindows) {
				*b = local->block;
				*win = &local->block->windows[w];
				return 1;
			}
			retire(st, local->bi, local->block);
			cleanroom_block_unref(local->block);
			local->block = NULL;
		}
		int64_t i = __atomic_fetch_add(&st->next, 1, __ATOMIC_RELAXED);
		if (i < st->d->nblocks) {
			cleanroom_block *blk = NULL;
			if (st->d->blocks) {
				blk = st->d->blocks[i];
				__atomic_add_fetch(&blk->refs, 1, __ATOMIC_ACQ_REL);
			} else {
				char *err = NULL;
				if (!cleanroom_scan_fetch(st->d->source, i, &blk, &err)) {
					duckdb_function_set_error(info, err ? err : "engine: dataset scan: reading a block failed");
					free(err);
					return -1;
				}
			}
			// The worker's reference, and the scan state's while others
			// may take its windows.
			__atomic_add_fetch(&blk->refs, 1, __ATOMIC_ACQ_REL);
			pthread_mutex_lock(&st->mu);
			st->active[i] = blk;
			pthread_mutex_unlock(&st->mu);
			local->block = blk;
			local->bi = i;
			continue;
		}
		// Every block is claimed: help with one that has windows left.
		pthread_mutex_lock(&st->mu);
		for (int64_t j = 0; j < st->d->nblocks; j++) {
			cleanroom_block *blk = st->active[j];
			if (blk && __atomic_load_n(&st->wnext[j], __ATOMIC_RELAXED) < blk->nwindows) {
				__atomic_add_fetch(&blk->refs, 1, __ATOMIC_ACQ_REL);
				local->block = blk;
				local->bi = j;
				break;
			}
		}
		pthread_mutex_unlock(&st->mu);
		if (!local->block) {
			return 0;
		}
	}
}

void cleanroom_scan_function(void *info, void *output) {
	cleanroom_scan_state *st = (cleanroom_scan_state *)duckdb_function_get_init_data(info);
	cleanroom_scan_local *local = (cleanroom_scan_local *)duckdb_function_get_local_init_data(info);
	cleanroom_block *b = NULL;
	const cleanroom_window *win = NULL;
	int got = next_window(info, st, local, &b, &win);
	if (got <= 0) {
		duckdb_data_chunk_set_size(output, 0);
		return;
	}
	if (st->nconv > 0) {
		window_view *v = make_view(st, b, win);
		if (!v) {
			duckdb_function_set_error(info, "engine: dataset scan: out of memory");
			return;
		}
		duckdb_handle chunk = NULL;
		duckdb_handle err = duckdb_data_chunk_from_arrow(local->conn, &v->parent, st->conv, &chunk);
		if (err && duckdb_error_data_has_error(err)) {
			duckdb_function_set_error(info, duckdb_error_data_message(err));
			duckdb_destroy_error_data(&err);
			if (v->parent.release) {
				v->parent.release(&v->parent);
			}
			if (chunk) {
				duckdb_destroy_data_chunk(&chunk);
			}
			return;
		}
		if (err) {
			duckdb_destroy_error_data(&err);
		}
		if (v->parent.release) {
			// DuckDB did not take the view over; it holds no reference to it.
			v->parent.release(&v->parent);
		}
		int64_t j = 0;
		for (int64_t i = 0; i < st->ncols; i++) {
			if (st->cols[i] < 0) {
				continue;
			}
			duckdb_vector_reference_vector(duckdb_data_chunk_get_vector(output, (uint64_t)i),
			                               duckdb_data_chunk_get_vector(chunk, (uint64_t)j));
			j++;
		}
		duckdb_destroy_data_chunk(&chunk);
	}
	duckdb_data_chunk_set_size(output, (uint64_t)win->count);
}

// cleanroom_scan_state_share allocates the state's per-block counters and
// its mutex; 0 when out of memory.
int cleanroom_scan_state_share(cleanroom_scan_state *st) {
	size_t n = st->d->nblocks > 0 ? (size_t)st->d->nblocks : 1;
	st->wnext = calloc(n, sizeof(int64_t));
	st->active = calloc(n, sizeof(cleanroom_block *));
	if (!st->wnext || !st->active || pthread_mutex_init(&st->mu, NULL) != 0) {
		return 0;
	}
	st->mu_ready = 1;
	return 1;
}

void cleanroom_scan_state_free(void *p) {
	cleanroom_scan_state *st = (cleanroom_scan_state *)p;
	if (st->active) {
		for (int64_t i = 0; i < st->d->nblocks; i++) {
			if (st->active[i]) {
				cleanroom_block_unref(st->active[i]);
			}
		}
	}
	free(st->active);
	free(st->wnext);
	if (st->mu_ready) {
		pthread_mutex_destroy(&st->mu);
	}
	if (st->conv) {
		duckdb_destroy_arrow_converted_schema(&st->conv);
	}
	free(st->cols);
	free(st);
}
