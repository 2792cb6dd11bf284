//go:build e2e

package kit

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Report collects the duration of every step and timed operation plus free-form facts (counts of
// pulls during GC, what survived destroy, ...) and renders them as the summary table printed at
// the end of the run, also when the run fails.
type Report struct {
	mu      sync.Mutex
	steps   []ReportStep
	timings []reportTiming
	facts   []string
}

// ReportStep is how one step ended ("ok" or "FAIL") and how long it took.
type ReportStep struct {
	Name     string
	Result   string
	Duration time.Duration
}

type reportTiming struct {
	Name     string
	Duration time.Duration
	Note     string
}

func (r *Report) step(name, result string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, ReportStep{name, result, d})
}

// Steps returns the steps recorded so far, in the order they ran.
func (r *Report) Steps() []ReportStep {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.steps)
}

// timing records one measured operation (preview, up, push, pull, GC ...).
func (r *Report) timing(name string, d time.Duration, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timings = append(r.timings, reportTiming{name, d, note})
}

// Fact records a free-form fact for the summary.
func (r *Report) Fact(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.facts = append(r.facts, fmt.Sprintf(format, args...))
}

func (r *Report) String() string {
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
