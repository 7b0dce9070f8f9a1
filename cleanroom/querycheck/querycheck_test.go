package querycheck_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/querycheck"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/sqlcases"
)

func column(t *testing.T, name, typ string) contracts.Column {
	t.Helper()
	ct, err := contracts.ParseColumnType(typ)
	if err != nil {
		t.Fatal(err)
	}
	return contracts.Column{Name: name, Type: ct}
}

// statementContract has the statement table's datasets, unprotected.
func statementContract(t *testing.T) *contracts.Contract {
	return &contracts.Contract{
		Datasets: []contracts.Dataset{
			{ID: "impressions", Columns: []contracts.Column{column(t, "user_id", "string"), column(t, "campaign", "string"), column(t, "shown_at", "timestamp")}},
			{ID: "conversions", Columns: []contracts.Column{column(t, "user_id", "string"), column(t, "value", "float64"), column(t, "converted_at", "timestamp")}},
		},
		Output: contracts.Output{Mode: contracts.ModeCustom},
	}
}

// privacyContract has the privacy table's datasets, protected as declared,
// in mode aggregate.
func privacyContract(t *testing.T) *contracts.Contract {
	ct := &contracts.Contract{Output: contracts.Output{Mode: contracts.ModeAggregate}}
	for _, d := range sqlcases.PrivacyDatasets {
		ds := contracts.Dataset{ID: d.Name, PrivacyUnit: d.PrivacyUnit, Dimensions: d.Dimensions}
		for _, c := range d.Columns {
			ds.Columns = append(ds.Columns, column(t, c[0], c[1]))
		}
		for col, fns := range d.Aggregations {
			ds.Aggregations = append(ds.Aggregations, contracts.Aggregation{Column: col, Functions: fns})
		}
		ct.Datasets = append(ct.Datasets, ds)
	}
	return ct
}

// TestSameVerdictsAsTheCoordinator holds the local check to the tables the
// coordinator's statement check and privacy analysis are held to: each
// refused algorithm is refused at the statement or privacy stage with the
// fragment the table names, each accepted one passes every stage,
// binding included (the coordinator runs it).
func TestSameVerdictsAsTheCoordinator(t *testing.T) {
	tables := []struct {
		name     string
		cases    []sqlcases.Case
		contract *contracts.Contract
	}{
		{"statement", sqlcases.Load(t), statementContract(t)},
		{"privacy", sqlcases.LoadPrivacy(t), privacyContract(t)},
	}
	for _, tb := range tables {
		for _, c := range tb.cases {
			t.Run(tb.name+"/"+c.Name, func(t *testing.T) {
				err := querycheck.Check(context.Background(), c.SQL, tb.contract)
				if !c.Refuse {
					if err != nil {
						t.Fatalf("refused an algorithm the coordinator accepts and runs: %v", err)
					}
					return
				}
				var r *querycheck.Refusal
				if !errors.As(err, &r) {
					t.Fatalf("not refused: %v", err)
				}
				if r.Stage == querycheck.StageBind {
					t.Fatalf("refused only when binding, not by the %s check: %v", tb.name, err)
				}
				if !strings.Contains(r.Reason, c.Want) {
					t.Fatalf("refusal %q lacks %q", r.Reason, c.Want)
				}
			})
		}
	}
}

// TestBindNamesWhatIsMissing: a query the statement check accepts but the
// datasets cannot answer is refused when binding, naming the column,
// table or function; the contract's models bind with their result type.
func TestBindNamesWhatIsMissing(t *testing.T) {
	ct := statementContract(t)
	ct.Models = []contracts.Model{{Name: "risk_band", Args: []contracts.ColumnType{{Kind: contracts.KindFloat64}}, Result: contracts.ColumnType{Kind: contracts.KindString}}}
	for _, tc := range []struct {
		name, sql, want string
	}{
		{"column", "SELECT campain, count(*) AS n FROM impressions GROUP BY campain", `"campain"`},
		{"qualified column", "SELECT i.campaign, sum(c.amount) AS total FROM impressions i JOIN conversions c USING (user_id) GROUP BY 1", `amount`},
		{"type", "SELECT campaign, sum(campaign) AS s FROM impressions GROUP BY campaign", "sum"},
		{"model arity", "SELECT risk_band(value, value) AS band FROM conversions", "risk_band"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := querycheck.Check(context.Background(), tc.sql, ct)
			var r *querycheck.Refusal
			if !errors.As(err, &r) || r.Stage != querycheck.StageBind || !strings.Contains(r.Reason, tc.want) {
				t.Fatalf("got %v, want a bind refusal naming %s", err, tc.want)
			}
		})
	}
	if err := querycheck.Check(context.Background(), "SELECT risk_band(value) AS band, count(*) AS n FROM conversions GROUP BY 1", ct); err != nil {
		t.Fatalf("a model call of the contract's arity: %v", err)
	}
}
