package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/regstack/registry-stack/internal/testutil"
)

const (
	tHPA            = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
	tServiceMonitor = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
	tPrometheusRule = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
	tHTTPRoute      = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
)

const monitoringOn = `{"serviceMonitor":{"enabled":true},"alerts":{"enabled":true},"dashboard":{"enabled":true}}`

func TestMonitoringOffAddsNothing(t *testing.T) {
	m := run(t, nil)
	for _, r := range m.Resources() {
		if strings.HasSuffix(r.Name, "-metrics") || strings.Contains(r.Type, "monitoring.coreos.com") || r.Type == tHPA {
			t.Errorf("%s/%s registered without monitoring or autoscaling", r.Type, r.Name)
		}
	}
}

// The debug port (metrics, pprof, expvar) is never a route's backend, in either routing mode.
func TestMetricsServicesAreInNoRoute(t *testing.T) {
	for mode, cfg := range map[string]map[string]string{
		"ingress": mirrorConfig(map[string]string{"monitoring": monitoringOn}),
		"gateway": mirrorConfig(map[string]string{"monitoring": monitoringOn, "routing.gateway.create.className": "traefik", "routing.gateway.create.listenerPort": "8443"}),
	} {
		m := run(t, cfg)
		if n := len(m.OfType(tService)); n != 4+3 { // registry, redis, two mirrors; a metrics Service per instance
			t.Errorf("%s: %d Services", mode, n)
		}
		backends := 0
		check := func(route string, service, port any) {
			backends++
			if s := fmt.Sprint(service); strings.HasSuffix(s, "-metrics") || fmt.Sprint(port) != "5000" {
				t.Errorf("%s: %s routes to %v:%v, want the API port of an instance", mode, route, service, port)
			}
		}
		for _, ing := range m.OfType(tIngress) {
			for i := range ing.Lookup("spec", "rules").([]any) {
				for j := range ing.Lookup("spec", "rules", i, "http", "paths").([]any) {
					b := []any{"spec", "rules", i, "http", "paths", j, "backend", "service"}
					check(ing.Name, ing.Lookup(append(b, "name")...), ing.Lookup(append(b, "port", "number")...))
				}
			}
		}
		for _, rt := range m.OfType(tHTTPRoute) {
			for i := range rt.Lookup("spec", "rules").([]any) {
				for j := range rt.Lookup("spec", "rules", i, "backendRefs").([]any) {
					b := []any{"spec", "rules", i, "backendRefs", j}
					check(rt.Name, rt.Lookup(append(b, "name")...), rt.Lookup(append(b, "port")...))
				}
			}
		}
		if backends < 3 {
			t.Errorf("%s: %d backends checked, want the registry's and each mirror's", mode, backends)
		}
		// The registry's own Service stays on the API port only.
		if ports := m.Get(t, tService, "registry").Lookup("spec", "ports").([]any); len(ports) != 1 {
			t.Errorf("%s: registry Service ports %v", mode, ports)
		}
	}
}

func TestMonitoringCoversTheRegistryAndEachMirror(t *testing.T) {
	m := run(t, mirrorConfig(map[string]string{"monitoring": monitoringOn}))
	for _, name := range []string{"registry-metrics", "registry-mirror-dockerhub-metrics", "registry-mirror-ghcr-metrics"} {
		m.Get(t, tService, name)
		m.Get(t, tNetPol, name)
	}
	m.Get(t, tServiceMonitor, "registry")
	rule := m.Get(t, tPrometheusRule, "registry-alerts")
	exprs := fmt.Sprint(rule.Lookup("spec", "groups"))
	for _, want := range []string{`service=~"registry-metrics|registry-mirror-dockerhub-metrics|registry-mirror-ghcr-metrics"`,
		`cronjob="registry-gc"`, "RegistryCacheErrors", "RegistryCertificateRenewalDue",
		// The default validity (8760 h) ends at the mock's 2027-12-01; the alert is 438 h before it.
		"vector(time()) > 1826042400"} {
		if !strings.Contains(exprs, want) {
			t.Errorf("alerts lack %s", want)
		}
	}
	if strings.Contains(exprs, "RegistryAutoscalerAtMax") {
		t.Error("autoscaler alert without an autoscaler")
	}
}

func TestAutoscalingOwnsTheReplicaCount(t *testing.T) {
	m := run(t, map[string]string{"autoscaling": `{"minReplicas":"2","maxReplicas":"5","cpuUtilization":"60"}`, "monitoring": monitoringOn})
	if got := m.Get(t, tDeployment, "registry").Lookup("spec", "replicas"); got != nil {
		t.Errorf("Deployment replicas = %v, want none", got)
	}
	hpa := m.Get(t, tHPA, "registry")
	if hpa.Lookup("spec", "minReplicas") != 2.0 || hpa.Lookup("spec", "maxReplicas") != 5.0 {
		t.Errorf("HPA %v", hpa.Lookup("spec"))
	}
	if n := len(m.OfType(tPDB)); n != 1 {
		t.Errorf("%d PDBs, want 1", n)
	}
	if !strings.Contains(fmt.Sprint(m.Get(t, tPrometheusRule, "registry-alerts").Lookup("spec", "groups")), "RegistryAutoscalerAtMax") {
		t.Error("no autoscaler alert with the HPA")
	}
	plain, _ := outputsOf(t, map[string]string{"autoscaling": `{}`})
	if plain["autoscalerName"] != "registry" {
		t.Errorf("autoscalerName = %q", plain["autoscalerName"])
	}
}

func TestAutoscalingWithReplicasIsRefused(t *testing.T) {
	m, err := testutil.Run(t, map[string]string{"autoscaling": `{}`, "replicas": "3"}, program(nil))
	if err == nil || !strings.Contains(err.Error(), `config "replicas"`) {
		t.Fatalf("err = %v, want replicas refused beside autoscaling", err)
	}
	if n := len(m.Resources()); n != 0 {
		t.Errorf("%d resources registered", n)
	}
}
