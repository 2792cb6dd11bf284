// An external test package: it uses the component as any Go Pulumi program would.
package registrystack_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/routing"
	"github.com/regstack/registry-stack/stackconfig"
	"github.com/regstack/registry-stack/storage"
)

// runStacks runs a program of one provider and one RegistryStack per name, each with the args of
// the stack config, edited by edit when it is not nil.
func runStacks(t *testing.T, config map[string]string, edit func(name string, a *registrystack.Args), names ...string) *testutil.Mocks {
	t.Helper()
	return testutil.MustRun(t, config, func(ctx *pulumi.Context) error {
		cfg, err := stackconfig.Load(ctx)
		if err != nil {
			return err
		}
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		for _, name := range names {
			args := cfg.Args()
			if edit != nil {
				edit(name, args)
			}
			if _, err := registrystack.NewRegistryStack(ctx, name, args, pulumi.Provider(k8s)); err != nil {
				return err
			}
		}
		return nil
	})
}

// twoStacks is a program with two registries in one namespace, the second with its own hostname
// and mirror, neither creating the namespace.
func twoStacks(ctx *pulumi.Context) error {
	k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
	if err != nil {
		return err
	}
	for _, s := range []struct{ name, host string }{{"registry", "registry.example.com"}, {"team-b", "team-b.example.com"}} {
		args := stackconfig.DefaultArgs()
		args.Namespace, args.CreateNamespace, args.Hostname = pulumi.String("shared"), false, s.host
		args.Mirrors = []registrystack.Mirror{{Name: "hub", Upstream: "https://registry-1.docker.io", Hostname: "hub." + s.host, TTL: "168h",
			Storage: storage.Store{Filesystem: &storage.Filesystem{Mode: storage.ModeDynamic, ClaimSize: "20Gi",
				AccessMode: "ReadWriteOnce", StorageClassName: "standard"}}}}
		if _, err := registrystack.NewRegistryStack(ctx, s.name, args, pulumi.Provider(k8s)); err != nil {
			return err
		}
	}
	return nil
}

func TestTwoStacksShareANamespaceWithoutAClash(t *testing.T) {
	m := testutil.MustRun(t, nil, twoStacks)
	objects := map[string]string{}
	urns := map[string]bool{}
	for _, r := range m.Resources() {
		// The engine keys state by URN: type chain + name. A duplicate would be refused by a real
		// engine; the mocks do not check, so the test does.
		key := r.Parent + "|" + r.Type + "|" + r.Name
		if urns[key] {
			t.Errorf("two resources share parent, type and name: %s", key)
		}
		urns[key] = true
		if !strings.HasPrefix(r.Type, "kubernetes:") || r.Read || r.Type == "pulumi:providers:kubernetes" {
			continue
		}
		name := r.String("metadata", "name")
		if name == "" {
			t.Errorf("%s/%s: no metadata.name", r.Type, r.Name)
			continue
		}
		obj := r.Type + " " + r.String("metadata", "namespace") + "/" + name
		if prev, ok := objects[obj]; ok {
			t.Errorf("%s is registered twice (as %s and %s)", obj, prev, r.Name)
		}
		objects[obj] = r.Name
	}
	for _, want := range []string{"kubernetes:apps/v1:Deployment shared/registry", "kubernetes:apps/v1:Deployment shared/team-b",
		"kubernetes:apps/v1:Deployment shared/team-b-mirror-hub", "kubernetes:core/v1:PersistentVolumeClaim shared/team-b-data",
		"kubernetes:batch/v1:CronJob shared/team-b-gc"} {
		if _, ok := objects[want]; !ok {
			t.Errorf("missing %s", want)
		}
	}
	if len(m.OfType(registrystack.Type)) != 2 {
		t.Errorf("%d RegistryStack components, want 2", len(m.OfType(registrystack.Type)))
	}
}

// Every part a stack of the previous layout can have (mirrors, monitoring, autoscaling, a Gateway)
// sits under the component, and each direct child carries the alias to its old place at the root.
func TestEveryChildIsUnderTheComponentAndAliasedToTheRoot(t *testing.T) {
	config := map[string]string{
		"mirrors":     `[{"name":"ghcr","upstream":"https://ghcr.io","anonymous":true}]`,
		"monitoring":  `{"serviceMonitor":{"enabled":true},"alerts":{"enabled":true},"dashboard":{"enabled":true}}`,
		"autoscaling": `{}`, "routing.gateway.create.className": "traefik",
	}
	m := runStacks(t, config, nil, "registry")
	direct := map[string]bool{}
	for _, r := range m.Resources() {
		switch {
		case r.Type == registrystack.Type || r.Type == "pulumi:providers:kubernetes":
			continue
		case r.Parent == "urn:pulumi:"+testutil.Stack+"::"+testutil.Project+"::"+registrystack.Type+"::registry":
			// A direct child: before the component existed it sat at the stack's root, and the
			// alias (no parent) is what keeps its state, and its children's, on upgrade.
			if len(r.AliasNoParent) != 1 || !r.AliasNoParent[0] {
				t.Errorf("%s/%s: aliases to parents %q, no parent %v; want one alias to the stack's root", r.Type, r.Name, r.AliasParents, r.AliasNoParent)
			}
			direct[r.Type] = true
		case !strings.Contains(r.Parent, registrystack.Type):
			t.Errorf("%s/%s: parent %q is not under the component", r.Type, r.Name, r.Parent)
		}
		if strings.HasPrefix(r.Type, "kubernetes:") && !strings.Contains(r.Provider, "pulumi:providers:kubernetes::k8s") {
			t.Errorf("%s/%s: provider %q, want the one passed to the component", r.Type, r.Name, r.Provider)
		}
	}
	for _, typ := range []string{"kubernetes:core/v1:Namespace", "registry-stack:index:Storage", "registry-stack:index:Redis",
		"registry-stack:index:Registry", "registry-stack:index:TLS", "registry-stack:index:Gateway", "registry-stack:index:GC",
		"registry-stack:index:Monitoring"} {
		if !direct[typ] {
			t.Errorf("no direct child of type %s: the test no longer covers every part", typ)
		}
	}
}

func TestDefaultArgsAreValidAndMatchTheStackDefaults(t *testing.T) {
	a := stackconfig.DefaultArgs()
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	d := stackconfig.Defaults()
	if ns, known := registrystack.KnownString(a.Namespace); !known || ns != d["namespace"] || a.Hostname != d["hostname"] || a.Registry.Image != d["registry.image"] ||
		a.Cache == nil || a.Cache.Image != d["cache.image"] || a.GC.Schedule != d["gc.schedule"] || d["accounts"] != `["`+a.Accounts[0]+`"]` {
		t.Errorf("DefaultArgs differ from the config defaults: %+v", a)
	}
}

func TestValidateNamesEveryBrokenField(t *testing.T) {
	a := stackconfig.DefaultArgs()
	a.Namespace, a.Accounts, a.Registry.Replicas, a.Registry.LogLevel = pulumi.String(""), nil, 0, ""
	a.Routing.Gateway = &routing.Gateway{}
	a.Storage.Filesystem.ClaimSize = ""
	a.Mirrors = []registrystack.Mirror{{Name: "hub"}, {Name: "hub"}}
	err := a.Validate()
	if err == nil {
		t.Fatal("invalid args accepted")
	}
	for _, want := range []string{"Namespace: required", "Accounts:", "Registry.Replicas: 0", "Routing: exactly one", "Mirrors[1].Name",
		"Registry.LogLevel: required", "Storage: storage: Filesystem in mode \"dynamic\" needs ClaimSize"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	m, runErr := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		_, err := registrystack.NewRegistryStack(ctx, "registry", a)
		return err
	})
	if runErr == nil || len(m.Resources()) != 0 {
		t.Errorf("NewRegistryStack with invalid args: err %v, %d resources registered (want an error and none)", runErr, len(m.Resources()))
	}
}

// KEDA's default query names this component's metrics Service, not a fixed one.
func TestKEDADefaultQueryNamesTheComponentsMetricsService(t *testing.T) {
	m := runStacks(t, map[string]string{"namespace": "shared"}, func(_ string, a *registrystack.Args) {
		a.Autoscaling = &registry.Autoscaling{MinReplicas: 2, MaxReplicas: 4, KEDA: &registry.KEDA{ServerAddress: "http://prometheus:9090", Threshold: "20"}}
	}, "team-b")
	so := m.Get(t, "kubernetes:keda.sh/v1alpha1:ScaledObject", "team-b")
	want := `sum(registry_http_in_flight_requests{namespace="shared",service="team-b-metrics"})`
	if got := so.String("spec", "triggers", 0, "metadata", "query"); got != want {
		t.Errorf("query %q, want %q", got, want)
	}
}

// Two stacks on hostPath in one namespace get a directory each: one store GC'd by two registries
// would lose data. "registry" keeps /data/<namespace>, every stack's directory before names.
func TestTwoHostPathStacksNeverShareADirectory(t *testing.T) {
	m := runStacks(t, map[string]string{"storage.filesystem.mode": "hostPath", "namespace": "shared", "createNamespace": "false",
		"mirrors": `[{"name":"hub","upstream":"https://registry-1.docker.io"}]`}, func(name string, a *registrystack.Args) {
		a.Hostname = name + ".example.com"
		a.Mirrors[0].Hostname = "hub." + a.Hostname
	}, "registry", "team-b")
	got := map[string]string{}
	for _, pv := range m.OfType("kubernetes:core/v1:PersistentVolume") {
		got[pv.String("metadata", "name")] = pv.String("spec", "hostPath", "path")
	}
	want := map[string]string{"shared-registry-data": "/data/shared", "shared-registry-mirror-hub-data": "/data/shared-mirror-hub",
		"shared-team-b-data": "/data/shared-team-b", "shared-team-b-mirror-hub-data": "/data/shared-team-b-mirror-hub"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hostPath directories %v, want %v", got, want)
	}
}

func TestValidateWantsTraefiksEntryPoint(t *testing.T) {
	a := stackconfig.DefaultArgs()
	a.Routing.Controller, a.Routing.Ingress.TraefikEntryPoint = routing.ControllerTraefik, ""
	if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "Routing.Ingress.TraefikEntryPoint") {
		t.Errorf("traefik without an entry point: %v", err)
	}
}

// Retention on: the registry's config Secret holds the loopback registry's config (secret, like
// config.yml), the registry's pods do not roll for it, and the GC pod runs the retention steps.
func TestRetentionWiresTheLocalConfigAndTheGCSteps(t *testing.T) {
	off := runStacks(t, nil, nil, "registry")
	on := runStacks(t, map[string]string{"retention": `{"policies":[{"repositories":["ci/*"],"keepNewest":5}]}`}, nil, "registry")
	secret := on.Get(t, "kubernetes:core/v1:Secret", "registry-config")
	if local := secret.String("stringData", registry.LocalConfigKey); !strings.Contains(local, registry.LocalAddr) || !secret.IsSecret("stringData", registry.LocalConfigKey) {
		t.Errorf("local.yml = %q (secret %v)", local, secret.IsSecret("stringData", registry.LocalConfigKey))
	}
	if off.Get(t, "kubernetes:core/v1:Secret", "registry-config").String("stringData", registry.LocalConfigKey) != "" {
		t.Error("local.yml without retention")
	}
	sum := func(m *testutil.Mocks) string {
		return m.Get(t, "kubernetes:apps/v1:Deployment", "registry").String("spec", "template", "metadata", "annotations", "checksum/config")
	}
	if sum(on) == "" || sum(on) != sum(off) {
		t.Errorf("pod checksum %q with retention, %q without: the registry's pods do not read local.yml", sum(on), sum(off))
	}
	if !strings.Contains(fmt.Sprint(on.Get(t, "kubernetes:batch/v1:CronJob", "registry-gc").Lookup("spec", "jobTemplate", "spec", "template", "spec", "initContainers")), "retention.sh") {
		t.Error("the GC pod has no retention step")
	}
}
