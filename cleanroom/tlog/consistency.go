package tlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
)

// ErrInconsistent reports that a log is not an extension of a checkpoint
// kept from an earlier visit: it was rolled back or forked. Errors that wrap
// it are *ConsistencyError values carrying the evidence.
var ErrInconsistent = errors.New("log is not an extension of the kept checkpoint")

// InconsistencyKind says how a log failed to extend a kept checkpoint.
type InconsistencyKind string

const (
	// Rollback: the new checkpoint has fewer entries than the kept one.
	Rollback InconsistencyKind = "rollback"
	// Fork: the two checkpoints have the same size and different roots, or
	// the log served a consistency proof that does not verify: the new tree
	// does not contain the old one.
	Fork InconsistencyKind = "fork"
)

// ConsistencyError is the evidence that a log was rolled back or forked: two
// checkpoints signed by the same key that cannot both be true, and the proof
// the log served (nil when the checkpoints alone prove it). Save Old.Bytes(),
// New.Bytes() and Proof: anyone holding the log's public key can check them.
type ConsistencyError struct {
	Kind   InconsistencyKind
	Old    *Checkpoint
	New    *Checkpoint
	Proof  [][]byte
	Reason string
}

func (e *ConsistencyError) Error() string {
	return fmt.Sprintf("%v: %s: kept checkpoint (%v), new checkpoint (%v): %s", ErrInconsistent, e.Kind, e.Old, e.New, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInconsistent) true.
func (e *ConsistencyError) Unwrap() error { return ErrInconsistent }

// CheckConsistency proves that newCP's tree extends oldCP's: it fetches a
// consistency proof built from the log's hash tiles and verifies it against
// the two signed roots. It returns the proof it verified (empty when the
// sizes are equal or oldCP is empty).
//
// A rollback or fork is reported as a *ConsistencyError (wrapping
// ErrInconsistent). A tile that is missing or malformed, so that no proof can
// be built, is a *ContentError (wrapping ErrBadLog); other Fetcher errors are
// returned wrapped. Both checkpoints must come from the same Verifier.
func CheckConsistency(ctx context.Context, f Fetcher, oldCP, newCP *Checkpoint) ([][]byte, error) {
	if err := oldCP.check(); err != nil {
		return nil, fmt.Errorf("kept checkpoint: %w", err)
	}
	if err := newCP.check(); err != nil {
		return nil, fmt.Errorf("new checkpoint: %w", err)
	}
	if oldCP.origin != newCP.origin {
		return nil, fmt.Errorf("%w: kept checkpoint is for log %q, new one for %q: these are different logs", ErrBadCheckpoint, oldCP.origin, newCP.origin)
	}
	switch {
	case newCP.size < oldCP.size:
		return nil, &ConsistencyError{Kind: Rollback, Old: oldCP, New: newCP,
			Reason: fmt.Sprintf("the log now has %d entries, fewer than the %d it had signed before", newCP.size, oldCP.size)}
	case newCP.size == oldCP.size:
		if newCP.root != oldCP.root {
			return nil, &ConsistencyError{Kind: Fork, Old: oldCP, New: newCP,
				Reason: fmt.Sprintf("both checkpoints are for %d entries but their roots differ", newCP.size)}
		}
		return [][]byte{}, nil
	case oldCP.size == 0:
		return [][]byte{}, nil
	}
	tf, lastErr := tileFetcher(f)
	pb, err := client.NewProofBuilder(ctx, newCP.size, tf)
	if err != nil {
		return nil, err
	}
	p, err := pb.ConsistencyProof(ctx, oldCP.size, newCP.size)
	if err != nil {
		return nil, proofBuildErr(ctx, err, *lastErr)
	}
	if err := VerifyConsistencyProof(oldCP, newCP, p); err != nil {
		return nil, &ConsistencyError{Kind: Fork, Old: oldCP, New: newCP, Proof: p,
			Reason: "the log's consistency proof does not verify: " + err.Error()}
	}
	return p, nil
}

// VerifyConsistencyProof checks a consistency proof (RFC 6962 §2.1.2, as a
// list of 32-byte hashes) between two verified checkpoints, oldCP no larger
// than newCP. It does no I/O.
func VerifyConsistencyProof(oldCP, newCP *Checkpoint, p [][]byte) error {
	if err := oldCP.check(); err != nil {
		return err
	}
	if err := newCP.check(); err != nil {
		return err
	}
	for i, h := range p {
		if len(h) != HashSize {
			return fmt.Errorf("proof hash %d has %d bytes, want %d", i, len(h), HashSize)
		}
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, oldCP.size, newCP.size, p, oldCP.root[:], newCP.root[:])
}

// tileFetcher adapts a Fetcher to tessera's proof builder: partial tiles fall
// back to full ones, and a missing tile is a ContentError. The proof builder
// flattens errors into text, so the last fetch error is kept aside.
func tileFetcher(f Fetcher) (client.TileFetcherFunc, *error) {
	var last error
	return func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		if level > MaxTileLevel {
			last = fmt.Errorf("tile level %d out of range", level)
			return nil, last
		}
		path, data, err := fetchPartialOrFull(ctx, f, Resource{Kind: KindHashTile, Level: uint8(level), Index: index, Width: p})
		if err == nil && len(data)%HashSize != 0 {
			err = &ContentError{Path: path, Index: -1, Reason: fmt.Sprintf("%d bytes is not a whole number of hashes", len(data))}
		}
		if err != nil {
			last = err
		}
		return data, err
	}, &last
}

// proofBuildErr returns the error behind a failure to build a proof: the
// fetch error if there was one, else the tiles were unusable.
func proofBuildErr(ctx context.Context, err, fetchErr error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if fetchErr != nil {
		return fetchErr
	}
	return &ContentError{Path: "tile", Index: -1, Reason: "the hash tiles cannot make a proof: " + err.Error()}
}
