package scenario

import (
	"context"
	"errors"

	"github.com/apache/arrow-go/v18/arrow"

	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
)

// Generator makes one scenario's datasets: it writes each dataset's batches
// to its writer (in the order of the Datasets given to Generate), then
// computes the query's expected result from what it wrote.
type Generator interface {
	Run(ctx context.Context, writers []*DatasetWriter) error
	Expected(k int64, sum *Summary) [][]any
	Release()
}

// Dataset names one of a scenario's datasets and its columns.
type Dataset struct {
	Name    string
	Columns []contracts.Column
}

// Generate writes a scenario's datasets with the generator newGen makes
// for their schemas, and the expected result of its query, into cfg.Dir,
// all together or not at all: if anything fails or ctx is cancelled,
// everything written is removed.
func Generate(ctx context.Context, cfg Config, datasets []Dataset, result []contracts.Column,
	newGen func(schemas []*arrow.Schema) Generator) (sum *Summary, err error) {
	out, err := NewOutput(cfg.Dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			out.Abort()
		}
	}()
	schemas := make([]*arrow.Schema, len(datasets))
	writers := make([]*DatasetWriter, len(datasets))
	closeAll := func() error {
		var errs []error
		for _, w := range writers {
			if w != nil {
				errs = append(errs, w.Close())
			}
		}
		return errors.Join(errs...)
	}
	for i, ds := range datasets {
		schemas[i] = connectors.Schema(ds.Columns)
		if writers[i], err = out.Dataset(ds.Name, schemas[i], cfg.Formats); err != nil {
			closeAll()
			return nil, err
		}
	}
	gen := newGen(schemas)
	defer gen.Release()
	if err := gen.Run(ctx, writers); err != nil {
		closeAll()
		return nil, err
	}
	if err := closeAll(); err != nil {
		return nil, err
	}
	sum = &Summary{Datasets: map[string]int64{}}
	for i, ds := range datasets {
		sum.Datasets[ds.Name] = writers[i].Rows()
	}
	if err := WriteExpected(out, result, gen.Expected(cfg.K, sum)); err != nil {
		return nil, err
	}
	if err := out.Commit(); err != nil {
		return nil, err
	}
	sum.Files = out.Paths()
	return sum, nil
}
