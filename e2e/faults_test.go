//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// Fault tests (issue 4): the registry keeps serving through the ordinary faults of a cluster and
// loses nothing. Each step runs traffic through the Ingress beside the fault, counts what the client
// saw (attempts, retried failures, failures after retries) and leaves the deployment as it found it.

// disruption describes the traffic run beside a fault.
type disruption struct {
	name      string        // label in the report
	pushRepo  string        // "" = pulls only
	pushLayer int           // bytes of the one layer of each pushed image
	pushEvery time.Duration // push interval
	tail      time.Duration // traffic keeps running this long after the fault is over
}

// trafficResult is what the loops of one disruption counted.
type trafficResult struct {
	Pulls, Pushes loadCounts
	Duration      time.Duration
}

// retries counts the failed attempts that a retry hid (Failures also lists final failures).
func (c loadCounts) retries() int {
	n := 0
	for _, l := range c.Failures {
		if strings.Contains(l, " retried ") {
			n++
		}
	}
	return n
}

// line is the one-line report of a loop, with the retried attempts spelled out.
func (c loadCounts) line(kind string) string {
	return fmt.Sprintf("%s; %d retried attempts", c.summary(kind), c.retries())
}

// underLoad runs a pull loop of the kept image (and a push loop of fresh images when d.pushRepo is
// set) through the Ingress, waits until both have completed an attempt, runs fault, lets the
// traffic run for d.tail more, stops it and reports the counts. Pushes the registry acknowledged
// are then pulled back by tag and digest and become survivors. It fails the test when a pull or a
// push failed even after the client's retries.
func (f *fixture) underLoad(ctx context.Context, t *testing.T, d disruption, c *kit.RegistryClient, fault func() error) (trafficResult, error) {
	t.Helper()
	if c == nil {
		c = f.Client
	}
	var res trafficResult
	start := time.Now()
	pl := startPullLoop(ctx, c, f.imgKeep, 100*time.Millisecond)
	var ps *loop
	if d.pushRepo != "" {
		ps = startPushLoop(ctx, c, d.pushRepo, d.pushLayer, d.pushEvery)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		res.Pulls = pl.stop()
		if ps != nil {
			res.Pushes = ps.stop()
		}
		res.Duration = time.Since(start)
	}
	defer stop()
	if err := kit.Poll(ctx, time.Minute, 100*time.Millisecond, func() (bool, error) {
		ok := pl.stats.snapshot().Attempts > 0
		if ps != nil {
			ok = ok && ps.stats.snapshot().Attempts > 0
		}
		return ok, nil
	}); err != nil {
		return res, fmt.Errorf("%s: load loops did not complete a first attempt: %w", d.name, err)
	}
	faultErr := fault()
	if faultErr == nil && d.tail > 0 {
		time.Sleep(d.tail)
	}
	stop()

	msg := fmt.Sprintf("%s (%s of traffic): %s", d.name, res.Duration.Round(100*time.Millisecond), res.Pulls.line("pulls"))
	if ps != nil {
		msg += "; " + res.Pushes.line("pushes")
	}
	t.Log(msg)
	f.Report.Fact("%s", msg)
	failures := append(append([]string{}, res.Pulls.Failures...), res.Pushes.Failures...)
	for _, l := range failures {
		t.Logf("  %s: %s", d.name, l)
	}
	if len(failures) > 0 {
		shown := failures[:min(len(failures), 6)]
		f.Report.Fact("%s: failed attempts (retried or final), first %d of %d:\n%s", d.name, len(shown), len(failures), strings.Join(shown, "\n"))
	}
	if faultErr != nil {
		return res, faultErr
	}
	if res.Pulls.Failed > 0 {
		t.Errorf("%s: %d of %d pulls failed even after retries", d.name, res.Pulls.Failed, res.Pulls.Attempts)
	}
	if res.Pulls.OK+res.Pulls.OKAfterRetry == 0 {
		t.Errorf("%s: no pull completed", d.name)
	}
	if ps != nil {
		if res.Pushes.Failed > 0 || res.Pushes.Refused > 0 {
			t.Errorf("%s: %d of %d pushes failed even after retries (%d refused)", d.name, res.Pushes.Failed, res.Pushes.Attempts, res.Pushes.Refused)
		}
		if len(res.Pushes.Acked) == 0 {
			t.Errorf("%s: no push was acknowledged", d.name)
		}
		if err := f.pullAcked(ctx, res.Pushes.Acked); err != nil {
			t.Errorf("%s: an acknowledged push does not pull: %v", d.name, err)
		}
	}
	return res, nil
}

// pullAcked pulls every image and records them as survivors that later steps pull again.
func (f *fixture) pullAcked(ctx context.Context, images []*kit.Image) error {
	if _, err := f.pullAll(ctx, images); err != nil {
		return err
	}
	f.survivors = append(f.survivors, images...)
	return nil
}

// pullAll pulls every image by tag, checking the manifest digest and every blob byte for byte, and
// checks that the manifest is also there by digest (HEAD). It returns the bytes downloaded.
func (f *fixture) pullAll(ctx context.Context, images []*kit.Image) (int, error) {
	total := 0
	for _, im := range images {
		n, err := f.Client.PullImage(ctx, im.Tag, im)
		if err != nil {
			return total, err
		}
		total += n
		code, err := f.Client.ManifestStatus(ctx, im.Repo, im.Digest)
		if err != nil {
			return total, err
		}
		if code != http.StatusOK {
			return total, fmt.Errorf("HEAD %s@%s: HTTP %d, want 200", im.Repo, im.Digest, code)
		}
	}
	return total, nil
}

// deploymentReplicas reads spec.replicas of a Deployment (the suite scales the registry to 3 later,
// so steps ask instead of assuming 2).
func (f *fixture) deploymentReplicas(ctx context.Context, name string) (int, error) {
	out, err := f.Kube.NS(ctx, "get", "deployment", name, "-o", "jsonpath={.spec.replicas}")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, fmt.Errorf("deployment %s spec.replicas %q: %w", name, out, err)
	}
	return n, nil
}

// readyRegistryPods waits until the registry has its full replica count Ready and returns the pods.
func (f *fixture) readyRegistryPods(ctx context.Context) ([]kit.PodInfo, int, error) {
	n, err := f.deploymentReplicas(ctx, f.Out.DeploymentName)
	if err != nil {
		return nil, 0, err
	}
	pods, err := f.Kube.WaitReadyPods(ctx, kit.RegistryPodSelector, n, kit.ReadyTimeout)
	return pods, n, err
}

// deletePod deletes a pod (gracefully, or forced with grace period 0 like a crashed node would
// lose it) and waits until it is gone and the registry has its replica count Ready again.
func (f *fixture) deletePod(ctx context.Context, pod string, force bool, replicas int) error {
	args := []string{"delete", "pod", pod, "--wait=false"}
	if force {
		args = append(args, "--grace-period=0", "--force")
	}
	if _, err := f.Kube.NS(ctx, args...); err != nil {
		return err
	}
	if err := kit.Poll(ctx, 2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		_, err := f.Kube.NS(ctx, "get", "pod", pod, "-o", "name")
		if kit.IsNotFound(err) {
			return true, nil
		}
		return false, err
	}); err != nil {
		return fmt.Errorf("pod %s still exists: %w", pod, err)
	}
	_, err := f.Kube.WaitReadyPods(ctx, kit.RegistryPodSelector, replicas, kit.ReadyTimeout)
	return err
}

func podNames(pods []kit.PodInfo) []string {
	names := make([]string, 0, len(pods))
	for _, p := range pods {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

// stepReplicaLoss deletes one registry pod while pulls and pushes run through the Ingress: first
// gracefully (drain, preStop), then forced with grace period 0 (the pod is gone at once, as when
// its node dies). With the client's normal retries every pull and push completes.
func (f *fixture) stepReplicaLoss(t *testing.T) {
	need(t, f.imgKeep != nil, "pushed image")
	ctx := context.Background()
	pods, replicas, err := f.readyRegistryPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if replicas < 2 {
		t.Fatalf("the registry has %d replica(s); replica loss needs at least 2", replicas)
	}
	for _, force := range []bool{false, true} {
		kind, repo := "graceful", "e2e/replica-loss-graceful"
		if force {
			kind, repo = "forced (grace 0)", "e2e/replica-loss-forced"
		}
		victim := pods[0].Name
		name := fmt.Sprintf("replica loss, %s delete of 1 of %d pods", kind, replicas)
		var took time.Duration
		err := f.Timed(name, func() (string, error) {
			res, err := f.underLoad(ctx, t, disruption{
				name: name, pushRepo: repo, pushLayer: 768 << 10, pushEvery: 500 * time.Millisecond, tail: 3 * time.Second,
			}, nil, func() error {
				start := time.Now()
				err := f.deletePod(ctx, victim, force, replicas)
				took = time.Since(start)
				return err
			})
			return fmt.Sprintf("%s; %s; replacement Ready after %s", res.Pulls.line("pulls"), res.Pushes.line("pushes"), took.Round(100*time.Millisecond)), err
		})
		if err != nil {
			t.Fatalf("%s: %v\nevents:\n%s", name, err, f.Kube.Events(ctx))
		}
		if pods, err = f.Kube.Pods(ctx, kit.RegistryPodSelector); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(podNames(pods), victim) {
			t.Errorf("deleted pod %s is still listed: %v", victim, podNames(pods))
		}
		t.Logf("%s: %s deleted, pods now %v (all Ready after %s)", name, victim, podNames(pods), took.Round(100*time.Millisecond))
	}
}

// cacheMetrics are the registry's blob-descriptor cache counters, summed over the pods.
type cacheMetrics struct {
	Requests, Hits, Errors float64
	Pods                   int
}

func (m cacheMetrics) String() string {
	return fmt.Sprintf("requests %.0f, hits %.0f, errors %.0f (%d pods)", m.Requests, m.Hits, m.Errors, m.Pods)
}

// podMetrics fetches /metrics from the debug port of one registry pod through a kubectl
// port-forward to the pod (the port is deliberately in no Service); traffic stays on 127.0.0.1.
func (f *fixture) podMetrics(ctx context.Context, pod string) (string, error) {
	addrs, stop, err := f.Kube.PortForward(ctx, f.Settings.Namespace, "pod/"+pod, "5001")
	if err != nil {
		return "", err
	}
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addrs[0]+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET /metrics of %s via %s: %w", pod, addrs[0], err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("GET /metrics of %s: %w", pod, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics of %s: HTTP %d", pod, resp.StatusCode)
	}
	return string(body), nil
}

// cacheAroundPulls pulls the kept image three times and returns the registry's cache metrics
// before and after.
func (f *fixture) cacheAroundPulls(ctx context.Context, t *testing.T) (before, after cacheMetrics) {
	t.Helper()
	before, err := f.registryCacheMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep); err != nil {
			t.Fatal(err)
		}
	}
	if after, err = f.registryCacheMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	return before, after
}

// registryCacheMetrics reads the metrics of every Ready registry pod and sums the cache counters.
func (f *fixture) registryCacheMetrics(ctx context.Context) (cacheMetrics, error) {
	var m cacheMetrics
	pods, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		return m, err
	}
	for _, p := range pods {
		if p.Deleted || !p.Ready {
			continue
		}
		out, err := f.podMetrics(ctx, p.Name)
		if err != nil {
			return m, fmt.Errorf("metrics of %s: %w", p.Name, err)
		}
		found := false
		for name, dst := range map[string]*float64{
			"registry_storage_cache_requests_total": &m.Requests,
			"registry_storage_cache_hits_total":     &m.Hits,
			"registry_storage_cache_errors_total":   &m.Errors,
		} {
			v, ok, err := promValue(out, name)
			if err != nil {
				return m, fmt.Errorf("metrics of %s: %w", p.Name, err)
			}
			found = found || ok
			*dst += v
		}
		if !found {
			return m, fmt.Errorf("metrics of %s hold no registry_storage_cache_* counter (%d bytes)", p.Name, len(out))
		}
		m.Pods++
	}
	return m, nil
}

// promValue sums the samples of one metric (every label set) in Prometheus text format.
func promValue(text, name string) (float64, bool, error) {
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if !strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "{") {
			continue // a longer metric name with the same prefix
		}
		fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(fields) == 0 {
			return 0, false, fmt.Errorf("metric line without a value: %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, sc.Err()
}

// countLogLines counts lines containing needle in the registry containers' logs of the last since.
func (f *fixture) countLogLines(ctx context.Context, needle string, since time.Duration) (int, error) {
	pods, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pods {
		out, err := f.Kube.NS(ctx, "logs", p.Name, "-c", "registry", "--since", since.Round(time.Second).String())
		if err != nil {
			return 0, fmt.Errorf("logs of %s: %w", p.Name, err)
		}
		n += strings.Count(out, needle)
	}
	return n, nil
}

// stepRedisDown scales the Redis Deployment to 0 while pulls and pushes run, then back to 1 (the
// value the program declares). The registry keeps serving from storage; the cache errors counter
// shows the outage; when Redis is back the (empty) cache fills again and serves hits, without new
// errors. Finally the live Deployment matches the stack again (`preview --refresh --expect-no-changes`).
func (f *fixture) stepRedisDown(t *testing.T) {
	need(t, f.imgKeep != nil, "pushed image")
	ctx := context.Background()
	redisDeploy := f.Out.RedisDeploymentName
	if _, _, err := f.readyRegistryPods(ctx); err != nil {
		t.Fatal(err)
	}
	m0, err := f.registryCacheMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	restored := true // nothing to restore until Redis is scaled down
	restore := func() error {
		if restored {
			return nil
		}
		if _, err := f.Kube.NS(ctx, "scale", "deployment", redisDeploy, "--replicas=1"); err != nil {
			return err
		}
		restored = true
		_, err := f.Kube.WaitReadyPods(ctx, kit.RedisPodSelector, 1, kit.ReadyTimeout)
		return err
	}
	defer func() {
		if err := restore(); err != nil {
			t.Errorf("restoring Redis to 1 replica: %v", err)
		}
	}()

	var m1, mBack cacheMetrics
	var downFor time.Duration
	var keysAtReturn int
	name := "Redis scaled to 0 and back"
	err = f.Timed(name, func() (string, error) {
		res, err := f.underLoad(ctx, t, disruption{
			name: name, pushRepo: "e2e/redis-down", pushLayer: 256 << 10, pushEvery: time.Second, tail: 3 * time.Second,
		}, nil, func() error {
			if _, err := f.Kube.NS(ctx, "scale", "deployment", redisDeploy, "--replicas=0"); err != nil {
				return err
			}
			restored = false
			if err := kit.Poll(ctx, 2*time.Minute, time.Second, func() (bool, error) {
				ps, err := f.Kube.Pods(ctx, kit.RedisPodSelector)
				return len(ps) == 0, err
			}); err != nil {
				return fmt.Errorf("redis pods still there after scaling to 0: %w", err)
			}
			down := time.Now()
			// Traffic without a cache for at least 8 s, until the registry has counted cache errors.
			if err := kit.Poll(ctx, time.Minute, 2*time.Second, func() (bool, error) {
				var err error
				if m1, err = f.registryCacheMetrics(ctx); err != nil {
					return false, err
				}
				return time.Since(down) >= 8*time.Second && m1.Errors > m0.Errors, nil
			}); err != nil {
				return fmt.Errorf("registry_storage_cache_errors_total did not rise while Redis was down (before %s, now %s): %w", m0, m1, err)
			}
			if err := restore(); err != nil {
				return err
			}
			downFor = time.Since(down)
			keys, err := f.RedisCachedBlobs(ctx, f.imgKeep.Blobs())
			if err != nil {
				return err
			}
			keysAtReturn = len(keys)
			mBack, err = f.registryCacheMetrics(ctx)
			return err
		})
		return fmt.Sprintf("Redis down %s; %s; %s", downFor.Round(100*time.Millisecond), res.Pulls.line("pulls"), res.Pushes.line("pushes")), err
	})
	if err != nil {
		t.Fatalf("%v\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	logErrors, err := f.countLogLines(ctx, "error from cache", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	// The cache fills again: pulls of the kept image write its descriptors into the new Redis.
	var keys map[string]bool
	err = kit.Poll(ctx, time.Minute, time.Second, func() (bool, error) {
		if _, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep); err != nil {
			return false, err
		}
		var err error
		if keys, err = f.RedisCachedBlobs(ctx, f.imgKeep.Blobs()); err != nil {
			return false, err
		}
		for _, b := range f.imgKeep.Blobs() {
			if !keys["blobs::"+b.Digest] {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the cache did not fill again with the blobs of %s after Redis returned (%d of its blobs cached): %v", f.imgKeep.Ref(), len(keys), err)
	}
	// ... and serves hits without errors: the registry reconnected.
	m2, m3 := f.cacheAroundPulls(ctx, t)
	if m3.Hits <= m2.Hits {
		t.Errorf("no cache hits after Redis returned: %s -> %s", m2, m3)
	}
	if m3.Errors != m2.Errors {
		t.Errorf("cache errors still rising after Redis returned: %s -> %s", m2, m3)
	}
	msg := fmt.Sprintf("Redis down for %s: registry cache metrics (sum of the pods) before: %s; when Redis was Ready again: %s (+%.0f errors during the outage); "+
		"after the refill: %s; after 3 more pulls: %s (+%.0f hits, +%.0f errors). %d 'error from cache' lines in the registry logs; "+
		"Redis came back empty (%d of the kept image's blobs cached right after Ready) and refilled to %d of its %d blobs (%s)",
		downFor.Round(100*time.Millisecond), m0, mBack, mBack.Errors-m0.Errors, m2, m3, m3.Hits-m2.Hits, m3.Errors-m2.Errors,
		logErrors, keysAtReturn, len(keys), len(f.imgKeep.Blobs()), f.imgKeep.Ref())
	t.Log(msg)
	f.Report.Fact("%s", msg)

	// Pulumi declares replicas=1 for Redis; the live object must match the stack again.
	if n, err := f.deploymentReplicas(ctx, redisDeploy); err != nil || n != 1 {
		t.Errorf("redis deployment has %d replicas after the restore (%v), want 1 as declared", n, err)
	}
	err = f.Timed("pulumi preview --refresh --expect-no-changes", func() (string, error) {
		_, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-refresh-after-faults", "preview", "--refresh", "--expect-no-changes", "--diff")
		return "after kubectl scale of Redis, pod deletions", err
	})
	if err != nil {
		t.Errorf("the live objects drifted from the stack after the Redis outage: %v", err)
	}
}

// stepRestartAllRegistryPods deletes every registry pod at once. The data lives on the claim, so
// every image pushed so far pulls with the right digests from the new pods. The outage while no pod
// is Ready is measured (expected: a restart of all replicas at once is not a rolling update).
func (f *fixture) stepRestartAllRegistryPods(t *testing.T) {
	need(t, len(f.survivors) > 0, "pushed images")
	ctx := context.Background()
	before, replicas, err := f.readyRegistryPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var probes, failed int
	var firstFail, lastFail time.Time
	err = f.Timed("restart all registry pods", func() (string, error) {
		start := time.Now()
		if _, err := f.Kube.NS(ctx, "delete", "pods", "-l", kit.RegistryPodSelector, "--wait=false"); err != nil {
			return "", err
		}
		// Probe /v2/ (one attempt each, no retry) until every old pod is gone, the new ones are
		// Ready and the registry answers 200 again.
		err := kit.Poll(ctx, kit.ReadyTimeout, 250*time.Millisecond, func() (bool, error) {
			probes++
			code, err := f.Client.Ping(ctx, false, "", "")
			ok := err == nil && code == http.StatusOK
			if !ok {
				failed++
				if firstFail.IsZero() {
					firstFail = time.Now()
				}
				lastFail = time.Now()
				return false, nil
			}
			pods, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
			if err != nil {
				return false, err
			}
			ready := 0
			for _, p := range pods {
				if p.Deleted || slices.Contains(podNames(before), p.Name) {
					return false, nil
				}
				if p.Ready {
					ready++
				}
			}
			return ready == replicas && len(pods) == replicas, nil
		})
		outage := time.Duration(0)
		if failed > 0 {
			outage = lastFail.Sub(firstFail)
		}
		return fmt.Sprintf("%d pods replaced in %s; /v2/ failed %d of %d probes (%s without an answer)",
			replicas, time.Since(start).Round(100*time.Millisecond), failed, probes, outage.Round(100*time.Millisecond)), err
	})
	if err != nil {
		t.Fatalf("registry did not come back after all pods were deleted: %v\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	after, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pods %v -> %v", podNames(before), podNames(after))

	err = f.Timed("pull all images after restart", func() (string, error) {
		total, err := f.pullAll(ctx, f.survivors)
		return fmt.Sprintf("%d images by tag (+ HEAD by digest), %s", len(f.survivors), kit.MiB(total)), err
	})
	if err != nil {
		t.Errorf("an image pushed before the restart does not pull: %v", err)
	}
	f.Report.Fact("restart of all %d registry pods at once (kubectl delete pods -l ...): GET /v2/ every 250 ms failed %d of %d times until the new pods were Ready; all %d images pushed so far pull (by tag, manifest HEAD by digest) afterwards",
		replicas, failed, probes, len(f.survivors))
}

// deploySnapshot is what a rolling update changes about the registry Deployment.
type deploySnapshot struct {
	Checksum     string   // template annotation checksum/config
	TemplateHash []string // pod-template-hash labels of the pods
	Pods         []string
	SecretUID    string // of the config Secret (updated in place: same object)
	Generation   int
}

func (f *fixture) registrySnapshot(ctx context.Context) (*deploySnapshot, error) {
	var d struct {
		Metadata struct {
			Generation int `json:"generation"`
		} `json:"metadata"`
		Spec struct {
			Template struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := f.Kube.GetJSON(ctx, true, &d, "deployment", f.Out.DeploymentName); err != nil {
		return nil, err
	}
	var pods struct {
		Items []struct {
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := f.Kube.GetJSON(ctx, true, &pods, "pods", "-l", kit.RegistryPodSelector); err != nil {
		return nil, err
	}
	uid, err := f.Kube.NS(ctx, "get", "secret", "registry-config", "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		return nil, err
	}
	s := &deploySnapshot{Checksum: d.Spec.Template.Metadata.Annotations["checksum/config"], SecretUID: uid, Generation: d.Metadata.Generation}
	for _, p := range pods.Items {
		s.Pods = append(s.Pods, p.Metadata.Name)
		if h := p.Metadata.Labels["pod-template-hash"]; !slices.Contains(s.TemplateHash, h) {
			s.TemplateHash = append(s.TemplateHash, h)
		}
	}
	slices.Sort(s.Pods)
	return s, nil
}

// stepRollingConfigChange changes registry.logLevel info -> debug through the stack config and runs
// `pulumi up` while a pull loop runs: no pull fails; the config Secret is updated in place and its
// checksum annotation rolls every pod. The level stays at debug (the later steps do not care, and the
// secret scan then also covers debug logs).
func (f *fixture) stepRollingConfigChange(t *testing.T) {
	need(t, f.imgKeep != nil, "pushed image")
	ctx := context.Background()
	if _, _, err := f.readyRegistryPods(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := f.registrySnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resources, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"registry.logLevel": "debug"}); err != nil {
		t.Fatal(err)
	}
	var ops []kit.StepOp
	name := "rolling config change (registry.logLevel info -> debug)"
	err = f.Timed("pulumi up (registry.logLevel debug) + pulls", func() (string, error) {
		res, err := f.underLoad(ctx, t, disruption{name: name, tail: 3 * time.Second}, nil, func() error {
			var err error
			ops, err = f.Pulumi.Up(ctx, "up-loglevel-debug")
			return err
		})
		return kit.SummarizeOps(ops) + "; " + res.Pulls.line("pulls"), err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkInPlace(t, "up registry.logLevel=debug", ops)
	for _, want := range []struct{ typ, name string }{
		{"kubernetes:core/v1:Secret", "registry-config"},
		{"kubernetes:apps/v1:Deployment", f.Out.DeploymentName},
	} {
		urn := k8sURN(resources, want.typ, want.name)
		if urn == "" || !slices.Contains(ops, kit.StepOp{Op: "update", URN: urn}) {
			t.Errorf("pulumi up did not update %s %s in place: %s", want.typ, want.name, kit.SummarizeOps(ops))
		}
	}
	if _, _, err := f.readyRegistryPods(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := f.registrySnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Checksum == "" || after.Checksum == before.Checksum {
		t.Errorf("checksum/config annotation did not change: %q -> %q", before.Checksum, after.Checksum)
	}
	if after.SecretUID != before.SecretUID {
		t.Errorf("Secret registry-config was recreated (uid %s -> %s), want an in-place update", before.SecretUID, after.SecretUID)
	}
	for _, p := range after.Pods {
		if slices.Contains(before.Pods, p) {
			t.Errorf("pod %s survived the config change: the pods did not roll", p)
		}
	}
	if slices.Equal(after.TemplateHash, before.TemplateHash) {
		t.Errorf("pod-template-hash unchanged (%v): no new ReplicaSet", after.TemplateHash)
	}
	cfg, err := f.Kube.SecretValue(ctx, "registry-config", "config.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg, "level: debug") {
		t.Errorf("config.yml in Secret registry-config does not say level: debug")
	}
	debugLines, err := f.countLogLines(ctx, "level=debug", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if debugLines == 0 {
		t.Errorf("the new registry pods log no level=debug line")
	}
	msg := fmt.Sprintf("registry.logLevel info -> debug: pods %v (template hash %v) -> %v (%v); checksum/config %.12s -> %.12s; Secret registry-config updated in place; %d debug log lines",
		before.Pods, before.TemplateHash, after.Pods, after.TemplateHash, before.Checksum, after.Checksum, debugLines)
	t.Log(msg)
	f.Report.Fact("%s", msg)
}
