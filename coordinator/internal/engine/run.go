package engine

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
	"cleanroom.dev/cleanroom/contracts"
)

// Result is what the output policy releases from a run: the query's
// schema, the kept rows and how many rows were suppressed. Its batches live
// in Go memory, independent of the Session.
type Result struct {
	Schema  *arrow.Schema
	Batches []arrow.RecordBatch
	Rows    int64 // rows kept, at most the policy's MaxRows
	// Suppressed counts the rows dropped for a group size below
	// MinGroupSize (not those beyond the query's LIMIT or before its
	// OFFSET).
	Suppressed int64
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
//   - in mode aggregate, a query the privacy analysis refuses
//     (LayerPrivacy, sqlcheck.Analyze over the tables and the policy's
//     privacy units);
//   - a query the locked-down DuckDB will not bind or run: files, network,
//     extensions, settings (LayerSandbox);
//   - a policy that cannot be applied or a result it does not release
//     (LayerPolicy): in mode custom no integer GroupSizeColumn in the
//     result when MinGroupSize > 0; in mode aggregate a nested value (a
//     list, array, struct, map or union) in a result that reads a
//     protected dataset; in every mode more than MaxRows rows after
//     suppression. Results are refused whole, never truncated.
//
// In mode aggregate the query that runs is the analysis's rewrite: it
// counts, for every result row, the distinct privacy units of each reading
// of a protected dataset behind it; a row with any count below
// MinGroupSize is dropped and counted in Result.Suppressed, the counts are
// removed, and the query's LIMIT and OFFSET apply to the rows left. In
// mode custom rows whose GroupSizeColumn is below MinGroupSize, or null,
// are dropped and counted; MinGroupSize 0 means no threshold. A query
// needing more memory than Config.MemoryLimit fails with
// ErrResourceLimit; cancelling ctx interrupts the query. The session runs
// one query only; a second Run is an error. The caller checks the query's
// hash against the contract, and enforces max_runs.
//
// params are the values of the query's parameters ($name), checked against
// the contract by the caller: each is bound to the prepared statement as a
// value of its contract type, never written into the text, so the checks
// and the privacy analysis above see the same statement whatever the
// values (a parameter is a literal to them). The query must use exactly
// the parameters given (LayerStatement otherwise).
func (s *Session) Run(ctx context.Context, query string, policy Policy, params ...Param) (*Result, error) {
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

	st, err := checkStatement(ctx, conn, query, s.tableNames(), s.modelNames())
	if err != nil {
		return nil, err
	}
	if policy.Output.Mode == contracts.ModeDifferentialPrivacy {
		return s.runDP(ctx, conn, query, st, policy, params)
	}
	run := query
	var analysis *sqlcheck.Analysis
	var names []string
	if policy.Output.Mode == contracts.ModeAggregate {
		p, err := plan(ctx, conn, query, st, privacyDatasets(s.tableNames(), s.tableSchemas(), policy))
		if err != nil {
			return nil, err
		}
		run, analysis = p.query, p.analysis
	}
	// Each text is prepared once: the statement type, the result's
	// columns and the parameters' names are read from that one prepared
	// statement.
	prepared, err := prepareQuery(conn, run)
	if err != nil {
		return nil, err
	}
	if run != query {
		orig, err := prepareQuery(conn, query)
		if err != nil {
			return nil, err
		}
		if names, err = sameColumns(orig.columns, prepared.columns, countColumns(analysis)); err != nil {
			return nil, err
		}
	}
	if err := checkPlan(ctx, conn, run); err != nil {
		return nil, err
	}
	args, err := prepared.args(params)
	if err != nil {
		return nil, err
	}
	a, err := duckdb.NewArrowFromConn(conn)
	if err != nil {
		return nil, err
	}
	rr, err := a.QueryContext(ctx, run, args...)
	if err != nil {
		return nil, s.queryError(ctx, err)
	}
	defer rr.Release()
	res, err := applyPolicy(rr, policy.Output, analysis, names)
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

// preparedQuery is what Run reads of a prepared statement: its result's
// columns and its parameters' names ($name, in the statement's order).
type preparedQuery struct {
	columns []resultColumn
	params  []string
}

// prepareQuery is the second, independent statement check: DuckDB binds
// the query against the loaded tables (binding executes nothing) and must
// report exactly one statement of type SELECT. The driver's Prepare
// refuses several statements without running any of them. It returns what
// the prepared statement says of the query; the statement is closed
// before it returns.
func prepareQuery(conn driver.Conn, query string) (*preparedQuery, error) {
	st, err := conn.Prepare(query)
	if err != nil {
		if isSandboxError(err) {
			return nil, refuse(LayerSandbox, err, "DuckDB refused to prepare the algorithm")
		}
		return nil, refuse(LayerSandbox, err, "DuckDB cannot prepare the algorithm against the loaded datasets")
	}
	defer st.Close()
	ds := st.(*duckdb.Stmt)
	typ, err := ds.StatementType()
	if err != nil {
		return nil, err
	}
	if typ != duckdb.STATEMENT_TYPE_SELECT {
		return nil, refuse(LayerStatement, nil, "the algorithm must be exactly one SELECT statement; DuckDB prepared it as statement type %d", typ)
	}
	n, err := ds.ColumnCount()
	if err != nil {
		return nil, err
	}
	p := &preparedQuery{columns: make([]resultColumn, n), params: make([]string, ds.NumInput())}
	for i := range p.columns {
		if p.columns[i].name, err = ds.ColumnName(i); err != nil {
			return nil, err
		}
		if p.columns[i].typ, err = ds.ColumnTypeInfo(i); err != nil {
			return nil, err
		}
	}
	for i := range p.params {
		if p.params[i], err = ds.ParamName(i + 1); err != nil {
			return nil, fmt.Errorf("engine: the name of parameter %d: %w", i+1, err)
		}
	}
	return p, nil
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
func checkPolicy(policy Policy) error {
	p := policy.Output
	switch {
	case p.MaxRows < 1:
		return refuse(LayerPolicy, nil, "output policy max_rows is %d; it must be at least 1", p.MaxRows)
	case p.MinGroupSize < 0:
		return refuse(LayerPolicy, nil, "output policy min_group_size is %d; it must not be negative", p.MinGroupSize)
	}
	switch p.Mode {
	case contracts.ModeCustom:
		if p.MinGroupSize > 0 && p.GroupSizeColumn == "" {
			return refuse(LayerPolicy, nil, "output policy min_group_size is %d but names no group_size_column", p.MinGroupSize)
		}
	case contracts.ModeAggregate:
		if p.GroupSizeColumn != "" {
			return refuse(LayerPolicy, nil, "output policy names group_size_column %q in mode aggregate, where the engine counts the privacy units itself", p.GroupSizeColumn)
		}
	case contracts.ModeDifferentialPrivacy:
		if p.DifferentialPrivacy == nil {
			return refuse(LayerPolicy, nil, "output mode differential_privacy needs the contract's differential_privacy block")
		}
	default:
		return refuse(LayerPolicy, nil, "output policy mode %q is not one of aggregate, differential_privacy, custom", p.Mode)
	}
	return nil
}
