package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// The upload benchmark (-mode upload, `make bench-upload`): what
// `cleanroom dataset upload` does — read a file with connectors, check
// every value against the contract, encrypt it to the attested
// coordinator and send it — timed for a Parquet, an Arrow IPC and a CSV
// file of about -upload-mb MB of impressions each (BENCH_UPLOAD_FORMATS,
// e.g. "parquet,arrow", picks some), in a child process so that its peak
// resident memory is the provider's alone. The coordinator receiving it
// runs in this process, on the same cores.
//
// The files are made by DuckDB: a user_id of 32 hexadecimal digits
// (md5, so Parquet cannot shrink it much), one of 50 campaigns and a
// timestamp with a zone. The Arrow IPC file is converted from a Parquet
// file of the same rows.

// impressionColumns are the contract columns of the upload benchmark's
// impressions dataset.
var impressionColumns = []contracts.Column{
	{Name: "user_id", Type: contracts.ColumnType{Kind: contracts.KindString}},
	{Name: "campaign", Type: contracts.ColumnType{Kind: contracts.KindString}},
	{Name: "shown_at", Type: contracts.ColumnType{Kind: contracts.KindTimestamp}},
}

// uploadSetup is what the upload child reads.
type uploadSetup struct {
	URL      string `json:"url"`
	Contract string `json:"contract"`
	Key      string `json:"key"`
	File     string `json:"file"`
	Format   string `json:"format"`
}

type uploadMeasure struct {
	// EncryptSeconds and EncryptCPU time `cleanroom dataset encrypt`'s
	// part alone: read, check and encrypt to the verified identity
	// document, writing the envelope nowhere.
	EncryptSeconds float64 `json:"encrypt_seconds"`
	EncryptCPU     float64 `json:"encrypt_cpu_seconds"`
	Seconds        float64 `json:"seconds"`
	CPU            float64 `json:"cpu_seconds"`
	Rows           int64   `json:"rows"`
	Size           int64   `json:"size"` // the envelope's bytes
	RSS            int64   `json:"peak_rss"`
}

func compareUpload(mb int64, threads int, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "cleanroom-bench-upload-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	files := map[string]string{"parquet": filepath.Join(data, "impressions.parquet"), "arrow": filepath.Join(data, "impressions.arrow"),
		"csv": filepath.Join(data, "impressions.csv")}
	// Rows per MB of file, measured on this generator.
	perMB := map[string]int64{"parquet": 25_200, "arrow": 15_800, "csv": 15_200}
	formats := []string{"parquet", "arrow", "csv"}
	if f := os.Getenv("BENCH_UPLOAD_FORMATS"); f != "" {
		formats = strings.Split(f, ",")
	}
	for _, format := range formats {
		if _, ok := files[format]; !ok {
			return fmt.Errorf("BENCH_UPLOAD_FORMATS: unknown format %q (want parquet, arrow, csv)", format)
		}
		if _, err := os.Stat(files[format]); err == nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "ad-attribution-bench: writing %s (%d MB)...\n", files[format], mb)
		if format == "arrow" {
			// Converted from a Parquet file of as many rows.
			pq := filepath.Join(data, "arrow-source.parquet")
			if err := writeUploadInput(pq, "parquet", mb*perMB[format]); err != nil {
				return err
			}
			err := writeArrowInput(files[format], pq, impressionColumns)
			os.Remove(pq)
			if err != nil {
				return err
			}
			continue
		}
		if err := writeUploadInput(files[format], format, mb*perMB[format]); err != nil {
			return err
		}
	}
	ctx := context.Background()
	srv, err := testenv.StartE(filepath.Join(dir, "coordinator"), coordinator.Config{
		Logger: slog.New(slog.DiscardHandler), MaxUploadBytes: 64 << 30})
	if err != nil {
		return err
	}
	defer srv.Stop()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "input\tfile\trows\tenvelope\tencrypt only (s)\tMB/s\tCPU (s)\tupload (s)\tMB/s\tCPU (s)\tprovider peak RSS\t\n")
	for i, format := range formats {
		id, err := cleanroom.GenerateIdentity()
		if err != nil {
			return err
		}
		spec := &testenv.Spec{Name: fmt.Sprintf("upload-bench-%d", i), Query: "SELECT count(*) AS n FROM impressions",
			AlgorithmBy: "publisher", Recipients: []string{"publisher"}, MaxRows: 10, MaxRuns: 1,
			Parties: []*testenv.Party{{ID: "publisher", Roles: []contracts.Role{contracts.RoleDataProvider, contracts.RoleAlgorithmProvider, contracts.RoleResultRecipient}, Identity: id}},
			Datasets: []testenv.Dataset{{ID: "impressions", Provider: "publisher",
				Columns: "[{name: user_id, type: string}, {name: campaign, type: string}, {name: shown_at, type: timestamp}]"}}}
		text := spec.Text(srv.Coord.Identity())
		c, err := contracts.Parse(text, contracts.ParseOptions{})
		if err != nil {
			return err
		}
		sig, err := c.Sign(id)
		if err != nil {
			return err
		}
		cl, err := client.New(srv.URL, client.Options{Contract: c, Identity: id})
		if err != nil {
			return err
		}
		_, err = cl.RegisterContract(ctx, text, []contracts.SignedBy{{Source: "publisher", Data: sig}})
		cl.Close()
		if err != nil {
			return err
		}
		key, err := id.MarshalText()
		if err != nil {
			return err
		}
		b, _ := json.Marshal(uploadSetup{URL: srv.URL, Contract: string(text), Key: string(key), File: files[format], Format: format})
		path := filepath.Join(dir, format+".json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
		var m uploadMeasure
		if err := childJSON("upload-child", path, threads, &m); err != nil {
			return err
		}
		fi, err := os.Stat(files[format])
		if err != nil {
			return err
		}
		mbs := func(sec float64) float64 { return float64(fi.Size()) / 1e6 / sec }
		fmt.Fprintf(w, "%s\t%d MB\t%d\t%d MB\t%.2f\t%.0f\t%.2f\t%.2f\t%.0f\t%.2f\t%s\t\n", format, fi.Size()/1e6, m.Rows, m.Size/1e6,
			m.EncryptSeconds, mbs(m.EncryptSeconds), m.EncryptCPU, m.Seconds, mbs(m.Seconds), m.CPU, mib(m.RSS))
	}
	w.Flush()
	fmt.Printf("(GOMAXPROCS %d in the provider's process; MB/s of input file; the coordinator receives the upload on the same machine)\n", threads)
	return nil
}

// writeUploadInput writes rows impressions as format with DuckDB.
func writeUploadInput(path, format string, rows int64) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	sel := fmt.Sprintf(`SELECT md5(i::VARCHAR) AS user_id, 'campaign-' || (i %% 50) AS campaign,
		TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds((i * 7919) %% 31536000) AS shown_at FROM range(%d) t(i)`, rows)
	opts := "FORMAT parquet"
	if format == "csv" {
		sel = fmt.Sprintf(`SELECT user_id, campaign, strftime(shown_at AT TIME ZONE 'UTC', '%%Y-%%m-%%dT%%H:%%M:%%SZ') AS shown_at FROM (%s)`, sel)
		opts = "FORMAT csv, HEADER true"
	}
	_, err = db.Exec(fmt.Sprintf("SET TimeZone = 'UTC'; COPY (%s) TO '%s' (%s)", sel, strings.ReplaceAll(path, "'", "''"), opts))
	return err
}

// writeArrowInput writes the Parquet file src's rows as an Arrow IPC file
// at path, in the 64Ki-row batches connectors reads.
func writeArrowInput(path, src string, cols []contracts.Column) error {
	rr, err := connectors.Open(src, connectors.FormatParquet, cols, connectors.Options{})
	if err != nil {
		return err
	}
	defer rr.Release()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := connectors.Write(f, connectors.FormatArrowFile, rr, connectors.WriteOptions{}); err != nil {
		return err
	}
	return f.Close()
}

// childUpload uploads the setup's file as `cleanroom dataset upload` does.
func childUpload(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var st uploadSetup
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	c, err := contracts.Parse([]byte(st.Contract), contracts.ParseOptions{})
	if err != nil {
		return err
	}
	id, err := cleanroom.ParseIdentity([]byte(st.Key))
	if err != nil {
		return err
	}
	ctx := context.Background()
	cl, err := client.New(st.URL, client.Options{Contract: c, Identity: id})
	if err != nil {
		return err
	}
	defer cl.Close()
	format, err := connectors.ParseFormat(st.Format)
	if err != nil {
		return err
	}
	open := func() (connectors.Reader, error) {
		return connectors.Open(st.File, format, c.Dataset("impressions").Columns, connectors.Options{})
	}
	var m uploadMeasure

	// The encryption alone, to the identity document as `cleanroom
	// coordinator info --out` keeps it.
	a, err := cl.Identity(ctx)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(a.Document)
	if err != nil {
		return err
	}
	if p := os.Getenv("CLEANROOM_BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p + "." + st.Format)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer f.Close()
	}
	cpu := cpuSeconds()
	start := time.Now()
	rr, err := open()
	if err != nil {
		return err
	}
	_, _, err = client.EncryptDataset(io.Discard, rr, c, "impressions", doc, id, upload.EncryptOptions{})
	rr.Release()
	if err != nil {
		return err
	}
	m.EncryptSeconds, m.EncryptCPU = time.Since(start).Seconds(), cpuSeconds()-cpu
	pprof.StopCPUProfile()

	// The whole upload.
	cpu = cpuSeconds()
	start = time.Now()
	if rr, err = open(); err != nil {
		return err
	}
	defer rr.Release()
	rc, err := cl.UploadDataset(ctx, "impressions", rr, client.UploadOptions{})
	if err != nil {
		return err
	}
	m.Seconds, m.CPU = time.Since(start).Seconds(), cpuSeconds()-cpu
	m.Rows, m.Size, m.RSS = rc.Rows, rc.Size, peakRSS()
	return json.NewEncoder(os.Stdout).Encode(m)
}
