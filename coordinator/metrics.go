package coordinator

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the coordinator's Prometheus metrics, exposed in the text
// exposition format at /metrics. They count requests, refusals, events,
// bytes and runs, and time requests; none carries a contract, dataset or
// participant name. Polled often, though, they tell what each run did (its
// suppressed rows, its refusal) and when every contract acts, so they are
// served only to the operator, who sees as much in the log on its disk;
// anyone else gets the public series alone (docs/api.md).
type metrics struct {
	mu        sync.Mutex
	counters  map[string]*atomic.Int64 // name{labels} → value
	help      map[string]string
	durations map[string]*histogram // route → request durations
	start     time.Time
}

func newMetrics() *metrics {
	return &metrics{
		counters:  map[string]*atomic.Int64{},
		durations: map[string]*histogram{},
		start:     time.Now(),
		help: map[string]string{
			"cleanroomd_requests_total":        "HTTP requests by route and status code.",
			"cleanroomd_refusals_total":        "Requests refused, by error code.",
			"cleanroomd_events_total":          "Events appended to the audit log, by type.",
			"cleanroomd_upload_bytes_total":    "Dataset envelope bytes accepted.",
			"cleanroomd_runs_total":            "Runs by outcome (finished, refused, aborted).",
			"cleanroomd_rows_suppressed_total": "Result rows suppressed by the k threshold.",
		},
	}
}

// add adds n to the counter name with the given label pairs.
func (m *metrics) add(name string, n int64, labels ...string) {
	key := name
	if len(labels) > 0 {
		var parts []string
		for i := 0; i+1 < len(labels); i += 2 {
			parts = append(parts, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
		}
		key += "{" + strings.Join(parts, ",") + "}"
	}
	m.mu.Lock()
	c := m.counters[key]
	if c == nil {
		c = new(atomic.Int64)
		m.counters[key] = c
	}
	m.mu.Unlock()
	c.Add(n)
}

func (m *metrics) observe(route string, d time.Duration) {
	m.mu.Lock()
	h := m.durations[route]
	if h == nil {
		h = newHistogram()
		m.durations[route] = h
	}
	m.mu.Unlock()
	h.observe(d.Seconds())
}

// histogram is a Prometheus histogram with fixed buckets.
type histogram struct {
	mu      sync.Mutex
	bounds  []float64
	buckets []uint64
	count   uint64
	sum     float64
}

func newHistogram() *histogram {
	b := []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	return &histogram{bounds: b, buckets: make([]uint64, len(b))}
}

func (h *histogram) observe(v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, b := range h.bounds {
		if v <= b {
			h.buckets[i]++
		}
	}
	h.count++
	h.sum += v
}

// write writes every metric in the text exposition format.
func (m *metrics) write(w io.Writer, gauges map[string]float64) {
	m.mu.Lock()
	keys := make([]string, 0, len(m.counters))
	for k := range m.counters {
		keys = append(keys, k)
	}
	routes := make([]string, 0, len(m.durations))
	for r := range m.durations {
		routes = append(routes, r)
	}
	m.mu.Unlock()
	sort.Strings(keys)
	sort.Strings(routes)
	seen := map[string]bool{}
	for _, k := range keys {
		name, _, _ := strings.Cut(k, "{")
		if !seen[name] {
			seen[name] = true
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, m.help[name], name)
		}
		m.mu.Lock()
		c := m.counters[k]
		m.mu.Unlock()
		fmt.Fprintf(w, "%s %d\n", k, c.Load())
	}
	if len(routes) > 0 {
		fmt.Fprintf(w, "# HELP cleanroomd_request_duration_seconds Request durations by route.\n# TYPE cleanroomd_request_duration_seconds histogram\n")
	}
	for _, r := range routes {
		m.mu.Lock()
		h := m.durations[r]
		m.mu.Unlock()
		h.mu.Lock()
		for i, b := range h.bounds {
			fmt.Fprintf(w, "cleanroomd_request_duration_seconds_bucket{route=%q,le=%q} %d\n", r, formatFloat(b), h.buckets[i])
		}
		fmt.Fprintf(w, "cleanroomd_request_duration_seconds_bucket{route=%q,le=\"+Inf\"} %d\n", r, h.count)
		fmt.Fprintf(w, "cleanroomd_request_duration_seconds_sum{route=%q} %g\n", r, h.sum)
		fmt.Fprintf(w, "cleanroomd_request_duration_seconds_count{route=%q} %d\n", r, h.count)
		h.mu.Unlock()
	}
	names := make([]string, 0, len(gauges))
	for n := range gauges {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "# TYPE %s gauge\n%s %g\n", n, n, gauges[n])
	}
}

func formatFloat(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%g", f)
}

// serve writes the metrics: every series to the operator; to anyone else
// only the public ones, which move with nothing a participant does.
func (m *metrics) serve(w http.ResponseWriter, operator bool, gauges func() map[string]float64) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "# HELP cleanroomd_up 1 while the coordinator serves.\n# TYPE cleanroomd_up gauge\ncleanroomd_up 1\n")
	fmt.Fprintf(w, "# HELP cleanroomd_build_info The cleanroomd version.\n# TYPE cleanroomd_build_info gauge\ncleanroomd_build_info{version=%q} 1\n", Version)
	fmt.Fprintf(w, "# HELP cleanroomd_start_time_seconds When the coordinator started, in seconds since the Unix epoch.\n# TYPE cleanroomd_start_time_seconds gauge\ncleanroomd_start_time_seconds %d\n", m.start.Unix())
	if operator {
		m.write(w, gauges())
	}
}
