package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/internal/cliout"
)

func newAuditServeCmd(c *cli) *cobra.Command {
	var (
		stateDir, listen string
		staleAfter       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve --state DIR [--listen 127.0.0.1:8080] [--stale-after 24h]",
		Short: "Show what 'audit log' verified in a read-only web view",
		Long: `serve shows, in a web browser on this machine, what 'cleanroom audit log'
verified into the state directory DIR: the coordinator and its attested key,
the checkpoint history, each contract's participants and their signatures,
datasets and who uploaded them, runs with their policy outcome and released
result digests, a summary of the runs' outcomes (rows released, refusals and
their reasons, repeated runs), the timeline drawn and listed with filters by
event type, participant and time, and any rollback or fork evidence on file.
Expired contracts are marked EXPIRED, and an audit older than --stale-after
is flagged as old. Each page exports its data as JSON or CSV.

It only reads DIR (on every request, so new audits show up) and never talks
to the coordinator. Pages are plain HTML with one inline style sheet and no
scripts. It prints the URL on stdout; --listen with port 0 picks a free
port. SIGINT or SIGTERM stops it.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&stateDir, "state", "", "state directory written by 'cleanroom audit log' (required)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free port)")
	cmd.Flags().DurationVar(&staleAfter, "stale-after", audit.DefaultStaleAfter, "warn when the last verified audit is older than this (0: never warn)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if stateDir == "" {
			return cliout.Usagef("--state DIR is required: the directory 'cleanroom audit log --state DIR' keeps")
		}
		if staleAfter < 0 {
			return cliout.Usagef("--stale-after %s is negative: give how old an audit may be before the view warns, or 0 never to warn", staleAfter)
		}
		if staleAfter == 0 {
			staleAfter = -1 // audit.ViewOptions: never warn
		}
		fi, err := os.Stat(stateDir)
		if err != nil {
			return cliout.WithHint(err, "run 'cleanroom audit log --state DIR ...' first")
		}
		if !fi.IsDir() {
			return cliout.Usagef("--state %s is not a directory", stateDir)
		}
		if _, err := audit.ReadFacts(stateDir); errors.Is(err, fs.ErrNotExist) {
			c.Warnf("%s holds no verified audit yet; the view will say so until 'cleanroom audit log --state %s' verifies one", stateDir, stateDir)
		} else if err != nil {
			return err
		}
		host, _, err := net.SplitHostPort(listen)
		if err != nil {
			return cliout.Usagef("--listen %q is not host:port: %v", listen, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			c.Warnf("listening on %s, not on a loopback address: other machines can read the audit facts", listen)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		logger := slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		srv := &http.Server{
			Handler:           audit.Handler(stateDir, audit.ViewOptions{Logger: logger, Now: c.now, StaleAfter: staleAfter}),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		fmt.Fprintf(c.Stdout, "http://%s/\n", ln.Addr())
		c.Infof("serving the audit view of %s; stop with Ctrl-C", stateDir)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			return err
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	return cmd
}
