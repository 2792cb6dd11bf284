//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
	"github.com/regstack/registry-stack/gc"
)

// Self-healing GC (issue 12). On a registry this small the collector takes a second, so the
// steps stretch it the way a big registry would: they create the GC Job from the CronJob's own
// template, with the garbage-collect step either waiting before collect.sh (a pod killed while
// read-only, no collector started) or running collect.sh with `registry` wrapped so that the
// collector process sleeps first (a pod killed, or `pulumi up` run, while the collector runs).
// Everything else in the pod is the product's.

// healBound is the documented bound for writes to come back after a GC pod dies: the lease
// expires (LeaseSeconds), the watchdog looks (every minute), one rolling restart.
const healBound = time.Duration(gc.LeaseSeconds+60+90) * time.Second

// watchdogPodPrefix starts the names of the watchdog's pods (CronJob registry-gc-watchdog).
const watchdogPodPrefix = "registry-gc-watchdog-"

// slowCollector is how the Job stretches the collector.
type slowCollector int

const (
	pauseBeforeCollect slowCollector = iota // read-only, collect.sh not started yet
	slowCollectorRuns                       // collect.sh runs a collector process that sleeps first
)

// startSlowGC creates a GC Job from the CronJob whose collector is stretched by seconds, and
// returns its name.
func (f *fixture) startSlowGC(ctx context.Context, label string, mode slowCollector, seconds int) (string, error) {
	suffix, err := kit.RandomSuffix()
	if err != nil {
		return "", err
	}
	job := "e2e-" + label + "-" + suffix
	var script string
	switch mode {
	case pauseBeforeCollect:
		script = fmt.Sprintf("sleep %d; exec sh /scripts/collect.sh", seconds)
	case slowCollectorRuns:
		// /tmp is the pod's writable emptyDir; the wrapper becomes the collector's process. It
		// waits until the test releases it (releaseCollector) or seconds pass.
		script = fmt.Sprintf(`real=$(command -v registry) && mkdir -p /tmp/bin && cat >/tmp/bin/registry <<EOF && chmod +x /tmp/bin/registry && PATH=/tmp/bin:$PATH exec sh /scripts/collect.sh
#!/bin/sh
i=0
while [ ! -e %[2]s ] && [ \$i -lt %[1]d ]; do sleep 1; i=\$((i+1)); done
exec $real "\$@"
EOF`, seconds, collectorReleaseFile)
	}
	err = f.createJobFromCronJob(ctx, job, func(spec map[string]any) error {
		inits, _ := spec["initContainers"].([]any)
		for _, item := range inits {
			if c, _ := item.(map[string]any); c["name"] == "garbage-collect" {
				c["command"] = []any{"sh", "-c", script}
				return nil
			}
		}
		return fmt.Errorf("the GC pod template has no garbage-collect init container")
	})
	if err != nil {
		return "", err
	}
	return job, nil
}

// holdGC starts a stretched GC run (startSlowGC), deletes its Job when the step ends, and returns
// the Job and its pod once the pod runs its garbage-collect step (every replica read-only).
func (f *fixture) holdGC(ctx context.Context, t *testing.T, label string, mode slowCollector, seconds int) (job, pod string) {
	t.Helper()
	job, err := f.startSlowGC(ctx, label, mode, seconds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := f.Kube.NS(context.Background(), "delete", "job", job, "--wait=false", "--ignore-not-found"); err != nil {
			t.Logf("delete job %s: %v", job, err)
		}
	})
	pod, err = f.gcPodCollecting(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	return job, pod
}

// collectorReleaseFile ends the wait of a stretched collector (slowCollectorRuns).
const collectorReleaseFile = "/tmp/release-collector"

// releaseCollector lets the stretched collector of the GC pod go on at once.
func (f *fixture) releaseCollector(ctx context.Context, pod string) error {
	if _, err := f.Kube.NS(ctx, "exec", pod, "-c", "garbage-collect", "--", "touch", collectorReleaseFile); err != nil {
		return fmt.Errorf("release the collector of %s: %w", pod, err)
	}
	return nil
}

// gcPod waits until the Job's pod runs its garbage-collect step (so every replica is read-only)
// and returns the pod's name.
func (f *fixture) gcPodCollecting(ctx context.Context, job string) (string, error) {
	var pod string
	err := kit.Poll(ctx, 4*time.Minute, time.Second, func() (bool, error) {
		var list struct {
			Items []struct {
				Metadata struct{ Name string } `json:"metadata"`
				Status   struct {
					InitContainerStatuses []struct {
						Name  string                    `json:"name"`
						State map[string]map[string]any `json:"state"`
					} `json:"initContainerStatuses"`
				} `json:"status"`
			} `json:"items"`
		}
		if err := f.Kube.GetJSON(ctx, true, &list, "pods", "-l", "job-name="+job); err != nil {
			return false, err
		}
		for _, p := range list.Items {
			for _, s := range p.Status.InitContainerStatuses {
				if _, running := s.State["running"]; running && s.Name == "garbage-collect" {
					pod = p.Metadata.Name
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("GC job %s never reached its garbage-collect step: %w\n%s", job, err, f.Kube.Events(ctx))
	}
	return pod, nil
}

// gcSample is one look at the registry, the GC pod and the collector process.
type gcSample struct {
	At                 time.Time
	Pods, Writable     int      // live registry pods, and those without the read-only label
	Names              []string // live registry pods
	TemplateReadOnly   bool
	Replicas           int // the Deployment's wanted count (an autoscaler's, with one); -1 unread
	Collectors         int // collector processes on the node (this machine)
	LeaseHolder, Renew string
}

func (s gcSample) String() string {
	return fmt.Sprintf("%s pods=%d writable=%d template-ro=%v collectors=%d lease=%q",
		s.At.Format("15:04:05"), s.Pods, s.Writable, s.TemplateReadOnly, s.Collectors, s.LeaseHolder)
}

// sampler records gcSamples every second until stopped.
type sampler struct {
	mu      sync.Mutex
	samples []gcSample
	stop    func()
	done    chan struct{}
}

// collectorProcesses counts the collector processes (the wrapper included) of the pods whose UIDs
// are in pods, on this machine, which is the sandbox's node: the GC pod runs `registry
// garbage-collect --delete-untagged` on the config path of the pod (anything else, such as the unit
// tests' fakes, has another). A process belongs to the pod its cgroup names: another deployment's
// GC (the suite's other track) runs beside this one's, and a force-deleted pod's processes outlive
// its API object, so the UIDs are those ever seen.
func collectorProcesses(pods map[string]bool) int {
	out, err := exec.Command("pgrep", "-f", "registry garbage-collect --delete-untagged /etc/distribution/config.yml").Output()
	if err != nil {
		return 0 // pgrep exits 1 when nothing matches
	}
	n := 0
	for _, pid := range strings.Fields(string(out)) {
		cgroup, err := os.ReadFile("/proc/" + pid + "/cgroup")
		if err != nil {
			continue // gone meanwhile
		}
		if m := podCgroupRE.FindStringSubmatch(string(cgroup)); m != nil && pods[strings.ReplaceAll(m[1], "_", "-")] {
			n++
		}
	}
	return n
}

// podCgroupRE finds a pod's UID in a cgroup path: /kubepods/<qos>/pod<uid>/ (cgroupfs driver) or
// kubepods-<qos>-pod<uid with _>.slice (systemd driver).
var podCgroupRE = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})`)

// podUIDs is the UID set of the namespace's pods now.
func (f *fixture) podUIDs(ctx context.Context) (map[string]bool, error) {
	out, err := f.Kube.NS(ctx, "get", "pods", "-o", "jsonpath={.items[*].metadata.uid}")
	if err != nil {
		return nil, err
	}
	uids := map[string]bool{}
	for _, uid := range strings.Fields(out) {
		uids[uid] = true
	}
	return uids, nil
}

func (f *fixture) startSampler(ctx context.Context) *sampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		seen := map[string]bool{} // UIDs of every pod of the namespace sampled so far
		for ctx.Err() == nil {
			smp := gcSample{At: time.Now(), Replicas: -1}
			var pods struct {
				Items []struct {
					Metadata struct {
						Name              string            `json:"name"`
						UID               string            `json:"uid"`
						Labels            map[string]string `json:"labels"`
						DeletionTimestamp *string           `json:"deletionTimestamp"`
					} `json:"metadata"`
					Status struct{ Phase string } `json:"status"`
				} `json:"items"`
			}
			// All pods: the GC pod's UID finds its collector; the registry's are counted.
			if err := f.Kube.GetJSON(ctx, true, &pods, "pods"); err == nil {
				for _, p := range pods.Items {
					seen[p.Metadata.UID] = true
					l := p.Metadata.Labels
					if l["app.kubernetes.io/component"] != "registry" || l["app.kubernetes.io/part-of"] != "registry-stack" {
						continue
					}
					if p.Status.Phase == "Failed" || p.Status.Phase == "Succeeded" {
						continue
					}
					smp.Pods++
					smp.Names = append(smp.Names, p.Metadata.Name)
					if p.Metadata.Labels["registry-stack.io/maintenance"] != "read-only" {
						smp.Writable++
					}
				}
			}
			smp.Collectors = collectorProcesses(seen)
			if out, err := f.Kube.NS(ctx, "get", "deployment", f.Out.DeploymentName, "-o",
				`jsonpath={.spec.template.metadata.labels.registry-stack\.io/maintenance}|{.spec.replicas}`); err == nil {
				mode, replicas, _ := strings.Cut(strings.TrimSpace(out), "|")
				smp.TemplateReadOnly = mode == "read-only"
				if n, err := strconv.Atoi(replicas); err == nil {
					smp.Replicas = n
				}
			}
			if out, err := f.Kube.NS(ctx, "get", "lease", f.gcLease(), "-o", "jsonpath={.spec.holderIdentity}|{.spec.renewTime}"); err == nil {
				smp.LeaseHolder, smp.Renew, _ = strings.Cut(strings.TrimSpace(out), "|")
			}
			s.mu.Lock()
			s.samples = append(s.samples, smp)
			s.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return s
}

// seen waits until a sample taken so far satisfies ok.
func (s *sampler) seen(ctx context.Context, timeout time.Duration, ok func(gcSample) bool) error {
	return kit.Poll(ctx, timeout, 500*time.Millisecond, func() (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return slices.ContainsFunc(s.samples, ok), nil
	})
}

func (s *sampler) finish() []gcSample {
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]gcSample(nil), s.samples...)
}

// gcLease is the GC lease's name (stack output gcLeaseName).
func (f *fixture) gcLease() string {
	if f.leaseName == "" {
		out, err := f.Pulumi.Outputs(context.Background(), false)
		if err == nil {
			f.leaseName, _ = out["gcLeaseName"].(string)
		}
	}
	return f.leaseName
}

// timeline renders the samples in which something changed.
func timeline(samples []gcSample) string {
	var lines []string
	prev := ""
	for _, s := range samples {
		key := fmt.Sprintf("%d %d %v %d %s", s.Pods, s.Writable, s.TemplateReadOnly, s.Collectors, s.LeaseHolder)
		if key != prev {
			lines = append(lines, s.String()+" "+strings.Join(s.Names, ","))
			prev = key
		}
	}
	return strings.Join(lines, "\n")
}

// watchdogStart is who starts the watchdog after a GC pod died.
type watchdogStart int

const (
	// bySchedule: the CronJob, at its next minute; proves the whole documented bound.
	bySchedule watchdogStart = iota
	// byHand: a Job from the CronJob as soon as the dead pod's lease expired (`kubectl create job
	// --from=cronjob/...`), for the steps that test what the watchdog does, not when it runs.
	byHand
)

// startWatchdogsOnExpiry starts the watchdog by hand once the lease the dead GC pod held has
// expired (the watchdog acts only then), and again if that run still found it live (its own clock
// read it a second early), until a watchdog holds the lease or stop is called. It returns the
// names of the Jobs it started.
func (f *fixture) startWatchdogsOnExpiry(ctx context.Context, t *testing.T) (stop func() []string) {
	ctx, cancel := context.WithCancel(ctx)
	var jobs []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil && len(jobs) < 3 {
			out, err := f.Kube.NS(ctx, "get", "lease", f.gcLease(), "-o", "jsonpath={.spec.holderIdentity}|{.spec.renewTime}")
			holder, renew, _ := strings.Cut(strings.TrimSpace(out), "|")
			if err == nil && (holder == "" || strings.HasPrefix(holder, watchdogPodPrefix)) {
				return // a watchdog took the lease (or gave it back): nothing left to start
			}
			at, perr := time.Parse(time.RFC3339Nano, renew)
			if err != nil || perr != nil || time.Since(at) <= time.Duration(gc.LeaseSeconds+1)*time.Second {
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
				continue
			}
			suffix, err := kit.RandomSuffix()
			if err != nil {
				t.Errorf("watchdog job name: %v", err)
				return
			}
			job := f.Out.GCWatchdogCronJobName + "-e2e-" + suffix
			jobs = append(jobs, job)
			if _, err := f.Kube.RunJobFromCronJob(ctx, f.Out.GCWatchdogCronJobName, job, 2*time.Minute); err != nil && ctx.Err() == nil {
				t.Logf("watchdog job %s: %v", job, err)
			}
		}
	}()
	return func() []string {
		cancel()
		<-done
		return jobs
	}
}

// killGCAndHeal force-deletes the GC pod of a stretched run and checks that writes come back on
// their own within healBound, never while a collector runs, with nothing acknowledged lost.
func (f *fixture) killGCAndHeal(t *testing.T, label string, mode slowCollector, start watchdogStart) {
	need(t, f.Client != nil && f.imgKeep != nil, "deployment and a pushed image")
	ctx := context.Background()
	_, pod := f.holdGC(ctx, t, label, mode, 600)
	if mode == slowCollectorRuns {
		if err := kit.Poll(ctx, 30*time.Second, 500*time.Millisecond, func() (bool, error) {
			uids, err := f.podUIDs(ctx)
			return err == nil && collectorProcesses(uids) > 0, nil
		}); err != nil {
			t.Fatalf("no collector process on the node while %s collects: %v", pod, err)
		}
	}
	smp := f.startSampler(ctx)
	pushes := startPushLoop(ctx, f.Client, "e2e/"+label, 64<<10, 2*time.Second)
	time.Sleep(3 * time.Second) // a few refused pushes first: the registry is read-only
	killed := time.Now()
	if _, err := f.Kube.NS(ctx, "delete", "pod", pod, "--grace-period=0", "--force", "--wait=false"); err != nil {
		t.Fatalf("force-delete %s: %v", pod, err)
	}
	stopWatchdogs := func() []string { return nil }
	if start == byHand {
		stopWatchdogs = f.startWatchdogsOnExpiry(ctx, t)
	}
	var back time.Time
	err := kit.Poll(ctx, healBound+time.Minute, 500*time.Millisecond, func() (bool, error) {
		for _, at := range pushes.stats.snapshot().AckedAt {
			if at.After(killed) {
				back = at
				return true, nil
			}
		}
		return false, nil
	})
	time.Sleep(3 * time.Second)
	stats := pushes.stop()
	samples := smp.finish()
	byHandJobs := stopWatchdogs()
	t.Logf("timeline (GC pod %s force-deleted at %s):\n%s", pod, killed.Format("15:04:05"), timeline(samples))
	if err != nil {
		jobs, _ := f.Kube.NS(ctx, "get", "jobs", "-o", "wide")
		t.Fatalf("no push acknowledged within %s of the GC pod's death: %v\n%s\njobs:\n%s\nwatchdog:\n%s", healBound+time.Minute, err,
			stats.summary("pushes"), jobs, f.watchdogLogs(ctx))
	}
	heal := back.Sub(killed)
	if heal > healBound {
		t.Errorf("writes came back %s after the GC pod died, beyond the documented bound %s", heal.Round(time.Second), healBound)
	}
	// No collector while any replica may write: from the first writable sample on, none runs.
	var firstWritable time.Time
	for _, s := range samples {
		if s.At.After(killed) && (s.Writable > 0 || !s.TemplateReadOnly) && firstWritable.IsZero() {
			firstWritable = s.At
		}
		if !firstWritable.IsZero() && s.Collectors > 0 {
			t.Errorf("%s: a collector process runs while the registry is writable again", s)
		}
	}
	if firstWritable.IsZero() {
		t.Error("no sample saw the registry writable again")
	}
	collectorGone := time.Time{}
	for _, s := range samples {
		if s.At.After(killed) && s.Collectors == 0 {
			collectorGone = s.At
			break
		}
	}
	for i, at := range stats.AckedAt {
		if at.Before(back) {
			t.Errorf("push %s acknowledged at %s, before writes were back (the registry was read-only)", stats.Acked[i].Ref(), at.Format("15:04:05.000"))
		}
	}
	if stats.Failed > 0 {
		t.Errorf("%s", stats.summary("pushes"))
	}
	if err := f.pullAcked(ctx, stats.Acked); err != nil {
		t.Errorf("an acknowledged push does not pull: %v", err)
	}
	if _, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep); err != nil {
		t.Errorf("the kept image no longer pulls: %v", err)
	}
	// The watchdog took the lease over (its pod became the holder) and logged the restore.
	healer := ""
	for _, s := range samples {
		if s.At.After(killed) && strings.HasPrefix(s.LeaseHolder, watchdogPodPrefix) {
			healer = s.LeaseHolder
			break
		}
	}
	logs := ""
	if healer == "" {
		t.Errorf("no sample saw a watchdog pod holding the lease; watchdog logs:\n%s", f.watchdogLogs(ctx))
	} else if err := kit.Poll(ctx, 2*time.Minute, 2*time.Second, func() (bool, error) {
		// Its last step may still wait for the old pods to go when the first push succeeds.
		var err error
		logs, err = f.Kube.NS(ctx, "logs", "pod/"+healer, "--all-containers")
		return err == nil && strings.Contains(logs, "writes restored"), nil
	}); err != nil || !strings.Contains(logs, "took the GC lease") {
		t.Errorf("watchdog pod %s held the lease but its log shows no restore (%v):\n%s", healer, err, logs)
	}
	preview := "clean"
	if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-refresh-after-"+label, "preview", "--refresh", "--expect-no-changes", "--diff"); err != nil {
		t.Errorf("pulumi preview --refresh after the healed GC: %v", err)
		preview = "NOT clean"
	}
	msg := fmt.Sprintf("GC pod killed (%s): force-deleted at %s; collector processes gone %s later; the registry writable again %s later "+
		"(first writable replica); first push acknowledged %s after the kill (bound %s); %s; %d acknowledged pushes pull back; "+
		"preview --refresh %s. Watchdog %s (%s): %s",
		label, killed.Format("15:04:05"), since(collectorGone, killed), since(firstWritable, killed), heal.Round(time.Second), healBound,
		stats.summary("pushes"), len(stats.Acked), preview, healer, startedBy(start, byHandJobs), lastWatchdogLines(logs))
	t.Log(msg)
	f.Report.Fact("%s", msg)
	f.survivors = append(f.survivors, stats.Acked...)
}

func startedBy(start watchdogStart, jobs []string) string {
	if start == bySchedule {
		return "started by its CronJob's schedule"
	}
	if len(jobs) == 0 {
		return "to be started by hand, but its CronJob's minute came first"
	}
	return fmt.Sprintf("started by hand once the lease expired: %s", strings.Join(jobs, ", "))
}

func since(t, from time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(from).Round(time.Second).String()
}

// watchdogLogs are the logs of the watchdog's recent Jobs that did something.
func (f *fixture) watchdogLogs(ctx context.Context) string {
	out, err := f.Kube.NS(ctx, "logs", "-l", "app.kubernetes.io/component=gc-watchdog", "--all-containers", "--prefix", "--tail=40", "--max-log-requests=20")
	if err != nil {
		return fmt.Sprintf("(watchdog logs: %v)", err)
	}
	return out
}

func lastWatchdogLines(logs string) string {
	var keep []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "watchdog:") && !strings.Contains(l, "nothing to do") {
			if i := strings.Index(l, "watchdog:"); i >= 0 {
				keep = append(keep, strings.TrimSpace(l[i:]))
			}
		}
	}
	if len(keep) > 4 {
		keep = keep[len(keep)-4:]
	}
	return strings.Join(keep, " / ")
}

// stepGCKilledReadOnly: the GC pod dies after the registry went read-only, before its collector
// started; the watchdog's CronJob heals it at its next minute (the whole documented bound).
func (f *fixture) stepGCKilledReadOnly(t *testing.T) {
	f.killGCAndHeal(t, "gc-killed-read-only", pauseBeforeCollect, bySchedule)
}

// stepGCKilledCollecting: the GC pod dies while its collector runs; the watchdog is started by
// hand as soon as the lease expired (when it runs is proven by the step before).
func (f *fixture) stepGCKilledCollecting(t *testing.T) {
	f.killGCAndHeal(t, "gc-killed-collecting", slowCollectorRuns, byHand)
}

// stepPulumiUpDuringGC: `pulumi up` with a change that rolls the registry and a replicas change,
// while the collector runs: every replica that exists while the collector runs is read-only (the
// pods' timeline shows it), the GC then finishes and restores writes, and the stack has no drift.
func (f *fixture) stepPulumiUpDuringGC(t *testing.T) {
	need(t, f.Client != nil && f.imgKeep != nil, "deployment and a pushed image")
	ctx := context.Background()
	// The collector waits until the up returned (released then), at most this long.
	const collectSeconds = 300
	job, err := f.startSlowGC(ctx, "gc-pulumi-up", slowCollectorRuns, collectSeconds)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pod, err := f.gcPodCollecting(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	smp := f.startSampler(ctx)
	before, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		t.Fatal(err)
	}
	config := map[string]string{"registry.cpuRequest": "20m", "replicas": "3"}
	if err := f.Pulumi.SetConfig(ctx, config); err != nil {
		t.Fatal(err)
	}
	upStart := time.Now()
	_, upErr := f.Pulumi.Up(ctx, "up-during-gc")
	upDone := time.Now()
	// The new replicas exist and are Ready (the up waited for the rollout) while the collector
	// still runs: let it finish now instead of after a fixed time.
	if uids, err := f.podUIDs(ctx); err != nil {
		t.Error(err)
	} else if collectorProcesses(uids) == 0 {
		t.Errorf("the collector was no longer running when pulumi up returned: the overlap this step needs did not happen")
	}
	if err := f.releaseCollector(ctx, pod); err != nil {
		t.Error(err)
	}
	res, jobErr := f.Kube.WaitJob(ctx, job, start, kit.GCJobTimeout)
	if err := f.Kube.RolloutStatus(ctx, f.Out.DeploymentName, kit.ReadyTimeout); err != nil {
		t.Errorf("rollout after GC: %v", err)
	}
	samples := smp.finish()
	t.Logf("timeline (GC pod %s, pulumi up %s-%s):\n%s", pod, upStart.Format("15:04:05"), upDone.Format("15:04:05"), timeline(samples))
	if upErr != nil {
		t.Fatalf("pulumi up during GC: %v\n%s", upErr, f.Kube.Events(ctx))
	}
	if jobErr != nil || res == nil {
		logs := ""
		if res != nil {
			logs = kit.Tail(res.Logs, 30)
		}
		t.Fatalf("GC job %s after the pulumi up: %v\n%s", job, jobErr, logs)
	}
	old := map[string]bool{}
	for _, p := range before {
		old[p.Name] = true
	}
	collecting, newDuring, maxPods := 0, map[string]bool{}, 0
	for _, s := range samples {
		if s.Collectors == 0 {
			continue
		}
		collecting++
		maxPods = max(maxPods, s.Pods)
		if s.Writable > 0 || !s.TemplateReadOnly {
			t.Errorf("%s: a writable replica while the collector runs", s)
		}
		for _, n := range s.Names {
			if !old[n] {
				newDuring[n] = true
			}
		}
	}
	if collecting == 0 {
		t.Fatal("no sample saw the collector running: the step proves nothing")
	}
	if len(newDuring) == 0 || maxPods < 3 {
		t.Errorf("the pulumi up created no new replica while the collector ran (new %v, at most %d pods): the overlap this step needs did not happen", newDuring, maxPods)
	}
	if !strings.Contains(res.Logs, "garbage-collect=0") || !strings.Contains(res.Logs, "read-write-restored=yes") {
		t.Errorf("GC summary after the pulumi up:\n%s", kit.Tail(res.Logs, 10))
	}
	if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-refresh-after-up-during-gc", "preview", "--refresh", "--expect-no-changes", "--diff"); err != nil {
		t.Errorf("pulumi preview --refresh after GC and the pulumi up: %v", err)
	}
	if _, err := f.Client.PushImage(ctx, mustImage(t, "e2e/after-up-during-gc")); err != nil {
		t.Errorf("push after the GC: %v", err)
	}
	msg := fmt.Sprintf("pulumi up during GC (registry.cpuRequest 10m->20m, replicas 2->3) took %s while the collector ran (released when the up returned): %d samples with the collector running, "+
		"up to %d replicas, %d of them new, none writable; GC finished (%s), writes back, preview --refresh clean",
		upDone.Sub(upStart).Round(time.Second), collecting, maxPods, len(newDuring), lastLine(res.Logs))
	t.Log(msg)
	f.Report.Fact("%s", msg)
	// Back to the suite's configuration for the later steps.
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"registry.cpuRequest": "10m", "replicas": "2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Pulumi.Up(ctx, "up-after-gc-restore-config"); err != nil {
		t.Fatalf("pulumi up back to 2 replicas: %v", err)
	}
}

func mustImage(t *testing.T, repo string) *kit.Image {
	t.Helper()
	img, err := kit.RandomImage(repo, "v1", 1, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
