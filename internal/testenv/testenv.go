// Package testenv builds real multi-party set-ups for tests: a coordinator
// served by coordinator.Serve over attested TLS on 127.0.0.1, participants with their own keys,
// a contract pinning that coordinator, signed by everyone, and helpers that
// act as each party through the client SDK. Nothing is faked but the
// SEV-SNP hardware (the simulated platform).
package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/api"
	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
)

// Server is a coordinator served in this process by coordinator.Serve,
// over attested TLS on a free port of 127.0.0.1.
type Server struct {
	Coord *coordinator.Coordinator
	URL   string
	Dir   string
	Logs  *SyncBuffer
	stop  context.CancelFunc
	done  chan error
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes (the daemon's
// structured log).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start opens (initialising with the simulated platform if empty) a
// coordinator in dir and serves it as cleanroomd does, with the daemon's
// default connection limits and timeouts, but for one: every party of a
// test connects from 127.0.0.1, so the limit per client address is the
// total limit. cfg's DataDir is set to dir; an empty Attestation is
// simulated, a nil Logger writes to Server.Logs, and a zero
// CheckpointInterval is 100 ms.
func Start(t testing.TB, dir string, cfg coordinator.Config) *Server {
	t.Helper()
	return StartLimited(t, dir, cfg, coordinator.ServerLimits{})
}

// StartLimited is Start with other connection limits and timeouts (zero
// fields take the daemon's defaults).
func StartLimited(t testing.TB, dir string, cfg coordinator.Config, limits coordinator.ServerLimits) *Server {
	t.Helper()
	s, err := Serve(dir, cfg, limits)
	if err != nil {
		t.Fatalf("starting the coordinator: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartE is Start returning an error, for processes that are not tests.
func StartE(dir string, cfg coordinator.Config) (*Server, error) {
	return Serve(dir, cfg, coordinator.ServerLimits{})
}

// Serve starts coordinator.Serve on a free port of 127.0.0.1 and returns
// once the coordinator is open and the server accepts connections.
func Serve(dir string, cfg coordinator.Config, limits coordinator.ServerLimits) (*Server, error) {
	logs := &SyncBuffer{}
	cfg.DataDir = dir
	if cfg.Attestation == "" {
		cfg.Attestation = coordinator.ModeSimulated
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 100 * time.Millisecond
	}
	if limits.MaxConnectionsPerHost == 0 {
		limits.MaxConnectionsPerHost = max(limits.MaxConnections, coordinator.DefaultMaxConnections)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	ready := make(chan *coordinator.Coordinator, 1)
	s := &Server{URL: "https://" + ln.Addr().String(), Dir: dir, Logs: logs, stop: stop, done: make(chan error, 1)}
	go func() {
		s.done <- coordinator.Serve(ctx, ln, coordinator.Options{Config: cfg, Limits: limits, ShutdownTimeout: 10 * time.Second,
			Ready: func(c *coordinator.Coordinator) { ready <- c }})
	}()
	select {
	case s.Coord = <-ready:
		return s, nil
	case err := <-s.done:
		stop()
		return nil, err
	}
}

// Stop shuts the server down gracefully and closes the coordinator. It is
// safe to call twice.
func (s *Server) Stop() {
	if s.stop == nil {
		return
	}
	s.stop()
	<-s.done
	s.stop = nil
}

// Party is a participant with its key.
type Party struct {
	ID       string
	Roles    []contracts.Role
	Identity *cleanroom.Identity
}

// Dataset describes a dataset of a contract spec.
type Dataset struct {
	ID       string
	Provider string
	Columns  string // YAML flow list, e.g. "[{name: user_id, type: string}]"
	// PrivacyUnit, when set, is the dataset's privacy_unit.
	PrivacyUnit string
	// Privacy is more YAML flow fields of the dataset, e.g.
	// "dimensions: [campaign]".
	Privacy string
}

// Spec describes a contract to build.
type Spec struct {
	Name         string
	Parties      []*Party
	Datasets     []Dataset
	Query        string
	AlgorithmBy  string
	Confidential bool
	// Salt is the salt of a confidential algorithm's commitment; Text
	// makes a fresh one when it is zero.
	Salt cleanroom.Salt
	// InsecurePlainDigest names the query's plain SHA-256 even when it is
	// confidential: the contract the coordinator must refuse to run.
	InsecurePlainDigest bool
	// Parameters, when set, is algorithm.parameters as a YAML flow list,
	// e.g. "[{name: since, type: date, min: 2026-01-01, max: 2026-12-31}]".
	Parameters string
	// Supersedes, when set, is the id of the contract this one amends.
	Supersedes string
	Models     []Model
	Recipients []string
	// Mode is output.mode; "" writes none (custom when GroupColumn is set,
	// aggregate otherwise).
	Mode        string
	GroupColumn string
	K           int
	MaxRows     int
	MaxRuns     int
	// DifferentialPrivacy, when set, is the output.differential_privacy
	// block as a YAML flow mapping; with no Mode, Text writes mode
	// differential_privacy.
	DifferentialPrivacy string
	Expires             time.Time
}

// The ad-attribution contract most tests play: a publisher and an
// advertiser provide data, a measurer the query, the advertiser receives
// the results (groups of fewer than 2 users suppressed), an auditor
// audits. With ImpressionsCSV and ConversionsCSV, a run releases 1 row and
// suppresses 2.
const (
	AdQuery = "SELECT i.campaign, count(DISTINCT i.user_id) AS users, sum(c.value) AS revenue " +
		"FROM impressions i JOIN conversions c USING (user_id) GROUP BY i.campaign ORDER BY i.campaign"
	ImpressionsCSV = "user_id,campaign\nu1,spring\nu2,spring\nu3,spring\nu1,summer\nu4,autumn\n"
	ConversionsCSV = "user_id,value\nu1,10.5\nu2,20\nu3,1\nu4,7\n"
)

// AdSpec is the ad-attribution contract named name, with fresh keys, that
// allows maxRuns runs.
func AdSpec(t testing.TB, name string, maxRuns int) *Spec {
	return &Spec{
		Name: name,
		Parties: []*Party{
			NewParty(t, "publisher", contracts.RoleDataProvider),
			NewParty(t, "advertiser", contracts.RoleDataProvider, contracts.RoleResultRecipient),
			NewParty(t, "measurer", contracts.RoleAlgorithmProvider),
			NewParty(t, "auditor", contracts.RoleAuditor),
		},
		Datasets: []Dataset{
			{ID: "impressions", Provider: "publisher", Columns: "[{name: user_id, type: string}, {name: campaign, type: string}]"},
			{ID: "conversions", Provider: "advertiser", Columns: "[{name: user_id, type: string}, {name: value, type: float64}]"},
		},
		Query: AdQuery, AlgorithmBy: "measurer", Recipients: []string{"advertiser"},
		GroupColumn: "users", K: 2, MaxRows: 100, MaxRuns: maxRuns,
	}
}

// AdDPQuery is AdQuery as mode differential_privacy takes it: no ORDER BY
// (the engine releases groups sorted by their keys).
const AdDPQuery = "SELECT i.campaign, count(DISTINCT i.user_id) AS users, sum(c.value) AS revenue " +
	"FROM impressions i JOIN conversions c USING (user_id) GROUP BY i.campaign"

// DPSpec is the ad-attribution contract in mode differential_privacy
// with the given output.differential_privacy block (a YAML flow mapping):
// user_id is the privacy unit of both datasets, the query is AdDPQuery.
func DPSpec(t testing.TB, name string, maxRuns int, block string) *Spec {
	sp := AdSpec(t, name, maxRuns)
	for i := range sp.Datasets {
		sp.Datasets[i].PrivacyUnit = "user_id"
	}
	sp.Query, sp.GroupColumn, sp.K = AdDPQuery, "", 0
	sp.Mode, sp.DifferentialPrivacy = "differential_privacy", block
	return sp
}

// Model is a model of a Spec's contract: its module and, for a
// confidential model, the salt of its commitment.
type Model struct {
	Name, Provider string
	Args           string // the contract's args list, e.g. "[float64]"
	Result         string
	Module         []byte
	Salt           *cleanroom.Salt // nil: not confidential
}

// Digest is what the contract names for the model: the salted commitment
// when confidential, the module's SHA-256 otherwise.
func (m *Model) Digest() [32]byte {
	if m.Salt == nil {
		return sha256.Sum256(m.Module)
	}
	return cleanroom.CommitModel(*m.Salt, m.Module)
}

// NewParty makes a participant with a fresh key.
func NewParty(t testing.TB, id string, roles ...contracts.Role) *Party {
	t.Helper()
	k, err := cleanroom.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return &Party{ID: id, Roles: roles, Identity: k}
}

// AlgorithmDigest returns what the contract names as algorithm.sha256: the
// query's SHA-256, or for a confidential algorithm its salted commitment
// (making a fresh Salt when there is none).
func (sp *Spec) AlgorithmDigest() [32]byte {
	if !sp.Confidential || sp.InsecurePlainDigest {
		return sha256.Sum256([]byte(sp.Query))
	}
	if sp.Salt == (cleanroom.Salt{}) {
		sp.Salt = cleanroom.NewSalt()
	}
	return cleanroom.CommitAlgorithm(sp.Salt, []byte(sp.Query))
}

// AlgorithmSalt returns the salt the algorithm provider submits with the
// query: the spec's Salt for a confidential algorithm, nil otherwise.
func (sp *Spec) AlgorithmSalt() *cleanroom.Salt {
	if !sp.Confidential {
		return nil
	}
	if sp.Salt == (cleanroom.Salt{}) {
		sp.Salt = cleanroom.NewSalt()
	}
	s := sp.Salt
	return &s
}

// Text renders the contract, pinning the coordinator's measurement and
// simulated root.
func (sp *Spec) Text(coord *coordinator.Identity) []byte {
	var b strings.Builder
	expires := sp.Expires
	if expires.IsZero() {
		expires = time.Now().Add(30 * 24 * time.Hour)
	}
	fmt.Fprintf(&b, "version: 1\nname: %s\nexpires_at: %s\nparticipants:\n", sp.Name, expires.UTC().Format(time.RFC3339))
	for _, p := range sp.Parties {
		roles := make([]string, len(p.Roles))
		for i, r := range p.Roles {
			roles[i] = string(r)
		}
		fmt.Fprintf(&b, "  - {id: %s, roles: [%s], public_key: %q}\n", p.ID, strings.Join(roles, ", "), p.Identity.Public())
	}
	b.WriteString("datasets:\n")
	for _, d := range sp.Datasets {
		fmt.Fprintf(&b, "  - {id: %s, provider: %s, columns: %s", d.ID, d.Provider, d.Columns)
		if d.PrivacyUnit != "" {
			fmt.Fprintf(&b, ", privacy_unit: %s", d.PrivacyUnit)
		}
		if d.Privacy != "" {
			fmt.Fprintf(&b, ", %s", d.Privacy)
		}
		b.WriteString("}\n")
	}
	fmt.Fprintf(&b, "algorithm: {provider: %s, language: duckdb-sql, sha256: \"%x\", confidential: %v",
		sp.AlgorithmBy, sp.AlgorithmDigest(), sp.Confidential)
	if sp.Parameters != "" {
		fmt.Fprintf(&b, ", parameters: %s", sp.Parameters)
	}
	b.WriteString("}\n")
	if len(sp.Models) > 0 {
		b.WriteString("models:\n")
		for _, m := range sp.Models {
			fmt.Fprintf(&b, "  - {name: %s, provider: %s, sha256: \"%x\", confidential: %v, args: %s, result: %s}\n",
				m.Name, m.Provider, m.Digest(), m.Salt != nil, m.Args, m.Result)
		}
	}
	fmt.Fprintf(&b, "output: {recipients: [%s], max_rows: %d, max_runs: %d", strings.Join(sp.Recipients, ", "), sp.MaxRows, sp.MaxRuns)
	if sp.Mode != "" {
		fmt.Fprintf(&b, ", mode: %s", sp.Mode)
	} else if sp.DifferentialPrivacy != "" {
		b.WriteString(", mode: differential_privacy")
	}
	if sp.GroupColumn != "" && sp.K > 0 {
		fmt.Fprintf(&b, ", group_size_column: %s", sp.GroupColumn)
	}
	if sp.K > 0 {
		fmt.Fprintf(&b, ", min_group_size: %d", sp.K)
	}
	if sp.DifferentialPrivacy != "" {
		fmt.Fprintf(&b, ", differential_privacy: %s", sp.DifferentialPrivacy)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "coordinator: %s\n", coord.Reference.FlowYAML())
	if sp.Supersedes != "" {
		fmt.Fprintf(&b, "supersedes: %q\n", sp.Supersedes)
	}
	return []byte(b.String())
}

// Scenario is a contract between parties on one coordinator.
type Scenario struct {
	Server      *Server // nil for a coordinator in another process
	URL         string
	Coordinator *coordinator.Identity
	Spec        *Spec
	Text        []byte
	Contract    *contracts.Contract
	Sigs        [][]byte
	parties     map[string]*Party

	mu      sync.Mutex
	clients map[string]*client.Client // by party id and URL
}

// New builds the contract of spec for server's coordinator and has every
// party sign it. It does not submit it.
func New(t testing.TB, server *Server, spec *Spec) *Scenario {
	t.Helper()
	sc := NewRemote(t, server.URL, server.Coord.Identity(), spec)
	sc.Server = server
	return sc
}

// NewRemote is New for a coordinator served elsewhere at url, whose
// identity the test read from its data directory (coordinator.ReadIdentity,
// to pin its measurement and root).
func NewRemote(t testing.TB, url string, coord *coordinator.Identity, spec *Spec) *Scenario {
	t.Helper()
	text := spec.Text(coord)
	c, err := contracts.Parse(text, contracts.ParseOptions{})
	if err != nil {
		t.Fatalf("scenario contract: %v\n%s", err, text)
	}
	sc := &Scenario{URL: url, Coordinator: coord, Spec: spec, Text: text, Contract: c, parties: map[string]*Party{}}
	for _, p := range spec.Parties {
		sig, err := c.Sign(p.Identity)
		if err != nil {
			t.Fatal(err)
		}
		sc.Sigs = append(sc.Sigs, sig)
		sc.parties[p.ID] = p
	}
	return sc
}

// Party returns a party by id.
func (sc *Scenario) Party(id string) *Party { return sc.parties[id] }

// Client returns an attested client acting as party id ("" for an
// anonymous client).
//
// Clients are kept per party and coordinator URL and reused, as a party's
// program would reuse its connection; Close releases them.
func (sc *Scenario) Client(t testing.TB, id string) *client.Client {
	t.Helper()
	key := id + "@" + sc.URL
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if cl := sc.clients[key]; cl != nil {
		return cl
	}
	opts := client.Options{Contract: sc.Contract}
	if id != "" {
		p := sc.parties[id]
		if p == nil {
			t.Fatalf("no party %q", id)
		}
		opts.Identity = p.Identity
	}
	cl := sc.ClientWith(t, opts)
	if sc.clients == nil {
		sc.clients = map[string]*client.Client{}
	}
	sc.clients[key] = cl
	return cl
}

// Close closes the scenario's cached clients and their connections, as
// parties do when they are done.
func (sc *Scenario) Close() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for k, cl := range sc.clients {
		cl.Close()
		delete(sc.clients, k)
	}
}

// ClientWith returns a client for the scenario's coordinator with opts.
func (sc *Scenario) ClientWith(t testing.TB, opts client.Options) *client.Client {
	t.Helper()
	cl, err := client.New(sc.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Submit registers the contract as party id.
func (sc *Scenario) Submit(t testing.TB, id string) *api.ContractReceipt {
	t.Helper()
	rec, err := sc.TrySubmit(t, id)
	if err != nil {
		t.Fatalf("submitting the contract: %v", err)
	}
	return rec
}

// TrySubmit registers the contract as party id and returns the refusal.
func (sc *Scenario) TrySubmit(t testing.TB, id string) (*api.ContractReceipt, error) {
	t.Helper()
	return sc.Client(t, id).SubmitContract(context.Background(), sc.Text, sc.Sigs)
}

// Seal encrypts CSV text for dataset ds as party id would, returning the
// envelope and the signed upload statement.
func (sc *Scenario) Seal(t testing.TB, id, ds, csv string) *Sealed {
	t.Helper()
	rr := sc.csvRows(t, ds, csv)
	defer rr.Release()
	var buf bytes.Buffer
	enc, err := upload.Encrypt(&buf, rr, sc.Contract, ds, sc.Coordinator.PublicKey, sc.parties[id].Identity, upload.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &Sealed{Envelope: buf.Bytes(), Statement: enc.Signed, Rows: enc.Rows}
}

// csvRows reads CSV text as dataset ds's columns.
func (sc *Scenario) csvRows(t testing.TB, ds, csv string) connectors.Reader {
	t.Helper()
	d := sc.Contract.Dataset(ds)
	if d == nil {
		t.Fatalf("no dataset %q", ds)
	}
	rr, err := connectors.NewReader(strings.NewReader(csv), connectors.FormatCSV, d.Columns, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// Sealed is an envelope ready to upload.
type Sealed struct {
	Envelope  []byte
	Statement []byte
	Rows      int64
}

// Upload sends a sealed dataset as party id (client.UploadEnvelope, which
// checks nothing of what it sends) and returns the receipt or the refusal.
func (sc *Scenario) Upload(t testing.TB, id, ds string, s *Sealed) (*api.UploadReceipt, error) {
	t.Helper()
	return sc.Client(t, id).UploadEnvelope(context.Background(), ds, bytes.NewReader(s.Envelope),
		func() ([]byte, error) { return s.Statement, nil })
}

// MustUpload uploads CSV text as dataset ds the way its provider id does
// (client.UploadDataset: attest, encrypt, stream, check the receipt),
// failing the test on refusal.
func (sc *Scenario) MustUpload(t testing.TB, id, ds, csv string) *client.DatasetReceipt {
	t.Helper()
	rr := sc.csvRows(t, ds, csv)
	defer rr.Release()
	rec, err := sc.Client(t, id).UploadDataset(context.Background(), ds, rr, client.UploadOptions{})
	if err != nil {
		t.Fatalf("uploading %s as %s: %v", ds, id, err)
	}
	return rec
}

// SubmitAlgorithm submits the spec's query as its algorithm provider (with
// the commitment's salt when it is confidential), failing the test on
// refusal.
func (sc *Scenario) SubmitAlgorithm(t testing.TB) *api.AlgorithmReceipt {
	t.Helper()
	rec, err := sc.Client(t, sc.Spec.AlgorithmBy).SubmitAlgorithm(context.Background(), []byte(sc.Spec.Query), sc.Spec.AlgorithmSalt())
	if err != nil {
		t.Fatalf("submitting the algorithm as %s: %v", sc.Spec.AlgorithmBy, err)
	}
	return rec
}

// LogSize returns the number of events in the coordinator's log.
func (sc *Scenario) LogSize() uint64 { return sc.Server.Coord.LogSize() }

// Drain reads and discards r, for response bodies.
func Drain(r io.Reader) { io.Copy(io.Discard, r) }

// PlainDuckDB opens an ordinary in-memory DuckDB holding the ad-attribution
// tables impressions and conversions made from CSV text in ImpressionsCSV's
// and ConversionsCSV's layout: what a test compares a clean-room run with.
func PlainDuckDB(t testing.TB, impressions, conversions string) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := t.TempDir()
	for name, data := range map[string]string{"impressions": impressions, "conversions": conversions} {
		path := filepath.Join(dir, name+".csv")
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		cols := "{'user_id': 'VARCHAR', 'campaign': 'VARCHAR'}"
		if name == "conversions" {
			cols = "{'user_id': 'VARCHAR', 'value': 'DOUBLE'}"
		}
		if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM read_csv('%s', header = true, columns = %s)", name, path, cols)); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// VerifiedLog is what an auditor of a scenario's contract has verified:
// the coordinator, attested over TLS; a checkpoint covering the whole log;
// and the contract's view of the log at that checkpoint.
type VerifiedLog struct {
	Coordinator *audit.Coordinator
	Checkpoint  *tlog.Checkpoint
	Entries     [][]byte // the view's entries, nil where redacted
}

// VerifyLog has auditor attest the coordinator, waits (up to 10 s) for a
// checkpoint that covers the whole log, and verifies the contract's view
// under it.
func (sc *Scenario) VerifyLog(t testing.TB, auditor *client.Client) *VerifiedLog {
	t.Helper()
	ctx := context.Background()
	coord, err := auditor.AttestedCoordinator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tlog.NewCoordinatorVerifier(coord.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	size := sc.LogSize()
	var cp *tlog.Checkpoint
	for deadline := time.Now().Add(10 * time.Second); cp == nil || cp.Size() < size; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covers %d entries after 10 s", size)
		}
		raw, err := auditor.LogFetcher()(ctx, "checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		if cp, err = v.VerifyCheckpoint(raw); err != nil {
			t.Fatal(err)
		}
	}
	view, err := v.VerifyView(ctx, auditor.LogFetcher(), cp, sc.Contract.ID().String())
	if err != nil {
		t.Fatal(err)
	}
	return &VerifiedLog{Coordinator: coord, Checkpoint: cp, Entries: view.Entries}
}
