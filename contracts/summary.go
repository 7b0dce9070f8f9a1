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
	if dp := c.DifferentialPrivacy(); dp != nil {
		ws = append(ws, dp.warnings()...)
	}
	if c.Output.MinGroupSize == 0 {
		ws = append(ws, Warning{"output.min_group_size",
			"no k threshold: results may describe groups as small as one individual"})
	}
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
    columns:                             # bool int32 int64 float64 string date timestamp decimal(p,s)
      - {name: user_id, type: string}
      - {name: campaign, type: string}
      - {name: shown_at, type: timestamp}
  - id: conversions
    provider: advertiser
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

# models:                               # optional: WebAssembly scalar functions the SQL may call
#   - name: score                        # the SQL function name: [a-z][a-z0-9_]{0,62}
#     provider: measurer                 # must have role algorithm_provider
#     sha256: "<cleanroom model commit score.wasm (confidential) or sha256sum score.wasm>"
#     confidential: true                 # true: only the provider and the coordinator see the module
#     args: [float64, int64]             # column types, no decimal
#     result: float64

output:
  recipients: [advertiser]               # each must have role result_recipient
  group_size_column: users               # result column counting the individuals behind each row
  min_group_size: 50                     # k: rows with fewer are suppressed (and counted)
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
`
