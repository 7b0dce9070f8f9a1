package main

// CLEANROOM_BENCH_MEMORY=1 makes a run or plain child print where its
// resident memory is to stderr: after it opened (the coordinator, or
// nothing yet for plain DuckDB), at its highest RSS while it ran (sampled
// every 2 ms), and after. RSS splits into file-backed pages (the binary's
// text and data: the same binary on both sides) and anonymous memory; of
// that, what the Go runtime holds (runtime/metrics: heap objects, live or
// not yet swept; free heap spans not returned to the OS; unused parts of
// spans in use; goroutine stacks; the runtime's metadata) and the rest:
// memory allocated outside the Go runtime, DuckDB's, and in the clean room
// the mapped buffers of the blocks being scanned.

import (
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memSample is one reading of where a child's resident memory is.
type memSample struct {
	rss, anon, file    int64 // /proc/self/status VmRSS, RssAnon, RssFile
	goObjects, goFree  int64 // Go heap: objects (live and not yet swept), free spans not released
	goUnused, goStacks int64 // Go heap: unused parts of in-use spans; goroutine stacks
	goOther            int64 // the Go runtime's other memory (metadata, buffers)
}

var memNames = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/os-stacks:bytes",
	"/memory/classes/metadata/mcache/free:bytes",
	"/memory/classes/metadata/mcache/inuse:bytes",
	"/memory/classes/metadata/mspan/free:bytes",
	"/memory/classes/metadata/mspan/inuse:bytes",
	"/memory/classes/metadata/other:bytes",
	"/memory/classes/other:bytes",
	"/memory/classes/profiling/buckets:bytes",
}

func readMem() memSample {
	var s memSample
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			switch k {
			case "VmRSS":
				s.rss = kb << 10
			case "RssAnon":
				s.anon = kb << 10
			case "RssFile":
				s.file = kb << 10
			}
		}
	}
	ms := make([]metrics.Sample, len(memNames))
	for i, n := range memNames {
		ms[i].Name = n
	}
	metrics.Read(ms)
	v := func(i int) int64 {
		if ms[i].Value.Kind() == metrics.KindUint64 {
			return int64(ms[i].Value.Uint64())
		}
		return 0
	}
	s.goObjects, s.goFree, s.goUnused, s.goStacks = v(0), v(1), v(2), v(3)+v(4)
	for i := 5; i < len(memNames); i++ {
		s.goOther += v(i)
	}
	return s
}

func (s memSample) String() string {
	m := func(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
	goAll := s.goObjects + s.goFree + s.goUnused + s.goStacks + s.goOther
	return fmt.Sprintf("RSS %s MiB: file-backed %s, anonymous %s = Go runtime %s (heap objects %s, free %s, unused %s; stacks %s; other %s) + the rest %s",
		m(s.rss), m(s.file), m(s.anon), m(goAll), m(s.goObjects), m(s.goFree), m(s.goUnused), m(s.goStacks), m(s.goOther), m(s.anon-goAll))
}

// memWatch samples memory every 2 ms when CLEANROOM_BENCH_MEMORY is set,
// keeping the sample of highest RSS, and prints phases to stderr. The
// sampling costs CPU: time the sides without it.
type memWatch struct {
	on   bool
	mu   sync.Mutex
	peak memSample
	stop chan struct{}
	done chan struct{}
}

func newMemWatch() *memWatch {
	return &memWatch{on: os.Getenv("CLEANROOM_BENCH_MEMORY") != ""}
}

func (w *memWatch) phase(name string) {
	if w.on {
		fmt.Fprintf(os.Stderr, "memory %-12s %s\n", name, readMem())
	}
}

func (w *memWatch) start() {
	if !w.on {
		return
	}
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			s := readMem()
			w.mu.Lock()
			if s.rss > w.peak.rss {
				w.peak = s
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
}

func (w *memWatch) end() {
	if !w.on {
		return
	}
	close(w.stop)
	<-w.done
	fmt.Fprintf(os.Stderr, "memory %-12s %s\n", "peak", w.peak)
	fmt.Fprintf(os.Stderr, "memory %-12s %d MiB\n", "VmHWM", peakRSS()>>20)
}
