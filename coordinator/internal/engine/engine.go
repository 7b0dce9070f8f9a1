// Package engine runs a contract's one agreed query over the participants'
// decrypted datasets, inside a locked-down in-memory DuckDB, and applies the
// contract's output policy to the result.
//
// A run uses one Session: New opens an in-memory database and locks its
// configuration down before anything from a participant reaches it;
// LoadTable checks each dataset's Arrow batches and makes them a table named
// by its dataset id, which DuckDB scans in place; Run checks that the
// algorithm is exactly one SELECT that reads only those tables and calls
// only allowed functions (the statement check, cleanroom/sqlcheck),
// executes it, and returns only the rows the output policy releases. Nothing a Session holds is ever written to
// disk.
//
// The package is built with the duckdb_arrow build tag (DuckDB's Arrow
// interface).
package engine

import (
	"fmt"
	"runtime"
)

// Config sets a Session's resource limits. The zero value is usable.
type Config struct {
	// MemoryLimit caps, in bytes, the memory DuckDB may use for a query:
	// hash tables, sorts, intermediate and final results. The datasets are
	// not counted: they stay in the Arrow memory the caller loaded them
	// from. A query that needs more fails with an error wrapping
	// ErrResourceLimit; nothing spills to disk. Zero means DuckDB's default,
	// 80% of the machine's memory.
	MemoryLimit int64
	// Threads is the number of DuckDB worker threads. Zero means
	// runtime.GOMAXPROCS(0).
	Threads int
	// SpillDir, when set, lets a query that needs more than MemoryLimit
	// spill to DuckDB's temporary files in a directory of its own that the
	// session makes inside SpillDir and removes at Close. DuckDB encrypts
	// every temporary block it writes there (temp_file_encryption,
	// AES-256-GCM under a key it draws in memory at the first spill and
	// never writes out). Empty means no spilling: such a query fails with
	// ErrResourceLimit.
	SpillDir string
	// MaxSpill caps, in bytes, what the session may write to SpillDir;
	// a query that needs more fails with ErrResourceLimit. Zero means
	// DefaultMaxSpill. Ignored without SpillDir.
	MaxSpill int64
	spillDir string // the session's own directory inside SpillDir
	// ModelMemoryLimit caps, in bytes, the linear memory of one instance
	// of a model; a session runs at most one instance per thread and
	// model. Zero means DefaultModelMemoryLimit.
	ModelMemoryLimit int64
}

// DefaultMaxSpill is the spill limit when Config.MaxSpill is zero.
const DefaultMaxSpill = 100 << 30

// minMemoryLimit is the smallest memory limit accepted: below it DuckDB
// cannot even hold its catalog and one block per thread.
const minMemoryLimit = 16 << 20

func (c Config) resolve() (Config, error) {
	if c.MemoryLimit < 0 {
		return c, fmt.Errorf("engine: Config.MemoryLimit is %d; it must be 0 (DuckDB's default) or a number of bytes", c.MemoryLimit)
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < minMemoryLimit {
		return c, fmt.Errorf("engine: Config.MemoryLimit is %d bytes; it must be at least %d (16 MiB)", c.MemoryLimit, minMemoryLimit)
	}
	if c.Threads < 0 {
		return c, fmt.Errorf("engine: Config.Threads is %d; it must be 0 (one per CPU) or positive", c.Threads)
	}
	if c.ModelMemoryLimit < 0 || (c.ModelMemoryLimit > 0 && c.ModelMemoryLimit < 1<<20) || c.ModelMemoryLimit > 4<<30 {
		return c, fmt.Errorf("engine: Config.ModelMemoryLimit is %d; it must be 0 (the default, %d) or from 1 MiB to 4 GiB", c.ModelMemoryLimit, DefaultModelMemoryLimit)
	}
	if c.MaxSpill < 0 {
		return c, fmt.Errorf("engine: Config.MaxSpill is %d; it must be 0 (the default, %d) or a number of bytes", c.MaxSpill, int64(DefaultMaxSpill))
	}
	if c.SpillDir != "" && c.MaxSpill == 0 {
		c.MaxSpill = DefaultMaxSpill
	}
	if c.ModelMemoryLimit == 0 {
		c.ModelMemoryLimit = DefaultModelMemoryLimit
	}
	if c.Threads == 0 {
		c.Threads = runtime.GOMAXPROCS(0)
	}
	return c, nil
}
