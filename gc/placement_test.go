package gc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/placement"
	"github.com/regstack/registry-stack/registry"
)

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// The placement reaches every pod GC runs: the GC Job's and the watchdog's. The GC pod keeps its
// own co-location with the registry (ReadWriteOnce) beside the user's terms; the watchdog, which
// mounts no volume, has the user's alone.
func TestPlacementReachesEveryPod(t *testing.T) {
	a := gcArgs(true)
	a.Placement = &placement.Spec{
		NodeSelector: map[string]string{"node-pool": "system"},
		Tolerations:  []placement.Toleration{{Key: "dedicated", Operator: "Exists", Effect: "NoSchedule"}},
		Affinity: &placement.Affinity{
			NodeAffinity: &placement.NodeAffinity{Required: &placement.NodeSelector{NodeSelectorTerms: []placement.NodeSelectorTerm{{
				MatchExpressions: []placement.NodeSelectorRequirement{{Key: "kubernetes.io/os", Operator: "In", Values: []string{"linux"}}},
			}}}},
			PodAffinity: &placement.PodAffinity{Required: []placement.PodAffinityTerm{{
				TopologyKey: "topology.kubernetes.io/zone", LabelSelector: &placement.LabelSelector{MatchLabels: map[string]string{"app": "ingress"}},
			}}},
		},
		PriorityClassName: "maintenance",
		PodAnnotations:    map[string]string{"sidecar.istio.io/inject": "false"},
		PodLabels:         map[string]string{"team": "platform"},
		ImagePullSecrets:  []string{"corp-pull"},
	}
	m := runGC(t, a)
	userTerm := `{"labelSelector":{"matchLabels":{"app":"ingress"}},"topologyKey":"topology.kubernetes.io/zone"}`
	for _, c := range []struct {
		cronJob  string
		labels   map[string]string
		required string
	}{
		{gcName, PodLabels(gcName), `[{"labelSelector":{"matchLabels":` + jsonOf(registrySelector) + `},"topologyKey":"kubernetes.io/hostname"},` + userTerm + `]`},
		{watchdogName, WatchdogPodLabels(gcName), `[` + userTerm + `]`},
	} {
		tmpl := []any{"spec", "jobTemplate", "spec", "template"}
		cron := m.Get(t, tCronJob, c.cronJob)
		pod := func(path ...any) string { return jsonOf(cron.Lookup(append(append([]any{}, tmpl...), path...)...)) }
		for _, e := range []struct {
			path []any
			want string
		}{
			{[]any{"spec", "nodeSelector"}, `{"node-pool":"system"}`},
			{[]any{"spec", "tolerations"}, `[{"effect":"NoSchedule","key":"dedicated","operator":"Exists"}]`},
			{[]any{"spec", "priorityClassName"}, `"maintenance"`},
			{[]any{"spec", "imagePullSecrets"}, `[{"name":"corp-pull"}]`},
			{[]any{"spec", "affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution"}, c.required},
			{[]any{"spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"},
				`{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/os","operator":"In","values":["linux"]}]}]}`},
			{[]any{"metadata", "annotations"}, `{"sidecar.istio.io/inject":"false"}`},
			{[]any{"metadata", "labels", "team"}, `"platform"`},
		} {
			if got := pod(e.path...); got != e.want {
				t.Errorf("%s pod %v =\n%s\nwant\n%s", c.cronJob, e.path, got, e.want)
			}
		}
		// The stack's labels stay: the Redis NetworkPolicy admits GC by them.
		for k, v := range c.labels {
			if got := cron.String(append(append([]any{}, tmpl...), "metadata", "labels", k)...); got != v {
				t.Errorf("%s pod label %s = %q, want the stack's %q", c.cronJob, k, got, v)
			}
		}
	}
}

// GC's scripts set and remove ModeLabel on the registry's pods: a placement may not set it.
func TestModeLabelIsNotAPlacementLabel(t *testing.T) {
	errs := (&placement.Spec{PodLabels: map[string]string{ModeLabel: ReadOnlyMode}}).Validate("placement.registry")
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "set and removed by the stack's GC scripts") {
		t.Errorf("Validate = %v, want the mode label refused", errs)
	}
}

func TestInvalidPlacementRegistersNothing(t *testing.T) {
	a := gcArgs(false)
	a.Placement = &placement.Spec{PriorityClassName: "Urgent!"}
	m, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewGC(ctx, gcName, a)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), `gc: placement.priorityClassName: "Urgent!" is invalid`) {
		t.Errorf("error = %v, want the priority class refused with its path", err)
	}
	if n := len(m.Resources()); n != 0 {
		t.Errorf("%d resources registered before the args were rejected", n)
	}
}

// No placement, no trace of one: the pods are as the stack alone makes them.
func TestNoPlacementAddsNothing(t *testing.T) {
	m := runGC(t, gcArgs(true))
	for name, c := range map[string]struct {
		affinity string
		labels   map[string]string
	}{
		gcName:       {`{"podAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[{"labelSelector":{"matchLabels":` + jsonOf(registrySelector) + `},"topologyKey":"kubernetes.io/hostname"}]}}`, PodLabels(gcName)},
		watchdogName: {`null`, WatchdogPodLabels(gcName)},
	} {
		tmpl := m.Get(t, tCronJob, name).Lookup("spec", "jobTemplate", "spec", "template").(map[string]any)
		spec, meta := tmpl["spec"].(map[string]any), tmpl["metadata"].(map[string]any)
		if got := jsonOf(spec["affinity"]); got != c.affinity {
			t.Errorf("%s: affinity = %s, want the stack's alone: %s", name, got, c.affinity)
		}
		for _, f := range []string{"nodeSelector", "tolerations", "priorityClassName", "imagePullSecrets"} {
			if v, ok := spec[f]; ok {
				t.Errorf("%s: spec.%s = %v without a placement", name, f, v)
			}
		}
		if got, want := jsonOf(meta), jsonOf(map[string]any{"labels": testutil.AnyMap(c.labels)}); got != want {
			t.Errorf("%s: pod metadata = %s, want %s", name, got, want)
		}
	}
}

// The collector gets the registry's extra environment: the names it sets itself are refused there,
// above all FENCE_SECONDS (the lease fence), and NewGC registers nothing with one of them.
func TestExtraEnvCannotOverrideTheCollector(t *testing.T) {
	env := []registry.EnvVar{{Name: "HTTPS_PROXY", Value: "http://proxy:3128"}, {Name: "FENCE_SECONDS", Value: "999999"}, {Name: "STATUS_DIR", Value: "/tmp"}}
	errs := ValidateExtraEnv("extraEnv", false, env)
	if len(errs) != 2 || !strings.Contains(errors.Join(errs...).Error(), `extraEnv[1].name: "FENCE_SECONDS" is refused`) {
		t.Errorf("errors %v, want FENCE_SECONDS and STATUS_DIR refused, HTTPS_PROXY allowed", errs)
	}
	a := gcArgs(false)
	a.ExtraEnv = env
	m, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewGC(ctx, gcName, a)
		return err
	})
	if err == nil || len(m.Resources()) != 0 {
		t.Errorf("NewGC with FENCE_SECONDS in ExtraEnv: %v, %d resources", err, len(m.Resources()))
	}
	a.ExtraEnv = env[:1]
	cron := runGC(t, a).Get(t, tCronJob, gcName)
	if !strings.Contains(fmt.Sprint(cron.Lookup("spec", "jobTemplate", "spec", "template", "spec", "initContainers")), "HTTPS_PROXY") {
		t.Error("the collector lacks the registry's extra environment")
	}
}
