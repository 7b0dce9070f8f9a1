// Command gen writes the clinical-cohort example's datasets (patients and
// enrolments) and the algorithm's expected result, fills the scenario's
// contract template, and checks a clean room's result against the
// expectation.
//
//	go run ./examples/clinical-cohort/gen --out DIR [--rows N] [--seed S] [--format csv|parquet|both] [--k K]
//	go run ./examples/clinical-cohort/gen check --expected DIR/expected.csv [--suppressed N] RESULT
//	go run ./examples/clinical-cohort/gen contract --set NAME=VALUE ... [--out FILE]
//
// See the example's README.md.
package main

import (
	"os"

	clinicalcohort "cleanroom.dev/cleanroom/examples/clinical-cohort"
	"cleanroom.dev/cleanroom/examples/internal/scenario"
)

func main() {
	os.Exit(scenario.Main(clinicalcohort.Spec, os.Args[1:], os.Stdout, os.Stderr))
}
