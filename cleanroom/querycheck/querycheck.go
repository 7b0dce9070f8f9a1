// Package querycheck checks an algorithm against a contract on the
// participant's machine, before anything is signed or sent: DuckDB's own
// parser, the statement check and, in mode aggregate, the privacy analysis
// of cleanroom/sqlcheck — the same code the coordinator runs when the
// algorithm is submitted — and DuckDB binding the query against empty
// tables with the contract's datasets' columns, which names a column or
// function the datasets lack. Nothing is executed and no data is read: the
// tables are empty and the query is only prepared, in an in-memory DuckDB
// with external access, extensions and the file system off.
//
// The coordinator binds the same way when the algorithm is submitted
// (Bind), so an algorithm that does not bind is refused before any run is
// spent on it.
package querycheck

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
	"cleanroom.dev/cleanroom/contracts"
)

// MaxQueryBytes bounds the text checked, as the coordinator bounds it.
const MaxQueryBytes = 1 << 20

// Stage names the check that refused an algorithm.
type Stage string

// The stages, in the order they run.
const (
	StageStatement Stage = "statement" // DuckDB's parser and the statement check
	StagePrivacy   Stage = "privacy"   // the privacy analysis of mode aggregate
	StageBind      Stage = "bind"      // DuckDB binding against the contract's schemas
)

// Refusal is an algorithm the check refuses: the stage, and the reason,
// which names the column, function or construct at fault.
type Refusal struct {
	Stage  Stage
	Reason string
}

func (r *Refusal) Error() string { return string(r.Stage) + " check: " + r.Reason }

// Check runs every stage on query under ct's datasets, models and output
// policy, and returns a *Refusal for the first stage that refuses it, or
// another error when the check itself could not run.
func Check(ctx context.Context, query string, ct *contracts.Contract) error {
	db, err := open(ctx, ct)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := statement(ctx, db, query, ct)
	if err != nil {
		return err
	}
	if ct.Output.Mode == contracts.ModeAggregate {
		if _, err := sqlcheck.Analyze(st, Datasets(ct)); err != nil {
			return &Refusal{StagePrivacy, err.Error()}
		}
	}
	return bind(ctx, db, query)
}

// Bind binds query, which has passed the statement check, against empty
// tables of ct's datasets (and placeholders of its models) and returns a
// *Refusal naming what DuckDB's binder could not resolve.
func Bind(ctx context.Context, query string, ct *contracts.Contract) error {
	db, err := open(ctx, ct)
	if err != nil {
		return err
	}
	defer db.Close()
	return bind(ctx, db, query)
}

// Datasets describes ct's datasets to the privacy analysis: each table's
// columns, with its privacy unit, dimensions and aggregations, as the
// coordinator describes them.
func Datasets(ct *contracts.Contract) []sqlcheck.Dataset {
	out := make([]sqlcheck.Dataset, 0, len(ct.Datasets))
	for i := range ct.Datasets {
		out = append(out, ct.Datasets[i].Analysed())
	}
	return out
}

// statement parses query with DuckDB's parser (json_serialize_sql, which
// executes nothing) and applies the statement check.
func statement(ctx context.Context, db *sql.DB, query string, ct *contracts.Contract) (*sqlcheck.Statement, error) {
	const rule = "the algorithm must be exactly one SELECT statement"
	switch {
	case len(query) > MaxQueryBytes:
		return nil, &Refusal{StageStatement, fmt.Sprintf("the algorithm is %d bytes; at most %d are accepted", len(query), MaxQueryBytes)}
	case !utf8.ValidString(query):
		return nil, &Refusal{StageStatement, "the algorithm text is not valid UTF-8"}
	case strings.IndexByte(query, 0) >= 0:
		return nil, &Refusal{StageStatement, "the algorithm text contains a NUL byte"}
	}
	var serialized string
	if err := db.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql(CAST($1 AS VARCHAR)) AS VARCHAR)", query).Scan(&serialized); err != nil {
		return nil, fmt.Errorf("querycheck: running DuckDB's parser: %w", err)
	}
	stmts, err := sqlcheck.Parse([]byte(serialized))
	var serr *sqlcheck.SerializeError
	switch {
	case errors.As(err, &serr):
		if strings.Contains(serr.Message, "Only SELECT statements") {
			return nil, &Refusal{StageStatement, fmt.Sprintf("%s; DuckDB's parser found a statement that is not a SELECT", rule)}
		}
		return nil, &Refusal{StageStatement, "DuckDB cannot parse the algorithm: " + serr.Message}
	case err != nil:
		return nil, &Refusal{StageStatement, err.Error()}
	case len(stmts) != 1:
		return nil, &Refusal{StageStatement, fmt.Sprintf("%s; found %d statements", rule, len(stmts))}
	}
	names := make([]string, len(ct.Datasets))
	for i, ds := range ct.Datasets {
		names[i] = ds.ID
	}
	models := make([]string, len(ct.Models))
	for i, m := range ct.Models {
		models[i] = m.Name
	}
	if err := sqlcheck.CheckWithModels(stmts[0], names, models); err != nil {
		return nil, &Refusal{StageStatement, err.Error()}
	}
	return stmts[0], nil
}

// bind prepares query, which binds it against the empty tables without
// executing it.
func bind(ctx context.Context, db *sql.DB, query string) error {
	stmt, err := db.PrepareContext(ctx, query)
	if err != nil {
		msg := err.Error()
		// DuckDB's message ends with the query line and a caret, which
		// say where; the first line says what.
		return &Refusal{StageBind, "DuckDB cannot bind the algorithm against the contract's datasets: " + strings.TrimSpace(msg)}
	}
	return stmt.Close()
}

// open makes the in-memory database the check binds in: the contract's
// datasets as empty tables, its models as placeholders of their result
// type, then external access and the configuration locked.
func open(ctx context.Context, ct *contracts.Contract) (*sql.DB, error) {
	q := url.Values{}
	for k, v := range map[string]string{
		"autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
		"allow_community_extensions": "false", "allow_unsigned_extensions": "false",
		"allow_persistent_secrets": "false", "threads": "1", "memory_limit": "64MB",
	} {
		q.Set(k, v)
	}
	connector, err := duckdb.NewConnector(":memory:?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("querycheck: opening an in-memory database: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	stmts := []string{"SET GLOBAL enable_external_access = false", "SET GLOBAL TimeZone = 'UTC'"}
	for _, ds := range ct.Datasets {
		cols := make([]string, len(ds.Columns))
		for i, c := range ds.Columns {
			cols[i] = ident(c.Name) + " " + c.Type.SQLType()
		}
		stmts = append(stmts, "CREATE TABLE "+ident(ds.ID)+" ("+strings.Join(cols, ", ")+")")
	}
	for _, m := range ct.Models {
		args := make([]string, len(m.Args))
		for i := range m.Args {
			args[i] = fmt.Sprintf("a%d", i)
		}
		stmts = append(stmts, "CREATE MACRO "+ident(m.Name)+"("+strings.Join(args, ", ")+") AS CAST(NULL AS "+m.Result.SQLType()+")")
	}
	stmts = append(stmts, "SET GLOBAL lock_configuration = true")
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			return nil, fmt.Errorf("querycheck: preparing the contract's empty tables (%s): %w", s, err)
		}
	}
	return db, nil
}

func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
