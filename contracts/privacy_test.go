package contracts

import (
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/internal/canon"
)

// dpBlock is a valid differential_privacy block for baseYAML; the tests
// edit it.
const dpBlock = `  differential_privacy:
    epsilon_total: 3.0
    delta_total: 1.0e-6
    epsilon_per_run: 0.5
    delta_per_run: 1.0e-7
    max_groups_contributed: 4
    max_contributions_per_group: 1
    bounds: {value: [0, 500]}
    public_groups: {campaign: [spring, summer]}
`

// dpYAML is baseYAML in mode differential_privacy: a privacy unit on both
// datasets, no k, and dpBlock in its output section (lines 42–50).
func dpYAML() string {
	return strings.NewReplacer(
		"  group_size_column: users\n  min_group_size: 50\n", "  mode: differential_privacy\n",
		"  max_runs: 5\n", "  max_runs: 5\n"+dpBlock,
		"    provider: publisher\n    columns:", "    provider: publisher\n    privacy_unit: user_id\n    columns:",
		"    provider: advertiser\n    columns:", "    provider: advertiser\n    privacy_unit: user_id\n    columns:",
	).Replace(baseYAML())
}

func TestDifferentialPrivacyParses(t *testing.T) {
	c := mustParse(t, dpYAML())
	dp := c.DifferentialPrivacy()
	if dp == nil {
		t.Fatal("no block")
	}
	if dp.EpsilonTotal != 3 || dp.DeltaTotal != 1e-6 || dp.EpsilonPerRun != 0.5 || dp.DeltaPerRun != 1e-7 ||
		dp.MaxGroupsContributed != 4 || dp.MaxContributionsPerGroup != 1 {
		t.Fatalf("block %+v", dp)
	}
	if b, ok := dp.Bound("value"); !ok || b.Lower != 0 || b.Upper != 500 {
		t.Fatalf("bounds %+v", dp.Bounds)
	}
	g := dp.PublicGroup("campaign")
	if g == nil || g.Type.Kind != KindString || len(g.Values) != 2 || g.Values[0] != "spring" || g.Values[1] != "summer" {
		t.Fatalf("public groups %+v", dp.PublicGroups)
	}
	if got := dp.RunsAllowed(); got != 6 {
		t.Fatalf("RunsAllowed = %d, want 6 (ε 3 at 0.5; δ 1e-6 at 1e-7 allows 10)", got)
	}
	if c.ID() == mustParse(t, baseYAML()).ID() {
		t.Fatal("the block does not change the contract id")
	}
}

// TestContractWithoutBlockKeepsItsEncoding: a contract without the block
// encodes exactly the output fields it always had, so existing contract
// ids do not change.
func TestContractWithoutBlockKeepsItsEncoding(t *testing.T) {
	c := mustParse(t, baseYAML())
	var doc map[string]any
	if err := canon.NewDecoder(canon.Limits{MaxNestedLevels: 8, MaxArrayElements: 100, MaxMapPairs: 100}).Decode("contract", c.CanonicalBytes(), &doc); err != nil {
		t.Fatal(err)
	}
	out := doc["output"].(map[any]any)
	if len(out) != 5 || out["differential_privacy"] != nil {
		t.Fatalf("output encodes %v", out)
	}
	with := mustParse(t, dpYAML())
	doc = nil
	if err := canon.NewDecoder(canon.Limits{MaxNestedLevels: 8, MaxArrayElements: 100, MaxMapPairs: 100}).Decode("contract", with.CanonicalBytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["output"].(map[any]any)["differential_privacy"] == nil {
		t.Fatal("the block is not encoded")
	}
}

func TestDifferentialPrivacyIDIgnoresPresentation(t *testing.T) {
	base := mustParse(t, dpYAML())
	variants := map[string]string{
		"integers and plain decimals": strings.NewReplacer("epsilon_total: 3.0", "epsilon_total: 3", "1.0e-6", "0.000001", "[0, 500]", "[0.0, 5e2]").Replace(dpYAML()),
		"block style and key order": strings.Replace(dpYAML(), "    bounds: {value: [0, 500]}\n    public_groups: {campaign: [spring, summer]}\n",
			"    public_groups:\n      campaign:\n        - spring   # first\n        - summer\n    bounds:\n      value: [0, 500]\n", 1),
		"json":  reencode(t, dpYAML(), true),
		"yaml2": reencode(t, dpYAML(), false),
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
}

func TestDifferentialPrivacyIDChangesWithEveryField(t *testing.T) {
	base := mustParse(t, dpYAML())
	edits := map[string][2]string{
		"epsilon_total":   {"epsilon_total: 3.0", "epsilon_total: 3.5"},
		"delta_total":     {"delta_total: 1.0e-6", "delta_total: 2.0e-6"},
		"epsilon_per_run": {"epsilon_per_run: 0.5", "epsilon_per_run: 0.25"},
		"delta_per_run":   {"delta_per_run: 1.0e-7", "delta_per_run: 2.0e-7"},
		"max groups":      {"max_groups_contributed: 4", "max_groups_contributed: 5"},
		"max contribs":    {"max_contributions_per_group: 1", "max_contributions_per_group: 2"},
		"bound":           {"[0, 500]", "[0, 501]"},
		"bound column":    {"{value: [0, 500]}", "{value: [0, 500], shown_at_x: [0, 1]}"},
		"public value":    {"[spring, summer]", "[spring, autumn]"},
		"public order":    {"[spring, summer]", "[summer, spring]"},
		"no public":       {"    public_groups: {campaign: [spring, summer]}\n", ""},
	}
	for name, e := range edits {
		text := strings.Replace(dpYAML(), e[0], e[1], 1)
		if name == "bound column" {
			text = strings.Replace(text, "{name: value, type: float64}", "{name: value, type: float64}\n      - {name: shown_at_x, type: int64}", 1)
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

func TestBadDifferentialPrivacy(t *testing.T) {
	const p = "output.differential_privacy"
	cases := []struct {
		name      string
		old, new  string
		field     string
		line      int
		errSubstr string
	}{
		{"unknown field", "    max_contributions_per_group: 1\n", "    max_contributions_per_group: 1\n    epsilon: 1\n", p + ".epsilon", 49, "unknown field"},
		{"missing epsilon_total", "    epsilon_total: 3.0\n", "", p + ".epsilon_total", 43, "required field is missing"},
		{"not a mapping", dpBlock, "  differential_privacy: [1]\n", p, 42, "must be a mapping"},
		{"epsilon as string", "epsilon_total: 3.0", "epsilon_total: \"3\"", p + ".epsilon_total", 43, "must be a number"},
		{"epsilon infinite", "epsilon_total: 3.0", "epsilon_total: .inf", p + ".epsilon_total", 43, "finite decimal number"},
		{"epsilon nan", "epsilon_total: 3.0", "epsilon_total: .nan", p + ".epsilon_total", 43, "finite decimal number"},
		{"epsilon overflow", "epsilon_total: 3.0", "epsilon_total: 1e999", p + ".epsilon_total", 43, "must be a number"},
		{"epsilon hex", "epsilon_total: 3.0", "epsilon_total: 0x3", p + ".epsilon_total", 43, "finite decimal number"},
		{"zero epsilon", "epsilon_total: 3.0", "epsilon_total: 0", p + ".epsilon_total", 43, "must be positive"},
		{"negative epsilon per run", "epsilon_per_run: 0.5", "epsilon_per_run: -0.5", p + ".epsilon_per_run", 45, "must be positive"},
		{"tiny epsilon per run", "epsilon_per_run: 0.5", "epsilon_per_run: 1e-12", p + ".epsilon_per_run", 45, "at least"},
		{"huge epsilon per run", "epsilon_per_run: 0.5", "epsilon_per_run: 1000", p + ".epsilon_per_run", 45, "at most 100"},
		{"per run over total", "epsilon_per_run: 0.5", "epsilon_per_run: 3.5", p + ".epsilon_per_run", 45, "more than epsilon_total"},
		{"zero delta", "delta_total: 1.0e-6", "delta_total: 0", p + ".delta_total", 44, "must be positive"},
		{"delta one", "delta_total: 1.0e-6", "delta_total: 1", p + ".delta_total", 44, "less than 1"},
		{"delta per run over total", "delta_per_run: 1.0e-7", "delta_per_run: 1.0e-5", p + ".delta_per_run", 46, "more than delta_total"},
		{"zero groups", "max_groups_contributed: 4", "max_groups_contributed: 0", p + ".max_groups_contributed", 47, "from 1 to"},
		{"huge contributions", "max_contributions_per_group: 1", "max_contributions_per_group: 10000000", p + ".max_contributions_per_group", 48, "from 1 to"},
		{"groups as float", "max_groups_contributed: 4", "max_groups_contributed: 4.5", p + ".max_groups_contributed", 47, "must be an integer"},
		{"bound reversed", "[0, 500]", "[500, 0]", p + ".bounds.value", 49, "less than upper"},
		{"bound equal", "[0, 500]", "[5, 5]", p + ".bounds.value", 49, "less than upper"},
		{"bound infinite", "[0, 500]", "[0, .inf]", p + ".bounds.value[1]", 49, "finite decimal number"},
		{"bound huge", "[0, 500]", "[0, 1e300]", p + ".bounds.value", 49, "2^53"},
		{"bound one number", "[0, 500]", "[0]", p + ".bounds.value", 49, "two numbers"},
		{"bound string", "[0, 500]", "[\"0\", 500]", p + ".bounds.value[0]", 49, "must be a number"},
		{"bound unknown column", "{value: [0, 500]}", "{valeu: [0, 500]}", p + ".bounds.valeu", 49, "no dataset has a column"},
		{"bound string column", "{value: [0, 500]}", "{campaign: [0, 500]}", p + ".bounds.campaign", 49, "only numeric columns"},
		{"bound bad name", "{value: [0, 500]}", "{\"va lue\": [0, 500]}", p + ".bounds.va lue", 49, "not a valid column name"},
		{"bound duplicate", "{value: [0, 500]}", "{value: [0, 500], value: [0, 5]}", p + ".bounds.value", 49, "duplicate"},
		{"bounds not a map", "{value: [0, 500]}", "[0, 500]", p + ".bounds", 49, "mapping from column name"},
		{"public unknown column", "{campaign: [spring, summer]}", "{campaing: [spring]}", p + ".public_groups.campaing", 50, "no dataset has a column"},
		{"public wrong type", "[spring, summer]", "[spring, 12]", p + ".public_groups.campaign[1]", 50, "must be a string"},
		{"public duplicate", "[spring, summer]", "[spring, spring]", p + ".public_groups.campaign[1]", 50, "listed twice"},
		{"public null", "[spring, summer]", "[spring, null]", p + ".public_groups.campaign[1]", 50, "must be a string value"},
		{"public empty", "[spring, summer]", "[]", p + ".public_groups.campaign", 50, "lists no values"},
		{"public not a list", "[spring, summer]", "spring", p + ".public_groups.campaign", 50, "must be a list"},
		{"public timestamp", "{campaign: [spring, summer]}", "{shown_at: [\"2026-01-01\"]}", p + ".public_groups.shown_at[0]", 50, "RFC 3339"},
		{"block without the mode", "  mode: differential_privacy\n", "", p, 0, "only for mode differential_privacy"},
		{"mode without the block", dpBlock, "", "output.mode", 0, "needs an output.differential_privacy block"},
		{"k in mode differential_privacy", "  mode: differential_privacy\n", "  mode: differential_privacy\n  min_group_size: 5\n", "output.min_group_size", 0, "not used in mode differential_privacy"},
		{"public float key", "{campaign: [spring, summer]}", "{value: [\"x\"]}", p + ".public_groups.value[0]", 50, "finite number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refusedEdit(t, dpYAML(), tc.old, tc.new, tc.field, tc.errSubstr, tc.line)
		})
	}
}

// TestPublicGroupValuesAreTyped: each column type takes its own kind of
// value, in its canonical Go form.
func TestPublicGroupValuesAreTyped(t *testing.T) {
	cols := "      - {name: user_id, type: string}\n      - {name: value, type: float64}\n" +
		"      - {name: flag, type: bool}\n      - {name: n32, type: int32}\n      - {name: day, type: date}\n" +
		"      - {name: at, type: timestamp}\n      - {name: price, type: \"decimal(6,2)\"}\n"
	base := strings.Replace(dpYAML(), "      - {name: user_id, type: string}\n      - {name: value, type: float64}\n", cols, 1)
	good := map[string]struct {
		list string
		want []any
	}{
		"flag":  {"[true, false]", []any{true, false}},
		"n32":   {"[1, -2147483648]", []any{int64(1), int64(-2147483648)}},
		"value": {"[1, 2.5]", []any{1.0, 2.5}},
		"day":   {"[2026-06-01, \"2026-06-02\"]", []any{time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)}},
		"at":    {"[\"2026-06-01T12:00:00.000001+02:00\"]", []any{time.Date(2026, 6, 1, 10, 0, 0, 1000, time.UTC)}},
		"price": {"[12.5, \"0012.50\", -3, \"0.07\"]", nil}, // 12.5 and 0012.50 are one value: refused below
	}
	for col, g := range good {
		text := strings.Replace(base, "{campaign: [spring, summer]}", "{"+col+": "+g.list+"}", 1)
		c, err := Parse([]byte(text), ParseOptions{Now: testNow})
		if col == "price" {
			if err == nil || !strings.Contains(err.Error(), "listed twice") {
				t.Fatalf("price: 12.5 and 0012.50 accepted as two values: %v", err)
			}
			text = strings.Replace(text, "\"0012.50\", ", "", 1)
			c, err = Parse([]byte(text), ParseOptions{Now: testNow})
			g.want = []any{"12.50", "-3.00", "0.07"}
		}
		if err != nil {
			t.Fatalf("%s: %v", col, err)
		}
		got := c.DifferentialPrivacy().PublicGroup(col).Values
		if len(got) != len(g.want) {
			t.Fatalf("%s: values %v, want %v", col, got, g.want)
		}
		for i := range got {
			if tt, ok := got[i].(time.Time); ok {
				if !tt.Equal(g.want[i].(time.Time)) || tt.Location() != time.UTC {
					t.Errorf("%s[%d] = %v, want %v", col, i, got[i], g.want[i])
				}
			} else if got[i] != g.want[i] {
				t.Errorf("%s[%d] = %#v, want %#v", col, i, got[i], g.want[i])
			}
		}
	}
	for _, bad := range []struct{ col, list, msg string }{
		{"n32", "[2147483648]", "out of range"},
		{"flag", "[yes]", "true or false"},
		{"price", "[12345.5]", "digits before the point"},
		{"price", "[1.234]", "digits after the point"},
		{"price", "[\"1e2\"]", "plain decimal"},
		{"day", "[2026-13-01]", "date such as"},
		{"at", "[\"2026-06-01T12:00:00.0000001Z\"]", "microseconds"},
	} {
		text := strings.Replace(base, "{campaign: [spring, summer]}", "{"+bad.col+": "+bad.list+"}", 1)
		if _, err := Parse([]byte(text), ParseOptions{Now: testNow}); err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%s %s: want %q, got %v", bad.col, bad.list, bad.msg, err)
		}
	}
}

// TestColumnOfTwoTypes: a bound names every column of its name, which must
// have one type across the datasets.
func TestColumnOfTwoTypes(t *testing.T) {
	text := strings.Replace(dpYAML(), "      - {name: shown_at, type: timestamp}\n", "      - {name: shown_at, type: timestamp}\n      - {name: value, type: string}\n", 1)
	_, err := Parse([]byte(text), ParseOptions{Now: testNow})
	if err == nil || !strings.Contains(err.Error(), `column "value" is string in dataset impressions but float64 in dataset conversions`) {
		t.Fatalf("got %v", err)
	}
}

func TestRunsAllowedIsExactInDecimal(t *testing.T) {
	for _, tc := range []struct {
		et, er, dt, dr float64
		want           int64
	}{
		{0.3, 0.1, 1e-6, 1e-7, 3}, // 3 × 0.1 = 0.3 in decimal, though not in float64
		{1, 0.1, 1e-6, 1e-7, 10},
		{1, 0.3, 1e-6, 1e-7, 3},
		{3, 0.5, 1e-6, 3e-7, 3}, // delta allows 3
		{0.7, 0.7, 0.5, 0.5, 1},
	} {
		dp := &DifferentialPrivacy{EpsilonTotal: tc.et, EpsilonPerRun: tc.er, DeltaTotal: tc.dt, DeltaPerRun: tc.dr}
		if got := dp.RunsAllowed(); got != tc.want {
			t.Errorf("%+v: %d runs, want %d", tc, got, tc.want)
		}
	}
}
