package main

import (
	"fmt"
	"strings"
	"testing"
)

// podTemplateMeta returns each workload's pod spec and pod template metadata, keyed as podTemplates.
func podTemplateMeta(t *testing.T, config map[string]string) (map[string]map[string]any, map[string]map[string]any) {
	t.Helper()
	m := run(t, config)
	meta := map[string]map[string]any{}
	for k, tm := range podTemplates(t, m) {
		meta[k], _ = tm["metadata"].(map[string]any)
	}
	return podSpecs(t, m), meta
}

// Every pod of the stack gets its workload's placement: all, overridden per workload; GC takes
// the registry's scheduling (it must reach the registry's node) but not its pod metadata.
func TestPlacementReachesEveryPod(t *testing.T) {
	specs, meta := podTemplateMeta(t, mirrorConfig(map[string]string{
		"placement": `{"all":{"imagePullSecrets":["pull-creds"],"podAnnotations":{"team":"platform"}},` +
			`"registry":{"tolerations":[{"key":"dedicated","operator":"Equal","value":"infra","effect":"NoSchedule"}],"nodeSelector":{"pool":"infra"},` +
			`"podAnnotations":{"sidecar.istio.io/inject":"true"},"priorityClassName":"registry-critical"},` +
			`"cache":{"priorityClassName":"cache-low"},"gc":{"podLabels":{"cost-center":"gc"}}}`,
		"registry.env": `{"HTTPS_PROXY":"http://proxy:3128"}`,
	}))
	if len(specs) != 6 {
		t.Fatalf("%d workloads, want 6 (registry, 2 mirrors, redis, GC, watchdog): %v", len(specs), keys(specs))
	}
	for name, spec := range specs {
		s := fmt.Sprint(spec)
		if !strings.Contains(fmt.Sprint(spec["imagePullSecrets"]), "pull-creds") {
			t.Errorf("%s: no image pull secret from placement.all: %v", name, spec["imagePullSecrets"])
		}
		if fmt.Sprint(meta[name]["annotations"]) == "" || !strings.Contains(fmt.Sprint(meta[name]["annotations"]), "team:platform") {
			t.Errorf("%s: no pod annotation from placement.all: %v", name, meta[name]["annotations"])
		}
		isRegistry := name == tDeployment+"/registry"
		isGC := strings.HasPrefix(name, tCronJob+"/")
		if got := strings.Contains(s, "dedicated"); got != (isRegistry || isGC) {
			t.Errorf("%s: registry's toleration present = %v, want %v", name, got, isRegistry || isGC)
		}
		if got := strings.Contains(fmt.Sprint(meta[name]["annotations"]), "sidecar.istio.io/inject"); got != isRegistry {
			t.Errorf("%s: registry's sidecar annotation present = %v, want only on the registry (a Job with a sidecar never completes)", name, got)
		}
		if got := strings.Contains(fmt.Sprint(meta[name]["labels"]), "cost-center"); got != isGC {
			t.Errorf("%s: GC's pod label present = %v, want %v", name, got, isGC)
		}
		want := map[bool]string{true: "registry-critical"}[isRegistry || isGC]
		if name == tDeployment+"/registry-redis" {
			want = "cache-low"
		}
		if got, _ := spec["priorityClassName"].(string); got != want {
			t.Errorf("%s: priorityClassName %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"registry", "registry-mirror-dockerhub", "registry-mirror-ghcr"} {
		if !strings.Contains(fmt.Sprint(specs[tDeployment+"/"+name]["containers"]), "HTTPS_PROXY") {
			t.Errorf("%s: no registry.env", name)
		}
	}
	if !strings.Contains(fmt.Sprint(specs[tCronJob+"/registry-gc"]["initContainers"]), "HTTPS_PROXY") {
		t.Error("GC's collector lacks registry.env: it reaches the same store")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
