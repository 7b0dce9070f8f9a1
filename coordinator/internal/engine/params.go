package engine

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
	"cleanroom.dev/cleanroom/contracts"
)

// Param is the value of the algorithm's parameter $Name for one run,
// checked against the contract (contracts.Algorithm.CheckParameters).
type Param struct {
	Name  string
	Value contracts.Value
}

// QueryParameters returns the names of the parameters query uses ($name),
// sorted, as DuckDB's parser reads the text in a
// locked-down database holding no data. A query that uses a positional
// parameter, or puts a parameter where DuckDB reads a name
// (sqlcheck.RuleParameter), is refused with a *RefusalError at
// LayerStatement, as is a query DuckDB cannot parse.
func QueryParameters(query string) ([]string, error) {
	ctx := context.Background()
	connector, err := open(ctx, Config{MemoryLimit: 64 << 20, Threads: 1})
	if err != nil {
		return nil, err
	}
	defer connector.Close()
	conn, err := connector.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: connecting to the statement-check database: %w", err)
	}
	defer conn.Close()
	serialized, err := serialize(ctx, conn, "json_serialize_sql(CAST($1 AS VARCHAR))", query)
	if err != nil {
		return nil, err
	}
	stmts, err := sqlcheck.Parse(serialized)
	var serr *sqlcheck.SerializeError
	switch {
	case errors.As(err, &serr):
		return nil, refuse(LayerStatement, nil, "DuckDB cannot parse the algorithm: %s", serr.Message)
	case err != nil:
		return nil, refuse(LayerStatement, nil, "%v", err)
	case len(stmts) != 1:
		return nil, refuse(LayerStatement, nil, "the algorithm must be exactly one SELECT statement; found %d", len(stmts))
	}
	names, err := sqlcheck.Parameters(stmts[0])
	if err != nil {
		return nil, refuse(LayerStatement, nil, "%v", err)
	}
	return names, nil
}

// CheckParameterNames compares the parameters an algorithm uses with those
// its contract declares: each used must be declared, each declared used.
// Refusals are *RefusalError at LayerStatement naming the parameters.
func CheckParameterNames(used []string, declared []contracts.Parameter) error {
	var problems []string
	for _, u := range used {
		if !slices.ContainsFunc(declared, func(p contracts.Parameter) bool { return p.Name == u }) {
			problems = append(problems, fmt.Sprintf("it uses $%s, which the contract's algorithm.parameters do not declare", u))
		}
	}
	for _, p := range declared {
		if !slices.Contains(used, p.Name) {
			problems = append(problems, fmt.Sprintf("the contract declares the parameter %s, which it never uses ($%s)", p.Name, p.Name))
		}
	}
	if len(problems) > 0 {
		return refuse(LayerStatement, nil, "the algorithm's parameters are not the contract's: %s", strings.Join(problems, "; "))
	}
	return nil
}

// bindArgs returns the values of params in the order of the prepared
// statement's parameters, each typed as its contract type, so that DuckDB
// binds it as a value of the query: never a part of its text. Every
// parameter the statement has must be given, and every value given must be
// one of its parameters.
func bindArgs(conn driver.Conn, query string, params []Param) ([]any, error) {
	p, err := prepareQuery(conn, query)
	if err != nil {
		return nil, err
	}
	return p.args(params)
}

// args is bindArgs for a query already prepared.
func (p *preparedQuery) args(params []Param) ([]any, error) {
	args := make([]any, len(p.params))
	for i, name := range p.params {
		j := slices.IndexFunc(params, func(p Param) bool { return p.Name == name })
		if j < 0 {
			return nil, refuse(LayerStatement, nil, "the algorithm uses the parameter $%s, and the run gives it no value", name)
		}
		args[i] = typed(params[j].Value)
	}
	for _, q := range params {
		if !slices.Contains(p.params, q.Name) {
			return nil, refuse(LayerStatement, nil, "the run gives a value for the parameter %s, which the algorithm does not use", q.Name)
		}
	}
	return args, nil
}

// typed is the DuckDB value of a parameter: a TypedValue of the DuckDB
// type its contract type loads as (load.go), so a value never takes a type
// the query's context would choose. A decimal goes as its canonical text,
// which DuckDB casts to the decimal type the query's context gives it.
func typed(v contracts.Value) any {
	switch v.Type.Kind {
	case contracts.KindBool:
		return duckdb.Typed(v.Bool(), duckdb.TYPE_BOOLEAN)
	case contracts.KindInt32:
		return duckdb.Typed(int32(v.Int()), duckdb.TYPE_INTEGER)
	case contracts.KindInt64:
		return duckdb.Typed(v.Int(), duckdb.TYPE_BIGINT)
	case contracts.KindFloat64:
		return duckdb.Typed(v.Float(), duckdb.TYPE_DOUBLE)
	case contracts.KindDate:
		return duckdb.Typed(v.Time(), duckdb.TYPE_DATE)
	case contracts.KindTimestamp:
		return duckdb.Typed(v.Time(), duckdb.TYPE_TIMESTAMP_TZ)
	}
	return duckdb.Typed(v.Text(), duckdb.TYPE_VARCHAR)
}
