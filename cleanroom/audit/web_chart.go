package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The timeline chart is inline SVG drawn on the server: one lane per kind
// of event, a time axis, and a marker per event placed by its time. A gap
// that takes more than half the time on the axis (and more than a minute)
// is cut short and labelled with its length, and so on for the next
// longest, so that events seconds apart stay apart when the contract also
// spans hours. Hovering a marker shows the event; a click
// goes to its row of the table.

const (
	chartWidth  = 1000
	chartLeft   = 110 // the lanes' labels
	chartRight  = 24
	chartTop    = 14
	laneHeight  = 26
	chartBottom = 44 // the axis and its labels
	breakWidth  = 40
	markRadius  = 6
)

// chartLanes are the lanes, top to bottom, and the event types on each.
var chartLanes = []struct {
	label string
	types []string
}{
	{"coordinator", []string{"coordinator.started"}},
	{"contract", []string{"contract.registered"}},
	{"datasets", []string{"dataset.uploaded"}},
	{"algorithm", []string{"algorithm.submitted", "model.submitted"}},
	{"runs", []string{"run.started", "run.finished", "run.refused", "run.aborted"}},
	{"results", []string{"result.fetched"}},
}

type timelineChart struct {
	Width, Height int
	AxisY, TickY  int
	PlotLeft      int
	PlotRight     int
	Lanes         []chartLane
	Marks         []chartMark
	Ticks         []chartTick
	Breaks        []chartBreak
}

type chartLane struct {
	Label string
	Y     int
}

type chartMark struct {
	Index  uint64
	X, Y   int
	Kind   string // CSS class: k-<event type with dots as dashes>
	Shape  string // circle or diamond
	Points string // the diamond's points
	Title  string // shown on hover
	Time   string // RFC 3339, for the tests and the curious
	OK     bool
}

type chartTick struct {
	X      int
	Label  string
	Anchor string // start, middle or end
}

type chartBreak struct {
	X     int // the middle of the cut
	Label string
}

// kindClass returns the CSS class of an event type.
func kindClass(typ string) string { return "k-" + strings.ReplaceAll(typ, ".", "-") }

func newTimelineChart(evs []TimelineEntry) *timelineChart {
	c := &timelineChart{Width: chartWidth, PlotLeft: chartLeft, PlotRight: chartWidth - chartRight}
	for i, l := range chartLanes {
		c.Lanes = append(c.Lanes, chartLane{Label: l.label, Y: chartTop + i*laneHeight + laneHeight/2})
	}
	c.AxisY = chartTop + len(chartLanes)*laneHeight + 4
	c.TickY = c.AxisY + 5
	c.Height = c.AxisY + chartBottom
	if len(evs) == 0 {
		return c
	}
	x := c.scale(evs)
	lastX := map[int]int{}
	bumps := map[int]int{}
	for _, e := range evs {
		lane := len(chartLanes) - 1
		for i, l := range chartLanes {
			if slices.Contains(l.types, e.Type) {
				lane = i
			}
		}
		m := chartMark{Index: e.Index, X: x(e.Time), Y: c.Lanes[lane].Y, Kind: kindClass(e.Type), Shape: "circle", OK: e.OK,
			Time: e.Time.UTC().Format(time.RFC3339Nano)}
		// Markers that would cover each other on a lane alternate above
		// and below it.
		if px, ok := lastX[lane]; ok && m.X-px < 2*markRadius {
			bumps[lane]++
			m.Y += []int{-7, 7}[bumps[lane]%2]
		} else {
			bumps[lane] = 0
		}
		lastX[lane] = m.X
		if e.Type == "run.refused" || e.Type == "run.aborted" {
			m.Shape = "diamond"
			r := markRadius + 2
			m.Points = fmt.Sprintf("%d,%d %d,%d %d,%d %d,%d", m.X, m.Y-r, m.X+r, m.Y, m.X, m.Y+r, m.X-r, m.Y)
		}
		m.Title = fmt.Sprintf("entry %d: %s, %s", e.Index, e.Type, e.Time.UTC().Format(timeLayout))
		if e.Actor != "" {
			m.Title += ", by " + e.Actor
		}
		if e.Summary != "" {
			m.Title += " — " + e.Summary
		}
		if !e.OK {
			m.Title += " (PROBLEM: see the audit's problems)"
		}
		c.Marks = append(c.Marks, m)
	}
	return c
}

// scale returns the x of a time, and sets the chart's ticks and breaks.
func (c *timelineChart) scale(evs []TimelineEntry) func(time.Time) int {
	var ts []time.Time
	for _, e := range evs {
		ts = append(ts, e.Time)
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	ts = slices.CompactFunc(ts, func(a, b time.Time) bool { return a.Equal(b) })
	width := float64(c.PlotRight - c.PlotLeft)
	if len(ts) == 1 {
		mid := c.PlotLeft + int(width/2)
		c.Ticks = []chartTick{{X: mid, Label: ts[0].UTC().Format(timeLayout), Anchor: "middle"}}
		return func(time.Time) int { return mid }
	}
	// Cut the longest gap while it is more than half the time left on a
	// linear axis (and longer than a minute).
	gaps := make([]int, len(ts)-1)
	for i := range gaps {
		gaps[i] = i
	}
	gap := func(i int) time.Duration { return ts[i+1].Sub(ts[i]) }
	slices.SortStableFunc(gaps, func(a, b int) int { return cmp.Compare(gap(b), gap(a)) })
	broken := make([]bool, len(ts)-1)
	linear := ts[len(ts)-1].Sub(ts[0])
	nbreaks := 0
	for _, i := range gaps {
		if g := gap(i); g <= time.Minute || g <= linear/2 {
			break
		}
		broken[i] = true
		linear -= gap(i)
		nbreaks++
	}
	bw := float64(breakWidth)
	if linear == 0 {
		bw = width / float64(nbreaks)
	} else if bw*float64(nbreaks) > width/2 {
		bw = width / 2 / float64(nbreaks)
	}
	perNS := 0.0
	if linear > 0 {
		perNS = (width - bw*float64(nbreaks)) / float64(linear)
	}
	xs := make([]float64, len(ts))
	xs[0] = float64(c.PlotLeft)
	for i := range broken {
		if broken[i] {
			xs[i+1] = xs[i] + bw
			c.Breaks = append(c.Breaks, chartBreak{X: int(xs[i] + bw/2), Label: "≈ " + age(ts[i+1].Sub(ts[i]))})
		} else {
			xs[i+1] = xs[i] + float64(ts[i+1].Sub(ts[i]))*perNS
		}
	}
	label := tickFormat(ts[0], ts[len(ts)-1])
	c.Ticks = append(c.Ticks, chartTick{X: int(xs[0]), Label: ts[0].UTC().Format(timeLayout), Anchor: "start"})
	for i := range broken {
		if broken[i] && int(xs[i+1])-c.Ticks[len(c.Ticks)-1].X > 170 && c.PlotRight-int(xs[i+1]) > 110 {
			c.Ticks = append(c.Ticks, chartTick{X: int(xs[i+1]), Label: ts[i+1].UTC().Format(label), Anchor: "start"})
		}
	}
	c.Ticks = append(c.Ticks, chartTick{X: c.PlotRight, Label: ts[len(ts)-1].UTC().Format(label), Anchor: "end"})
	return func(t time.Time) int {
		i, _ := slices.BinarySearchFunc(ts, t, func(a, b time.Time) int { return a.Compare(b) })
		x := xs[min(i, len(xs)-1)] + 0.5
		// Times centuries apart (only in a hand-made state file) saturate
		// durations; the markers stay on the axis all the same.
		return int(max(float64(c.PlotLeft), min(x, float64(c.PlotRight))))
	}
}

// tickFormat is the layout of the axis labels after the first: enough to
// tell apart times from first to last.
func tickFormat(first, last time.Time) string {
	switch {
	case last.Sub(first) < 10*time.Second:
		return "15:04:05.000"
	case first.UTC().YearDay() == last.UTC().YearDay() && first.Year() == last.Year():
		return "15:04:05"
	default:
		return "01-02 15:04"
	}
}
