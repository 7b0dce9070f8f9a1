package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	adattribution "cleanroom.dev/cleanroom/examples/ad-attribution"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// The whole-command comparison (-command-rows): what `cleanroom run`
// does — a fresh process connects to the coordinator over attested TLS,
// verifies the attestation against the contract, asks for the run and
// waits for its outcome (the coordinator decrypts, queries, applies the
// policy, encrypts, signs and appends to the log) — against a fresh
// process running plain DuckDB over the Parquet files. Both are timed
// from the start of the process to its exit. The coordinator runs in this
// process, serving on 127.0.0.1.

// commandSetup is what the command child reads.
type commandSetup struct {
	URL        string `json:"url"`
	Contract   string `json:"contract"`
	Advertiser string `json:"advertiser_key"`
}

// compareCommand measures the whole command at each size.
func compareCommand(sizes []int64, repeat, threads int, dir string) error {
	type row struct {
		rows        int64
		clean, base []time.Duration
	}
	var rows []row
	for _, n := range sizes {
		fmt.Fprintf(os.Stderr, "ad-attribution-bench: %d rows (whole command): generating and uploading...\n", n)
		sizeDir := filepath.Join(dir, strconv.FormatInt(n, 10))
		r := row{rows: n}
		for i := range repeat {
			_, err := os.Stat(filepath.Join(sizeDir, "data"))
			path, err := prepare(filepath.Join(sizeDir, fmt.Sprintf("%d-command", i)), n, err != nil, sizeDir, false)
			if err != nil {
				return err
			}
			st, err := readSetup(path)
			if err != nil {
				return err
			}
			srv, err := testenv.StartE(st.DataDir, coordinator.Config{Logger: slog.New(slog.DiscardHandler), QueryThreads: threads})
			if err != nil {
				return err
			}
			b, _ := json.Marshal(commandSetup{URL: srv.URL, Contract: st.Contract, Advertiser: st.Advertiser})
			cpath := filepath.Join(filepath.Dir(path), "command.json")
			if err := os.WriteFile(cpath, b, 0o600); err != nil {
				srv.Stop()
				return err
			}
			settle()
			d, err := timeProcess("command", cpath, threads)
			srv.Stop()
			if err != nil {
				return err
			}
			r.clean = append(r.clean, d)
			if d, err = timeProcess("plain", path, threads); err != nil {
				return err
			}
			r.base = append(r.base, d)
		}
		rows = append(rows, r)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "rows\tcleanroom run (s)\tplain DuckDB process (s)\tratio\t\n")
	for _, r := range rows {
		c, b := medianDuration(r.clean), medianDuration(r.base)
		fmt.Fprintf(w, "%d\t%.3f\t%.3f\t%.2f\t\n", r.rows, c.Seconds(), b.Seconds(), c.Seconds()/b.Seconds())
	}
	w.Flush()
	fmt.Printf("(whole processes, start to exit, median of %d; %d query threads on both sides)\n", repeat, threads)
	return nil
}

func medianDuration(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

// timeProcess runs this program in a child mode and times the process.
func timeProcess(mode, setupPath string, threads int) (time.Duration, error) {
	cmd := exec.Command(os.Args[0], "-mode", mode, "-threads", strconv.Itoa(threads), setupPath)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(threads))
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w", mode, err)
	}
	return time.Since(start), nil
}

// childCommand does what `cleanroom run` does.
func childCommand(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var st commandSetup
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	c, err := contracts.Parse([]byte(st.Contract), contracts.ParseOptions{})
	if err != nil {
		return err
	}
	id, err := cleanroom.ParseIdentity([]byte(st.Advertiser))
	if err != nil {
		return err
	}
	cl, err := client.New(st.URL, client.Options{Contract: c, Identity: id})
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = cl.RunWith(context.Background(), adattribution.Parameters)
	return err
}
