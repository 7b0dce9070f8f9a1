// Package scenario is the machinery the example scenarios share: streaming
// generated datasets to CSV and Parquet files in bounded memory, writing the
// results a scenario's query is known to produce, checking a clean room's
// released result against them, filling contract templates, and the
// generators' common command line.
//
// An example scenario (examples/ad-attribution, examples/clinical-cohort)
// supplies a Spec: its generator, its contract template and its result
// columns. Everything it writes is a deterministic function of the Config:
// the same seed and size give the same bytes.
package scenario

import (
	"context"
	"fmt"
	"strings"

	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
)

// ExpectedFile is the name of the expected-results file every generator
// writes beside its datasets.
const ExpectedFile = "expected.csv"

// ReleasedColumn is the expected-results column that says whether a group
// survives the output policy (its group size is at least k).
const ReleasedColumn = "released"

// DefaultBatchRows is the number of rows per generated batch (and per
// Parquet row group).
const DefaultBatchRows = 1 << 16

// Config is what a generator run produces.
type Config struct {
	// Dir is the output directory; it is created if needed.
	Dir string
	// Rows is the size of the scenario's main dataset (the scenario's
	// documentation says which one).
	Rows int64
	// Seed selects the data; the same seed and Rows give the same files.
	Seed uint64
	// Formats are the file formats of each dataset: CSV, Parquet or both.
	Formats []connectors.Format
	// K is the contract's min_group_size, used to mark the expected groups
	// as released or suppressed.
	K int64
	// BatchRows is the rows per batch; 0 means DefaultBatchRows.
	BatchRows int
}

// Batch returns the rows per batch.
func (c Config) Batch() int {
	if c.BatchRows > 0 {
		return c.BatchRows
	}
	return DefaultBatchRows
}

// Summary reports what a generator run wrote.
type Summary struct {
	// Datasets maps each dataset id to its number of rows.
	Datasets map[string]int64
	// Groups is the number of rows the query returns before the output
	// policy; Released of them have a group size of at least k.
	Groups, Released int64
	// Files are the paths written.
	Files []string
}

// Suppressed is the number of groups the output policy drops.
func (s *Summary) Suppressed() int64 { return s.Groups - s.Released }

// Spec describes an example scenario to the shared command line.
type Spec struct {
	// Name is the scenario's name, as in its directory (ad-attribution).
	Name string
	// RowsHelp says what --rows counts.
	RowsHelp string
	// DefaultRows is the demo size.
	DefaultRows int64
	// DefaultK is the k of the scenario's contract template.
	DefaultK int64
	// ContractTemplate is the scenario's contract template (see Fill).
	ContractTemplate []byte
	// ResultColumns are the columns of the query's result, in order.
	ResultColumns []contracts.Column
	// Generate writes the datasets and the expected results. When ctx is
	// cancelled it stops, removes what it wrote and returns ctx.Err().
	Generate func(context.Context, Config) (*Summary, error)
}

// ParseFormats parses the --format value: csv, parquet or both.
func ParseFormats(s string) ([]connectors.Format, error) {
	switch strings.ToLower(s) {
	case "csv":
		return []connectors.Format{connectors.FormatCSV}, nil
	case "parquet":
		return []connectors.Format{connectors.FormatParquet}, nil
	case "both":
		return []connectors.Format{connectors.FormatCSV, connectors.FormatParquet}, nil
	}
	return nil, fmt.Errorf("unknown format %q: want csv, parquet or both", s)
}

// MustColumns parses "name type" pairs into contract columns; for the
// scenarios' fixed schemas, so a typo panics at start-up.
func MustColumns(pairs ...string) []contracts.Column {
	if len(pairs)%2 != 0 {
		panic("scenario: MustColumns needs name, type pairs")
	}
	var cols []contracts.Column
	for i := 0; i < len(pairs); i += 2 {
		t, err := contracts.ParseColumnType(pairs[i+1])
		if err != nil {
			panic(fmt.Sprintf("scenario: column %s: %v", pairs[i], err))
		}
		cols = append(cols, contracts.Column{Name: pairs[i], Type: t})
	}
	return cols
}
