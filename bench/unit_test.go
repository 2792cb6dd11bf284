//go:build e2e

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// benchUnit times the offline unit test suite, `go test -count=1 ./...` in the repository root
// (without the e2e tag, so neither the e2e suite nor the bench is built), with a warm build cache:
// one untimed run first fills the cache, then UnitRuns timed runs. -json gives each package's test
// binary run time (Elapsed), which separates running the tests from building and linking them.
func (b *bench) benchUnit(t *testing.T) {
	ctx := context.Background()
	res := &unitResult{}
	b.res.mu.Lock()
	b.res.Unit = res
	b.res.mu.Unlock()
	for i := 0; i <= b.cfg.UnitRuns; i++ {
		run, err := b.unitRun(ctx)
		if err != nil {
			t.Fatalf("unit run %d: %v", i, err)
		}
		if i == 0 {
			t.Logf("warm-up run (fills the build cache): %.1fs", run.WallSeconds)
			continue
		}
		b.res.mu.Lock()
		res.Runs = append(res.Runs, *run)
		b.res.mu.Unlock()
		t.Logf("unit run %d: wall %.1fs, tests run %.1fs (sum over %d packages, slowest %.1fs), %d tests",
			i, run.WallSeconds, run.SumElapsed, run.Packages, run.MaxElapsed, run.Tests)
	}
}

func (b *bench) unitRun(ctx context.Context) (*unitRun, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := kit.RunCmd(ctx, b.f.RepoRoot, []string{"GOTOOLCHAIN=local"}, "go", "test", "-count=1", "-json", "./...")
	wall := time.Since(start)
	run := &unitRun{WallSeconds: wall.Seconds()}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	var failures []string
	for sc.Scan() {
		var ev struct {
			Action  string
			Package string
			Test    string
			Elapsed float64
			Output  string
		}
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue // build output outside the JSON stream
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("decode go test -json: %w", err)
		}
		switch {
		case ev.Test == "" && (ev.Action == "pass" || ev.Action == "fail"):
			run.Packages++
			run.SumElapsed += ev.Elapsed
			run.MaxElapsed = max(run.MaxElapsed, ev.Elapsed)
			if ev.Action == "fail" {
				failures = append(failures, ev.Package)
			}
		case ev.Test != "" && !strings.Contains(ev.Test, "/") && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip"):
			run.Tests++
			if ev.Action == "fail" {
				run.Failed++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read go test -json: %w", err)
	}
	if err != nil {
		return run, fmt.Errorf("go test ./... failed (packages %v): %w", failures, err)
	}
	return run, nil
}
