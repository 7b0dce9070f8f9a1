package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/internal/sqlcases"
)

// FuzzCheckQuery feeds arbitrary algorithm text to the statement check:
// it must never panic, and must either accept or refuse at LayerStatement.
// What it accepts is then bound against the datasets, and its plan must
// read only the datasets and the allowed row generators and call no
// refused function: the parse-tree check and the plan check must agree.
func FuzzCheckQuery(f *testing.F) {
	for _, h := range hostileQueries {
		f.Add(h.sql)
	}
	for _, c := range sqlcases.Load(f) {
		f.Add(c.SQL)
	}
	f.Add(scenarioQuery)
	f.Add("SELECT 1; ")
	imp, conv := scenario(20, 1)
	s := newSession(f, Config{Threads: 1, MemoryLimit: 64 << 20})
	load(f, s, imp, conv)
	ctx := context.Background()
	conn, err := s.connector.Connect(ctx)
	if err != nil {
		f.Fatal(err)
	}
	defer conn.Close()
	f.Fuzz(func(t *testing.T, q string) {
		err := CheckQuery(q, sqlcases.Datasets)
		var re *RefusalError
		if err != nil {
			if !errors.As(err, &re) || re.Layer != LayerStatement {
				t.Fatalf("CheckQuery(%q) = %v, want nil or a statement-check refusal", q, err)
			}
			return
		}
		if _, err := prepareQuery(conn, q); err != nil {
			return // DuckDB cannot bind it: nothing would run
		}
		if err := checkPlan(ctx, conn, q); errors.As(err, &re) && re.Layer == LayerStatement {
			t.Fatalf("CheckQuery accepted %q, whose plan the plan check refuses: %v", q, err)
		}
	})
}

// FuzzStatementKinds checks the statement splitter used in refusals never
// panics and finds no more statements than there are semicolons plus one.
func FuzzStatementKinds(f *testing.F) {
	for _, h := range hostileQueries {
		f.Add(h.sql)
	}
	f.Add("SELECT $a$;$a$; /* ; /* ; */ ; */ '';'' \"\";\"\" -- ;\n SELECT")
	f.Fuzz(func(t *testing.T, q string) {
		kinds := statementKinds(q)
		if len(kinds) > strings.Count(q, ";")+1 {
			t.Fatalf("%d statements from %d semicolons", len(kinds), strings.Count(q, ";"))
		}
	})
}

// FuzzCheckStrings builds utf8 arrays from arbitrary buffers: whatever the
// check accepts must be readable without panics, value by value valid
// UTF-8, with offsets inside the data.
func FuzzCheckStrings(f *testing.F) {
	offsets := func(v ...int32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
		}
		return b
	}
	f.Add(offsets(0, 1, 3), []byte("abc"), []byte{}, 2, 0, 0)
	f.Add(offsets(0, 1, 2), []byte("é"), []byte{}, 2, 0, 0)
	f.Add(offsets(0, 4, 2, 6), []byte("abcdef"), []byte{0b101}, 3, 0, 1)
	f.Add(offsets(-1, 2), []byte("ab"), []byte{}, 1, 0, 0)
	f.Add(offsets(0, 0, 2, 2), []byte("ab"), []byte{0b110}, 2, 1, 1)
	f.Fuzz(func(t *testing.T, offs, data, validity []byte, n, off, nulls int) {
		if n < 0 || off < 0 || n > 1<<16 || off > 1<<16 || nulls < -1 || nulls > n {
			return
		}
		if len(validity) == 0 {
			validity = nil
		}
		d := array.NewData(arrow.BinaryTypes.String, n, []*memory.Buffer{buf(validity), buf(offs), buf(data)}, nil, nulls, off)
		err := checkArrayData(d)
		if err != nil {
			return
		}
		a := array.NewStringData(d)
		for i := range a.Len() {
			if v := a.Value(i); !utf8.ValidString(v) {
				t.Fatalf("accepted invalid UTF-8 at row %d: %q", i, v)
			}
		}
	})
}
