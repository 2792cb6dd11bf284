package registry

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/placement"
	"github.com/regstack/registry-stack/storage"
)

// userPlacement is a platform team's: every field, with a required pod affinity term and a node affinity.
func userPlacement() *placement.Spec {
	return &placement.Spec{
		NodeSelector: map[string]string{"node-pool": "registry"},
		Tolerations:  []placement.Toleration{{Key: "dedicated", Operator: "Equal", Value: "registry", Effect: "NoSchedule"}},
		Affinity: &placement.Affinity{
			NodeAffinity: &placement.NodeAffinity{Required: &placement.NodeSelector{NodeSelectorTerms: []placement.NodeSelectorTerm{{
				MatchExpressions: []placement.NodeSelectorRequirement{{Key: "kubernetes.io/arch", Operator: "In", Values: []string{"amd64"}}},
			}}}},
			PodAffinity: &placement.PodAffinity{Required: []placement.PodAffinityTerm{{
				TopologyKey: "topology.kubernetes.io/zone", LabelSelector: &placement.LabelSelector{MatchLabels: map[string]string{"app": "ingress"}},
			}}},
		},
		PriorityClassName: "registry-critical",
		PodAnnotations:    map[string]string{"backup.velero.io/backup-volumes": "data"},
		PodLabels:         map[string]string{"team": "platform"},
		ImagePullSecrets:  []string{"corp-pull"},
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestPlacementReachesThePods(t *testing.T) {
	userTerm := `{"labelSelector":{"matchLabels":{"app":"ingress"}},"topologyKey":"topology.kubernetes.io/zone"}`
	for _, c := range []struct {
		name   string
		args   func() *RegistryArgs
		labels map[string]string
		// required pod affinity terms: the stack's co-location (ReadWriteOnce) beside the user's.
		required string
	}{
		{"registry on a ReadWriteOnce volume", func() *RegistryArgs {
			a := args()
			a.Storage = fsBackend(storage.ModeDynamic, "ReadWriteOnce")
			return a
		}, PodLabels("registry"),
			`[{"labelSelector":{"matchLabels":{"app.kubernetes.io/instance":"registry","app.kubernetes.io/name":"registry"}},"topologyKey":"kubernetes.io/hostname"},` + userTerm + `]`},
		{"mirror", mirrorArgs, MirrorPodLabels("registry"), `[` + userTerm + `]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := c.args()
			a.Placement = userPlacement()
			dep := runRegistry(t, "registry", a).Get(t, tDeployment, "registry")
			pod := func(path ...any) string { return jsonOf(dep.Lookup(append([]any{"spec", "template"}, path...)...)) }
			for _, e := range []struct {
				path []any
				want string
			}{
				{[]any{"spec", "nodeSelector"}, `{"node-pool":"registry"}`},
				{[]any{"spec", "tolerations"}, `[{"effect":"NoSchedule","key":"dedicated","operator":"Equal","value":"registry"}]`},
				{[]any{"spec", "priorityClassName"}, `"registry-critical"`},
				{[]any{"spec", "imagePullSecrets"}, `[{"name":"corp-pull"}]`},
				{[]any{"spec", "affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution"}, c.required},
				{[]any{"spec", "affinity", "nodeAffinity"}, `{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[` +
					`{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["amd64"]}]}]}}`},
				{[]any{"metadata", "labels", "team"}, `"platform"`},
				{[]any{"metadata", "annotations", "backup.velero.io/backup-volumes"}, `"data"`},
			} {
				if got := pod(e.path...); got != e.want {
					t.Errorf("pod template %v =\n%s\nwant\n%s", e.path, got, e.want)
				}
			}
			// The stack's labels and checksum stay beside the user's; selectors are the stack's alone.
			for k, v := range c.labels {
				if got := dep.String("spec", "template", "metadata", "labels", k); got != v {
					t.Errorf("pod label %s = %q, want the stack's %q", k, got, v)
				}
			}
			if dep.String("spec", "template", "metadata", "annotations", kube.ChecksumAnnotation) == "" {
				t.Error("the checksum annotation is gone")
			}
			if got, want := jsonOf(dep.Lookup("spec", "selector", "matchLabels")), jsonOf(testutil.AnyMap(PodSelector("registry"))); got != want {
				t.Errorf("Deployment selector = %s, want %s (pod labels stay out of selectors)", got, want)
			}
			if dep.Lookup("metadata", "labels", "team") != nil {
				t.Error("a pod label is on the Deployment itself")
			}
		})
	}
}

func TestExtraEnvFollowsTheStacksOwn(t *testing.T) {
	a := args()
	a.ExtraEnv = []EnvVar{{Name: "HTTP_PROXY", Value: "http://proxy:3128"}, {Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://otel:4318"}}
	dep := runRegistry(t, "registry", a).Get(t, tDeployment, "registry")
	want := `[{"name":"OTEL_TRACES_EXPORTER","value":"none"},{"name":"HTTP_PROXY","value":"http://proxy:3128"},` +
		`{"name":"OTEL_EXPORTER_OTLP_ENDPOINT","value":"http://otel:4318"}]`
	if got := jsonOf(dep.Lookup("spec", "template", "spec", "containers", 0, "env")); got != want {
		t.Errorf("registry env =\n%s\nwant\n%s", got, want)
	}
}

func TestValidateExtraEnv(t *testing.T) {
	// A backend whose variables the container sets, as an S3 backend's CA bundle.
	s3 := &storage.Backend{Env: corev1.EnvVarArray{&corev1.EnvVarArgs{Name: pulumi.String("AWS_CA_BUNDLE"), Value: pulumi.String("/ca.pem")}}}
	for _, c := range []struct {
		name    string
		env     []EnvVar
		backend *storage.Backend
		want    []string
	}{
		{"none", nil, s3, nil},
		{"proxy and telemetry", []EnvVar{{Name: "HTTP_PROXY", Value: "x"}, {Name: "NO_PROXY", Value: ".svc"}, {Name: "OTEL_SERVICE_NAME", Value: "registry"}}, s3, nil},
		// Distribution reads REGISTRY_* as config overrides: auth could go unseen.
		{"config overrides", []EnvVar{{Name: "REGISTRY_AUTH", Value: "{}"}, {Name: "REGISTRY_STORAGE_MAINTENANCE_READONLY", Value: `{"enabled":false}`}}, s3, []string{
			`extraEnv[0].name: "REGISTRY_AUTH" is refused: distribution reads REGISTRY_* variables as overrides`,
			`extraEnv[1].name: "REGISTRY_STORAGE_MAINTENANCE_READONLY" is refused`,
		}},
		{"the container's own", []EnvVar{{Name: "OTEL_TRACES_EXPORTER", Value: "otlp"}, {Name: "AWS_CA_BUNDLE", Value: "/mine.pem"}}, s3, []string{
			`extraEnv[0].name: "OTEL_TRACES_EXPORTER" is refused: the registry container sets it itself`,
			`extraEnv[1].name: "AWS_CA_BUNDLE" is refused: the registry container sets it itself`,
		}},
		{"storage unknown yet", []EnvVar{{Name: "AWS_CA_BUNDLE", Value: "/mine.pem"}}, nil, nil},
		{"invalid names", []EnvVar{{Name: "1PROXY"}, {Name: "A=B"}, {Name: ""}}, s3, []string{
			`extraEnv[0].name: "1PROXY" is invalid`, `extraEnv[1].name: "A=B" is invalid`, `extraEnv[2].name: "" is invalid`,
		}},
		{"twice", []EnvVar{{Name: "HTTP_PROXY", Value: "a"}, {Name: "HTTP_PROXY", Value: "b"}}, s3, []string{
			`extraEnv[1].name: "HTTP_PROXY" is given twice`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			errs := ValidateExtraEnv("extraEnv", false, c.env, c.backend)
			if len(errs) != len(c.want) {
				t.Fatalf("ValidateExtraEnv = %v, want %d errors", errs, len(c.want))
			}
			for i, w := range c.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
				}
			}
		})
	}
}

func TestInvalidPlacementOrEnvRegistersNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*RegistryArgs)
		want []string
	}{
		{"selector label", func(a *RegistryArgs) {
			a.Placement = &placement.Spec{PodLabels: map[string]string{"app.kubernetes.io/instance": "other"}}
		},
			[]string{`registry: placement.podLabels["app.kubernetes.io/instance"]`}},
		{"config override", func(a *RegistryArgs) {
			a.ExtraEnv = []EnvVar{{Name: "REGISTRY_AUTH_HTPASSWD_PATH", Value: "/dev/null"}}
		},
			[]string{`extraEnv[0].name: "REGISTRY_AUTH_HTPASSWD_PATH" is refused`}},
		{"every problem at once", func(a *RegistryArgs) {
			a.Placement = &placement.Spec{Tolerations: []placement.Toleration{{Key: "k", Effect: "Never"}}, ImagePullSecrets: []string{"Bad"}}
			a.ExtraEnv = []EnvVar{{Name: "REGISTRY_HTTP_SECRET"}}
		}, []string{`placement.tolerations[0].effect: "Never"`, `placement.imagePullSecrets[0]: "Bad"`, `extraEnv[0].name: "REGISTRY_HTTP_SECRET"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := args()
			c.edit(a)
			m, err := tryRegistry(t, a)
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error = %v, want one containing %q", err, w)
				}
			}
			if n := len(m.Resources()); n != 0 {
				t.Errorf("%d resources registered before the args were rejected", n)
			}
		})
	}
}

// No placement, no trace of one: the pods are as the stack alone makes them.
func TestNoPlacementAddsNothing(t *testing.T) {
	for _, c := range []struct {
		access, affinity string
	}{
		{"ReadWriteOnce", `{"podAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[{"labelSelector":{"matchLabels":` +
			`{"app.kubernetes.io/instance":"registry","app.kubernetes.io/name":"registry"}},"topologyKey":"kubernetes.io/hostname"}]}}`},
		{"ReadWriteMany", `null`},
	} {
		a := args()
		a.Storage = fsBackend(storage.ModeDynamic, c.access)
		tmpl := runRegistry(t, "registry", a).Get(t, tDeployment, "registry").Lookup("spec", "template").(map[string]any)
		spec, meta := tmpl["spec"].(map[string]any), tmpl["metadata"].(map[string]any)
		if got := jsonOf(spec["affinity"]); got != c.affinity {
			t.Errorf("%s: affinity = %s, want the stack's alone: %s", c.access, got, c.affinity)
		}
		for _, f := range []string{"nodeSelector", "tolerations", "priorityClassName", "imagePullSecrets"} {
			if v, ok := spec[f]; ok {
				t.Errorf("%s: spec.%s = %v without a placement", c.access, f, v)
			}
		}
		if got, want := jsonOf(meta["labels"]), jsonOf(testutil.AnyMap(PodLabels("registry"))); got != want {
			t.Errorf("%s: pod labels = %s, want %s", c.access, got, want)
		}
		if annotations := meta["annotations"].(map[string]any); len(annotations) != 1 {
			t.Errorf("%s: pod annotations = %v, want the checksum alone", c.access, annotations)
		}
	}
}
