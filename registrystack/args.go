package registrystack

import (
	"errors"
	"fmt"
	"slices"

	"github.com/regstack/registry-stack/monitoring"
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
	// has its own component name.
	Namespace string
	// CreateNamespace creates the namespace (with Pod Security labels) and deletes it on destroy;
	// false uses an existing one, which must allow the Pod Security level the pods need.
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
	// Accounts are the htpasswd accounts, the first one the admin the outputs name; each gets its
	// own generated password.
	Accounts []string
	// Cache keeps blob descriptors in Redis; nil: no Redis.
	Cache *CacheArgs
	// GC is the garbage collection CronJob and its watchdog.
	GC GCArgs
	// Mirrors are pull-through caches, each its own registry instance; empty: none.
	Mirrors []Mirror
	// Monitoring exposes metrics to a Prometheus; nil: off.
	Monitoring *monitoring.Config
	// Autoscaling lets an autoscaler own the registry's replica count; nil: Registry.Replicas.
	Autoscaling *registry.Autoscaling
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

// Validate checks what the component itself relies on; every error is reported at once, named by
// its field. The values within each feature are checked where stack config is parsed
// (stackconfig.Parse), which names the config key.
func (a *Args) Validate() error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%s: %s", field, why)) }
	if a.Namespace == "" {
		bad("Namespace", "required")
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
	if a.Registry.Image == "" {
		bad("Registry.Image", "required")
	}
	if a.Autoscaling == nil && a.Registry.Replicas < 1 {
		bad("Registry.Replicas", fmt.Sprintf("%d; at least 1 (or set Autoscaling)", a.Registry.Replicas))
	}
	if a.Cache != nil && a.Cache.Image == "" {
		bad("Cache.Image", "required")
	}
	if a.GC.Schedule == "" || a.GC.KubectlImage == "" {
		bad("GC", "Schedule and KubectlImage are required")
	}
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
