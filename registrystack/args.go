package registrystack

import (
	"errors"
	"fmt"
	pathpkg "path"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/regstack/registry-stack/auth"
	"github.com/regstack/registry-stack/clusterpull"
	"github.com/regstack/registry-stack/gc"
	"github.com/regstack/registry-stack/monitoring"
	"github.com/regstack/registry-stack/placement"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/routing"
	"github.com/regstack/registry-stack/storage"
	"github.com/regstack/registry-stack/tlscert"
)

// Args configure a RegistryStack, one field per feature. The program builds them from validated
// stack config (stackconfig); a Go program that builds them itself gets the same checks from
// Validate, which NewRegistryStack runs before it registers anything.
type Args struct {
	// Namespace holds every namespaced object of the stack. Several stacks may share one when each
	// has its own component name. An input, so that it can be a Namespace the program creates
	// (ns.Metadata.Name().Elem(), with CreateNamespace false): every object then depends on it.
	// A name only known once resolved needs Storage.Filesystem.HostPath (hostPath mode) and
	// Autoscaling.KEDA.Query set, whose defaults are spelled with the name.
	Namespace pulumi.StringInput
	// CreateNamespace creates the namespace (with Pod Security labels) and deletes it on destroy;
	// false uses an existing one, which must allow the Pod Security level the pods need. The stack
	// names its Namespace resource after Namespace, which must then be a plain pulumi.String.
	CreateNamespace bool
	// Hostname is the DNS name clients use; ExtraDNSNames and ExtraIPAddresses are more names of the
	// certificate and the route.
	Hostname         string
	ExtraDNSNames    []string
	ExtraIPAddresses []string
	// Routing is the way in (exactly one mode set).
	Routing routing.Spec
	// TLS is the server certificate's source (exactly one set).
	TLS tlscert.Source
	// Storage is where the images live (exactly one driver set).
	Storage storage.Store
	// Registry is the registry's own Deployment.
	Registry RegistryArgs
	// Accounts are the registry's accounts, the first one the admin the outputs name; each gets its
	// own generated password.
	Accounts []string
	// Auth is how the accounts are checked: the zero value is htpasswd (every account may do
	// everything); Auth.Token runs a token server that grants each account what its rules allow.
	Auth auth.Spec
	// ClusterPull lets the cluster pull from the registry (pull Secrets, node agent); nil: nothing.
	ClusterPull *ClusterPullArgs
	// Cache keeps blob descriptors in Redis; nil: no Redis.
	Cache *CacheArgs
	// GC is the garbage collection CronJob and its watchdog.
	GC GCArgs
	// Retention deletes the tags its policies do not keep, first thing in every GC run; nil: no
	// tag is ever deleted.
	Retention *gc.Retention
	// Mirrors are pull-through caches, each its own registry instance; empty: none.
	Mirrors []Mirror
	// Monitoring exposes metrics to a Prometheus; nil: off.
	Monitoring *monitoring.Config
	// Autoscaling lets an autoscaler own the registry's replica count; nil: Registry.Replicas.
	Autoscaling *registry.Autoscaling
	// Placement adds scheduling and pod metadata to the stack's pods; nil adds nothing.
	Placement *PlacementArgs
}

// ClusterPullArgs let the cluster pull from its own registry.
type ClusterPullArgs struct {
	// Account is a pull-only account of token mode (no rule grants it push or delete) whose
	// credentials go in a kubernetes.io/dockerconfigjson Secret in each of Namespaces (which must
	// exist); both empty: no pull Secret.
	Account    string
	Namespaces []string
	// NodeAgent installs the CA and containerd hosts.toml of the registry and the mirrors on every
	// node; nil: nothing on the nodes. Its Namespace "" is <Namespace>-node-agent.
	NodeAgent *clusterpull.Agent
}

// PullSecretName is the name of the pull Secrets of the component name.
func PullSecretName(name string) string { return name + "-pull" }

// PlacementArgs place each workload's pods. All applies to every pod; a workload's own entry
// overrides it field by field (placement.Merge). GC (its Job and watchdog) also takes the
// registry's scheduling fields, not its pod labels or annotations: with a ReadWriteOnce volume
// the GC pod runs on the registry's node and must tolerate what the registry tolerates, but a
// sidecar-injection annotation meant for the registry would keep a Job from ever completing.
type PlacementArgs struct {
	All, Registry, Mirrors, Cache, GC *placement.Spec
}

// registry, mirrors, cache and gc are the effective placements.
func (p *PlacementArgs) registry() *placement.Spec {
	if p == nil {
		return nil
	}
	return placement.Merge(p.All, p.Registry)
}

func (p *PlacementArgs) mirrors() *placement.Spec {
	if p == nil {
		return nil
	}
	return placement.Merge(p.All, p.Mirrors)
}

func (p *PlacementArgs) cache() *placement.Spec {
	if p == nil {
		return nil
	}
	return placement.Merge(p.All, p.Cache)
}

func (p *PlacementArgs) gc() *placement.Spec {
	if p == nil {
		return nil
	}
	var scheduling *placement.Spec
	if r := p.Registry; r != nil {
		scheduling = &placement.Spec{NodeSelector: r.NodeSelector, Tolerations: r.Tolerations, Affinity: r.Affinity,
			PriorityClassName: r.PriorityClassName, ImagePullSecrets: r.ImagePullSecrets}
	}
	return placement.Merge(placement.Merge(p.All, scheduling), p.GC)
}

// RegistryArgs shape the registry's pods (the mirrors use the same image, log level and resources).
type RegistryArgs struct {
	// Image is a pinned CNCF distribution v3 image.
	Image string
	// Replicas is the fixed replica count (ignored with Autoscaling).
	Replicas int
	// LogLevel is error, warn, info or debug.
	LogLevel string
	// ServiceType is ClusterIP, NodePort or LoadBalancer.
	ServiceType string
	// CPURequest, MemoryRequest and MemoryLimit are Kubernetes quantities (no CPU limit is set).
	CPURequest    string
	MemoryRequest string
	MemoryLimit   string
	// Env is extra environment of the registry, every mirror and GC's collector (which reaches the
	// same store), e.g. HTTP_PROXY or OTEL exporter settings. REGISTRY_* and the names the stack
	// sets are refused (registry.ValidateExtraEnv).
	Env []registry.EnvVar
}

// CacheArgs shape the Redis cache.
type CacheArgs struct {
	// Image is a pinned Redis image (6.2 or later, for its ACL users).
	Image string
	// MaxMemory is Redis's maxmemory in redis.conf units (e.g. 64mb); keys are evicted LRU beyond it.
	MaxMemory string
	// CPURequest and MemoryRequest are Kubernetes quantities (the memory limit follows MaxMemory).
	CPURequest    string
	MemoryRequest string
}

// GCArgs shape garbage collection.
type GCArgs struct {
	// Schedule is a cron schedule (5 fields or a macro such as @weekly).
	Schedule string
	// Suspend stops scheduled runs (manual Jobs from the CronJob still work).
	Suspend bool
	// KubectlImage has sh, kubectl, date -d, sed and tr: the read-only switch, lease and watchdog.
	KubectlImage string
}

// Pod Security Standard levels the stack's pods meet.
const (
	PodSecurityRestricted = "restricted"
	PodSecurityBaseline   = "baseline"
)

// PodSecurityLevel is the Pod Security Standard every pod meets: restricted, unless the hostPath
// ownership fix (a root container with CHOWN) was asked for, which needs baseline.
func (a *Args) PodSecurityLevel() string {
	if fs := a.Storage.Filesystem; fs != nil && fs.ChownHostPath {
		return PodSecurityBaseline
	}
	return PodSecurityRestricted
}

// DNSNames are the names clients use: the hostname first, then the extra names, without duplicates.
func (a *Args) DNSNames() []string {
	names := []string{a.Hostname}
	for _, n := range a.ExtraDNSNames {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// Validate checks the structure and the required fields of every part, placement and extra
// environment; every error is reported at once, named by its field, before anything is registered.
// The values within each feature (hostnames, quantities, images, schedules, CIDRs, ...) are checked
// where stack config is parsed (stackconfig.Parse), which names the config key.
func (a *Args) Validate() error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%s: %s", field, why)) }
	ns, nsKnown := KnownString(a.Namespace)
	if a.Namespace == nil || nsKnown && ns == "" {
		bad("Namespace", "required")
	}
	if a.Namespace != nil && !nsKnown {
		if a.CreateNamespace {
			bad("Namespace", "a plain pulumi.String with CreateNamespace (the stack creates and names that Namespace); "+
				"pass a namespace your program creates with CreateNamespace false")
		}
		if fs := a.Storage.Filesystem; fs != nil && fs.Mode == storage.ModeHostPath && fs.HostPath == "" {
			bad("Storage.Filesystem.HostPath", "required when Namespace is an output (the default directory is named after the namespace)")
		}
		if as := a.Autoscaling; as != nil && as.KEDA != nil && as.KEDA.Query == "" {
			bad("Autoscaling.KEDA.Query", "required when Namespace is an output (the default query names the namespace)")
		}
	}
	if a.Hostname == "" {
		bad("Hostname", "required")
	}
	if (a.Routing.Ingress == nil) == (a.Routing.Gateway == nil) {
		bad("Routing", "exactly one of Ingress and Gateway must be set")
	}
	if (a.TLS.Generated == nil) == (a.TLS.Secret == nil) {
		bad("TLS", "exactly one of Generated and Secret must be set")
	}
	if (a.Storage.Filesystem == nil) == (a.Storage.S3 == nil) {
		bad("Storage", "exactly one of Filesystem and S3 must be set")
	}
	if len(a.Accounts) == 0 {
		bad("Accounts", "at least one account (the first is the admin the outputs name)")
	}
	r := a.Registry
	for _, f := range []struct{ field, value string }{{"Registry.Image", r.Image}, {"Registry.LogLevel", r.LogLevel},
		{"Registry.ServiceType", r.ServiceType}, {"Registry.CPURequest", r.CPURequest}, {"Registry.MemoryRequest", r.MemoryRequest},
		{"Registry.MemoryLimit", r.MemoryLimit}} {
		if f.value == "" {
			bad(f.field, "required")
		}
	}
	if in := a.Routing.Ingress; in != nil && a.Routing.Controller == routing.ControllerTraefik && in.TraefikEntryPoint == "" {
		bad("Routing.Ingress.TraefikEntryPoint", "required with controller traefik (its TLS entry point, e.g. websecure)")
	}
	if (a.Storage.Filesystem == nil) != (a.Storage.S3 == nil) {
		// An empty hostPath directory is derived later (DefaultHostPath): any value will do here.
		store := &storage.StorageArgs{Namespace: pulumi.String("validate"), Filesystem: withHostPath(a.Storage.Filesystem, "/data/validate"), S3: a.Storage.S3}
		if err := store.Validate(); err != nil {
			bad("Storage", err.Error())
		}
	}
	if a.Autoscaling == nil && a.Registry.Replicas < 1 {
		bad("Registry.Replicas", fmt.Sprintf("%d; at least 1 (or set Autoscaling)", a.Registry.Replicas))
	}
	if c := a.Cache; c != nil && (c.Image == "" || c.MaxMemory == "" || c.CPURequest == "" || c.MemoryRequest == "") {
		bad("Cache", "Image, MaxMemory, CPURequest and MemoryRequest are required")
	}
	if a.GC.Schedule == "" || a.GC.KubectlImage == "" {
		bad("GC", "Schedule and KubectlImage are required")
	}
	if r := a.Retention; r != nil {
		errs = append(errs, r.Validate("Retention")...)
	}
	if t := a.Auth.Token; t != nil {
		errs = append(errs, t.Validate("Auth.Token", a.Accounts)...)
	}
	for _, p := range ClusterPullProblems(a, "ClusterPull") {
		errs = append(errs, p)
	}
	if p := a.Placement; p != nil {
		for _, w := range []struct {
			path string
			spec *placement.Spec
		}{{"Placement.All", p.All}, {"Placement.Registry", p.Registry}, {"Placement.Mirrors", p.Mirrors}, {"Placement.Cache", p.Cache}, {"Placement.GC", p.GC}} {
			errs = append(errs, w.spec.Validate(w.path)...)
		}
	}
	errs = append(errs, ValidateExtraEnv("Registry.Env", false, a.Storage, a.Registry.Env)...)
	seen := map[string]bool{}
	for i, m := range a.Mirrors {
		if m.Name == "" || seen[m.Name] {
			bad(fmt.Sprintf("Mirrors[%d].Name", i), fmt.Sprintf("%q; a name no other mirror has", m.Name))
		}
		seen[m.Name] = true
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("registrystack: invalid args: %w", errors.Join(errs...))
}

// ClusterPullProblems names each invalid value of a.ClusterPull by its path under path: the pull
// account must be pull-only, which only token mode enforces; the namespaces DNS labels; the agent a
// directory, an image and a namespace it can name.
func ClusterPullProblems(a *Args, path string) []auth.Problem {
	c := a.ClusterPull
	if c == nil {
		return nil
	}
	var out []auth.Problem
	bad := func(at, value, allowed string) {
		out = append(out, auth.Problem{Path: at, Value: value, Allowed: allowed})
	}
	if (c.Account == "") != (len(c.Namespaces) == 0) {
		bad(path, fmt.Sprintf("account %q, namespaces %q", c.Account, c.Namespaces), "account and namespaces together (the account's pull Secret goes into the namespaces)")
	}
	if c.Account != "" {
		switch {
		case a.Auth.Token == nil:
			bad(path+".account", c.Account, "an account of token auth (set auth.token): every htpasswd account may push and delete every repository, so its credentials in pull Secrets would let any namespace overwrite images")
		case len(a.Accounts) > 0 && c.Account == a.Accounts[0]:
			bad(path+".account", c.Account, "an account other than the first (the admin): a pull-only account of its own")
		case !slices.Contains(a.Accounts, c.Account):
			bad(path+".account", c.Account, "one of the accounts: "+strings.Join(a.Accounts, ", "))
		default:
			for i, p := range a.Auth.Token.Permissions {
				if p.Account == c.Account && ((p.Access != "" && p.Access != "pull") || slices.ContainsFunc(p.Actions, func(x string) bool { return x != "pull" })) {
					bad(path+".account", c.Account, fmt.Sprintf("a pull-only account; auth.token.permissions[%d] grants it more than pull", i))
				}
			}
		}
	}
	stackNS, nsKnown := KnownString(a.Namespace)
	for i, ns := range c.Namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 || slices.Index(c.Namespaces, ns) != i || (nsKnown && ns == stackNS) {
			bad(fmt.Sprintf("%s.namespaces[%d]", path, i), ns, "a namespace name (DNS label), each once, not the stack's own")
		}
	}
	if g := c.NodeAgent; g != nil {
		if !pathpkg.IsAbs(g.ConfigPath) || pathpkg.Clean(g.ConfigPath) == "/" {
			bad(path+".nodeAgent.configPath", g.ConfigPath, "containerd's config_path on the nodes, an absolute directory")
		}
		if g.Image == "" {
			bad(path+".nodeAgent.image", "", "an image with sh (busybox)")
		}
		agentNS := g.Namespace
		if agentNS == "" && nsKnown {
			agentNS = stackNS + "-node-agent"
		}
		switch {
		case agentNS == "":
			bad(path+".nodeAgent.namespace", "", "a name: required when Namespace is an output (the default is <namespace>-node-agent)")
		case len(validation.IsDNS1123Label(agentNS)) > 0:
			bad(path+".nodeAgent.namespace", agentNS, "a namespace name (DNS label, at most 63 characters; the default is <namespace>-node-agent)")
		case (nsKnown && agentNS == stackNS) || slices.Contains(c.Namespaces, agentNS):
			bad(path+".nodeAgent.namespace", agentNS, "a namespace of its own (the stack creates it, Pod Security privileged), not the stack's or a listed one")
		}
	}
	return out
}

// KnownString is in's value when it is a plain pulumi.String, the value known before anything
// is registered; an output (of another resource) is not, and is checked once it resolves.
func KnownString(in pulumi.StringInput) (string, bool) {
	s, ok := in.(pulumi.String)
	return string(s), ok
}

// ValidateExtraEnv checks extra environment of the registry, its mirrors and GC's collector (who all
// get it) against the names each of them sets with store; path names the entries in errors (keyed:
// by name, as a config object holds them, else by index). Stack config and Args share it.
func ValidateExtraEnv(path string, keyed bool, store storage.Store, env []registry.EnvVar) []error {
	backend := backendOf(store)
	if backend == nil {
		return nil
	}
	return append(registry.ValidateExtraEnv(path, keyed, env, backend), gc.ValidateExtraEnv(path, keyed, env)...)
}

// backendOf is the storage backend the registry's container will see, for checks made before
// anything is registered (the Secret's name does not matter to them); nil without a driver.
func backendOf(s storage.Store) *storage.Backend {
	switch {
	case s.S3 != nil:
		return storage.S3Backend(s.S3, pulumi.String("validate"))
	case s.Filesystem != nil:
		return storage.FilesystemBackend(pulumi.String("validate"), s.Filesystem)
	}
	return nil
}
