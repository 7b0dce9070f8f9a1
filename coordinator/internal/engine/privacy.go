package engine

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
	"cleanroom.dev/cleanroom/contracts"
)

// Policy is what a run enforces: the contract's output policy, and the
// contract's datasets, whose privacy units, dimensions and aggregations
// mode aggregate applies (SPEC §7.1).
type Policy struct {
	Output contracts.Output
	// Datasets are the contract's datasets. A loaded table that none of
	// them names is read as a dataset without a privacy unit.
	Datasets []contracts.Dataset
	// Models are the names of the contract's models, which the algorithm
	// may call (CheckAlgorithm; a run calls the models its session has).
	// The privacy analysis reads a model's result as derived from its
	// arguments.
	Models []string
	// Parameters are the contract's algorithm.parameters: the algorithm
	// must use exactly these ($name), checked at submission.
	Parameters []contracts.Parameter
}

// ContractPolicy is the policy of a contract's runs.
func ContractPolicy(c *contracts.Contract) Policy {
	p := Policy{Output: c.Output, Datasets: c.Datasets, Parameters: c.Algorithm.Parameters}
	for _, m := range c.Models {
		p.Models = append(p.Models, m.Name)
	}
	return p
}

// privacyDatasets describes the datasets to the privacy analysis: each
// table (by name and columns) with what the policy declares of it.
func privacyDatasets(names []string, schemas []*arrow.Schema, p Policy) []sqlcheck.Dataset {
	out := make([]sqlcheck.Dataset, 0, len(names))
	for i, name := range names {
		d := sqlcheck.Dataset{Name: name}
		for j := range p.Datasets {
			if p.Datasets[j].ID == name {
				d = p.Datasets[j].Analysed()
			}
		}
		// The columns are the table's, as loaded.
		d.Columns = nil
		if i < len(schemas) && schemas[i] != nil {
			for _, f := range schemas[i].Fields() {
				d.Columns = append(d.Columns, sqlcheck.Column{Name: f.Name, Type: f.Type.String()})
			}
		}
		out = append(out, d)
	}
	return out
}

// contractDatasets describes a contract's datasets to the privacy
// analysis, for the check at submission.
func contractDatasets(p Policy) []sqlcheck.Dataset {
	names := make([]string, len(p.Datasets))
	schemas := make([]*arrow.Schema, len(p.Datasets))
	for i, ds := range p.Datasets {
		names[i], schemas[i] = ds.ID, ds.Schema()
	}
	return privacyDatasets(names, schemas, p)
}

// aggregatePlan is how a run in mode aggregate executes: the rewritten
// query, and where its privacy-unit counts are in the result.
type aggregatePlan struct {
	query    string // the text to run
	analysis *sqlcheck.Analysis
}

// CheckAlgorithm reports whether query may run under policy: the statement
// check (CheckQuery, over the policy's datasets) and, in mode aggregate,
// the privacy analysis and its rewrite (docs/privacy.md); the algorithm
// must use exactly the policy's parameters. The coordinator
// runs it when the algorithm is submitted, so that an algorithm the
// analysis refuses is refused before any run is spent. A refusal is a
// *RefusalError at LayerStatement or LayerPrivacy.
func CheckAlgorithm(query string, p Policy) error {
	if err := checkPolicy(p); err != nil {
		return err
	}
	ctx := context.Background()
	connector, err := open(ctx, Config{MemoryLimit: 64 << 20, Threads: 1})
	if err != nil {
		return err
	}
	defer connector.Close()
	conn, err := connector.Connect(ctx)
	if err != nil {
		return fmt.Errorf("engine: connecting to the statement-check database: %w", err)
	}
	defer conn.Close()
	names := make([]string, len(p.Datasets))
	for i, ds := range p.Datasets {
		names[i] = ds.ID
	}
	st, err := checkStatement(ctx, conn, query, names, p.Models)
	if err != nil {
		return err
	}
	used, err := sqlcheck.Parameters(st)
	if err != nil {
		return refuse(LayerStatement, nil, "%v", err)
	}
	if err := CheckParameterNames(used, p.Parameters); err != nil {
		return err
	}
	switch p.Output.Mode {
	case contracts.ModeAggregate:
		_, err = plan(ctx, conn, query, st, contractDatasets(p))
	case contracts.ModeDifferentialPrivacy:
		_, _, err = planDP(ctx, conn, st, contractDatasets(p), p.Output.DifferentialPrivacy)
	}
	return err
}

// plan applies the privacy analysis to a statement that passed the
// statement check and, when the result reads a protected dataset, writes
// the rewritten query back to SQL with DuckDB's json_deserialize_sql and
// checks that DuckDB parses that text into exactly the rewritten tree.
func plan(ctx context.Context, conn driver.Conn, query string, st *sqlcheck.Statement, datasets []sqlcheck.Dataset) (*aggregatePlan, error) {
	a, err := sqlcheck.Analyze(st, datasets)
	if err != nil {
		return nil, refuse(LayerPrivacy, nil, "%v", err)
	}
	p := &aggregatePlan{query: query, analysis: a}
	tree := a.Rewritten()
	if tree == nil {
		return p, nil
	}
	text, err := deserialize(ctx, conn, tree)
	if err != nil {
		return nil, err
	}
	again, err := serialize(ctx, conn, "json_serialize_sql(CAST($1 AS VARCHAR))", text)
	if err != nil {
		return nil, err
	}
	if err := sameTree(tree, again); err != nil {
		return nil, fmt.Errorf("engine: the rewritten query does not parse back into the rewritten tree (%v); the rewrite is refused", err)
	}
	p.query = text
	return p, nil
}

// deserialize turns a statement's JSON tree into SQL text with DuckDB's
// json_deserialize_sql, which executes nothing.
func deserialize(ctx context.Context, conn driver.Conn, tree []byte) (string, error) {
	rows, err := conn.(driver.QueryerContext).QueryContext(ctx, "SELECT json_deserialize_sql(CAST($1 AS JSON))",
		[]driver.NamedValue{{Ordinal: 1, Value: string(tree)}})
	if err != nil {
		return "", fmt.Errorf("engine: writing the rewritten query: %w", err)
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("engine: writing the rewritten query: %w", err)
	}
	text, ok := dest[0].(string)
	if !ok {
		return "", fmt.Errorf("engine: json_deserialize_sql returned %T, want text", dest[0])
	}
	return text, nil
}

// sameTree compares two parse trees, ignoring the positions DuckDB
// records (query_location), which differ between two texts of one tree.
func sameTree(a, b []byte) error {
	var x, y any
	for _, t := range []struct {
		b []byte
		v *any
	}{{a, &x}, {b, &y}} {
		dec := json.NewDecoder(bytes.NewReader(t.b))
		dec.UseNumber()
		if err := dec.Decode(t.v); err != nil {
			return err
		}
		stripLocations(*t.v)
	}
	if !reflect.DeepEqual(x, y) {
		return errors.New("the trees differ")
	}
	return nil
}

func stripLocations(v any) {
	switch n := v.(type) {
	case map[string]any:
		delete(n, "query_location")
		for _, e := range n {
			stripLocations(e)
		}
	case []any:
		for _, e := range n {
			stripLocations(e)
		}
	}
}

// resultColumn is a column of a prepared query's result.
type resultColumn struct {
	name string
	typ  duckdb.TypeInfo
}

// sameColumns checks that the rewritten query's columns (rw) are the
// algorithm's (orig), of the same types, followed by the privacy-unit
// counts, and returns the algorithm's column names, which the engine gives
// the result (DuckDB names a column without an alias after the text of its
// expression, which the rewrite may spell differently).
func sameColumns(orig, rw []resultColumn, counts int) ([]string, error) {
	if len(rw) != len(orig)+counts {
		return nil, fmt.Errorf("engine: the rewritten query has %d columns, want the algorithm's %d and %d counts", len(rw), len(orig), counts)
	}
	names := make([]string, len(orig))
	for i, c := range orig {
		a, b := c.typ, rw[i].typ
		if a.InternalType() != b.InternalType() || a.Alias() != b.Alias() || !reflect.DeepEqual(a.Details(), b.Details()) {
			return nil, fmt.Errorf("engine: the rewritten query's column %d (%s) does not have the algorithm's type", i+1, c.name)
		}
		names[i] = c.name
	}
	return names, nil
}

// countColumns is the number of count columns a rewrite adds (readings
// with equal units share one).
func countColumns(a *sqlcheck.Analysis) int {
	seen := map[string]bool{}
	for _, c := range a.Counts {
		seen[c.Column] = true
	}
	return len(seen)
}

// nestedType reports whether an Arrow type holds other values: a list,
// array, struct, map or union.
func nestedType(t arrow.DataType) bool {
	_, nested := t.(arrow.NestedType)
	return nested
}
