package bundletest

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
)

// Coordinator is a coordinator's key pair with the evidence that binds it,
// from a fresh simulated SEV-SNP platform: what the coordinator's
// simulated mode holds, without its data directory.
type Coordinator struct {
	id          *cleanroom.Identity
	evidence    attest.Evidence
	measurement [48]byte
	root        [32]byte
}

// NewCoordinator makes a coordinator on a fresh simulated platform (its own
// fake AMD root) whose MEASUREMENT is the SHA-384 of "bundletest".
func NewCoordinator() (*Coordinator, error) {
	p, err := simulated.New()
	if err != nil {
		return nil, err
	}
	id, err := cleanroom.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	rd, err := attest.ReportData([]*cleanroom.PublicKey{id.Public()}, nil)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{id: id, measurement: sha512.Sum384([]byte("bundletest"))}
	if c.evidence, err = p.Attest(simulated.Request{Measurement: c.measurement, ReportData: rd}); err != nil {
		return nil, err
	}
	doc, err := attest.NewIdentityDocument(id.Public(), c.evidence)
	if err != nil {
		return nil, err
	}
	if doc.SimulatedRootSHA256 == nil {
		return nil, fmt.Errorf("bundletest: the simulated evidence names no root")
	}
	c.root = *doc.SimulatedRootSHA256
	return c, nil
}

// Identity returns the coordinator's key pair.
func (c *Coordinator) Identity() *cleanroom.Identity { return c.id }

// PublicKey returns the coordinator's public key, which the evidence binds.
func (c *Coordinator) PublicKey() *cleanroom.PublicKey { return c.id.Public() }

// StaticEvidence returns the evidence binding the key without a nonce.
func (c *Coordinator) StaticEvidence() attest.Evidence { return c.evidence }

// Measurement returns the MEASUREMENT the evidence reports.
func (c *Coordinator) Measurement() [48]byte { return c.measurement }

// SimulatedRootSHA256 returns the pin of the simulated platform's root.
func (c *Coordinator) SimulatedRootSHA256() *[32]byte { r := c.root; return &r }

// Log is a world's audit log: an RFC 6962 Merkle tree of the appended
// entries, kept in memory, whose checkpoints (docs/log.md §2) are signed
// with the coordinator key. It gives bundle.ProveRun what the
// coordinator's log gives it.
type Log struct {
	mu       sync.Mutex
	tree     *testonly.Tree
	signer   note.Signer
	origin   string
	verifier *tlog.Verifier
	entries  [][]byte
}

// NewLog returns an empty log whose checkpoints id signs.
func NewLog(id *cleanroom.Identity) (*Log, error) {
	origin := tlog.Origin(id.Public())
	v, err := tlog.NewCoordinatorVerifier(id.Public())
	if err != nil {
		return nil, err
	}
	nv, err := note.NewVerifier(v.NoteVerifierKey())
	if err != nil {
		return nil, err
	}
	return &Log{tree: testonly.New(rfc6962.DefaultHasher), origin: origin, verifier: v,
		signer: noteSigner{name: origin, hash: nv.KeyHash(), id: id}}, nil
}

// Append adds an entry and returns its index.
func (l *Log) Append(_ context.Context, entry []byte) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tree.AppendData(entry)
	l.entries = append(l.entries, entry)
	return l.tree.Size() - 1, nil
}

// Entries returns every entry appended so far, in log order.
func (l *Log) Entries() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

// WaitCheckpoint signs and returns a checkpoint of the whole tree, which
// must hold at least size entries.
func (l *Log) WaitCheckpoint(_ context.Context, size uint64) (*tlog.Checkpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tree.Size() < size {
		return nil, fmt.Errorf("bundletest: the log has %d entries, not %d", l.tree.Size(), size)
	}
	text := fmt.Sprintf("%s\n%d\n%s\n", l.origin, l.tree.Size(), b64(l.tree.Hash()))
	signed, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		return nil, err
	}
	return l.verifier.VerifyCheckpoint(signed)
}

// InclusionProof returns the audit path of entry index in the tree of the
// first size entries.
func (l *Log) InclusionProof(_ context.Context, index, size uint64) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tree.InclusionProof(index, size)
}

// noteSigner signs checkpoints with the coordinator's key.
type noteSigner struct {
	name string
	hash uint32
	id   *cleanroom.Identity
}

func (s noteSigner) Name() string                    { return s.name }
func (s noteSigner) KeyHash() uint32                 { return s.hash }
func (s noteSigner) Sign(msg []byte) ([]byte, error) { return s.id.Sign(msg), nil }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
