package registrystack_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/routing"
	"github.com/regstack/registry-stack/stackconfig"
	"github.com/regstack/registry-stack/storage"
	"github.com/regstack/registry-stack/tlscert"
)

// made are the values other resources of a platform team's program hand to the component: its
// Namespace, an S3 bucket and the store's endpoint, a TLS Secret and a Gateway.
var made = map[string]string{
	"namespace": "team", "bucket": "images", "endpoint": "https://s3.team.svc:7070",
	"tlsSecret": "corp-tls", "gateway": "edge", "gatewayNamespace": "platform",
}

// inputsProgram creates a Namespace and a ConfigMap (standing in for the resources that make a
// bucket, a store, a certificate and a Gateway) and passes their outputs to the component; with
// unknown, those of the namespace, the certificate and the Gateway are outputs whose value is not
// known yet (a preview of a create). The bucket and endpoint stay known there: they end up in the
// registry's config Secret, and the mock engine refuses an unknown secret value (the real one
// plans it as unknown).
func inputsProgram(values map[string]string, unknown bool, reg **registrystack.RegistryStack) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		ns, err := corev1.NewNamespace(ctx, "team", &corev1.NamespaceArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(values["namespace"])},
		}, pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		cm, err := corev1.NewConfigMap(ctx, "made", &corev1.ConfigMapArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("made"), Namespace: pulumi.String("elsewhere")},
			Data:     pulumi.ToStringMap(values),
		}, pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		out := func(k string) pulumi.StringOutput {
			if unknown && k != "bucket" && k != "endpoint" {
				return pulumi.UnsafeUnknownOutput([]pulumi.Resource{cm}).ApplyT(func(any) string { return "" }).(pulumi.StringOutput)
			}
			return cm.Data.MapIndex(pulumi.String(k))
		}
		args := stackconfigArgs()
		args.Namespace, args.CreateNamespace = ns.Metadata.Name().Elem(), false
		if unknown {
			args.Namespace = out("namespace")
		}
		args.Storage = storage.Store{S3: &storage.S3{Bucket: out("bucket"), Endpoint: out("endpoint"), Region: "us-east-1", ForcePathStyle: true, StorageClass: "STANDARD"}}
		args.TLS = tlscert.Source{Secret: &tlscert.Secret{Name: out("tlsSecret")}}
		args.Routing = routing.Spec{Controller: routing.ControllerOfGatewayClass, Gateway: &routing.Gateway{
			Existing: &routing.ExistingGateway{Name: out("gateway"), Namespace: out("gatewayNamespace"), SectionName: "websecure"}}}
		r, err := registrystack.NewRegistryStack(ctx, "registry", args, pulumi.Provider(k8s))
		if reg != nil {
			*reg = r
		}
		return err
	}
}

// stackconfigArgs are the default args with monitoring on: every part that names the namespace.
func stackconfigArgs() *registrystack.Args {
	a := defaultArgs()
	a.Hostname = "registry.example.com"
	cfg, err := stackconfig.Parse(func(k string) (string, bool) {
		if k == "monitoring" {
			return `{"serviceMonitor":{"enabled":true},"alerts":{"enabled":true},"dashboard":{"enabled":true}}`, true
		}
		return "", false
	}, func(string) bool { return false })
	if err != nil {
		panic(err)
	}
	a.Monitoring = cfg.Monitoring
	return a
}

func defaultArgs() *registrystack.Args { return stackconfig.DefaultArgs() }

// Outputs of other resources reach every object: each namespaced object of the component lands
// in (and depends on) the program's Namespace, the registry's config names the bucket and the
// endpoint, the route attaches to the Gateway with the certificate's Secret granted, and the
// outputs say so.
func TestInputsFromOtherResources(t *testing.T) {
	var reg *registrystack.RegistryStack
	m := testutil.MustRun(t, nil, inputsProgram(made, false, &reg))
	for _, r := range m.OfType("kubernetes:core/v1:Namespace") {
		if r.Name != "team" {
			t.Errorf("the component registered Namespace %s: the program's is used", r.Name)
		}
	}
	nsURN := fmt.Sprintf("urn:pulumi:%s::%s::kubernetes:core/v1:Namespace::team", testutil.Stack, testutil.Project)
	namespaced := 0
	for _, r := range m.Resources() {
		ns := r.String("metadata", "namespace")
		if !r.Custom || r.Read || r.Name == "made" || ns == "" {
			continue
		}
		namespaced++
		if ns != "team" {
			t.Errorf("%s %s in namespace %q, want the program's %q", r.Type, r.Name, ns, "team")
		}
		if !slices.Contains(r.Dependencies, nsURN) {
			t.Errorf("%s %s does not depend on the program's Namespace: it could be created first (deps %v)", r.Type, r.Name, r.Dependencies)
		}
	}
	if namespaced < 10 {
		t.Errorf("%d namespaced objects checked: the test no longer covers the component", namespaced)
	}
	var config string
	for _, s := range m.OfType("kubernetes:core/v1:Secret") {
		if c := s.String("stringData", registry.ConfigKey); c != "" && s.Name == "registry-config" {
			config = c
		}
	}
	for _, want := range []string{"bucket: images", "regionendpoint: https://s3.team.svc:7070"} {
		if !strings.Contains(config, want) {
			t.Errorf("registry config lacks %q:\n%s", want, config)
		}
	}
	route := m.Get(t, "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "registry")
	if n, ns := route.String("spec", "parentRefs", 0, "name"), route.String("spec", "parentRefs", 0, "namespace"); n != "edge" || ns != "platform" {
		t.Errorf("route attaches to %s/%s, want platform/edge", ns, n)
	}
	grant := m.Get(t, "kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant", "registry-tls")
	if from, to := grant.String("spec", "from", 0, "namespace"), grant.String("spec", "to", 0, "name"); from != "platform" || to != "corp-tls" {
		t.Errorf("grant from %q to %q, want platform to corp-tls", from, to)
	}
	if got := m.Get(t, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "registry").Lookup("spec", "namespaceSelector", "matchNames"); fmt.Sprint(got) != "[team]" {
		t.Errorf("ServiceMonitor selects %v", got)
	}
	if rules := fmt.Sprint(m.Get(t, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "registry-alerts").Lookup("spec", "groups")); !strings.Contains(rules, `namespace="team"`) {
		t.Errorf("alerts do not select namespace team: %.300s", rules)
	}
	for key, want := range map[string]string{"namespace": "team", "storage": "bucket images", "routing": "existing platform/edge", "tlsSecretName": "corp-tls"} {
		got, _ := testutil.Resolve(t, reg.Outputs[key].(pulumi.StringInput).ToStringOutput())
		if !strings.Contains(got, want) {
			t.Errorf("output %s = %q, want it to say %q", key, got, want)
		}
	}
}

// In a preview of a create, the outputs are not known yet: the component still plans every object.
func TestUnknownInputsArePlanned(t *testing.T) {
	m, err := testutil.Run(t, nil, inputsProgram(made, true, nil), testutil.Preview)
	if err != nil {
		t.Fatalf("preview with unknown inputs: %v", err)
	}
	for _, typ := range []string{"kubernetes:apps/v1:Deployment", "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "kubernetes:batch/v1:CronJob"} {
		if len(m.OfType(typ)) == 0 {
			t.Errorf("no %s planned", typ)
		}
	}
}

// A value from another resource is checked once it resolves, naming the field.
func TestInputsAreCheckedWhenTheyResolve(t *testing.T) {
	for key, c := range map[string]struct{ value, want string }{
		"bucket":    {"Not_A_Bucket", `S3.Bucket "Not_A_Bucket" is invalid`},
		"endpoint":  {"http://s3.team.svc", `S3.Endpoint "http://s3.team.svc" is invalid; allowed: an https:// URL`},
		"namespace": {"", "Namespace: resolved to an empty name"},
		"tlsSecret": {"", "Secret.Name resolved to an empty name"},
	} {
		values := map[string]string{}
		for k, v := range made {
			values[k] = v
		}
		values[key] = c.value
		_, err := testutil.Run(t, nil, inputsProgram(values, false, nil))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: error %v, want %q", key, c.value, err, c.want)
		}
	}
}

// What the stack derives from the namespace's name needs a name known before anything is
// registered: with an output, Validate asks for it, naming the field.
func TestValidateNamesWhatAnOutputNamespaceNeeds(t *testing.T) {
	out := pulumi.String("team").ToStringOutput()
	for name, c := range map[string]struct {
		edit func(a *registrystack.Args)
		want string
	}{
		"created":  {func(a *registrystack.Args) { a.CreateNamespace = true }, "Namespace: a plain pulumi.String with CreateNamespace"},
		"hostPath": {func(a *registrystack.Args) { a.Storage.Filesystem.Mode = storage.ModeHostPath }, "Storage.Filesystem.HostPath: required when Namespace is an output"},
		"KEDA": {func(a *registrystack.Args) {
			a.Autoscaling = &registry.Autoscaling{MaxReplicas: 3, KEDA: &registry.KEDA{Threshold: "10"}}
		}, "Autoscaling.KEDA.Query: required when Namespace is an output"},
		"hostPath given": {func(a *registrystack.Args) {
			a.Storage.Filesystem.Mode, a.Storage.Filesystem.HostPath = storage.ModeHostPath, "/srv/registry"
		}, ""},
	} {
		a := defaultArgs()
		a.Namespace, a.CreateNamespace = out, false
		c.edit(a)
		err := a.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}
