package engine

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// reservedPrefix starts the names of the engine's own catalog entries.
// Table names may not start with it.
const reservedPrefix = "_cleanroom"

// ColumnType returns the DuckDB type a dataset column of Arrow type t has in
// queries, or an error if datasets cannot have columns of type t. The
// mapping is exact: every value of t is read without loss, and comes back
// (through Run's Arrow results) as the same Arrow type.
//
//	bool                  BOOLEAN
//	int32                 INTEGER
//	int64                 BIGINT
//	float64               DOUBLE
//	utf8                  VARCHAR
//	date32                DATE
//	timestamp[us, UTC]    TIMESTAMPTZ (the session's time zone is UTC)
//	decimal128(p, s)      DECIMAL(p, s), 1 ≤ p ≤ 38, 0 ≤ s ≤ p
func ColumnType(t arrow.DataType) (string, error) {
	switch t := t.(type) {
	case *arrow.BooleanType:
		return "BOOLEAN", nil
	case *arrow.Int32Type:
		return "INTEGER", nil
	case *arrow.Int64Type:
		return "BIGINT", nil
	case *arrow.Float64Type:
		return "DOUBLE", nil
	case *arrow.StringType:
		return "VARCHAR", nil
	case *arrow.Date32Type:
		return "DATE", nil
	case *arrow.TimestampType:
		if t.Unit == arrow.Microsecond && t.TimeZone == "UTC" {
			return "TIMESTAMPTZ", nil
		}
	case *arrow.Decimal128Type:
		if t.Precision >= 1 && t.Precision <= 38 && t.Scale >= 0 && t.Scale <= t.Precision {
			return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale), nil
		}
	}
	return "", fmt.Errorf("Arrow type %s is not a dataset column type (bool, int32, int64, float64, utf8, date32, timestamp[us, UTC], decimal128(p ≤ 38, s))", t)
}

// LoadTable makes the batches r yields queryable as table name. It checks
// first that name is free, that schema has only dataset column types (see
// ColumnType) and no two columns whose names differ only in case, and that
// r yields batches of exactly that schema; then that every batch's buffers
// are well formed (offsets, lengths, null counts, UTF-8, decimal
// precision), so DuckDB never reads malformed memory. A refusal is a
// *RefusalError at LayerInput that names the column and row.
//
// The batches are not copied: the session retains them, and DuckDB reads
// them in place, in parallel, every time the query scans the table, until
// Close; their memory must stay valid and unchanged until then (retaining
// is enough for batches that own their buffers). LoadTable consumes r but
// does not release it. On any error the
// table does not exist and name may be loaded again. Different tables may
// be loaded concurrently.
func (s *Session) LoadTable(ctx context.Context, name string, schema *arrow.Schema, r array.RecordReader) error {
	if err := checkTable(name, schema); err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("engine: loading table %q: nil record reader", name)
	}
	if err := sameSchema(schema, r.Schema()); err != nil {
		return refuse(LayerInput, nil, "dataset %q: the data does not match the expected schema: %v", name, err)
	}
	return s.load(ctx, name, schema, func() (*dataset, error) { return readDataset(ctx, name, schema, r) })
}

// load makes the dataset read returns queryable as table name: the
// session's bookkeeping around LoadTable and LoadSource (an operation in
// flight; the name claimed, then settled as loaded or free again).
func (s *Session) load(ctx context.Context, name string, schema *arrow.Schema, read func() (*dataset, error)) (err error) {
	end, err := s.begin()
	if err != nil {
		return err
	}
	defer end()
	if err := s.claimTable(name); err != nil {
		return err
	}
	defer func() { s.settleTable(name, schema, err == nil) }()
	d, err := read()
	if err != nil {
		return err
	}
	return s.register(ctx, d)
}

// LoadSource makes the dataset src reads queryable as table name, as
// LoadTable does, without holding it: every scan of the table reads src's
// blocks afresh, in parallel on DuckDB's worker threads, checks each
// block's batches as LoadTable checks a dataset's (a failing block fails
// the query with a *RefusalError at LayerInput naming the dataset and
// block), and releases each block once DuckDB no longer reads it. An error
// of src fails the query with a *SourceError. So the memory a dataset takes
// during a query is that of the blocks being scanned, whatever its size.
// src must stay usable until Close.
func (s *Session) LoadSource(ctx context.Context, name string, schema *arrow.Schema, src Source) error {
	if err := checkTable(name, schema); err != nil {
		return err
	}
	if src == nil {
		return fmt.Errorf("engine: loading table %q: nil source", name)
	}
	if src.Rows() < 0 || src.Blocks() < 0 {
		return fmt.Errorf("engine: loading table %q: the source reports %d rows in %d blocks", name, src.Rows(), src.Blocks())
	}
	return s.load(ctx, name, schema, func() (*dataset, error) {
		return &dataset{name: name, schema: schema, rows: src.Rows(), src: src}, nil
	})
}

// register exports a dataset for the scan and creates its view.
func (s *Session) register(ctx context.Context, d *dataset) error {
	name := d.name
	d.s = s.scan
	d.export()
	i := s.scan.add(d)
	conn, err := s.connector.Connect(ctx)
	if err != nil {
		return fmt.Errorf("engine: loading table %q: connecting: %w", name, err)
	}
	defer conn.Close()
	stmt := fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM %s(%d)", quoteIdent(name), scanFunction, i)
	if _, err := conn.(driver.ExecerContext).ExecContext(ctx, stmt, nil); err != nil {
		return fmt.Errorf("engine: loading table %q: %w", name, err)
	}
	return nil
}

// readDataset reads and checks every batch of r, retaining them.
func readDataset(ctx context.Context, name string, schema *arrow.Schema, r array.RecordReader) (*dataset, error) {
	d := &dataset{name: name, schema: schema}
	ok := false
	defer func() {
		if !ok {
			d.release()
		}
	}()
	for r.Next() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("engine: loading table %q: %w", name, err)
		}
		rec := r.RecordBatch()
		if err := checkBatch(schema, rec); err != nil {
			return nil, refuse(LayerInput, nil, "dataset %q, batch starting at row %d: %v", name, d.rows, err)
		}
		rec.Retain()
		d.held = append(d.held, rec)
		d.rows += rec.NumRows()
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("engine: loading table %q: reading the data: %w", name, err)
	}
	ok = true
	return d, nil
}

// claimTable reserves name for a load.
func (s *Session) claimTable(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(name)
	switch {
	case s.ran:
		return fmt.Errorf("engine: cannot load table %q: the session has already run its query", name)
	case s.tables[key] == tableLoading:
		return fmt.Errorf("engine: table %q is already being loaded", name)
	case s.tables[key] == tableLoaded:
		return fmt.Errorf("engine: table %q is already loaded (table names are case-insensitive)", name)
	}
	s.tables[key] = tableLoading
	return nil
}

func (s *Session) settleTable(name string, schema *arrow.Schema, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.tables[strings.ToLower(name)] = tableLoaded
		s.names = append(s.names, name)
		s.schemas = append(s.schemas, schema)
	} else {
		delete(s.tables, strings.ToLower(name))
	}
}

// tableNames returns the names of the loaded tables: the only relations,
// besides its own CTEs, an algorithm may read.
func (s *Session) tableNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.names)
}

// tableSchemas returns the loaded tables' schemas, in the order of
// tableNames.
func (s *Session) tableSchemas() []*arrow.Schema {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.schemas)
}

// checkTable checks a table name and schema.
func checkTable(name string, schema *arrow.Schema) error {
	if err := checkName("table name", name); err != nil {
		return err
	}
	if strings.HasPrefix(strings.ToLower(name), reservedPrefix) {
		return fmt.Errorf("engine: table name %q starts with %q, which is reserved", name, reservedPrefix)
	}
	if schema == nil || schema.NumFields() == 0 {
		return fmt.Errorf("engine: table %q: the schema has no columns", name)
	}
	seen := map[string]string{}
	for i, f := range schema.Fields() {
		if err := checkName(fmt.Sprintf("table %q column %d name", name, i+1), f.Name); err != nil {
			return err
		}
		if prev, dup := seen[strings.ToLower(f.Name)]; dup {
			return fmt.Errorf("engine: table %q has columns %q and %q, which SQL cannot tell apart (names are case-insensitive)", name, prev, f.Name)
		}
		seen[strings.ToLower(f.Name)] = f.Name
		if _, err := ColumnType(f.Type); err != nil {
			return fmt.Errorf("engine: table %q column %q: %w", name, f.Name, err)
		}
	}
	return nil
}

// checkName accepts any non-empty UTF-8 identifier without NUL or control
// characters; identifiers are always quoted.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("engine: %s is empty", what)
	}
	if len(s) > 255 || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("engine: %s %q must be at most 255 bytes of UTF-8 without control characters", what, s)
	}
	return nil
}

// sameSchema compares field names and types (nullability and metadata do
// not matter: every column is nullable).
func sameSchema(want, got *arrow.Schema) error {
	if got == nil {
		return errors.New("the data has no schema")
	}
	if want.NumFields() != got.NumFields() {
		return fmt.Errorf("expected %d columns, the data has %d", want.NumFields(), got.NumFields())
	}
	for i := range want.NumFields() {
		w, g := want.Field(i), got.Field(i)
		if w.Name != g.Name {
			return fmt.Errorf("column %d is named %q, expected %q", i+1, g.Name, w.Name)
		}
		if !arrow.TypeEqual(w.Type, g.Type) {
			return fmt.Errorf("column %q has type %s, expected %s", w.Name, g.Type, w.Type)
		}
	}
	return nil
}
