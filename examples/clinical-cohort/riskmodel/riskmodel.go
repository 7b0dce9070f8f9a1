// Package riskmodel is the sponsor's confidential risk model of the
// clinical-cohort example: a small logistic regression over a patient's
// age, sex, HbA1c and eGFR that places the patient in a risk band. Its
// weights are the sponsor's secret; the hospital approves only the
// commitment to the compiled module. The same Go code is compiled to
// WebAssembly (./wasm, the module the coordinator runs) and natively (the
// example's expected results), so the two can be compared row by row.
package riskmodel

// The model's weights: the logit of a serious complication within five
// years is Intercept + Age·age + Male·[sex = M] + HbA1c·hba1c + EGFR·egfr.
const (
	Intercept = -7.2
	Age       = 0.052
	Male      = 0.31
	HbA1c     = 0.43
	EGFR      = -0.021
)

// The bands' bounds on the logit: probabilities 0.15, 0.30 and 0.50. The
// model compares logits, not probabilities, so that no transcendental
// function (whose last bit may differ between platforms) decides a band.
const (
	lowBound      = -1.7346010553881064 // logit(0.15)
	moderateBound = -0.8472978603872037 // logit(0.30)
	highBound     = 0.0                 // logit(0.50)
)

// Logit returns the model's logit for one patient. Each product is rounded
// on its own (the explicit conversions forbid fused multiply-adds), so the
// result is the same bits natively and in WebAssembly.
func Logit(age int64, sex string, hba1c float64, egfr int32) float64 {
	z := Intercept
	z += float64(Age * float64(age))
	if sex == "M" {
		z += Male
	}
	z += float64(HbA1c * hba1c)
	z += float64(EGFR * float64(egfr))
	return z
}

// Band returns the patient's risk band: "low", "moderate", "high" or
// "very high".
func Band(age int64, sex string, hba1c float64, egfr int32) string {
	switch z := Logit(age, sex, hba1c, egfr); {
	case z < lowBound:
		return "low"
	case z < moderateBound:
		return "moderate"
	case z < highBound:
		return "high"
	default:
		return "very high"
	}
}
