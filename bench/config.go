//go:build e2e

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/regstack/registry-stack/e2e/kit"
)

// benchConfig holds the knobs of TestBench (BENCH_* variables). The defaults are the numbers of
// issue 5; smaller values are for developing the harness and are flagged in the report.
type benchConfig struct {
	SizeMiB     int   `json:"sizeMiB"`     // BENCH_SIZE_MIB: image size of the data-path runs
	Layers      int   `json:"layers"`      // BENCH_LAYERS: layers of that image
	Parallel    int   `json:"parallel"`    // BENCH_PARALLEL: layers moved at once (docker: 5 up / 3 down)
	Runs        int   `json:"runs"`        // BENCH_RUNS: data-path rounds
	Heads       int   `json:"heads"`       // BENCH_HEADS: HEAD requests per variant
	HeadBlobs   int   `json:"headBlobs"`   // BENCH_HEAD_BLOBS: distinct blobs the HEADs cycle over
	DeployRuns  int   `json:"deployRuns"`  // BENCH_DEPLOY_RUNS: deploy cycles
	GCSizes     []int `json:"gcSizes"`     // BENCH_GC_SIZES: cumulative repository counts before each GC
	GCWorkers   int   `json:"gcWorkers"`   // BENCH_GC_WORKERS: parallel pushes of the small images
	ProbeMillis int   `json:"probeMillis"` // BENCH_PROBE_MS: interval of the write probe during GC
	// BENCH_RETENTION_REPOS x BENCH_RETENTION_TAGS: the retention part's tags (issue 24: 100 x 10).
	RetentionRepos int             `json:"retentionRepos"`
	RetentionTags  int             `json:"retentionTags"`
	UnitRuns       int             `json:"unitRuns"` // BENCH_UNIT_RUNS: timed `go test ./...` runs (warm cache)
	Parts          map[string]bool `json:"parts"`    // BENCH_PARTS: comma list of unit,deploy,data,head,gc,retention,token,mirror,s3
	OutDir         string          `json:"-"`        // BENCH_OUT: results directory (default <repo>/results)
}

// benchParts are the measured parts in the order they run.
var benchParts = []string{"unit", "deploy", "data", "head", "gc", "retention", "token", "mirror", "s3"}

func envInt(name string, def, min, max int) (int, error) {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%s=%q: want a whole number in [%d, %d]", name, v, min, max)
	}
	return n, nil
}

func loadBenchConfig(repoRoot string) (*benchConfig, error) {
	c := &benchConfig{Parts: map[string]bool{}}
	var err error
	ints := []struct {
		name          string
		dst           *int
		def, min, max int
	}{
		{"BENCH_SIZE_MIB", &c.SizeMiB, 256, 4, 4096},
		{"BENCH_LAYERS", &c.Layers, 4, 1, 64},
		{"BENCH_PARALLEL", &c.Parallel, 4, 1, 16},
		{"BENCH_RUNS", &c.Runs, 5, 1, 50},
		{"BENCH_HEADS", &c.Heads, 2000, 10, 100000},
		{"BENCH_HEAD_BLOBS", &c.HeadBlobs, 50, 1, 1000},
		{"BENCH_DEPLOY_RUNS", &c.DeployRuns, 3, 1, 10},
		{"BENCH_GC_WORKERS", &c.GCWorkers, 8, 1, 64},
		{"BENCH_PROBE_MS", &c.ProbeMillis, 200, 20, 5000},
		{"BENCH_UNIT_RUNS", &c.UnitRuns, 3, 1, 20},
		{"BENCH_RETENTION_REPOS", &c.RetentionRepos, 100, 10, 1000},
		{"BENCH_RETENTION_TAGS", &c.RetentionTags, 10, 6, 100},
	}
	for _, i := range ints {
		if *i.dst, err = envInt(i.name, i.def, i.min, i.max); err != nil {
			return nil, err
		}
	}
	if c.SizeMiB%c.Layers != 0 {
		return nil, fmt.Errorf("BENCH_SIZE_MIB=%d is not a multiple of BENCH_LAYERS=%d", c.SizeMiB, c.Layers)
	}
	c.Parallel = min(c.Parallel, c.Layers)

	sizes := kit.Env("BENCH_GC_SIZES", "10,100,1000")
	prev := 0
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= prev || n > 20000 {
			return nil, fmt.Errorf("BENCH_GC_SIZES=%q: want increasing whole numbers up to 20000", sizes)
		}
		c.GCSizes = append(c.GCSizes, n)
		prev = n
	}

	parts := kit.Env("BENCH_PARTS", strings.Join(benchParts, ","))
	for _, p := range strings.Split(parts, ",") {
		p = strings.TrimSpace(p)
		known := false
		for _, k := range benchParts {
			known = known || k == p
		}
		if !known {
			return nil, fmt.Errorf("BENCH_PARTS=%q: unknown part %q (known: %s)", parts, p, strings.Join(benchParts, ","))
		}
		c.Parts[p] = true
	}
	c.OutDir = kit.Env("BENCH_OUT", filepath.Join(repoRoot, "results"))
	return c, nil
}

// belowIssue lists the knobs set below the minimums of issue 5, for the report.
func (c *benchConfig) belowIssue() []string {
	var out []string
	if c.SizeMiB < 256 {
		out = append(out, fmt.Sprintf("image %d MiB < 256 MiB", c.SizeMiB))
	}
	if c.Runs < 5 {
		out = append(out, fmt.Sprintf("%d data-path runs < 5", c.Runs))
	}
	if c.DeployRuns < 3 {
		out = append(out, fmt.Sprintf("%d deploy runs < 3", c.DeployRuns))
	}
	if c.RetentionRepos*c.RetentionTags < 1000 {
		out = append(out, fmt.Sprintf("%d retention tags < 1000", c.RetentionRepos*c.RetentionTags))
	}
	if c.Heads < 2000 {
		out = append(out, fmt.Sprintf("%d HEADs per variant < 2000", c.Heads))
	}
	for _, p := range benchParts {
		if !c.Parts[p] {
			out = append(out, "part "+p+" skipped")
		}
	}
	return out
}
