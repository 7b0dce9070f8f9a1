package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/contracts"
)

// The JSON documents of --json, one per command (docs/cli.md, "JSON
// output"). Field names are snake_case; digests are lowercase hex; times
// RFC 3339 in UTC. A field is added, never renamed or removed, within a
// major version of the CLI.

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// plural writes n and the word, with an s unless n is 1.
func plural[N int | int64 | uint64](n N, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

type contractDoc struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	ExpiresAt    string            `json:"expires_at"`
	Expired      bool              `json:"expired"`
	Participants []participantDoc  `json:"participants"`
	Datasets     []datasetDoc      `json:"datasets"`
	Algorithm    algorithmDoc      `json:"algorithm"`
	Models       []modelDoc        `json:"models,omitempty"`
	Output       outputDoc         `json:"output"`
	Coordinator  coordinatorPolDoc `json:"coordinator"`
	Warnings     []warningDoc      `json:"warnings"`
}

type participantDoc struct {
	ID          string   `json:"id"`
	Roles       []string `json:"roles"`
	Fingerprint string   `json:"key_fingerprint"`
}

type datasetDoc struct {
	ID       string      `json:"id"`
	Provider string      `json:"provider"`
	Columns  []columnDoc `json:"columns"`
}

type columnDoc struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}

type algorithmDoc struct {
	Provider     string `json:"provider"`
	Language     string `json:"language"`
	SHA256       string `json:"sha256"`
	Confidential bool   `json:"confidential"`
}

type modelDoc struct {
	Name         string   `json:"name"`
	Provider     string   `json:"provider"`
	SHA256       string   `json:"sha256"`
	Confidential bool     `json:"confidential"`
	Args         []string `json:"args"`
	Result       string   `json:"result"`
}

type outputDoc struct {
	Recipients      []string `json:"recipients"`
	GroupSizeColumn string   `json:"group_size_column,omitempty"`
	MinGroupSize    int64    `json:"min_group_size"`
	MaxRows         int64    `json:"max_rows"`
	MaxRuns         int64    `json:"max_runs"`
}

type coordinatorPolDoc struct {
	Platform            string   `json:"platform"`
	Simulated           bool     `json:"simulated"`
	Measurements        []string `json:"measurements,omitempty"`
	AllowDebug          bool     `json:"allow_debug"`
	SimulatedRootSHA256 string   `json:"simulated_root_sha256,omitempty"`
}

type warningDoc struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	// Risk marks a term that changes what a party risks by signing; the
	// other warnings are about the platform (a simulated coordinator).
	Risk bool `json:"risk"`
}

func contractJSON(ct *contracts.Contract) contractDoc {
	d := contractDoc{
		ID: ct.ID().String(), Name: ct.Name, ExpiresAt: ct.ExpiresAt.UTC().Format(time.RFC3339), Expired: ct.Expired(time.Now()),
		Algorithm: algorithmDoc{Provider: ct.Algorithm.Provider, Language: ct.Algorithm.Language,
			SHA256: hex.EncodeToString(ct.Algorithm.SHA256[:]), Confidential: ct.Algorithm.Confidential},
		Output: outputDoc{Recipients: ct.Output.Recipients, GroupSizeColumn: ct.Output.GroupSizeColumn,
			MinGroupSize: ct.Output.MinGroupSize, MaxRows: ct.Output.MaxRows, MaxRuns: ct.Output.MaxRuns},
		Participants: []participantDoc{}, Datasets: []datasetDoc{}, Warnings: []warningDoc{},
	}
	for _, p := range ct.Participants {
		pd := participantDoc{ID: p.ID, Fingerprint: p.PublicKey.Fingerprint().String()}
		for _, r := range p.Roles {
			pd.Roles = append(pd.Roles, string(r))
		}
		d.Participants = append(d.Participants, pd)
	}
	for _, ds := range ct.Datasets {
		dd := datasetDoc{ID: ds.ID, Provider: ds.Provider, Columns: []columnDoc{}}
		for _, col := range ds.Columns {
			dd.Columns = append(dd.Columns, columnDoc{Name: col.Name, Type: col.Type.String(), Nullable: !col.NotNull})
		}
		d.Datasets = append(d.Datasets, dd)
	}
	for _, m := range ct.Models {
		md := modelDoc{Name: m.Name, Provider: m.Provider, SHA256: hex.EncodeToString(m.SHA256[:]), Confidential: m.Confidential, Result: m.Result.String()}
		for _, a := range m.Args {
			md.Args = append(md.Args, a.String())
		}
		d.Models = append(d.Models, md)
	}
	cp := ct.Coordinator
	d.Coordinator = coordinatorPolDoc{Platform: string(cp.Platform), Simulated: cp.Platform.Simulated(), AllowDebug: cp.AllowDebug}
	for _, m := range cp.Measurements {
		d.Coordinator.Measurements = append(d.Coordinator.Measurements, hex.EncodeToString(m[:]))
	}
	if cp.SimulatedRootSHA256 != nil {
		d.Coordinator.SimulatedRootSHA256 = hex.EncodeToString(cp.SimulatedRootSHA256[:])
	}
	for _, w := range ct.Warnings() {
		d.Warnings = append(d.Warnings, warningDoc{Field: w.Field, Message: w.Msg, Risk: w.Field != "coordinator.platform"})
	}
	return d
}

type signaturesDoc struct {
	ContractID   string         `json:"contract_id"`
	Complete     bool           `json:"complete"`
	Participants []signatureDoc `json:"participants"`
	Problems     []string       `json:"problems"`
}

type signatureDoc struct {
	ID          string `json:"id"`
	Fingerprint string `json:"key_fingerprint"`
	Signed      bool   `json:"signed"`
}

func signaturesJSON(ct *contracts.Contract, a *contracts.Approvals) signaturesDoc {
	d := signaturesDoc{ContractID: ct.ID().String(), Complete: a.Complete(), Problems: []string{}}
	for _, p := range ct.Participants {
		_, ok := a.Valid[p.ID]
		d.Participants = append(d.Participants, signatureDoc{ID: p.ID, Fingerprint: p.PublicKey.Fingerprint().String(), Signed: ok})
	}
	for _, p := range a.Problems {
		d.Problems = append(d.Problems, p.Error())
	}
	return d
}

// verificationDoc is result verify's --json: every step, and what the
// bundle proves once all passed.
type verificationDoc struct {
	File     string    `json:"file"`
	Verified bool      `json:"verified"`
	Steps    []stepDoc `json:"steps"`
	Error    string    `json:"error,omitempty"`
	// Set when every step passed.
	ContractID       string `json:"contract_id,omitempty"`
	RunID            string `json:"run_id,omitempty"`
	RunNumber        int64  `json:"run_number,omitempty"`
	Platform         string `json:"platform,omitempty"`
	RowsKept         int64  `json:"rows_kept"`
	RowsSuppressed   int64  `json:"rows_suppressed"`
	ResultCommitment string `json:"result_commitment,omitempty"`
	SignedAt         string `json:"signed_at,omitempty"`
	RunStartedIndex  uint64 `json:"run_started_index,omitempty"`
	RunFinishedIndex uint64 `json:"run_finished_index,omitempty"`
}

type stepDoc struct {
	Step   string `json:"step"`
	Status string `json:"status"` // passed, failed, not checked
	Detail string `json:"detail,omitempty"`
}

func verificationJSON(path string, r *bundle.Report, decrypt bool, err error) verificationDoc {
	d := verificationDoc{File: path, Steps: []stepDoc{}}
	done := map[bundle.Step]bool{}
	if r != nil {
		for _, s := range r.Steps {
			st := "passed"
			if !s.OK {
				st = "failed"
			}
			d.Steps = append(d.Steps, stepDoc{Step: string(s.Step), Status: st, Detail: s.Detail})
			done[s.Step] = true
		}
	}
	for _, s := range bundle.Steps {
		if done[s] || (s == bundle.StepDecryption && !decrypt) {
			continue
		}
		d.Steps = append(d.Steps, stepDoc{Step: string(s), Status: "not checked"})
	}
	if err != nil {
		d.Error = err.Error()
		return d
	}
	s := r.Statement
	d.Verified = true
	d.ContractID, d.RunID, d.RunNumber = hex.EncodeToString(s.ContractID[:]), s.RunID, s.RunNumber
	d.Platform = string(r.Claims.Platform)
	d.RowsKept, d.RowsSuppressed = s.RowsKept, s.RowsSuppressed
	d.ResultCommitment = hex.EncodeToString(s.ResultCommitment[:])
	d.SignedAt = s.Time.UTC().Format(time.RFC3339Nano)
	d.RunStartedIndex, d.RunFinishedIndex = r.RunStartedIndex, r.RunFinishedIndex
	return d
}

// claimsDoc is coordinator info's --json.
type claimsDoc struct {
	Coordinator         string `json:"coordinator"`
	Platform            string `json:"platform"`
	Simulated           bool   `json:"simulated"`
	PublicKey           string `json:"public_key_fingerprint,omitempty"`
	Measurement         string `json:"measurement"`
	Debug               bool   `json:"debug"`
	ReportData          string `json:"report_data,omitempty"`
	SimulatedRootSHA256 string `json:"simulated_root_sha256,omitempty"`
	// Contract is the contract the evidence was checked against; empty
	// when only authenticity was checked.
	Contract string `json:"verified_against_contract,omitempty"`
	// SNP fields, on SEV-SNP.
	TCB     string `json:"tcb,omitempty"`
	Policy  string `json:"policy,omitempty"`
	VMPL    *int   `json:"vmpl,omitempty"`
	Product string `json:"product,omitempty"`
}

func claimsJSON(url string, c *attest.Claims, doc *attest.IdentityDocument, contractID string) claimsDoc {
	d := claimsDoc{Coordinator: url, Platform: string(c.Platform), Simulated: c.Platform.Simulated(),
		Measurement: hex.EncodeToString(c.Measurement[:]), Debug: c.Debug, Contract: contractID}
	if doc != nil {
		d.PublicKey = doc.PublicKeys[0].Fingerprint().String()
	}
	if c.Nitro == nil {
		d.ReportData = hex.EncodeToString(c.ReportData[:])
	}
	if r := c.SimulatedRoot(); r != nil {
		d.SimulatedRootSHA256 = hex.EncodeToString(r[:])
	}
	if s := c.SNP; s != nil {
		vmpl := int(s.VMPL)
		d.TCB, d.Policy, d.VMPL, d.Product = s.ReportedTCB.String(), fmt.Sprintf("%#016x", s.Policy), &vmpl, s.Product
	}
	return d
}
