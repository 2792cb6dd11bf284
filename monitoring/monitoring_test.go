package monitoring

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/gc"
	"github.com/regstack/registry-stack/internal/testutil"
)

const (
	tService        = "kubernetes:core/v1:Service"
	tNetPol         = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	tConfigMap      = "kubernetes:core/v1:ConfigMap"
	tCRD            = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
	tServiceMonitor = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
	tPrometheusRule = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
)

func pods(instance string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "registry", "app.kubernetes.io/instance": instance}
}

// fullArgs switches every object on, for the registry and one mirror.
func fullArgs() *MonitoringArgs {
	gap := *fullInput().GCMaxInterval
	return &MonitoringArgs{
		Namespace: pulumi.String("reg"),
		Targets:   []Target{{Instance: "registry", PodSelector: pods("registry")}, {Instance: "registry-mirror-hub", PodSelector: pods("registry-mirror-hub")}},
		Config: &Config{
			ScrapeNamespace: "obs", ScrapePodLabels: map[string]string{"app.kubernetes.io/name": "prometheus"},
			ServiceMonitor: &ServiceMonitor{Labels: map[string]string{"release": "kps"}, Interval: 30 * time.Second},
			Alerts:         &Alerts{Labels: map[string]string{"release": "kps"}, ReadOnlyFor: time.Hour, GCMaxInterval: &gap},
			Dashboard:      &Dashboard{Namespace: "grafana", Labels: map[string]string{"grafana_dashboard": "1"}},
		},
		GCCronJob: "registry-gc", Cache: true, Autoscaler: "registry", Claims: fullInput().Claims,
		CertNotAfter: pulumi.String("2027-12-01T00:00:00Z"), CertWarnBefore: 438 * time.Hour,
	}
}

func runMonitoring(t *testing.T, args *MonitoringArgs) *testutil.Mocks {
	t.Helper()
	return testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewMonitoring(ctx, "registry", args)
		return err
	})
}

func TestMetricsServicesExposeOnlyTheDebugPortToTheScrapers(t *testing.T) {
	m := runMonitoring(t, fullArgs())
	if n := len(m.OfType(tService)); n != 2 {
		t.Fatalf("%d Services, want a metrics Service for the registry and the mirror", n)
	}
	for _, inst := range []string{"registry", "registry-mirror-hub"} {
		svc := m.Get(t, tService, inst+"-metrics")
		if got := svc.String("spec", "type"); got != "ClusterIP" {
			t.Errorf("%s: type %q, want ClusterIP (never reachable from outside the cluster)", inst, got)
		}
		ports := svc.Lookup("spec", "ports").([]any)
		want := map[string]any{"name": "metrics", "port": 5001.0, "targetPort": "debug"}
		if len(ports) != 1 || !reflect.DeepEqual(ports[0], want) {
			t.Errorf("%s: ports %v, want only %v", inst, ports, want)
		}
		if got := svc.Lookup("spec", "selector"); !reflect.DeepEqual(got, testutil.AnyMap(pods(inst))) {
			t.Errorf("%s: selector %v, want its own pods", inst, got)
		}
		if got := svc.String("metadata", "labels", "app.kubernetes.io/component"); got != "metrics" {
			t.Errorf("%s: component label %q", inst, got)
		}

		pol := m.Get(t, tNetPol, inst+"-metrics")
		if got := pol.Lookup("spec", "podSelector", "matchLabels"); !reflect.DeepEqual(got, testutil.AnyMap(pods(inst))) {
			t.Errorf("%s: policy selects %v", inst, got)
		}
		rules := pol.Lookup("spec", "ingress").([]any)
		if len(rules) != 1 {
			t.Fatalf("%s: %d ingress rules", inst, len(rules))
		}
		from := pol.Lookup("spec", "ingress", 0, "from").([]any)
		// One peer with both selectors: a pod of the scrape namespace AND with the labels. Two
		// peers would admit every pod with the labels in any namespace.
		wantPeer := map[string]any{
			"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "obs"}},
			"podSelector":       map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "prometheus"}},
		}
		if len(from) != 1 || !reflect.DeepEqual(from[0], wantPeer) {
			t.Errorf("%s: from %v, want the one peer %v", inst, from, wantPeer)
		}
		if got := pol.Lookup("spec", "ingress", 0, "ports"); !reflect.DeepEqual(got, []any{map[string]any{"protocol": "TCP", "port": 5001.0}}) {
			t.Errorf("%s: policy ports %v, want the debug port only", inst, got)
		}
	}
}

func TestEmptyScrapeLabelsAdmitTheWholeScrapeNamespaceOnly(t *testing.T) {
	a := fullArgs()
	a.Config.ScrapePodLabels = map[string]string{}
	m := runMonitoring(t, a)
	peer := m.Get(t, tNetPol, "registry-metrics").Lookup("spec", "ingress", 0, "from", 0).(map[string]any)
	if _, ok := peer["podSelector"]; ok || peer["namespaceSelector"] == nil {
		t.Errorf("peer %v, want the namespace selector alone", peer)
	}
}

func TestServiceMonitorScrapesTheMetricsServicesOnly(t *testing.T) {
	m := runMonitoring(t, fullArgs())
	sm := m.Get(t, tServiceMonitor, "registry")
	if got := sm.String("metadata", "labels", "release"); got != "kps" {
		t.Errorf("ServiceMonitor label release = %q, want the configured selector label", got)
	}
	selector := sm.Lookup("spec", "selector", "matchLabels").(map[string]any)
	for _, inst := range []string{"registry", "registry-mirror-hub"} {
		labels := m.Get(t, tService, inst+"-metrics").Lookup("metadata", "labels").(map[string]any)
		for k, v := range selector {
			if labels[k] != v {
				t.Errorf("%s-metrics lacks the selected label %s=%v", inst, k, v)
			}
		}
	}
	// The registry's own Service (component registry) carries the API port; it must not match.
	if selector["app.kubernetes.io/component"] != "metrics" {
		t.Errorf("selector %v does not pin component=metrics", selector)
	}
	if got := sm.Lookup("spec", "namespaceSelector", "matchNames"); !reflect.DeepEqual(got, []any{"reg"}) {
		t.Errorf("namespaceSelector %v", got)
	}
	if got := sm.Lookup("spec", "podTargetLabels"); !reflect.DeepEqual(got, []any{gc.ModeLabel}) {
		t.Errorf("podTargetLabels %v, want the GC's mode label (the read-only alert)", got)
	}
	ep := sm.Lookup("spec", "endpoints", 0).(map[string]any)
	if ep["port"] != PortName || ep["path"] != "/metrics" || ep["scheme"] != "http" || ep["interval"] != "30s" {
		t.Errorf("endpoint %v", ep)
	}
}

func TestOperatorObjectsNeedTheirCRDs(t *testing.T) {
	m := runMonitoring(t, fullArgs())
	var read []string
	for _, r := range m.OfType(tCRD) {
		if !r.Read {
			t.Errorf("CRD %s registered, want only read (the stack never installs the operator)", r.Name)
		}
		read = append(read, r.Name)
	}
	for _, want := range []string{ServiceMonitorCRD, PrometheusRuleCRD} {
		found := false
		for _, name := range read {
			// The read's name is what the engine prints when the CRD is missing: the key and the CRD.
			found = found || (strings.HasPrefix(name, "monitoring.") && strings.HasSuffix(name, want))
		}
		if !found {
			t.Errorf("CRD %s not read (have %v)", want, read)
		}
	}
}

func TestSwitchesOffRegisterOnlyTheMetricsServices(t *testing.T) {
	a := fullArgs()
	a.Config.ServiceMonitor, a.Config.Alerts, a.Config.Dashboard = nil, nil, nil
	a.GCCronJob = ""
	m := runMonitoring(t, a)
	for _, typ := range []string{tServiceMonitor, tPrometheusRule, tConfigMap, tCRD} {
		if n := len(m.OfType(typ)); n != 0 {
			t.Errorf("%d %s with its switch off", n, typ)
		}
	}
	if n := len(m.OfType(tService)) + len(m.OfType(tNetPol)); n != 4 {
		t.Errorf("%d Services and NetworkPolicies, want 4", n)
	}
}

func TestPrometheusRuleCarriesTheAlerts(t *testing.T) {
	m := runMonitoring(t, fullArgs())
	rule := m.Get(t, tPrometheusRule, "registry-alerts")
	if got := rule.String("metadata", "labels", "release"); got != "kps" {
		t.Errorf("label release = %q", got)
	}
	raw, err := json.Marshal(rule.Lookup("spec", "groups"))
	if err != nil {
		t.Fatal(err)
	}
	var groups []RuleGroup
	if err := json.Unmarshal(raw, &groups); err != nil {
		t.Fatal(err)
	}
	warn := time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC).Add(-438 * time.Hour)
	in := fullInput()
	in.Namespace, in.CertWarnAt = "reg", &warn
	if want := Rules(in); !reflect.DeepEqual(groups, want) {
		t.Errorf("groups\n%+v\nwant\n%+v", groups, want)
	}
	var names []string
	for _, g := range groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if r.Labels["namespace"] != "reg" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: labels %v, annotations %v", r.Alert, r.Labels, r.Annotations)
			}
			// The renewal alert compares the clock with a date; its labels name the stack.
			if !strings.Contains(r.Expr, `namespace="reg"`) && r.Alert != "RegistryCertificateRenewalDue" {
				t.Errorf("%s does not select the stack's namespace: %s", r.Alert, r.Expr)
			}
		}
	}
	for _, want := range []string{"RegistryReadOnlyTooLong", "RegistryGCFailed", "RegistryGCNotRun", "RegistryHigh5xxRate", "RegistryStorageErrors",
		"RegistryCacheErrors", "RegistryReplicasUnavailable", "RegistryCertificateRenewalDue", "RegistryAutoscalerAtMax", "RegistryTargetDown"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("alert %s missing (have %v)", want, names)
		}
	}
}

func TestAlertsFollowTheStack(t *testing.T) {
	in := fullInput()
	in.Cache, in.Autoscaler, in.CertWarnAt, in.GCMaxInterval = false, "", nil, nil
	for _, g := range Rules(in) {
		for _, r := range g.Rules {
			switch r.Alert {
			case "RegistryCacheErrors", "RegistryAutoscalerAtMax", "RegistryCertificateRenewalDue", "RegistryGCNotRun":
				t.Errorf("%s without the feature it watches", r.Alert)
			}
		}
	}
}

func TestDashboardIsAConfigMapForGrafanasSidecar(t *testing.T) {
	m := runMonitoring(t, fullArgs())
	cm := m.Get(t, tConfigMap, "registry-dashboard")
	if got := cm.String("metadata", "namespace"); got != "grafana" {
		t.Errorf("namespace %q, want the configured dashboard namespace", got)
	}
	if got := cm.String("metadata", "labels", "grafana_dashboard"); got != "1" {
		t.Errorf("sidecar label = %q", got)
	}
	var board struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal([]byte(cm.String("data", DashboardKey)), &board); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if len(board.UID) > 40 || board.UID == "" {
		t.Errorf("uid %q: Grafana allows 1 to 40 characters", board.UID)
	}
	if len(board.Panels) < 10 {
		t.Errorf("%d panels", len(board.Panels))
	}
	for _, p := range board.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, `namespace="reg"`) {
				t.Errorf("panel %q query does not select the namespace: %s", p.Title, q.Expr)
			}
		}
	}
	vars := map[string]string{}
	for _, v := range board.Templating.List {
		vars[v.Name] = v.Query
	}
	if vars["service"] != "registry-metrics,registry-mirror-hub-metrics" || vars["datasource"] != "prometheus" {
		t.Errorf("variables %v", vars)
	}
}

// exported is what distribution v3.1.2 exports on /metrics (registry/... and the prometheus
// namespaces in its source: http, storage, storage_cache, proxy; histograms with _bucket, _sum,
// _count). registry_storage_cache_* needs the Redis cache; registry_proxy_* a mirror.
var exported = map[string]bool{
	"registry_http_requests_total":                  true,
	"registry_http_request_duration_seconds_bucket": true,
	"registry_http_request_size_bytes_sum":          true,
	"registry_http_response_size_bytes_sum":         true,
	"registry_http_in_flight_requests":              true,
	"registry_storage_action_seconds_bucket":        true,
	"registry_storage_cache_requests_total":         true,
	"registry_storage_cache_hits_total":             true,
	"registry_storage_cache_errors_total":           true,
	"registry_proxy_requests_total":                 true,
	"registry_proxy_hits_total":                     true,
	"registry_proxy_misses_total":                   true,
	"registry_proxy_pulled_bytes_total":             true,
	"registry_proxy_pushed_bytes_total":             true,
}

func TestEveryQueryNamesMetricsTheRegistryExports(t *testing.T) {
	names := RegistryMetricNames(QueriedExprs())
	if len(names) < 8 {
		t.Fatalf("only %v queried", names)
	}
	for _, n := range names {
		if !exported[n] {
			t.Errorf("%s is queried but distribution v3.1.2 does not export it", n)
		}
	}
	// The handler label values distribution's router uses.
	handlers := map[string]bool{"base": true, "manifest": true, "tags": true, "blob": true, "blob_upload": true, "blob_upload_chunk": true, "catalog": true}
	for _, e := range QueriedExprs() {
		if i := strings.Index(e, `handler=~"`); i >= 0 {
			list := e[i+len(`handler=~"`):]
			for _, h := range strings.Split(list[:strings.Index(list, `"`)], "|") {
				if !handlers[h] {
					t.Errorf("handler %q is not one of distribution's routes: %s", h, e)
				}
			}
		}
	}
}

func TestMissingArgsAreRefused(t *testing.T) {
	a := fullArgs()
	a.GCCronJob = ""
	_, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewMonitoring(ctx, "registry", a)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "GCCronJob") {
		t.Errorf("err = %v, want GCCronJob required", err)
	}
}

// The operator turns a pod label into a target label by replacing every character a label name
// may not hold with _: the alerts must select that name.
func TestModeTargetLabelIsTheSanitizedPodLabel(t *testing.T) {
	if got := regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(gc.ModeLabel, "_"); got != ModeTargetLabel {
		t.Errorf("sanitized %q = %q, ModeTargetLabel = %q", gc.ModeLabel, got, ModeTargetLabel)
	}
}
