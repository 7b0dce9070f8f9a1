package coordinator

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/coordinator/internal/engine"
)

func TestBoundReason(t *testing.T) {
	long := strings.Repeat("é", maxReason) // two bytes each: cuts inside a character
	got := boundReason(long)
	if len(got) > maxReason+64 || !utf8.ValidString(got) || !strings.Contains(got, "more bytes not recorded") {
		t.Fatalf("bounded reason: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if boundReason("short") != "short" {
		t.Fatal("a short reason was changed")
	}
}

func TestPublicReason(t *testing.T) {
	secret := "SECRET-VALUE-42"
	dberr := &duckdb.Error{Msg: "Conversion Error: Could not convert string '" + secret + "' to INT32"}
	cases := []struct {
		stage string
		err   error
		want  string
	}{
		{"query", &engineError{dberr}, "the query failed in the engine (DuckDB Conversion Error)"},
		{"query", &engine.RefusalError{Layer: engine.LayerSandbox, Reason: "DuckDB refused an operation of the algorithm", Err: dberr},
			"refused by the sandbox: DuckDB refused an operation of the algorithm (DuckDB Conversion Error)"},
		{"query", &engineError{errors.New("no class here: " + secret)}, "the query failed in the engine (an engine error)"},
		{"query", &memoryLimitError{limit: 64 << 20, err: engine.ErrResourceLimit}, "query memory limit of 64 MiB"},
	}
	for _, tc := range cases {
		got := publicReason(tc.stage, tc.err)
		if strings.Contains(got, secret) || !strings.Contains(got, tc.want) {
			t.Errorf("publicReason(%v) = %q, want %q and no data", tc.err, got, tc.want)
		}
	}
}
