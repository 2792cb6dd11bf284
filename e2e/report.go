//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// report collects the duration of every step and timed operation plus free-form facts (counts of
// pulls during GC, what survived destroy, ...) and renders them as the summary table printed at
// the end of the run, also when the run fails.
type report struct {
	mu      sync.Mutex
	steps   []reportStep
	timings []reportTiming
	facts   []string
}

type reportStep struct {
	Name     string
	Result   string
	Duration time.Duration
}

type reportTiming struct {
	Name     string
	Duration time.Duration
	Note     string
}

func (r *report) step(name, result string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, reportStep{name, result, d})
}

// timing records one measured operation (preview, up, push, pull, GC ...).
func (r *report) timing(name string, d time.Duration, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timings = append(r.timings, reportTiming{name, d, note})
}

func (r *report) fact(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.facts = append(r.facts, fmt.Sprintf(format, args...))
}

func (r *report) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%-34s %-7s %10s\n", "STEP", "RESULT", "DURATION")
	for _, s := range r.steps {
		fmt.Fprintf(&b, "%-34s %-7s %10s\n", s.Name, s.Result, s.Duration.Round(100*time.Millisecond))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "%-34s %10s  %s\n", "OPERATION", "DURATION", "NOTE")
	for _, t := range r.timings {
		fmt.Fprintf(&b, "%-34s %10s  %s\n", t.Name, t.Duration.Round(100*time.Millisecond), t.Note)
	}
	if len(r.facts) > 0 {
		b.WriteString("\nFACTS\n")
		for _, f := range r.facts {
			b.WriteString("- " + strings.ReplaceAll(f, "\n", "\n  ") + "\n")
		}
	}
	return b.String()
}
