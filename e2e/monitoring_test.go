//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
	"github.com/regstack/registry-stack/gc"
	"github.com/regstack/registry-stack/monitoring"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/stackconfig"
)

// crdFixtures are the CRDs the monitoring and KEDA objects need, from the projects' own modules
// on the Go proxy (the sandbox has no Prometheus Operator and no KEDA): test fixtures only.
var crdFixtures = []struct{ module, file, crd string }{
	{"github.com/prometheus-operator/prometheus-operator@v0.85.0", "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml", monitoring.ServiceMonitorCRD},
	{"github.com/prometheus-operator/prometheus-operator@v0.85.0", "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml", monitoring.PrometheusRuleCRD},
}

// applyCRDFixtures downloads and applies the CRD fixtures.
func (f *fixture) applyCRDFixtures(ctx context.Context) error {
	for _, c := range crdFixtures {
		cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", c.module)
		// Outside the module: these are not its dependencies.
		cmd.Dir = os.TempDir()
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("go mod download %s: %w", c.module, err)
		}
		var mod struct{ Dir string }
		if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
			return fmt.Errorf("go mod download %s: no directory in %s", c.module, out)
		}
		if _, err := f.Kube.Run(ctx, false, "apply", "--server-side", "-f", filepath.Join(mod.Dir, c.file)); err != nil {
			return err
		}
		// Watched through its status, not `kubectl wait --for=condition=Established`: right after
		// the apply the CRD may have no conditions yet, and kubectl wait then fails at once
		// (".status.conditions accessor error: <nil>", seen in a CI run) instead of waiting.
		if err := kit.Poll(ctx, time.Minute, 500*time.Millisecond, func() (bool, error) {
			out, err := f.Kube.Run(ctx, false, "get", "crd", c.crd, "-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`)
			return err == nil && strings.TrimSpace(out) == "True", nil
		}); err != nil {
			return fmt.Errorf("CRD %s not Established: %w", c.crd, err)
		}
	}
	return nil
}

func (f *fixture) deleteCRDFixtures(ctx context.Context) error {
	for _, c := range crdFixtures {
		if _, err := f.Kube.Run(ctx, false, "delete", "crd", c.crd, "--ignore-not-found", "--wait=true"); err != nil {
			return err
		}
	}
	return nil
}

// scrapeNamespace is where the test's scraper pod runs (the NetworkPolicy admits it).
func (f *fixture) scrapeNamespace() string { return f.Settings.Namespace + "-scrape" }

// scrape fetches the metrics page of a Service and of each of its endpoints (the pod addresses
// a ServiceMonitor makes Prometheus scrape) from one pod in the scrape namespace that carries
// the scraper label, as a Prometheus would. The pages are keyed by target (the Service's host
// first). The Service alone would show one pod, chosen at random; Prometheus reads each.
func (f *fixture) scrape(ctx context.Context, service string) (targets []string, pages map[string]string, err error) {
	ns := f.scrapeNamespace()
	host := fmt.Sprintf("%s.%s.svc", service, f.Settings.Namespace)
	addrs, err := f.Kube.NS(ctx, "get", "endpointslices", "-l", "kubernetes.io/service-name="+service,
		"-o", `jsonpath={range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{" "}{end}`)
	if err != nil {
		return nil, nil, err
	}
	targets = append([]string{host}, strings.Fields(addrs)...)
	suffix, err := kit.RandomSuffix()
	if err != nil {
		return nil, nil, err
	}
	pod := "scrape-" + suffix
	// busybox nc: the sandbox image's busybox wget segfaults as a non-root user.
	var script strings.Builder
	for _, target := range targets {
		fmt.Fprintf(&script, "echo '%s %s'; printf 'GET %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' | nc -w 10 %s %d; echo; ",
			scrapeMarker, target, registry.MetricsPath, target, target, monitoring.Port)
	}
	cmd, err := json.Marshal([]string{"sh", "-c", script.String()})
	if err != nil {
		return nil, nil, err
	}
	overrides := fmt.Sprintf(`{"spec":{"securityContext":{"runAsNonRoot":true,"runAsUser":1000,"seccompProfile":{"type":"RuntimeDefault"}},`+
		`"containers":[{"name":"scrape","image":%q,"command":%s,`+
		`"securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}`, f.Settings.RegistryImage, cmd)
	if _, err := f.Kube.Run(ctx, false, "-n", ns, "run", pod, "--restart=Never", "--image="+f.Settings.RegistryImage,
		"--labels=app.kubernetes.io/name=prometheus", "--overrides="+overrides); err != nil {
		return nil, nil, err
	}
	defer func() { _, _ = f.Kube.Run(context.Background(), false, "-n", ns, "delete", "pod", pod, "--wait=false") }()
	var phase string
	err = kit.Poll(ctx, 90*time.Second, time.Second, func() (bool, error) {
		out, err := f.Kube.Run(ctx, false, "-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.phase}")
		phase = strings.TrimSpace(out)
		return phase == "Succeeded" || phase == "Failed", err
	})
	logs, lerr := f.Kube.Run(ctx, false, "-n", ns, "logs", pod)
	if err != nil || phase != "Succeeded" || lerr != nil {
		return nil, nil, fmt.Errorf("scrape %v: pod %s %s (%v, %v): %s", targets, pod, phase, err, lerr, kit.Tail(logs, 5))
	}
	pages = map[string]string{}
	for _, part := range strings.Split(strings.ReplaceAll(logs, "\r\n", "\n"), scrapeMarker+" ")[1:] {
		target, response, _ := strings.Cut(part, "\n")
		head, body, _ := strings.Cut(response, "\n\n")
		status, _, _ := strings.Cut(head, "\n")
		if !httpOK.MatchString(status) {
			return nil, nil, fmt.Errorf("scrape http://%s:%d%s: status %q: %s", target, monitoring.Port, registry.MetricsPath, status, kit.Tail(response, 5))
		}
		pages[target] = body
	}
	if len(pages) != len(targets) {
		return nil, nil, fmt.Errorf("scrape %v: %d pages in the scraper's log: %s", targets, len(pages), kit.Tail(logs, 5))
	}
	return targets, pages, nil
}

// scrapeMarker starts each target's response in the scraper pod's log.
const scrapeMarker = "=== scrape"

var httpOK = regexp.MustCompile(`^HTTP/1\.[01] 200 `)

var sampleNameRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)`)

// seriesNames are the metric names of a Prometheus text page.
func seriesNames(page string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(page, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := sampleNameRE.FindString(line); m != "" {
			names[m] = true
		}
	}
	return names
}

// stepMonitoringMetrics switches monitoring on: first with the Prometheus Operator CRDs absent
// (the preview must fail and say why), then with them; scrapes the metrics Service from inside
// the cluster and compares the names the dashboard and the alerts use with the live ones.
func (f *fixture) stepMonitoringMetrics(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	if _, err := f.Kube.Run(ctx, false, "create", "namespace", f.scrapeNamespace()); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = f.Kube.Run(context.Background(), false, "delete", "namespace", f.scrapeNamespace(), "--wait=false")
	})
	if err := f.deleteCRDFixtures(ctx); err != nil {
		t.Fatal(err)
	}
	// The default count (2), which the scrape below expects one endpoint per pod of.
	if err := f.Pulumi.RemoveConfig(ctx, "replicas"); err != nil {
		t.Fatal(err)
	}
	for path, value := range map[string]string{
		"monitoring.scrapeNamespace":        f.scrapeNamespace(),
		"monitoring.serviceMonitor.enabled": "true",
		"monitoring.alerts.enabled":         "true",
		"monitoring.dashboard.enabled":      "true",
	} {
		if err := f.Pulumi.SetConfigPath(ctx, path, value, false); err != nil {
			t.Fatal(err)
		}
	}
	out, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-monitoring-no-crds", "preview")
	if err == nil {
		t.Fatalf("preview with monitoring.serviceMonitor on and no Prometheus Operator CRDs succeeded:\n%s", kit.Tail(out, 20))
	}
	// Both CRD reads fail; the engine stops at whichever fails first, so the refusal names the
	// ServiceMonitor's or the PrometheusRule's, each with the config field that needs it.
	msg := err.Error() + out
	named := ""
	for _, want := range []struct{ field, crd string }{
		{"monitoring.serviceMonitor", monitoring.ServiceMonitorCRD}, {"monitoring.alerts", monitoring.PrometheusRuleCRD},
	} {
		if strings.Contains(msg, want.field) && strings.Contains(msg, want.crd) {
			named = want.crd
			break
		}
	}
	if named == "" {
		t.Errorf("the refusal names neither monitoring.serviceMonitor with %s nor monitoring.alerts with %s:\n%s",
			monitoring.ServiceMonitorCRD, monitoring.PrometheusRuleCRD, kit.Tail(msg, 20))
	}
	t.Logf("without the CRDs the preview fails: %s", firstLineWith(msg, named))

	if err := f.applyCRDFixtures(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = f.TimedUp(ctx, "pulumi up (monitoring on)", "up-monitoring")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WaitReady(ctx, 2); err != nil {
		t.Fatal(err)
	}

	metricsSvc := f.Out.DeploymentName + "-metrics"
	var svc struct {
		Spec struct {
			Type     string               `json:"type"`
			Ports    []struct{ Port int } `json:"ports"`
			Selector map[string]string    `json:"selector"`
		} `json:"spec"`
	}
	if err := f.Kube.GetJSON(ctx, true, &svc, "service", metricsSvc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != "ClusterIP" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != monitoring.Port {
		t.Errorf("Service %s: type %s ports %+v, want ClusterIP with port %d only", metricsSvc, svc.Spec.Type, svc.Spec.Ports, monitoring.Port)
	}
	routes, err := f.Kube.NS(ctx, "get", "ingress,httproute", "-o", "jsonpath={..backend.service.name}{..backendRefs[*].name}")
	if err != nil && !strings.Contains(err.Error(), "the server doesn't have a resource type") {
		t.Fatal(err)
	}
	if strings.Contains(routes, "-metrics") {
		t.Errorf("a route sends traffic to a metrics Service: backends %q", routes)
	}
	var pol struct {
		Spec struct {
			Ingress []struct {
				From []struct {
					NamespaceSelector struct{ MatchLabels map[string]string } `json:"namespaceSelector"`
					PodSelector       struct{ MatchLabels map[string]string } `json:"podSelector"`
				} `json:"from"`
			} `json:"ingress"`
		} `json:"spec"`
	}
	if err := f.Kube.GetJSON(ctx, true, &pol, "networkpolicy", metricsSvc); err != nil {
		t.Fatal(err)
	}
	if len(pol.Spec.Ingress) != 1 || len(pol.Spec.Ingress[0].From) != 1 ||
		pol.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != f.scrapeNamespace() ||
		pol.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
		t.Errorf("NetworkPolicy %s does not admit only the scraper pods of %s: %+v", metricsSvc, f.scrapeNamespace(), pol.Spec)
	}

	// The Prometheus Operator objects, as the API server accepted them against the real CRDs.
	var sm struct {
		Spec struct {
			Endpoints       []struct{ Port, Path string } `json:"endpoints"`
			PodTargetLabels []string                      `json:"podTargetLabels"`
		} `json:"spec"`
	}
	if err := f.Kube.GetJSON(ctx, true, &sm, "servicemonitors.monitoring.coreos.com", f.Out.DeploymentName); err != nil {
		t.Fatal(err)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != monitoring.PortName || !slices.Contains(sm.Spec.PodTargetLabels, gc.ModeLabel) {
		t.Errorf("ServiceMonitor spec %+v", sm.Spec)
	}
	var rule struct {
		Spec struct {
			Groups []monitoring.RuleGroup `json:"groups"`
		} `json:"spec"`
	}
	if err := f.Kube.GetJSON(ctx, true, &rule, "prometheusrules.monitoring.coreos.com", f.Out.DeploymentName+"-alerts"); err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
		}
	}
	// The suite's stack suspends scheduled GC: no RegistryGCNotRun (unit-tested). The renewal
	// alert needs the certificate's end of validity: only a generated one's is known (the full
	// suite runs this step after tls_secret_source, with the outside certificate).
	want := []string{"RegistryReadOnlyTooLong", "RegistryGCFailed", "RegistryStorageErrors", "RegistryCacheErrors"}
	generatedCert := f.Out.TLSSecretName == stackconfig.GeneratedTLSSecretName
	if generatedCert {
		want = append(want, "RegistryCertificateRenewalDue")
	} else if slices.Contains(alerts, "RegistryCertificateRenewalDue") {
		t.Errorf("PrometheusRule has RegistryCertificateRenewalDue for the outside certificate of Secret %s, whose expiry the stack does not know", f.Out.TLSSecretName)
	}
	for _, name := range want {
		if !slices.Contains(alerts, name) {
			t.Errorf("PrometheusRule has no alert %s (certificate generated: %v): %v", name, generatedCert, alerts)
		}
	}
	var board map[string]any
	raw, err := f.Kube.NS(ctx, "get", "configmap", f.Out.DeploymentName+"-dashboard", "-o", "jsonpath={.data."+strings.ReplaceAll(monitoring.DashboardKey, ".", `\.`)+"}")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &board); err != nil {
		t.Errorf("dashboard ConfigMap is not JSON: %v", err)
	}
	panels, _ := board["panels"].([]any)
	f.Report.Fact("monitoring: ServiceMonitor and PrometheusRule (%d alerts) accepted against the Prometheus Operator v0.85.0 CRDs; dashboard with %d panels", len(alerts), len(panels))

	// Scrape like Prometheus, after some traffic, and compare the names with what we query:
	// Prometheus sees the union of the pods' series, and so does this check.
	if _, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep); err != nil {
		t.Fatal(err)
	}
	targets, pages, err := f.scrape(ctx, metricsSvc)
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 1+2 {
		t.Errorf("the metrics Service has %d ready endpoints, want one per registry pod (2): %v", len(targets)-1, targets[1:])
	}
	queried := monitoring.RegistryMetricNames(monitoring.QueriedExprs())
	live := map[string]bool{}
	var page string
	for _, target := range targets {
		names := seriesNames(pages[target])
		var has int
		for _, name := range queried {
			if names[name] {
				has++
			}
		}
		t.Logf("scrape %s: %d series names, %d of the %d queried registry metrics", target, len(names), has, len(queried))
		if target == targets[0] {
			// One of the pods below, at random: it counts once, through them.
			if len(names) == 0 {
				t.Errorf("the page through the Service %s has no series:\n%s", target, kit.Tail(pages[target], 5))
			}
			continue
		}
		for name := range names {
			live[name] = true
		}
		page += pages[target]
	}
	var missing, found []string
	for _, name := range queried {
		if strings.HasPrefix(name, "registry_proxy_") {
			continue // a mirror's only; no mirror runs now
		}
		if live[name] {
			found = append(found, name)
		} else {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard or alerts query metrics the registry does not export: %v", missing)
	}
	for _, want := range []string{`registry_http_requests_total{code="200"`, `handler="blob"`} {
		if !strings.Contains(page, strings.SplitN(want, "{", 2)[0]) || !strings.Contains(page, strings.TrimPrefix(want, "registry_http_requests_total{")) {
			t.Errorf("no %s series in the scrape", want)
		}
	}
	f.Report.Fact("monitoring: scraped %s and its %d endpoints from a pod in %s: %d series names, all %d registry metrics the dashboard and alerts query are there", metricsSvc, len(targets)-1, f.scrapeNamespace(), len(live), len(found))

	if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-monitoring-clean", "preview", "--expect-no-changes", "--diff"); err != nil {
		t.Errorf("preview after up with monitoring is not empty: %v", err)
	}

	// Monitoring off again, before its CRDs go: every object it made goes with it.
	if err := f.Pulumi.RemoveConfig(ctx, "monitoring"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.TimedUp(ctx, "pulumi up (monitoring off)", "up-monitoring-off"); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []string{
		"service/" + metricsSvc, "networkpolicy/" + metricsSvc, "configmap/" + f.Out.DeploymentName + "-dashboard",
		"servicemonitors.monitoring.coreos.com/" + f.Out.DeploymentName, "prometheusrules.monitoring.coreos.com/" + f.Out.DeploymentName + "-alerts",
	} {
		if _, err := f.Kube.NS(ctx, "get", obj); !kit.IsNotFound(err) {
			t.Errorf("%s still there after monitoring was removed (%v)", obj, err)
		}
	}
	if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-monitoring-off-clean", "preview", "--expect-no-changes", "--diff"); err != nil {
		t.Errorf("preview after monitoring was removed is not empty: %v", err)
	}
	if err := f.deleteCRDFixtures(ctx); err != nil {
		t.Error(err)
	}
}

// handReplicasOver gives the Deployment's replica count to a field manager of its own, as
// README "Monitoring" tells users to before the first `pulumi up` with autoscaling.
func (f *fixture) handReplicasOver(ctx context.Context) error {
	out, err := f.Kube.NS(ctx, "get", "deployment", f.Out.DeploymentName, "-o", "jsonpath={.spec.replicas}")
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return fmt.Errorf("deployment replicas %q: %w", out, err)
	}
	manifest := fmt.Sprintf(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":%q},"spec":{"replicas":%d}}`, f.Out.DeploymentName, n)
	file, err := os.CreateTemp("", "handover-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(file.Name())
	if _, err := file.WriteString(manifest); err != nil {
		return err
	}
	if err := file.Close(); err != nil {
		return err
	}
	_, err = f.Kube.NS(ctx, "apply", "--server-side", "--field-manager=hpa-handover", "-f", file.Name())
	return err
}

func firstLineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// replicaRange is the lowest and highest wanted count the samples read.
func replicaRange(samples []gcSample) (lo, hi int) {
	lo = -1
	for _, s := range samples {
		if s.Replicas < 0 {
			continue
		}
		if lo < 0 || s.Replicas < lo {
			lo = s.Replicas
		}
		hi = max(hi, s.Replicas)
	}
	return lo, hi
}

// hpaPullLoops is the pull load of the autoscaling step.
const hpaPullLoops = 3

// stepAutoscalingHPA hands the replicas to an HPA, raises the load until it scales up, runs GC
// during the scale event with pushes and pulls going, and checks that the stack does not fight
// the HPA (clean previews) and that GC lost nothing; then gives the count back to the stack.
func (f *fixture) stepAutoscalingHPA(t *testing.T) {
	need(t, f.Client != nil && f.imgKeep != nil, "deployment and a pushed image")
	ctx := context.Background()
	hpa := f.Out.DeploymentName
	for path, value := range map[string]string{
		"autoscaling.minReplicas":    "2",
		"autoscaling.maxReplicas":    "4",
		"autoscaling.cpuUtilization": "50",
	} {
		if err := f.Pulumi.SetConfigPath(ctx, path, value, false); err != nil {
			t.Fatal(err)
		}
	}
	// An autoscaler refuses a replica count of our own.
	if err := f.Pulumi.RemoveConfig(ctx, "replicas"); err != nil {
		t.Fatal(err)
	}
	// A small request: the pulls below are then a load of several times the target.
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"registry.cpuRequest": "20m"}); err != nil {
		t.Fatal(err)
	}
	// The README's handover: without it, the `up` that stops declaring a count lets the
	// Deployment's default (1) take over until the HPA's first sync (measured: 2 → 1 → 2).
	if err := f.handReplicasOver(ctx); err != nil {
		t.Fatal(err)
	}
	smp := f.startSampler(ctx)
	_, err := f.TimedUp(ctx, "pulumi up (autoscaling on)", "up-autoscaling")
	if err != nil {
		t.Fatal(err)
	}
	if err := kit.Poll(ctx, 2*time.Minute, 2*time.Second, func() (bool, error) {
		out, err := f.Kube.NS(ctx, "get", "hpa", hpa, "-o", "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}")
		return err == nil && strings.TrimSpace(out) != "", nil
	}); err != nil {
		t.Fatalf("the HPA reads no CPU utilization (metrics-server): %v", err)
	}
	samples := smp.finish()
	lo, hi := replicaRange(samples)
	f.Report.Fact("autoscaling: handing the count to the HPA (min 2) after the README's handover: the Deployment's replicas ranged %d..%d over %d samples during pulumi up", lo, hi, len(samples))
	if lo < 2 {
		t.Errorf("the Deployment went down to %d replicas when the HPA took over (min 2)", lo)
	}
	if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-hpa-clean", "preview", "--expect-no-changes", "--diff"); err != nil {
		t.Errorf("preview with the HPA is not empty: %v", err)
	}

	// Load and GC at once: pull loops and a push loop start with a GC run, so that the HPA
	// scales up while GC switches the registry read-only. Nothing acknowledged may be lost,
	// nothing acknowledged while read-only, and the pods added meanwhile start read-only.
	var pulls []*loop
	// Three loops are several times the target already (20m per pod); more would only take CPU
	// from the main track running beside this one.
	for i := 0; i < hpaPullLoops; i++ {
		pulls = append(pulls, startPullLoop(ctx, f.Client, f.imgKeep, 10*time.Millisecond))
	}
	stopPulls := func() (ok, failed int) {
		for _, l := range pulls {
			c := l.stop()
			ok += c.OK + c.OKAfterRetry
			failed += c.Failed
		}
		pulls = nil
		return ok, failed
	}
	defer func() {
		if pulls != nil {
			stopPulls()
		}
	}()
	pushes := startPushLoop(ctx, f.Client, "e2e/hpa-load", 64<<10, 500*time.Millisecond)
	smp = f.startSampler(ctx)
	start := time.Now()
	// The collector is held until the HPA has scaled and its pods are Ready: they start while the
	// registry must be read-only, which is the event under test (a plain GC run is over before
	// metrics-server reports the load).
	job, pod := f.holdGC(ctx, t, "gc-hpa", slowCollectorRuns, 600)
	var desired int
	scaleErr := kit.Poll(ctx, 4*time.Minute, 3*time.Second, func() (bool, error) {
		out, err := f.Kube.NS(ctx, "get", "hpa", hpa, "-o", "jsonpath={.status.desiredReplicas}")
		if err != nil {
			return false, err
		}
		desired, _ = strconv.Atoi(strings.TrimSpace(out))
		return desired > 2, nil
	})
	scaledAfter := time.Since(start).Round(time.Second)
	util, _ := f.Kube.NS(ctx, "get", "hpa", hpa, "-o", "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}")
	if scaleErr == nil {
		scaleErr = f.Kube.RolloutStatus(ctx, f.Out.DeploymentName, kit.ReadyTimeout)
	}
	if scaleErr == nil {
		// At least one look at the added pods beside the collector before it goes on.
		if err := smp.seen(ctx, time.Minute, func(s gcSample) bool { return s.Collectors > 0 && s.Pods > 2 }); err != nil {
			scaleErr = fmt.Errorf("no sample saw the collector beside more than 2 registry pods: %w", err)
		}
	}
	// Released whatever happened, so that the registry gets its writes back.
	releaseErr := f.releaseCollector(ctx, pod)
	gcRes, gcErr := f.Kube.WaitJob(ctx, job, start, kit.GCJobTimeout)
	samples = smp.finish()
	lo, hi = replicaRange(samples)
	pushStats := pushes.stop()
	okPulls, failedPulls := stopPulls()
	if scaleErr != nil {
		t.Fatalf("the HPA did not scale up under load during GC: %v; %s", scaleErr, f.Kube.Events(ctx))
	}
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	f.Report.Fact("autoscaling: under %d pull loops the HPA wanted %d replicas after %s (CPU %s%% of the request, target 50%%)", hpaPullLoops, desired, scaledAfter, strings.TrimSpace(util))
	if gcErr != nil || gcRes == nil {
		logs := ""
		if gcRes != nil {
			logs = kit.Tail(gcRes.Logs, 30)
		}
		t.Fatalf("GC job %s during the scale event: %v\n%s", job, gcErr, logs)
	}
	scaledReadOnly := 0
	for _, s := range samples {
		if s.TemplateReadOnly && s.Replicas > 2 {
			scaledReadOnly++
		}
	}
	collecting, collectingScaled := 0, 0
	for _, s := range samples {
		if s.Collectors > 0 {
			collecting++
			if s.Pods > 2 {
				collectingScaled++
			}
			if s.Writable > 0 || !s.TemplateReadOnly {
				t.Errorf("%s: a writable replica while the collector runs", s)
			}
		}
	}
	f.Report.Fact("autoscaling: GC during the scale event (%s): replicas %d..%d over %d samples, %d of them read-only with more than 2 wanted, %d with the collector running (none writable), %d of those with the added pods; %s; pulls: %d ok, %d failed",
		gcRes.Duration.Round(time.Second), lo, hi, len(samples), scaledReadOnly, collecting, collectingScaled, pushStats.summary("pushes"), okPulls, failedPulls)
	if failedPulls > 0 {
		t.Errorf("%d pulls failed during GC and the scale event", failedPulls)
	}
	if scaledReadOnly == 0 || collectingScaled == 0 {
		t.Errorf("the HPA's pods were not seen beside the held collector (%d samples read-only with more than 2 wanted, %d collecting with more than 2 pods): the scale event during GC was not exercised", scaledReadOnly, collectingScaled)
	}
	if win, err := gcReadOnlyWindow(gcRes.Logs, time.Now()); err != nil {
		t.Errorf("GC job log: %v", err)
	} else if _, inside, _ := win.classify(pushStats.AckedAt); inside > 0 {
		t.Errorf("%d pushes were acknowledged while GC ran", inside)
	}
	for _, im := range append(append([]*kit.Image{}, f.survivors...), pushStats.Acked...) {
		if _, err := f.Client.PullImage(ctx, im.Tag, im); err != nil {
			t.Errorf("acknowledged image %s lost after GC during the scale event: %v", im.Ref(), err)
		}
	}
	f.survivors = append(f.survivors, pushStats.Acked...)
	if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-hpa-scaled-clean", "preview", "--expect-no-changes", "--diff"); err != nil {
		t.Errorf("preview after the HPA scaled is not empty: %v", err)
	}

	// The count back to the stack, and the monitoring objects off before their CRDs go. The
	// README's handover for turning autoscaling off: the HPA goes first. Pulumi deletes it only at
	// the end of the up, after the Deployment's update, and an HPA sync in between sets its own
	// count again (seen: 4 replicas left where the stack declares 2).
	if _, err := f.Kube.NS(ctx, "delete", "hpa", hpa, "--wait=true"); err != nil {
		t.Fatal(err)
	}
	if err := f.Pulumi.RemoveConfig(ctx, "autoscaling"); err != nil {
		t.Fatal(err)
	}
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"registry.cpuRequest": "100m"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.TimedUp(ctx, "pulumi up (autoscaling off)", "up-autoscaling-off")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WaitReady(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Kube.NS(ctx, "get", "hpa", hpa); !kit.IsNotFound(err) {
		t.Errorf("HPA %s still there after autoscaling was removed (%v)", hpa, err)
	}
	if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-fixed-clean", "preview", "--expect-no-changes", "--diff"); err != nil {
		t.Errorf("preview after autoscaling was removed is not empty: %v", err)
	}
}
