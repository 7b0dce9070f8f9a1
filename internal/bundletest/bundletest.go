// Package bundletest builds result bundles for the tests of the client's
// verifiers, as a coordinator makes them: a coordinator key with evidence
// from the simulated SEV-SNP platform (cleanroom/attest/simulated, as the
// coordinator's simulated mode makes it), an audit log, participant keys, a
// parsed contract pinning that coordinator, datasets encrypted and signed
// by their providers (cleanroom/upload), and runs that end the way the
// coordinator ends them (encrypt the result, sign the statement, append
// run.finished, prove both entries under one checkpoint, assemble).
//
// It stands in for the coordinator, which the client's packages cannot
// import (its internals are behind coordinator/internal), so that hooks in
// RunOptions can make a coordinator that misbehaves in a signed, logged way
// (wrong upload statement, wrong entry, wrong recipients), which byte-level
// tampering cannot produce. The log is an RFC 6962 tree kept in memory
// whose checkpoints the coordinator key signs in the coordinator's format
// (docs/log.md); bundles from the real coordinator are verified by the
// end-to-end tests.
package bundletest

import (
	"bytes"
	"context"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/budget"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/contracts"
)

// Query is the algorithm text the world's contract pins by its SHA-256.
const Query = "SELECT campaign, count(DISTINCT i.user_id) AS users, sum(value) AS revenue FROM impressions i JOIN conversions c ON i.user_id = c.user_id GROUP BY campaign"

// ParticipantIDs are the world's participants: two data providers (one also
// a result recipient), an algorithm provider who is also a result
// recipient, and an auditor who receives no result.
var ParticipantIDs = []string{"publisher", "advertiser", "measurer", "auditor"}

// Upload is a dataset as its provider encrypted and signed it, and the
// envelope the coordinator stores in its place (the same plaintext
// re-encrypted to its own key).
type Upload struct {
	Envelope     []byte
	Signed       []byte // the upload statement
	SHA256       [32]byte
	HeaderSHA256 [32]byte
	Rows         int64
	Stored       []byte
}

// World is a simulated coordinator with its log, a contract and the
// participants' keys.
type World struct {
	Coordinator  *Coordinator
	Log          *Log
	Contract     *contracts.Contract
	ContractText []byte // the contract's YAML
	Keys         map[string]*cleanroom.Identity
	Uploads      map[string]*Upload // by dataset id
	runs         int64
	chains       map[string]link // events scope → its last link
	privacy      budget.Ledger   // the charges of the runs so far
}

// Options adjust the world New makes. The zero value is the default
// world.
type Options struct {
	// DifferentialPrivacy, when set, is the contract's
	// output.differential_privacy block as a YAML flow mapping; Run then
	// charges every run as the coordinator does.
	DifferentialPrivacy string
}

// link is the last event of an events scope: its seq and leaf hash.
type link struct {
	seq  uint64
	leaf [32]byte
}

const contractTemplate = `version: 1
name: bundle-test
expires_at: 2099-03-31T00:00:00Z
participants:
  - id: publisher
    roles: [data_provider]
    public_key: "{{.publisher}}"
  - id: advertiser
    roles: [data_provider, result_recipient]
    public_key: "{{.advertiser}}"
  - id: measurer
    roles: [algorithm_provider, result_recipient]
    public_key: "{{.measurer}}"
  - id: auditor
    roles: [auditor]
    public_key: "{{.auditor}}"
datasets:
  - id: impressions
    provider: publisher
{{- if .dp}}
    privacy_unit: user_id
{{- end}}
    columns:
      - {name: user_id, type: string}
      - {name: campaign, type: string}
  - id: conversions
    provider: advertiser
{{- if .dp}}
    privacy_unit: user_id
{{- end}}
    columns:
      - {name: user_id, type: string}
      - {name: value, type: float64}
algorithm:
  provider: measurer
  language: duckdb-sql
  sha256: "{{.algorithm}}"
output:
  recipients: [advertiser, measurer]
{{- with .dp}}
  mode: differential_privacy
  differential_privacy: {{.}}
{{- else}}
  group_size_column: users
  min_group_size: 2
{{- end}}
  max_rows: 1000
  max_runs: 1000
coordinator:
  platform: sev-snp-simulated
  measurements: ["{{.measurement}}"]
  simulated_root_sha256: "{{.root}}"
`

// New makes a world: a simulated coordinator, its log, fresh participant
// keys, the contract, both datasets encrypted and signed, and the log's
// first events (coordinator.started and both dataset.uploaded).
func New() (*World, error) { return NewWith(Options{}) }

// NewWith is New with options.
func NewWith(opts Options) (*World, error) {
	inst, err := NewCoordinator()
	if err != nil {
		return nil, err
	}
	w := &World{Coordinator: inst, Keys: map[string]*cleanroom.Identity{}, Uploads: map[string]*Upload{}}
	vals := map[string]string{}
	for _, id := range ParticipantIDs {
		k, err := cleanroom.GenerateIdentity()
		if err != nil {
			return nil, err
		}
		w.Keys[id] = k
		vals[id] = k.Public().String()
	}
	algo := sha256.Sum256([]byte(Query))
	m := inst.Measurement()
	vals["algorithm"] = hex.EncodeToString(algo[:])
	vals["measurement"] = hex.EncodeToString(m[:])
	vals["root"] = hex.EncodeToString(inst.SimulatedRootSHA256()[:])
	vals["dp"] = opts.DifferentialPrivacy
	var text bytes.Buffer
	if err := template.Must(template.New("contract").Parse(contractTemplate)).Execute(&text, vals); err != nil {
		return nil, err
	}
	w.ContractText = text.Bytes()
	if w.Contract, err = contracts.Parse(w.ContractText, contracts.ParseOptions{}); err != nil {
		return nil, fmt.Errorf("bundletest: the contract does not parse: %w", err)
	}

	id := inst.Identity()
	if w.Log, err = NewLog(id); err != nil {
		return nil, err
	}
	ctx := context.Background()
	evBytes, err := inst.StaticEvidence().MarshalBinary()
	if err != nil {
		return nil, err
	}
	evSum := sha256.Sum256(evBytes)
	if _, _, err := w.append(ctx, &events.Event{Type: events.TypeCoordinatorStarted, CoordinatorStarted: &events.CoordinatorStarted{
		Platform: string(inst.StaticEvidence().Platform()), Measurement: hex.EncodeToString(m[:]), PublicKey: id.Public().Fingerprint().String(),
		EvidenceSHA256: hex.EncodeToString(evSum[:]), Software: "bundletest",
	}}); err != nil {
		return nil, err
	}
	for _, ds := range w.Contract.Datasets {
		u, err := w.encrypt(&ds)
		if err != nil {
			return nil, err
		}
		w.Uploads[ds.ID] = u
		storedSum := sha256.Sum256(u.Stored)
		sh, err := envelope.ParseHeader(bytes.NewReader(u.Stored))
		if err != nil {
			return nil, err
		}
		storedHdr := sh.SHA256()
		p := w.Contract.Participant(ds.Provider)
		if _, _, err := w.append(ctx, &events.Event{Type: events.TypeDatasetUploaded, Contract: w.Contract.ID().String(),
			Actor: p.ID, ActorKey: p.PublicKey.Fingerprint().String(),
			DatasetUploaded: &events.DatasetUploaded{
				Dataset: ds.ID, Ciphertext: events.Blob{SHA256: hex.EncodeToString(u.SHA256[:]), Size: int64(len(u.Envelope))},
				HeaderSHA256: hex.EncodeToString(u.HeaderSHA256[:]),
				Rows:         u.Rows, SchemaDigest: hex.EncodeToString(func() []byte { d := ds.SchemaDigest(); return d[:] }()),
				UploadStatement:    u.Signed,
				Stored:             events.Blob{SHA256: hex.EncodeToString(storedSum[:]), Size: int64(len(u.Stored))},
				StoredHeaderSHA256: hex.EncodeToString(storedHdr[:]),
			}}); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// append encodes and appends an event, filling its version, id, salt, time
// and link to its scope's chain, as the coordinator does.
func (w *World) append(ctx context.Context, e *events.Event) (uint64, []byte, error) {
	if w.chains == nil {
		w.chains = map[string]link{}
	}
	last := w.chains[e.Scope()]
	e.V, e.Seq, e.Prev = events.Version, last.seq+1, ""
	if last.seq > 0 {
		e.Prev = hex.EncodeToString(last.leaf[:])
	}
	if e.ID == "" {
		e.ID = events.NewID()
	}
	if e.Salt == "" {
		e.Salt = events.NewSalt()
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	entry, err := events.Encode(e)
	if err != nil {
		return 0, nil, err
	}
	i, err := w.Log.Append(ctx, entry)
	if err == nil {
		w.chains[e.Scope()] = link{seq: e.Seq, leaf: tlog.HashLeaf(entry)}
	}
	return i, entry, err
}

// encrypt makes a dataset's rows, encrypts them to the coordinator and
// signs the upload statement with the provider's key.
func (w *World) encrypt(ds *contracts.Dataset) (*Upload, error) {
	schema := ds.Schema()
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	const rows = 50
	for r := 0; r < rows; r++ {
		for i, f := range schema.Fields() {
			switch fb := b.Field(i).(type) {
			case *array.StringBuilder:
				switch f.Name {
				case "campaign":
					fb.Append([]string{"spring", "summer", "autumn"}[r%3])
				default:
					fb.Append(fmt.Sprintf("user-%03d", r))
				}
			case *array.Float64Builder:
				fb.Append(float64(r) * 1.5)
			default:
				return nil, fmt.Errorf("bundletest: no values for column %s of type %s", f.Name, f.Type)
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	rr, err := array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	var buf bytes.Buffer
	enc, err := upload.Encrypt(&buf, rr, w.Contract, ds.ID, w.Coordinator.PublicKey(), w.Keys[ds.Provider], upload.EncryptOptions{SegmentSize: 1024})
	if err != nil {
		return nil, err
	}
	// The coordinator's copy, as it re-keys an upload.
	plain, _, err := envelope.Open(buf.Bytes(), w.Coordinator.Identity().HPKE(), envelope.Expect{
		Kind: envelope.KindDataset, ContractID: w.Contract.ID(), ObjectID: ds.ID})
	if err != nil {
		return nil, err
	}
	var stored bytes.Buffer
	sw, err := envelope.NewWriter(&stored, envelope.Header{Kind: envelope.KindDataset, ContractID: w.Contract.ID(), ObjectID: ds.ID,
		SchemaDigest: ds.SchemaDigest()}, []hpke.PublicKey{w.Coordinator.PublicKey().HPKE()})
	if err != nil {
		return nil, err
	}
	sw.Write(plain)
	if err := sw.Close(); err != nil {
		return nil, err
	}
	return &Upload{Envelope: buf.Bytes(), Signed: enc.Signed, SHA256: enc.Summary.SHA256,
		HeaderSHA256: enc.Summary.Header.SHA256(), Rows: enc.Rows, Stored: stored.Bytes()}, nil
}

// Result returns a small result as an Arrow IPC stream: campaign, users,
// revenue.
func Result() ([]byte, error) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "campaign", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "users", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "revenue", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"autumn", "spring", "summer"}, nil)
	b.Field(1).(*array.Int64Builder).AppendValues([]int64{16, 17, 17}, nil)
	b.Field(2).(*array.Float64Builder).AppendValues([]float64{588, 612, 637.5}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	iw := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := iw.Write(rec); err != nil {
		return nil, err
	}
	if err := iw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// RunOptions make a run misbehave. The zero value is an honest run.
type RunOptions struct {
	// Result is the plaintext result; nil means Result().
	Result []byte
	// Encrypt replaces bundle.EncryptResult.
	Encrypt func(plain []byte, c *contracts.Contract, runID string) ([]byte, [32]byte, error)
	// EditStatement changes the statement before it is signed.
	EditStatement func(*bundle.Statement)
	// EditRunStarted and EditRunFinished change the events before they
	// are appended.
	EditRunStarted  func(*events.Event)
	EditRunFinished func(*events.Event)
	// Unchecked builds the bundle without bundle.Assemble's verification
	// (needed when the hooks make it wrong).
	Unchecked bool
}

// Run is the outcome of a run.
type Run struct {
	Bundle    *bundle.Bundle
	Statement *bundle.Statement
	Signed    []byte // the signed statement
	Plain     []byte // the plaintext result
	RunID     string
}

// Run does what the coordinator does for a run, from run.started to the
// bundle: append run.started, encrypt the result to the recipients, sign
// the statement, append run.finished, prove both entries under one
// checkpoint and assemble the bundle (bundle.Assemble, which verifies it,
// unless opts.Unchecked).
func (w *World) Run(ctx context.Context, opts RunOptions) (*Run, error) {
	c := w.Contract
	w.runs++
	runID := events.NewID()
	plain := opts.Result
	if plain == nil {
		var err error
		if plain, err = Result(); err != nil {
			return nil, err
		}
	}
	datasets := map[string]string{}
	for id, u := range w.Uploads {
		datasets[id] = hex.EncodeToString(u.SHA256[:])
	}
	measurer := c.Participant(c.Algorithm.Provider)
	started := &events.Event{Type: events.TypeRunStarted, Contract: c.ID().String(),
		Actor: measurer.ID, ActorKey: measurer.PublicKey.Fingerprint().String(),
		RunStarted: &events.RunStarted{RunID: runID, Number: w.runs, AlgorithmSHA256: hex.EncodeToString(c.Algorithm.SHA256[:]), Datasets: datasets}}
	var charge *events.PrivacyCharge
	if dp := c.DifferentialPrivacy(); dp != nil {
		w.privacy.Add(budget.PerRun(dp))
		spent := w.privacy.Spent()
		charge = &events.PrivacyCharge{Epsilon: dp.EpsilonPerRun, Delta: dp.DeltaPerRun, EpsilonSpent: spent.Epsilon, DeltaSpent: spent.Delta}
		logged := *charge // EditRunStarted may change the event's, not the statement's
		started.RunStarted.Privacy = &logged
	}
	if opts.EditRunStarted != nil {
		opts.EditRunStarted(started)
	}
	startedIndex, startedEntry, err := w.append(ctx, started)
	if err != nil {
		return nil, err
	}

	encrypt := bundle.EncryptResult
	if opts.Encrypt != nil {
		encrypt = opts.Encrypt
	}
	enc, commitment, err := encrypt(plain, c, runID)
	if err != nil {
		return nil, err
	}
	rcpts, err := bundle.Recipients(c)
	if err != nil {
		return nil, err
	}
	st := &bundle.Statement{
		ContractID:            c.ID(),
		RunID:                 runID,
		RunNumber:             w.runs,
		AlgorithmSHA256:       c.Algorithm.SHA256,
		ResultCommitment:      commitment,
		EncryptedResultSHA256: sha256.Sum256(enc),
		EncryptedResultSize:   int64(len(enc)),
		RowsKept:              3,
		RowsSuppressed:        1,
		Time:                  time.Now().UTC(),
		RunStartedIndex:       startedIndex,
		Recipients:            rcpts,
	}
	for _, ds := range c.Datasets {
		u := w.Uploads[ds.ID]
		st.Datasets = append(st.Datasets, bundle.Dataset{ID: ds.ID, CiphertextSHA256: u.SHA256, RowCount: u.Rows, UploadStatement: u.Signed})
	}
	if charge != nil {
		left := budget.Left(budget.Total(c.DifferentialPrivacy()), budget.Amount{Epsilon: charge.EpsilonSpent, Delta: charge.DeltaSpent})
		st.Privacy = &bundle.Privacy{Epsilon: charge.Epsilon, Delta: charge.Delta, EpsilonLeft: left.Epsilon, DeltaLeft: left.Delta}
	}
	if opts.EditStatement != nil {
		opts.EditStatement(st)
	}
	id := w.Coordinator.Identity()
	signed, err := st.Sign(id)
	if err != nil {
		return nil, err
	}
	finished := &events.Event{Type: events.TypeRunFinished, Contract: c.ID().String(), RunFinished: bundle.RunFinished(st, signed)}
	if opts.EditRunFinished != nil {
		opts.EditRunFinished(finished)
	}
	finishedIndex, finishedEntry, err := w.append(ctx, finished)
	if err != nil {
		return nil, err
	}
	sp, fp, err := bundle.ProveRun(ctx, w.Log, startedIndex, finishedIndex)
	if err != nil {
		return nil, err
	}
	parts := bundle.Parts{
		Statement: signed, Evidence: w.Coordinator.StaticEvidence(), CoordinatorKey: id.Public(),
		EncryptedResult: enc, RunStarted: startedEntry, RunFinished: finishedEntry,
		RunStartedProof: sp, RunFinishedProof: fp,
	}
	var b *bundle.Bundle
	if opts.Unchecked {
		b, err = unchecked(parts)
	} else {
		b, err = bundle.Assemble(parts, c)
	}
	if err != nil {
		return nil, err
	}
	return &Run{Bundle: b, Statement: st, Signed: signed, Plain: plain, RunID: runID}, nil
}

// unchecked builds a bundle from parts without verifying it.
func unchecked(p bundle.Parts) (*bundle.Bundle, error) {
	ev, err := p.Evidence.MarshalBinary()
	if err != nil {
		return nil, err
	}
	sp, err := p.RunStartedProof.MarshalBinary()
	if err != nil {
		return nil, err
	}
	fp, err := p.RunFinishedProof.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &bundle.Bundle{
		Statement: p.Statement, Evidence: ev, CoordinatorKey: p.CoordinatorKey.Bytes(), EncryptedResult: p.EncryptedResult,
		RunStarted:  bundle.LogEntry{Entry: p.RunStarted, Proof: sp},
		RunFinished: bundle.LogEntry{Entry: p.RunFinished, Proof: fp},
	}, nil
}

// WriteFiles writes, into dir, the contract (contract.yaml) and every
// participant's key (NAME.key, mode 0600, and NAME.pub), for CLI tests.
func (w *World) WriteFiles(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "contract.yaml"), w.ContractText, 0o644); err != nil {
		return err
	}
	for name, k := range w.Keys {
		secret, err := k.MarshalText()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".key"), secret, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".pub"), []byte(k.Public().String()+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}
