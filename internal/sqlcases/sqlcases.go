// Package sqlcases reads the table of algorithms the statement check is
// tested with (cleanroom/sqlcheck/testdata/algorithms.txtar), shared by the
// tests of cleanroom/sqlcheck, coordinator/engine and coordinator, so that
// every level is held to the same cases.
package sqlcases

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// Datasets are the dataset names the cases read: impressions(user_id,
// campaign, shown_at) and conversions(user_id, value, converted_at).
var Datasets = []string{"impressions", "conversions"}

// Case is one algorithm of the table.
type Case struct {
	Name   string
	SQL    string
	Refuse bool   // the check must refuse it
	Want   string // a fragment the refusal must contain
	Rule   string // the rule the refusal must name (privacy table), or ""
	// Params are the parameter names an accepted case of the parameter
	// table uses, sorted.
	Params []string
}

// Path is the table's file.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "cleanroom", "sqlcheck", "testdata", "algorithms.txtar")
}

// Load reads the table.
func Load(t testing.TB) []Case {
	t.Helper()
	cases, err := parse(Path())
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

// PrivacyPath is the table of algorithms for the privacy analysis of mode
// aggregate (cleanroom/sqlcheck/testdata/privacy.txtar), over
// PrivacyDatasets.
func PrivacyPath() string {
	return filepath.Join(filepath.Dir(Path()), "privacy.txtar")
}

// LoadPrivacy reads the privacy analysis's table.
func LoadPrivacy(t testing.TB) []Case {
	t.Helper()
	cases, err := parse(PrivacyPath())
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

// PrivacyDataset is a dataset of the privacy table, as a contract declares
// it.
type PrivacyDataset struct {
	Name         string
	Columns      [][2]string // name, contract type
	PrivacyUnit  string
	Dimensions   []string
	Aggregations map[string][]string
}

// PrivacyDatasets are the datasets the privacy table's algorithms read:
// impressions and conversions protected by user_id, segments (a
// recipient's own list of users) unprotected, and visits protected by
// patient_id with dimensions and aggregations.
var PrivacyDatasets = []PrivacyDataset{
	{Name: "impressions", PrivacyUnit: "user_id",
		Columns: [][2]string{{"user_id", "string"}, {"campaign", "string"}, {"shown_at", "timestamp"}}},
	{Name: "conversions", PrivacyUnit: "user_id",
		Columns: [][2]string{{"user_id", "string"}, {"order_id", "string"}, {"value", "float64"}, {"converted_at", "timestamp"}}},
	{Name: "segments",
		Columns: [][2]string{{"user_id", "string"}, {"segment", "string"}}},
	{Name: "visits", PrivacyUnit: "patient_id", Dimensions: []string{"site", "age"},
		Aggregations: map[string][]string{"cost": {"sum", "avg", "max"}, "age": {"avg"}},
		Columns:      [][2]string{{"patient_id", "string"}, {"site", "string"}, {"age", "int64"}, {"cost", "float64"}, {"diagnosis", "string"}}},
}

// PrivacyDatasetNames are the names of PrivacyDatasets.
func PrivacyDatasetNames() []string {
	var out []string
	for _, d := range PrivacyDatasets {
		out = append(out, d.Name)
	}
	return out
}

func parse(path string) ([]Case, error) {
	a, err := txtar.ParseFile(path)
	if err != nil {
		return nil, err
	}
	var out []Case
	seen := map[string]bool{}
	for _, f := range a.Files {
		kind, name, ok := strings.Cut(f.Name, "/")
		if !ok || seen[name] {
			return nil, fmt.Errorf("%s: file %q: want refuse/NAME or accept/NAME, names unique", path, f.Name)
		}
		seen[name] = true
		text := strings.TrimSuffix(string(f.Data), "\n")
		c := Case{Name: name, SQL: text}
		switch kind {
		case "refuse":
			first, rest, _ := strings.Cut(text, "\n")
			want, ok := strings.CutPrefix(first, "want: ")
			if !ok || want == "" || rest == "" {
				return nil, fmt.Errorf("%s: %s: a refused case starts with a line \"want: FRAGMENT\", then the algorithm", path, f.Name)
			}
			c.Refuse, c.Want, c.SQL = true, want, rest
			if r, ok := strings.CutPrefix(rest, "rule: "); ok {
				rule, sql, _ := strings.Cut(r, "\n")
				c.Rule, c.SQL = strings.TrimSpace(rule), sql
			}
		case "accept":
		default:
			return nil, fmt.Errorf("%s: file %q: want refuse/NAME or accept/NAME", path, f.Name)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	return out, nil
}

// ParametersPath is the table of algorithms with parameters
// (cleanroom/sqlcheck/testdata/parameters.txtar): "refuse/NAME" files as in
// the main table, and "accept/NAME" files whose first line is "params: "
// and the names the algorithm uses, comma-separated, then the algorithm.
func ParametersPath() string {
	return filepath.Join(filepath.Dir(Path()), "parameters.txtar")
}

// LoadParameters reads the table of algorithms with parameters.
func LoadParameters(t testing.TB) []Case {
	t.Helper()
	cases, err := parse(ParametersPath())
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if c.Refuse {
			continue
		}
		first, rest, _ := strings.Cut(c.SQL, "\n")
		names, ok := strings.CutPrefix(first, "params: ")
		if !ok || rest == "" {
			t.Fatalf("%s: %s: an accepted case starts with a line \"params: NAME, ...\", then the algorithm", ParametersPath(), c.Name)
		}
		for _, n := range strings.Split(names, ",") {
			if n = strings.TrimSpace(n); n != "" {
				cases[i].Params = append(cases[i].Params, n)
			}
		}
		cases[i].SQL = rest
	}
	return cases
}
