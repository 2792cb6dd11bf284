package placement

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/internal/testutil"
)

func ptr[T any](v T) *T { return &v }

// fullPlacement sets every field, validly.
func fullPlacement() *Spec {
	return &Spec{
		NodeSelector: map[string]string{"node-pool": "registry"},
		Tolerations: []Toleration{
			{Key: "dedicated", Operator: "Equal", Value: "registry", Effect: "NoSchedule"},
			{Key: "node.kubernetes.io/unreachable", Operator: "Exists", Effect: "NoExecute", TolerationSeconds: ptr(30)},
			{Operator: "Exists"},
		},
		Affinity: &Affinity{
			NodeAffinity: &NodeAffinity{
				Required: &NodeSelector{NodeSelectorTerms: []NodeSelectorTerm{{
					MatchExpressions: []NodeSelectorRequirement{{Key: "kubernetes.io/arch", Operator: "In", Values: []string{"amd64", "arm64"}}},
				}}},
				Preferred: []PreferredSchedulingTerm{{Weight: 50, Preference: NodeSelectorTerm{
					MatchExpressions: []NodeSelectorRequirement{{Key: "disk", Operator: "Gt", Values: []string{"100"}}},
					MatchFields:      []NodeSelectorRequirement{{Key: "metadata.name", Operator: "NotIn", Values: []string{"node-a"}}},
				}}},
			},
			PodAffinity: &PodAffinity{Preferred: []WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: PodAffinityTerm{
				TopologyKey: "topology.kubernetes.io/zone", Namespaces: []string{"ingress"},
				LabelSelector: &LabelSelector{MatchExpressions: []LabelSelectorRequirement{{Key: "app", Operator: "Exists"}}},
			}}}},
			PodAntiAffinity: &PodAffinity{Required: []PodAffinityTerm{{
				TopologyKey: "kubernetes.io/hostname", LabelSelector: &LabelSelector{MatchLabels: map[string]string{"app": "noisy"}},
			}}},
		},
		PriorityClassName: "registry-critical",
		PodAnnotations:    map[string]string{"prometheus.io/scrape": "true", "Example.com/Owner": "platform team"},
		PodLabels:         map[string]string{"team": "platform", "cost-center": "42"},
		ImagePullSecrets:  []string{"mirror-pull", "corp.pull-secret"},
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		p    *Spec
		// want: one substring per expected error, in order; none means valid.
		want []string
	}{
		{"nil", nil, nil},
		{"empty", &Spec{}, nil},
		{"every field set", fullPlacement(), nil},
		{"node selector", &Spec{NodeSelector: map[string]string{"bad key": "x", "ok": "bad value!"}}, []string{
			`placement.registry.nodeSelector["bad key"]: "bad key" is invalid`,
			`placement.registry.nodeSelector["ok"]: "bad value!" is invalid`,
		}},
		{"tolerations", &Spec{Tolerations: []Toleration{
			{Key: "k", Effect: "NoScheduel"},
			{Key: "k", Operator: "Exists", Value: "v"},
			{Key: "k", Operator: "Like"},
			{Value: "v"},
			{Key: "k", Operator: "Exists", Effect: "NoSchedule", TolerationSeconds: ptr(10)},
			{Key: "k", Operator: "Exists", Effect: "NoExecute", TolerationSeconds: ptr(-1)},
		}}, []string{
			`placement.registry.tolerations[0].effect: "NoScheduel" is not allowed: want NoSchedule, PreferNoSchedule, NoExecute or empty`,
			`placement.registry.tolerations[1].value: "v" is not allowed with operator Exists`,
			`placement.registry.tolerations[2].operator: "Like" is not allowed: want Exists, Equal or empty`,
			`placement.registry.tolerations[3].operator: "" with an empty key is not allowed`,
			`placement.registry.tolerations[4].tolerationSeconds: 10 is not allowed with effect "NoSchedule"`,
			`placement.registry.tolerations[5].tolerationSeconds: -1 is not allowed: want 0 or more`,
		}},
		{"priority class", &Spec{PriorityClassName: "High_Priority"}, []string{
			`placement.registry.priorityClassName: "High_Priority" is invalid`,
		}},
		{"pull secrets", &Spec{ImagePullSecrets: []string{"ok", "Not OK"}}, []string{
			`placement.registry.imagePullSecrets[1]: "Not OK" is invalid`,
		}},
		{"annotations", &Spec{PodAnnotations: map[string]string{kube.ChecksumAnnotation: "x", "a b": "x"}}, []string{
			`placement.registry.podAnnotations["a b"]: "a b" is invalid`,
			`placement.registry.podAnnotations["checksum/config"]: "checksum/config" is the stack's own annotation`,
		}},
		// The stack's selector labels: another value would detach the pods from their Deployment,
		// Service and NetworkPolicy; refused, never ignored.
		{"reserved labels", &Spec{PodLabels: map[string]string{
			"app.kubernetes.io/name": "other", "app.kubernetes.io/version": "1", kube.StackLabelPrefix + "maintenance": "read-only",
			"pod-template-hash": "x", "job-name": "x", "batch.kubernetes.io/job-name": "x",
		}}, []string{
			`placement.registry.podLabels["app.kubernetes.io/name"]: "app.kubernetes.io/name" cannot be set: app.kubernetes.io/* are the stack's own labels`,
			`placement.registry.podLabels["app.kubernetes.io/version"]: "app.kubernetes.io/version" cannot be set`,
			`placement.registry.podLabels["batch.kubernetes.io/job-name"]: "batch.kubernetes.io/job-name" cannot be set: the Job controller`,
			`placement.registry.podLabels["job-name"]: "job-name" cannot be set: the Job controller`,
			`placement.registry.podLabels["pod-template-hash"]: "pod-template-hash" cannot be set: the Deployment controller`,
			`placement.registry.podLabels["registry-stack.io/maintenance"]: "registry-stack.io/maintenance" cannot be set`,
		}},
		{"label value", &Spec{PodLabels: map[string]string{"team": strings.Repeat("x", 64)}}, []string{
			`placement.registry.podLabels["team"]: "xxxx`,
		}},
		{"node affinity", &Spec{Affinity: &Affinity{NodeAffinity: &NodeAffinity{
			Required: &NodeSelector{NodeSelectorTerms: []NodeSelectorTerm{
				{},
				{MatchExpressions: []NodeSelectorRequirement{
					{Key: "zone", Operator: "In"},
					{Key: "zone", Operator: "Exists", Values: []string{"a"}},
					{Key: "cpu", Operator: "Gt", Values: []string{"many"}},
					{Key: "cpu", Operator: "Lt", Values: []string{"1", "2"}},
					{Key: "cpu", Operator: "Equals", Values: []string{"1"}},
				}},
				{MatchFields: []NodeSelectorRequirement{{Key: "metadata.labels", Operator: "In", Values: []string{"a", "b"}}}},
			}},
			Preferred: []PreferredSchedulingTerm{{Weight: 0, Preference: NodeSelectorTerm{
				MatchExpressions: []NodeSelectorRequirement{{Key: "ssd", Operator: "Exists"}},
			}}},
		}}}, []string{
			`placement.registry.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]: {} is not allowed`,
			`nodeSelectorTerms[1].matchExpressions[0].values: [] is not allowed with operator In`,
			`nodeSelectorTerms[1].matchExpressions[1].values: ["a"] is not allowed with operator Exists`,
			`nodeSelectorTerms[1].matchExpressions[2].values[0]: "many" is not allowed with operator Gt: want an integer`,
			`nodeSelectorTerms[1].matchExpressions[3].values: ["1" "2"] is not allowed with operator Lt: want exactly one integer`,
			`nodeSelectorTerms[1].matchExpressions[4].operator: "Equals" is not allowed: want one of In, NotIn, Exists, DoesNotExist, Gt, Lt`,
			`nodeSelectorTerms[2].matchFields[0].key: "metadata.labels" is not allowed: want metadata.name`,
			`nodeSelectorTerms[2].matchFields[0].values: ["a" "b"] is not allowed: want exactly one node name`,
			`placement.registry.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: 0 is not allowed: want 1 to 100`,
		}},
		{"no node selector terms", &Spec{Affinity: &Affinity{NodeAffinity: &NodeAffinity{Required: &NodeSelector{}}}}, []string{
			`nodeSelectorTerms: [] is not allowed: want at least one term`,
		}},
		{"pod affinity", &Spec{Affinity: &Affinity{
			PodAffinity: &PodAffinity{Required: []PodAffinityTerm{
				{LabelSelector: &LabelSelector{MatchLabels: map[string]string{"app": "x"}}},
				{TopologyKey: "kubernetes.io/hostname"},
				{TopologyKey: "zone", Namespaces: []string{"Bad_NS"}, LabelSelector: &LabelSelector{
					MatchExpressions: []LabelSelectorRequirement{{Key: "app", Operator: "Gt", Values: []string{"1"}}},
				}},
			}},
			PodAntiAffinity: &PodAffinity{Preferred: []WeightedPodAffinityTerm{{Weight: 101, PodAffinityTerm: PodAffinityTerm{
				TopologyKey: "kubernetes.io/hostname", LabelSelector: &LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			}}}},
		}}, []string{
			`placement.registry.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: "" is not allowed`,
			`placement.registry.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[1].labelSelector: none is not allowed`,
			`placement.registry.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[2].namespaces[0]: "Bad_NS" is invalid`,
			`requiredDuringSchedulingIgnoredDuringExecution[2].labelSelector.matchExpressions[0].operator: "Gt" is not allowed: want one of In, NotIn, Exists, DoesNotExist`,
			`placement.registry.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: 101 is not allowed: want 1 to 100`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			errs := c.p.Validate("placement.registry")
			if len(errs) != len(c.want) {
				t.Fatalf("Validate = %d errors, want %d:\n%s", len(errs), len(c.want), lines(errs))
			}
			for i, w := range c.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
				}
			}
		})
	}
}

func lines(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintln(&b, e)
	}
	return b.String()
}

// Spec decodes from config in the Kubernetes field names: a pod spec's affinity pastes in.
func TestPlacementDecodesKubernetesFieldNames(t *testing.T) {
	raw := `{"nodeSelector":{"pool":"a"},"tolerations":[{"key":"k","operator":"Exists","effect":"NoExecute","tolerationSeconds":5}],
	"affinity":{"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":10,"podAffinityTerm":{
	"labelSelector":{"matchLabels":{"app":"x"}},"topologyKey":"kubernetes.io/hostname"}}]},
	"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"a","operator":"In","values":["b"]}]}]}}},
	"priorityClassName":"high","podAnnotations":{"a":"b"},"podLabels":{"c":"d"},"imagePullSecrets":["pull"]}`
	var p Spec
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	want := Spec{
		NodeSelector: map[string]string{"pool": "a"},
		Tolerations:  []Toleration{{Key: "k", Operator: "Exists", Effect: "NoExecute", TolerationSeconds: ptr(5)}},
		Affinity: &Affinity{
			PodAntiAffinity: &PodAffinity{Preferred: []WeightedPodAffinityTerm{{Weight: 10, PodAffinityTerm: PodAffinityTerm{
				LabelSelector: &LabelSelector{MatchLabels: map[string]string{"app": "x"}}, TopologyKey: "kubernetes.io/hostname",
			}}}},
			NodeAffinity: &NodeAffinity{Required: &NodeSelector{NodeSelectorTerms: []NodeSelectorTerm{{
				MatchExpressions: []NodeSelectorRequirement{{Key: "a", Operator: "In", Values: []string{"b"}}},
			}}}},
		},
		PriorityClassName: "high", PodAnnotations: map[string]string{"a": "b"}, PodLabels: map[string]string{"c": "d"},
		ImagePullSecrets: []string{"pull"},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("decoded %+v, want %+v", p, want)
	}
}

func TestMerge(t *testing.T) {
	zone := &NodeAffinity{Required: &NodeSelector{NodeSelectorTerms: []NodeSelectorTerm{{
		MatchExpressions: []NodeSelectorRequirement{{Key: "zone", Operator: "In", Values: []string{"a"}}},
	}}}}
	spread := &PodAffinity{Preferred: []WeightedPodAffinityTerm{{Weight: 1, PodAffinityTerm: PodAffinityTerm{
		TopologyKey: "kubernetes.io/hostname", LabelSelector: &LabelSelector{MatchLabels: map[string]string{"a": "b"}},
	}}}}
	colocate := &PodAffinity{Required: []PodAffinityTerm{{
		TopologyKey: "kubernetes.io/hostname", LabelSelector: &LabelSelector{MatchLabels: map[string]string{"c": "d"}},
	}}}
	base := &Spec{
		NodeSelector:      map[string]string{"pool": "shared", "arch": "amd64"},
		Tolerations:       []Toleration{{Key: "shared", Operator: "Exists"}},
		Affinity:          &Affinity{NodeAffinity: zone, PodAntiAffinity: spread},
		PriorityClassName: "default-high",
		PodAnnotations:    map[string]string{"owner": "platform"},
		PodLabels:         map[string]string{"team": "platform", "tier": "infra"},
		ImagePullSecrets:  []string{"corp-pull"},
	}
	for _, c := range []struct {
		name           string
		base, override *Spec
		want           *Spec
	}{
		{"both nil", nil, nil, nil},
		{"nil override keeps base", base, nil, base},
		{"nil base takes override", nil, base, base},
		{"empty override keeps base", base, &Spec{}, base},
		{"maps: override's keys win, base's others stay", base, &Spec{
			NodeSelector:   map[string]string{"pool": "registry"},
			PodAnnotations: map[string]string{"backup": "no"},
			PodLabels:      map[string]string{"tier": "storage"},
		}, &Spec{
			NodeSelector:      map[string]string{"pool": "registry", "arch": "amd64"},
			Tolerations:       base.Tolerations,
			Affinity:          base.Affinity,
			PriorityClassName: "default-high",
			PodAnnotations:    map[string]string{"owner": "platform", "backup": "no"},
			PodLabels:         map[string]string{"team": "platform", "tier": "storage"},
			ImagePullSecrets:  []string{"corp-pull"},
		}},
		{"lists and scalars: override's replace base's", base, &Spec{
			Tolerations:       []Toleration{{Key: "registry", Operator: "Exists"}},
			PriorityClassName: "registry-critical",
			ImagePullSecrets:  []string{"mirror-pull"},
		}, &Spec{
			NodeSelector:      base.NodeSelector,
			Tolerations:       []Toleration{{Key: "registry", Operator: "Exists"}},
			Affinity:          base.Affinity,
			PriorityClassName: "registry-critical",
			PodAnnotations:    base.PodAnnotations,
			PodLabels:         base.PodLabels,
			ImagePullSecrets:  []string{"mirror-pull"},
		}},
		{"affinity: per kind", base, &Spec{Affinity: &Affinity{PodAffinity: colocate, PodAntiAffinity: spread}}, &Spec{
			NodeSelector: base.NodeSelector, Tolerations: base.Tolerations, PriorityClassName: "default-high",
			PodAnnotations: base.PodAnnotations, PodLabels: base.PodLabels, ImagePullSecrets: base.ImagePullSecrets,
			Affinity: &Affinity{NodeAffinity: zone, PodAffinity: colocate, PodAntiAffinity: spread},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, _ := json.Marshal(c.base)
			got := Merge(c.base, c.override)
			if !reflect.DeepEqual(got, c.want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(c.want)
				t.Errorf("Merge =\n%s\nwant\n%s", g, w)
			}
			if after, _ := json.Marshal(c.base); string(after) != string(before) {
				t.Errorf("Merge modified base: %s, was %s", after, before)
			}
		})
	}
	// The result is a new value: changing it leaves the arguments alone.
	got := Merge(base, nil)
	got.NodeSelector["pool"], got.Tolerations[0].Key = "changed", "changed"
	if base.NodeSelector["pool"] != "shared" || base.Tolerations[0].Key != "shared" {
		t.Error("the merged placement shares its maps or lists with base")
	}
}

// renderSpec registers a Pod with spec (and meta) under the mock engine.
func renderSpec(t *testing.T, spec *corev1.PodSpecArgs, meta *metav1.ObjectMetaArgs) testutil.Resource {
	t.Helper()
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		spec.Containers = corev1.ContainerArray{&corev1.ContainerArgs{Name: pulumi.String("c"), Image: pulumi.String("busybox")}}
		_, err := corev1.NewPod(ctx, "probe", &corev1.PodArgs{Metadata: meta, Spec: spec})
		return err
	})
	return m.Get(t, "kubernetes:core/v1:Pod", "probe")
}

// coLocate is the stack's own rule of a ReadWriteOnce volume (registry and GC pods).
var coLocate = &Affinity{PodAffinity: &PodAffinity{Required: []PodAffinityTerm{{
	TopologyKey: "kubernetes.io/hostname", LabelSelector: &LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "registry"}},
}}}}

func TestApplyPodSpec(t *testing.T) {
	spec := &corev1.PodSpecArgs{}
	if err := ApplyPodSpec(spec, coLocate, fullPlacement()); err != nil {
		t.Fatal(err)
	}
	pod := renderSpec(t, spec, nil)
	for _, c := range []struct {
		path []any
		want string
	}{
		{[]any{"nodeSelector"}, `{"node-pool":"registry"}`},
		{[]any{"tolerations"}, `[{"effect":"NoSchedule","key":"dedicated","operator":"Equal","value":"registry"},` +
			`{"effect":"NoExecute","key":"node.kubernetes.io/unreachable","operator":"Exists","tolerationSeconds":30},{"operator":"Exists"}]`},
		{[]any{"priorityClassName"}, `"registry-critical"`},
		{[]any{"imagePullSecrets"}, `[{"name":"mirror-pull"},{"name":"corp.pull-secret"}]`},
		// The stack's co-location first, the user's terms beside it: neither replaces the other.
		{[]any{"affinity", "podAffinity"}, `{"preferredDuringSchedulingIgnoredDuringExecution":[{"podAffinityTerm":{` +
			`"labelSelector":{"matchExpressions":[{"key":"app","operator":"Exists"}]},"namespaces":["ingress"],"topologyKey":"topology.kubernetes.io/zone"},"weight":100}],` +
			`"requiredDuringSchedulingIgnoredDuringExecution":[{"labelSelector":{"matchLabels":{"app.kubernetes.io/name":"registry"}},"topologyKey":"kubernetes.io/hostname"}]}`},
		{[]any{"affinity", "podAntiAffinity"}, `{"requiredDuringSchedulingIgnoredDuringExecution":[{"labelSelector":{"matchLabels":{"app":"noisy"}},"topologyKey":"kubernetes.io/hostname"}]}`},
		{[]any{"affinity", "nodeAffinity"}, `{"preferredDuringSchedulingIgnoredDuringExecution":[{"preference":{` +
			`"matchExpressions":[{"key":"disk","operator":"Gt","values":["100"]}],"matchFields":[{"key":"metadata.name","operator":"NotIn","values":["node-a"]}]},"weight":50}],` +
			`"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["amd64","arm64"]}]}]}}`},
	} {
		got, _ := json.Marshal(pod.Lookup(append([]any{"spec"}, c.path...)...))
		if string(got) != c.want {
			t.Errorf("spec %v =\n%s\nwant\n%s", c.path, got, c.want)
		}
	}
}

// Both the stack's and the user's required pod affinity terms hold (Kubernetes ANDs them), so
// the user's cannot take the pods away from the volume's node.
func TestApplyPodSpecAddsRequiredPodTerms(t *testing.T) {
	user := &Affinity{PodAffinity: &PodAffinity{Required: []PodAffinityTerm{{
		TopologyKey: "topology.kubernetes.io/zone", LabelSelector: &LabelSelector{MatchLabels: map[string]string{"app": "cache"}},
	}}}}
	spec := &corev1.PodSpecArgs{}
	if err := ApplyPodSpec(spec, coLocate, &Spec{Affinity: user}); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(renderSpec(t, spec, nil).Lookup("spec", "affinity"))
	want := `{"podAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[` +
		`{"labelSelector":{"matchLabels":{"app.kubernetes.io/name":"registry"}},"topologyKey":"kubernetes.io/hostname"},` +
		`{"labelSelector":{"matchLabels":{"app":"cache"}},"topologyKey":"topology.kubernetes.io/zone"}]}}`
	if string(got) != want {
		t.Errorf("affinity =\n%s\nwant\n%s", got, want)
	}
	if len(coLocate.PodAffinity.Required) != 1 || len(user.PodAffinity.Required) != 1 {
		t.Error("ApplyPodSpec modified the affinities it was given")
	}
}

// Required node selector terms are ORed by Kubernetes: the stack's and the user's are combined
// into terms that need both, never appended (a node meeting only the user's would pass).
func TestApplyPodSpecCombinesRequiredNodeTerms(t *testing.T) {
	req := func(key string, values ...string) NodeSelectorRequirement {
		return NodeSelectorRequirement{Key: key, Operator: "In", Values: values}
	}
	own := &Affinity{NodeAffinity: &NodeAffinity{Required: &NodeSelector{NodeSelectorTerms: []NodeSelectorTerm{
		{MatchExpressions: []NodeSelectorRequirement{req("zone", "a")}},
		{MatchExpressions: []NodeSelectorRequirement{req("zone", "b")}},
	}}}}
	user := &Affinity{NodeAffinity: &NodeAffinity{Required: &NodeSelector{NodeSelectorTerms: []NodeSelectorTerm{
		{MatchExpressions: []NodeSelectorRequirement{req("pool", "registry")}},
	}}}}
	spec := &corev1.PodSpecArgs{}
	if err := ApplyPodSpec(spec, own, &Spec{Affinity: user}); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(renderSpec(t, spec, nil).Lookup("spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"))
	want := `{"nodeSelectorTerms":[` +
		`{"matchExpressions":[{"key":"zone","operator":"In","values":["a"]},{"key":"pool","operator":"In","values":["registry"]}]},` +
		`{"matchExpressions":[{"key":"zone","operator":"In","values":["b"]},{"key":"pool","operator":"In","values":["registry"]}]}]}`
	if string(got) != want {
		t.Errorf("required node affinity =\n%s\nwant\n%s", got, want)
	}
}

func TestApplyPodSpecNilPlacement(t *testing.T) {
	// Nothing of its own, nothing added: the spec is untouched.
	spec := &corev1.PodSpecArgs{RestartPolicy: pulumi.String("Never")}
	if err := ApplyPodSpec(spec, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(spec, &corev1.PodSpecArgs{RestartPolicy: pulumi.String("Never")}) {
		t.Errorf("ApplyPodSpec(nil, nil) changed the spec: %#v", spec)
	}
	// The stack's own affinity alone, exactly as the components wrote it before Spec.
	spec = &corev1.PodSpecArgs{}
	if err := ApplyPodSpec(spec, coLocate, nil); err != nil {
		t.Fatal(err)
	}
	pod := renderSpec(t, spec, nil)
	got, _ := json.Marshal(pod.Lookup("spec", "affinity"))
	if want := `{"podAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[{"labelSelector":{"matchLabels":{"app.kubernetes.io/name":"registry"}},"topologyKey":"kubernetes.io/hostname"}]}}`; string(got) != want {
		t.Errorf("affinity = %s, want %s", got, want)
	}
	for _, f := range []string{"nodeSelector", "tolerations", "priorityClassName", "imagePullSecrets"} {
		if v := pod.Lookup("spec", f); v != nil {
			t.Errorf("spec.%s = %v with no placement, want it unset", f, v)
		}
	}
}

func TestApplyPodSpecRefusesToReplaceTheStacks(t *testing.T) {
	for _, c := range []struct {
		name string
		spec *corev1.PodSpecArgs
		p    *Spec
		want string
	}{
		{"affinity not given as own", &corev1.PodSpecArgs{Affinity: coLocate.args()}, nil, "must come as own"},
		{"node selector key with another value", &corev1.PodSpecArgs{NodeSelector: pulumi.StringMap{"pool": pulumi.String("registry")}},
			&Spec{NodeSelector: map[string]string{"pool": "other"}}, `nodeSelector["pool"]: the stack sets this key itself`},
		{"tolerations", &corev1.PodSpecArgs{Tolerations: corev1.TolerationArray{}},
			&Spec{Tolerations: []Toleration{{Operator: "Exists"}}}, "would replace them"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := ApplyPodSpec(c.spec, nil, c.p); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ApplyPodSpec = %v, want an error containing %q", err, c.want)
			}
		})
	}
	// The same key with the same value is no conflict.
	spec := &corev1.PodSpecArgs{NodeSelector: pulumi.StringMap{"pool": pulumi.String("registry")}}
	if err := ApplyPodSpec(spec, nil, &Spec{NodeSelector: map[string]string{"pool": "registry", "arch": "arm64"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(renderSpec(t, spec, nil).Lookup("spec", "nodeSelector"))
	if string(got) != `{"arch":"arm64","pool":"registry"}` {
		t.Errorf("nodeSelector = %s, want both keys", got)
	}
}

func TestApplyPodMetadata(t *testing.T) {
	stackLabels := pulumi.StringMap{"app.kubernetes.io/name": pulumi.String("registry")}
	checksum := pulumi.String("abc").ToStringOutput()
	meta := &metav1.ObjectMetaArgs{Labels: stackLabels, Annotations: pulumi.StringMap{kube.ChecksumAnnotation: checksum}}
	if err := ApplyPodMetadata(meta, fullPlacement()); err != nil {
		t.Fatal(err)
	}
	if len(stackLabels) != 1 {
		t.Errorf("the stack's label map, shared with other objects, was modified: %v", stackLabels)
	}
	pod := renderSpec(t, &corev1.PodSpecArgs{}, meta)
	for path, want := range map[string]string{
		"labels":      `{"app.kubernetes.io/name":"registry","cost-center":"42","team":"platform"}`,
		"annotations": `{"Example.com/Owner":"platform team","checksum/config":"abc","prometheus.io/scrape":"true"}`,
	} {
		if got, _ := json.Marshal(pod.Lookup("metadata", path)); string(got) != want {
			t.Errorf("metadata.%s = %s, want %s", path, got, want)
		}
	}

	// nil adds nothing.
	meta = &metav1.ObjectMetaArgs{Labels: stackLabels}
	if err := ApplyPodMetadata(meta, nil); err != nil || !reflect.DeepEqual(meta, &metav1.ObjectMetaArgs{Labels: stackLabels}) {
		t.Errorf("ApplyPodMetadata(nil) = %v, changed metadata to %#v", err, meta)
	}

	// A key the stack sets is never overridden, not even one Validate does not know of.
	for _, p := range []*Spec{
		{PodLabels: map[string]string{"app.kubernetes.io/name": "other"}},
		{PodAnnotations: map[string]string{kube.ChecksumAnnotation: "abc"}},
	} {
		meta := &metav1.ObjectMetaArgs{Labels: stackLabels, Annotations: pulumi.StringMap{kube.ChecksumAnnotation: checksum}}
		if err := ApplyPodMetadata(meta, p); err == nil || !strings.Contains(err.Error(), "the stack sets this key itself") {
			t.Errorf("ApplyPodMetadata(%+v) = %v, want a conflict", p, err)
		}
	}
}
