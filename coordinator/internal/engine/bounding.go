package engine

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Bounding describes the contribution bounding of a differentially private
// query (SPEC §7.1, docs/privacy.md): over the rows of Input, each privacy
// unit keeps at most MaxGroups of its groups, at most MaxRowsPerGroup of its
// rows in each, and each value clamped to its bounds. The SQL it builds
// returns one row per (unit, group) kept with the unit's partial
// aggregates, which coordinator/internal/privacy turns into noisy aggregates.
//
// Which groups a unit keeps is decided by a hash of the unit and the group
// under Key, a fresh random key per run (NewBoundingKey): the choice
// depends only on that unit's own rows and the key, never on other units'
// data, and the query's author cannot arrange which groups win. Which rows
// a unit keeps in a group is chosen at random. Rows whose unit is NULL
// belong to no one who could be protected and are dropped.
type Bounding struct {
	// Input is the relation to bound: a table name or a parenthesised
	// subquery, with the columns named below.
	Input string
	// Unit is the privacy unit column.
	Unit string
	// Groups are the group key columns (none: one group, the whole input).
	Groups []string
	// Values are the columns to sum or average, with their bounds.
	Values []BoundedColumn
	// MaxGroups and MaxRowsPerGroup are the contract's
	// max_groups_contributed and max_contributions_per_group.
	MaxGroups, MaxRowsPerGroup int64
	// Key keys the choice of groups; NewBoundingKey makes one per run.
	Key uint64
}

// BoundedColumn is a value column and its clamping bounds.
type BoundedColumn struct {
	Column       string
	Lower, Upper float64
}

// Columns of the relation Bounding.SQL returns, besides the group columns
// (which keep their names): the unit, its row count in the group, and for
// value column i its non-NULL count and clamped sum.
const (
	BoundedUnit = "__unit"
	BoundedRows = "__rows"
)

// BoundedCount and BoundedSum name value column i's partial aggregates in
// the relation Bounding.SQL returns.
func BoundedCount(i int) string { return "__count_" + strconv.Itoa(i) }

// BoundedSum: see BoundedCount.
func BoundedSum(i int) string { return "__sum_" + strconv.Itoa(i) }

// NewBoundingKey returns a fresh random key for one run's bounding.
func NewBoundingKey() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return binary.LittleEndian.Uint64(b[:])
}

// SQL returns the bounding query: one row per (unit, group) kept, with
// columns BoundedUnit, the group columns in order, BoundedRows, and for
// each value column i BoundedCount(i) (BIGINT) and BoundedSum(i)
// (DOUBLE, 0 when every value is NULL).
func (b Bounding) SQL() (string, error) {
	if err := b.check(); err != nil {
		return "", err
	}
	unit := quoteIdent(b.Unit)
	var groups []string
	for _, g := range b.Groups {
		groups = append(groups, quoteIdent(g))
	}
	key := fmt.Sprintf("CAST(%d AS UBIGINT)", b.Key)
	inputCols := append([]string{unit + " AS " + BoundedUnit}, groups...)
	for i, v := range b.Values {
		inputCols = append(inputCols, fmt.Sprintf("CAST(%s AS DOUBLE) AS __v_%d", quoteIdent(v.Column), i))
	}
	inputCols = append(inputCols,
		fmt.Sprintf("hash(%s) AS __h", strings.Join(append([]string{key, unit}, groups...), ", ")),
		"random() AS __r")
	pair := append([]string{BoundedUnit}, groups...)
	aggs := []string{"count(*) AS " + BoundedRows}
	for i, v := range b.Values {
		aggs = append(aggs,
			fmt.Sprintf("count(__v_%d) AS %s", i, BoundedCount(i)),
			fmt.Sprintf("coalesce(sum(least(greatest(__v_%d, %s), %s)), 0) AS %s", i, doubleLiteral(v.Lower), doubleLiteral(v.Upper), BoundedSum(i)))
	}
	order := strings.Join(append([]string{"__h"}, groups...), ", ")
	// One pass over each unit's rows, in the order of its groups' keyed
	// hash (the group columns break ties between groups), then at random
	// within a group: dense_rank numbers the unit's groups, and
	// row_number − rank + 1 numbers the rows within a group (rank is the
	// position of the group's first row).
	var q strings.Builder
	fmt.Fprintf(&q, "WITH __input AS (SELECT %s FROM %s WHERE %s IS NOT NULL),\n", strings.Join(inputCols, ", "), b.Input, unit)
	fmt.Fprintf(&q, "__ranked AS (SELECT *, dense_rank() OVER __w AS __group, row_number() OVER __wr - rank() OVER __w + 1 AS __row FROM __input\n")
	fmt.Fprintf(&q, "  WINDOW __w AS (PARTITION BY %s ORDER BY %s), __wr AS (PARTITION BY %s ORDER BY %s, __r))\n", BoundedUnit, order, BoundedUnit, order)
	fmt.Fprintf(&q, "SELECT %s, %s FROM __ranked WHERE __group <= %d AND __row <= %d GROUP BY %s",
		strings.Join(pair, ", "), strings.Join(aggs, ", "), b.MaxGroups, b.MaxRowsPerGroup, strings.Join(pair, ", "))
	return q.String(), nil
}

func (b Bounding) check() error {
	switch {
	case strings.TrimSpace(b.Input) == "":
		return errors.New("engine: bounding: no input relation")
	case b.Unit == "":
		return errors.New("engine: bounding: no privacy unit column")
	case b.MaxGroups < 1 || b.MaxRowsPerGroup < 1:
		return fmt.Errorf("engine: bounding: max groups %d and max rows per group %d must be at least 1", b.MaxGroups, b.MaxRowsPerGroup)
	}
	seen := map[string]bool{strings.ToLower(b.Unit): true}
	for _, g := range b.Groups {
		if g == "" || strings.HasPrefix(g, "__") || seen[strings.ToLower(g)] {
			return fmt.Errorf("engine: bounding: group column %q is empty, reserved (__), the unit or listed twice", g)
		}
		seen[strings.ToLower(g)] = true
	}
	for _, v := range b.Values {
		finite := !math.IsNaN(v.Lower) && !math.IsInf(v.Lower, 0) && !math.IsNaN(v.Upper) && !math.IsInf(v.Upper, 0)
		if v.Column == "" || !finite || !(v.Lower < v.Upper) {
			return fmt.Errorf("engine: bounding: value column %q needs finite bounds with lower < upper, got [%v, %v]", v.Column, v.Lower, v.Upper)
		}
	}
	return nil
}

// doubleLiteral writes x as a DOUBLE literal that DuckDB reads back exactly.
func doubleLiteral(x float64) string {
	return "CAST(" + strconv.FormatFloat(x, 'g', -1, 64) + " AS DOUBLE)"
}
