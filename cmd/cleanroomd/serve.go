package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/coordinator/tee"
)

func init() { register(newServeCmd) }

// serveDefaults are the settings `serve` uses when neither the config
// file, the environment nor a flag sets them.
var serveDefaults = map[string]string{
	"listen":                   "127.0.0.1:8443",
	"data-dir":                 "",
	"attestation":              "",
	"query-memory":             "4GiB",
	"query-threads":            "0",
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

func newServeCmd(c *cli) *cobra.Command {
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
		return c.serve(cmd.Context(), v)
	}
	return cmd
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

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
		return 0, usagef("--%s: %q is not a size (e.g. 512MiB, 4GiB)", name, s)
	}
	return n * mult, nil
}

func newLogger(w *os.File, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, usagef("--log-format: %q is not text or json", format)
}

func (c *cli) serve(ctx context.Context, v *viper.Viper) error {
	if err := hardenProcess(); err != nil {
		return fmt.Errorf("keeping the coordinator's memory out of core dumps: %w", err)
	}
	dataDir := v.GetString("data-dir")
	if dataDir == "" {
		return usagef("--data-dir DIR is required (or CLEANROOMD_DATA_DIR)")
	}
	var mode tee.Mode
	if s := v.GetString("attestation"); s != "" {
		m, err := tee.ParseMode(s)
		if err != nil {
			return usageError{Err: err}
		}
		mode = m
	}
	queryMemory, err := parseSize("query-memory", v.GetString("query-memory"))
	if err != nil {
		return err
	}
	modelMemory, err := parseSize("model-memory", v.GetString("model-memory"))
	if err != nil {
		return err
	}
	if modelMemory < 1<<20 || modelMemory > 4<<30 {
		return usagef("--model-memory: %s is outside 1MiB..4GiB", v.GetString("model-memory"))
	}
	runTimeout, err := time.ParseDuration(v.GetString("run-timeout"))
	if err != nil || runTimeout <= 0 {
		return usagef("--run-timeout: %q is not a positive duration (e.g. 1h, 90s)", v.GetString("run-timeout"))
	}
	maxUpload, err := parseSize("max-upload-bytes", v.GetString("max-upload-bytes"))
	if err != nil {
		return err
	}
	threads, err := strconv.Atoi(v.GetString("query-threads"))
	if err != nil || threads < 0 {
		return usagef("--query-threads: %q is not a number of threads", v.GetString("query-threads"))
	}
	perHost, err := strconv.Atoi(v.GetString("max-connections-per-host"))
	if err != nil || perHost < 0 {
		return usagef("--max-connections-per-host: %q is not a number", v.GetString("max-connections-per-host"))
	}
	maxConns, err := strconv.Atoi(v.GetString("max-connections"))
	if err != nil || maxConns < 1 {
		return usagef("--max-connections: %q is not a positive number", v.GetString("max-connections"))
	}
	interval, err := time.ParseDuration(v.GetString("checkpoint-interval"))
	if err != nil {
		return usagef("--checkpoint-interval: %v", err)
	}
	shutdownTimeout, err := time.ParseDuration(v.GetString("shutdown-timeout"))
	if err != nil {
		return usagef("--shutdown-timeout: %v", err)
	}
	logger, err := newLogger(os.Stderr, v.GetString("log-format"), v.GetString("log-level"))
	if err != nil {
		return err
	}
	operatorLoopback, err := strconv.ParseBool(v.GetString("operator-loopback"))
	if err != nil {
		return usagef("--operator-loopback: %q is not true or false", v.GetString("operator-loopback"))
	}
	operatorToken := v.GetString("operator-token")
	if len(operatorToken) > 0 && len(operatorToken) < coordinator.MinOperatorTokenLength {
		return usagef("--operator-token: %d characters is too short: at least %d (e.g. openssl rand -hex 32)", len(operatorToken), coordinator.MinOperatorTokenLength)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	coord, err := coordinator.Open(ctx, coordinator.Config{
		DataDir: dataDir, Attestation: mode, MaxUploadBytes: maxUpload,
		QueryMemory: queryMemory, QueryThreads: threads, ModelMemory: modelMemory, RunTimeout: runTimeout,
		CheckpointInterval: interval, Logger: logger,
		OperatorToken: operatorToken, OperatorLoopback: operatorLoopback,
	})
	if err != nil {
		return err
	}
	if coord.TEE().Mode().Simulated() {
		c.warnf("%s", simulatedWarning)
	}
	inst := coord.TEE()
	srv, err := atls.NewHTTPServer(v.GetString("listen"), coord.Handler(), atls.ServerOptions{
		Identity: inst.Identity(), Evidence: inst.StaticEvidence(),
	})
	if err != nil {
		coord.Close(context.Background())
		return err
	}
	srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	ln, err := net.Listen("tcp", v.GetString("listen"))
	if err != nil {
		coord.Close(context.Background())
		return err
	}
	ln = coordinator.ServerLimits{MaxConnections: maxConns, MaxConnectionsPerHost: perHost}.Apply(srv, ln)
	url := "https://" + ln.Addr().String()
	logger.Info("serving", "url", url, "data_dir", dataDir, "platform", inst.Platform(), "key", inst.PublicKey().Fingerprint().String())
	fmt.Fprintln(c.stdout, url)

	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-served:
		coord.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("requests still in flight at shutdown", "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("server stopped with an error", "err", err)
	}
	if err := coord.Close(sctx); err != nil {
		return fmt.Errorf("closing the audit log: %w", err)
	}
	logger.Info("stopped")
	return nil
}
