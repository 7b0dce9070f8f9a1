package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/array"

	"cleanroom.dev/cleanroom/cleanroom/querycheck"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
)

// NullError reports an empty value in a column the contract declares
// nullable: false: encryption refuses it (and so would the coordinator).
type NullError = upload.NullError

// DatasetCheck is what CheckDataset found in a provider's rows.
type DatasetCheck struct {
	Dataset string              `json:"dataset"`
	Profile *connectors.Profile `json:"profile"`
	// Problems lists what an upload would refuse: empty values in a
	// column the contract declares nullable: false, one per column, with
	// the first row that has one.
	Problems []string `json:"problems"`
}

// OK reports whether an upload of the rows would be accepted as they are.
func (c *DatasetCheck) OK() bool { return len(c.Problems) == 0 }

// CheckDataset reads a dataset's rows (a connectors reader over the
// provider's file, which already refuses a value that does not fit its
// column, naming the line) to their end, with no connection and nothing
// written, and returns their profile — rows, and per column the empty
// values, distinct values, smallest and largest — and every problem an
// upload would refuse. It is the check to run before an upload, which
// cannot be undone.
func CheckDataset(rows array.RecordReader, ct *contracts.Contract, datasetID string) (*DatasetCheck, error) {
	ds := ct.Dataset(datasetID)
	if ds == nil {
		return nil, fmt.Errorf("the contract has no dataset %q", datasetID)
	}
	if !rows.Schema().Equal(ds.Schema()) {
		return nil, fmt.Errorf("input schema %s does not match dataset %s's schema %s", rows.Schema(), datasetID, ds.Schema())
	}
	p := connectors.NewProfiler(ds.Columns)
	first := map[string]int64{}
	var n int64
	for rows.Next() {
		rec := rows.RecordBatch()
		// Every not-null column's first empty value, not only the first
		// column's: the report names them all.
		for i, col := range ds.Columns {
			if _, seen := first[col.Name]; seen || !col.NotNull {
				continue
			}
			one := &contracts.Dataset{ID: ds.ID, Columns: make([]contracts.Column, len(ds.Columns))}
			one.Columns[i] = col
			var ne *upload.NullError
			if err := upload.CheckNotNull(one, rec, n+1); errors.As(err, &ne) {
				first[col.Name] = ne.Row
			}
		}
		p.Add(rec)
		n += rec.NumRows()
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := &DatasetCheck{Dataset: datasetID, Profile: p.Profile(), Problems: []string{}}
	for _, cp := range out.Profile.Columns {
		if row, ok := first[cp.Name]; ok {
			out.Problems = append(out.Problems, fmt.Sprintf("column %s: %d empty %s, the first in row %d, but the contract declares it nullable: false",
				cp.Name, cp.Nulls, map[bool]string{true: "value", false: "values"}[cp.Nulls == 1], row))
		}
	}
	return out, nil
}

// AlgorithmRefusal is an algorithm the local check refuses: its stage
// (statement, privacy, bind) and a reason naming what is at fault.
type AlgorithmRefusal = querycheck.Refusal

// CheckAlgorithm checks query against the contract on this machine, with
// no connection and nothing consumed: DuckDB's parser, the statement check
// and (in mode aggregate) the privacy analysis the coordinator applies at
// submission, then DuckDB binding the query against empty tables of the
// contract's datasets, which names a column or function they lack. A
// refusal is an *AlgorithmRefusal. It does not compare the text with the
// contract's algorithm.sha256 (Algorithm.Check does).
func CheckAlgorithm(ctx context.Context, query []byte, ct *contracts.Contract) error {
	return querycheck.Check(ctx, string(query), ct)
}
