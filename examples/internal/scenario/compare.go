package scenario

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Comparison sets a differentially private result beside the exact one:
// both keyed by their first column, every other column numeric.
type Comparison struct {
	Columns []string // the value columns, after the key
	Rows    []ComparedRow
	// Missing are the exact result's keys that the private one does not
	// release (dropped by partition selection).
	Missing []string
	// Extra are the private result's rows whose keys the exact result
	// does not have (suppressed there, below k).
	Extra [][]string
	// Median is, per value column, the median relative error over the
	// released rows: |private − exact| / |exact|.
	Median []float64
}

// ComparedRow is one released key: the exact and private values.
type ComparedRow struct {
	Key            string
	Exact, Private []float64
}

// Compare compares a private result with the exact one; both must have the
// same columns.
func Compare(exact, private *Table) (*Comparison, error) {
	if !slices.Equal(exact.Columns, private.Columns) || len(exact.Columns) < 2 {
		return nil, fmt.Errorf("the results have columns %v and %v: want the same key and value columns", exact.Columns, private.Columns)
	}
	c := &Comparison{Columns: exact.Columns[1:]}
	byKey := map[string][]float64{}
	for _, r := range exact.Rows {
		vals, err := numbers(r[1:])
		if err != nil {
			return nil, fmt.Errorf("exact result, key %q: %w", r[0], err)
		}
		byKey[r[0]] = vals
	}
	released := map[string]bool{}
	errs := make([][]float64, len(c.Columns))
	for _, r := range private.Rows {
		vals, err := numbers(r[1:])
		if err != nil {
			return nil, fmt.Errorf("private result, key %q: %w", r[0], err)
		}
		ex, ok := byKey[r[0]]
		if !ok {
			c.Extra = append(c.Extra, r)
			continue
		}
		released[r[0]] = true
		c.Rows = append(c.Rows, ComparedRow{Key: r[0], Exact: ex, Private: vals})
		for i := range vals {
			errs[i] = append(errs[i], math.Abs(vals[i]-ex[i])/math.Abs(ex[i]))
		}
	}
	for _, r := range exact.Rows {
		if !released[r[0]] {
			c.Missing = append(c.Missing, r[0])
		}
	}
	for _, e := range errs {
		c.Median = append(c.Median, median(e))
	}
	return c, nil
}

func numbers(s []string) ([]float64, error) {
	out := make([]float64, len(s))
	for i, v := range s {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("value %q is not a number", v)
		}
		out[i] = f
	}
	return out, nil
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(x))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Write prints the comparison as a table: each key with, per column, the
// exact value, the private one and the relative error; then the keys not
// released and the median relative error per column.
func (c *Comparison) Write(w io.Writer) {
	var head []string
	for _, col := range c.Columns {
		head = append(head, fmt.Sprintf("%14s %14s %7s", col, "(private)", "error"))
	}
	fmt.Fprintf(w, "%-20s %s\n", "", strings.Join(head, "  "))
	for _, r := range c.Rows {
		var cells []string
		for i := range r.Exact {
			cells = append(cells, fmt.Sprintf("%14.2f %14.2f %6.1f%%", r.Exact[i], r.Private[i], 100*math.Abs(r.Private[i]-r.Exact[i])/math.Abs(r.Exact[i])))
		}
		fmt.Fprintf(w, "%-20s %s\n", r.Key, strings.Join(cells, "  "))
	}
	for _, r := range c.Extra {
		fmt.Fprintf(w, "%-20s not in the exact result (suppressed below k); private: %s\n", r[0], strings.Join(r[1:], ", "))
	}
	if len(c.Missing) > 0 {
		fmt.Fprintf(w, "not released by partition selection: %s\n", strings.Join(c.Missing, ", "))
	}
	var meds []string
	for i, col := range c.Columns {
		meds = append(meds, fmt.Sprintf("%s %.1f%%", col, 100*c.Median[i]))
	}
	fmt.Fprintf(w, "median relative error per group: %s\n", strings.Join(meds, ", "))
}

// ReadCSVTable reads a CSV file with a header line as a Table.
func ReadCSVTable(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: no header line", path)
	}
	return &Table{Columns: recs[0], Rows: recs[1:]}, nil
}

// compareCmd is `gen compare EXACT PRIVATE`.
func compareCmd(prog string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(prog+" compare", stderr, prog+" compare EXACT.csv PRIVATE.csv")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageError{fmt.Errorf("compare takes two CSV files, the exact result and the private one; got %d arguments", fs.NArg())}
	}
	exact, err := ReadCSVTable(fs.Arg(0))
	if err != nil {
		return err
	}
	private, err := ReadCSVTable(fs.Arg(1))
	if err != nil {
		return err
	}
	c, err := Compare(exact, private)
	if err != nil {
		return err
	}
	c.Write(stdout)
	return nil
}
