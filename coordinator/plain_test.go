package coordinator_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	_ "github.com/duckdb/duckdb-go/v2"

	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// TestResultMatchesPlainDuckDB runs a contract end to end over attested
// TLS — two providers, an algorithm provider, a recipient — and checks that
// the released result is exactly what plain, unrestricted DuckDB gives for
// the same SQL over the plaintext inputs, minus the rows below k, and that
// the bundle verifies offline.
func TestResultMatchesPlainDuckDB(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	spec := testenv.AdSpec(t, "plain-duckdb", 1)
	spec.K = 20
	sc := testenv.New(t, srv, spec)

	// Data with popular and rare campaigns.
	rng := rand.New(rand.NewPCG(3, 4))
	var imp, conv strings.Builder
	imp.WriteString("user_id,campaign\n")
	conv.WriteString("user_id,value\n")
	for u := range 3000 {
		n := 1 + rng.IntN(4)
		for range n {
			c := rng.IntN(12)
			if c > 8 && rng.IntN(20) != 0 {
				c = rng.IntN(9) // campaigns 9-11 stay rare
			}
			fmt.Fprintf(&imp, "user-%d,campaign-%02d\n", u, c)
		}
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&conv, "user-%d,%d.%02d\n", u, rng.IntN(500), rng.IntN(100))
		}
	}
	dir := t.TempDir()
	impPath, convPath := filepath.Join(dir, "impressions.csv"), filepath.Join(dir, "conversions.csv")
	os.WriteFile(impPath, []byte(imp.String()), 0o600)
	os.WriteFile(convPath, []byte(conv.String()), 0o600)

	ctx := context.Background()
	sc.Submit(t, "publisher")
	sc.MustUpload(t, "publisher", "impressions", imp.String())
	sc.MustUpload(t, "advertiser", "conversions", conv.String())
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(spec.Query), spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
	rs, err := sc.Client(t, "advertiser").Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sc.Client(t, "advertiser").ResultBundle(ctx, rs.RunID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	report, err := bundle.Verify(b, sc.Contract, bundle.VerifyOptions{Recipient: sc.Party("advertiser").Identity})
	if err != nil {
		t.Fatalf("the bundle does not verify offline: %v", err)
	}
	got := resultRows(t, report.Result)

	// Plain DuckDB, same SQL, same plaintext.
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		fmt.Sprintf("CREATE TABLE impressions AS SELECT * FROM read_csv('%s', header=true, columns={'user_id': 'VARCHAR', 'campaign': 'VARCHAR'})", impPath),
		fmt.Sprintf("CREATE TABLE conversions AS SELECT * FROM read_csv('%s', header=true, columns={'user_id': 'VARCHAR', 'value': 'DOUBLE'})", convPath),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Query(spec.Query)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var suppressed int
	for rows.Next() {
		var campaign string
		var users int64
		var revenue float64
		if err := rows.Scan(&campaign, &users, &revenue); err != nil {
			t.Fatal(err)
		}
		if users < int64(spec.K) {
			suppressed++
			continue
		}
		want = append(want, fmt.Sprintf("%s|%d|%.6f", campaign, users, revenue))
	}
	if len(want) == 0 || suppressed == 0 {
		t.Fatalf("the data does not exercise the policy: %d kept, %d suppressed", len(want), suppressed)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("clean room result:\n%s\nplain DuckDB minus rows below k:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if report.Statement.RowsKept != int64(len(want)) || report.Statement.RowsSuppressed != int64(suppressed) {
		t.Fatalf("statement counts %d kept, %d suppressed; plain DuckDB %d, %d",
			report.Statement.RowsKept, report.Statement.RowsSuppressed, len(want), suppressed)
	}
}

// resultRows decodes an Arrow IPC result of (campaign, users, revenue).
func resultRows(t *testing.T, ipcBytes []byte) []string {
	t.Helper()
	r, err := ipc.NewReader(bytes.NewReader(ipcBytes))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var out []string
	for r.Next() {
		rec := r.RecordBatch()
		c := rec.Column(0).(*array.String)
		u := rec.Column(1).(*array.Int64)
		v := rec.Column(2).(*array.Float64)
		for i := range int(rec.NumRows()) {
			out = append(out, fmt.Sprintf("%s|%d|%.6f", c.Value(i), u.Value(i), v.Value(i)))
		}
	}
	return out
}
