package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/cliout"
)

// serveDefaults are the settings `serve` uses when neither the config
// file, the environment nor a flag sets them.
var serveDefaults = map[string]string{
	"listen":                   "127.0.0.1:8443",
	"data-dir":                 "",
	"attestation":              "",
	"query-memory":             "4GiB",
	"query-threads":            "0",
	"spill-dir":                "",
	"max-spill":                "100GiB",
	"model-memory":             "256MiB",
	"run-timeout":              "1h",
	"max-upload-bytes":         "8GiB",
	"max-connections":          "256",
	"max-connections-per-host": "0",
	"checkpoint-interval":      "1s",
	"operator-token":           "",
	"operator-loopback":        "false",
	"log-format":               "text",
	"log-level":                "info",
	"shutdown-timeout":         "30s",
}

var serveHelp = map[string]string{
	"listen":                   "address to listen on (host:port; port 0 picks a free port)",
	"data-dir":                 "data directory: sealed keys, audit log, blobs (initialised if empty)",
	"attestation":              "sev-snp, tdx, nitro, cca or NAME-simulated: the mode to initialise an empty data directory with",
	"query-memory":             "memory limit of one run's query engine (e.g. 4GiB)",
	"query-threads":            "query engine threads (0: all cores)",
	"spill-dir":                "directory where a run whose query needs more than --query-memory spills DuckDB's encrypted temporary files (empty: no spilling; such a run is refused)",
	"max-spill":                "most one run may spill to --spill-dir (e.g. 100GiB)",
	"model-memory":             "memory limit of one instance of a model (WebAssembly; one per query thread and model)",
	"run-timeout":              "deadline of one run's query, models included",
	"max-upload-bytes":         "largest dataset envelope accepted (e.g. 8GiB)",
	"max-connections":          "most concurrent client connections",
	"max-connections-per-host": "most connections one client address may hold (0: a quarter of --max-connections)",
	"checkpoint-interval":      "how often the audit log publishes a signed checkpoint",
	"operator-token":           "token (32+ printable characters) that makes a request sent with 'Authorization: Bearer TOKEN' the operator's: every /metrics series and the /v1/health counts; prefer CLEANROOMD_OPERATOR_TOKEN or the config file to the flag",
	"operator-loopback":        "treat clients on a loopback address as the operator without a token (only where no proxy inside the VM forwards remote clients)",
	"log-format":               "text or json",
	"log-level":                "debug, info, warn or error",
	"shutdown-timeout":         "how long a graceful shutdown waits for requests in flight",
}

func newServeCmd(c *cliout.CLI) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve --data-dir DIR [--attestation MODE] [--listen 127.0.0.1:8443] [--config FILE]",
		Short: "Serve the coordinator API over attested TLS",
		Long: `serve opens DIR (initialising it first when it is empty), replays the audit log
to rebuild the coordinator's state, and serves the API over attested TLS.

Settings come from, in increasing precedence: defaults, the --config file
(YAML, TOML or JSON, keys named like the flags), the environment
(CLEANROOMD_ and the flag name in capitals with '_' for '-', e.g.
CLEANROOMD_DATA_DIR), and flags.

Once it listens it prints the coordinator URL (https://HOST:PORT) on stdout.
SIGINT or SIGTERM stops it gracefully: requests in flight finish (up to
--shutdown-timeout), a final checkpoint covers every event, and the log is
closed. Health: GET /v1/health; Prometheus metrics: GET /metrics. Both tell
anyone only that the coordinator is up; the counts and every metric series
go to the operator alone: requests carrying --operator-token as a bearer
token, or from loopback with --operator-loopback (docs/api.md).`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&configFile, "config", "", "configuration file (YAML, TOML or JSON)")
	for _, name := range sortedKeys(serveDefaults) {
		cmd.Flags().String(name, serveDefaults[name], serveHelp[name])
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := serveSettings(cmd.Flags(), configFile)
		if err != nil {
			return err
		}
		return serve(cmd.Context(), c, v)
	}
	return cmd
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// serveSettings layers defaults, the config file, CLEANROOMD_* and flags.
func serveSettings(flags *pflag.FlagSet, configFile string) (*viper.Viper, error) {
	v := viper.New()
	for k, d := range serveDefaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("CLEANROOMD")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if configFile != "" {
		v.SetConfigFile(configFile)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", configFile, err)
		}
		for _, k := range v.AllKeys() {
			if _, ok := serveDefaults[k]; !ok {
				return nil, fmt.Errorf("%s: unknown setting %q (known: %s)", configFile, k, strings.Join(sortedKeys(serveDefaults), ", "))
			}
		}
	}
	if err := v.BindPFlags(flags); err != nil {
		return nil, err
	}
	return v, nil
}

// parseSize parses a byte size: an integer with an optional unit B, KB,
// MB, GB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
func parseSize(name, s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, cliout.Usagef("--%s: %q is not a size (e.g. 512MiB, 4GiB)", name, s)
	}
	return n * mult, nil
}

func newLogger(w *os.File, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, cliout.Usagef("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, cliout.Usagef("--log-format: %q is not text or json", format)
}

// serve turns the settings into coordinator.Serve's options, listens, and
// serves until SIGINT or SIGTERM.
func serve(ctx context.Context, c *cliout.CLI, v *viper.Viper) error {
	if err := hardenProcess(); err != nil {
		return fmt.Errorf("keeping the coordinator's memory out of core dumps: %w", err)
	}
	opts, err := serveOptions(v)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", v.GetString("listen"))
	if err != nil {
		return err
	}
	opts.Ready = func(coord *coordinator.Coordinator) {
		if coord.Identity().Mode.Simulated() {
			c.Warnf("%s", simulatedWarning)
		}
		fmt.Fprintln(c.Stdout, "https://"+ln.Addr().String())
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = coordinator.Serve(ctx, ln, opts)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// SIGINT or SIGTERM before the coordinator served: the operator
		// stopped it. What the start had logged stays; the next start
		// finishes anything it interrupted, as after a crash.
		c.Infof("stopped before serving: %v", err)
		return nil
	}
	return err
}

// serveOptions checks every setting and returns the options of
// coordinator.Serve.
func serveOptions(v *viper.Viper) (coordinator.Options, error) {
	var o coordinator.Options
	o.DataDir = v.GetString("data-dir")
	if o.DataDir == "" {
		return o, cliout.Usagef("--data-dir DIR is required (or CLEANROOMD_DATA_DIR)")
	}
	if s := v.GetString("attestation"); s != "" {
		m, err := coordinator.ParseMode(s)
		if err != nil {
			return o, cliout.UsageError{Err: err}
		}
		o.Attestation = m
	}
	var err error
	if o.QueryMemory, err = parseSize("query-memory", v.GetString("query-memory")); err != nil {
		return o, err
	}
	o.SpillDir = v.GetString("spill-dir")
	if o.MaxSpill, err = parseSize("max-spill", v.GetString("max-spill")); err != nil {
		return o, err
	}
	if o.ModelMemory, err = parseSize("model-memory", v.GetString("model-memory")); err != nil {
		return o, err
	}
	if o.ModelMemory < 1<<20 || o.ModelMemory > 4<<30 {
		return o, cliout.Usagef("--model-memory: %s is outside 1MiB..4GiB", v.GetString("model-memory"))
	}
	if o.RunTimeout, err = time.ParseDuration(v.GetString("run-timeout")); err != nil || o.RunTimeout <= 0 {
		return o, cliout.Usagef("--run-timeout: %q is not a positive duration (e.g. 1h, 90s)", v.GetString("run-timeout"))
	}
	if o.MaxUploadBytes, err = parseSize("max-upload-bytes", v.GetString("max-upload-bytes")); err != nil {
		return o, err
	}
	if o.QueryThreads, err = strconv.Atoi(v.GetString("query-threads")); err != nil || o.QueryThreads < 0 {
		return o, cliout.Usagef("--query-threads: %q is not a number of threads", v.GetString("query-threads"))
	}
	perHost, err := strconv.Atoi(v.GetString("max-connections-per-host"))
	if err != nil || perHost < 0 {
		return o, cliout.Usagef("--max-connections-per-host: %q is not a number", v.GetString("max-connections-per-host"))
	}
	maxConns, err := strconv.Atoi(v.GetString("max-connections"))
	if err != nil || maxConns < 1 {
		return o, cliout.Usagef("--max-connections: %q is not a positive number", v.GetString("max-connections"))
	}
	o.Limits = coordinator.ServerLimits{MaxConnections: maxConns, MaxConnectionsPerHost: perHost}
	if o.CheckpointInterval, err = time.ParseDuration(v.GetString("checkpoint-interval")); err != nil {
		return o, cliout.Usagef("--checkpoint-interval: %v", err)
	}
	if o.ShutdownTimeout, err = time.ParseDuration(v.GetString("shutdown-timeout")); err != nil {
		return o, cliout.Usagef("--shutdown-timeout: %v", err)
	}
	if o.Logger, err = newLogger(os.Stderr, v.GetString("log-format"), v.GetString("log-level")); err != nil {
		return o, err
	}
	if o.OperatorLoopback, err = strconv.ParseBool(v.GetString("operator-loopback")); err != nil {
		return o, cliout.Usagef("--operator-loopback: %q is not true or false", v.GetString("operator-loopback"))
	}
	o.OperatorToken = v.GetString("operator-token")
	if len(o.OperatorToken) > 0 && len(o.OperatorToken) < coordinator.MinOperatorTokenLength {
		return o, cliout.Usagef("--operator-token: %d characters is too short: at least %d (e.g. openssl rand -hex 32)", len(o.OperatorToken), coordinator.MinOperatorTokenLength)
	}
	return o, nil
}
