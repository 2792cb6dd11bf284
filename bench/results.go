//go:build e2e

package bench

import (
	"math"
	"slices"
	"sync"
	"time"
)

// benchResults is everything TestBench measured: raw samples (results/bench.json) from which the
// Markdown tables and the plot are derived.
type benchResults struct {
	mu sync.Mutex

	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Machine  machineInfo   `json:"machine"`
	Config   *benchConfig  `json:"config"`
	Phases   []phaseResult `json:"phases"`
	Unit     *unitResult   `json:"unit,omitempty"`
	Deploy   *deployResult `json:"deploy,omitempty"`
	Data     *dataResult   `json:"data,omitempty"`
	Head     *headResult   `json:"head,omitempty"`
	GC       *gcResult     `json:"gc,omitempty"`
	// Retention is GC alone and retention + GC on the same tags (issue 24).
	Retention *retentionResult `json:"retention,omitempty"`
	// Token is htpasswd against token auth on the same deployment (issue 25).
	Token *tokenResult `json:"token,omitempty"`
	// S3 is the data path with storage.s3 (variants s3-*), same image size and rounds.
	S3 *dataResult `json:"s3,omitempty"`
	// Mirror is pulls through a mirror of the registry, cold and warm, beside direct pulls.
	Mirror *dataResult `json:"mirror,omitempty"`
	Notes  []string    `json:"notes,omitempty"`
}

func (r *benchResults) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, s)
}

type phaseResult struct {
	Name    string  `json:"name"`
	Result  string  `json:"result"`
	Seconds float64 `json:"seconds"`
}

type machineInfo struct {
	Date          string `json:"date"`
	NProc         int    `json:"nproc"`
	CPU           string `json:"cpu"`
	MemTotal      string `json:"memTotal"`
	Kernel        string `json:"kernel"`
	Filesystem    string `json:"filesystem"`
	GoVersion     string `json:"goVersion"`
	PulumiVersion string `json:"pulumiVersion"`
	KubeServer    string `json:"kubeServer"`
	KubectlClient string `json:"kubectlClient"`
	RegistryImage string `json:"registryImage"`
	RedisImage    string `json:"redisImage"`
	IngressImage  string `json:"ingressImage"`
	IngressAddr   string `json:"ingressAddr"`
}

// unitResult: `go test -count=1 ./...` (no e2e tag) with a warm build cache.
type unitResult struct {
	Runs []unitRun `json:"runs"`
}

type unitRun struct {
	WallSeconds float64 `json:"wallSeconds"` // whole command: compile (cached), link, run
	SumElapsed  float64 `json:"sumElapsed"`  // sum over packages of the test binaries' run time
	MaxElapsed  float64 `json:"maxElapsed"`  // slowest package
	Packages    int     `json:"packages"`
	Tests       int     `json:"tests"`
	Failed      int     `json:"failed"`
}

// deployResult: samples in seconds per metric (see deployMetrics).
type deployResult struct {
	Samples         map[string][]float64 `json:"samples"`
	FirstPreviewSec float64              `json:"firstPreviewSec"` // untimed warm-up (program compile)
}

// dataResult: one sample per (round, variant, operation).
type dataResult struct {
	ImageBytes int64        `json:"imageBytes"`
	Layers     int          `json:"layers"`
	Parallel   int          `json:"parallel"`
	Samples    []dataSample `json:"samples"`
}

type dataSample struct {
	Round   int     `json:"round"`
	Seq     int     `json:"seq"` // position in the round (variants rotate)
	Variant string  `json:"variant"`
	Op      string  `json:"op"` // push | pull
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	MiBps   float64 `json:"mibps"`
}

// headResult: latencies (ms) per cache state and path.
type headResult struct {
	Blobs   int                   `json:"blobs"`
	Samples map[string][]float64  `json:"samples"` // key: state/path, e.g. "warm/ingress"
	Errors  map[string]int        `json:"errors"`
	Switch  map[string]float64    `json:"switchSeconds"` // pulumi up + Ready for each config switch
	Order   []string              `json:"order"`
	Extra   map[string]headExtras `json:"extra,omitempty"`
	// SmallLayers: wall seconds of pushing and pulling a fresh image of smallLayerCount small
	// layers through the Ingress, cache warm ("push", "pull"), one sample per round.
	SmallLayers map[string][]float64 `json:"smallLayersSeconds,omitempty"`
}

type headExtras struct {
	RedisKeys int `json:"redisKeys"`
}

// tokenResult: HEAD latencies (ms) by mode/auth|noauth, 20-layer push and pull seconds by
// mode/push|pull, and each switch's up + rollout seconds.
type tokenResult struct {
	Heads         int                  `json:"heads"`
	Samples       map[string][]float64 `json:"samples"`
	SmallLayers   map[string][]float64 `json:"smallLayersSeconds"`
	SwitchSeconds map[string]float64   `json:"switchSeconds"`
}

// retentionResult: GC alone and with a keepNewest policy.
type retentionResult struct {
	Repos         int     `json:"repos"`
	Tags          int     `json:"tags"` // per repository
	Keep          int     `json:"keep"` // keepNewest of the policy
	PushSeconds   float64 `json:"pushSeconds"`
	GCOnly        gcLevel `json:"gcOnly"`
	WithRetention gcLevel `json:"withRetention"`
}

type gcResult struct {
	Levels []gcLevel `json:"levels"`
}

type gcLevel struct {
	Repos        int                `json:"repos"`       // images (1 tag each, own repository) in the registry
	Pushed       int                `json:"pushed"`      // pushed for this level
	PushSeconds  float64            `json:"pushSeconds"` // wall time of those pushes
	JobSeconds   float64            `json:"jobSeconds"`  // completionTime - creationTimestamp (1 s resolution)
	Steps        map[string]float64 `json:"steps"`       // container finishedAt - startedAt (1 s resolution)
	StepOrder    []string           `json:"stepOrder"`
	Pause        pauseResult        `json:"pause"`
	CollectorLog string             `json:"collectorLog,omitempty"`
}

// pauseResult is what the write probe saw around one GC run.
type pauseResult struct {
	Probes         int          `json:"probes"`
	Refused        int          `json:"refused"`        // 405
	Accepted       int          `json:"accepted"`       // 202
	Other          int          `json:"other"`          // anything else (errors, 5xx)
	AcceptedInside int          `json:"acceptedInside"` // 202 between the first and the last 405
	WindowSeconds  float64      `json:"windowSeconds"`  // first 405 -> first 202 after the last 405
	LongestRefusal float64      `json:"longestRefusal"` // longest stretch of consecutive 405s
	FirstRefusalAt float64      `json:"firstRefusalAt"` // seconds after the Job was created
	ResumedAt      float64      `json:"resumedAt"`      // seconds after the Job was created
	CancelFailures int          `json:"cancelFailures"` // DELETE of a probe upload not 204
	OtherExamples  []string     `json:"otherExamples,omitempty"`
	Timeline       []probeEvent `json:"timeline"`
}

type probeEvent struct {
	At   float64 `json:"at"` // seconds after the Job was created
	Code int     `json:"code"`
	Ms   float64 `json:"ms"`
	Err  string  `json:"err,omitempty"`
}

// median of xs (NaN when empty).
func median(xs []float64) float64 { return percentile(xs, 50) }

// percentile returns the p-th percentile with linear interpolation between closest ranks.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 1 {
		return s[0]
	}
	pos := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

func minMax(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(xs), slices.Max(xs)
}
