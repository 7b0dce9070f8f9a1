package contracts

import (
	"fmt"
	"strings"
)

// Warning is something a party should know before signing: not an error,
// but a weakness of the agreement.
type Warning struct {
	Field string
	Msg   string
}

func (w Warning) String() string { return w.Field + ": " + w.Msg }

// Warnings lists the weaknesses of a valid contract, most serious first.
func (c *Contract) Warnings() []Warning {
	var ws []Warning
	if c.Coordinator.Platform.Simulated() {
		ws = append(ws, Warning{"coordinator.platform",
			fmt.Sprintf("SIMULATED coordinator: its attestation is made with a throw-away fake %s root, so it protects NOTHING; the host can read every dataset and result. Use only for development, tests and demos.", c.Coordinator.Platform.Vendor())})
	}
	if c.Coordinator.AllowDebug {
		ws = append(ws, Warning{"coordinator.allow_debug",
			"a debug VM or enclave is accepted: the host can read and change its memory, including every dataset and key"})
	}
	if r := c.Coordinator.TDX; r != nil && r.AllowDebug {
		ws = append(ws, Warning{"coordinator.tdx.allow_debug",
			"a debug TD is accepted: the host can read and change a debug TD's memory, including every dataset and key"})
	}
	if r := c.Coordinator.TDX; r != nil && len(r.RTMR) == 0 {
		ws = append(ws, Warning{"coordinator.tdx.rtmr",
			"no RTMR values: any firmware, kernel and command line measured at run time is accepted"})
	}
	ws = append(ws, c.modeWarnings()...)
	for _, r := range c.Output.Recipients {
		var provides []string
		for _, ds := range c.Datasets {
			if ds.Provider == r {
				provides = append(provides, ds.ID)
			}
		}
		if len(provides) > 0 {
			ws = append(ws, Warning{"output.recipients",
				fmt.Sprintf("recipient %q also provides data (%s): by choosing its own input it can learn more about the other providers' rows than the aggregate suggests",
					r, strings.Join(provides, ", "))})
		}
	}
	if c.Algorithm.Confidential {
		ws = append(ws, Warning{"algorithm.confidential",
			fmt.Sprintf("the algorithm is confidential: only %q and the coordinator see its text; the others approve a commitment they cannot inspect, and rely on the output policy alone. "+
				"algorithm.sha256 must be the salted commitment made by cleanroom algorithm commit: a plain SHA-256 would let anyone holding the contract confirm a guess of the text, and the coordinator refuses it", c.Algorithm.Provider)})
	}
	for i, m := range c.Models {
		if m.Confidential {
			ws = append(ws, Warning{fmt.Sprintf("models[%d].confidential", i),
				fmt.Sprintf("model %s is confidential: only %q and the coordinator see its module; the others approve a salted commitment they cannot check against any module, and rely on the output policy alone", m.Name, m.Provider)})
		}
	}
	if c.Coordinator.Platform == PlatformSEVSNP && c.Coordinator.MinTCB == (TCB{}) {
		ws = append(ws, Warning{"coordinator.min_tcb",
			"no minimum TCB: firmware with known, fixed vulnerabilities is accepted"})
	}
	return ws
}

// protectedDatasets lists the ids of the datasets with a privacy unit.
func (c *Contract) protectedDatasets() []string {
	var out []string
	for _, ds := range c.Datasets {
		if ds.Protected() {
			out = append(out, ds.ID)
		}
	}
	return out
}

// modeWarnings are the weaknesses of the output mode.
func (c *Contract) modeWarnings() []Warning {
	o := c.Output
	protected := c.protectedDatasets()
	var ws []Warning
	switch o.Mode {
	case ModeCustom:
		inferred := ""
		if !o.modeGiven {
			inferred = " (the contract names group_size_column and no mode, which means mode custom; write mode: custom to say so)"
		}
		ws = append(ws, Warning{"output.mode",
			fmt.Sprintf("mode custom%s: k is checked on the query's own column %q, so it is as honest as the query — a query can put any number there, or release raw rows under a large constant; the engine counts nothing itself. Prefer mode aggregate with privacy units",
				inferred, o.GroupSizeColumn)})
		if len(protected) > 0 {
			ws = append(ws, Warning{"datasets.privacy_unit",
				"privacy units are declared but mode custom does not enforce them: the engine does not analyse the query nor count the persons behind each row"})
		}
	case ModeAggregate:
		if len(protected) == 0 {
			ws = append(ws, Warning{"output.mode",
				"mode aggregate, but no dataset has a privacy_unit: nothing is protected — results may describe groups as small as one individual, or be raw rows. Declare the privacy unit of every dataset about people"})
			break
		}
		var open []string
		for _, ds := range c.Datasets {
			if !ds.Protected() {
				open = append(open, ds.ID)
			}
		}
		if len(open) > 0 {
			ws = append(ws, Warning{"datasets.privacy_unit",
				fmt.Sprintf("%s %s no privacy_unit: nothing of %s is counted or protected; its rows can be read out through the result when the query does not join it to a protected dataset",
					strings.Join(open, ", "), map[bool]string{true: "has", false: "have"}[len(open) == 1], map[bool]string{true: "it", false: "them"}[len(open) == 1])})
		}
		if o.MinGroupSize < 10 {
			ws = append(ws, Warning{"output.min_group_size",
				fmt.Sprintf("k = %d: a released row may stand for as few as %d person(s) of a protected dataset", o.MinGroupSize, o.MinGroupSize)})
		}
		ws = append(ws, Warning{"output.mode",
			"mode aggregate bounds who is behind each released row, not what the row says of them: one person can still dominate a sum or an average, an aggregate can single out rows by a condition (CASE, arithmetic), and results of several runs, or of datasets that change, can be subtracted from each other. Where that matters, use mode differential_privacy"})
	}
	return ws
}

// Protection explains, in plain words, what the contract's output mode
// guarantees about what a result reveals.
func (c *Contract) Protection() []string {
	o := c.Output
	protected := c.protectedDatasets()
	switch o.Mode {
	case ModeAggregate:
		if len(protected) == 0 {
			return []string{"mode aggregate, with no privacy unit: the engine checks that the query is an analysable aggregation, but counts no one: nothing is protected."}
		}
		var units []string
		for _, ds := range c.Datasets {
			if ds.Protected() {
				units = append(units, ds.ID+"."+ds.PrivacyUnit)
			}
		}
		out := []string{
			fmt.Sprintf("mode aggregate: the coordinator analyses the query and itself counts, for every result row, the distinct persons (%s) of each protected dataset behind it; a row with fewer than %d of any is suppressed and counted.", strings.Join(units, ", "), o.MinGroupSize),
			"The query must be an aggregation; a privacy unit may be only a join key or inside COUNT(DISTINCT …); no result column may carry a privacy unit, a protected column that is neither a group key nor aggregated, or a nested value.",
		}
		for _, ds := range c.Datasets {
			if ds.Dimensions != nil {
				out = append(out, fmt.Sprintf("Group keys over %s derive only from its dimensions: %s.", ds.ID, strings.Join(ds.Dimensions, ", ")))
			}
			if ds.Aggregations != nil {
				var parts []string
				for _, a := range ds.Aggregations {
					parts = append(parts, a.Column+" by "+strings.Join(a.Functions, ", "))
				}
				out = append(out, fmt.Sprintf("Only these aggregations of %s are allowed: %s.", ds.ID, strings.Join(parts, "; ")))
			} else if ds.Protected() {
				out = append(out, fmt.Sprintf("Columns of %s may be aggregated by summaries (count, sum, avg, …), never by aggregates that return a member's value (min, max, median, …).", ds.ID))
			}
		}
		return out
	case ModeCustom:
		return []string{fmt.Sprintf("mode custom: rows whose column %q is below %d are suppressed; the query computes that column itself, and the engine trusts it.", o.GroupSizeColumn, o.MinGroupSize)}
	case ModeDifferentialPrivacy:
		return []string{"mode differential_privacy: each person's contribution is bounded and calibrated noise is added; every run spends part of the contract's privacy budget."}
	}
	return nil
}

// Template is the commented contract that `cleanroom contract init` prints.
const Template = `# Cleanroom contract (version 1). Every participant signs the contract id
# (cleanroom contract hash) and the coordinator accepts the contract only when
# all have signed and it has not expired. Reformatting this file, reordering
# keys or editing comments does not change the id; changing any value does.
version: 1
name: my-clean-room                      # 1-200 printable characters
expires_at: 2027-03-31T00:00:00Z          # RFC 3339; nothing can happen after it

participants:                            # each: one key made with cleanroom keygen
  - id: publisher                        # [a-z][a-z0-9-]{0,62}
    roles: [data_provider]               # data_provider, algorithm_provider,
    public_key: "<the line from publisher.pub>"  #  result_recipient, auditor
  - id: advertiser
    roles: [data_provider, result_recipient]
    public_key: "<the line from advertiser.pub>"
  - id: measurer
    roles: [algorithm_provider]
    public_key: "<the line from measurer.pub>"
  - id: auditor
    roles: [auditor]
    public_key: "<the line from auditor.pub>"

datasets:
  - id: impressions                      # also its SQL table name: [a-z][a-z0-9_]{0,62}
    provider: publisher                  # must have role data_provider
    privacy_unit: user_id                # the column that identifies a person: the dataset is protected
    # dimensions: [campaign]             # optional: the only columns group keys may derive from
    # aggregations: {shown_at: [min, max]}  # optional: the only aggregations allowed, by column
    columns:                             # bool int32 int64 float64 string date timestamp decimal(p,s)
      - {name: user_id, type: string}
      - {name: campaign, type: string}
      - {name: shown_at, type: timestamp}
  - id: conversions
    provider: advertiser
    privacy_unit: user_id
    columns:
      - {name: user_id, type: string}
      - {name: value, type: float64}

algorithm:
  provider: measurer                     # must have role algorithm_provider
  language: duckdb-sql                   # exactly one SELECT statement
  sha256: "<hex SHA-256 of the exact query bytes: sha256sum query.sql>"
  confidential: false                    # true: only the provider and the coordinator see the text,
                                         #   and sha256 is the salted commitment printed by
                                         #   cleanroom algorithm commit query.sql --salt query.salt
  # parameters:                          # optional: values chosen at each run (cleanroom run --param),
  #   - {name: since, type: date, min: 2026-01-01, max: 2026-12-31}   # read by the SQL as $since,
  #   - {name: campaign, type: string, allowed: [spring, summer]}     #   bound, never spliced into it

# models:                               # optional: WebAssembly scalar functions the SQL may call
#   - name: score                        # the SQL function name: [a-z][a-z0-9_]{0,62}
#     provider: measurer                 # must have role algorithm_provider
#     sha256: "<cleanroom model commit score.wasm (confidential) or sha256sum score.wasm>"
#     confidential: true                 # true: only the provider and the coordinator see the module
#     args: [float64, int64]             # column types, no decimal
#     result: float64

output:
  recipients: [advertiser]               # each must have role result_recipient
  mode: aggregate                        # aggregate (the default): the coordinator counts the persons
                                         #   behind each row itself; custom: it trusts the query's
                                         #   group_size_column (not with a confidential algorithm)
  min_group_size: 50                     # k: rows with fewer distinct persons of any protected
                                         #   dataset are suppressed (and counted)
  max_rows: 10000                        # a larger result is refused, not truncated
  max_runs: 5                            # counted in the audit log: a restart does not reset it

coordinator:
  platform: sev-snp                      # sev-snp | tdx | nitro | cca, or NAME-simulated (development only: protects nothing)
  measurements: ["<hex SHA-384 launch measurement, 96 digits>"]
  allow_debug: false
  min_tcb: {bootloader: 0, tee: 0, snp: 0, microcode: 0}
  simulated_root_sha256: ""              # only with a simulated platform (from cleanroomd identity)
  # Other platforms replace measurements, allow_debug and min_tcb with their own
  # reference values (docs/contract.md):
  # tdx:   {mrtd: ["<96 hex>"], rtmr: [["<rtmr0>", "<rtmr1>", "<rtmr2>", "<rtmr3>"]], min_tee_tcb_svn: "<32 hex>", allow_debug: false}
  # nitro: {pcr0: ["<96 hex>"], pcr1: [], pcr2: []}
  # cca:   {rim: ["<hex>"], platform_refs: {iak_sha256: ["<64 hex>"], implementation_ids: [], sw_measurements: []}}

# supersedes: "<64-hex id of the contract this one amends>"   # optional: every participant of
#                                        # both contracts signs; runs used there count here
`
