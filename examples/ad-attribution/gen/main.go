// Command gen writes the ad-attribution example's datasets (impressions and
// conversions) and the query's expected result, fills the scenario's
// contract template, and checks a clean room's result against the
// expectation.
//
//	go run ./examples/ad-attribution/gen --out DIR [--rows N] [--seed S] [--format csv|parquet|both] [--k K]
//	go run ./examples/ad-attribution/gen check --expected DIR/expected.csv [--suppressed N] RESULT
//	go run ./examples/ad-attribution/gen contract --set NAME=VALUE ... [--out FILE]
//
// See the example's README.md.
package main

import (
	"os"

	adattribution "cleanroom.dev/cleanroom/examples/ad-attribution"
	"cleanroom.dev/cleanroom/examples/internal/scenario"
)

func main() {
	os.Exit(scenario.Main(adattribution.Spec, os.Args[1:], os.Stdout, os.Stderr))
}
