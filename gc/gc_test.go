package gc

import (
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/storage"
)

const (
	tCronJob        = "kubernetes:batch/v1:CronJob"
	tConfigMap      = "kubernetes:core/v1:ConfigMap"
	tServiceAccount = "kubernetes:core/v1:ServiceAccount"
	tRole           = "kubernetes:rbac.authorization.k8s.io/v1:Role"
	tRoleBinding    = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
	tLease          = "kubernetes:coordination.k8s.io/v1:Lease"
	tGC             = "registry-stack:index:GC"
	gcName          = "registry-gc"
	watchdogName    = gcName + "-watchdog"
	kubectlImage    = "registry.k8s.io/kubectl:v1.33.13"
)

var registrySelector = map[string]string{"app.kubernetes.io/name": "registry", "app.kubernetes.io/instance": "registry"}

// gcArgs are the fixed inputs of NewGC (as main wires them); each call returns a fresh copy.
func gcArgs(cache bool) *GCArgs {
	a := &GCArgs{
		Namespace:        pulumi.String("images"),
		Schedule:         "30 4 * * 6",
		DeploymentName:   pulumi.String("registry"),
		ContainerName:    "registry",
		RegistrySelector: registrySelector,
		RegistryImage:    "registry:3.1.2",
		RegistryUID:      1000,
		ConfigSecretName: pulumi.String("registry-config"),
		Storage:          storage.FilesystemBackend(pulumi.String("registry-data"), &storage.Filesystem{Mode: "dynamic", AccessMode: "ReadWriteOnce"}),
		KubectlImage:     kubectlImage,
	}
	if cache {
		a.CacheEnabled = true
		a.RedisHost = pulumi.String("registry-redis")
		a.RedisPort = 6379
		a.RedisImage = "redis:7.0.15-alpine"
		a.RedisUsername = "gc"
		a.RedisPasswordSecret = pulumi.String("registry-redis")
		a.RedisPasswordKey = "gc-password"
	}
	return a
}

func runGC(t *testing.T, a *GCArgs) *testutil.Mocks {
	t.Helper()
	return testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewGC(ctx, gcName, a)
		return err
	})
}

// podSpec is the Job pod template of the registered GC CronJob, as plain values.
func podSpec(t *testing.T, m *testutil.Mocks) map[string]any {
	t.Helper()
	return cronPodSpec(t, m, gcName)
}

// watchdogPodSpec is the Job pod template of the registered watchdog CronJob.
func watchdogPodSpec(t *testing.T, m *testutil.Mocks) map[string]any {
	t.Helper()
	return cronPodSpec(t, m, watchdogName)
}

func cronPodSpec(t *testing.T, m *testutil.Mocks, name string) map[string]any {
	t.Helper()
	spec, ok := m.Get(t, tCronJob, name).Lookup("spec", "jobTemplate", "spec", "template", "spec").(map[string]any)
	if !ok {
		t.Fatalf("CronJob %s has no pod template spec", name)
	}
	return spec
}

// bothPods are the GC and the watchdog pod specs of one run.
func bothPods(t *testing.T, m *testutil.Mocks) map[string]map[string]any {
	t.Helper()
	return map[string]map[string]any{gcName: podSpec(t, m), watchdogName: watchdogPodSpec(t, m)}
}

type container = map[string]any

// containers returns the init containers followed by the main containers.
func containers(t *testing.T, spec map[string]any) (inits, mains []container) {
	t.Helper()
	for _, c := range asList(spec["initContainers"]) {
		inits = append(inits, c.(container))
	}
	for _, c := range asList(spec["containers"]) {
		mains = append(mains, c.(container))
	}
	return inits, mains
}

func asList(v any) []any { l, _ := v.([]any); return l }

func names(cs []container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c["name"].(string))
	}
	return out
}

// argv is the container's command followed by its args.
func argv(c container) []string {
	var out []string
	for _, v := range append(asList(c["command"]), asList(c["args"])...) {
		out = append(out, v.(string))
	}
	return out
}

// env returns the container's env as name -> value (literal) or "<from:...>" (valueFrom).
func env(c container) map[string]string {
	out := map[string]string{}
	for _, e := range asList(c["env"]) {
		em := e.(map[string]any)
		name := em["name"].(string)
		if v, ok := em["value"].(string); ok {
			out[name] = v
		} else {
			out[name] = fmt.Sprintf("<from:%v>", em["valueFrom"])
		}
	}
	return out
}

func TestCronJob(t *testing.T) {
	for _, suspend := range []bool{false, true} {
		a := gcArgs(true)
		a.Suspend = suspend
		cron := runGC(t, a).Get(t, tCronJob, gcName)
		for _, e := range []struct {
			path []any
			want any
			why  string
		}{
			{[]any{"spec", "schedule"}, "30 4 * * 6", "as given"},
			{[]any{"spec", "suspend"}, suspend, "as given"},
			{[]any{"spec", "concurrencyPolicy"}, "Forbid", "two GCs would restart the registry against each other"},
			{[]any{"spec", "jobTemplate", "spec", "backoffLimit"}, 0.0, "a retry restarts the registry twice more"},
			{[]any{"spec", "jobTemplate", "spec", "activeDeadlineSeconds"}, float64(24 * 3600), "a hung collector must not hold the registry read-only for ever"},
			{[]any{"spec", "jobTemplate", "spec", "template", "spec", "restartPolicy"}, "Never", "a restarted init container would re-enter maintenance"},
			{[]any{"spec", "jobTemplate", "spec", "template", "spec", "serviceAccountName"}, gcName, "the account bound to the Role"},
			{[]any{"metadata", "namespace"}, "images", "as given"},
		} {
			if got := cron.Lookup(e.path...); got != e.want {
				t.Errorf("suspend=%v: %v = %#v, want %#v (%s)", suspend, e.path, got, e.want, e.why)
			}
		}
	}
	// No default here (the one table is stackconfig's): a missing schedule is refused.
	a := gcArgs(false)
	a.Schedule = ""
	if _, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewGC(ctx, gcName, a)
		return err
	}); err == nil || !strings.Contains(err.Error(), "Schedule") {
		t.Errorf("no schedule: %v, want it refused by name", err)
	}
}

// TestWatchdogCronJob: every minute, whatever the GC's schedule or suspension, one at a time, each
// run bounded, and its pod never collects.
func TestWatchdogCronJob(t *testing.T) {
	for _, suspend := range []bool{false, true} {
		for _, cache := range []bool{true, false} {
			t.Run(fmt.Sprintf("suspend=%v/cache=%v", suspend, cache), func(t *testing.T) {
				a := gcArgs(cache)
				a.Suspend = suspend
				m := runGC(t, a)
				cron := m.Get(t, tCronJob, watchdogName)
				for _, e := range []struct {
					path []any
					want any
					why  string
				}{
					{[]any{"metadata", "name"}, watchdogName, "named after the GC"},
					{[]any{"metadata", "namespace"}, "images", "as given"},
					{[]any{"spec", "schedule"}, "* * * * *", "the CronJob's finest schedule: writes come back within minutes"},
					{[]any{"spec", "concurrencyPolicy"}, "Forbid", "two watchdogs would race for the lease"},
					{[]any{"spec", "startingDeadlineSeconds"}, 60.0, "a missed minute is not caught up later"},
					{[]any{"spec", "successfulJobsHistoryLimit"}, 1.0, "one Job a minute"},
					{[]any{"spec", "failedJobsHistoryLimit"}, 3.0, "failures stay visible"},
					{[]any{"spec", "jobTemplate", "spec", "backoffLimit"}, 0.0, "the next minute's run is the retry"},
					{[]any{"spec", "jobTemplate", "spec", "activeDeadlineSeconds"}, 720.0, "one rollout (600 s) and the rest"},
					{[]any{"spec", "jobTemplate", "spec", "template", "spec", "restartPolicy"}, "Never", "a Job pod"},
					{[]any{"spec", "jobTemplate", "spec", "template", "spec", "serviceAccountName"}, gcName, "the account bound to the Role"},
				} {
					if got := cron.Lookup(e.path...); got != e.want {
						t.Errorf("%v = %#v, want %#v (%s)", e.path, got, e.want, e.why)
					}
				}
				if WatchdogSchedule != "* * * * *" {
					t.Errorf("WatchdogSchedule = %q", WatchdogSchedule)
				}
				// A suspended GC still runs Jobs created by hand, and they need the watchdog as much.
				if got := cron.Lookup("spec", "suspend"); got != nil && got != false {
					t.Errorf("watchdog suspend = %#v with GCArgs.Suspend=%v, want never suspended", got, suspend)
				}
				if got, _ := cron.Lookup("spec", "jobTemplate", "spec", "activeDeadlineSeconds").(float64); got <= rolloutTimeoutSeconds {
					t.Errorf("activeDeadlineSeconds %v does not leave room for the rollout back to read-write (%d s)", got, rolloutTimeoutSeconds)
				}

				// Its own component label, and the selector Redis admits (it may flush).
				for _, path := range [][]any{
					{"spec", "jobTemplate", "spec", "template", "metadata", "labels"},
					{"spec", "jobTemplate", "metadata", "labels"},
					{"metadata", "labels"},
				} {
					labels, _ := cron.Lookup(path...).(map[string]any)
					if !reflect.DeepEqual(labels, testutil.AnyMap(WatchdogPodLabels(gcName))) {
						t.Errorf("%v = %v, want %v", path, labels, WatchdogPodLabels(gcName))
					}
				}
				if got := WatchdogPodLabels(gcName)["app.kubernetes.io/component"]; got != "gc-watchdog" {
					t.Errorf("watchdog component label = %q, want gc-watchdog", got)
				}
				labels, _ := cron.Lookup("spec", "jobTemplate", "spec", "template", "metadata", "labels").(map[string]any)
				for k, v := range PodSelector(gcName) {
					if labels[k] != v {
						t.Errorf("watchdog pod label %s = %v, want %s (Redis admits the flush by PodSelector)", k, labels[k], v)
					}
				}

				// Its steps: the redis image pulled first, check, flush (with the cache), restore.
				spec := watchdogPodSpec(t, m)
				inits, mains := containers(t, spec)
				wantInits := []string{"pull-redis-image", "check", "flush-cache"}
				if !cache {
					wantInits = []string{"check"}
				}
				if got := names(inits); !slices.Equal(got, wantInits) {
					t.Errorf("watchdog init containers = %v, want %v", got, wantInits)
				}
				if got := names(mains); !slices.Equal(got, []string{"restore-writes"}) {
					t.Errorf("watchdog containers = %v, want [restore-writes]", got)
				}
				want := map[string][]string{
					"pull-redis-image": {"redis-cli", "--version"},
					"check":            {"sh", "/scripts/watchdog.sh", "check"},
					"flush-cache":      {"sh", "/scripts/flush.sh"},
					"restore-writes":   {"sh", "/scripts/watchdog.sh", "restore"},
				}
				images := map[string]string{
					"pull-redis-image": "redis:7.0.15-alpine", "check": kubectlImage,
					"flush-cache": "redis:7.0.15-alpine", "restore-writes": kubectlImage,
				}
				for _, c := range append(inits, mains...) {
					name := c["name"].(string)
					if got := argv(c); !slices.Equal(got, want[name]) {
						t.Errorf("watchdog %s runs %q, want %q", name, got, want[name])
					}
					if c["image"] != images[name] || c["imagePullPolicy"] != "IfNotPresent" {
						t.Errorf("watchdog %s image %v (%v), want %s (IfNotPresent)", name, c["image"], c["imagePullPolicy"], images[name])
					}
					if c["restartPolicy"] != nil {
						t.Errorf("watchdog %s restartPolicy = %v, want none: nothing runs beside the steps", name, c["restartPolicy"])
					}
					for _, m := range asList(c["volumeMounts"]) {
						if p := m.(map[string]any)["mountPath"]; p != scriptsDir && p != statusDir && p != "/tmp" {
							t.Errorf("watchdog %s mounts %v: it needs neither the storage nor the registry config", name, p)
						}
					}
					if c["image"] == "registry:3.1.2" || strings.Contains(strings.Join(argv(c), " "), "garbage-collect") ||
						slices.Contains(argv(c), "/scripts/collect.sh") {
						t.Errorf("watchdog %s runs %q in %v: the watchdog never collects", name, argv(c), c["image"])
					}
				}
				var volumes []string
				for _, v := range asList(spec["volumes"]) {
					vm := v.(map[string]any)
					volumes = append(volumes, vm["name"].(string))
					if vm["persistentVolumeClaim"] != nil || vm["secret"] != nil || vm["hostPath"] != nil {
						t.Errorf("watchdog volume %v: it needs neither the storage nor the registry config", vm)
					}
				}
				if !slices.Equal(volumes, []string{"scripts", "status", "tmp"}) {
					t.Errorf("watchdog volumes = %v, want [scripts status tmp]", volumes)
				}
				if spec["affinity"] != nil {
					t.Errorf("watchdog affinity = %v: it mounts no claim, it may run anywhere", spec["affinity"])
				}
				if !strings.Contains(fmt.Sprint(spec["securityContext"]), "runAsNonRoot:true") {
					t.Errorf("watchdog pod securityContext = %v", spec["securityContext"])
				}
			})
		}
	}
}

// TestLease: the GC lease object the stack owns; the scripts own its holder and times.
func TestLease(t *testing.T) {
	m := runGC(t, gcArgs(true))
	l := m.Get(t, tLease, gcName)
	if got := l.String("metadata", "name"); got != gcName {
		t.Errorf("Lease name = %q, want %s", got, gcName)
	}
	if got := l.String("metadata", "namespace"); got != "images" {
		t.Errorf("Lease namespace = %q, want images", got)
	}
	if got := l.Lookup("spec", "leaseDurationSeconds"); got != 30.0 || LeaseSeconds != 30 {
		t.Errorf("Lease leaseDurationSeconds = %v (LeaseSeconds %d), want 30", got, LeaseSeconds)
	}
	// A holder or a time set by the stack would be reset by every `pulumi up`, during a GC too.
	spec, _ := l.Lookup("spec").(map[string]any)
	if got := slices.Sorted(maps.Keys(spec)); !slices.Equal(got, []string{"leaseDurationSeconds"}) {
		t.Errorf("Lease spec sets %v, want only leaseDurationSeconds", got)
	}
	if n := len(m.OfType(tLease)); n != 1 {
		t.Errorf("%d Leases, want 1", n)
	}
	// The timing the fence relies on: a renewal may be missed without fencing, and the collector
	// (polled every second, killed 2 s after SIGTERM) is gone before anyone may take the lease over.
	if RenewSeconds*2 > FenceSeconds {
		t.Errorf("RenewSeconds %d, FenceSeconds %d: one slow renewal would stop the collector", RenewSeconds, FenceSeconds)
	}
	if FenceSeconds+1+2 >= LeaseSeconds {
		t.Errorf("FenceSeconds %d + 3 s >= LeaseSeconds %d: the collector could outlive the lease", FenceSeconds, LeaseSeconds)
	}
}

// pullSteps are the init containers that only pull an image (they run its --version) before the
// registry goes read-only.
var pullSteps = map[string]bool{"pull-registry-image": true, "pull-redis-image": true, "copy-regctl": true}

// withRetention is a with a retention policy.
func withRetention(a *GCArgs) *GCArgs {
	a.Retention = &Retention{RegctlImage: "ghcr.io/regclient/regctl:v0.11.7-alpine", Policies: []RetentionPolicy{
		{Repositories: []string{"ci/*"}, KeepNewest: 3, KeepTags: []string{"latest", `v[0-9]+\.[0-9]+\.[0-9]+`}}}}
	return a
}

// With retention, regctl is pulled before anything happens; the lease is taken before retention
// deletes anything, retention runs while the registry is writable (before enter-read-only), and
// the last step reports its result.
func TestRetentionRunsFirstUnderTheLease(t *testing.T) {
	m := runGC(t, withRetention(gcArgs(true)))
	inits, mains := containers(t, podSpec(t, m))
	want := []string{"pull-registry-image", "pull-redis-image", "copy-regctl", "lease", "take-lease", "retention", "release-lease", "enter-read-only", "garbage-collect", "flush-cache"}
	if got := names(inits); !slices.Equal(got, want) {
		t.Errorf("init containers = %v, want %v", got, want)
	}
	if got := argv(mains[0]); !slices.Equal(got, []string{"sh", "/scripts/retention-kubectl.sh", "finish"}) {
		t.Errorf("last step runs %q, want retention-kubectl.sh finish", got)
	}
	// Beside it, in the registry's image with the storage: the measure once writes are back.
	if len(mains) != 2 || !slices.Equal(argv(mains[1]), []string{"sh", "/scripts/retention.sh", "report"}) || mains[1]["image"] != "registry:3.1.2" {
		t.Errorf("main containers %v, want restore-writes and report-freed", names(mains))
	} else if e := env(mains[1]); e["DATA_DIR"] != "/var/lib/registry" {
		t.Errorf("report-freed DATA_DIR = %q, want the filesystem store's mount", e["DATA_DIR"])
	}
	for _, c := range inits {
		switch c["name"] {
		case "copy-regctl":
			if got := argv(c); c["image"] != "ghcr.io/regclient/regctl:v0.11.7-alpine" || !slices.Equal(got, []string{"cp", "/usr/local/bin/regctl", "/tools/regctl"}) {
				t.Errorf("copy-regctl runs %q in %v", got, c["image"])
			}
		case "retention":
			e := env(c)
			if c["image"] != "registry:3.1.2" || e["LOCAL_CONFIG"] != "/etc/distribution/local.yml" || e["DRY_RUN"] != "false" || e["REGCTL"] != "/tools/regctl" {
				t.Errorf("retention step: image %v env %v", c["image"], e)
			}
		}
	}
	cm := m.Get(t, "kubernetes:core/v1:ConfigMap", gcName)
	if got, want := cm.String("data", PoliciesKey), "policy\t3\t0\tfalse\nrepo\tci/*\nkeep\tlatest\nkeep\tv[0-9]+\\.[0-9]+\\.[0-9]+\n"; got != want {
		t.Errorf("policies file %q, want %q", got, want)
	}
	for _, script := range []string{"retention.sh", "retention-kubectl.sh"} {
		if cm.String("data", script) == "" {
			t.Errorf("the ConfigMap lacks %s", script)
		}
	}
}

func TestRetentionValidation(t *testing.T) {
	r := &Retention{Policies: []RetentionPolicy{
		{},
		{Repositories: []string{"CI/*", "a b"}, KeepTags: []string{"(", "a\tb"}, KeepNewest: -1, KeepYoungerThan: -time.Hour},
		{Repositories: []string{"tmp/**"}, DeleteAll: true},
	}}
	var got []string
	for _, err := range r.Validate("retention") {
		got = append(got, err.Error())
	}
	for _, want := range []string{
		`retention.regctlImage: "" is invalid`,
		`retention.policies[0].repositories: "[]" is invalid`,
		`retention.policies[0].deleteAll: "false" is invalid; allowed: true when the policy keeps nothing`,
		`retention.policies[1].repositories[0]: "CI/*" is invalid`,
		`retention.policies[1].repositories[1]: "a b" is invalid`,
		`retention.policies[1].keepTags[0]: "(" is invalid`,
		`retention.policies[1].keepTags[1]: "a\tb" is invalid`,
		`retention.policies[1].keepNewest: "-1" is invalid`,
		`retention.policies[1].keepYoungerThan: "-1h0m0s" is invalid`,
	} {
		if !slices.ContainsFunc(got, func(e string) bool { return strings.HasPrefix(e, want) }) {
			t.Errorf("no error %q in:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if len(got) != 9 {
		t.Errorf("%d errors, want 9 (policy 2 with deleteAll is valid):\n%s", len(got), strings.Join(got, "\n"))
	}
}

func TestStepsRunInOrder(t *testing.T) {
	for _, c := range []struct {
		cache     bool
		wantInits []string
	}{
		{true, []string{"pull-registry-image", "pull-redis-image", "lease", "enter-read-only", "garbage-collect", "flush-cache"}},
		{false, []string{"pull-registry-image", "lease", "enter-read-only", "garbage-collect"}},
	} {
		t.Run(fmt.Sprint("cache=", c.cache), func(t *testing.T) {
			inits, mains := containers(t, podSpec(t, runGC(t, gcArgs(c.cache))))
			if got := names(inits); !slices.Equal(got, c.wantInits) {
				t.Errorf("init containers = %v, want %v (init containers run in this order; every image is pulled "+
					"before enter-read-only)", got, c.wantInits)
			}
			if got := names(mains); !slices.Equal(got, []string{"restore-writes"}) {
				t.Errorf("containers = %v, want [restore-writes]", got)
			}
			want := map[string][]string{
				"pull-registry-image": {"registry", "--version"},
				"pull-redis-image":    {"redis-cli", "--version"},
				"lease":               {"sh", "/scripts/lease.sh", "keep"},
				"enter-read-only":     {"sh", "/scripts/maintenance.sh", "enter"},
				"garbage-collect":     {"sh", "/scripts/collect.sh"},
				"flush-cache":         {"sh", "/scripts/flush.sh"},
				"restore-writes":      {"sh", "/scripts/restore.sh"},
			}
			images := map[string]string{
				"pull-registry-image": "registry:3.1.2",
				"pull-redis-image":    "redis:7.0.15-alpine",
				"lease":               kubectlImage,
				"enter-read-only":     kubectlImage,
				"garbage-collect":     "registry:3.1.2",
				"flush-cache":         "redis:7.0.15-alpine",
				"restore-writes":      kubectlImage,
			}
			for _, ctr := range append(inits, mains...) {
				name := ctr["name"].(string)
				if _, ok := want[name]; !ok {
					t.Errorf("unexpected container %s", name)
					continue
				}
				if got := argv(ctr); !slices.Equal(got, want[name]) {
					msg := ""
					if name == "enter-read-only" {
						msg = "\nBUG: maintenance.sh without an argument prints its usage and exits 2, so every GC run fails " +
							"at its first step and never collects"
					}
					t.Errorf("%s runs %q, want %q%s", name, got, want[name], msg)
				}
				if got := ctr["image"]; got != images[name] {
					t.Errorf("%s image = %v, want %s", name, got, images[name])
				}
				if got := ctr["imagePullPolicy"]; got != "IfNotPresent" {
					t.Errorf("%s imagePullPolicy = %v, want IfNotPresent (the image pulled before read-only is reused)", name, got)
				}
			}

			// The kubelet pulls an image when its container starts. Once enter-read-only has run, a
			// failing pull would leave the registry read-only (restore-writes could never start), so
			// every later container must use an image already pulled by an earlier one.
			enter := slices.Index(names(inits), "enter-read-only")
			if enter < 0 {
				t.Fatal("no enter-read-only step")
			}
			pulled := map[any]bool{}
			for _, ctr := range inits[:enter+1] { // enter-read-only's own image is pulled before it switches
				pulled[ctr["image"]] = true
			}
			for _, ctr := range append(slices.Clone(inits[enter+1:]), mains...) {
				if !pulled[ctr["image"]] {
					t.Errorf("%s (image %v) starts after enter-read-only, but its image was not pulled before: "+
						"a failing pull would strand the registry read-only", ctr["name"], ctr["image"])
				}
			}
		})
	}
}

// TestLeaseSidecar: lease.sh keep is a native sidecar (an init container with restartPolicy Always),
// running from before enter-read-only takes the lease until the pod ends; the steps are not.
func TestLeaseSidecar(t *testing.T) {
	for _, cache := range []bool{true, false} {
		inits, mains := containers(t, podSpec(t, runGC(t, gcArgs(cache))))
		var sidecars []string
		for _, c := range inits {
			if c["restartPolicy"] != nil {
				sidecars = append(sidecars, fmt.Sprintf("%s:%v", c["name"], c["restartPolicy"]))
			}
		}
		if !slices.Equal(sidecars, []string{"lease:Always"}) {
			t.Errorf("cache=%v: init containers with a restartPolicy = %v, want only lease:Always (a restarted step "+
				"would re-enter maintenance; a lease keeper that is no sidecar would block the next step forever)", cache, sidecars)
		}
		for _, c := range mains {
			if c["restartPolicy"] != nil {
				t.Errorf("cache=%v: container %s restartPolicy = %v", cache, c["name"], c["restartPolicy"])
			}
		}
		lease, enter := slices.Index(names(inits), "lease"), slices.Index(names(inits), "enter-read-only")
		if lease < 0 || enter < 0 || lease > enter {
			t.Errorf("cache=%v: init containers %v, want lease before enter-read-only (the take must be renewed from the start)", cache, names(inits))
		}
		keeper := inits[lease]
		if got := argv(keeper); !slices.Equal(got, []string{"sh", "/scripts/lease.sh", "keep"}) {
			t.Errorf("cache=%v: lease runs %q", cache, got)
		}
		if e := env(keeper); e["LEASE"] != gcName || e["RENEW_SECONDS"] != fmt.Sprint(RenewSeconds) || e["POD_NAME"] != "<from:map[fieldRef:map[fieldPath:metadata.name]]>" {
			t.Errorf("cache=%v: lease env = %v, want LEASE, RENEW_SECONDS and this pod's name", cache, e)
		}
		if keeper["startupProbe"] != nil || keeper["readinessProbe"] != nil {
			t.Errorf("cache=%v: lease has probes; enter-read-only would wait for them", cache)
		}
	}
}

// TestPullStepsDoNothingElse: the pull containers run a no-op with no access to anything.
func TestPullStepsDoNothingElse(t *testing.T) {
	for _, cache := range []bool{true, false} {
		for pod, spec := range bothPods(t, runGC(t, gcArgs(cache))) {
			inits, _ := containers(t, spec)
			var seen []string
			for _, c := range inits {
				name := c["name"].(string)
				if !pullSteps[name] {
					continue
				}
				seen = append(seen, name)
				if m := asList(c["volumeMounts"]); len(m) != 0 {
					t.Errorf("%s cache=%v: %s mounts %v, want nothing", pod, cache, name, m)
				}
				if e := asList(c["env"]); len(e) != 0 {
					t.Errorf("%s cache=%v: %s env = %v, want none", pod, cache, name, e)
				}
				if c["envFrom"] != nil || c["args"] != nil {
					t.Errorf("%s cache=%v: %s has envFrom %v / args %v, want none", pod, cache, name, c["envFrom"], c["args"])
				}
				if r, _ := c["resources"].(map[string]any); r["requests"] == nil || r["limits"] == nil {
					t.Errorf("%s cache=%v: %s resources = %v, want requests and a memory limit", pod, cache, name, r)
				}
			}
			want := map[string][]string{
				gcName:       {"pull-registry-image", "pull-redis-image"},
				watchdogName: {"pull-redis-image"},
			}[pod]
			if !cache {
				want = want[:len(want)-1]
			}
			if !slices.Equal(seen, want) {
				t.Errorf("%s cache=%v: pull steps = %v, want %v", pod, cache, seen, want)
			}
		}
	}
}

func TestEveryContainerIsRestricted(t *testing.T) {
	for pod, spec := range bothPods(t, runGC(t, gcArgs(true))) {
		if sc, _ := spec["securityContext"].(map[string]any); sc["runAsNonRoot"] != true || sc["runAsUser"] == 0.0 {
			t.Errorf("%s pod securityContext = %v, want runAsNonRoot and a non-zero user", pod, sc)
		}
		// Each container runs as its image's own account, set explicitly (the pod default is the
		// registry's): the pull steps too, although they only print a version.
		wantUID := map[string]map[string]float64{
			gcName: {
				"pull-registry-image": 1000, "pull-redis-image": 999, "lease": 65532,
				"enter-read-only": 65532, "garbage-collect": 1000, "flush-cache": 999, "restore-writes": 65532,
			},
			watchdogName: {"pull-redis-image": 999, "check": 65532, "flush-cache": 999, "restore-writes": 65532},
		}[pod]
		inits, mains := containers(t, spec)
		if got, want := len(inits)+len(mains), len(wantUID); got != want {
			t.Errorf("%s: %d containers %v, want %d", pod, got, names(append(inits, mains...)), want)
		}
		for _, c := range append(inits, mains...) {
			name := c["name"].(string)
			uid, known := wantUID[name]
			if !known {
				t.Errorf("%s: container %s has no expected user", pod, name)
				continue
			}
			sc, _ := c["securityContext"].(map[string]any)
			for _, e := range []struct {
				key  string
				want any
			}{
				{"runAsNonRoot", true},
				{"runAsUser", uid},
				{"runAsGroup", uid},
				{"allowPrivilegeEscalation", false},
				{"readOnlyRootFilesystem", true},
				{"privileged", nil},
			} {
				if got := sc[e.key]; got != e.want {
					t.Errorf("%s: %s securityContext.%s = %v, want %v", pod, name, e.key, got, e.want)
				}
			}
			caps, _ := sc["capabilities"].(map[string]any)
			if fmt.Sprint(caps["drop"]) != "[ALL]" || caps["add"] != nil {
				t.Errorf("%s: %s capabilities = %v, want drop [ALL] and nothing added", pod, name, caps)
			}
			if seccomp, _ := sc["seccompProfile"].(map[string]any); seccomp["type"] != "RuntimeDefault" {
				t.Errorf("%s: %s seccompProfile = %v, want RuntimeDefault", pod, name, seccomp)
			}
			if r, _ := c["resources"].(map[string]any); r["requests"] == nil || r["limits"] == nil {
				t.Errorf("%s: %s resources = %v, want requests and a memory limit", pod, name, r)
			}
		}
	}
}

// scriptVars are the upper-case variables a script reads, plus those of the scripts it runs or
// sources.
func scriptVars(t *testing.T, scripts map[string]string, name string) []string {
	t.Helper()
	body, ok := scripts[name]
	if !ok {
		t.Fatalf("no script %s", name)
	}
	// Code only: a comment may name a variable the script never reads.
	code := regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(body, "")
	seen := map[string]bool{}
	// ${VAR:-default} does not abort under set -u: only the others must be set.
	for _, m := range regexp.MustCompile(`\$(\{)?([A-Z][A-Z0-9_]*)(:?-)?`).FindAllStringSubmatch(code, -1) {
		if m[1] == "{" && m[3] != "" {
			continue
		}
		seen[m[2]] = true
	}
	for other := range scripts {
		if other != name && strings.Contains(code, "/"+other) {
			for _, v := range scriptVars(t, scripts, other) {
				seen[v] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func TestEveryStepGetsTheEnvironmentItsScriptReads(t *testing.T) {
	scripts, err := Scripts(true)
	if err != nil {
		t.Fatal(err)
	}
	if v := scriptVars(t, scripts, "maintenance.sh"); !slices.Contains(v, "LEASE") {
		t.Errorf("maintenance.sh reads %v: the lease.sh it sources is not followed", v)
	}
	checked := map[string]int{}
	pods := bothPods(t, runGC(t, gcArgs(true)))
	pods["gc with retention"] = podSpec(t, runGC(t, withRetention(gcArgs(true))))
	for pod, spec := range pods {
		inits, mains := containers(t, spec)
		for _, c := range append(inits, mains...) {
			name, script := c["name"].(string), ""
			for _, a := range argv(c) {
				if strings.HasPrefix(a, scriptsDir+"/") {
					script = strings.TrimPrefix(a, scriptsDir+"/")
				}
			}
			e := env(c)
			if pullSteps[name] {
				// A pull step runs the image's own binary, no script, and needs no environment.
				if script != "" || len(e) != 0 {
					t.Errorf("%s: pull step %s runs script %q with env %v, want no script and no env", pod, name, script, e)
				}
				continue
			}
			if script == "" {
				t.Errorf("%s: %s runs %q: no script from %s", pod, name, argv(c), scriptsDir)
				continue
			}
			checked[pod]++
			vars := scriptVars(t, scripts, script)
			if len(vars) == 0 {
				t.Errorf("%s: found no variables in %s; the check would prove nothing", name, script)
			}
			for _, v := range vars {
				if _, ok := e[v]; !ok {
					t.Errorf("%s: %s runs %s, which reads $%s, but the container does not set it (set -u aborts the script)", pod, name, script, v)
				}
			}
		}
	}
	if want := map[string]int{gcName: 5, watchdogName: 3, "gc with retention": 9}; !maps.Equal(checked, want) {
		t.Errorf("checked %v script steps, want %v (lease, enter-read-only, garbage-collect, flush-cache, restore-writes; "+
			"check, flush-cache, restore-writes)", checked, want)
	}
}

func TestStepEnvironmentValues(t *testing.T) {
	m := runGC(t, gcArgs(true))
	byName := map[string]container{}
	for pod, spec := range bothPods(t, m) {
		inits, mains := containers(t, spec)
		for _, c := range append(inits, mains...) {
			byName[pod+"/"+c["name"].(string)] = c
		}
	}
	for _, step := range []string{"lease", "enter-read-only", "restore-writes"} {
		byName[step] = byName[gcName+"/"+step]
	}
	kubectlSteps := []string{
		gcName + "/lease", gcName + "/enter-read-only", gcName + "/restore-writes",
		watchdogName + "/check", watchdogName + "/restore-writes",
	}
	for _, step := range kubectlSteps {
		e := env(byName[step])
		for k, want := range map[string]string{
			"NAMESPACE":       "<from:map[fieldRef:map[fieldPath:metadata.namespace]]>",
			"POD_NAME":        "<from:map[fieldRef:map[fieldPath:metadata.name]]>",
			"DEPLOYMENT":      "registry",
			"CONTAINER":       "registry",
			"POD_SELECTOR":    "app.kubernetes.io/instance=registry,app.kubernetes.io/name=registry",
			"ROLLOUT_TIMEOUT": "600",
			"LEASE":           gcName,
			"LEASE_SECONDS":   "30",
			"RENEW_SECONDS":   "5",
			"SCRIPTS_DIR":     "/scripts",
			"STATUS_DIR":      "/status",
			"CACHE_ENABLED":   "true",
			"HOME":            "/tmp",
		} {
			if e[k] != want {
				t.Errorf("%s env %s = %q, want %q", step, k, e[k], want)
			}
		}
		// The GC-run check by pod listing is gone: the lease replaced it.
		if _, ok := e["GC_SELECTOR"]; ok {
			t.Errorf("%s env has GC_SELECTOR", step)
		}
	}
	collect := env(byName[gcName+"/garbage-collect"])
	if collect["CONFIG"] != "/etc/distribution/config.yml" || collect["STATUS_DIR"] != "/status" || collect["OTEL_TRACES_EXPORTER"] != "none" {
		t.Errorf("garbage-collect env = %v", collect)
	}
	if collect["FENCE_SECONDS"] != "15" || FenceSeconds != 15 {
		t.Errorf("garbage-collect FENCE_SECONDS = %q (FenceSeconds %d), want 15", collect["FENCE_SECONDS"], FenceSeconds)
	}
	for _, pod := range []string{gcName, watchdogName} {
		flush := env(byName[pod+"/flush-cache"])
		if flush["REDISCLI_AUTH"] != "<from:map[secretKeyRef:map[key:gc-password name:registry-redis]]>" {
			t.Errorf("%s flush-cache REDISCLI_AUTH = %q, want the flush user's password key of the Redis Secret", pod, flush["REDISCLI_AUTH"])
		}
		if flush["REDIS_HOST"] != "registry-redis" || flush["REDIS_PORT"] != "6379" || flush["REDIS_USER"] != "gc" {
			t.Errorf("%s flush-cache targets %s@%s:%s, want gc@registry-redis:6379", pod, flush["REDIS_USER"], flush["REDIS_HOST"], flush["REDIS_PORT"])
		}
		if flush["STATUS_DIR"] != "/status" {
			t.Errorf("%s flush-cache STATUS_DIR = %q", pod, flush["STATUS_DIR"])
		}
	}
	_, mainsNoCache := containers(t, podSpec(t, runGC(t, gcArgs(false))))
	if got := env(mainsNoCache[0])["CACHE_ENABLED"]; got != "false" {
		t.Errorf("CACHE_ENABLED = %q without the cache, want false (restore.sh would wait for a flush that never runs)", got)
	}
	_, watchdogNoCache := containers(t, watchdogPodSpec(t, runGC(t, gcArgs(false))))
	if got := env(watchdogNoCache[0])["CACHE_ENABLED"]; got != "false" {
		t.Errorf("watchdog CACHE_ENABLED = %q without the cache, want false (it would never restore writes)", got)
	}

	// Mounts: the collector sees the data and the config (read-only); every step shares /status.
	mounts := func(c container) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, m := range asList(c["volumeMounts"]) {
			mm := m.(map[string]any)
			out[mm["mountPath"].(string)] = mm
		}
		return out
	}
	cm := mounts(byName[gcName+"/garbage-collect"])
	if cm["/var/lib/registry"]["name"] != "data" || cm["/etc/distribution"]["name"] != "config" || cm["/etc/distribution"]["readOnly"] != true {
		t.Errorf("garbage-collect mounts = %v, want data at /var/lib/registry and config read-only at /etc/distribution", cm)
	}
	for name, c := range byName {
		if pullSteps[c["name"].(string)] {
			if m := mounts(c); len(m) != 0 {
				t.Errorf("pull step %s mounts %v, want nothing", name, m)
			}
			continue
		}
		if mounts(c)[statusDir]["name"] != "status" {
			t.Errorf("%s does not mount the shared status volume at %s", name, statusDir)
		}
		if name != gcName+"/garbage-collect" {
			if _, ok := mounts(c)["/var/lib/registry"]; ok {
				t.Errorf("%s mounts the registry data; only the collector needs it", name)
			}
		}
	}
	volumes := map[string]string{}
	for _, v := range asList(podSpec(t, m)["volumes"]) {
		vm := v.(map[string]any)
		volumes[vm["name"].(string)] = fmt.Sprint(vm)
	}
	for name, want := range map[string]string{
		"data":    "claimName:registry-data",
		"config":  "secretName:registry-config",
		"scripts": "configMap:map[defaultMode:365 name:registry-gc]",
		"status":  "emptyDir",
	} {
		if !strings.Contains(volumes[name], want) {
			t.Errorf("volume %s = %s, want %s", name, volumes[name], want)
		}
	}
}

func TestRoleRulesAreMinimal(t *testing.T) {
	m := runGC(t, gcArgs(true))
	for _, forbidden := range []string{"kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"} {
		if n := len(m.OfType(forbidden)); n != 0 {
			t.Errorf("%d %s registered: GC needs namespaced RBAC only", n, forbidden)
		}
	}
	role := m.Get(t, tRole, gcName)
	rules := asList(role.Lookup("rules"))
	type rule struct{ groups, resources, names, verbs string }
	var got []rule
	for i := range rules {
		strs := func(k string) string {
			l := []string{}
			for _, v := range asList(role.Lookup("rules", i, k)) {
				l = append(l, v.(string))
			}
			slices.Sort(l)
			return strings.Join(l, ",")
		}
		got = append(got, rule{strs("apiGroups"), strs("resources"), strs("resourceNames"), strs("verbs")})
	}
	want := []rule{
		{"coordination.k8s.io", "leases", gcName, "get,patch"},
		{"apps", "deployments", "registry", "get,list,patch,watch"},
		{"", "pods", "", "get,list"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Role rules = %+v, want exactly %+v (read and patch the one lease, patch/watch the one Deployment, list pods)", got, want)
	}
	dump := fmt.Sprint(role.Lookup("rules"))
	for _, bad := range []string{"*", "secrets", "configmaps", "create", "delete", "update", "escalate", "bind", "exec"} {
		if strings.Contains(dump, bad) {
			t.Errorf("Role mentions %q: %s", bad, dump)
		}
	}

	rb := m.Get(t, tRoleBinding, gcName)
	if rb.String("roleRef", "kind") != "Role" || rb.String("roleRef", "name") != gcName {
		t.Errorf("RoleBinding roleRef = %v, want Role %s", rb.Lookup("roleRef"), gcName)
	}
	if got := fmt.Sprint(rb.Lookup("subjects")); got != fmt.Sprint([]any{map[string]any{"kind": "ServiceAccount", "name": gcName, "namespace": "images"}}) {
		t.Errorf("RoleBinding subjects = %s, want only the GC ServiceAccount", got)
	}
	if got := m.Get(t, tServiceAccount, gcName).String("metadata", "namespace"); got != "images" {
		t.Errorf("ServiceAccount namespace = %q", got)
	}
}

func TestSelectorString(t *testing.T) {
	sel := map[string]string{"c": "3", "app.kubernetes.io/name": "registry", "a": "1", "app.kubernetes.io/instance": "blue"}
	want := "a=1,app.kubernetes.io/instance=blue,app.kubernetes.io/name=registry,c=3"
	for i := 0; i < 50; i++ { // map iteration order is random: repeat to catch an unsorted result
		if got := SelectorString(sel); got != want {
			t.Fatalf("SelectorString = %q, want %q (sorted, kubectl -l syntax)", got, want)
		}
	}
	if got := SelectorString(nil); got != "" {
		t.Errorf("SelectorString(nil) = %q", got)
	}
}

func TestScripts(t *testing.T) {
	without, err := Scripts(false)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(without)); !slices.Equal(got, []string{"collect.sh", "flush.sh", "lease.sh", "maintenance.sh", "restore.sh", "watchdog.sh"}) {
		t.Errorf("Scripts(false) = %v, want the five step scripts and lease.sh", got)
	}
	scripts, err := Scripts(true)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(scripts)); len(got) != 8 || !slices.Contains(got, "retention.sh") || !slices.Contains(got, "retention-kubectl.sh") {
		t.Errorf("Scripts(true) = %v, want retention.sh and retention-kubectl.sh as well", got)
	}
	setU := regexp.MustCompile(`(?m)^set -[a-z]*u`)
	for name, body := range scripts {
		if !strings.HasPrefix(body, "#!/bin/sh\n") {
			t.Errorf("%s does not start with #!/bin/sh", name)
		}
		if name == "lease.sh" {
			// Sourced, it runs under its caller's options; run as the sidecar, it sets its own.
			if !regexp.MustCompile(`(?m)^if \[ "\$\{0##\*/\}" = lease\.sh \] && \[ "\$\{1:-\}" = keep \]; then\n\s+set -[a-z]*u\n`).MatchString(body) {
				t.Errorf("lease.sh keep does not set -u: a missing variable would be silently empty")
			}
			continue
		}
		loc := setU.FindStringIndex(body)
		if loc == nil {
			t.Errorf("%s has no set -u: a missing variable would be silently empty", name)
			continue
		}
		if i := strings.Index(body, `. "$SCRIPTS_DIR/lease.sh"`); i >= 0 && i < loc[0] {
			t.Errorf("%s sources lease.sh before set -u", name)
		}
	}
	for _, name := range []string{"maintenance.sh", "restore.sh", "watchdog.sh"} {
		if !strings.Contains(scripts[name], `. "$SCRIPTS_DIR/lease.sh"`) {
			t.Errorf("%s does not source lease.sh", name)
		}
	}
}

func TestConfigMapHoldsOnlyTheScripts(t *testing.T) {
	scripts, err := Scripts(false)
	if err != nil {
		t.Fatal(err)
	}
	m := runGC(t, gcArgs(true))
	cm := m.Get(t, tConfigMap, gcName)
	data, _ := cm.Lookup("data").(map[string]any)
	if got := slices.Sorted(maps.Keys(data)); !slices.Equal(got, slices.Sorted(maps.Keys(scripts))) {
		t.Errorf("ConfigMap keys = %v, want exactly the scripts", got)
	}
	for name, body := range scripts {
		if data[name] != body {
			t.Errorf("ConfigMap %s differs from the embedded script", name)
		}
	}
	if cm.IsSecret("data") {
		t.Error("ConfigMap data is secret: it should hold nothing secret")
	}
	dump := m.Dump(func(r testutil.Resource) bool { return r.Type == tConfigMap || r.Type == tCronJob || r.Type == tLease })
	if n := strings.Count(dump, tCronJob+"/"); n != 2 {
		t.Errorf("dump covers %d CronJobs, want the GC and the watchdog", n)
	}
	for _, secret := range []string{"mock-password-", "requirepass", "PRIVATE KEY", "$2a$", "redis-pass"} {
		if strings.Contains(dump, secret) {
			t.Errorf("ConfigMap, CronJob or Lease holds secret material %q", secret)
		}
	}
}

func TestChildrenAreParentedAndNamed(t *testing.T) {
	m := runGC(t, gcArgs(true))
	parent := "urn:pulumi:unit::registry-stack::" + tGC + "::" + gcName
	var kinds []string
	for _, r := range m.Resources() {
		if r.Type == tGC {
			continue
		}
		kinds = append(kinds, r.Type)
		if r.Parent != parent {
			t.Errorf("%s/%s parent = %q, want the GC component", r.Type, r.Name, r.Parent)
		}
		want := gcName
		if r.Type == tCronJob && r.Name != gcName {
			want = watchdogName
		}
		if r.Name != want || r.String("metadata", "name") != want {
			t.Errorf("%s/%s (Kubernetes name %q) is not named %s", r.Type, r.Name, r.String("metadata", "name"), want)
		}
		if r.String("metadata", "labels", "app.kubernetes.io/instance") != gcName {
			t.Errorf("%s/%s lacks the instance label", r.Type, r.Name)
		}
	}
	slices.Sort(kinds)
	if want := []string{tConfigMap, tCronJob, tCronJob, tLease, tServiceAccount, tRole, tRoleBinding}; !slices.Equal(kinds, slices.Sorted(slices.Values(want))) {
		t.Errorf("children = %v, want %v", kinds, want)
	}
	m.Get(t, tCronJob, watchdogName)
	// The GC and watchdog pods carry the labels the Redis NetworkPolicy admits (PodSelector), and
	// their own components.
	for cron, component := range map[string]string{gcName: "garbage-collection", watchdogName: "gc-watchdog"} {
		labels, _ := m.Get(t, tCronJob, cron).Lookup("spec", "jobTemplate", "spec", "template", "metadata", "labels").(map[string]any)
		for k, v := range PodSelector(gcName) {
			if labels[k] != v {
				t.Errorf("%s pod label %s = %v, want %s (Redis admits GC pods by PodSelector)", cron, k, labels[k], v)
			}
		}
		if labels["app.kubernetes.io/component"] != component {
			t.Errorf("%s pod component = %v, want %s", cron, labels["app.kubernetes.io/component"], component)
		}
	}
}

// TestOutputs: the component's outputs name the CronJobs and the lease.
func TestOutputs(t *testing.T) {
	got := map[string]string{}
	testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		g, err := NewGC(ctx, gcName, gcArgs(true))
		if err != nil {
			return err
		}
		got["cronJobName"], _ = testutil.Resolve(t, g.CronJobName)
		got["watchdogCronJobName"], _ = testutil.Resolve(t, g.WatchdogCronJobName)
		got["leaseName"], _ = testutil.Resolve(t, g.LeaseName)
		return nil
	})
	want := map[string]string{"cronJobName": gcName, "watchdogCronJobName": watchdogName, "leaseName": gcName}
	if !maps.Equal(got, want) {
		t.Errorf("outputs = %v, want %v", got, want)
	}
}

func TestInvalidArgsRegisterNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*GCArgs)
	}{
		{"no deployment", func(a *GCArgs) { a.DeploymentName = nil }},
		{"no selector", func(a *GCArgs) { a.RegistrySelector = nil }},
		{"no uid", func(a *GCArgs) { a.RegistryUID = 0 }},
		{"cache without redis host", func(a *GCArgs) { a.RedisHost = nil }},
		{"cache without redis user", func(a *GCArgs) { a.RedisUsername = "" }},
		{"cache without password secret", func(a *GCArgs) { a.RedisPasswordSecret = nil }},
		{"cache without password key", func(a *GCArgs) { a.RedisPasswordKey = "" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := gcArgs(true)
			c.edit(a)
			m, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
				_, err := NewGC(ctx, gcName, a)
				return err
			})
			if err == nil {
				t.Fatal("accepted")
			}
			if n := len(m.Resources()); n != 0 {
				t.Errorf("%d resources registered before the args were rejected", n)
			}
		})
	}
}

// TestEveryStepUsesThisInstancesLease: the lease the steps take is the one NewGC registers and the
// Role allows, per instance: two GC instances in a namespace must not share (or miss) a lease.
func TestEveryStepUsesThisInstancesLease(t *testing.T) {
	for _, name := range []string{gcName, "blue-gc"} {
		m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
			_, err := NewGC(ctx, name, gcArgs(true))
			return err
		})
		if got := m.Get(t, tLease, name).String("metadata", "name"); got != name {
			t.Errorf("%s: Lease name = %q", name, got)
		}
		role := m.Get(t, tRole, name)
		if got := fmt.Sprint(role.Lookup("rules", 0, "resourceNames")); got != "["+name+"]" {
			t.Errorf("%s: the Role's lease rule names %s, want [%s]", name, got, name)
		}
		kubectlSteps := 0
		for _, cron := range []string{name, name + "-watchdog"} {
			spec, _ := m.Get(t, tCronJob, cron).Lookup("spec", "jobTemplate", "spec", "template", "spec").(map[string]any)
			inits, mains := containers(t, spec)
			for _, c := range append(inits, mains...) {
				e := env(c)
				if c["image"] != kubectlImage {
					if _, ok := e["LEASE"]; ok {
						t.Errorf("%s: %s gets LEASE, only the kubectl steps need it", cron, c["name"])
					}
					continue
				}
				kubectlSteps++
				if e["LEASE"] != name {
					t.Errorf("%s: %s LEASE = %q, want %q", cron, c["name"], e["LEASE"], name)
				}
				if _, ok := e["GC_SELECTOR"]; ok {
					t.Errorf("%s: %s still gets GC_SELECTOR", cron, c["name"])
				}
			}
		}
		if kubectlSteps != 5 {
			t.Errorf("%s: %d kubectl steps, want 5 (lease, enter-read-only, restore-writes; check, restore-writes)", name, kubectlSteps)
		}
		// The Redis NetworkPolicy admits PodSelector: this instance's pods, never the registry's.
		registryMatched := true
		for k, v := range PodSelector(name) {
			if registrySelector[k] != v {
				registryMatched = false
			}
		}
		if registryMatched {
			t.Errorf("%s: PodSelector %v also selects the registry pods", name, PodSelector(name))
		}
	}
}

// The GC pod mounts the registry's claim, which may be ReadWriteOnce: it must run beside a registry pod.
func TestGCPodRunsBesideTheRegistry(t *testing.T) {
	a, err := (&GCArgs{
		Namespace: pulumi.String("ns"), DeploymentName: pulumi.String("registry"), ContainerName: "registry",
		RegistrySelector: map[string]string{"app.kubernetes.io/name": "registry"}, RegistryImage: "registry:3.1.2",
		RegistryUID: 1000, ConfigSecretName: pulumi.String("cfg"),
		Storage:  storage.FilesystemBackend(pulumi.String("data"), &storage.Filesystem{Mode: "dynamic", AccessMode: "ReadWriteOnce"}),
		Schedule: "0 3 * * 0", KubectlImage: kubectlImage,
	}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		for name, build := range map[string]func(*GCArgs, pulumi.StringInput, pulumi.StringInput, pulumi.StringInput) (*corev1.PodSpecArgs, error){
			"gc": PodSpec, "watchdog": WatchdogPodSpec,
		} {
			spec, err := build(a, pulumi.String("sa"), pulumi.String("cm"), pulumi.String("gc-lease"))
			if err != nil {
				return err
			}
			if _, err := corev1.NewPod(ctx, name, &corev1.PodArgs{Spec: spec}); err != nil {
				return err
			}
		}
		return nil
	})
	term := m.Get(t, "kubernetes:core/v1:Pod", "gc")
	if got := term.String("spec", "affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "topologyKey"); got != "kubernetes.io/hostname" {
		t.Errorf("required pod affinity topology = %q, want kubernetes.io/hostname", got)
	}
	if got := term.String("spec", "affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "labelSelector", "matchLabels", "app.kubernetes.io/name"); got != "registry" {
		t.Errorf("affinity selects %q, want the registry pods", got)
	}
	// PodSpec's arguments land where they belong.
	if got := term.String("spec", "serviceAccountName"); got != "sa" {
		t.Errorf("serviceAccountName = %q, want sa", got)
	}
	for i, c := range asList(term.Lookup("spec", "initContainers")) {
		if c.(map[string]any)["name"] == "lease" && env(c.(map[string]any))["LEASE"] != "gc-lease" {
			t.Errorf("init container %d (lease) LEASE = %q, want gc-lease", i, env(c.(map[string]any))["LEASE"])
		}
	}
	if !strings.Contains(fmt.Sprint(term.Lookup("spec", "volumes")), "name:cm") {
		t.Errorf("volumes %v do not mount the scripts ConfigMap cm", term.Lookup("spec", "volumes"))
	}
	// The watchdog mounts no claim: it may run anywhere.
	if got := m.Get(t, "kubernetes:core/v1:Pod", "watchdog").Lookup("spec", "affinity"); got != nil {
		t.Errorf("watchdog affinity = %v, want none", got)
	}
}

// Monitoring reads the mode label the scripts set: the Go constants must be the scripts' own.
func TestModeLabelIsTheScriptsOwn(t *testing.T) {
	scripts, err := Scripts(false)
	if err != nil {
		t.Fatal(err)
	}
	if want := `mode_label="` + ModeLabel + `"`; !strings.Contains(scripts["lease.sh"], want) {
		t.Errorf("lease.sh does not set %s", want)
	}
	if want := `{\"$mode_label\":\"` + ReadOnlyMode + `\"}`; !strings.Contains(scripts["maintenance.sh"], want) {
		t.Errorf("maintenance.sh does not label read-only pods %s", want)
	}
}
