package bundle

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/contracts"
)

// RunFinished returns the body of the run.finished event that records a
// signed result statement: the run id, result commitment, encrypted
// result digest and size, and row counts it names, and the signed bytes
// themselves. The coordinator appends this body; Verify requires exactly
// it.
func RunFinished(s *Statement, signed []byte) *events.RunFinished {
	return &events.RunFinished{
		RunID:            s.RunID,
		ResultCommitment: hex.EncodeToString(s.ResultCommitment[:]),
		EncryptedResult:  events.Blob{SHA256: hex.EncodeToString(s.EncryptedResultSHA256[:]), Size: s.EncryptedResultSize},
		RowsKept:         s.RowsKept,
		RowsSuppressed:   s.RowsSuppressed,
		Statement:        signed,
	}
}

// Prover is what ProveRun needs from the coordinator's audit log;
// coordinator/eventlog's *Log provides it.
type Prover interface {
	// WaitCheckpoint waits for a published checkpoint covering the first
	// size entries.
	WaitCheckpoint(ctx context.Context, size uint64) (*tlog.Checkpoint, error)
	// InclusionProof returns the audit path of entry index in the tree of
	// the first size entries.
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
}

// ProveRun waits for a signed checkpoint covering the run.finished entry
// at index finished and returns the inclusion proofs of the run.started
// entry (index started) and of the run.finished entry, both under that one
// checkpoint, as a bundle needs them.
func ProveRun(ctx context.Context, log Prover, started, finished uint64) (startedProof, finishedProof *tlog.InclusionProof, err error) {
	if finished <= started {
		return nil, nil, fmt.Errorf("bundle: run.finished index %d is not after run.started index %d", finished, started)
	}
	cp, err := log.WaitCheckpoint(ctx, finished+1)
	if err != nil {
		return nil, nil, err
	}
	proofs := make([]*tlog.InclusionProof, 2)
	for i, index := range []uint64{started, finished} {
		path, err := log.InclusionProof(ctx, index, cp.Size())
		if err != nil {
			return nil, nil, err
		}
		p := &tlog.InclusionProof{Checkpoint: cp.Bytes(), Index: index, Hashes: make([][tlog.HashSize]byte, len(path))}
		for j, h := range path {
			if len(h) != tlog.HashSize {
				return nil, nil, fmt.Errorf("bundle: audit path hash %d of entry %d has %d bytes", j, index, len(h))
			}
			copy(p.Hashes[j][:], h)
		}
		proofs[i] = p
	}
	return proofs[0], proofs[1], nil
}

// Parts are the pieces the coordinator assembles into a bundle.
type Parts struct {
	// Statement is the signed result statement (Statement.Sign).
	Statement []byte
	// Evidence is the coordinator's evidence binding CoordinatorKey (with
	// no nonce): the evidence of its TLS certificate.
	Evidence       attest.Evidence
	CoordinatorKey *cleanroom.PublicKey
	// EncryptedResult is the result envelope (EncryptResult).
	EncryptedResult []byte
	// RunStarted and RunFinished are the two log entries as appended, and
	// their proofs (ProveRun).
	RunStarted, RunFinished           []byte
	RunStartedProof, RunFinishedProof *tlog.InclusionProof
}

// Assemble builds the bundle of a finished run from its parts and verifies
// it against the contract with Verify, so a coordinator never serves a
// bundle that a recipient would refuse. It returns the bundle only if
// every step passes; otherwise the *VerifyError says which part is wrong.
func Assemble(p Parts, c *contracts.Contract) (*Bundle, error) {
	if p.Evidence == nil || p.CoordinatorKey == nil || p.RunStartedProof == nil || p.RunFinishedProof == nil {
		return nil, errors.New("bundle: Assemble needs the evidence, the coordinator key and both proofs")
	}
	ev, err := p.Evidence.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding the evidence: %w", err)
	}
	started, err := p.RunStartedProof.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding the run.started proof: %w", err)
	}
	finished, err := p.RunFinishedProof.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding the run.finished proof: %w", err)
	}
	b := &Bundle{
		Statement:       p.Statement,
		Evidence:        ev,
		CoordinatorKey:  p.CoordinatorKey.Bytes(),
		EncryptedResult: p.EncryptedResult,
		RunStarted:      LogEntry{Entry: p.RunStarted, Proof: started},
		RunFinished:     LogEntry{Entry: p.RunFinished, Proof: finished},
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	if _, err := Verify(b, c, VerifyOptions{}); err != nil {
		return nil, fmt.Errorf("bundle: the assembled bundle does not verify: %w", err)
	}
	return b, nil
}
