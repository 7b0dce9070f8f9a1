package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress draws a one-line progress display on stderr when stderr is a
// terminal, and nothing otherwise (logs and scripts get the summary only).
type progress struct {
	w     io.Writer
	label string
	total int64 // bytes expected; 0 when unknown
	read  func() (bytes, rows int64)
	start time.Time
	stop  chan struct{}
	done  sync.WaitGroup
}

// isTerminal reports whether w is a terminal (a tty, not merely a
// character device such as /dev/null).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// startProgress starts drawing; read reports the bytes and rows done so far.
// It returns nil (a no-op) when stderr is not a terminal.
func (c *cli) startProgress(label string, total int64, read func() (int64, int64)) *progress {
	if !isTerminal(c.Stderr) {
		return nil
	}
	p := &progress{w: c.Stderr, label: label, total: total, read: read, start: time.Now(), stop: make(chan struct{})}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

func (p *progress) draw() {
	bytes, rows := p.read()
	secs := time.Since(p.start).Seconds()
	rate := float64(bytes) / 1e6 / max(secs, 1e-3)
	if p.total > 0 {
		frac := min(float64(bytes)/float64(p.total), 1)
		const width = 30
		filled := int(frac * width)
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = ' '
			if i < filled {
				bar[i] = '='
			}
		}
		fmt.Fprintf(p.w, "\r%s [%s] %5.1f%%  %d rows  %.1f MB/s ", p.label, bar, 100*frac, rows, rate)
		return
	}
	fmt.Fprintf(p.w, "\r%s %d rows  %.1f MB  %.1f MB/s ", p.label, rows, float64(bytes)/1e6, rate)
}

// finish stops drawing and clears the line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
	p.draw()
	fmt.Fprintln(p.w)
}
