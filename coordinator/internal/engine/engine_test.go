package engine

import (
	"context"
	"database/sql/driver"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestConfigRejectsBadLimits(t *testing.T) {
	for _, cfg := range []Config{{MemoryLimit: -1}, {MemoryLimit: 1 << 20}, {Threads: -2}} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestLockdownSettingsHold(t *testing.T) {
	cfg := Config{MemoryLimit: 96 << 20, Threads: 1}
	s := newSession(t, cfg)
	got, err := s.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"enable_external_access":       "false",
		"autoinstall_known_extensions": "false",
		"autoload_known_extensions":    "false",
		"allow_community_extensions":   "false",
		"allow_unsigned_extensions":    "false",
		"allow_persistent_secrets":     "false",
		"temp_directory":               "",
		"max_temp_directory_size":      "0 bytes",
		"threads":                      "1",
		"memory_limit":                 "96.0 MiB",
		"TimeZone":                     "UTC",
		"Calendar":                     "gregorian",
		"lock_configuration":           "true",
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("setting %s = %q (present %v), want %q", name, g, ok, w)
		}
	}
}

// rawConn returns a connection to the session's database that bypasses the
// statement check, to test the sandbox on its own.
func openRawConn(t *testing.T, s *Session) driver.Conn {
	t.Helper()
	conn, err := s.connector.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func rawExec(conn driver.Conn, q string) error {
	rows, err := conn.(driver.QueryerContext).QueryContext(context.Background(), q, nil)
	if err != nil {
		return err
	}
	dest := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(dest); err != nil {
			rows.Close()
			if err.Error() == "EOF" {
				return nil
			}
			return err
		}
	}
}

func TestConfigurationCannotChangeAfterLock(t *testing.T) {
	s := newSession(t, Config{})
	conn := openRawConn(t, s)
	for _, q := range []string{
		"SET memory_limit = '100GB'",
		"SET GLOBAL memory_limit = '100GB'",
		"RESET memory_limit",
		"SET threads = 64",
		"SET GLOBAL enable_external_access = true",
		"SET lock_configuration = false",
		"SET GLOBAL lock_configuration = false",
		"SET temp_directory = '/tmp'",
		"SET max_temp_directory_size = '10GB'",
		"SET disabled_filesystems = ''",
		"SET autoload_known_extensions = true",
		"SET allow_unsigned_extensions = true",
		"SET TimeZone = 'Europe/Paris'",
	} {
		err := rawExec(conn, q)
		if err == nil || !strings.Contains(err.Error(), "the configuration has been locked") {
			t.Errorf("%s: got %v, want the locked-configuration error", q, err)
		}
	}
	got, err := s.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got["lock_configuration"] != "true" || got["enable_external_access"] != "false" {
		t.Errorf("settings changed: %v", got)
	}
}

// TestSandboxAloneRefusesTheEnvironment runs hostile statements directly on
// a locked connection, without the statement check: the lock-down alone
// must stop every one of them, and no file may appear.
func TestSandboxAloneRefusesTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	secret := dir + "/secret.csv"
	if err := os.WriteFile(secret, []byte("a,b\n1,2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSession(t, Config{})
	imp, conv := scenario(1000, 3)
	load(t, s, imp, conv)
	conn := openRawConn(t, s)
	for _, q := range []string{
		"SELECT * FROM read_csv('" + secret + "')",
		"SELECT * FROM read_csv_auto('" + secret + "')",
		"SELECT * FROM read_text('/etc/passwd')",
		"SELECT * FROM read_blob('/etc/passwd')",
		"SELECT * FROM read_parquet('" + dir + "/x.parquet')",
		"SELECT * FROM read_json('/etc/hosts')",
		"SELECT * FROM glob('/etc/*')",
		"SELECT * FROM '" + secret + "'",
		"SELECT * FROM 'secret.csv'",
		"SELECT * FROM read_csv('https://example.com/data.csv')",
		"SELECT * FROM 's3://bucket/data.parquet'",
		"COPY impressions TO 'out.csv'",
		"COPY (SELECT * FROM impressions) TO '" + dir + "/out.parquet' (FORMAT parquet)",
		"EXPORT DATABASE 'dump'",
		"ATTACH 'other.db' AS other",
		"INSTALL httpfs",
		"LOAD httpfs",
		"LOAD '/tmp/evil.duckdb_extension'",
		"CALL enable_logging(storage := 'file', storage_path := 'logs')",
		"SELECT * FROM enable_logging(storage := 'file', storage_path := 'logs')",
		"SET memory_limit = '100GB'",
		"SELECT getenv('HOME')",
		"CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
	} {
		if err := rawExec(conn, q); err == nil {
			t.Errorf("%s: the sandbox allowed it", q)
		} else {
			t.Logf("%s\n\t%v", q, firstLine(err))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the sandbox wrote files: %v", names)
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// settingsProbe is a record reader that, when asked for its first batch,
// reads the session's settings: what holds while participant data is first
// touched.
type settingsProbe struct {
	array.RecordReader
	s     *Session
	once  atomic.Bool
	seen  map[string]string
	probe error
}

func (p *settingsProbe) Next() bool {
	if !p.once.Swap(true) {
		p.seen, p.probe = p.s.Settings(context.Background())
	}
	return p.RecordReader.Next()
}

func TestExternalAccessIsOffWhenTheFirstTableLoads(t *testing.T) {
	s := newSession(t, Config{})
	imp, _ := scenario(1000, 4)
	p := &settingsProbe{RecordReader: imp.reader(t), s: s}
	if err := s.LoadTable(context.Background(), imp.name, imp.schema, p); err != nil {
		t.Fatal(err)
	}
	if p.probe != nil {
		t.Fatal(p.probe)
	}
	if p.seen == nil {
		t.Fatal("the first batch was never read")
	}
	for name, want := range map[string]string{"enable_external_access": "false", "lock_configuration": "true", "autoload_known_extensions": "false", "temp_directory": ""} {
		if got := p.seen[name]; got != want {
			t.Errorf("while loading the first table %s = %q, want %q", name, got, want)
		}
	}
}

func TestIPCRoundTrip(t *testing.T) {
	s := newSession(t, Config{})
	tb := allTypes(300, 5)
	load(t, s, tb)
	res, err := s.Run(context.Background(), "SELECT * FROM all_types ORDER BY id", noLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	b, err := res.IPC()
	if err != nil {
		t.Fatal(err)
	}
	got := readIPC(t, b)
	if !got.Schema().Equal(res.Schema) {
		t.Fatalf("schema %v, want %v", got.Schema(), res.Schema)
	}
	want := concatBatches(t, res.Schema, res.Batches)
	if !array.RecordEqual(got, want) {
		t.Error("IPC round trip changed the result")
	}
}
