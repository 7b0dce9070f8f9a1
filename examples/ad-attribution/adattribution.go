// Package adattribution is the ad-attribution example scenario: a
// publisher's impressions and an advertiser's conversions, joined on user_id
// by a measurement company's query that attributes conversions to the
// campaigns seen before them. It generates the two datasets at any size,
// deterministically from a seed, and computes the query's result on the
// side, without a database, so that a clean room's output can be checked
// against it.
//
// README.md describes the scenario, the data and the attribution rule.
package adattribution

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"cleanroom.dev/cleanroom/examples/internal/scenario"
)

// Query is the measurement company's algorithm, byte for byte as in
// query.sql (the contract names its SHA-256).
//
//go:embed query.sql
var Query string

// ContractTemplate is contract.yaml.tmpl: the scenario's contract with
// {{NAME}} placeholders (see scenario.Fill).
//
//go:embed contract.yaml.tmpl
var ContractTemplate []byte

// QueryDP is query-dp.sql: the algorithm in the shape mode
// differential_privacy takes, for the contract ContractDPTemplate.
//
//go:embed query-dp.sql
var QueryDP string

// ContractDPTemplate is contract-dp.yaml.tmpl: the scenario's
// differentially private variant, same parties and datasets.
//
//go:embed contract-dp.yaml.tmpl
var ContractDPTemplate []byte

// DPResultColumns are QueryDP's result columns: noisy counts and a noisy
// sum of clamped values.
var DPResultColumns = scenario.MustColumns("campaign", "string", "users", "int64", "conversions", "int64", "revenue", "float64")

// The datasets' columns, as in the contract template.
var (
	ImpressionColumns = scenario.MustColumns("user_id", "string", "campaign", "string", "shown_at", "timestamp")
	ConversionColumns = scenario.MustColumns("user_id", "string", "order_id", "string", "value", "float64", "converted_at", "timestamp")
	// ResultColumns are the query's result columns.
	ResultColumns = scenario.MustColumns("campaign", "string", "users", "int64", "conversions", "int64", "revenue", "decimal(38,2)")
)

// Dataset ids (and SQL table names), as in the contract template.
const (
	Impressions = "impressions"
	Conversions = "conversions"
)

// K is the contract template's min_group_size on the users column.
const K = 50

// DefaultRows is the demo size: the number of impressions.
const DefaultRows = 50_000

// Spec is the scenario for the shared generator command line.
var Spec = scenario.Spec{
	Name:             "ad-attribution",
	RowsHelp:         "number of impressions (conversions are about 5% of that)",
	DefaultRows:      DefaultRows,
	DefaultK:         K,
	ContractTemplate: ContractTemplate,
	ResultColumns:    ResultColumns,
	Generate:         Generate,
}

// The shape of the generated data.
var (
	// start is the beginning of the quarter the data covers.
	start = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Unix()
)

// Window is a reporting window: the query counts only conversions with
// Since <= converted_at < Until (its parameters $since and $until).
type Window struct{ Since, Until time.Time }

// Period is the reporting window the contract template allows (both
// parameters lie within it) and the scenario runs with: from the first
// impression's day, 1 October 2026, to 31 January 2027, 30 days after the
// quarter's last impression. Every conversion the attribution rule can
// count lies in it (an earlier one has no impression before it, a later
// one none in the 30 days before it), so the result over Period is the
// result over all the data.
var Period = Window{
	Since: time.Unix(start, 0).UTC(),
	Until: time.Unix(start+quarterSeconds+windowSeconds, 0).UTC(),
}

// Parameters returns w as the values of the query's parameters, name →
// text, as `cleanroom run --param` takes them.
func (w Window) Parameters() map[string]string {
	return map[string]string{"since": w.Since.UTC().Format(time.RFC3339), "until": w.Until.UTC().Format(time.RFC3339)}
}

// Literal returns query (Query or QueryDP) with $since and $until written
// as TIMESTAMPTZ literals of w: what plain DuckDB runs to give the clean
// room's result for that window.
func (w Window) Literal(query string) string {
	p := w.Parameters()
	return strings.NewReplacer("$since", "TIMESTAMPTZ '"+p["since"]+"'", "$until", "TIMESTAMPTZ '"+p["until"]+"'").Replace(query)
}

// Parameters are the values of the query's parameters the scenario's run
// gives (run.sh passes them to cleanroom run --param): Period, the window
// the generator's expected result is for.
var Parameters = Period.Parameters()

// LiteralQuery is Query with its parameters written as the literals of
// Parameters.
func LiteralQuery() string { return Period.Literal(Query) }

const (
	quarterSeconds = 92 * 24 * 3600 // 1 October to 1 January
	windowSeconds  = 720 * 3600     // the attribution window: 30 days
	// pilotAudience is how many users, on average, each pilot campaign
	// reaches, whatever the size of the data: pilots stay below k.
	pilotAudience = 150
	// meanImpressions is the mean number of impressions of a user with
	// any, and organicShare the share of users with none.
	meanImpressions = 5
	organicShare    = 0.08
)

// campaigns are the regular campaigns, from the most to the least
// popular (Zipf weights); pilots are shown to a small fixed audience.
var (
	campaigns = []string{
		"holiday-tv", "black-friday", "search-brand", "retargeting-cart",
		"gift-guide", "social-video", "cyber-monday", "new-arrivals",
		"winter-clearance", "loyalty-rewards", "weekend-flash",
		"autumn-launch", "student-deals", "brand-awareness",
	}
	pilots = []string{"pilot-ctv", "pilot-podcast"}
)

// campaignCount is the number of campaigns, regular and pilots.
var campaignCount = len(campaigns) + len(pilots)

func campaignName(c int) string {
	if c < len(campaigns) {
		return campaigns[c]
	}
	return pilots[c-len(campaigns)]
}

// tally is the expected result, accumulated while generating.
type tally struct {
	users, conversions, cents []int64
}

// Generate writes impressions and conversions (cfg.Rows impressions) and
// the expected result of Query into cfg.Dir. Memory stays bounded by one
// batch per file whatever cfg.Rows is. If ctx is cancelled, it stops within a
// batch, removes what it wrote and returns ctx.Err().
func Generate(ctx context.Context, cfg scenario.Config) (sum *scenario.Summary, err error) {
	return GenerateWindow(ctx, cfg, Period)
}

// GenerateWindow is Generate with the expected result of Query over the
// reporting window w instead of Period: the same data, the same seed
// giving the same bytes, and the expectation counting only the
// conversions in w.
func GenerateWindow(ctx context.Context, cfg scenario.Config, w Window) (sum *scenario.Summary, err error) {
	if cfg.Rows < 1 {
		return nil, fmt.Errorf("the number of impressions must be at least 1, not %d", cfg.Rows)
	}
	if w.Since.Nanosecond() != 0 || w.Until.Nanosecond() != 0 {
		return nil, fmt.Errorf("the reporting window %s to %s must be in whole seconds, as the generated times are", w.Since, w.Until)
	}
	return scenario.Generate(ctx, cfg, []scenario.Dataset{{Name: Impressions, Columns: ImpressionColumns}, {Name: Conversions, Columns: ConversionColumns}},
		ResultColumns, func(s []*arrow.Schema) scenario.Generator { return newGenerator(cfg, w, s[0], s[1]) })
}

type impression struct {
	campaign int
	at       int64 // Unix seconds
}

type conversion struct {
	at    int64
	cents int64
}

type generator struct {
	cfg                  scenario.Config
	since, until         int64 // the reporting window, Unix seconds
	rng                  *rand.Rand
	weights              []float64 // cumulative Zipf weights of the regular campaigns
	pilotP               float64   // chance that a user is in a pilot's audience
	idKey, idOffset      uint64
	imp, conv            *array.RecordBuilder
	impN, convN          int
	orders               uint64 // conversions written: the next order's number
	tally                tally
	userImps             []impression
	userConvs            []conversion
	touched, userTouched []bool
}

func newGenerator(cfg scenario.Config, w Window, impSchema, convSchema *arrow.Schema) *generator {
	g := &generator{
		cfg:         cfg,
		since:       w.Since.Unix(),
		until:       w.Until.Unix(),
		rng:         rand.New(rand.NewPCG(cfg.Seed, 0x6164617474726962)), // "adattrib"
		imp:         array.NewRecordBuilder(memory.DefaultAllocator, impSchema),
		conv:        array.NewRecordBuilder(memory.DefaultAllocator, convSchema),
		touched:     make([]bool, campaignCount),
		userTouched: make([]bool, campaignCount),
		tally: tally{
			users:       make([]int64, campaignCount),
			conversions: make([]int64, campaignCount),
			cents:       make([]int64, campaignCount),
		},
	}
	g.idKey, g.idOffset = g.rng.Uint64()|1, g.rng.Uint64()
	var total float64
	for r := range campaigns {
		total += 1 / math.Pow(float64(r+1), 1.1)
		g.weights = append(g.weights, total)
	}
	for r := range g.weights {
		g.weights[r] /= total
	}
	expectedUsers := float64(cfg.Rows) / (meanImpressions * (1 - organicShare))
	g.pilotP = min(1, pilotAudience/max(expectedUsers, 1))
	return g
}

// Release frees the generator's builders.
func (g *generator) Release() {
	g.imp.Release()
	g.conv.Release()
}

// userID turns a user's index into a pseudonymous id of 12 hex digits, a
// bijection on 48 bits keyed by the seed, so ids are unique and look
// random.
func (g *generator) userID(i uint64) string {
	x := ((i + g.idOffset) * g.idKey) & (1<<48 - 1)
	x ^= x >> 23
	x = (x * 0x9e3779b97f4b) & (1<<48 - 1)
	x ^= x >> 29
	s := strconv.FormatUint(x, 16)
	if len(s) < 12 {
		s = "000000000000"[len(s):] + s
	}
	return s
}

// orderID numbers the conversions in the order they are written: the
// advertiser's order ids, unique, "o" and ten digits.
func (g *generator) orderID() string {
	g.orders++
	s := strconv.FormatUint(g.orders, 10)
	if len(s) < 10 {
		s = "0000000000"[len(s):] + s
	}
	return "o" + s
}

// run generates users until cfg.Rows impressions are written.
// Run writes the impressions and the conversions.
func (g *generator) Run(ctx context.Context, w []*scenario.DatasetWriter) error {
	impW, convW := w[0], w[1]
	var done int64
	for user := uint64(0); done < g.cfg.Rows; user++ {
		if user%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		g.user(g.cfg.Rows - done)
		id := g.userID(user)
		done += int64(len(g.userImps))
		if err := g.emit(id, impW, convW); err != nil {
			return err
		}
	}
	if err := g.flushImp(impW); err != nil {
		return err
	}
	return g.flushConv(convW)
}

// user draws one user's impressions (at most budget) and conversions into
// g.userImps and g.userConvs, sorted by time.
func (g *generator) user(budget int64) {
	rng := g.rng
	g.userImps, g.userConvs = g.userImps[:0], g.userConvs[:0]
	organic := rng.Float64() < organicShare
	if !organic {
		// A user is targeted by one to three campaigns, and perhaps a
		// pilot; each impression is of one of them.
		var targeted [4]int
		nt := 1 + rng.IntN(3)
		for i := range nt {
			targeted[i] = g.pickCampaign()
		}
		for p := range pilots {
			if rng.Float64() < g.pilotP && nt < len(targeted) {
				targeted[nt] = len(campaigns) + p
				nt++
			}
		}
		n := 1 + int(rng.ExpFloat64()*(meanImpressions-1))
		n = max(n, nt)
		n = int(min(int64(n), budget))
		for i := range n {
			c := targeted[rng.IntN(nt)]
			if i < nt {
				c = targeted[i] // every targeted campaign shows at least once
			}
			g.userImps = append(g.userImps, impression{campaign: c, at: start + rng.Int64N(quarterSeconds)})
		}
		slices.SortFunc(g.userImps, func(a, b impression) int { return cmpInt(a.at, b.at) })
	}
	// Conversions: likelier the more campaigns a user saw.
	p := 0.02
	if !organic {
		p = min(0.4, 0.08+0.06*float64(g.distinctCampaigns()))
	}
	if rng.Float64() >= p {
		return
	}
	n := 1
	if rng.Float64() < 0.3 {
		n++
		if rng.Float64() < 0.3 {
			n++
		}
	}
	for range n {
		g.userConvs = append(g.userConvs, conversion{at: g.conversionTime(), cents: g.value()})
	}
	slices.SortFunc(g.userConvs, func(a, b conversion) int { return cmpInt(a.at, b.at) })
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pickCampaign draws a regular campaign by popularity.
func (g *generator) pickCampaign() int {
	u := g.rng.Float64()
	i, _ := slices.BinarySearch(g.weights, u)
	return min(i, len(campaigns)-1)
}

func (g *generator) distinctCampaigns() int {
	var seen uint64
	for _, im := range g.userImps {
		seen |= 1 << im.campaign
	}
	return bits.OnesCount64(seen)
}

// conversionTime draws when a conversion happens: mostly a few days after
// one of the user's impressions, sometimes exactly on the edges of the
// attribution window (to keep the query and this generator honest about
// them), otherwise at any time in the quarter.
func (g *generator) conversionTime() int64 {
	rng := g.rng
	if len(g.userImps) == 0 || rng.Float64() < 0.3 {
		return start + rng.Int64N(quarterSeconds)
	}
	seen := g.userImps[rng.IntN(len(g.userImps))].at
	switch u := rng.Float64(); {
	case u < 0.03:
		return seen // same instant: that impression does not count
	case u < 0.06:
		return seen + windowSeconds // exactly 30 days later: it counts
	case u < 0.09:
		return seen + windowSeconds + 1 // a second too late
	default:
		return seen + 1 + int64(rng.ExpFloat64()*3*24*3600)
	}
}

// value draws an order value in whole cents: log-normal around 45.00,
// between 1.00 and 2 000.00.
func (g *generator) value() int64 {
	v := math.Exp(math.Log(45) + 0.7*g.rng.NormFloat64())
	return min(max(int64(math.Round(v*100)), 100), 200_000)
}

// emit appends the user's rows to the batches and adds the user to the
// expected result.
func (g *generator) emit(id string, impW, convW *scenario.DatasetWriter) error {
	uid, camp, shown := g.imp.Field(0).(*array.StringBuilder), g.imp.Field(1).(*array.StringBuilder), g.imp.Field(2).(*array.TimestampBuilder)
	for _, im := range g.userImps {
		uid.Append(id)
		camp.Append(campaignName(im.campaign))
		shown.Append(arrow.Timestamp(im.at * 1_000_000))
		if g.impN++; g.impN == g.cfg.Batch() {
			if err := g.flushImp(impW); err != nil {
				return err
			}
		}
	}
	cuid, order, value, conv := g.conv.Field(0).(*array.StringBuilder), g.conv.Field(1).(*array.StringBuilder),
		g.conv.Field(2).(*array.Float64Builder), g.conv.Field(3).(*array.TimestampBuilder)
	clear(g.userTouched)
	for _, c := range g.userConvs {
		cuid.Append(id)
		order.Append(g.orderID())
		value.Append(float64(c.cents) / 100)
		conv.Append(arrow.Timestamp(c.at * 1_000_000))
		if g.convN++; g.convN == g.cfg.Batch() {
			if err := g.flushConv(convW); err != nil {
				return err
			}
		}
		// The reporting window and the attribution rule, as query.sql
		// states them.
		if c.at < g.since || c.at >= g.until {
			continue
		}
		clear(g.touched)
		for _, im := range g.userImps {
			if im.at < c.at && im.at >= c.at-windowSeconds {
				g.touched[im.campaign] = true
			}
		}
		for k, t := range g.touched {
			if t {
				g.tally.conversions[k]++
				g.tally.cents[k] += c.cents
				g.userTouched[k] = true
			}
		}
	}
	for k, t := range g.userTouched {
		if t {
			g.tally.users[k]++
		}
	}
	return nil
}

func (g *generator) flushImp(w *scenario.DatasetWriter) error {
	if g.impN == 0 {
		return nil
	}
	g.impN = 0
	return w.Write(g.imp.NewRecordBatch())
}

func (g *generator) flushConv(w *scenario.DatasetWriter) error {
	if g.convN == 0 {
		return nil
	}
	g.convN = 0
	return w.Write(g.conv.NewRecordBatch())
}

// expected returns the query's result rows, ordered by campaign, each with
// whether it has at least k users, and counts them into sum.
// Expected returns the query's result on what Run wrote.
func (g *generator) Expected(k int64, sum *scenario.Summary) [][]any {
	order := make([]int, campaignCount)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch x, y := campaignName(a), campaignName(b); {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	var rows [][]any
	for _, c := range order {
		t := g.tally
		if t.conversions[c] == 0 {
			continue // the query has no row for a campaign nobody converted after
		}
		released := t.users[c] >= k
		rows = append(rows, []any{campaignName(c), t.users[c], t.conversions[c], t.cents[c], released})
		sum.Groups++
		if released {
			sum.Released++
		}
	}
	return rows
}
