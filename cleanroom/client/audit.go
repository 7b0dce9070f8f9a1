package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
)

// MaxLogResource bounds one checkpoint or tile.
const MaxLogResource = 1 << 24

// AuditLog verifies the coordinator's audit log for the client's contract,
// as one of its auditors (cleanroom audit log, docs/audit.md): it attests
// the coordinator afresh, then audit.Run checks the signed checkpoint, its
// consistency with the one kept in st, the whole tree through the
// contract's view, every event of the contract and the timeline, and keeps
// the new checkpoint in st only when all of it holds; it first asks the
// contract's status for its latest event and waits (up to
// audit.DefaultEvidenceWait) for a checkpoint covering it, so that an
// audit right after a run verifies that run. contractText is the
// contract file the auditor holds (optional), to tell whether the
// coordinator registered the very same text. The report comes back also
// when the audit fails (see audit.Run).
func (c *Client) AuditLog(ctx context.Context, contractText []byte, st *audit.State) (*audit.Report, error) {
	if c.opts.Contract == nil {
		return nil, errors.New("auditing needs the contract")
	}
	if _, err := c.Attest(ctx); err != nil {
		return nil, err
	}
	coord, err := c.AttestedCoordinator(ctx)
	if err != nil {
		return nil, err
	}
	// The contract's latest event: the audit waits for a checkpoint that
	// covers it, so that an audit right after a run verifies the run.
	var minSize uint64
	if status, err := c.Status(ctx); err == nil && status.LastLogIndex > 0 {
		minSize = status.LastLogIndex + 1
	}
	return audit.Run(ctx, audit.Config{
		Contract: c.opts.Contract, ContractText: contractText, Coordinator: coord, URL: c.base.String(),
		Fetcher: c.LogFetcher(), MinSize: minSize,
	}, st)
}

// AttestedCoordinator returns the coordinator this client is connected
// to as an auditor holds it: its attested key and evidence, checked by
// audit.AttestedCoordinator, for verifying its log.
func (c *Client) AttestedCoordinator(ctx context.Context) (*audit.Coordinator, error) {
	peer, err := c.Coordinator(ctx)
	if err != nil {
		return nil, err
	}
	return audit.AttestedCoordinator(peer)
}

// LogFetcher returns a tlog.Fetcher reading the client's contract's view of
// the audit log (docs/log.md §7: every other contract's events redacted,
// and the signed view head) over this client's attested connection. The
// caller must be an auditor of the contract.
func (c *Client) LogFetcher() tlog.Fetcher {
	return func(ctx context.Context, path string) ([]byte, error) {
		cid, err := c.contractID()
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/v1/contracts/"+cid+"/log/"+strings.TrimPrefix(path, "/"), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			if ce := c.connectionError(err); ce != err {
				return nil, ce
			}
			return nil, fmt.Errorf("fetching %s: %w", path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetching %s: %w", path, decodeError(resp))
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, MaxLogResource+1))
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", path, err)
		}
		if len(data) > MaxLogResource {
			return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxLogResource)
		}
		return data, nil
	}
}
