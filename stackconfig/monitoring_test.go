package stackconfig

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/registry"
)

func TestMonitoringIsOffUnlessSet(t *testing.T) {
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Monitoring != nil || c.Autoscaling != nil {
		t.Errorf("monitoring = %+v, autoscaling = %+v; want both off by default", c.Monitoring, c.Autoscaling)
	}
}

func TestMonitoringDefaultsAndTypedValues(t *testing.T) {
	c, err := parse(map[string]string{"monitoring": `{}`})
	if err != nil {
		t.Fatal(err)
	}
	m := c.Monitoring
	if m == nil || m.ScrapeNamespace != "monitoring" || !reflect.DeepEqual(m.ScrapePodLabels, map[string]string{"app.kubernetes.io/name": "prometheus"}) ||
		m.ServiceMonitor != nil || m.Alerts != nil || m.Dashboard != nil {
		t.Errorf("monitoring {} = %+v; want the metrics Services for prometheus pods of namespace monitoring, nothing else", m)
	}

	// As `pulumi config set --path` stores it: every value a string.
	c, err = parse(map[string]string{"namespace": "reg", "gc.schedule": "0 3 * * *", "monitoring": `{"scrapeNamespace":"obs","scrapePodLabels":{},` +
		`"serviceMonitor":{"enabled":"true","labels":{"release":"kps"},"interval":"15s"},` +
		`"alerts":{"enabled":"true","readOnlyFor":"90m"},"dashboard":{"enabled":true,"namespace":"grafana"}}`})
	if err != nil {
		t.Fatal(err)
	}
	m = c.Monitoring
	if m.ScrapeNamespace != "obs" || len(m.ScrapePodLabels) != 0 {
		t.Errorf("scrapers = %q %v; want every pod of namespace obs", m.ScrapeNamespace, m.ScrapePodLabels)
	}
	if sm := m.ServiceMonitor; sm == nil || sm.Interval != 15*time.Second || sm.Labels["release"] != "kps" {
		t.Errorf("serviceMonitor = %+v", sm)
	}
	if a := m.Alerts; a == nil || a.ReadOnlyFor != 90*time.Minute || a.GCMaxInterval == nil || *a.GCMaxInterval != 24*time.Hour {
		t.Errorf("alerts = %+v; want readOnlyFor 90m and a daily GC gap", a)
	}
	if d := m.Dashboard; d == nil || d.Namespace != "grafana" || !reflect.DeepEqual(d.Labels, map[string]string{"grafana_dashboard": "1"}) {
		t.Errorf("dashboard = %+v; want namespace grafana and the sidecar's default label", d)
	}

	c, err = parse(map[string]string{"gc.suspend": "true", "monitoring": `{"alerts":{"enabled":true},"dashboard":{"enabled":true}}`})
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Monitoring.Alerts; a.ReadOnlyFor != time.Hour || a.GCMaxInterval != nil {
		t.Errorf("alerts with gc.suspend = %+v; want the default readOnlyFor and no GC-not-run alert", a)
	}
	if d := c.Monitoring.Dashboard; d.Namespace != "" {
		t.Errorf("dashboard namespace %q, want empty: the stack's, whatever it resolves to", d.Namespace)
	}
}

func TestAutoscalingDefaultsAndTypedValues(t *testing.T) {
	c, err := parse(map[string]string{"autoscaling": `{}`})
	if err != nil {
		t.Fatal(err)
	}
	want := &registry.Autoscaling{MinReplicas: 2, MaxReplicas: 6, Resources: &registry.ResourceTargets{CPUUtilization: 70}}
	if !reflect.DeepEqual(c.Autoscaling, want) {
		t.Errorf("autoscaling {} = %+v, want %+v", c.Autoscaling, want)
	}
	c, err = parse(map[string]string{"autoscaling": `{"minReplicas":"1","maxReplicas":"3","cpuUtilization":"0","memoryUtilization":"80"}`})
	if err != nil {
		t.Fatal(err)
	}
	want = &registry.Autoscaling{MinReplicas: 1, MaxReplicas: 3, Resources: &registry.ResourceTargets{MemoryUtilization: 80}}
	if !reflect.DeepEqual(c.Autoscaling, want) {
		t.Errorf("autoscaling = %+v, want %+v", c.Autoscaling, want)
	}
	c, err = parse(map[string]string{"namespace": "reg", "autoscaling": `{"keda":{"serverAddress":"http://prometheus-operated.monitoring.svc:9090"}}`})
	if err != nil {
		t.Fatal(err)
	}
	k := c.Autoscaling.KEDA
	if c.Autoscaling.Resources != nil || k == nil || k.Threshold != "20" ||
		k.Query != "" { // the component's default, which knows its metrics Service

		t.Errorf("keda = %+v, resources = %+v", k, c.Autoscaling.Resources)
	}
}

// Every invalid monitoring or autoscaling value names the field, the value and what is allowed.
func TestInvalidMonitoringAndAutoscalingAreRejected(t *testing.T) {
	cases := []struct {
		name   string
		values map[string]string
		// key is the field the message must name, value its quoted bad value.
		key, value, allowed string
	}{
		{"not an object", map[string]string{"monitoring": `true`}, "monitoring", "true", "an object with scrapeNamespace"},
		{"unknown field", map[string]string{"monitoring": `{"scrapeNamespaces":"x"}`}, "monitoring", "scrapeNamespaces", "an object with scrapeNamespace"},
		{"enabled not a bool", map[string]string{"monitoring": `{"alerts":{"enabled":"yes"}}`}, "monitoring", "yes", "not true or false"},
		{"scrape namespace", map[string]string{"monitoring": `{"scrapeNamespace":"Monitoring"}`}, "monitoring.scrapeNamespace", "Monitoring", "DNS-1123 label"},
		{"scrape label name", map[string]string{"monitoring": `{"scrapePodLabels":{"bad key!":"x"}}`}, "monitoring.scrapePodLabels", "bad key!", "label names"},
		{"scrape label value", map[string]string{"monitoring": `{"scrapePodLabels":{"app":"-x"}}`}, "monitoring.scrapePodLabels.app", "-x", "a label value"},
		{"interval too short", map[string]string{"monitoring": `{"serviceMonitor":{"enabled":true,"interval":"1s"}}`}, "monitoring.serviceMonitor.interval", "1s", "from 5s to 5m"},
		{"interval unparsable", map[string]string{"monitoring": `{"serviceMonitor":{"enabled":true,"interval":"often"}}`}, "monitoring.serviceMonitor.interval", "often", "from 5s to 5m"},
		{"labels while off", map[string]string{"monitoring": `{"serviceMonitor":{"labels":{"release":"kps"}}}`}, "monitoring.serviceMonitor.enabled", "false", "would be ignored"},
		{"read-only too short", map[string]string{"monitoring": `{"alerts":{"enabled":true,"readOnlyFor":"5m"}}`}, "monitoring.alerts.readOnlyFor", "5m", "from 10m to 24h"},
		{"read-only not minutes", map[string]string{"monitoring": `{"alerts":{"enabled":true,"readOnlyFor":"90s"}}`}, "monitoring.alerts.readOnlyFor", "90s", "whole minutes"},
		{"alerts set while off", map[string]string{"monitoring": `{"alerts":{"enabled":false,"readOnlyFor":"2h"}}`}, "monitoring.alerts.enabled", "false", "would be ignored"},
		{"dashboard namespace", map[string]string{"monitoring": `{"dashboard":{"enabled":true,"namespace":"a.b"}}`}, "monitoring.dashboard.namespace", "a.b", "DNS-1123 label"},
		{"dashboard label value", map[string]string{"monitoring": `{"dashboard":{"enabled":true,"labels":{"grafana_dashboard":"a b"}}}`}, "monitoring.dashboard.labels.grafana_dashboard", "a b", "a label value"},

		{"autoscaling unknown field", map[string]string{"autoscaling": `{"max":4}`}, "autoscaling", "max", "minReplicas, maxReplicas"},
		{"replicas with autoscaling", map[string]string{"replicas": "3", "autoscaling": `{}`}, "replicas", "3", "unset when autoscaling is set"},
		{"min below 1", map[string]string{"autoscaling": `{"minReplicas":0}`}, "autoscaling.minReplicas", "0", "from 1 to 20"},
		{"max above the limit", map[string]string{"autoscaling": `{"maxReplicas":21}`}, "autoscaling.maxReplicas", "21", "from 1 to 20"},
		{"max below min", map[string]string{"autoscaling": `{"minReplicas":4,"maxReplicas":3}`}, "autoscaling.maxReplicas", "3", "at least minReplicas (4)"},
		{"min not a number", map[string]string{"autoscaling": `{"minReplicas":"two"}`}, "autoscaling", "two", "not a whole number"},
		{"no target", map[string]string{"autoscaling": `{"cpuUtilization":0}`}, "autoscaling.cpuUtilization", "0", "a target above 0"},
		{"negative target", map[string]string{"autoscaling": `{"memoryUtilization":-5}`}, "autoscaling.memoryUtilization", "-5", "from 0 to 1000"},
		{"keda and cpu", map[string]string{"autoscaling": `{"cpuUtilization":50,"keda":{"serverAddress":"http://prom:9090"}}`}, "autoscaling.keda", "set", "one autoscaler"},
		{"keda address", map[string]string{"autoscaling": `{"keda":{"serverAddress":"prom:9090"}}`}, "autoscaling.keda.serverAddress", "prom:9090", "http(s):// URL"},
		{"keda credentials", map[string]string{"autoscaling": `{"keda":{"serverAddress":"https://u:p@prom:9090"}}`}, "autoscaling.keda.serverAddress", "https://u:p@prom:9090", "without credentials"},
		{"keda threshold", map[string]string{"autoscaling": `{"keda":{"serverAddress":"http://prom:9090","threshold":"0"}}`}, "autoscaling.keda.threshold", "0", "a positive number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.values)
			if err == nil {
				t.Fatalf("accepted %v", tc.values)
			}
			msg := err.Error()
			for _, want := range []string{`config "` + tc.key + `"`, tc.value, tc.allowed} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
		})
	}
}

func TestMaxScheduleGap(t *testing.T) {
	for schedule, want := range map[string]time.Duration{
		"0 3 * * 0":    7 * 24 * time.Hour,
		"0 3 * * *":    24 * time.Hour,
		"*/30 * * * *": 30 * time.Minute,
		"0 3 1 * *":    31 * 24 * time.Hour,
		"0 3 * * 1,4":  4 * 24 * time.Hour,
	} {
		if got := MaxScheduleGap(schedule); got != want {
			t.Errorf("MaxScheduleGap(%q) = %v, want %v", schedule, got, want)
		}
	}
}
