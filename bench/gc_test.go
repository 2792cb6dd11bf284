//go:build e2e

package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

const probeRepo = "bench/probe"

// benchGC grows the registry to each of GCSizes repositories (one tiny single-layer image each,
// pushed in parallel through the Ingress; cumulative, so the registry also holds the images of
// the earlier parts) and runs a GC Job from the CronJob at each size, while a probe loop starts
// uploads (POST) every ProbeMillis to measure the write pause.
func (b *bench) benchGC(t *testing.T) {
	ctx := context.Background()
	res := &gcResult{}
	b.res.mu.Lock()
	b.res.GC = res
	b.res.mu.Unlock()

	pusher, prober := b.gcClients(ctx, t)

	have := 0
	for _, n := range b.cfg.GCSizes {
		todo := n - have
		start := time.Now()
		err := forEach(todo, b.cfg.GCWorkers, func(i int) error {
			im, err := kit.RandomImage(fmt.Sprintf("bench-gc/r%05d", have+i), "v1", 1, 256)
			if err != nil {
				return err
			}
			pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			return pushSmall(pctx, pusher, im)
		})
		pushD := time.Since(start)
		if err != nil {
			t.Fatalf("push %d small images: %v", todo, err)
		}
		have = n
		t.Logf("pushed %d small images (now %d repositories) in %s (%.0f images/s)", todo, n, pushD.Round(100*time.Millisecond), float64(todo)/pushD.Seconds())

		level, err := b.gcWithProbe(ctx, t, prober, fmt.Sprintf("bench-gc-%d", n))
		if level != nil {
			level.Repos, level.Pushed, level.PushSeconds = n, todo, pushD.Seconds()
			b.res.mu.Lock()
			res.Levels = append(res.Levels, *level)
			b.res.mu.Unlock()
			t.Logf("GC at %d repositories: job %.0fs, steps %v; pause window %.1fs (%d probes: %d refused, %d accepted, %d other)",
				n, level.JobSeconds, level.Steps, level.Pause.WindowSeconds, level.Pause.Probes, level.Pause.Refused, level.Pause.Accepted, level.Pause.Other)
		}
		if err != nil {
			t.Fatalf("GC at %d repositories: %v", n, err)
		}
	}
}

// gcClients are the Ingress clients of a GC part, one pushing images and one probing writes,
// with the probe repository seeded: it holds a tagged image, like every other repository here.
func (b *bench) gcClients(ctx context.Context, t *testing.T) (pusher, prober *kit.RegistryClient) {
	t.Helper()
	pusher, err := b.newIngressClient()
	if err != nil {
		t.Fatal(err)
	}
	prober, err = b.newIngressClient()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kit.RandomImage(probeRepo, "v1", 1, 256)
	if err != nil {
		t.Fatal(err)
	}
	if err := pushSmall(ctx, pusher, seed); err != nil {
		t.Fatal(err)
	}
	return pusher, prober
}

// pushSmall pushes a small in-memory image with monolithic uploads (POST, then PUT with the body
// and the digest: two requests per blob), then the manifest.
func pushSmall(ctx context.Context, c *kit.RegistryClient, im *kit.Image) error {
	for _, bl := range im.Blobs() {
		resp, _, err := c.Once(ctx, kit.Request{Method: http.MethodPost, URL: c.URL("/v2/" + im.Repo + "/blobs/uploads/"), Expect: []int{http.StatusAccepted}})
		if err != nil {
			return fmt.Errorf("push %s: %w", im.Ref(), err)
		}
		loc, err := c.Resolve(resp.Header.Get("Location"))
		if err != nil {
			return err
		}
		u, err := url.Parse(loc)
		if err != nil {
			return fmt.Errorf("upload location %q: %w", loc, err)
		}
		q := u.Query()
		q.Set("digest", bl.Digest)
		u.RawQuery = q.Encode()
		h := http.Header{}
		h.Set("Content-Type", "application/octet-stream")
		if _, _, err := c.Once(ctx, kit.Request{Method: http.MethodPut, URL: u.String(), Body: bl.Data, Header: h, Expect: []int{http.StatusCreated}}); err != nil {
			return fmt.Errorf("push %s: %w", im.Ref(), err)
		}
	}
	return putManifest(ctx, c, im.Repo, im.Tag, im.Manifest, im.Digest)
}

// probeLoop starts an upload every interval and cancels it again (DELETE) when it was accepted.
type probeLoop struct {
	mu      sync.Mutex
	events  []probeEvent
	cancels int // failed DELETEs
	origin  time.Time
	stop    context.CancelFunc
	done    chan struct{}
}

func startProbe(ctx context.Context, c *kit.RegistryClient, interval time.Duration, origin time.Time) *probeLoop {
	ctx, cancel := context.WithCancel(ctx)
	p := &probeLoop{origin: origin, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			start := time.Now()
			resp, _, err := c.Once(pctx, kit.Request{Method: http.MethodPost, URL: c.URL("/v2/" + probeRepo + "/blobs/uploads/"), Expect: []int{http.StatusAccepted}})
			ev := probeEvent{At: start.Sub(p.origin).Seconds(), Ms: float64(time.Since(start).Microseconds()) / 1000}
			if resp != nil {
				ev.Code = resp.StatusCode
			}
			if err != nil && resp == nil {
				ev.Err = err.Error()
			}
			cancelFailed := false
			if err == nil {
				if loc, lerr := c.Resolve(resp.Header.Get("Location")); lerr != nil {
					cancelFailed = true
				} else if _, _, derr := c.Once(pctx, kit.Request{Method: http.MethodDelete, URL: loc, Expect: []int{http.StatusNoContent}}); derr != nil {
					cancelFailed = true
				}
			}
			pcancel()
			if ctx.Err() != nil {
				return // stopped during the request: not a result
			}
			p.mu.Lock()
			p.events = append(p.events, ev)
			if cancelFailed {
				p.cancels++
			}
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *probeLoop) snapshot() []probeEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]probeEvent(nil), p.events...)
}

func (p *probeLoop) halt() ([]probeEvent, int) {
	p.stop()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]probeEvent(nil), p.events...), p.cancels
}

// gcWithProbe runs one GC Job while the probe runs: from a few accepted probes before the Job is
// created until writes are accepted again after it (bounded).
func (b *bench) gcWithProbe(ctx context.Context, t *testing.T, prober *kit.RegistryClient, label string) (*gcLevel, error) {
	f := b.f
	suffix, err := kit.RandomSuffix()
	if err != nil {
		return nil, err
	}
	job := label + "-" + suffix
	origin := time.Now().Add(2 * time.Second) // re-based below to the Job's creation
	probe := startProbe(ctx, prober, time.Duration(b.cfg.ProbeMillis)*time.Millisecond, origin)
	defer probe.stop()
	// Writable before GC: a few accepted probes.
	if err := kit.Poll(ctx, 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		n := 0
		for _, e := range probe.snapshot() {
			if e.Code == http.StatusAccepted {
				n++
			}
		}
		return n >= 3, nil
	}); err != nil {
		return nil, fmt.Errorf("probe uploads are not accepted before GC: %v: %w", probe.snapshot(), err)
	}
	created := time.Now()
	jr, jobErr := f.Kube.RunJobFromCronJob(ctx, f.Out.GCCronJobName, job, kit.GCJobTimeout)
	jobEnd := time.Now()
	// Until writes are back: a 202 after the last 405, at least 2 s after the Job ended; at most 60 s.
	_ = kit.Poll(ctx, 60*time.Second, 200*time.Millisecond, func() (bool, error) {
		ev := probe.snapshot()
		last405, resumed := -1, false
		for i, e := range ev {
			if e.Code == http.StatusMethodNotAllowed {
				last405 = i
			}
		}
		for _, e := range ev[last405+1:] {
			resumed = resumed || e.Code == http.StatusAccepted
		}
		return resumed && time.Since(jobEnd) > 2*time.Second, nil
	})
	events, cancels := probe.halt()
	shift := created.Sub(origin).Seconds()
	for i := range events {
		events[i].At -= shift
	}
	level := &gcLevel{Pause: analysePause(events), Steps: map[string]float64{}}
	level.Pause.CancelFailures = cancels
	if jr != nil {
		level.CollectorLog = collectorSummary(jr.Logs)
	}
	if err := b.jobTimes(ctx, job, level); err != nil {
		t.Logf("job %s timestamps: %v", job, err)
		if jobErr == nil {
			jobErr = err
		}
	}
	if jobErr != nil {
		return level, jobErr
	}
	if err := f.WaitReady(ctx, 2); err != nil {
		return level, fmt.Errorf("registry not Ready after GC: %w", err)
	}
	if level.Pause.Refused == 0 {
		return level, fmt.Errorf("the probe never saw a 405 during GC (%d probes): the read-only switch did not reach the Ingress", level.Pause.Probes)
	}
	return level, nil
}

// analysePause derives the pause figures from the probe timeline (At relative to Job creation).
func analysePause(ev []probeEvent) pauseResult {
	p := pauseResult{Probes: len(ev), Timeline: ev}
	first, last := -1, -1
	for i, e := range ev {
		switch e.Code {
		case http.StatusMethodNotAllowed:
			p.Refused++
			if first < 0 {
				first = i
			}
			last = i
		case http.StatusAccepted:
			p.Accepted++
		default:
			p.Other++
			if len(p.OtherExamples) < 5 {
				p.OtherExamples = append(p.OtherExamples, fmt.Sprintf("%.1fs: HTTP %d %s", e.At, e.Code, e.Err))
			}
		}
	}
	if first < 0 {
		return p
	}
	p.FirstRefusalAt = ev[first].At
	for i := first; i <= last; i++ {
		if ev[i].Code == http.StatusAccepted {
			p.AcceptedInside++
		}
	}
	for i := last + 1; i < len(ev); i++ {
		if ev[i].Code == http.StatusAccepted {
			p.ResumedAt = ev[i].At
			p.WindowSeconds = ev[i].At - ev[first].At
			break
		}
	}
	runStart := -1
	for i, e := range ev {
		if e.Code == http.StatusMethodNotAllowed {
			if runStart < 0 {
				runStart = i
			}
			continue
		}
		if runStart >= 0 {
			p.LongestRefusal = max(p.LongestRefusal, e.At-ev[runStart].At)
			runStart = -1
		}
	}
	return p
}

// collectorSummary keeps the collector's own summary line ("N blobs marked, M blobs and K
// manifests eligible for deletion") and the step's timestamps.
func collectorSummary(logs string) string {
	var keep []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "blobs marked") || strings.Contains(l, "collect:") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	return strings.Join(keep, "\n")
}

// jobTimes reads the Job's and its pod's timestamps (1 s resolution): Job wall time from creation
// to completion, and each step container's run time.
func (b *bench) jobTimes(ctx context.Context, job string, level *gcLevel) error {
	var j struct {
		Metadata struct {
			CreationTimestamp time.Time `json:"creationTimestamp"`
		} `json:"metadata"`
		Status struct {
			CompletionTime *time.Time `json:"completionTime"`
		} `json:"status"`
	}
	if err := b.f.Kube.GetJSON(ctx, true, &j, "job", job); err != nil {
		return err
	}
	if j.Status.CompletionTime == nil {
		return fmt.Errorf("job %s has no completionTime", job)
	}
	level.JobSeconds = j.Status.CompletionTime.Sub(j.Metadata.CreationTimestamp).Seconds()
	var pods struct {
		Items []struct {
			Status struct {
				Init []stepStatus `json:"initContainerStatuses"`
				Main []stepStatus `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := b.f.Kube.GetJSON(ctx, true, &pods, "pods", "-l", "job-name="+job); err != nil {
		return err
	}
	if len(pods.Items) != 1 {
		return fmt.Errorf("job %s has %d pods, want 1", job, len(pods.Items))
	}
	for _, s := range append(pods.Items[0].Status.Init, pods.Items[0].Status.Main...) {
		if s.State.Terminated == nil {
			return fmt.Errorf("job %s: step %s has not terminated", job, s.Name)
		}
		level.StepOrder = append(level.StepOrder, s.Name)
		level.Steps[s.Name] = s.State.Terminated.FinishedAt.Sub(s.State.Terminated.StartedAt).Seconds()
	}
	return nil
}

type stepStatus struct {
	Name  string `json:"name"`
	State struct {
		Terminated *struct {
			StartedAt  time.Time `json:"startedAt"`
			FinishedAt time.Time `json:"finishedAt"`
		} `json:"terminated"`
	} `json:"state"`
}
