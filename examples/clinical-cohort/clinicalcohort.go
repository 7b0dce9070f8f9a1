// Package clinicalcohort is the clinical-cohort example scenario: a
// hospital network's patients and a drug maker's register of the patients
// already enrolled in its trials, counted by the drug maker's confidential
// eligibility algorithm per site and band of its confidential risk model. It generates both datasets at
// any size, deterministically from a seed, and computes the algorithm's
// result on the side, without a database, so that a clean room's output can
// be checked against it.
//
// README.md describes the scenario, the data and the eligibility rules.
package clinicalcohort

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/examples/clinical-cohort/riskmodel"
	"cleanroom.dev/cleanroom/examples/internal/scenario"
)

// Query is the sponsor's confidential algorithm, byte for byte as in
// query.sql (the contract names its SHA-256).
//
//go:embed query.sql
var Query string

// RiskModelPackage is the Go package of the sponsor's risk model, built
// with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared into the module the
// contract's model risk_band commits to.
const RiskModelPackage = "./examples/clinical-cohort/riskmodel/wasm"

// ContractTemplate is contract.yaml.tmpl: the scenario's contract with
// {{NAME}} placeholders (see scenario.Fill).
//
//go:embed contract.yaml.tmpl
var ContractTemplate []byte

// The datasets' columns, as in the contract template.
var (
	PatientColumns = scenario.MustColumns(
		"patient_id", "string", "site", "string", "sex", "string", "birth_date", "date",
		"diagnosis", "string", "hba1c", "decimal(4,1)", "egfr", "int32", "last_visit", "date")
	EnrolmentColumns = scenario.MustColumns("patient_id", "string", "trial", "string", "enrolled_on", "date", "ended_on", "date")
	// ResultColumns are the algorithm's result columns.
	ResultColumns = scenario.MustColumns("site", "string", "risk_band", "string", "patients", "int64")
)

// Dataset ids (and SQL table names), as in the contract template.
const (
	Patients   = "patients"
	Enrolments = "enrolments"
)

// K is the contract template's min_group_size on the patients column.
const K = 20

// DefaultRows is the demo size: the number of patients.
const DefaultRows = 40_000

// Spec is the scenario for the shared generator command line.
var Spec = scenario.Spec{
	Name:             "clinical-cohort",
	RowsHelp:         "number of patients (enrolments are about 13% of that)",
	DefaultRows:      DefaultRows,
	DefaultK:         K,
	ContractTemplate: ContractTemplate,
	ResultColumns:    ResultColumns,
	Generate:         Generate,
}

// The eligibility criteria, as query.sql states them.
var (
	referenceDate = civil(2026, 12, 1)
	seenSince     = civil(2025, 6, 1)
)

// MinAge and MaxAge are the cohort's age bounds the scenario runs with:
// the values of the query's parameters $min_age and $max_age (run.sh gives
// them with cleanroom run --param), which the generator's expected counts
// use.
const MinAge, MaxAge = 40, 75

// Parameters are the values of the query's parameters a run gives,
// name → text, as `cleanroom run --param` takes them.
var Parameters = map[string]string{"min_age": strconv.Itoa(MinAge), "max_age": strconv.Itoa(MaxAge)}

// LiteralQuery is Query with each parameter written as the literal of its
// value in Parameters: what plain DuckDB runs to give the clean room's
// result.
func LiteralQuery() string {
	return strings.NewReplacer("$min_age", strconv.Itoa(MinAge), "$max_age", strconv.Itoa(MaxAge)).Replace(Query)
}

const (
	minAge, maxAge     = MinAge, MaxAge
	minHbA1c, maxHbA1c = 75, 105 // tenths of a percent
	minEGFR            = 45
)

// bands are the risk model's bands, in the query's order (ORDER BY
// risk_band sorts them as strings).
var bands = []string{"high", "low", "moderate", "very high"}

// band returns the index in bands of the sponsor's risk model's band for
// an eligible patient, computed natively in Go by the same code the
// WebAssembly module runs.
func band(p *patient) int {
	b := riskmodel.Band(int64(p.ageAtReference), p.sex, float64(p.hba1c)/10, p.egfr)
	return slices.Index(bands, b)
}

// weighted is a name and its share of the patients.
type weighted struct {
	name  string
	share float64
}

// pick draws one of items by share.
func pick(rng *rand.Rand, items []weighted) int {
	u := rng.Float64()
	for i, it := range items {
		if u -= it.share; u < 0 {
			return i
		}
	}
	return len(items) - 1
}

// sites of the hospital network and their share of its patients.
var sites = []weighted{
	{"central", 0.30}, {"north", 0.18}, {"east", 0.15}, {"south", 0.12},
	{"west", 0.10}, {"riverside", 0.08}, {"harbour", 0.05}, {"hillcrest", 0.02},
}

// diagnoses are primary ICD-10 codes seen by the network's diabetes and
// endocrinology clinics, and their shares.
var diagnoses = []weighted{
	{"E11.9", 0.18}, {"E11.65", 0.06}, {"E11.22", 0.04}, {"E11.40", 0.02},
	{"E10.9", 0.16}, {"E66.9", 0.14}, {"I10", 0.18}, {"E78.5", 0.14}, {"E03.9", 0.08},
}

// trials are the sponsor's ongoing and past trials.
var trials = []string{"CARDIO-310", "GLP7-201", "RENAL-115"}

// civil returns the days since 1970-01-01 of a date.
func civil(y int, m time.Month, d int) int32 {
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

func dateOf(days int32) time.Time { return time.Unix(int64(days)*86400, 0).UTC() }

// ageOn is the age in completed years on the reference date (1 December),
// as the query computes it.
func ageOn(birth int32) int {
	b := dateOf(birth)
	age := 2026 - b.Year()
	if int(b.Month())*100+b.Day() > 1201 {
		age--
	}
	return age
}

// Generate writes patients (cfg.Rows of them) and enrolments and the
// expected result of Query into cfg.Dir. Memory stays bounded by one batch
// per file whatever cfg.Rows is. If ctx is cancelled, it stops within a
// batch, removes what it wrote and returns ctx.Err().
func Generate(ctx context.Context, cfg scenario.Config) (sum *scenario.Summary, err error) {
	if cfg.Rows < 1 {
		return nil, fmt.Errorf("the number of patients must be at least 1, not %d", cfg.Rows)
	}
	if cfg.Rows >= 1<<39 {
		return nil, fmt.Errorf("at most %d patients", int64(1)<<39-1)
	}
	return scenario.Generate(ctx, cfg, []scenario.Dataset{{Name: Patients, Columns: PatientColumns}, {Name: Enrolments, Columns: EnrolmentColumns}},
		ResultColumns, func(s []*arrow.Schema) scenario.Generator { return newGenerator(cfg, s[0], s[1]) })
}

type patient struct {
	site, diagnosis       int
	sex                   string
	birth, lastVisit      int32
	hba1c, egfr           int32 // hba1c in tenths
	hasHbA1c, hasEGFR     bool
	enrolments            []enrolment
	activeEnrolment       bool
	eligible              bool
	ageAtReference, group int
}

type enrolment struct {
	trial         int
	enrolled, end int32
	ongoing       bool // no end date
}

type generator struct {
	cfg             scenario.Config
	rng             *rand.Rand
	idKey, idOffset uint64
	pat, enr        *array.RecordBuilder
	patN, enrN      int
	counts          []int64 // eligible patients per site × band
	p               patient
}

func newGenerator(cfg scenario.Config, patSchema, enrSchema *arrow.Schema) *generator {
	g := &generator{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x636c696e69636164)), // "clinicad"
		pat:    array.NewRecordBuilder(memory.DefaultAllocator, patSchema),
		enr:    array.NewRecordBuilder(memory.DefaultAllocator, enrSchema),
		counts: make([]int64, len(sites)*len(bands)),
	}
	g.idKey, g.idOffset = g.rng.Uint64()|1, g.rng.Uint64()
	return g
}

// Release frees the generator's builders.
func (g *generator) Release() {
	g.pat.Release()
	g.enr.Release()
}

// patientID turns an index into a research id, RID and 10 hex digits: a
// bijection on 40 bits keyed by the seed. Indices from 2^39 up name
// patients of other hospitals, so they never meet the network's own.
func (g *generator) patientID(i uint64) string {
	const mask = 1<<40 - 1
	x := ((i + g.idOffset) * g.idKey) & mask
	x ^= x >> 17
	x = (x * 0x9e3779b97f) & mask
	x ^= x >> 21
	s := strings.ToUpper(strconv.FormatUint(x, 16))
	return "RID" + strings.Repeat("0", 10-len(s)) + s
}

func clampRound(v, lo, hi float64) int32 { return int32(math.Round(min(max(v, lo), hi))) }

// edgeBirths are birth dates on the edges of the age criterion: 40 today,
// 40 tomorrow, 75 (76 tomorrow), 76 today.
var edgeBirths = []int32{civil(1986, 12, 1), civil(1986, 12, 2), civil(1950, 12, 2), civil(1950, 12, 1)}

// draw makes one patient of the network.
func (g *generator) draw() {
	rng := g.rng
	p := &g.p
	*p = patient{enrolments: p.enrolments[:0]}
	p.site = pick(rng, sites)
	p.diagnosis = pick(rng, diagnoses)
	p.sex = "F"
	if rng.IntN(2) == 1 {
		p.sex = "M"
	}
	if rng.Float64() < 0.03 {
		p.birth = edgeBirths[rng.IntN(len(edgeBirths))]
	} else {
		age := min(max(62+14*rng.NormFloat64(), 18), 98)
		p.birth = referenceDate - int32(age*365.25) - rng.Int32N(365)
	}
	age := float64(ageOn(p.birth))
	code := diagnoses[p.diagnosis].name
	var mean, sd float64
	switch {
	case strings.HasPrefix(code, "E11"):
		mean, sd = 7.6, 1.5
	case code == "E10.9":
		mean, sd = 8.0, 1.2
	default:
		mean, sd = 5.6, 0.5
	}
	p.hba1c = clampRound((mean+sd*rng.NormFloat64())*10, 40, 145)
	p.hasHbA1c = rng.Float64() >= 0.05
	p.egfr = clampRound(100-0.6*(age-30)+15*rng.NormFloat64(), 5, 130)
	p.hasEGFR = rng.Float64() >= 0.05
	switch u := rng.Float64(); {
	case u < 0.01:
		p.lastVisit = seenSince // the first day that counts
	case u < 0.02:
		p.lastVisit = seenSince - 1
	default:
		p.lastVisit = referenceDate - 1 - int32(min(rng.ExpFloat64()*400, 5*365))
	}
	// Some patients are, or were, in one of the sponsor's trials.
	if rng.Float64() < 0.06 {
		for range 1 + rng.IntN(2) {
			p.enrolments = append(p.enrolments, g.drawEnrolment())
		}
	}
	g.judge()
}

// drawEnrolment makes an enrolment: ongoing, ended, or ending on the edge
// of the reference date.
func (g *generator) drawEnrolment() enrolment {
	rng := g.rng
	e := enrolment{trial: rng.IntN(len(trials)), enrolled: civil(2023, 1, 1) + rng.Int32N(int32(civil(2026, 11, 1)-civil(2023, 1, 1)))}
	switch u := rng.Float64(); {
	case u < 0.45:
		e.ongoing = true
	case u < 0.50:
		e.end = referenceDate // still in the trial that day: excluded
	case u < 0.55:
		e.end = referenceDate - 1 // ended the day before: eligible
	default:
		e.end = e.enrolled + 30 + rng.Int32N(900)
	}
	return e
}

// judge applies the eligibility criteria of query.sql to g.p.
func (g *generator) judge() {
	p := &g.p
	p.ageAtReference = ageOn(p.birth)
	clinical := strings.HasPrefix(diagnoses[p.diagnosis].name, "E11") &&
		p.ageAtReference >= minAge && p.ageAtReference <= maxAge &&
		p.hasHbA1c && p.hba1c >= minHbA1c && p.hba1c <= maxHbA1c &&
		p.hasEGFR && p.egfr >= minEGFR &&
		p.lastVisit >= seenSince
	for _, e := range p.enrolments {
		if e.ongoing || e.end >= referenceDate {
			p.activeEnrolment = true
		}
	}
	p.eligible = clinical && !p.activeEnrolment
	if p.eligible {
		p.group = p.site*len(bands) + band(p)
	}
}

// run writes cfg.Rows patients, their enrolments, and about as many
// enrolments of other hospitals' patients.
// Run writes the patients and the enrolments.
func (g *generator) Run(ctx context.Context, w []*scenario.DatasetWriter) error {
	patW, enrW := w[0], w[1]
	foreign := uint64(1 << 39)
	for i := range uint64(g.cfg.Rows) {
		if i%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		g.draw()
		id := g.patientID(i)
		if err := g.emitPatient(id, patW); err != nil {
			return err
		}
		for _, e := range g.p.enrolments {
			if err := g.emitEnrolment(id, e, enrW); err != nil {
				return err
			}
		}
		if g.p.eligible {
			g.counts[g.p.group]++
		}
		if g.rng.Float64() < 0.04 {
			if err := g.emitEnrolment(g.patientID(foreign), g.drawEnrolment(), enrW); err != nil {
				return err
			}
			foreign++
		}
	}
	if err := g.flushPat(patW); err != nil {
		return err
	}
	return g.flushEnr(enrW)
}

func (g *generator) emitPatient(id string, w *scenario.DatasetWriter) error {
	p := &g.p
	b := g.pat
	b.Field(0).(*array.StringBuilder).Append(id)
	b.Field(1).(*array.StringBuilder).Append(sites[p.site].name)
	b.Field(2).(*array.StringBuilder).Append(p.sex)
	b.Field(3).(*array.Date32Builder).Append(arrow.Date32(p.birth))
	b.Field(4).(*array.StringBuilder).Append(diagnoses[p.diagnosis].name)
	if p.hasHbA1c {
		b.Field(5).(*array.Decimal128Builder).Append(decimal128.FromI64(int64(p.hba1c)))
	} else {
		b.Field(5).AppendNull()
	}
	if p.hasEGFR {
		b.Field(6).(*array.Int32Builder).Append(p.egfr)
	} else {
		b.Field(6).AppendNull()
	}
	b.Field(7).(*array.Date32Builder).Append(arrow.Date32(p.lastVisit))
	if g.patN++; g.patN == g.cfg.Batch() {
		return g.flushPat(w)
	}
	return nil
}

func (g *generator) emitEnrolment(id string, e enrolment, w *scenario.DatasetWriter) error {
	b := g.enr
	b.Field(0).(*array.StringBuilder).Append(id)
	b.Field(1).(*array.StringBuilder).Append(trials[e.trial])
	b.Field(2).(*array.Date32Builder).Append(arrow.Date32(e.enrolled))
	if e.ongoing {
		b.Field(3).AppendNull()
	} else {
		b.Field(3).(*array.Date32Builder).Append(arrow.Date32(e.end))
	}
	if g.enrN++; g.enrN == g.cfg.Batch() {
		return g.flushEnr(w)
	}
	return nil
}

func (g *generator) flushPat(w *scenario.DatasetWriter) error {
	if g.patN == 0 {
		return nil
	}
	g.patN = 0
	return w.Write(g.pat.NewRecordBatch())
}

func (g *generator) flushEnr(w *scenario.DatasetWriter) error {
	if g.enrN == 0 {
		return nil
	}
	g.enrN = 0
	return w.Write(g.enr.NewRecordBatch())
}

// expected returns the algorithm's result rows, ordered by site and risk
// band, each with whether it has at least k patients, and counts them into
// sum.
// Expected returns the query's result on what Run wrote.
func (g *generator) Expected(k int64, sum *scenario.Summary) [][]any {
	order := make([]int, len(sites))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(sites[a].name, sites[b].name) })
	var rows [][]any
	for _, s := range order {
		for b, name := range bands {
			n := g.counts[s*len(bands)+b]
			if n == 0 {
				continue // the query has no row for an empty group
			}
			released := n >= k
			rows = append(rows, []any{sites[s].name, name, n, released})
			sum.Groups++
			if released {
				sum.Released++
			}
		}
	}
	return rows
}
