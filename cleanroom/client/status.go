package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/api"
)

// Progress is where a contract stands at the coordinator, as a participant
// sees it (cleanroom status): what is registered, uploaded and submitted,
// what a run still waits for, and how many runs are left.
type Progress struct {
	// Registered reports whether the coordinator has the contract; when
	// false, the fields below are empty but Missing.
	Registered bool `json:"registered"`
	// The coordinator's answer (docs/api.md, GET /v1/contracts/{cid}).
	*api.ContractStatus
	// RunsLeft is max_runs less the runs started.
	RunsLeft int64 `json:"runs_left"`
	// Ready reports whether a run may start now: registered, not expired,
	// every dataset, the algorithm and every model in, runs left, nothing
	// damaged.
	Ready bool `json:"ready"`
	// Missing lists, for people, what a run still waits for and who must
	// provide it, in the order the contract names them.
	Missing []string `json:"missing"`
	// BudgetLeft is the privacy budget (epsilon) a contract in mode
	// differential_privacy has left, once the coordinator reports it;
	// null otherwise, and always for the other modes, which spend none.
	BudgetLeft *float64 `json:"budget_left"`
	// Suspended reports a contract a data provider suspended (no run starts
	// until every participant approves its resumption), with who, why and
	// the suspension's log index in Suspension (SPEC §13). It shadows the
	// coordinator's structured answer, which stays in
	// ContractStatus.Suspended.
	Suspended  bool   `json:"suspended"`
	Suspension string `json:"suspension,omitempty"`
}

// Progress asks the coordinator where the client's contract stands and
// says what a run still waits for. A contract the coordinator does not
// have is not an error: Registered is false.
func (c *Client) Progress(ctx context.Context) (*Progress, error) {
	if c.opts.Contract == nil {
		return nil, errors.New("a contract's progress needs the contract")
	}
	ct := c.opts.Contract
	st, err := c.Status(ctx)
	var apiErr *api.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		return &Progress{Missing: []string{"the contract: register it (cleanroom contract submit)"}}, nil
	}
	if err != nil {
		return nil, err
	}
	if st.ContractID != ct.ID().String() {
		return nil, fmt.Errorf("the coordinator answered for contract %s, not %s", st.ContractID, ct.ID())
	}
	p := &Progress{Registered: true, ContractStatus: st, RunsLeft: max(st.MaxRuns-st.RunsUsed, 0), Missing: []string{}}
	for _, d := range st.Datasets {
		switch {
		case !d.Uploaded:
			p.Missing = append(p.Missing, fmt.Sprintf("dataset %s from %s (cleanroom dataset upload)", d.ID, d.Provider))
		case d.Damaged != "":
			p.Missing = append(p.Missing, fmt.Sprintf("dataset %s is damaged at the coordinator (%s): its operator must restore it", d.ID, d.Damaged))
		}
	}
	if !st.Algorithm.Submitted {
		p.Missing = append(p.Missing, fmt.Sprintf("the algorithm from %s (cleanroom algorithm submit)", ct.Algorithm.Provider))
	}
	for _, m := range st.Models {
		if !m.Submitted {
			p.Missing = append(p.Missing, fmt.Sprintf("model %s from %s (cleanroom model submit)", m.Name, m.Provider))
		}
	}
	if p.RunsLeft == 0 {
		p.Missing = append(p.Missing, fmt.Sprintf("runs: all %d allowed runs were started", st.MaxRuns))
	}
	if s := st.Suspended; s != nil {
		p.Suspended = true
		p.Suspension = fmt.Sprintf("by %s at log index %d: %s", s.By, s.LogIndex, s.Reason)
		p.Missing = append(p.Missing, "resumption: the contract is suspended "+p.Suspension+
			"; every participant must approve (cleanroom contract resume)")
	}
	if st.SupersededBy != "" {
		p.Missing = append(p.Missing, "nothing: the contract was amended by "+st.SupersededBy+" and runs no more")
	}
	if ct.Expired(time.Now()) {
		p.Missing = append(p.Missing, "time: the contract expired at "+st.ExpiresAt)
	}
	p.Ready = len(p.Missing) == 0
	return p, nil
}
