package registry

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"golang.org/x/crypto/bcrypt"

	"github.com/regstack/registry-stack/auth"
	"github.com/regstack/registry-stack/internal/htpasswd"
	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/storage"
)

const (
	tDeployment = "kubernetes:apps/v1:Deployment"
	tService    = "kubernetes:core/v1:Service"
	tSecret     = "kubernetes:core/v1:Secret"
	tPDB        = "kubernetes:policy/v1:PodDisruptionBudget"
	tPod        = "kubernetes:core/v1:Pod"
	tRegistry   = "registry-stack:index:Registry"
)

// fsBackend is the storage of a filesystem claim registry-data provisioned in mode with access.
func fsBackend(mode, access string) *storage.Backend {
	return storage.FilesystemBackend(pulumi.String("registry-data"), &storage.Filesystem{Mode: mode, AccessMode: access})
}

// args are fixed inputs for NewRegistry; each call returns a fresh copy.
func args() *RegistryArgs {
	return &RegistryArgs{
		Namespace:     pulumi.String("images"),
		Storage:       fsBackend(storage.ModeDynamic, "ReadWriteMany"),
		Image:         "registry:3.1.2",
		Replicas:      2,
		Accounts:      []string{"admin"},
		LogLevel:      "info",
		ServiceType:   "ClusterIP",
		CacheEnabled:  true,
		RedisAddr:     pulumi.String("registry-redis:6379"),
		RedisUsername: "registry",
		RedisPassword: pulumi.ToSecret(pulumi.String("redis-pass")).(pulumi.StringOutput),
		CPURequest:    "200m",
		MemoryRequest: "256Mi",
		MemoryLimit:   "2Gi",
	}
}

// tryRegistry runs NewRegistry "registry" with a and returns what it registered and its error.
func tryRegistry(t *testing.T, a *RegistryArgs) (*testutil.Mocks, error) {
	t.Helper()
	return testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewRegistry(ctx, "registry", a)
		return err
	})
}

func runRegistry(t *testing.T, name string, a *RegistryArgs) *testutil.Mocks {
	t.Helper()
	return testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewRegistry(ctx, name, a)
		return err
	})
}

// renderPod registers a Pod with the given spec under the mock engine and returns what Kubernetes
// would receive.
func renderPod(t *testing.T, spec func() (*corev1.PodSpecArgs, error)) testutil.Resource {
	t.Helper()
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		s, err := spec()
		if err != nil {
			return err
		}
		_, err = corev1.NewPod(ctx, "probe", &corev1.PodArgs{Spec: s})
		return err
	})
	return m.Get(t, tPod, "probe")
}

func defaulted(t *testing.T, a *RegistryArgs) *RegistryArgs {
	t.Helper()
	out, err := a.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestContainer(t *testing.T) {
	a := defaulted(t, args())
	pod := renderPod(t, func() (*corev1.PodSpecArgs, error) {
		return &corev1.PodSpecArgs{Containers: corev1.ContainerArray{Container(a)}}, nil
	})
	c := func(path ...any) any { return pod.Lookup(append([]any{"spec", "containers", 0}, path...)...) }
	for _, e := range []struct {
		path []any
		want any
		why  string
	}{
		{[]any{"name"}, ContainerName, "GC patches the container by this name"},
		{[]any{"image"}, "registry:3.1.2", "the image as given"},
		{[]any{"command"}, []any{"registry", "serve", "/etc/distribution/config.yml"}, "v3 reads /etc/distribution"},
		{[]any{"readinessProbe", "httpGet", "path"}, "/", "/v2/ is 401 with auth"},
		{[]any{"readinessProbe", "httpGet", "port"}, "http", "the API port"},
		{[]any{"readinessProbe", "tcpSocket"}, nil, "readiness checks the registry's health, not only the socket"},
		{[]any{"livenessProbe", "tcpSocket", "port"}, "http", "a storage outage must not restart pods"},
		{[]any{"livenessProbe", "httpGet"}, nil, "an HTTP liveness probe restarts pods while storage is broken"},
		{[]any{"ports", 0}, map[string]any{"name": "http", "containerPort": float64(Port)}, "API port"},
		{[]any{"ports", 1}, map[string]any{"name": "debug", "containerPort": float64(DebugPort)}, "metrics on the debug port"},
		{[]any{"env"}, []any{map[string]any{"name": "OTEL_TRACES_EXPORTER", "value": "none"}}, "v3 exports traces to localhost:4318 otherwise"},
		{[]any{"resources", "requests", "cpu"}, "200m", "requests as given"},
		{[]any{"resources", "requests", "memory"}, "256Mi", "requests as given"},
		{[]any{"resources", "limits", "memory"}, "2Gi", "limit as given"},
		{[]any{"securityContext", "runAsNonRoot"}, true, "restricted"},
		{[]any{"securityContext", "allowPrivilegeEscalation"}, false, "restricted"},
		{[]any{"securityContext", "readOnlyRootFilesystem"}, true, "restricted"},
		{[]any{"securityContext", "capabilities", "drop"}, []any{"ALL"}, "restricted"},
		{[]any{"securityContext", "capabilities", "add"}, nil, "restricted"},
		{[]any{"securityContext", "seccompProfile", "type"}, "RuntimeDefault", "restricted"},
	} {
		if got := c(e.path...); fmt.Sprint(got) != fmt.Sprint(e.want) {
			t.Errorf("container %v = %v, want %v (%s)", e.path, got, e.want, e.why)
		}
	}
	mounts := map[string]string{}
	for _, m := range c("volumeMounts").([]any) {
		mm := m.(map[string]any)
		mounts[mm["mountPath"].(string)] = mm["name"].(string)
		if mm["mountPath"] == ConfigDir && mm["readOnly"] != true {
			t.Error("config mounted writable")
		}
	}
	for path, vol := range map[string]string{ConfigDir: "config", storage.DataDir: "data", "/tmp": "tmp"} {
		if mounts[path] != vol {
			t.Errorf("mount %s = volume %q, want %q (mounts: %v)", path, mounts[path], vol, mounts)
		}
	}
}

func TestImageIsUsedAsGiven(t *testing.T) {
	for _, img := range []string{"registry:3.0.0", "mirror.example.com/library/registry@sha256:" + strings.Repeat("a", 64)} {
		a := args()
		a.Image = img
		want := img
		dep := runRegistry(t, "registry", a).Get(t, tDeployment, "registry")
		if got := dep.String("spec", "template", "spec", "containers", 0, "image"); got != want {
			t.Errorf("Image %q: container image = %q, want %q", img, got, want)
		}
		if strings.HasSuffix(want, ":latest") || !strings.ContainsAny(want, ":@") {
			t.Errorf("image %q is not pinned", want)
		}
	}
}

func TestPodSpec(t *testing.T) {
	a := defaulted(t, args())
	sel := PodSelector("registry")
	pod := renderPod(t, func() (*corev1.PodSpecArgs, error) {
		return PodSpec(a, pulumi.String("cfg-secret"), pulumi.String(""), sel)
	})
	for _, e := range []struct {
		path []any
		want any
	}{
		{[]any{"spec", "enableServiceLinks"}, false},
		{[]any{"spec", "automountServiceAccountToken"}, false},
		{[]any{"spec", "securityContext", "runAsNonRoot"}, true},
		{[]any{"spec", "securityContext", "runAsUser"}, float64(UID)},
		{[]any{"spec", "securityContext", "fsGroup"}, float64(UID)},
		{[]any{"spec", "securityContext", "seccompProfile", "type"}, "RuntimeDefault"},
		{[]any{"spec", "initContainers"}, nil},
		{[]any{"spec", "topologySpreadConstraints", 0, "whenUnsatisfiable"}, "ScheduleAnyway"},
		{[]any{"spec", "topologySpreadConstraints", 0, "topologyKey"}, "kubernetes.io/hostname"},
	} {
		if got := pod.Lookup(e.path...); fmt.Sprint(got) != fmt.Sprint(e.want) {
			t.Errorf("%v = %v, want %v", e.path, got, e.want)
		}
	}
	if got := fmt.Sprint(pod.Lookup("spec", "topologySpreadConstraints", 0, "labelSelector", "matchLabels")); got != fmt.Sprint(testutil.AnyMap(sel)) {
		t.Errorf("topology spread selector = %s, want the registry pods %v", got, sel)
	}
	volumes := map[string]any{}
	for _, v := range pod.Lookup("spec", "volumes").([]any) {
		vm := v.(map[string]any)
		volumes[vm["name"].(string)] = vm
	}
	if got := pod.Lookup("spec", "volumes"); len(volumes) != 3 {
		t.Fatalf("volumes = %v, want config, data, tmp", got)
	}
	if got := fmt.Sprint(volumes["config"]); !strings.Contains(got, "secretName:cfg-secret") {
		t.Errorf("config volume = %s, want Secret cfg-secret", got)
	}
	if got := fmt.Sprint(volumes["data"]); !strings.Contains(got, "claimName:registry-data") {
		t.Errorf("data volume = %s, want claim registry-data", got)
	}
	if got := fmt.Sprint(volumes["tmp"]); !strings.Contains(got, "emptyDir") {
		t.Errorf("tmp volume = %s, want an emptyDir", got)
	}
}

func TestVolumeOwnershipContainer(t *testing.T) {
	for _, mode := range []string{"dynamic", "hostPath", "hostPath chown"} {
		t.Run(mode, func(t *testing.T) {
			a := args()
			switch mode {
			case "hostPath":
				a.Storage = storage.FilesystemBackend(pulumi.String("registry-data"), &storage.Filesystem{Mode: storage.ModeHostPath, HostPath: "/data/r", AccessMode: "ReadWriteOnce"})
			case "hostPath chown":
				a.Storage = storage.FilesystemBackend(pulumi.String("registry-data"), &storage.Filesystem{Mode: storage.ModeHostPath, HostPath: "/data/r", AccessMode: "ReadWriteOnce", ChownHostPath: true})
			}
			dep := runRegistry(t, "registry", a).Get(t, tDeployment, "registry")
			inits, _ := dep.Lookup("spec", "template", "spec", "initContainers").([]any)
			switch mode {
			case "dynamic":
				if len(inits) != 0 {
					t.Errorf("init containers %v without a hostPath volume: none wanted", inits)
				}
				return
			case "hostPath":
				// Without the opt-in: only the non-root writability check.
				if len(inits) != 1 || dep.Lookup("spec", "template", "spec", "initContainers", 0, "name") != "volume-writable" ||
					dep.Lookup("spec", "template", "spec", "initContainers", 0, "securityContext", "runAsNonRoot") != true {
					t.Errorf("init containers = %v, want only the non-root volume-writable check", inits)
				}
				return
			}
			if len(inits) != 1 {
				t.Fatalf("init containers = %v, want exactly the volume-ownership one", inits)
			}
			c := func(path ...any) any {
				return dep.Lookup(append([]any{"spec", "template", "spec", "initContainers", 0}, path...)...)
			}
			for _, e := range []struct {
				path []any
				want any
			}{
				{[]any{"name"}, "volume-ownership"},
				{[]any{"image"}, "registry:3.1.2"},
				{[]any{"command"}, []any{"chown", fmt.Sprintf("%d:%d", UID, UID), storage.DataDir}},
				{[]any{"securityContext", "capabilities", "add"}, []any{"CHOWN"}},
				{[]any{"securityContext", "capabilities", "drop"}, []any{"ALL"}},
				{[]any{"securityContext", "allowPrivilegeEscalation"}, false},
				{[]any{"securityContext", "readOnlyRootFilesystem"}, true},
				{[]any{"securityContext", "privileged"}, nil},
				{[]any{"volumeMounts"}, []any{map[string]any{"name": "data", "mountPath": storage.DataDir}}},
			} {
				if got := c(e.path...); fmt.Sprint(got) != fmt.Sprint(e.want) {
					t.Errorf("volume-ownership %v = %v, want %v", e.path, got, e.want)
				}
			}
			if strings.Contains(fmt.Sprint(c("command")), "-R") {
				t.Error("volume-ownership chowns recursively: it must never touch the images")
			}
		})
	}
}

func TestDeployment(t *testing.T) {
	m := runRegistry(t, "registry", args())
	dep := m.Get(t, tDeployment, "registry")
	for _, e := range []struct {
		path []any
		want any
	}{
		{[]any{"spec", "replicas"}, 2.0},
		{[]any{"spec", "strategy", "type"}, "RollingUpdate"},
		{[]any{"spec", "strategy", "rollingUpdate", "maxUnavailable"}, 0.0},
		{[]any{"spec", "strategy", "rollingUpdate", "maxSurge"}, 1.0},
		{[]any{"spec", "template", "spec", "enableServiceLinks"}, false},
		{[]any{"spec", "template", "spec", "volumes", 0, "secret", "secretName"}, "registry-config"},
		{[]any{"metadata", "namespace"}, "images"},
	} {
		if got := dep.Lookup(e.path...); fmt.Sprint(got) != fmt.Sprint(e.want) {
			t.Errorf("Deployment %v = %v, want %v", e.path, got, e.want)
		}
	}
	labels := dep.Lookup("spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range dep.Lookup("spec", "selector", "matchLabels").(map[string]any) {
		if labels[k] != v {
			t.Errorf("Deployment selects %s=%v but its pods have %v", k, v, labels[k])
		}
	}
}

func TestServiceExposesOnlyTheAPIPort(t *testing.T) {
	for _, st := range []string{"ClusterIP", "NodePort"} {
		a := args()
		a.ServiceType = st
		m := runRegistry(t, "registry", a)
		svc := m.Get(t, tService, "registry")
		ports, _ := svc.Lookup("spec", "ports").([]any)
		if len(ports) != 1 {
			t.Fatalf("Service ports = %v, want only the API port (the debug port has no auth)", ports)
		}
		if got := svc.Lookup("spec", "ports", 0, "port"); got != float64(Port) {
			t.Errorf("Service port = %v, want %d", got, Port)
		}
		if got := svc.String("spec", "ports", 0, "targetPort"); got != "http" {
			t.Errorf("Service targetPort = %q, want the container port named http (not debug)", got)
		}
		if strings.Contains(fmt.Sprint(ports), fmt.Sprint(DebugPort)) || strings.Contains(fmt.Sprint(ports), "debug") {
			t.Errorf("Service exposes the debug port: %v", ports)
		}
		want := st
		if want == "" {
			want = "ClusterIP"
		}
		if got := svc.String("spec", "type"); got != want {
			t.Errorf("ServiceType %q: Service type = %q, want %q", st, got, want)
		}
		dep := m.Get(t, tDeployment, "registry")
		if got, want := fmt.Sprint(svc.Lookup("spec", "selector")), fmt.Sprint(dep.Lookup("spec", "selector", "matchLabels")); got != want {
			t.Errorf("Service selector %s != Deployment selector %s", got, want)
		}
	}
}

func checksum(t *testing.T, m *testutil.Mocks, name string) string {
	t.Helper()
	dep := m.Get(t, tDeployment, name)
	if dep.IsSecret("spec", "template", "metadata", "annotations", "checksum/config") {
		t.Error("checksum/config annotation is secret: previews would hide which pods roll")
	}
	sum := dep.String("spec", "template", "metadata", "annotations", "checksum/config")
	if len(sum) != 64 {
		t.Fatalf("checksum/config = %q, want a SHA-256 hex", sum)
	}
	return sum
}

func TestConfigChangeRollsThePods(t *testing.T) {
	base := checksum(t, runRegistry(t, "registry", args()), "registry")
	if again := checksum(t, runRegistry(t, "registry", args()), "registry"); again != base {
		t.Errorf("checksum/config differs between two identical runs: %s vs %s (pods would roll on every up)", base, again)
	}
	for _, c := range []struct {
		name string
		edit func(*RegistryArgs)
	}{
		{"log level", func(a *RegistryArgs) { a.LogLevel = "debug" }},
		{"redis address", func(a *RegistryArgs) { a.RedisAddr = pulumi.String("other-redis:6379") }},
		{"cache disabled", func(a *RegistryArgs) { a.CacheEnabled = false }},
		{"htpasswd user", func(a *RegistryArgs) { a.Accounts = []string{"alice"} }},
		{"one more account", func(a *RegistryArgs) { a.Accounts = []string{"admin", "ci"} }},
	} {
		a := args()
		c.edit(a)
		if got := checksum(t, runRegistry(t, "registry", a), "registry"); got == base {
			t.Errorf("changing the %s left checksum/config unchanged: the pods would keep the old config", c.name)
		}
	}
	a := args()
	a.Replicas = 5
	if got := checksum(t, runRegistry(t, "registry", a), "registry"); got != base {
		t.Error("changing replicas changed checksum/config: every scale would roll the pods")
	}
}

func TestDisruptionBudgetOnlyWithSeveralReplicas(t *testing.T) {
	for _, c := range []struct {
		replicas int
		wantPDB  bool
	}{{1, false}, {2, true}, {3, true}} {
		a := args()
		a.Replicas = c.replicas
		m := runRegistry(t, "registry", a)
		pdbs := m.OfType(tPDB)
		if !c.wantPDB {
			if len(pdbs) != 0 {
				t.Errorf("replicas %d: %d PodDisruptionBudgets; with one replica it blocks every node drain", c.replicas, len(pdbs))
			}
			continue
		}
		if len(pdbs) != 1 {
			t.Errorf("replicas %d: %d PodDisruptionBudgets, want 1", c.replicas, len(pdbs))
			continue
		}
		pdb := pdbs[0]
		if got := pdb.Lookup("spec", "maxUnavailable"); got != 1.0 {
			t.Errorf("replicas %d: PDB maxUnavailable = %v, want 1", c.replicas, got)
		}
		if got, want := fmt.Sprint(pdb.Lookup("spec", "selector", "matchLabels")), fmt.Sprint(testutil.AnyMap(PodSelector("registry"))); got != want {
			t.Errorf("PDB selector = %s, want %s", got, want)
		}
	}
}

func TestConfigSecret(t *testing.T) {
	m := runRegistry(t, "registry", args())
	s := m.Get(t, tSecret, "registry-config")
	for _, key := range []string{ConfigKey, auth.HtpasswdKey} {
		if !s.IsSecret("stringData", key) {
			t.Errorf("config Secret key %s is not marked secret", key)
		}
	}
	cfg := s.String("stringData", ConfigKey)
	for _, want := range []string{"mock-password-registry-http-secret", "redis-pass", "registry-redis:6379"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config.yml lacks %q", want)
		}
	}
	checkHtpasswd(t, s.String("stringData", auth.HtpasswdKey), map[string]string{"admin": "mock-password-registry-password"})
	// Secret material only in the Secret.
	others := m.Dump(func(r testutil.Resource) bool { return strings.HasPrefix(r.Type, "kubernetes:") && r.Type != tSecret })
	for _, secret := range []string{"mock-password-", "$2a$", "redis-pass"} {
		if strings.Contains(others, secret) {
			t.Errorf("%q appears outside the config Secret", secret)
		}
	}
	// One http.secret for all replicas: generated once, without special characters.
	hs := m.Get(t, "random:index/randomPassword:RandomPassword", "registry-http-secret")
	if hs.Lookup("length").(float64) < 32 {
		t.Errorf("http.secret length %v, want >= 32", hs.Lookup("length"))
	}
}

func TestChildrenAreParentedAndNamedAfterTheComponent(t *testing.T) {
	a := args()
	a.Replicas = 3
	m := runRegistry(t, "blue", a)
	parent := "urn:pulumi:unit::registry-stack::" + tRegistry + "::blue"
	var kinds []string
	for _, r := range m.Resources() {
		if r.Type == tRegistry {
			continue
		}
		kinds = append(kinds, r.Type)
		if r.Parent != parent {
			t.Errorf("%s/%s parent = %q, want the Registry component", r.Type, r.Name, r.Parent)
		}
		if r.Name != "blue" && !strings.HasPrefix(r.Name, "blue-") {
			t.Errorf("%s/%s is not named after the component", r.Type, r.Name)
		}
		if strings.HasPrefix(r.Type, "kubernetes:") {
			if got := r.String("metadata", "name"); got != r.Name {
				t.Errorf("%s/%s: Kubernetes name %q differs from the resource name", r.Type, r.Name, got)
			}
			if got := r.String("metadata", "labels", "app.kubernetes.io/instance"); got != "blue" {
				t.Errorf("%s/%s: instance label %q, want blue", r.Type, r.Name, got)
			}
		}
	}
	for _, want := range []string{tDeployment, tService, tSecret, tPDB} {
		if !slices.Contains(kinds, want) {
			t.Errorf("no %s registered", want)
		}
	}
	if got := m.Get(t, tDeployment, "blue").String("spec", "template", "spec", "volumes", 0, "secret", "secretName"); got != "blue-config" {
		t.Errorf("pods mount config Secret %q, want blue-config", got)
	}
}

func TestInvalidArgsRegisterNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*RegistryArgs)
	}{
		{"negative replicas", func(a *RegistryArgs) { a.Replicas = -1 }},
		{"cache without address", func(a *RegistryArgs) { a.RedisAddr = nil }},
		{"cache without password", func(a *RegistryArgs) { a.RedisPassword = nil }},
		{"no storage", func(a *RegistryArgs) { a.Storage = nil }},
		{"no namespace", func(a *RegistryArgs) { a.Namespace = nil }},
		{"proxy with two replicas", func(a *RegistryArgs) { *a = *mirrorArgs(); a.Replicas = 2 }},
		{"proxy without upstream", func(a *RegistryArgs) { *a = *mirrorArgs(); a.Proxy.RemoteURL = "" }},
		{"proxy without ttl", func(a *RegistryArgs) { *a = *mirrorArgs(); a.Proxy.TTL = "" }},
		{"proxy username without password", func(a *RegistryArgs) { *a = *mirrorArgs(); a.Proxy.Password = nil }},
		{"anonymous proxy with accounts", func(a *RegistryArgs) { *a = *mirrorArgs(); a.Proxy.Anonymous = true }},
		{"proxy with autoscaling", func(a *RegistryArgs) { *a = *mirrorArgs(); a.Autoscaling = hpaScaling() }},
		{"autoscaling from 0", func(a *RegistryArgs) { a.Autoscaling = hpaScaling(); a.Autoscaling.MinReplicas = 0 }},
		{"autoscaling max below min", func(a *RegistryArgs) { a.Autoscaling = hpaScaling(); a.Autoscaling.MaxReplicas = 1 }},
		{"autoscaling on nothing", func(a *RegistryArgs) { a.Autoscaling = hpaScaling(); a.Autoscaling.Resources = nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := args()
			c.edit(a)
			m, err := tryRegistry(t, a)
			if err == nil {
				t.Fatal("accepted")
			}
			if n := len(m.Resources()); n != 0 {
				t.Errorf("%d resources registered before the args were rejected", n)
			}
		})
	}
}

// A ReadWriteOnce volume attaches to one node: co-located replicas share it; otherwise they spread.
func TestPlacementFollowsTheVolume(t *testing.T) {
	for _, coLocate := range []bool{true, false} {
		access := map[bool]string{true: "ReadWriteOnce", false: "ReadWriteMany"}[coLocate]
		in := args()
		in.Storage = fsBackend(storage.ModeDynamic, access)
		a, err := in.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		pod := renderPod(t, func() (*corev1.PodSpecArgs, error) {
			return PodSpec(a, pulumi.String("cfg"), pulumi.String(""), PodSelector("registry"))
		})
		affinity := pod.Lookup("spec", "affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "topologyKey")
		spread := pod.Lookup("spec", "topologySpreadConstraints", 0, "topologyKey")
		if coLocate && (affinity != "kubernetes.io/hostname" || spread != nil) {
			t.Errorf("CoLocate: affinity=%v spread=%v, want required same-node affinity and no spread", affinity, spread)
		}
		if !coLocate && (affinity != nil || spread != "kubernetes.io/hostname") {
			t.Errorf("spread: affinity=%v spread=%v, want a hostname spread and no affinity", affinity, spread)
		}
	}
}

// The debug port (pprof, metrics, no auth) is left out of the registry's NetworkPolicy.
func TestNetworkPolicyAdmitsOnlyTheAPIPort(t *testing.T) {
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		a := args()
		a.Namespace, a.Storage = pulumi.String("ns"), fsBackend(storage.ModeDynamic, "ReadWriteOnce")
		_, err := NewRegistry(ctx, "registry", a)
		return err
	})
	np := m.Get(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "registry")
	ports := np.Lookup("spec", "ingress", 0, "ports").([]any)
	if len(ports) != 1 || np.Lookup("spec", "ingress", 0, "ports", 0, "port") != float64(Port) {
		t.Errorf("ingress ports = %v, want only %d", ports, Port)
	}
	if got := fmt.Sprint(np.Lookup("spec", "podSelector", "matchLabels")); got != fmt.Sprint(testutil.AnyMap(PodSelector("registry"))) {
		t.Errorf("policy selects %s, want the registry pods", got)
	}
}

// checkHtpasswd verifies each line with bcrypt, as distribution does: every account's generated
// password, at the low cost, and nothing else.
func checkHtpasswd(t *testing.T, file string, want map[string]string) {
	t.Helper()
	if !strings.HasSuffix(file, "\n") {
		t.Errorf("htpasswd %q does not end with a newline", file)
	}
	lines := strings.Split(strings.TrimSuffix(file, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("htpasswd has %d lines, want %d: %q", len(lines), len(want), file)
	}
	for _, l := range lines {
		user, hash, _ := strings.Cut(l, ":")
		pw, ok := want[user]
		if !ok {
			t.Errorf("htpasswd has unexpected account %q", user)
			continue
		}
		if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)); err != nil {
			t.Errorf("account %s: hash %q does not verify the generated password: %v", user, hash, err)
		}
		if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != htpasswd.Cost {
			t.Errorf("account %s: bcrypt cost %d (%v), want %d", user, cost, err, htpasswd.Cost)
		}
	}
}

// Each account has its own password resource (rotatable alone); the first keeps the name it had
// with one account; the Passwords output is secret; the hashes are the same on every run.
func TestAccountsHaveTheirOwnPasswords(t *testing.T) {
	a := args()
	a.Accounts = []string{"admin", "ci", "cluster-eu"}
	var passwords map[string]string
	var secret bool
	run := func() string {
		m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
			reg, err := NewRegistry(ctx, "registry", a)
			if err != nil {
				return err
			}
			ch := make(chan map[string]string, 1)
			reg.Passwords.ApplyT(func(p map[string]string) map[string]string { ch <- p; return p })
			secret = pulumi.IsSecret(reg.Passwords)
			passwords = <-ch
			return nil
		})
		for _, n := range []string{"registry-password", "registry-password-ci", "registry-password-cluster-eu"} {
			m.Get(t, "random:index/randomPassword:RandomPassword", n)
		}
		file := m.Get(t, tSecret, "registry-config").String("stringData", auth.HtpasswdKey)
		checkHtpasswd(t, file, map[string]string{
			"admin": "mock-password-registry-password", "ci": "mock-password-registry-password-ci",
			"cluster-eu": "mock-password-registry-password-cluster-eu",
		})
		return file
	}
	if first, second := run(), run(); first != second {
		t.Errorf("htpasswd differs between two runs (preview would never be empty):\n%s\n%s", first, second)
	}
	if !secret || len(passwords) != 3 || passwords["ci"] != "mock-password-registry-password-ci" {
		t.Errorf("Passwords = %v (secret %v), want every account's password, secret", passwords, secret)
	}
	for _, bad := range [][]string{{"admin", "admin"}, {"admin", ""}} {
		b := args()
		b.Accounts = bad
		if _, err := tryRegistry(t, b); err == nil {
			t.Errorf("accounts %q accepted", bad)
		}
	}
}
