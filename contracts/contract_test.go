package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"cleanroom.dev/cleanroom/cleanroom"
)

// parties holds the four test identities, made once per test binary.
var parties = func() map[string]*cleanroom.Identity {
	m := map[string]*cleanroom.Identity{}
	for _, name := range []string{"publisher", "advertiser", "measurer", "auditor", "stranger"} {
		id, err := cleanroom.GenerateIdentity()
		if err != nil {
			panic(err)
		}
		m[name] = id
	}
	return m
}()

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const measurement = "707294b6ffba77bcc7deec72f5b5f340d86e725af83f78e634b63bee8606f3e71be5da1ed1c4f6d95b7af4770e1ddd1f"

// baseYAML is a valid contract; the bad-contract table edits it.
func baseYAML() string {
	return `# ad attribution
version: 1
name: ad-attribution-2026q4
expires_at: 2027-03-31T00:00:00Z
participants:
  - id: publisher
    roles: [data_provider]
    public_key: "` + parties["publisher"].Public().String() + `"
  - id: advertiser
    roles: [data_provider, result_recipient]
    public_key: "` + parties["advertiser"].Public().String() + `"
  - id: measurer
    roles: [algorithm_provider]
    public_key: "` + parties["measurer"].Public().String() + `"
  - id: auditor
    roles: [auditor]
    public_key: "` + parties["auditor"].Public().String() + `"
datasets:
  - id: impressions
    provider: publisher
    columns:
      - {name: user_id, type: string}
      - {name: campaign, type: string}
      - {name: shown_at, type: timestamp}
  - id: conversions
    provider: advertiser
    columns:
      - {name: user_id, type: string}
      - {name: value, type: float64}
algorithm:
  provider: measurer
  language: duckdb-sql
  sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  confidential: false
output:
  recipients: [advertiser]
  group_size_column: users
  min_group_size: 50
  max_rows: 10000
  max_runs: 5
coordinator:
  platform: sev-snp
  measurements: ["` + measurement + `"]
  allow_debug: false
  min_tcb: {bootloader: 0, tee: 0, snp: 0, microcode: 0}
`
}

// aggregateYAML turns a contract of baseYAML's shape into mode aggregate:
// no group_size_column, and a privacy unit on both datasets.
func aggregateYAML(text string) string {
	return strings.NewReplacer(
		"  group_size_column: users\n", "",
		"    provider: publisher\n    columns:", "    provider: publisher\n    privacy_unit: user_id\n    columns:",
		"    provider: advertiser\n    columns:", "    provider: advertiser\n    privacy_unit: user_id\n    columns:",
	).Replace(text)
}

func mustParse(t *testing.T, text string) *Contract {
	t.Helper()
	c, err := Parse([]byte(text), ParseOptions{Now: testNow})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// reencode turns the YAML into a generic value and back out as JSON or
// YAML with sorted keys, to show that presentation does not matter.
func reencode(t *testing.T, text string, asJSON bool) string {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		t.Fatal(err)
	}
	// yaml decodes expires_at as time.Time; JSON and YAML both write RFC 3339.
	var out []byte
	var err error
	if asJSON {
		out, err = json.MarshalIndent(v, "", "\t")
	} else {
		out, err = yaml.Marshal(v) // keys come out sorted, comments gone
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestIDIgnoresPresentation(t *testing.T) {
	base := mustParse(t, baseYAML())
	variants := map[string]string{
		"sorted keys, no comments": reencode(t, baseYAML(), false),
		"json":                     reencode(t, baseYAML(), true),
		"explicit defaults dropped": strings.NewReplacer(
			"  confidential: false\n", "",
			"  allow_debug: false\n", "",
			"  min_tcb: {bootloader: 0, tee: 0, snp: 0, microcode: 0}\n", "",
		).Replace(baseYAML()),
		"comments and block style": strings.Replace(
			strings.Replace(baseYAML(), "recipients: [advertiser]", "recipients:   # who gets results\n    - advertiser   # only them", 1),
			"roles: [data_provider, result_recipient]", "roles: [result_recipient, data_provider]", 1),
		"uppercase hex": strings.Replace(baseYAML(), measurement, strings.ToUpper(measurement), 1),
		// group_size_column without a mode means mode custom.
		"mode custom spelled out": strings.Replace(baseYAML(), "  group_size_column: users", "  mode: custom\n  group_size_column: users", 1),
	}
	for name, text := range variants {
		c, err := Parse([]byte(text), ParseOptions{Now: testNow})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.ID() != base.ID() {
			t.Errorf("%s: id %s, want %s", name, c.ID(), base.ID())
		}
	}
	// The default mode, aggregate, spelled out.
	agg := mustParse(t, aggregateYAML(baseYAML()))
	if c := mustParse(t, strings.Replace(aggregateYAML(baseYAML()), "output:\n", "output:\n  mode: aggregate\n", 1)); c.ID() != agg.ID() {
		t.Errorf("mode aggregate spelled out: id %s, want %s", c.ID(), agg.ID())
	}
	if agg.Output.Mode != ModeAggregate || base.Output.Mode != ModeCustom {
		t.Errorf("modes %q and %q, want aggregate and custom", agg.Output.Mode, base.Output.Mode)
	}
}

// TestIDWithoutPrivacyFields pins the id of a contract without the
// privacy fields: they are omitted from the canonical encoding when absent,
// so contracts written before them keep their ids.
func TestIDWithoutPrivacyFields(t *testing.T) {
	c := mustParse(t, baseYAML())
	b := c.CanonicalBytes()
	for _, key := range []string{"privacy_unit", "dimensions", "aggregations", "mode"} {
		if bytes.Contains(b, []byte(key)) {
			t.Errorf("the canonical encoding of a contract without %s holds it", key)
		}
	}
}

func TestIDChangesWithEveryField(t *testing.T) {
	base := mustParse(t, baseYAML())
	edits := map[string][2]string{
		"name":            {"name: ad-attribution-2026q4", "name: ad-attribution-2026q5"},
		"expires_at":      {"2027-03-31T00:00:00Z", "2027-03-31T00:00:01Z"},
		"participant id":  {"id: auditor", "id: auditor2"},
		"roles":           {"roles: [auditor]", "roles: [auditor, result_recipient]\n    # also a recipient"},
		"public key":      {parties["auditor"].Public().String(), parties["stranger"].Public().String()},
		"dataset id":      {"id: conversions\n    provider", "id: sales\n    provider"},
		"dataset provid":  {"provider: advertiser", "provider: publisher"},
		"column name":     {"{name: value, type: float64}", "{name: amount, type: float64}"},
		"column type":     {"{name: value, type: float64}", "{name: value, type: \"decimal(18,2)\"}"},
		"column order":    {"      - {name: user_id, type: string}\n      - {name: value", "      - {name: value, type: float64}\n      - {name: user_id, type: string}\n      - {name: valu2"},
		"sha256":          {"9f86d081", "9f86d082"},
		"confidential":    {"confidential: false", "confidential: true"},
		"privacy unit":    {"    privacy_unit: user_id\n    columns:\n      - {name: user_id, type: string}\n      - {name: value", "    privacy_unit: value2\n    columns:\n      - {name: user_id, type: string}\n      - {name: value2, type: string}\n      - {name: value"},
		"dimensions":      {"    privacy_unit: user_id\n    columns:\n      - {name: user_id, type: string}\n      - {name: campaign", "    privacy_unit: user_id\n    dimensions: [campaign]\n    columns:\n      - {name: user_id, type: string}\n      - {name: campaign"},
		"aggregations":    {"    privacy_unit: user_id\n    columns:\n      - {name: user_id, type: string}\n      - {name: value", "    privacy_unit: user_id\n    aggregations: {value: [sum, max]}\n    columns:\n      - {name: user_id, type: string}\n      - {name: value"},
		"group column":    {"group_size_column: users", "group_size_column: people"},
		"k":               {"min_group_size: 50", "min_group_size: 51"},
		"max_rows":        {"max_rows: 10000", "max_rows: 10001"},
		"max_runs":        {"max_runs: 5", "max_runs: 6"},
		"measurement":     {measurement, "00" + measurement[2:]},
		"allow_debug":     {"allow_debug: false", "allow_debug: true"},
		"min_tcb":         {"microcode: 0}", "microcode: 1}"},
		"platform + root": {"platform: sev-snp", "platform: sev-snp-simulated\n  simulated_root_sha256: \"" + strings.Repeat("ab", 32) + "\""},
	}
	for name, e := range edits {
		base, baseText := base, baseYAML()
		switch name {
		case "confidential", "privacy unit", "dimensions", "aggregations":
			// A confidential algorithm needs mode aggregate.
			baseText = aggregateYAML(baseYAML())
			base = mustParse(t, baseText)
		}
		text := strings.Replace(baseText, e[0], e[1], 1)
		if name == "roles" {
			text = strings.Replace(text, "recipients: [advertiser]", "recipients: [advertiser, auditor]", 1)
		}
		if name == "dataset provid" {
			text = strings.Replace(text, "roles: [data_provider, result_recipient]", "roles: [result_recipient]", 1)
		}
		if name == "column order" {
			text = strings.Replace(text, "{name: valu2, type: float64}", "{name: extra, type: int64}", 1)
		}
		if text == baseText {
			t.Fatalf("%s: edit %q did not apply", name, e[0])
		}
		c, err := Parse([]byte(text), ParseOptions{Now: testNow})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.ID() == base.ID() {
			t.Errorf("%s: id unchanged", name)
		}
	}
}

func TestBadContracts(t *testing.T) {
	simRoot := "platform: sev-snp-simulated"
	cases := []struct {
		name      string
		old, new  string
		field     string // must appear in the error
		line      int    // 0: not checked
		errSubstr string
	}{
		{"unknown top-level field", "version: 1", "version: 1\nversoin: 2", "versoin", 3, "unknown field"},
		{"duplicate field", "name: ad-attribution-2026q4", "name: ad-attribution-2026q4\nname: other", "name", 4, "duplicate field"},
		{"unsupported version", "version: 1", "version: 2", "version", 2, "unsupported version"},
		{"version as string", "version: 1", "version: \"1\"", "version", 2, "must be an integer"},
		{"missing name", "name: ad-attribution-2026q4\n", "", "name", 0, "required field is missing"},
		{"name with control char", "name: ad-attribution-2026q4", "name: \"ad\\tx\"", "name", 3, "printable"},
		{"expires_at without zone", "2027-03-31T00:00:00Z", "2027-03-31T00:00:00", "expires_at", 4, "RFC 3339"},
		{"past expiry", "2027-03-31T00:00:00Z", "2026-01-01T00:00:00Z", "expires_at", 4, "expired"},
		{"bad participant id", "id: publisher", "id: Publisher", "participants[0].id", 6, "not a valid participant id"},
		{"duplicate participant id", "id: auditor", "id: measurer", "participants[3].id", 0, "already used"},
		{"unknown role", "roles: [auditor]", "roles: [watcher]", "participants[3].roles[0]", 16, "unknown role"},
		{"no roles", "roles: [auditor]", "roles: []", "participants[3].roles", 16, "at least one role"},
		{"role twice", "roles: [auditor]", "roles: [auditor, auditor]", "participants[3].roles[1]", 16, "listed twice"},
		{"bad public key", parties["auditor"].Public().String(), "cleanroom-pub-1:AAAA", "participants[3].public_key", 17, "bad key"},
		{"shared key", parties["auditor"].Public().String(), parties["measurer"].Public().String(), "participants[3].public_key", 17,
			`participants "auditor" and "measurer" (participants[2]) have the same public key`},
		{"shared Ed25519 key", parties["auditor"].Public().String(), splicedKey(t, "measurer", "stranger"), "participants[3].public_key", 17,
			`participants "auditor" and "measurer" (participants[2]) share one Ed25519 signing key`},
		{"shared HPKE key", parties["auditor"].Public().String(), splicedKey(t, "stranger", "measurer"), "participants[3].public_key", 17,
			`participants "auditor" and "measurer" (participants[2]) share one HPKE encryption key`},
		{"unknown participant field", "    roles: [auditor]", "    roles: [auditor]\n    email: a@b.c", "participants[3].email", 17, "unknown field"},
		{"bad dataset id", "id: impressions", "id: Impressions", "datasets[0].id", 19, "not a valid dataset id"},
		{"dataset id with dash", "id: impressions", "id: ad-impressions", "datasets[0].id", 19, "not a valid dataset id"},
		{"duplicate dataset", "id: conversions", "id: impressions", "datasets[1].id", 0, "already used"},
		{"dataset provider unknown", "provider: publisher", "provider: newspaper", "datasets[0].provider", 20, "not a participant"},
		{"dataset provider lacks role", "provider: advertiser", "provider: auditor", "datasets[1].provider", 26, "lacks role data_provider"},
		{"unknown column type", "{name: value, type: float64}", "{name: value, type: money}", "datasets[1].columns[1].type", 29, "unknown type"},
		{"decimal scale over precision", "{name: value, type: float64}", "{name: value, type: \"decimal(4,6)\"}", "datasets[1].columns[1].type", 29, "scale"},
		{"decimal precision too big", "{name: value, type: float64}", "{name: value, type: \"decimal(39,2)\"}", "datasets[1].columns[1].type", 29, "precision"},
		{"column name clash", "{name: value, type: float64}", "{name: USER_ID, type: float64}", "datasets[1].columns[1]", 29, "case-insensitive"},
		{"bad column name", "{name: value, type: float64}", "{name: \"value; drop\", type: float64}", "datasets[1].columns[1].name", 29, "not a valid column name"},
		{"no columns", "    columns:\n      - {name: user_id, type: string}\n      - {name: value, type: float64}\n", "    columns: []\n", "datasets[1].columns", 27, "at least one column"},
		{"algorithm provider lacks role", "  provider: measurer", "  provider: auditor", "algorithm.provider", 31, "lacks role algorithm_provider"},
		{"algorithm provider unknown", "  provider: measurer", "  provider: nobody", "algorithm.provider", 31, "not a participant"},
		{"wrong language", "language: duckdb-sql", "language: python", "algorithm.language", 32, "unsupported language"},
		{"short sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "9f86d081", "algorithm.sha256", 33, "64 hex digits"},
		{"non-hex sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "algorithm.sha256", 33, "hex digits"},
		{"confidential not bool", "confidential: false", "confidential: \"no\"", "algorithm.confidential", 34, "true or false"},
		{"recipient without role", "recipients: [advertiser]", "recipients: [advertiser, publisher]", "output.recipients[1]", 36, "lacks role result_recipient"},
		{"recipient unknown", "recipients: [advertiser]", "recipients: [advertiser, buyer]", "output.recipients[1]", 36, "not a participant"},
		{"recipient role but not recipient", "roles: [auditor]", "roles: [auditor, result_recipient]", "participants[3]", 15, "not in output.recipients"},
		{"no recipients", "recipients: [advertiser]", "recipients: []", "output.recipients", 36, "at least one"},
		{"negative k", "min_group_size: 50", "min_group_size: -1", "output.min_group_size", 38, "negative"},
		{"k without anything to count", "  group_size_column: users\n", "", "output.min_group_size", 37, "nothing to count"},
		{"column without k", "  min_group_size: 50\n", "", "output.min_group_size", 37, "at least 1 with mode custom"},
		{"unknown mode", "  group_size_column: users", "  mode: k_anonymity\n  group_size_column: users", "output.mode", 37, "unknown mode"},
		{"custom without column", "  group_size_column: users\n", "  mode: custom\n", "output.group_size_column", 0, "required with mode custom"},
		{"group column in mode aggregate", "  group_size_column: users", "  mode: aggregate\n  group_size_column: users", "output.group_size_column", 38, "only for mode custom"},
		{"confidential custom", "confidential: false", "confidential: true", "output.group_size_column", 0, "a confidential algorithm cannot use"},
		{"confidential explicit custom", "confidential: false\noutput:\n", "confidential: true\noutput:\n  mode: custom\n", "output.mode", 0, "a confidential algorithm cannot use mode custom"},
		{"differential privacy without its block", "  group_size_column: users\n", "  mode: differential_privacy\n", "output.mode", 37, "differential_privacy block"},
		{"privacy unit not a column", "    provider: publisher\n", "    provider: publisher\n    privacy_unit: person\n", "datasets[0].privacy_unit", 21, "not a column"},
		{"privacy unit float", "    provider: advertiser\n", "    provider: advertiser\n    privacy_unit: value\n", "datasets[1].privacy_unit", 0, "float64"},
		{"privacy unit empty", "    provider: publisher\n", "    provider: publisher\n    privacy_unit: \"\"\n", "datasets[0].privacy_unit", 21, "must name a column"},
		{"dimensions without unit", "    provider: advertiser\n", "    provider: advertiser\n    dimensions: [value]\n", "datasets[1].dimensions", 27, "needs privacy_unit"},
		{"dimension is the unit", "    provider: publisher\n", "    provider: publisher\n    privacy_unit: user_id\n    dimensions: [user_id]\n", "datasets[0].dimensions[0]", 22, "privacy unit"},
		{"dimension unknown", "    provider: publisher\n", "    provider: publisher\n    privacy_unit: user_id\n    dimensions: [campaign, region]\n", "datasets[0].dimensions[1]", 22, "not a column"},
		{"aggregation unknown function", "    provider: publisher\n", "    provider: publisher\n    privacy_unit: user_id\n    aggregations: {shown_at: [min, newest]}\n", "datasets[0].aggregations.shown_at[1]", 0, "not an aggregate function"},
		{"aggregation window function", "    provider: publisher\n", "    provider: publisher\n    privacy_unit: user_id\n    aggregations: {shown_at: [lag]}\n", "datasets[0].aggregations.shown_at[0]", 0, "window function"},
		{"aggregation of the unit", "    provider: publisher\n", "    provider: publisher\n    privacy_unit: user_id\n    aggregations: {user_id: [count]}\n", "datasets[0].aggregations.user_id", 22, "privacy unit"},
		{"aggregation unknown column", "    provider: publisher\n", "    provider: publisher\n    privacy_unit: user_id\n    aggregations: {clicks: [sum]}\n", "datasets[0].aggregations.clicks", 22, "not a column"},
		{"aggregations not a mapping", "    provider: publisher\n", "    provider: publisher\n    privacy_unit: user_id\n    aggregations: [sum]\n", "datasets[0].aggregations", 22, "must be a mapping"},
		{"reserved column name", "{name: value, type: float64}", "{name: _cleanroom_units_0, type: float64}", "datasets[1].columns[1].name", 29, "reserved"},
		{"zero max_rows", "max_rows: 10000", "max_rows: 0", "output.max_rows", 39, "at least 1"},
		{"zero max_runs", "max_runs: 5", "max_runs: 0", "output.max_runs", 40, "at least 1"},
		{"huge integer", "max_runs: 5", "max_runs: 99999999999999999999", "output.max_runs", 40, "in range"},
		{"unknown platform", "platform: sev-snp", "platform: sgx", "coordinator.platform", 42, "unknown platform"},
		{"short measurement", measurement, measurement[:94], "coordinator.measurements[0]", 43, "96 hex digits"},
		{"no measurements", `measurements: ["` + measurement + `"]`, "measurements: []", "coordinator.measurements", 43, "at least one"},
		{"simulated without root", "platform: sev-snp", simRoot, "coordinator.simulated_root_sha256", 42, "is required"},
		{"real with root", "allow_debug: false", "allow_debug: false\n  simulated_root_sha256: \"" + strings.Repeat("00", 32) + "\"", "coordinator.simulated_root_sha256", 45, "must be empty"},
		{"tcb out of range", "snp: 0", "snp: 300", "coordinator.min_tcb.snp", 45, "0 to 255"},
		{"tcb missing component", ", microcode: 0}", "}", "coordinator.min_tcb.microcode", 45, "required"},
		{"participants not a list", "participants:\n", "participants: {}\nx_participants:\n", "participants", 5, "must be a list"},
		{"yaml alias", "recipients: [advertiser]", "recipients: &r [advertiser]", "", 36, "aliases"},
		{"data provider without dataset", "provider: publisher", "provider: advertiser", "participants[0]", 6, "provides no dataset"},
		{"algorithm role without algorithm", "roles: [auditor]", "roles: [auditor, algorithm_provider]", "participants[3]", 15, "algorithm.provider is"},
		{"two documents", "version: 1", "version: 1\n---\nversion: 1", "", 0, "exactly one document"},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := refusedEdit(t, baseYAML(), tc.old, tc.new, tc.field, tc.errSubstr, tc.line)
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message does not name the field: %v", err)
			}
		})
	}
}

// splicedKey returns the public key line made of the Ed25519 part of
// signer's key and the HPKE part of encrypter's.
func splicedKey(t testing.TB, signer, encrypter string) string {
	t.Helper()
	a, b := parties[signer].Public().Bytes(), parties[encrypter].Public().Bytes()
	k, err := cleanroom.PublicKeyFromBytes(append(a[:32:32], b[32:]...))
	if err != nil {
		t.Fatal(err)
	}
	return k.String()
}

// TestKeyHalvesSharedWithTwoParticipants: a key whose Ed25519 part is one
// participant's and whose HPKE part is another's is refused twice, each
// problem naming the participant it clashes with.
func TestKeyHalvesSharedWithTwoParticipants(t *testing.T) {
	text := strings.Replace(baseYAML(), parties["auditor"].Public().String(), splicedKey(t, "measurer", "publisher"), 1)
	_, err := Parse([]byte(text), ParseOptions{Now: testNow})
	var pe *ParseError
	if !errors.As(err, &pe) || len(pe.Problems) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	for _, want := range []string{
		`participants "auditor" and "measurer" (participants[2]) share one Ed25519 signing key`,
		`participants "auditor" and "publisher" (participants[0]) share one HPKE encryption key`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not say %q", err, want)
		}
	}
}

func TestParseErrorsReportAllProblems(t *testing.T) {
	text := strings.NewReplacer("max_rows: 10000", "max_rows: 0", "max_runs: 5", "max_runs: 0").Replace(baseYAML())
	_, err := Parse([]byte(text), ParseOptions{Now: testNow})
	var pe *ParseError
	if !errors.As(err, &pe) || len(pe.Problems) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
}

func TestJSONErrorsHaveLines(t *testing.T) {
	text := reencode(t, baseYAML(), true)
	text = strings.Replace(text, `"max_runs": 5`, `"max_runs": 5, "max_runs": 6`, 1)
	_, err := Parse([]byte(text), ParseOptions{Now: testNow})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Problems[0].Line == 0 || pe.Problems[0].Field != "output.max_runs" {
		t.Fatalf("want a duplicate output.max_runs with a line, got %v", err)
	}
}

func TestAllowExpired(t *testing.T) {
	later := testNow.AddDate(2, 0, 0)
	if _, err := Parse([]byte(baseYAML()), ParseOptions{Now: later}); err == nil {
		t.Fatal("expired contract accepted")
	}
	if _, err := Parse([]byte(baseYAML()), ParseOptions{Now: later, AllowExpired: true}); err != nil {
		t.Fatalf("AllowExpired: %v", err)
	}
}

func TestSchemaDigest(t *testing.T) {
	c := mustParse(t, baseYAML())
	a, b := c.Dataset("impressions").SchemaDigest(), c.Dataset("conversions").SchemaDigest()
	if a == b {
		t.Fatal("different schemas, same digest")
	}
	c2 := mustParse(t, strings.Replace(baseYAML(), "{name: value, type: float64}", "{name: value, type: float32x}", 0))
	if c2.Dataset("conversions").SchemaDigest() != b {
		t.Fatal("digest not deterministic")
	}
	c3 := mustParse(t, strings.Replace(baseYAML(), "{name: value, type: float64}", "{name: value, type: \"decimal( 10 , 2 )\"}", 1))
	if c3.Dataset("conversions").SchemaDigest() == b {
		t.Fatal("type change did not change the digest")
	}
	if got := c3.Dataset("conversions").Columns[1].Type.String(); got != "decimal(10,2)" {
		t.Fatalf("canonical type %q", got)
	}
}

func TestWarnings(t *testing.T) {
	c := mustParse(t, baseYAML())
	ws := c.Warnings()
	var got []string
	for _, w := range ws {
		got = append(got, w.Field)
	}
	joined := strings.Join(got, ",")
	// The advertiser both provides data and receives results; sev-snp with
	// a zero TCB.
	if !strings.Contains(joined, "output.recipients") || !strings.Contains(joined, "coordinator.min_tcb") {
		t.Fatalf("warnings %v", got)
	}
	sim := mustParse(t, strings.Replace(strings.Replace(baseYAML(), "platform: sev-snp", "platform: sev-snp-simulated\n  simulated_root_sha256: \""+strings.Repeat("ab", 32)+"\"", 1),
		"  group_size_column: users\n  min_group_size: 50\n", "", 1))
	var simFields []string
	for _, w := range sim.Warnings() {
		simFields = append(simFields, w.Field+": "+w.Msg)
	}
	if !strings.HasPrefix(simFields[0], "coordinator.platform") || !strings.Contains(strings.Join(simFields, ","), "no dataset has a privacy_unit: nothing is protected") {
		t.Fatalf("simulated warnings %v", simFields)
	}
}

// TestAggregateNeedsK checks that mode aggregate over a protected dataset
// needs its k.
func TestAggregateNeedsK(t *testing.T) {
	_, err := Parse([]byte(strings.Replace(aggregateYAML(baseYAML()), "  min_group_size: 50\n", "", 1)), ParseOptions{Now: testNow})
	if err == nil || !strings.Contains(err.Error(), "output.min_group_size: is required in mode aggregate when a dataset has a privacy_unit (impressions, conversions)") {
		t.Fatalf("got %v", err)
	}
}

// TestModeWarnings checks what contract show says of each mode.
func TestModeWarnings(t *testing.T) {
	custom := strings.Replace(baseYAML(), "  group_size_column: users", "  mode: custom\n  group_size_column: users", 1)
	for _, c := range []struct {
		name, text string
		want       []string // fragments of the warnings, in any order
		explain    string   // a fragment of Protection()
	}{
		{"inferred custom", baseYAML(), []string{"means mode custom; write mode: custom", "as honest as the query"}, `column "users" is below 50`},
		{"custom", custom, []string{"output.mode: mode custom: k is checked on the query's own column \"users\""}, "the engine trusts it"},
		{"aggregate", aggregateYAML(baseYAML()), []string{"one person can still dominate a sum", "subtracted from each other"}, "(impressions.user_id, conversions.user_id)"},
		{"aggregate with an open dataset", strings.Replace(aggregateYAML(baseYAML()), "    provider: advertiser\n    privacy_unit: user_id\n", "    provider: advertiser\n", 1),
			[]string{"conversions has no privacy_unit: nothing of it is counted"}, "fewer than 50 of any is suppressed"},
		{"aggregate with small k", strings.Replace(aggregateYAML(baseYAML()), "min_group_size: 50", "min_group_size: 2", 1), []string{"k = 2: a released row may stand for as few as 2"}, "fewer than 2"},
		{"aggregate with dimensions and aggregations", strings.Replace(aggregateYAML(baseYAML()), "    provider: publisher\n    privacy_unit: user_id\n",
			"    provider: publisher\n    privacy_unit: user_id\n    dimensions: [campaign]\n    aggregations: {shown_at: [min, max]}\n", 1), nil, "Only these aggregations of impressions are allowed: shown_at by min, max."},
		{"custom with units", strings.Replace(custom, "    provider: publisher\n", "    provider: publisher\n    privacy_unit: user_id\n", 1), []string{"mode custom does not enforce them"}, "trusts it"},
	} {
		ct := mustParse(t, c.text)
		var all []string
		for _, w := range ct.Warnings() {
			all = append(all, w.String())
		}
		joined := strings.Join(all, "\n")
		for _, w := range c.want {
			if !strings.Contains(joined, w) {
				t.Errorf("%s: warnings do not say %q:\n%s", c.name, w, joined)
			}
		}
		if p := strings.Join(ct.Protection(), " "); !strings.Contains(p, c.explain) {
			t.Errorf("%s: protection %q does not say %q", c.name, p, c.explain)
		}
	}
}

func TestTemplateIsNearlyValid(t *testing.T) {
	// The template parses as YAML and fails only on its placeholders.
	_, err := Parse([]byte(Template), ParseOptions{Now: testNow})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("template: %v", err)
	}
	for _, p := range pe.Problems {
		if !strings.Contains(p.Field, "public_key") && !strings.Contains(p.Field, "sha256") && !strings.Contains(p.Field, "measurements") {
			t.Errorf("template problem beyond placeholders: %v", p)
		}
	}
}

// modelsYAML is baseYAML with a models section.
func modelsYAML(models string) string {
	return strings.Replace(baseYAML(), "output:\n", "models:\n"+models+"output:\n", 1)
}

const scoreModel = `  - name: score
    provider: measurer
    sha256: "` + "1111111111111111111111111111111111111111111111111111111111111111" + `"
    confidential: true
    args: [float64, string, int32, date, timestamp, bool, int64]
    result: float64
`

// TestModels parses a contract's models: every field, the canonical
// encoding, and ids — a contract without models keeps the id it had
// before models existed, and every model field changes the id.
func TestModels(t *testing.T) {
	base := mustParse(t, baseYAML())
	if base.Models != nil || strings.Contains(string(base.CanonicalBytes()), "models") {
		t.Fatal("a contract without models has a models entry in its canonical encoding")
	}
	c := mustParse(t, modelsYAML(scoreModel))
	m := c.Model("SCORE")
	if m == nil || m.Name != "score" || m.Provider != "measurer" || !m.Confidential || len(m.Args) != 7 || m.Args[3].Kind != KindDate || m.Result.Kind != KindFloat64 {
		t.Fatalf("model %+v", m)
	}
	if c.ID() == base.ID() {
		t.Fatal("adding a model left the id unchanged")
	}
	for name, e := range map[string][2]string{
		"name":         {"name: score", "name: score2"},
		"sha256":       {"sha256: \"1111", "sha256: \"2111"},
		"confidential": {"confidential: true\n    args", "confidential: false\n    args"},
		"args":         {"bool, int64]", "bool]"},
		"result":       {"result: float64", "result: string"},
	} {
		text := strings.Replace(modelsYAML(scoreModel), e[0], e[1], 1)
		other, err := Parse([]byte(text), ParseOptions{Now: testNow})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if other.ID() == c.ID() {
			t.Errorf("%s: id unchanged", name)
		}
	}
	// A model provider need not provide the algorithm.
	two := strings.Replace(modelsYAML(strings.Replace(scoreModel, "provider: measurer", "provider: auditor", 1)),
		"roles: [auditor]", "roles: [auditor, algorithm_provider]", 1)
	if _, err := Parse([]byte(two), ParseOptions{Now: testNow}); err != nil {
		t.Fatalf("a second algorithm provider bringing a model: %v", err)
	}
	ws := c.Warnings()
	if !slices.ContainsFunc(ws, func(w Warning) bool { return w.Field == "models[0].confidential" }) {
		t.Errorf("no warning about the confidential model: %v", ws)
	}
}

func TestBadModels(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, field, errSubstr string
	}{
		{"bad name", "name: score", "name: Score", "models[0].name", "not a valid model name"},
		{"name with dash", "name: score", "name: risk-score", "models[0].name", "not a valid model name"},
		{"name of a dataset", "name: score", "name: impressions", "models[0].name", "also a dataset id"},
		{"unknown provider", "provider: measurer\n    sha256", "provider: nobody\n    sha256", "models[0].provider", "not a participant"},
		{"provider lacks role", "provider: measurer\n    sha256", "provider: publisher\n    sha256", "models[0].provider", "lacks role algorithm_provider"},
		{"short commitment", "\"1111111111111111111111111111111111111111111111111111111111111111\"", "\"11\"", "models[0].sha256", "64 hex digits"},
		{"no args", "args: [float64, string, int32, date, timestamp, bool, int64]", "args: []", "models[0].args", "at least one argument"},
		{"decimal arg", "args: [float64,", "args: [\"decimal(4,1)\",", "models[0].args[0]", "cast it to float64"},
		{"decimal result", "result: float64", "result: \"decimal(10,2)\"", "models[0].result", "cast it to float64"},
		{"unknown type", "result: float64", "result: tensor", "models[0].result", "unknown type"},
		{"unknown field", "result: float64", "result: float64\n    weights: secret", "models[0].weights", "unknown field"},
		{"missing result", "    result: float64\n", "", "models[0].result", "required field is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(modelsYAML(scoreModel), tc.old, tc.new, 1)
			if text == modelsYAML(scoreModel) {
				t.Fatalf("edit %q did not apply", tc.old)
			}
			_, err := Parse([]byte(text), ParseOptions{Now: testNow})
			if err == nil || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.errSubstr) {
				t.Fatalf("got %v; want %s: ...%s", err, tc.field, tc.errSubstr)
			}
		})
	}
	// Two models of one name, and an empty list.
	if _, err := Parse([]byte(modelsYAML(scoreModel+scoreModel)), ParseOptions{Now: testNow}); err == nil || !strings.Contains(err.Error(), "already used by models[0]") {
		t.Fatalf("duplicate model: %v", err)
	}
	if _, err := Parse([]byte(strings.Replace(baseYAML(), "output:\n", "models: []\noutput:\n", 1)), ParseOptions{Now: testNow}); err == nil || !strings.Contains(err.Error(), "empty models list") {
		t.Fatalf("empty models: %v", err)
	}
}

// refusedEdit parses base with old replaced by new (once) and checks that
// it is refused with an error wrapping ErrInvalid, a *ParseError, that has
// a problem for field whose message contains substr (on line, unless line
// is 0); it returns the error.
func refusedEdit(t *testing.T, base, old, new, field, substr string, line int) error {
	t.Helper()
	text := strings.Replace(base, old, new, 1)
	if text == base {
		t.Fatalf("edit %q did not apply", old)
	}
	_, err := Parse([]byte(text), ParseOptions{Now: testNow})
	if err == nil {
		t.Fatal("accepted")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error does not wrap ErrInvalid: %v", err)
	}
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("not a *ParseError: %v", err)
	}
	var found *FieldError
	for _, p := range pe.Problems {
		if p.Field == field && strings.Contains(p.Msg, substr) {
			found = p
		}
	}
	if found == nil {
		t.Fatalf("no problem for field %q containing %q in:\n%v", field, substr, err)
	}
	if line != 0 && found.Line != line {
		t.Errorf("line %d, want %d: %v", found.Line, line, found)
	}
	return err
}
