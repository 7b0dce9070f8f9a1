package engine

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
)

// setting is one DuckDB option of the lock-down.
type setting struct {
	name   string
	value  string // the value set
	report string // the value duckdb_settings() reports once set; "" means value
	// atOpen options go into the database configuration, so they hold from
	// the first instant of the database; the others are set with SET GLOBAL
	// on the first connection, before lock_configuration.
	atOpen bool
	// probe, if set, is a query that must fail with an error containing
	// probeErr once the setting holds: for settings duckdb_settings() does
	// not report.
	probe, probeErr string
	// unreported settings are not reported by duckdb_settings(): only
	// their probe checks them.
	unreported bool
	// size, if set, is the number of bytes the setting was set to, and
	// DuckDB's rendering of it ("61.0 MiB") is compared within rounding.
	size int64
}

// lockdown returns the settings applied to every Session, in order. The
// last one, lock_configuration, makes every setting immutable for the rest
// of the database's life. docs/engine.md explains each.
func lockdown(cfg Config) []setting {
	s := []setting{
		{name: "autoinstall_known_extensions", value: "false", atOpen: true},
		{name: "autoload_known_extensions", value: "false", atOpen: true},
		{name: "allow_community_extensions", value: "false", atOpen: true},
		{name: "allow_unsigned_extensions", value: "false", atOpen: true},
		{name: "allow_persistent_secrets", value: "false", atOpen: true},
	}
	if cfg.spillDir == "" {
		s = append(s,
			setting{name: "temp_directory", value: "", atOpen: true},
			setting{name: "max_temp_directory_size", value: "0B", report: "0 bytes", atOpen: true})
	} else {
		// Spilling only encrypted, only to the session's directory.
		// This DuckDB has no OpenSSL (httpfs is not linked) and refuses
		// to write encrypted files with its built-in mbedtls unless told
		// to (force_mbedtls_unsafe): see docs/engine.md, "Spilling".
		s = append(s,
			setting{name: "temp_directory", value: cfg.spillDir, atOpen: true},
			setting{name: "max_temp_directory_size", value: strconv.FormatInt(cfg.MaxSpill, 10) + "B", atOpen: true, size: cfg.MaxSpill},
			setting{name: "temp_file_encryption", value: "true", atOpen: true},
			setting{name: "force_mbedtls_unsafe", value: "true", atOpen: true})
	}
	s = append(s, setting{name: "threads", value: strconv.Itoa(cfg.Threads), atOpen: true})
	if cfg.MemoryLimit > 0 {
		s = append(s, setting{name: "memory_limit", value: strconv.FormatInt(cfg.MemoryLimit, 10) + "B", atOpen: true, size: cfg.MemoryLimit})
	}
	// DuckDB refuses to change temp_directory once external access is
	// off, and the driver applies the open-time configuration in no
	// fixed order; so external access is switched off first thing on
	// the first connection, before anything else runs.
	s = append(s, setting{name: "enable_external_access", value: "false",
		probe: "SELECT count(*) FROM glob('/*')", probeErr: "disabled by configuration"})
	if cfg.spillDir == "" {
		// Not even DuckDB's internals may open a file. With a spill
		// directory this cannot hold (DuckDB writes its temporary files
		// through the same file system); external access being off then
		// keeps SQL away from every file but the spill directory's, which
		// DuckDB allows itself and which holds only ciphertext.
		s = append(s, setting{name: "disabled_filesystems", value: "LocalFileSystem", unreported: true,
			probe: "SELECT count(*) FROM glob('/*')", probeErr: "LocalFileSystem has been disabled"})
	}
	return append(s,
		setting{name: "TimeZone", value: "UTC"},
		setting{name: "Calendar", value: "gregorian"},
		setting{name: "lock_configuration", value: "true"},
	)
}

// open opens an in-memory DuckDB with the lock-down applied and verified.
// On error nothing is left open.
func open(ctx context.Context, cfg Config) (*duckdb.Connector, error) {
	settings := lockdown(cfg)
	q := url.Values{}
	for _, s := range settings {
		if s.atOpen {
			q.Set(s.name, s.value)
		}
	}
	connector, err := duckdb.NewConnector(":memory:?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("engine: opening the in-memory database: %w", err)
	}
	if err := lock(ctx, connector, settings, cfg); err != nil {
		return nil, errors.Join(err, connector.Close())
	}
	return connector, nil
}

func lock(ctx context.Context, connector *duckdb.Connector, settings []setting, cfg Config) error {
	conn, err := connector.Connect(ctx)
	if err != nil {
		return fmt.Errorf("engine: connecting to the in-memory database: %w", err)
	}
	defer conn.Close()
	ex := conn.(driver.ExecerContext)
	for _, s := range settings {
		if s.atOpen {
			continue
		}
		stmt := "SET GLOBAL " + quoteIdent(s.name) + " = " + quoteString(s.value)
		if _, err := ex.ExecContext(ctx, stmt, nil); err != nil {
			return fmt.Errorf("engine: locking down the database (%s): %w", stmt, err)
		}
	}
	return verifyLockdown(ctx, conn, settings, cfg)
}

// verifyLockdown reads every setting back and fails unless each holds the
// value the lock-down set: a DuckDB that silently ignored one is refused.
func verifyLockdown(ctx context.Context, conn driver.Conn, settings []setting, cfg Config) error {
	got, err := currentSettings(ctx, conn)
	if err != nil {
		return err
	}
	for _, s := range settings {
		want := s.value
		if s.report != "" {
			want = s.report
		}
		v, ok := got[s.name]
		switch {
		case s.unreported:
		case !ok:
			return fmt.Errorf("engine: this DuckDB has no setting %q; the lock-down cannot be applied", s.name)
		case s.size > 0:
			if err := checkSize(s.name, v, s.size); err != nil {
				return err
			}
		case !strings.EqualFold(v, want):
			return fmt.Errorf("engine: DuckDB setting %s is %q after the lock-down, want %q", s.name, v, want)
		}
		if s.probe != "" {
			if err := probe(ctx, conn, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// probe runs a setting's probe query, which must fail as the setting
// requires.
func probe(ctx context.Context, conn driver.Conn, s setting) error {
	rows, err := conn.(driver.QueryerContext).QueryContext(ctx, s.probe, nil)
	if err == nil {
		rows.Close()
		return fmt.Errorf("engine: DuckDB setting %s=%s does not hold: %s succeeded", s.name, s.value, s.probe)
	}
	if !strings.Contains(err.Error(), s.probeErr) {
		return fmt.Errorf("engine: DuckDB setting %s=%s does not hold as expected: %s failed with %q", s.name, s.value, s.probe, duckdbMessage(err))
	}
	return nil
}

// currentSettings returns every DuckDB setting as duckdb_settings() reports
// it.
func currentSettings(ctx context.Context, conn driver.Conn) (map[string]string, error) {
	rows, err := conn.(driver.QueryerContext).QueryContext(ctx, "SELECT name, coalesce(value, '') FROM duckdb_settings()", nil)
	if err != nil {
		return nil, fmt.Errorf("engine: reading DuckDB settings: %w", err)
	}
	defer rows.Close()
	got := map[string]string{}
	dest := make([]driver.Value, 2)
	for {
		if err := rows.Next(dest); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("engine: reading DuckDB settings: %w", err)
		}
		name, _ := dest[0].(string)
		value, _ := dest[1].(string)
		got[name] = value
	}
	return got, nil
}

// checkSize compares DuckDB's rendering of a size setting ("61.0 MiB")
// with the configured number of bytes, allowing for the rounding of the
// rendering.
func checkSize(name, reported string, want int64) error {
	num, unit, ok := strings.Cut(strings.TrimSpace(reported), " ")
	f, err := strconv.ParseFloat(num, 64)
	mult := map[string]float64{"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]
	if !ok || err != nil || mult == 0 {
		return fmt.Errorf("engine: cannot read DuckDB's %s %q", name, reported)
	}
	if math.Abs(f*mult-float64(want)) > 0.05*mult+1 {
		return fmt.Errorf("engine: DuckDB %s is %s after the lock-down, want %d bytes", name, reported, want)
	}
	return nil
}

// quoteIdent quotes a SQL identifier for DuckDB.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// quoteString quotes a SQL string literal for DuckDB.
func quoteString(s string) string {
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}
