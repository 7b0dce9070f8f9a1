// Package contracts holds the contract model of Cleanroom: the parsed,
// validated agreement between participants, its canonical encoding and id,
// and the participants' signatures over it.
package contracts

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
)

// Role is what a participant may do under a contract.
type Role string

// The roles of SPEC §1. The operator is not a contract role: it never holds a
// participant key.
const (
	RoleDataProvider      Role = "data_provider"
	RoleAlgorithmProvider Role = "algorithm_provider"
	RoleResultRecipient   Role = "result_recipient"
	RoleAuditor           Role = "auditor"
)

// Roles lists every role, in canonical order.
var Roles = []Role{RoleDataProvider, RoleAlgorithmProvider, RoleResultRecipient, RoleAuditor}

// LanguageDuckDBSQL is the only algorithm language: exactly one DuckDB SELECT.
const LanguageDuckDBSQL = "duckdb-sql"

// Contract is a parsed and validated contract. Values returned by Parse are
// never mutated by this package; treat them as read-only.
type Contract struct {
	Version      int
	Name         string
	ExpiresAt    time.Time
	Participants []Participant
	Datasets     []Dataset
	Algorithm    Algorithm
	Models       []Model // nil when the contract names no model
	Output       Output
	Coordinator  CoordinatorPolicy
	// Supersedes is the id of the contract this one amends (SPEC §13,
	// amendment.go), or nil.
	Supersedes *ID

	id ID
}

// Participant is a party to the contract.
type Participant struct {
	ID        string
	Roles     []Role // sorted in the order of Roles, no duplicates
	PublicKey *cleanroom.PublicKey
}

// Has reports whether the participant holds role r.
func (p *Participant) Has(r Role) bool { return slices.Contains(p.Roles, r) }

// Dataset is a table a data provider brings.
type Dataset struct {
	ID       string // also the SQL table name
	Provider string // a participant id with role data_provider
	Columns  []Column
	// PrivacyUnit names the column that identifies a person (SPEC §7.1);
	// "" when the dataset is not protected.
	PrivacyUnit string
	// Dimensions, when not nil, are the only columns a result's group
	// keys may derive from (mode aggregate). Only with PrivacyUnit.
	Dimensions []string
	// Aggregations, when not nil, are the only columns that may be
	// aggregated, each with the only aggregate functions allowed on it,
	// member-revealing ones (MIN, MAX, MEDIAN, ...) included. When nil,
	// every column but the privacy unit may be aggregated by the summary
	// aggregates (count, sum, avg, ...) and none by a member-revealing
	// one. Only with PrivacyUnit.
	Aggregations []Aggregation
}

// Aggregation allows aggregate functions on one column of a protected
// dataset.
type Aggregation struct {
	Column    string
	Functions []string // lower-case aggregate function names, as DuckDB names them
}

// Protected reports whether the dataset has a privacy unit.
func (d *Dataset) Protected() bool { return d.PrivacyUnit != "" }

// Schema returns the Arrow schema every upload of the dataset must match:
// one nullable field per column, in contract order.
func (d *Dataset) Schema() *arrow.Schema {
	fields := make([]arrow.Field, len(d.Columns))
	for i, c := range d.Columns {
		fields[i] = arrow.Field{Name: c.Name, Type: c.Type.ArrowType(), Nullable: true}
	}
	return arrow.NewSchema(fields, nil)
}

// Analysed describes the dataset to the privacy analysis
// (sqlcheck.Analyze): its name, its columns as Arrow types, and its
// privacy unit, dimensions and aggregations.
func (d *Dataset) Analysed() sqlcheck.Dataset {
	out := sqlcheck.Dataset{Name: d.ID, PrivacyUnit: d.PrivacyUnit, Dimensions: d.Dimensions}
	for _, c := range d.Columns {
		out.Columns = append(out.Columns, sqlcheck.Column{Name: c.Name, Type: c.Type.ArrowType().String()})
	}
	if d.Aggregations != nil {
		out.Aggregations = map[string][]string{}
		for _, a := range d.Aggregations {
			out.Aggregations[a.Column] = a.Functions
		}
	}
	return out
}

// Column is one column of a dataset.
type Column struct {
	Name string
	Type ColumnType
	// NotNull is set by nullable: false: no row may leave the column
	// empty. The provider's encryption refuses such a row (it names the
	// column and the row) and so does the coordinator at upload; the
	// Arrow field stays nullable, so a schema is the same either way.
	NotNull bool
}

// Algorithm is the one query the contract approves.
type Algorithm struct {
	Provider string
	Language string
	// SHA256 names the approved text: its plain SHA-256 when the
	// algorithm is not confidential (every participant can see the text
	// anyway), and the salted commitment cleanroom.CommitAlgorithm when it
	// is, so that no one without the salt can test a guess of the text.
	// Check applies the rule.
	SHA256       [32]byte
	Confidential bool
	// Parameters are the values the SQL reads as $name, chosen at each
	// run within the domain each names (parameters.go); nil when the
	// algorithm takes none.
	Parameters []Parameter
}

// OutputMode is how the engine protects what a result reveals (SPEC §7.1).
type OutputMode string

// The output modes. docs/privacy.md says what each promises.
const (
	// ModeAggregate: the engine analyses the query and counts, itself,
	// the distinct privacy units behind each result row, suppressing rows
	// below MinGroupSize. The default.
	ModeAggregate OutputMode = "aggregate"
	// ModeDifferentialPrivacy: bounded contributions and calibrated noise,
	// with a privacy budget.
	ModeDifferentialPrivacy OutputMode = "differential_privacy"
	// ModeCustom: the query's own GroupSizeColumn is trusted for k.
	ModeCustom OutputMode = "custom"
)

// Model is a WebAssembly scalar function that an algorithm provider
// brings and the algorithm's SQL calls by Name (docs/models.md).
type Model struct {
	Name         string // the SQL function name
	Provider     string // a participant with role algorithm_provider
	SHA256       [32]byte
	Confidential bool
	Args         []ColumnType // at least one; no decimal
	Result       ColumnType   // no decimal
}

// Model returns the model with the given SQL function name (names are
// compared as SQL compares identifiers, ignoring case), or nil.
func (c *Contract) Model(name string) *Model {
	for i := range c.Models {
		if strings.EqualFold(c.Models[i].Name, name) {
			return &c.Models[i]
		}
	}
	return nil
}

// Output is the output policy the coordinator applies to every result.
type Output struct {
	Recipients []string
	// Mode is the output mode, always set once parsed: the contract's
	// output.mode, or its default — custom when group_size_column is set
	// (the rule such contracts were signed under), aggregate otherwise.
	Mode            OutputMode
	GroupSizeColumn string // mode custom only: the query's column that counts individuals
	MinGroupSize    int64  // k; 0 when there is no threshold
	MaxRows         int64
	MaxRuns         int64
	// DifferentialPrivacy is output.differential_privacy: set exactly
	// when Mode is ModeDifferentialPrivacy.
	DifferentialPrivacy *DifferentialPrivacy

	modeGiven bool // output.mode was written, not inferred
}

// DefaultMode is the mode of a contract whose output names none: custom
// when it names a group_size_column, aggregate otherwise.
func (o *Output) DefaultMode() OutputMode {
	if o.GroupSizeColumn != "" {
		return ModeCustom
	}
	return ModeAggregate
}

// CoordinatorPolicy is what every party requires of the coordinator's
// attestation. Measurements and MinTCB are SEV-SNP's; each other platform
// has its own reference values (exactly the one of Platform is set).
type CoordinatorPolicy struct {
	Platform            Platform
	Measurements        [][48]byte // sev-snp
	AllowDebug          bool       // sev-snp, nitro, cca (tdx: TDX.AllowDebug)
	MinTCB              TCB        // sev-snp
	SimulatedRootSHA256 *[32]byte  // set exactly when Platform is simulated
	TDX                 *TDXRefs   // tdx
	Nitro               *NitroRefs // nitro
	CCA                 *CCARefs   // cca
}

// TCB is a minimum SEV-SNP TCB version: each component's security version
// number.
type TCB struct {
	Bootloader uint8
	TEE        uint8
	SNP        uint8
	Microcode  uint8
}

// ID is a contract id: the SHA-256 of the contract's canonical encoding.
type ID [32]byte

// String returns 64 lowercase hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses 64 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("contract id must be 64 hex digits, got %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// ID returns the contract id.
func (c *Contract) ID() ID { return c.id }

// Participant returns the participant with the given id, or nil.
func (c *Contract) Participant(id string) *Participant {
	for i := range c.Participants {
		if c.Participants[i].ID == id {
			return &c.Participants[i]
		}
	}
	return nil
}

// ParticipantByKey returns the participant whose key has fingerprint fp, or
// nil.
func (c *Contract) ParticipantByKey(fp cleanroom.Fingerprint) *Participant {
	for i := range c.Participants {
		if c.Participants[i].PublicKey.Fingerprint() == fp {
			return &c.Participants[i]
		}
	}
	return nil
}

// Dataset returns the dataset with the given id, or nil.
func (c *Contract) Dataset(id string) *Dataset {
	for i := range c.Datasets {
		if c.Datasets[i].ID == id {
			return &c.Datasets[i]
		}
	}
	return nil
}

// Expired reports whether the contract has expired at time now.
func (c *Contract) Expired(now time.Time) bool { return !now.Before(c.ExpiresAt) }

// IsRecipient reports whether participant id receives results.
func (c *Contract) IsRecipient(id string) bool { return slices.Contains(c.Output.Recipients, id) }
