package redis

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/placement"
)

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func runCache(t *testing.T, p *placement.Spec) (*testutil.Mocks, error) {
	t.Helper()
	return testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewRedis(ctx, "cache", complete(RedisArgs{Placement: p}))
		return err
	})
}

func TestPlacementReachesThePod(t *testing.T) {
	m, err := runCache(t, &placement.Spec{
		NodeSelector: map[string]string{"node-pool": "cache"},
		Tolerations:  []placement.Toleration{{Key: "spot", Operator: "Exists"}},
		Affinity: &placement.Affinity{
			NodeAffinity: &placement.NodeAffinity{Preferred: []placement.PreferredSchedulingTerm{{Weight: 20, Preference: placement.NodeSelectorTerm{
				MatchExpressions: []placement.NodeSelectorRequirement{{Key: "memory", Operator: "In", Values: []string{"high"}}},
			}}}},
			PodAntiAffinity: &placement.PodAffinity{Preferred: []placement.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: placement.PodAffinityTerm{
				TopologyKey: "kubernetes.io/hostname", LabelSelector: &placement.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			}}}},
		},
		PriorityClassName: "cache",
		PodAnnotations:    map[string]string{"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
		PodLabels:         map[string]string{"team": "platform"},
		ImagePullSecrets:  []string{"corp-pull"},
	})
	if err != nil {
		t.Fatal(err)
	}
	dep := m.Get(t, tDeployment, "cache")
	for _, e := range []struct {
		path []any
		want string
	}{
		{[]any{"spec", "nodeSelector"}, `{"node-pool":"cache"}`},
		{[]any{"spec", "tolerations"}, `[{"key":"spot","operator":"Exists"}]`},
		{[]any{"spec", "priorityClassName"}, `"cache"`},
		{[]any{"spec", "imagePullSecrets"}, `[{"name":"corp-pull"}]`},
		{[]any{"spec", "affinity"}, `{"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"preference":{"matchExpressions":[{"key":"memory","operator":"In","values":["high"]}]},"weight":20}]},` +
			`"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"podAffinityTerm":{"labelSelector":{"matchLabels":{"app":"db"}},"topologyKey":"kubernetes.io/hostname"},"weight":100}]}}`},
		{[]any{"metadata", "labels", "team"}, `"platform"`},
		{[]any{"metadata", "annotations", "cluster-autoscaler.kubernetes.io/safe-to-evict"}, `"true"`},
	} {
		if got := jsonOf(dep.Lookup(append([]any{"spec", "template"}, e.path...)...)); got != e.want {
			t.Errorf("pod template %v =\n%s\nwant\n%s", e.path, got, e.want)
		}
	}
	for k, v := range PodLabels("cache") {
		if got := dep.String("spec", "template", "metadata", "labels", k); got != v {
			t.Errorf("pod label %s = %q, want the stack's %q", k, got, v)
		}
	}
	if dep.String("spec", "template", "metadata", "annotations", kube.ChecksumAnnotation) == "" {
		t.Error("the checksum annotation is gone")
	}
	if got := jsonOf(dep.Lookup("spec", "selector", "matchLabels")); got != jsonOf(testutil.AnyMap(kube.Selector("redis", "cache"))) {
		t.Errorf("Deployment selector = %s, want the stack's alone", got)
	}
}

func TestInvalidPlacementRegistersNothing(t *testing.T) {
	m, err := runCache(t, &placement.Spec{Tolerations: []placement.Toleration{{Key: "spot", Effect: "NoSchedul"}}})
	if err == nil || !strings.Contains(err.Error(), `redis: placement.tolerations[0].effect: "NoSchedul" is not allowed`) {
		t.Errorf("error = %v, want the effect refused with its path", err)
	}
	if n := len(m.Resources()); n != 0 {
		t.Errorf("%d resources registered before the args were rejected", n)
	}
}

// No placement, no trace of one: the pod is as the stack alone makes it.
func TestNoPlacementAddsNothing(t *testing.T) {
	m, err := runCache(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := m.Get(t, tDeployment, "cache").Lookup("spec", "template").(map[string]any)
	spec, meta := tmpl["spec"].(map[string]any), tmpl["metadata"].(map[string]any)
	for _, f := range []string{"affinity", "nodeSelector", "tolerations", "priorityClassName", "imagePullSecrets"} {
		if v, ok := spec[f]; ok {
			t.Errorf("spec.%s = %v without a placement", f, v)
		}
	}
	if got, want := jsonOf(meta["labels"]), jsonOf(testutil.AnyMap(PodLabels("cache"))); got != want {
		t.Errorf("pod labels = %s, want %s", got, want)
	}
	if annotations := meta["annotations"].(map[string]any); len(annotations) != 1 {
		t.Errorf("pod annotations = %v, want the checksum alone", annotations)
	}
}
