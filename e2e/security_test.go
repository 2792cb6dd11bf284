//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
	"github.com/regstack/registry-stack/redis"
	"gopkg.in/yaml.v3"
)

// Security checks of issue 4: least privilege of every pod (spec and running process), the debug
// port kept off the Service and the Ingress, Redis authentication, the Redis NetworkPolicy object,
// and no secret in outputs, logs, ConfigMaps or other plain objects.

// securityContext is the part of a (pod or container) securityContext the checks read.
type securityContext struct {
	RunAsNonRoot             *bool  `json:"runAsNonRoot"`
	RunAsUser                *int64 `json:"runAsUser"`
	AllowPrivilegeEscalation *bool  `json:"allowPrivilegeEscalation"`
	Privileged               *bool  `json:"privileged"`
	ReadOnlyRootFilesystem   *bool  `json:"readOnlyRootFilesystem"`
	Capabilities             *struct {
		Add  []string `json:"add"`
		Drop []string `json:"drop"`
	} `json:"capabilities"`
	SeccompProfile *struct {
		Type string `json:"type"`
	} `json:"seccompProfile"`
}

type containerSpec struct {
	Name            string           `json:"name"`
	Image           string           `json:"image"`
	SecurityContext *securityContext `json:"securityContext"`
}

type podSpecs struct {
	Items []struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			HostNetwork     bool            `json:"hostNetwork"`
			HostPID         bool            `json:"hostPID"`
			HostIPC         bool            `json:"hostIPC"`
			SecurityContext securityContext `json:"securityContext"`
			InitContainers  []containerSpec `json:"initContainers"`
			Containers      []containerSpec `json:"containers"`
			Volumes         []struct {
				Name     string    `json:"name"`
				HostPath *struct{} `json:"hostPath"`
			} `json:"volumes"`
		} `json:"spec"`
		Status struct {
			Phase string `json:"phase"`
		} `json:"status"`
	} `json:"items"`
}

// volumeOwnershipContainer is the one container allowed to run as root: it chowns the hostPath data
// directory (hostPath volumes ignore fsGroup) with CHOWN as its only capability.
const volumeOwnershipContainer = "volume-ownership"

// effective merges a container's securityContext over its pod's, as the kubelet does.
func effective(pod securityContext, c *securityContext) (nonRoot *bool, user *int64, seccomp string) {
	nonRoot, user = pod.RunAsNonRoot, pod.RunAsUser
	if pod.SeccompProfile != nil {
		seccomp = pod.SeccompProfile.Type
	}
	if c != nil {
		if c.RunAsNonRoot != nil {
			nonRoot = c.RunAsNonRoot
		}
		if c.RunAsUser != nil {
			user = c.RunAsUser
		}
		if c.SeccompProfile != nil {
			seccomp = c.SeccompProfile.Type
		}
	}
	return nonRoot, user, seccomp
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

// checkContainerSpec returns what is wrong with one container's effective security settings.
func checkContainerSpec(pod securityContext, c containerSpec, exception bool) []string {
	var bad []string
	nonRoot, user, seccomp := effective(pod, c.SecurityContext)
	sc := c.SecurityContext
	if sc == nil {
		sc = &securityContext{}
	}
	var add, drop []string
	if sc.Capabilities != nil {
		add, drop = sc.Capabilities.Add, sc.Capabilities.Drop
	}
	if !isFalse(sc.AllowPrivilegeEscalation) {
		bad = append(bad, "allowPrivilegeEscalation is not false")
	}
	if isTrue(sc.Privileged) {
		bad = append(bad, "privileged")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		bad = append(bad, "readOnlyRootFilesystem is not true")
	}
	if !slices.Contains(drop, "ALL") {
		bad = append(bad, fmt.Sprintf("capabilities.drop %v lacks ALL", drop))
	}
	if seccomp != "RuntimeDefault" {
		bad = append(bad, fmt.Sprintf("seccomp profile %q", seccomp))
	}
	if exception {
		if user == nil || *user != 0 || !slices.Equal(add, []string{"CHOWN"}) {
			bad = append(bad, fmt.Sprintf("the ownership fixer should be root with only CHOWN (user %v, add %v)", deref(user), add))
		}
		return bad
	}
	if !isTrue(nonRoot) {
		bad = append(bad, "runAsNonRoot is not true")
	}
	if user == nil || *user == 0 {
		bad = append(bad, fmt.Sprintf("runAsUser %v (want a non-zero uid)", deref(user)))
	}
	if len(add) > 0 {
		bad = append(bad, fmt.Sprintf("capabilities.add %v", add))
	}
	return bad
}

func deref(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10)
}

// procProbe prints what the kernel says about the container's main process (PID 1 of the
// container) and the exec'd shell: uids, capabilities, no_new_privs, and whether / is writable.
const procProbe = `echo "id=$(id -u):$(id -g)"
grep -E '^(Uid|Gid|CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/1/status
if touch /.e2e-rofs-probe 2>/dev/null; then rm -f /.e2e-rofs-probe; echo rootfs=writable; else echo rootfs=read-only; fi`

// procFacts is the parsed output of procProbe.
type procFacts struct {
	ShellUID, PID1UID    string
	CapEff, CapBnd       string
	NoNewPrivs, RootFS   string
	uidsConsistent, seen bool
}

func parseProcProbe(out string) procFacts {
	var p procFacts
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		fields := strings.Fields(l)
		switch {
		case strings.HasPrefix(l, "id="):
			p.ShellUID, _, _ = strings.Cut(strings.TrimPrefix(l, "id="), ":")
			p.seen = true
		case strings.HasPrefix(l, "Uid:") && len(fields) == 5:
			p.PID1UID = fields[1]
			p.uidsConsistent = fields[1] == fields[2] && fields[2] == fields[3] && fields[3] == fields[4]
		case strings.HasPrefix(l, "CapEff:") && len(fields) == 2:
			p.CapEff = fields[1]
		case strings.HasPrefix(l, "CapBnd:") && len(fields) == 2:
			p.CapBnd = fields[1]
		case strings.HasPrefix(l, "NoNewPrivs:") && len(fields) == 2:
			p.NoNewPrivs = fields[1]
		case strings.HasPrefix(l, "rootfs="):
			p.RootFS = strings.TrimPrefix(l, "rootfs=")
		}
	}
	return p
}

// check compares the probe with the uid the spec asks for.
func (p procFacts) check(wantUID int64) []string {
	var bad []string
	want := strconv.FormatInt(wantUID, 10)
	if !p.seen {
		return []string{"probe printed nothing"}
	}
	if p.ShellUID != want || p.PID1UID != want || !p.uidsConsistent {
		bad = append(bad, fmt.Sprintf("uid: shell %s, main process %s (real/effective/saved/fs equal: %v), want %s", p.ShellUID, p.PID1UID, p.uidsConsistent, want))
	}
	if strings.Trim(p.CapEff, "0") != "" || strings.Trim(p.CapBnd, "0") != "" {
		bad = append(bad, fmt.Sprintf("capabilities: effective %s, bounding %s (want none)", p.CapEff, p.CapBnd))
	}
	if p.NoNewPrivs != "1" {
		bad = append(bad, fmt.Sprintf("NoNewPrivs %q (want 1)", p.NoNewPrivs))
	}
	if p.RootFS != "read-only" {
		bad = append(bad, "root filesystem is "+p.RootFS)
	}
	return bad
}

func (p procFacts) String() string {
	return fmt.Sprintf("uid %s (main process %s), CapEff %s, CapBnd %s, NoNewPrivs %s, rootfs %s", p.ShellUID, p.PID1UID, p.CapEff, p.CapBnd, p.NoNewPrivs, p.RootFS)
}

// runSecurityProbeJob creates a Job from the GC CronJob's own template with every container's
// command replaced by procProbe (so the registry is not switched to read-only again) and returns
// each container's probe output. The images, users and securityContexts are exactly those of a GC run.
func (f *fixture) runSecurityProbeJob(ctx context.Context) (map[string]string, string, error) {
	suffix, err := kit.RandomSuffix()
	if err != nil {
		return nil, "", err
	}
	job := "e2e-secprobe-" + suffix
	var names []string
	start := time.Now()
	if err := f.createJobFromCronJob(ctx, job, func(spec map[string]any) error {
		for _, key := range []string{"initContainers", "containers"} {
			list, _ := spec[key].([]any)
			for _, item := range list {
				c, ok := item.(map[string]any)
				if !ok {
					return fmt.Errorf("%s entry is %T", key, item)
				}
				c["command"] = []any{"sh", "-c", procProbe}
				if c["restartPolicy"] == "Always" {
					// A sidecar (the lease keeper) must keep running, or the next step never starts.
					c["command"] = []any{"sh", "-c", procProbe + "; trap 'exit 0' TERM; while :; do sleep 1; done"}
				}
				delete(c, "args")
				name, _ := c["name"].(string)
				names = append(names, name)
			}
		}
		return nil
	}); err != nil {
		return nil, "", err
	}
	if _, err := f.Kube.WaitJob(ctx, job, start, 3*time.Minute); err != nil {
		return nil, job, err
	}
	pod, err := f.Kube.NS(ctx, "get", "pods", "-l", "job-name="+job, "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil {
		return nil, job, err
	}
	outputs := map[string]string{}
	for _, c := range names {
		logs, err := f.Kube.NS(ctx, "logs", pod, "-c", c)
		if err != nil {
			return nil, job, fmt.Errorf("logs of %s/%s: %w", pod, c, err)
		}
		outputs[c] = logs
	}
	return outputs, job, nil
}

// dig walks nested JSON objects.
func dig(m map[string]any, keys ...string) (map[string]any, bool) {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}

// stepSecurityPods checks every pod of the namespace (registry, Redis, GC job pods): in the live
// spec every container is non-root, without privilege escalation, with all capabilities dropped, a
// read-only root filesystem and the RuntimeDefault seccomp profile — except the registry's
// volume-ownership init container (root with only CHOWN, hostPath mode only). The running
// processes say the same: uid, no capabilities, no_new_privs, / not writable. GC containers are
// probed through a Job from the CronJob's own template.
func (f *fixture) stepSecurityPods(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()

	probeOut, probeJob, err := f.runSecurityProbeJob(ctx)
	if err != nil {
		t.Fatalf("security probe job from the GC CronJob: %v", err)
	}
	defer func() {
		if _, err := f.Kube.NS(ctx, "delete", "job", probeJob, "--cascade=background", "--wait=false"); err != nil {
			t.Errorf("delete probe job %s: %v", probeJob, err)
		}
	}()

	var pods podSpecs
	if err := f.Kube.GetJSON(ctx, true, &pods, "pods"); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	exceptions := 0
	var lines []string
	for _, p := range pods.Items {
		component := p.Metadata.Labels["app.kubernetes.io/component"]
		kinds[component]++
		if p.Spec.HostNetwork || p.Spec.HostPID || p.Spec.HostIPC {
			t.Errorf("pod %s shares the host's network/PID/IPC namespace", p.Metadata.Name)
		}
		for _, v := range p.Spec.Volumes {
			if v.HostPath != nil {
				t.Errorf("pod %s mounts a hostPath volume %s directly", p.Metadata.Name, v.Name)
			}
		}
		all := append(append([]containerSpec{}, p.Spec.InitContainers...), p.Spec.Containers...)
		for _, c := range all {
			exception := component == "registry" && c.Name == volumeOwnershipContainer
			if exception {
				exceptions++
			}
			for _, b := range checkContainerSpec(p.Spec.SecurityContext, c, exception) {
				t.Errorf("pod %s container %s: %s", p.Metadata.Name, c.Name, b)
			}
		}
		// Running pods: ask the kernel about the main container's processes.
		if p.Status.Phase != "Running" || (component != "registry" && component != "cache") {
			continue
		}
		c := p.Spec.Containers[0]
		_, user, _ := effective(p.Spec.SecurityContext, c.SecurityContext)
		out, err := f.Kube.Exec(ctx, "pod/"+p.Metadata.Name, c.Name, procProbe)
		if err != nil {
			t.Errorf("probe in %s/%s: %v", p.Metadata.Name, c.Name, err)
			continue
		}
		facts := parseProcProbe(out)
		if user == nil {
			t.Errorf("pod %s container %s: no runAsUser to compare the process with", p.Metadata.Name, c.Name)
		} else {
			for _, b := range facts.check(*user) {
				t.Errorf("running %s/%s: %s", p.Metadata.Name, c.Name, b)
			}
		}
		lines = append(lines, fmt.Sprintf("%s/%s (running): %s", p.Metadata.Name, c.Name, facts))
	}

	// GC containers, as started by the CronJob's template.
	var cron struct {
		Spec struct {
			JobTemplate struct {
				Spec struct {
					Template struct {
						Spec struct {
							SecurityContext securityContext `json:"securityContext"`
							InitContainers  []containerSpec `json:"initContainers"`
							Containers      []containerSpec `json:"containers"`
						} `json:"spec"`
					} `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if err := f.Kube.GetJSON(ctx, true, &cron, "cronjob", f.Out.GCCronJobName); err != nil {
		t.Fatal(err)
	}
	tpl := cron.Spec.JobTemplate.Spec.Template.Spec
	for _, c := range append(append([]containerSpec{}, tpl.InitContainers...), tpl.Containers...) {
		out, ok := probeOut[c.Name]
		if !ok {
			t.Errorf("no probe output for GC container %s", c.Name)
			continue
		}
		_, user, _ := effective(tpl.SecurityContext, c.SecurityContext)
		facts := parseProcProbe(out)
		if user == nil {
			t.Errorf("GC container %s: no runAsUser", c.Name)
		} else {
			for _, b := range facts.check(*user) {
				t.Errorf("GC container %s (%s): %s", c.Name, c.Image, b)
			}
		}
		lines = append(lines, fmt.Sprintf("gc/%s (%s, probe job): %s", c.Name, c.Image, facts))
	}

	wantExceptions := 0
	if f.Settings.StorageMode == "hostPath" {
		wantExceptions = kinds["registry"]
	}
	if exceptions != wantExceptions {
		t.Errorf("%d %s containers in %d registry pods, want %d (hostPath mode only)", exceptions, volumeOwnershipContainer, kinds["registry"], wantExceptions)
	}
	for _, k := range []string{"registry", "cache", "garbage-collection"} {
		if kinds[k] == 0 {
			t.Errorf("no %s pod in the namespace to check", k)
		}
	}
	f.checkPodSecurityAdmission(ctx, t)
	sort.Strings(lines)
	msg := fmt.Sprintf("pod security: %d pods (%v) checked in their live spec: all containers non-root, allowPrivilegeEscalation false, drop ALL, read-only root, RuntimeDefault seccomp; "+
		"the only exception is %s in %d registry pods (root, only CHOWN, hostPath mode). Processes:\n%s",
		len(pods.Items), kinds, volumeOwnershipContainer, exceptions, strings.Join(lines, "\n"))
	t.Log(msg)
	f.Report.Fact("%s", msg)
}

// stepSecurityNetwork: the debug port (metrics, pprof, no auth) is in no Service and not reachable
// through the Ingress; Redis refuses clients without the password; the NetworkPolicy object admits
// only registry and GC pods to Redis (the object is checked: the sandbox's bridge CNI does not
// enforce NetworkPolicy).
func (f *fixture) stepSecurityNetwork(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	var facts []string

	// Services: only the API port.
	var svcs struct {
		Items []struct {
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Ports []struct {
					Port       int `json:"port"`
					TargetPort any `json:"targetPort"`
				} `json:"ports"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := f.Kube.GetJSON(ctx, true, &svcs, "services"); err != nil {
		t.Fatal(err)
	}
	redisSvc := ""
	for _, s := range svcs.Items {
		var ports []string
		for _, p := range s.Spec.Ports {
			target := fmt.Sprint(p.TargetPort)
			ports = append(ports, fmt.Sprintf("%d->%s", p.Port, target))
			if p.Port == 5001 || target == "5001" || target == "debug" {
				t.Errorf("Service %s exposes the debug port: %d -> %s", s.Metadata.Name, p.Port, target)
			}
		}
		if s.Metadata.Name == f.Out.ServiceName && (len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 5000) {
			t.Errorf("Service %s ports %v, want only 5000", s.Metadata.Name, ports)
		}
		if s.Metadata.Labels["app.kubernetes.io/component"] == "cache" {
			redisSvc = s.Metadata.Name
		}
		facts = append(facts, fmt.Sprintf("Service %s ports %v", s.Metadata.Name, ports))
	}
	if redisSvc == "" {
		t.Fatal("no Redis Service (component=cache)")
	}

	// Ingress backends: only the registry Service's API port.
	var ings struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Rules []struct {
					HTTP struct {
						Paths []struct {
							Path    string `json:"path"`
							Backend struct {
								Service struct {
									Name string `json:"name"`
									Port struct {
										Number int    `json:"number"`
										Name   string `json:"name"`
									} `json:"port"`
								} `json:"service"`
							} `json:"backend"`
						} `json:"paths"`
					} `json:"http"`
				} `json:"rules"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := f.Kube.GetJSON(ctx, true, &ings, "ingresses"); err != nil {
		t.Fatal(err)
	}
	for _, ing := range ings.Items {
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				b := p.Backend.Service
				if b.Name != f.Out.ServiceName || (b.Port.Number != 5000 && b.Port.Name != "http") {
					t.Errorf("Ingress %s path %s routes to %s:%d%s, want only %s:5000", ing.Metadata.Name, p.Path, b.Name, b.Port.Number, b.Port.Name, f.Out.ServiceName)
				}
			}
		}
	}

	// Through the Ingress the debug paths are not the debug server.
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/vars", "/debug/health"} {
		for _, auth := range []bool{false, true} {
			resp, body, err := f.Client.Once(ctx, kit.Request{Method: http.MethodGet, URL: f.Client.URL(path), NoAuth: !auth})
			if err != nil {
				t.Errorf("GET %s via the ingress: %v", path, err)
				continue
			}
			leak := ""
			for _, marker := range []string{"# HELP", "registry_storage", "go_goroutines", "goroutine", "cmdline", "memstats"} {
				if bytes.Contains(body, []byte(marker)) {
					leak = marker
				}
			}
			if (resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusUnauthorized) || leak != "" {
				t.Errorf("GET https://%s%s (auth %v) via the ingress: HTTP %d, %d bytes (debug marker %q): the debug server is reachable", f.Settings.Hostname, path, auth, resp.StatusCode, len(body), leak)
			}
			facts = append(facts, fmt.Sprintf("ingress GET %s (auth %v): HTTP %d", path, auth, resp.StatusCode))
		}
	}

	// Inside the cluster: the debug port answers on the pod itself, not through the Service. Plain
	// HTTP/1.0 over busybox nc (the sandbox image's busybox wget crashes as a non-root user).
	pods, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil || len(pods) == 0 {
		t.Fatalf("registry pods: %v %v", pods, err)
	}
	pod := "pod/" + pods[0].Name
	svc := f.Out.ServiceName
	httpGet := func(host, port, path string) (string, error) {
		return f.Kube.Exec(ctx, pod, "registry", fmt.Sprintf(`printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' | nc -w 5 %s %s; echo "nc-exit=$?"`, path, host, host, port))
	}
	if out, err := httpGet("127.0.0.1", "5001", "/metrics"); err != nil || !strings.Contains(out, "registry_storage_cache_requests_total") {
		t.Errorf("control: /metrics on the pod's own debug port 127.0.0.1:5001: %v\n%s", err, kit.Tail(out, 5))
	}
	if out, err := httpGet(svc, "5000", "/"); err != nil || !strings.Contains(out, "HTTP/1.0 200") {
		t.Errorf("control: GET http://%s:5000/ from a registry pod: %v\n%s", svc, err, kit.Tail(out, 5))
	}
	out, err := httpGet(svc, "5001", "/metrics")
	switch {
	case err != nil:
		t.Errorf("GET http://%s:5001/metrics from a registry pod: %v", svc, err)
	case strings.Contains(out, "HTTP/"):
		t.Errorf("http://%s:5001/metrics is reachable through the Service:\n%s", svc, kit.Tail(out, 5))
	default:
		facts = append(facts, fmt.Sprintf("in-cluster GET http://%s:5001/metrics: no answer (%s); controls: 127.0.0.1:5001/metrics on the pod and %s:5000/ answer", svc, oneLine(out), svc))
	}
	facts = append(facts, f.checkRegistryNetworkPolicy(ctx, t)...)

	// Redis: no password -> NOAUTH, wrong password -> refused, the default user is off, the probe
	// user (REDISCLI_AUTH in the pod is its password) -> PONG.
	redis := "deploy/" + f.Out.RedisDeploymentName
	for _, c := range []struct {
		name, script string
		want         []string // any of these
	}{
		{"no password", "unset REDISCLI_AUTH; redis-cli -h 127.0.0.1 ping 2>&1", []string{"NOAUTH"}},
		{"a wrong password", "REDISCLI_AUTH=not-the-password redis-cli -h 127.0.0.1 ping 2>&1", []string{"WRONGPASS", "NOAUTH"}},
		{"the default user and the probe's password", "redis-cli -h 127.0.0.1 ping 2>&1", []string{"WRONGPASS"}},
		{"the probe user and its password", "redis-cli -h 127.0.0.1 --user probe ping 2>&1", []string{"PONG"}},
	} {
		out, err := f.Kube.NS(ctx, "exec", redis, "-c", "redis", "--", "sh", "-c", c.script+"; true")
		if err != nil {
			t.Errorf("redis-cli with %s: %v", c.name, err)
			continue
		}
		ok := slices.ContainsFunc(c.want, func(w string) bool { return strings.Contains(out, w) })
		if !ok || (c.want[0] != "PONG" && strings.Contains(out, "PONG")) {
			t.Errorf("redis-cli ping with %s: %q, want %s", c.name, strings.TrimSpace(out), strings.Join(c.want, " or "))
		}
		facts = append(facts, fmt.Sprintf("redis-cli ping with %s: %s", c.name, oneLine(out)))
	}
	// Over the network from a registry pod (busybox nc), like any other pod would connect.
	if _, err := f.Kube.Exec(ctx, pod, "registry", "command -v nc"); err != nil {
		t.Logf("no nc in the registry image: skipping the network-level Redis check")
	} else {
		out, err := f.Kube.Exec(ctx, pod, "registry", fmt.Sprintf(`printf 'PING\r\n' | nc -w 3 %s 6379; true`, redisSvc))
		if err != nil || !strings.Contains(out, "NOAUTH") {
			t.Errorf("PING to %s:6379 without a password from a registry pod: %q %v, want NOAUTH", redisSvc, out, err)
		}
		facts = append(facts, fmt.Sprintf("PING over the network to %s:6379 without password: %s", redisSvc, oneLine(out)))
	}

	// The NetworkPolicy object.
	facts = append(facts, f.checkRedisNetworkPolicy(ctx, t)...)
	msg := "network security:\n" + strings.Join(facts, "\n")
	t.Log(msg)
	f.Report.Fact("%s", msg)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

type labelSelector struct {
	MatchLabels      map[string]string `json:"matchLabels"`
	MatchExpressions []any             `json:"matchExpressions"`
}

// matches reports whether the selector selects a pod with these labels (matchLabels only; the
// program uses no expressions, and an expression makes the check fail loudly).
func (s labelSelector) matches(labels map[string]string) bool {
	if len(s.MatchExpressions) > 0 {
		return false
	}
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// checkRegistryNetworkPolicy: exactly one policy selects the registry pods, and where it is
// enforced it admits only the API port (the debug port has no auth).
func (f *fixture) checkRegistryNetworkPolicy(ctx context.Context, t *testing.T) []string {
	t.Helper()
	var dep map[string]any
	if err := f.Kube.GetJSON(ctx, true, &dep, "deployment", f.Out.DeploymentName); err != nil {
		t.Fatal(err)
	}
	tplLabels, ok := dig(dep, "spec", "template", "metadata", "labels")
	if !ok {
		t.Fatalf("deployment %s has no template labels", f.Out.DeploymentName)
	}
	labels := map[string]string{}
	for k, v := range tplLabels {
		labels[k], _ = v.(string)
	}
	pols, err := f.networkPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var facts []string
	selecting := 0
	for _, p := range pols.Items {
		if !p.Spec.PodSelector.matches(labels) {
			continue
		}
		selecting++
		var ports []string
		for _, r := range p.Spec.Ingress {
			if len(r.Ports) == 0 {
				t.Errorf("NetworkPolicy %s admits every port of the registry pods (a rule without ports)", p.Metadata.Name)
			}
			for _, port := range r.Ports {
				ports = append(ports, fmt.Sprintf("%s/%v", port.Protocol, port.Port))
				if v := fmt.Sprint(port.Port); v != "5000" && v != "http" {
					t.Errorf("NetworkPolicy %s admits port %s of the registry pods, want only 5000", p.Metadata.Name, v)
				}
			}
		}
		facts = append(facts, fmt.Sprintf("NetworkPolicy %s selects the registry pods and admits only %v", p.Metadata.Name, ports))
	}
	if selecting != 1 {
		t.Errorf("%d NetworkPolicies select the registry pods, want 1 (API port only)", selecting)
	}
	return facts
}

// netPolicies is the part of the namespace's NetworkPolicies the checks read.
type netPolicies struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			PodSelector labelSelector `json:"podSelector"`
			PolicyTypes []string      `json:"policyTypes"`
			Ingress     []struct {
				From []struct {
					PodSelector       *labelSelector `json:"podSelector"`
					NamespaceSelector any            `json:"namespaceSelector"`
					IPBlock           any            `json:"ipBlock"`
				} `json:"from"`
				Ports []struct {
					Protocol string `json:"protocol"`
					Port     any    `json:"port"`
				} `json:"ports"`
			} `json:"ingress"`
		} `json:"spec"`
	} `json:"items"`
}

func (f *fixture) networkPolicies(ctx context.Context) (*netPolicies, error) {
	var pols netPolicies
	if err := f.Kube.GetJSON(ctx, true, &pols, "networkpolicies"); err != nil {
		return nil, err
	}
	return &pols, nil
}

// checkRedisNetworkPolicy: exactly one policy selects the Redis pods; it is an Ingress policy with
// one rule admitting TCP 6379 from two pod selectors that select the registry pods and the GC pods
// (nothing else: no namespace selector, no IP block).
func (f *fixture) checkRedisNetworkPolicy(ctx context.Context, t *testing.T) []string {
	t.Helper()
	labelsOf := func(kind, name, path string) map[string]string {
		var obj map[string]any
		if err := f.Kube.GetJSON(ctx, true, &obj, kind, name); err != nil {
			t.Fatal(err)
		}
		m, ok := dig(obj, strings.Split(path, ".")...)
		if !ok {
			t.Fatalf("%s %s has no %s", kind, name, path)
		}
		out := map[string]string{}
		for k, v := range m {
			out[k], _ = v.(string)
		}
		return out
	}
	redisLabels := labelsOf("deployment", f.Out.RedisDeploymentName, "spec.template.metadata.labels")
	registryLabels := labelsOf("deployment", f.Out.DeploymentName, "spec.template.metadata.labels")
	gcLabels := labelsOf("cronjob", f.Out.GCCronJobName, "spec.jobTemplate.spec.template.metadata.labels")

	pols, err := f.networkPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var facts []string
	selecting := 0
	for _, p := range pols.Items {
		if !p.Spec.PodSelector.matches(redisLabels) {
			continue
		}
		selecting++
		name := p.Metadata.Name
		if p.Spec.PodSelector.matches(registryLabels) || p.Spec.PodSelector.matches(gcLabels) {
			t.Errorf("NetworkPolicy %s also selects registry or GC pods", name)
		}
		if !slices.Contains(p.Spec.PolicyTypes, "Ingress") {
			t.Errorf("NetworkPolicy %s policyTypes %v lack Ingress", name, p.Spec.PolicyTypes)
		}
		if len(p.Spec.Ingress) != 1 {
			t.Errorf("NetworkPolicy %s has %d ingress rules, want 1", name, len(p.Spec.Ingress))
			continue
		}
		rule := p.Spec.Ingress[0]
		if len(rule.Ports) != 1 || rule.Ports[0].Protocol != "TCP" || fmt.Sprint(rule.Ports[0].Port) != "6379" {
			t.Errorf("NetworkPolicy %s ports %+v, want only TCP 6379", name, rule.Ports)
		}
		admitsRegistry, admitsGC := false, false
		var peers []string
		for _, from := range rule.From {
			if from.PodSelector == nil || from.NamespaceSelector != nil || from.IPBlock != nil {
				t.Errorf("NetworkPolicy %s admits a peer that is not a plain pod selector: %+v", name, from)
				continue
			}
			sel := *from.PodSelector
			switch {
			case sel.matches(registryLabels):
				admitsRegistry = true
				peers = append(peers, fmt.Sprintf("registry pods %v", sel.MatchLabels))
			case sel.matches(gcLabels):
				admitsGC = true
				peers = append(peers, fmt.Sprintf("GC pods %v", sel.MatchLabels))
			default:
				t.Errorf("NetworkPolicy %s admits pods %v that are neither registry nor GC pods", name, sel.MatchLabels)
			}
			if len(sel.MatchLabels) == 0 {
				t.Errorf("NetworkPolicy %s admits every pod of the namespace (empty pod selector)", name)
			}
		}
		if !admitsRegistry || !admitsGC {
			t.Errorf("NetworkPolicy %s admits registry pods %v, GC pods %v; want both", name, admitsRegistry, admitsGC)
		}
		facts = append(facts, fmt.Sprintf("NetworkPolicy %s selects the Redis pods %v and admits only TCP 6379 from %s. "+
			"Not enforced on the sandbox (its bridge CNI implements no NetworkPolicy): there the Redis password is the guard",
			name, p.Spec.PodSelector.MatchLabels, strings.Join(peers, " and ")))
	}
	if selecting != 1 {
		t.Errorf("%d NetworkPolicies select the Redis pods, want 1", selecting)
	}
	return facts
}

// secretSet is every secret the stack generated (current and rotated away) as needles to search for.
type secretSet map[string][]string

// collectSecrets gathers the current secrets from the cluster and the state, plus the retired ones.
func (f *fixture) collectSecrets(ctx context.Context) (secretSet, error) {
	s := secretSet{}
	add := func(name, v string) error {
		if len(v) < 12 {
			return fmt.Errorf("%s is only %d characters: cannot be searched for reliably", name, len(v))
		}
		s[name] = secretNeedles(v)
		return nil
	}
	redisPassword, err := f.Kube.SecretValue(ctx, "registry-redis", "password")
	if err != nil {
		return nil, err
	}
	configYML, err := f.Kube.SecretValue(ctx, "registry-config", "config.yml")
	if err != nil {
		return nil, err
	}
	var cfg struct {
		HTTP struct {
			Secret string `yaml:"secret"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal([]byte(configYML), &cfg); err != nil {
		return nil, fmt.Errorf("config.yml: %w", err)
	}
	htpasswd, err := f.Kube.SecretValue(ctx, "registry-config", "htpasswd")
	if err != nil {
		return nil, err
	}
	serverKey, err := f.Kube.SecretValue(ctx, f.Out.TLSSecretName, "tls.key")
	if err != nil {
		return nil, err
	}
	values := map[string]string{
		"registry password": f.Out.Password, "redis password": redisPassword, "http.secret": cfg.HTTP.Secret,
	}
	// The other Redis ACL users' passwords (GC's flush, the probes).
	for _, key := range []string{redis.FlushPasswordKey, "probe-password"} {
		v, err := f.Kube.SecretValue(ctx, "registry-redis", key)
		if err != nil {
			return nil, err
		}
		values["redis "+key] = v
	}
	for user, hash := range htpasswdHashes(htpasswd) {
		values["bcrypt hash of "+user] = hash
	}
	for user, pw := range f.Out.Passwords {
		values["password of account "+user] = pw
	}
	if f.Settings.S3 != nil { // the S3 phase's static key (secret config, Secret registry-data-s3)
		values["S3 secret access key"] = f.Settings.S3.SecretKey
	}
	for name, v := range values {
		if err := add(name, v); err != nil {
			return nil, err
		}
	}
	keys := map[string]string{"server private key (Secret " + f.Out.TLSSecretName + ")": serverKey}
	for name, v := range f.retired {
		if strings.Contains(v, "PRIVATE KEY") { // a key the stack no longer holds: searched like the current ones
			keys[name] = v
			continue
		}
		if err := add(name, v); err != nil {
			return nil, err
		}
	}
	res, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range res {
		if r.Type == "random:index/randomPassword:RandomPassword" && strings.HasSuffix(r.URN, "::registry-htpasswd-salt") {
			// The htpasswd salts' HMAC key lives only in the state: nowhere in the cluster either.
			v, err := stateString(r.Outputs["result"])
			if err != nil {
				return nil, fmt.Errorf("result of %s in the exported state: %w", r.URN, err)
			}
			if err := add("htpasswd salt key", v); err != nil {
				return nil, err
			}
		}
		if r.Type == "tls:index/privateKey:PrivateKey" {
			pemKey, err := stateString(r.Outputs["privateKeyPem"])
			if err != nil || pemKey == "" {
				return nil, fmt.Errorf("privateKeyPem of %s in the exported state: %v", r.URN, err)
			}
			keys["private key "+r.URN[strings.LastIndex(r.URN, "::")+2:]] = pemKey
		}
	}
	for name, pemKey := range keys {
		needles := secretNeedles(pemKey)
		// The base64 body lines: found however the PEM is embedded (raw, JSON-escaped newlines).
		for _, l := range strings.Split(pemKey, "\n") {
			if len(l) >= 40 && !strings.HasPrefix(l, "-----") {
				needles = append(needles, l)
			}
		}
		s[name] = needles
	}
	s["PEM private key marker"] = append([]string{"PRIVATE KEY"}, secretNeedles("PRIVATE KEY-----")[2:]...)
	return s, nil
}

// stateString reads a string output of `pulumi stack export --show-secrets`: plain, or a secret
// envelope whose "plaintext" holds the JSON-encoded value.
func stateString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case map[string]any:
		pt, ok := x["plaintext"].(string)
		if !ok {
			return "", fmt.Errorf("secret without plaintext (export without --show-secrets?)")
		}
		var s string
		if err := json.Unmarshal([]byte(pt), &s); err != nil {
			return "", fmt.Errorf("secret plaintext: %w", err)
		}
		return s, nil
	}
	return "", fmt.Errorf("unexpected %T", v)
}

// scan returns the names of the secrets found in data.
func (s secretSet) scan(data []byte) []string {
	var found []string
	for name, needles := range s {
		for _, n := range needles {
			if bytes.Contains(data, []byte(n)) {
				found = append(found, name)
				break
			}
		}
	}
	sort.Strings(found)
	return found
}

// stepNoSecretLeaks searches every place an operator or a log collector sees in plain text for
// the stack's secrets (passwords current and rotated away, Redis password, http.secret, bcrypt
// hashes, private keys): plain stack outputs, the captured output and event logs of every pulumi
// command the suite ran, all ConfigMaps, the non-Secret objects of the namespace (pods,
// Deployments, Jobs, events, ...), and the logs of every container.
func (f *fixture) stepNoSecretLeaks(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	secrets, err := f.collectSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	places, total, found := 0, 0, 0
	check := func(place string, data []byte) {
		places++
		total += len(data)
		for _, name := range secrets.scan(data) {
			found++
			t.Errorf("%s contains the %s in plain text", place, name)
		}
	}

	plain, err := f.Pulumi.Run(ctx, 2*time.Minute, false, "stack", "output", "--json")
	if err != nil {
		t.Fatal(err)
	}
	check("`pulumi stack output --json`", []byte(plain))
	if !strings.Contains(plain, `"[secret]"`) {
		t.Errorf("plain stack outputs show no [secret] placeholder for the password")
	}

	logFiles := 0
	err = filepath.WalkDir(f.Settings.LogDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		logFiles++
		check("pulumi log "+filepath.Base(path), data)
		return nil
	})
	if err != nil {
		t.Fatalf("pulumi logs in %s: %v", f.Settings.LogDir, err)
	}
	if logFiles == 0 {
		t.Errorf("no pulumi logs in %s", f.Settings.LogDir)
	}

	for _, kinds := range []string{"configmaps", "pods,deployments,replicasets,statefulsets,daemonsets,cronjobs,jobs,services,ingresses,networkpolicies,serviceaccounts,roles,rolebindings,poddisruptionbudgets,persistentvolumeclaims,events"} {
		out, err := f.Kube.NS(ctx, "get", kinds, "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		check("kubectl get "+kinds, []byte(out))
	}

	var pods podSpecs
	if err := f.Kube.GetJSON(ctx, true, &pods, "pods"); err != nil {
		t.Fatal(err)
	}
	containers := 0
	for _, p := range pods.Items {
		for _, c := range append(append([]containerSpec{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			out, err := f.Kube.NS(ctx, "logs", p.Metadata.Name, "-c", c.Name)
			if err != nil {
				t.Logf("no logs of %s/%s: %v", p.Metadata.Name, c.Name, lastLine(err.Error()))
				continue
			}
			containers++
			check(fmt.Sprintf("log of %s/%s", p.Metadata.Name, c.Name), []byte(out))
		}
	}
	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	msg := fmt.Sprintf("secret leaks: %d secrets (%s) searched (literal, JSON-escaped, base64) in %d places, %s: plain stack outputs, %d pulumi logs/event logs, ConfigMaps and other objects, logs of %d containers; %d found",
		len(secrets), strings.Join(names, ", "), places, kit.MiB(total), logFiles, containers, found)
	t.Log(msg)
	f.Report.Fact("%s", msg)
}

// checkPodSecurityAdmission: the namespace carries the Pod Security labels, the API server
// enforces them (a root pod is refused at a server-side dry run: the control), every pod that
// runs now would be admitted under restricted (a dry-run relabel lists the ones that would not),
// and no pod of the stack was ever refused (no FailedCreate event naming PodSecurity).
func (f *fixture) checkPodSecurityAdmission(ctx context.Context, t *testing.T) {
	t.Helper()
	ns := f.Settings.Namespace
	var obj struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := f.Kube.GetJSON(ctx, false, &obj, "namespace", ns); err != nil {
		t.Fatal(err)
	}
	want := "restricted"
	if f.Settings.StorageMode == "hostPath" {
		want = "baseline" // the suite opts in to the ownership fix there
	}
	for key, w := range map[string]string{"enforce": want, "warn": "restricted", "audit": "restricted"} {
		if got := obj.Metadata.Labels["pod-security.kubernetes.io/"+key]; got != w {
			t.Errorf("namespace %s: pod-security.kubernetes.io/%s = %q, want %q", ns, key, got, w)
		}
	}
	kubectl := func(args string) string {
		out, _ := kit.RunCmd(ctx, "", nil, "sh", "-c", "kubectl --context "+f.Settings.KubeContext+" "+args+" 2>&1")
		return strings.TrimSpace(out)
	}
	control := kubectl("-n " + ns + " run e2e-root-probe --image=busybox:1.35.0 --restart=Never --dry-run=server " +
		`--overrides='{"spec":{"securityContext":{"runAsUser":0}}}' -- true`)
	if !strings.Contains(control, "violates PodSecurity") {
		t.Errorf("control: a root pod at a server-side dry run in %s was not refused by PodSecurity: %q", ns, control)
	}
	relabel := kubectl("label --dry-run=server --overwrite namespace " + ns + " pod-security.kubernetes.io/enforce=restricted")
	if strings.Contains(relabel, "Warning") || strings.Contains(relabel, "violate") {
		if want == "restricted" {
			t.Errorf("running pods that restricted would refuse:\n%s", relabel)
		}
	}
	events := kubectl("-n " + ns + " get events --field-selector reason=FailedCreate -o custom-columns=OBJ:.involvedObject.name,MSG:.message --no-headers")
	var refused []string
	for _, l := range strings.Split(events, "\n") {
		if strings.Contains(l, "PodSecurity") {
			refused = append(refused, l)
		}
	}
	if len(refused) > 0 {
		t.Errorf("pods refused by PodSecurity admission in %s:\n%s", ns, strings.Join(refused, "\n"))
	}
	f.Report.Fact("Pod Security admission: namespace %s enforces %s (warn and audit restricted); control: a root pod is refused (%q); "+
		"dry-run relabel to restricted: %q; FailedCreate events naming PodSecurity: %d (registry, mirror, Redis, GC, watchdog and probe pods were all admitted)",
		ns, want, lastLine(control), relabel, len(refused))
}
