package audit

import "time"

// What the package's external tests reach beyond the API: they are
// external because their shared coordinator comes through the client,
// which imports this package.
var (
	CheckTimeline    = checkTimeline
	CSVSafe          = csvSafe
	ParseFilter      = parseFilter
	NewTimelineChart = newTimelineChart
	ChartLanes       = chartLanes
	Summarize        = summarize
	WriteJSON        = writeJSON

	ContentSecurityPolicy = contentSecurityPolicy
	StatusNotVerified     = statusNotVerified
)

// The timeline chart's geometry.
const (
	ChartLeft  = chartLeft
	ChartRight = chartRight
	ChartWidth = chartWidth
	BreakWidth = breakWidth
)

// HomeExport is the JSON export of the web view's home page.
type HomeExport = homeExport

// NewContractView is the web view of a contract's report, unfiltered.
func NewContractView(r *Report, now time.Time) *contractView {
	return newContractView(r, timelineFilter{}, now)
}

// TimelineFilter is the web view's timeline filter.
type TimelineFilter = timelineFilter

// Match reports whether the filter shows e.
func (f timelineFilter) Match(e *TimelineEntry) bool { return f.match(e) }
