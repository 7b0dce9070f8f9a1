package engine

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/contracts"
)

// Result is what the output policy releases from a run: the query's
// schema, the kept rows and how many rows were suppressed. Its batches live
// in Go memory, independent of the Session.
type Result struct {
	Schema     *arrow.Schema
	Batches    []arrow.RecordBatch
	Rows       int64 // rows kept, at most the policy's MaxRows
	Suppressed int64 // rows dropped for a group size below MinGroupSize
}

// Release releases the batches. The Result must not be used afterwards.
func (r *Result) Release() {
	for _, b := range r.Batches {
		b.Release()
	}
	r.Batches = nil
}

// Run runs query, once, over the loaded tables and returns what policy
// releases. It refuses, with a *RefusalError naming the layer:
//
//   - a query that is not exactly one SELECT, reads a relation other than
//     the loaded tables and its own CTEs, or calls a function outside the
//     allow-lists of cleanroom/sqlcheck (LayerStatement, as CheckQuery
//     with the loaded tables' names as the datasets); and, once DuckDB has
//     bound it, a plan that reads anything but the loaded tables and the
//     allowed row generators, or calls a refused function
//     (LayerStatement);
//   - a query the locked-down DuckDB will not bind or run: files, network,
//     extensions, settings (LayerSandbox);
//   - a policy that cannot be applied or a result it does not release: no
//     integer GroupSizeColumn in the result when MinGroupSize > 0, or more
//     than MaxRows rows after suppression (LayerPolicy). Results are refused
//     whole, never truncated.
//
// Rows whose GroupSizeColumn is below MinGroupSize, or null, are dropped and
// counted in Result.Suppressed; MinGroupSize 0 means no threshold. A query
// needing more memory than Config.MemoryLimit fails with ErrResourceLimit;
// cancelling ctx interrupts the query. The session runs one query only; a
// second Run is an error. The caller checks the query's hash against the
// contract, and enforces max_runs.
func (s *Session) Run(ctx context.Context, query string, policy contracts.Output) (*Result, error) {
	if err := checkPolicy(policy); err != nil {
		return nil, err
	}
	end, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	if err := s.claimRun(ctx); err != nil {
		return nil, err
	}
	conn, err := s.connector.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: connecting: %w", err)
	}
	defer conn.Close()

	if err := checkStatement(ctx, conn, query, s.tableNames(), s.modelNames()); err != nil {
		return nil, err
	}
	if err := checkPrepared(conn, query); err != nil {
		return nil, err
	}
	if err := checkPlan(ctx, conn, query); err != nil {
		return nil, err
	}
	a, err := duckdb.NewArrowFromConn(conn)
	if err != nil {
		return nil, err
	}
	rr, err := a.QueryContext(ctx, query)
	if err != nil {
		return nil, s.queryError(ctx, err)
	}
	defer rr.Release()
	res, err := applyPolicy(rr, policy)
	if err != nil {
		return nil, s.queryError(ctx, err)
	}
	return res, nil
}

func (s *Session) claimRun(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ran {
		return errors.New("engine: the session has already run its query; use a new session for each run")
	}
	for name, st := range s.tables {
		if st == tableLoading {
			return fmt.Errorf("engine: table %q is still loading", name)
		}
	}
	s.ran = true
	s.runCtx = ctx
	return nil
}

// checkPrepared is the second, independent statement check: DuckDB binds the
// query against the loaded tables (binding executes nothing) and must
// report exactly one statement of type SELECT. The driver's Prepare refuses
// several statements without running any of them.
func checkPrepared(conn driver.Conn, query string) error {
	st, err := conn.Prepare(query)
	if err != nil {
		if isSandboxError(err) {
			return refuse(LayerSandbox, err, "DuckDB refused to prepare the algorithm")
		}
		return refuse(LayerSandbox, err, "DuckDB cannot prepare the algorithm against the loaded datasets")
	}
	defer st.Close()
	typ, err := st.(*duckdb.Stmt).StatementType()
	if err != nil {
		return err
	}
	if typ != duckdb.STATEMENT_TYPE_SELECT {
		return refuse(LayerStatement, nil, "the algorithm must be exactly one SELECT statement; DuckDB prepared it as statement type %d", typ)
	}
	return nil
}

// queryError classifies an error of a running query: a model's failure
// first, as it is what made the query fail.
func (s *Session) queryError(ctx context.Context, err error) error {
	if me := s.firstModelError(); me != nil {
		return me
	}
	if serr := s.scan.firstError(); serr != nil {
		return serr
	}
	return queryError(ctx, err)
}

// queryError classifies an error of a running query.
func queryError(ctx context.Context, err error) error {
	var re *RefusalError
	switch {
	case errors.As(err, &re):
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("engine: the query was interrupted: %w", ctx.Err())
	case duckdbErrorType(err) == duckdb.ErrorTypeOutOfMemory:
		return fmt.Errorf("engine: the query needs more memory than the session's limit: %w: %s", ErrResourceLimit, duckdbMessage(err))
	case duckdbErrorType(err) == duckdb.ErrorTypeInterrupt:
		return fmt.Errorf("engine: the query was interrupted: %w", err)
	case isSandboxError(err):
		return refuse(LayerSandbox, err, "DuckDB refused an operation of the algorithm")
	}
	return fmt.Errorf("engine: the query failed: %w", err)
}

// checkPolicy refuses a policy that cannot be applied.
func checkPolicy(p contracts.Output) error {
	switch {
	case p.MaxRows < 1:
		return refuse(LayerPolicy, nil, "output policy max_rows is %d; it must be at least 1", p.MaxRows)
	case p.MinGroupSize < 0:
		return refuse(LayerPolicy, nil, "output policy min_group_size is %d; it must not be negative", p.MinGroupSize)
	case p.MinGroupSize > 0 && p.GroupSizeColumn == "":
		return refuse(LayerPolicy, nil, "output policy min_group_size is %d but names no group_size_column", p.MinGroupSize)
	}
	return nil
}
