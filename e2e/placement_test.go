//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/regstack/registry-stack/e2e/kit"
)

// podFacts is what the placement step reads of a running pod or a pod template.
type podFacts struct {
	Metadata struct {
		Name        string            `json:"name"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		PriorityClassName string            `json:"priorityClassName"`
		Priority          *int              `json:"priority"`
		NodeSelector      map[string]string `json:"nodeSelector"`
		Tolerations       []struct {
			Key string `json:"key"`
		} `json:"tolerations"`
		ImagePullSecrets []struct {
			Name string `json:"name"`
		} `json:"imagePullSecrets"`
		Affinity *struct {
			NodeAffinity json.RawMessage `json:"nodeAffinity"`
			PodAffinity  json.RawMessage `json:"podAffinity"`
		} `json:"affinity"`
		Containers     []container `json:"containers"`
		InitContainers []container `json:"initContainers"`
	} `json:"spec"`
	Status struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

type container struct {
	Name string `json:"name"`
	Env  []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"env"`
}

func (p podFacts) env(containerName, name string) string {
	for _, c := range append(p.Spec.Containers, p.Spec.InitContainers...) {
		if c.Name != containerName {
			continue
		}
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
	}
	return ""
}

func (p podFacts) tolerates(key string) bool {
	return slices.ContainsFunc(p.Spec.Tolerations, func(t struct {
		Key string `json:"key"`
	}) bool {
		return t.Key == key
	})
}

func (p podFacts) pullSecret() string {
	if len(p.Spec.ImagePullSecrets) == 0 {
		return ""
	}
	return p.Spec.ImagePullSecrets[0].Name
}

// stepPlacement sets placement and registry.env on the running stack, with a PriorityClass and a
// pull Secret as fixtures: the registry's pods run with its priority (the scheduler resolved the
// class), node selector, toleration and node affinity beside the stack's own co-location rule, every
// pod of the stack has the pull Secret and the annotation of placement.all, Redis has its own label
// and not the registry's priority, GC's templates take the registry's scheduling and their own
// label, the registry and GC's collector have registry.env; the registry still serves. The GC steps
// after this one run with it.
func (f *fixture) stepPlacement(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	class := f.Settings.Namespace // cluster-scoped: named after this run's namespace
	fixtures := fmt.Sprintf(`apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: %[1]s}
value: 1000
description: registry-stack e2e placement
---
apiVersion: v1
kind: Secret
metadata: {name: e2e-pull, namespace: %[1]s}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths":{"mirror.example.invalid":{"auth":"ZTJlOmUyZQ=="}}}'
`, class)
	path := filepath.Join(f.Settings.WorkDir, "placement-fixtures.yaml")
	if err := os.WriteFile(path, []byte(fixtures), 0o600); err != nil {
		t.Fatal(err)
	}
	f.ClusterFixtures = append(f.ClusterFixtures, "priorityclass/"+class)
	if _, err := f.Kube.Run(ctx, false, "apply", "-f", path); err != nil {
		t.Fatal(err)
	}
	const toleration, annotation, cacheLabel, gcLabel = "e2e.regstack.io/dedicated", "e2e.regstack.io/placed", "e2e.regstack.io/cache", "e2e.regstack.io/gc"
	placement := fmt.Sprintf(`{"all":{"imagePullSecrets":["e2e-pull"],"podAnnotations":{%[2]q:"yes"}},`+
		`"registry":{"priorityClassName":%[1]q,"nodeSelector":{"kubernetes.io/os":"linux"},`+
		`"tolerations":[{"key":%[3]q,"operator":"Exists","effect":"NoSchedule"}],`+
		`"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/os","operator":"In","values":["linux"]}]}]}}}},`+
		`"cache":{"podLabels":{%[4]q:"yes"}},"gc":{"podLabels":{%[5]q:"yes"}}}`, class, annotation, toleration, cacheLabel, gcLabel)
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"placement": placement, "registry.env": `{"NO_PROXY":".svc,.cluster.local"}`}); err != nil {
		t.Fatal(err)
	}
	ops, err := f.TimedUp(ctx, "pulumi up (placement)", "up-placement")
	if err != nil {
		t.Fatalf("%v\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	checkInPlace(t, "up", ops)
	if err := f.Timed("wait Ready (placed)", func() (string, error) { return "", f.WaitReady(ctx, 2) }); err != nil {
		t.Fatalf("%v\nevents:\n%s", err, f.Kube.Events(ctx))
	}

	pods := func(selector string) []podFacts {
		var list struct {
			Items []podFacts `json:"items"`
		}
		if err := f.Kube.GetJSON(ctx, true, &list, "pods", "-l", selector, "--field-selector", "status.phase=Running"); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	registryPods := pods(kit.RegistryPodSelector + ",app.kubernetes.io/instance=" + f.Out.DeploymentName)
	if len(registryPods) < 2 {
		t.Fatalf("%d running registry pods, want 2", len(registryPods))
	}
	for _, p := range registryPods {
		switch {
		case p.Spec.PriorityClassName != class || p.Spec.Priority == nil || *p.Spec.Priority != 1000:
			t.Errorf("registry pod %s: priority class %q priority %v, want %s = 1000", p.Metadata.Name, p.Spec.PriorityClassName, p.Spec.Priority, class)
		case p.Spec.NodeSelector["kubernetes.io/os"] != "linux" || !p.tolerates(toleration):
			t.Errorf("registry pod %s: node selector %v, tolerations %v", p.Metadata.Name, p.Spec.NodeSelector, p.Spec.Tolerations)
		case p.Spec.Affinity == nil || len(p.Spec.Affinity.NodeAffinity) == 0 || len(p.Spec.Affinity.PodAffinity) == 0:
			t.Errorf("registry pod %s: affinity %+v, want the user's node affinity beside the stack's pod co-location (ReadWriteOnce)", p.Metadata.Name, p.Spec.Affinity)
		case p.pullSecret() != "e2e-pull" || p.Metadata.Annotations[annotation] != "yes":
			t.Errorf("registry pod %s: pull secrets %v, annotations %v", p.Metadata.Name, p.Spec.ImagePullSecrets, p.Metadata.Annotations)
		case p.env("registry", "NO_PROXY") != ".svc,.cluster.local":
			t.Errorf("registry pod %s: NO_PROXY %q", p.Metadata.Name, p.env("registry", "NO_PROXY"))
		}
	}
	for _, p := range pods(kit.RedisPodSelector) {
		if p.Metadata.Labels[cacheLabel] != "yes" || p.Metadata.Annotations[annotation] != "yes" || p.pullSecret() != "e2e-pull" || p.Spec.PriorityClassName != "" {
			t.Errorf("redis pod %s: labels %v, annotations %v, pull secrets %v, priority class %q (want placement.cache and all, not the registry's)",
				p.Metadata.Name, p.Metadata.Labels, p.Metadata.Annotations, p.Spec.ImagePullSecrets, p.Spec.PriorityClassName)
		}
	}
	for _, cj := range []string{f.Out.GCCronJobName, f.Out.GCWatchdogCronJobName} {
		var tmpl struct {
			Spec struct {
				JobTemplate struct {
					Spec struct {
						Template podFacts `json:"template"`
					} `json:"spec"`
				} `json:"jobTemplate"`
			} `json:"spec"`
		}
		if err := f.Kube.GetJSON(ctx, true, &tmpl, "cronjob", cj); err != nil {
			t.Fatal(err)
		}
		p := tmpl.Spec.JobTemplate.Spec.Template
		if p.Spec.PriorityClassName != class || !p.tolerates(toleration) || p.pullSecret() != "e2e-pull" || p.Metadata.Labels[gcLabel] != "yes" {
			t.Errorf("cronjob %s: priority class %q, tolerations %v, pull secrets %v, labels %v (want the registry's scheduling and placement.gc)",
				cj, p.Spec.PriorityClassName, p.Spec.Tolerations, p.Spec.ImagePullSecrets, p.Metadata.Labels)
		}
		if cj == f.Out.GCCronJobName && p.env("garbage-collect", "NO_PROXY") == "" {
			t.Errorf("cronjob %s: the collector lacks registry.env (it reaches the same store)", cj)
		}
	}
	if code, err := f.Client.Ping(ctx, false, f.Out.Username, f.Out.Password); err != nil || code != 200 {
		t.Errorf("registry after placement: HTTP %d, %v", code, err)
	}
	t.Logf("placed: %d registry pods (priority %s), redis, GC and watchdog templates", len(registryPods), class)
}
