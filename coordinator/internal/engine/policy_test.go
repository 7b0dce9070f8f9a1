package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/contracts"
)

// groups is a table of group sizes: g1..g8 with sizes 1, 5, 10, 49, 50,
// 51, 1000 and null.
func groups() *table {
	t := &table{name: "groups", schema: schemaOf(col("g", "string"), col("n", "int64"))}
	b := array.NewRecordBuilder(memory.DefaultAllocator, t.schema)
	defer b.Release()
	for i, n := range []int64{1, 5, 10, 49, 50, 51, 1000, -1} {
		b.Field(0).(*array.StringBuilder).Append("g" + string(rune('1'+i)))
		if n < 0 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.Int64Builder).Append(n)
		}
	}
	t.batches = append(t.batches, b.NewRecordBatch())
	return t
}

func TestOutputPolicy(t *testing.T) {
	g := groups()
	const q = "SELECT g, n AS users FROM groups ORDER BY g"
	for _, c := range []struct {
		name            string
		sql             string
		policy          contracts.Output
		rows, suppresed int64
		kept            string // the g values kept, comma-separated
		refused         string // a fragment of the refusal; "" if released
	}{
		{name: "no threshold", sql: q, policy: contracts.Output{Mode: contracts.ModeCustom, MaxRows: 100}, rows: 8, kept: "g1,g2,g3,g4,g5,g6,g7,g8"},
		{name: "no threshold ignores the column", sql: "SELECT g FROM groups ORDER BY g", policy: contracts.Output{Mode: contracts.ModeCustom, MaxRows: 8}, rows: 8, kept: "g1,g2,g3,g4,g5,g6,g7,g8"},
		{name: "k=50 keeps 50 and above, drops null", sql: q, policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 50, MaxRows: 100},
			rows: 3, suppresed: 5, kept: "g5,g6,g7"},
		{name: "k=1 drops only null", sql: q, policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 1, MaxRows: 100},
			rows: 7, suppresed: 1, kept: "g1,g2,g3,g4,g5,g6,g7"},
		{name: "everything suppressed", sql: q, policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 5000, MaxRows: 1},
			rows: 0, suppresed: 8, kept: ""},
		{name: "max_rows counts after suppression", sql: q, policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 50, MaxRows: 3},
			rows: 3, suppresed: 5, kept: "g5,g6,g7"},
		{name: "more than max_rows is refused, not truncated", sql: q, policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 50, MaxRows: 2},
			refused: "more than max_rows (2) rows"},
		{name: "more than max_rows without k", sql: q, policy: contracts.Output{Mode: contracts.ModeCustom, MaxRows: 7}, refused: "more than max_rows (7) rows"},
		{name: "narrow integer column", sql: "SELECT g, CAST(n AS SMALLINT) AS users FROM groups ORDER BY g",
			policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 10, MaxRows: 100}, rows: 5, suppresed: 3, kept: "g3,g4,g5,g6,g7"},
		{name: "unsigned column", sql: "SELECT g, CAST(n AS UBIGINT) AS users FROM groups ORDER BY g",
			policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 10, MaxRows: 100}, rows: 5, suppresed: 3, kept: "g3,g4,g5,g6,g7"},
		{name: "missing column", sql: "SELECT g, n AS people FROM groups",
			policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 10, MaxRows: 100}, refused: `the result has no column "users"`},
		{name: "column differing in case", sql: "SELECT g, n AS Users FROM groups",
			policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 10, MaxRows: 100}, refused: `the result has "Users"`},
		{name: "duplicate column", sql: "SELECT n AS users, n AS users FROM groups",
			policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 10, MaxRows: 100}, refused: `2 columns named "users"`},
		{name: "double column", sql: "SELECT g, n * 1.5 AS users FROM groups",
			policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 10, MaxRows: 100}, refused: "must be an integer"},
		{name: "hugeint column", sql: "SELECT g, sum(n) AS users FROM groups GROUP BY g",
			policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 10, MaxRows: 100}, refused: "must be an integer"},
		{name: "string column", sql: "SELECT g AS users FROM groups",
			policy: contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 10, MaxRows: 100}, refused: "must be an integer"},
		{name: "zero max_rows", sql: q, policy: contracts.Output{Mode: contracts.ModeCustom}, refused: "max_rows is 0"},
		{name: "negative k", sql: q, policy: contracts.Output{Mode: contracts.ModeCustom, MinGroupSize: -1, MaxRows: 10}, refused: "must not be negative"},
		{name: "k without a column", sql: q, policy: contracts.Output{Mode: contracts.ModeCustom, MinGroupSize: 5, MaxRows: 10}, refused: "names no group_size_column"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSession(t, Config{Threads: 1})
			load(t, s, g)
			res, err := s.Run(context.Background(), c.sql, Policy{Output: c.policy})
			if c.refused != "" {
				var re *RefusalError
				if err == nil {
					res.Release()
					t.Fatal("released")
				}
				if !errors.As(err, &re) || re.Layer != LayerPolicy || !strings.Contains(err.Error(), c.refused) {
					t.Fatalf("got %v, want an output policy refusal saying %q", err, c.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer res.Release()
			if res.Rows != c.rows || res.Suppressed != c.suppresed {
				t.Errorf("kept %d, suppressed %d; want %d, %d", res.Rows, res.Suppressed, c.rows, c.suppresed)
			}
			var kept []string
			for _, b := range res.Batches {
				gs := b.Column(0).(*array.String)
				for i := range gs.Len() {
					kept = append(kept, gs.Value(i))
				}
			}
			if got := strings.Join(kept, ","); got != c.kept {
				t.Errorf("kept %q, want %q", got, c.kept)
			}
		})
	}
}

// TestPolicyAcrossBatches checks suppression and counting over a result of
// many batches, against a count done in SQL.
func TestPolicyAcrossBatches(t *testing.T) {
	imp, conv := scenario(50000, 12)
	s := newSession(t, Config{})
	load(t, s, imp, conv)
	const q = "SELECT user_id, count(*) AS users FROM impressions GROUP BY user_id ORDER BY user_id"
	policy := contracts.Output{Mode: contracts.ModeCustom, GroupSizeColumn: "users", MinGroupSize: 8, MaxRows: 1 << 20}
	res, err := s.Run(context.Background(), q, Policy{Output: policy})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	plain := newPlainDuckDB(t, 2, map[string]string{"impressions": writeParquet(t, t.TempDir(), imp)})
	_, counts := plain.query(t, "SELECT count(*) FILTER (WHERE n >= 8) AS kept, count(*) FILTER (WHERE n < 8) AS dropped FROM (SELECT count(*) AS n FROM impressions GROUP BY user_id)")
	kept := counts[0].Column(0).(*array.Int64).Value(0)
	dropped := counts[0].Column(1).(*array.Int64).Value(0)
	if res.Rows != kept || res.Suppressed != dropped || kept == 0 || dropped == 0 {
		t.Fatalf("kept %d, suppressed %d; want %d, %d", res.Rows, res.Suppressed, kept, dropped)
	}
	if len(res.Batches) < 2 {
		t.Errorf("the result came in %d batch(es); the test wants several", len(res.Batches))
	}
	var prev string
	for _, b := range res.Batches {
		if !b.Schema().Equal(res.Schema) {
			t.Fatalf("batch schema %v", b.Schema())
		}
		ids, n := b.Column(0).(*array.String), b.Column(1).(*array.Int64)
		for i := range ids.Len() {
			if n.Value(i) < 8 || ids.Value(i) <= prev {
				t.Fatalf("row %s=%d kept or out of order", ids.Value(i), n.Value(i))
			}
			prev = ids.Value(i)
		}
	}
}
