package engine

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// hostileQueries are algorithms that could be correctly hashed and signed
// by every party and must still never run: each names the layer that
// refuses it first and a fragment of the refusal. docs/engine.md lists
// them.
var hostileQueries = []struct {
	name, sql string
	layer     Layer
	want      string
}{
	// Reading files and URLs.
	{"read_csv", "SELECT * FROM read_csv('/etc/passwd')", LayerStatement, "table function read_csv"},
	{"read_csv_auto", "SELECT * FROM read_csv_auto('/etc/passwd')", LayerStatement, "table function read_csv_auto"},
	{"read_parquet", "SELECT * FROM read_parquet('/data/other.parquet')", LayerStatement, "table function read_parquet"},
	{"read_json", "SELECT * FROM read_json('/etc/hosts')", LayerStatement, "table function read_json"},
	{"read_text", "SELECT * FROM read_text('/etc/passwd')", LayerStatement, "table function read_text"},
	{"read_blob", "SELECT * FROM read_blob('/etc/shadow')", LayerStatement, "table function read_blob"},
	{"glob", "SELECT * FROM glob('/etc/*')", LayerStatement, "table function glob"},
	{"read_text in a subquery", "SELECT user_id, (SELECT content FROM read_text('/etc/passwd')) AS leak FROM impressions", LayerStatement, "table function read_text"},
	{"union with a file read", "SELECT user_id FROM impressions UNION ALL SELECT content FROM read_text('/etc/passwd')", LayerStatement, "table function read_text"},
	{"file read in a CTE", "WITH f AS (SELECT * FROM read_csv('/etc/passwd')) SELECT count(*) FROM f", LayerStatement, "table function read_csv"},
	{"httpfs URL", "SELECT * FROM read_parquet('https://attacker.example/x.parquet')", LayerStatement, "table function read_parquet"},
	{"file as a table name", "SELECT * FROM 'secret.csv'", LayerStatement, "reads secret.csv"},
	{"absolute file as a table name", "SELECT i.* FROM impressions i, '/etc/passwd' p", LayerStatement, "reads /etc/passwd"},
	{"URL as a table name", "SELECT * FROM 'https://attacker.example/data.parquet'", LayerStatement, "reads https://attacker.example/data.parquet"},
	{"s3 URL as a table name", "SELECT * FROM 's3://bucket/data.parquet'", LayerStatement, "reads s3://bucket/data.parquet"},
	// Writing files, other databases, extensions.
	{"COPY TO", "COPY impressions TO 'stolen.csv'", LayerStatement, "found 1 statement: COPY"},
	{"COPY query TO parquet", "COPY (SELECT * FROM conversions) TO 'stolen.parquet' (FORMAT parquet)", LayerStatement, "found 1 statement: COPY"},
	{"COPY inside a CTE", "WITH x AS (COPY impressions TO 'stolen.csv') SELECT 1", LayerStatement, "cannot parse"},
	{"EXPORT DATABASE", "EXPORT DATABASE 'dump'", LayerStatement, "found 1 statement: EXPORT"},
	{"ATTACH", "ATTACH 'other.db' AS other", LayerStatement, "found 1 statement: ATTACH"},
	{"DETACH", "DETACH memory", LayerStatement, "found 1 statement: DETACH"},
	{"INSTALL", "INSTALL httpfs", LayerStatement, "found 1 statement: INSTALL"},
	{"LOAD", "LOAD httpfs", LayerStatement, "found 1 statement: LOAD"},
	// Settings, secrets and the environment.
	{"SET", "SET memory_limit = '100GB'", LayerStatement, "found 1 statement: SET"},
	{"SET lock_configuration", "SET lock_configuration = false", LayerStatement, "found 1 statement: SET"},
	{"RESET", "RESET memory_limit", LayerStatement, "found 1 statement: RESET"},
	{"PRAGMA", "PRAGMA enable_profiling", LayerStatement, "found 1 statement: PRAGMA"},
	{"PRAGMA rewritten to a SELECT", "PRAGMA table_info('impressions')", LayerStatement, "found 1 statement: PRAGMA"},
	{"getenv", "SELECT getenv('AWS_SECRET_ACCESS_KEY') AS k", LayerStatement, "calls getenv (at byte 7), which is not on the statement check's list"},
	{"current_setting", "SELECT current_setting('s3_secret_access_key') AS k", LayerStatement, "calls current_setting"},
	{"duckdb_secrets", "SELECT * FROM duckdb_secrets()", LayerStatement, "table function duckdb_secrets"},
	{"duckdb_settings", "SELECT * FROM duckdb_settings()", LayerStatement, "table function duckdb_settings"},
	{"CREATE SECRET", "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')", LayerStatement, "found 1 statement: CREATE"},
	// More than one statement.
	{"two SELECTs", "SELECT 1; SELECT 2", LayerStatement, "found 2 statements: SELECT, SELECT"},
	{"SELECT then COPY", "SELECT * FROM impressions; COPY impressions TO 'stolen.csv'", LayerStatement, "found 2 statements: SELECT, COPY"},
	{"SET then SELECT", "SET threads = 64; SELECT count(*) FROM impressions", LayerStatement, "found 2 statements: SET, SELECT"},
	// DDL and DML.
	{"CREATE TABLE", "CREATE TABLE copy AS SELECT * FROM impressions", LayerStatement, "found 1 statement: CREATE"},
	{"CREATE VIEW", "CREATE VIEW v AS SELECT * FROM impressions", LayerStatement, "found 1 statement: CREATE"},
	{"CREATE MACRO", "CREATE MACRO leak(x) AS x", LayerStatement, "found 1 statement: CREATE"},
	{"DROP a dataset", "DROP TABLE impressions", LayerStatement, "found 1 statement: DROP"},
	{"INSERT", "INSERT INTO conversions VALUES ('u1', 1e9, now())", LayerStatement, "found 1 statement: INSERT"},
	{"UPDATE", "UPDATE conversions SET value = 0", LayerStatement, "found 1 statement: UPDATE"},
	{"DELETE", "DELETE FROM impressions", LayerStatement, "found 1 statement: DELETE"},
	{"CALL", "CALL pragma_version()", LayerStatement, "found 1 statement: CALL"},
	{"CHECKPOINT", "CHECKPOINT", LayerStatement, "found 1 statement: CHECKPOINT"},
	{"EXPLAIN ANALYZE", "EXPLAIN ANALYZE SELECT * FROM impressions", LayerStatement, "found 1 statement: EXPLAIN"},
	{"BEGIN", "BEGIN TRANSACTION", LayerStatement, "found 1 statement: BEGIN"},
	// Functions that evaluate strings as SQL or act on the session.
	{"query()", "SELECT * FROM query('SELECT * FROM read_text(''/etc/passwd'')')", LayerStatement, "table function query"},
	{"query_table()", "SELECT * FROM query_table('impressions')", LayerStatement, "table function query_table"},
	{"json_execute_serialized_sql", "SELECT * FROM json_execute_serialized_sql('{}')", LayerStatement, "table function json_execute_serialized_sql"},
	{"enable_logging to a file", "SELECT * FROM enable_logging(storage := 'file', storage_path := 'log')", LayerStatement, "table function enable_logging"},
	{"checkpoint()", "SELECT * FROM checkpoint()", LayerStatement, "table function checkpoint"},
	{"enable_peg_parser()", "SELECT * FROM enable_peg_parser()", LayerStatement, "table function enable_peg_parser"},
	{"the engine's own scan", "SELECT * FROM _cleanroom_scan(0)", LayerStatement, "table function _cleanroom_scan"},
	// Not SQL at all.
	{"empty", "", LayerStatement, "found no statement"},
	{"comment only", "-- nothing here", LayerStatement, "found no statement"},
	{"garbage", "SELEC * FROM impressions", LayerStatement, "cannot parse"},
	{"mixed parameters", "SELECT $a AS a, ? AS b", LayerStatement, "cannot parse the algorithm: Mixing named and positional parameters"},
	{"NUL byte", "SELECT 1\x00; COPY impressions TO 'x.csv'", LayerStatement, "NUL byte"},
}

func TestHostileQueriesAreRefused(t *testing.T) {
	if len(hostileQueries) < 25 {
		t.Fatalf("only %d hostile queries", len(hostileQueries))
	}
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("secret.csv", []byte("secret\n42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	imp, conv := scenario(500, 9)
	for _, h := range hostileQueries {
		t.Run(h.name, func(t *testing.T) {
			s := newSession(t, Config{Threads: 1, MemoryLimit: 128 << 20})
			load(t, s, imp, conv)
			res, err := s.Run(context.Background(), h.sql, noLimit)
			if err == nil {
				res.Release()
				t.Fatalf("ran %q", h.sql)
			}
			t.Log(err)
			var re *RefusalError
			if !errors.As(err, &re) || !errors.Is(err, ErrRefused) {
				t.Fatalf("error is not a refusal: %v", err)
			}
			if re.Layer != h.layer {
				t.Errorf("refused by the %s, want the %s: %v", re.Layer, h.layer, err)
			}
			if !strings.Contains(err.Error(), h.want) {
				t.Errorf("refusal %q does not say %q", err, h.want)
			}
			// CheckQuery, which the coordinator runs when the algorithm
			// is submitted, agrees on the statement layer.
			cerr := CheckQuery(h.sql, []string{"impressions", "conversions"})
			if (h.layer == LayerStatement) != (cerr != nil) {
				t.Errorf("CheckQuery: %v", cerr)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files appeared: %v", entries)
	}
}

func TestCheckQueryAccepts(t *testing.T) {
	for _, q := range []string{
		"SELECT 1",
		"SELECT 1;",
		"  select 1 ;  \n",
		"SELECT 1 -- ; COPY x TO 'y'",
		"SELECT 1 /* ; DROP TABLE x; */",
		"SELECT 'a;b' AS \"c;d\"",
		"SELECT $$;COPY$$ AS s",
		"WITH a AS (SELECT 1 AS x) SELECT x FROM a",
		"(SELECT 1) UNION ALL (SELECT 2)",
		"VALUES (1), (2)",
		"FROM impressions",
		"FROM impressions SELECT count(*)",
		"SELECT * FROM range(10) r, generate_series(1, 3) g, unnest([1, 2]) u",
		"SELECT sum(x) FROM (SELECT unnest([1, 2, 3]) AS x)",
		// Parameters, which runs will bind as $name.
		"SELECT count(*) FROM impressions WHERE shown_at >= $since AND campaign <> $skip",
		"SELECT count(*) FROM impressions WHERE campaign = $c",
		scenarioQuery,
	} {
		if err := CheckQuery(q, []string{"impressions", "conversions"}); err != nil {
			t.Errorf("CheckQuery(%q): %v", q, err)
		}
	}
}

func TestStatementKinds(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want string
	}{
		{"SELECT 1", "SELECT"},
		{"select 1; copy t to 'x'", "SELECT,COPY"},
		{"SELECT ';' ; -- SELECT\n COPY t TO 'x;y'", "SELECT,COPY"},
		{"/* a; /* nested; */ b; */ SET x = 1; ; ", "SET"},
		{"SELECT $tag$ ; $tag$; PRAGMA p", "SELECT,PRAGMA"},
		{"(SELECT 1) UNION (SELECT 2); WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "SELECT,WITH"},
		{"SELECT \"a\"\"; b\"", "SELECT"},
		{"", ""},
		{"'unterminated; COPY", "?"},
	} {
		if got := strings.Join(statementKinds(c.sql), ","); got != c.want {
			t.Errorf("statementKinds(%q) = %q, want %q", c.sql, got, c.want)
		}
	}
}
