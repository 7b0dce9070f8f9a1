// Command wasm is the risk model compiled as a Cleanroom model:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o risk_band.wasm ./examples/clinical-cohort/riskmodel/wasm
//
// The contract names it risk_band(int64, string, float64, int32) -> string.
package main

import (
	"cleanroom.dev/cleanroom/cleanroom/model"
	"cleanroom.dev/cleanroom/examples/clinical-cohort/riskmodel"
)

func init() { model.Func4(riskmodel.Band) }

func main() {}
