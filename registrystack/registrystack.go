// Package registrystack is the whole private registry as one Pulumi component: storage, a Redis
// cache, CNCF distribution v3 replicas, pull-through mirrors, the way in (Ingress or Gateway API)
// with its certificate, a safe GC, monitoring and autoscaling. Call NewRegistryStack from any Go
// Pulumi program with a Kubernetes provider; the stack's own program (package main) only turns
// stack config into Args.
package registrystack

import (
	"fmt"
	"github.com/regstack/registry-stack/clusterpull"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/gateway"
	"github.com/regstack/registry-stack/gc"
	"github.com/regstack/registry-stack/ingress"
	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/monitoring"
	"github.com/regstack/registry-stack/redis"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/routing"
	"github.com/regstack/registry-stack/storage"
	"github.com/regstack/registry-stack/tlscert"
)

// Package is the name of the Pulumi package, also of the component provider's plugin
// (pulumi-resource-registry-stack).
const Package = "registry-stack"

// Type is the component's type token, also the component provider's resource type.
const Type = Package + ":index:RegistryStack"

// MirrorAccount is the generated account of every mirror that is not anonymous.
const MirrorAccount = "pull"

// RegistryStack is a deployed registry. Its fields are the outputs a client needs; Outputs holds
// every output by the name the stack program exports it under.
type RegistryStack struct {
	pulumi.ResourceState

	// URL is https://<hostname>.
	URL pulumi.StringOutput
	// Username is the admin account; Password its password (secret).
	Username pulumi.StringOutput
	Password pulumi.StringOutput
	// CACertPEM is the CA clients trust (empty with an outside certificate and no CA given).
	CACertPEM pulumi.StringOutput
	// Outputs are all outputs, secrets marked secret.
	Outputs pulumi.Map
}

// names are the component's instances, all derived from its name, so that stacks with different
// names share a namespace without a clash. With the name "registry" they are the names every stack
// had before the component existed.
type names struct {
	registry, storage, redis, gc, mirrorPrefix string
}

func namesOf(name string) names {
	return names{registry: name, storage: name + "-data", redis: name + "-redis", gc: name + "-gc", mirrorPrefix: name + "-mirror-"}
}

func (n names) mirror(m string) string { return n.mirrorPrefix + m }

// DefaultHostPath is the node directory of a hostPath store that does not name one: one per
// namespace and component, so that two stacks never share (and garbage-collect) one store. The
// component "registry" keeps /data/<namespace>, the directory of every stack before components
// had names of their own.
func DefaultHostPath(namespace, component string) string {
	if component == "registry" {
		return "/data/" + namespace
	}
	return "/data/" + namespace + "-" + component
}

// withHostPath is fs with def as its hostPath directory when it is a hostPath store naming none.
func withHostPath(fs *storage.Filesystem, def string) *storage.Filesystem {
	if fs == nil || fs.Mode != storage.ModeHostPath || fs.HostPath != "" {
		return fs
	}
	out := *fs
	out.HostPath = def
	return &out
}

// registryHostPath is the registry's hostPath directory, given or derived ("" unless hostPath).
func registryHostPath(args *Args, n names) string {
	ns, _ := KnownString(args.Namespace) // Validate: known unless the hostPath directory is given
	if fs := withHostPath(args.Storage.Filesystem, DefaultHostPath(ns, n.registry)); fs != nil {
		return fs.HostPath
	}
	return ""
}

// NewRegistryStack validates args and registers the registry. Pass the Kubernetes provider with
// pulumi.Provider or pulumi.Providers: every child inherits it.
func NewRegistryStack(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*RegistryStack, error) {
	if args == nil {
		return nil, fmt.Errorf("registrystack %s: args are required", name)
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	comp := &RegistryStack{}
	if err := ctx.RegisterComponentResource(Type, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registrystack %s: %w", name, err)
	}
	// Stacks deployed before the component existed registered its direct children at the stack's
	// root: the alias keeps their URNs (and those of everything below them), so upgrading replaces
	// nothing, neither the data claim nor a Secret, password or key.
	child := []pulumi.ResourceOption{pulumi.Parent(comp), pulumi.Aliases([]pulumi.Alias{{NoParent: pulumi.Bool(true)}})}
	out, err := deploy(ctx, args, namesOf(name), child)
	if err != nil {
		return nil, fmt.Errorf("registrystack %s: %w", name, err)
	}
	comp.Outputs = out
	comp.URL = out["url"].(pulumi.StringInput).ToStringOutput()
	comp.Username = out["username"].(pulumi.StringInput).ToStringOutput()
	comp.Password = pulumi.ToSecret(out["password"]).(pulumi.StringOutput)
	comp.CACertPEM = out["caCertPem"].(pulumi.StringInput).ToStringOutput()
	if err := ctx.RegisterResourceOutputs(comp, out); err != nil {
		return nil, fmt.Errorf("registrystack %s: outputs: %w", name, err)
	}
	return comp, nil
}

// deploy registers every part under the component (child: its parent and alias options) and
// returns the outputs.
func deploy(ctx *pulumi.Context, args *Args, n names, child []pulumi.ResourceOption) (pulumi.Map, error) {
	// Known (Validate) with CreateNamespace and wherever a default is spelled with it.
	nsName, nsKnown := KnownString(args.Namespace)
	if !nsKnown {
		nsName = "(from an output)"
	}
	namespace := args.Namespace.ToStringOutput().ApplyT(func(ns string) (string, error) {
		if ns == "" {
			// An empty namespace would put every object in the provider's default namespace.
			return "", fmt.Errorf("Namespace: resolved to an empty name")
		}
		return ns, nil
	}).(pulumi.StringOutput)
	level := args.PodSecurityLevel()
	if level != PodSecurityRestricted {
		msg := fmt.Sprintf("namespace %s enforces Pod Security level %q, not restricted: "+
			"storage.filesystem.chownHostPath runs a root init container (CHOWN only) in every registry and mirror pod", nsName, level)
		if !args.CreateNamespace {
			msg = fmt.Sprintf("storage.filesystem.chownHostPath runs a root init container (CHOWN only) in every registry and mirror pod: "+
				"namespace %s must allow Pod Security level %q (a restricted namespace refuses these pods)", nsName, level)
		}
		if err := ctx.Log.Warn(msg, nil); err != nil {
			return nil, fmt.Errorf("log: %w", err)
		}
	}
	if args.CreateNamespace {
		ns, err := corev1.NewNamespace(ctx, nsName, &corev1.NamespaceArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name:   pulumi.String(nsName),
				Labels: kube.StringMap(NamespaceLabels(n.registry, level)),
			},
		}, child...)
		if err != nil {
			return nil, fmt.Errorf("namespace %q: %w", nsName, err)
		}
		namespace = ns.Metadata.Name().Elem()
	}

	data, err := storage.NewStorage(ctx, n.storage, &storage.StorageArgs{
		Namespace:  namespace,
		Filesystem: withHostPath(args.Storage.Filesystem, registryHostPath(args, n)),
		S3:         args.Storage.S3,
	}, child...)
	if err != nil {
		return nil, err
	}

	var cache *redis.Redis
	if c := args.Cache; c != nil {
		maxMemoryBytes, err := redis.MaxMemoryBytes(c.MaxMemory)
		if err != nil {
			return nil, fmt.Errorf("Cache.MaxMemory: %w", err)
		}
		cache, err = redis.NewRedis(ctx, n.redis, &redis.RedisArgs{
			Namespace:       namespace,
			Image:           c.Image,
			MaxMemory:       c.MaxMemory,
			MaxMemoryBytes:  maxMemoryBytes,
			CPURequest:      c.CPURequest,
			MemoryRequest:   c.MemoryRequest,
			Placement:       args.Placement.cache(),
			ClientSelectors: cacheClients(args, n),
			// Mirrors keep their caches in databases 1, 2, ...
			SelectDatabases: len(args.Mirrors) > 0,
		}, child...)
		if err != nil {
			return nil, err
		}
	}

	autoscaling := args.Autoscaling
	if a := autoscaling; a != nil && a.KEDA != nil && a.KEDA.Query == "" {
		// The default query: in-flight requests of this registry's pods, as the ServiceMonitor's
		// series name them (namespace and metrics Service, named after the component).
		keda := *a.KEDA
		keda.Query = fmt.Sprintf(`sum(registry_http_in_flight_requests{namespace=%q,service=%q})`, nsName, monitoring.MetricsServiceName(n.registry))
		copied := *a
		copied.KEDA = &keda
		autoscaling = &copied
	}
	r := args.Registry
	regArgs := &registry.RegistryArgs{
		Namespace:     namespace,
		Storage:       data.Backend,
		Image:         r.Image,
		Replicas:      r.Replicas,
		Accounts:      args.Accounts,
		Auth:          args.Auth,
		Hostname:      args.Hostname,
		LogLevel:      r.LogLevel,
		ServiceType:   r.ServiceType,
		CPURequest:    r.CPURequest,
		MemoryRequest: r.MemoryRequest,
		MemoryLimit:   r.MemoryLimit,
		Autoscaling:   autoscaling,
		Placement:     args.Placement.registry(),
		ExtraEnv:      r.Env,
		// Retention's loopback registry reads its own config from the registry's config Secret.
		LocalConfig: args.Retention != nil,
	}
	if cache != nil {
		regArgs.CacheEnabled, regArgs.RedisAddr, regArgs.RedisUsername, regArgs.RedisPassword = true, cache.Address, redis.RegistryUser, cache.Password
	}
	reg, err := registry.NewRegistry(ctx, n.registry, regArgs, child...)
	if err != nil {
		return nil, err
	}

	mirrors, err := newMirrors(ctx, args, n, namespace, cache, child)
	if err != nil {
		return nil, err
	}

	var mirrorHosts []string
	for _, m := range args.Mirrors {
		mirrorHosts = append(mirrorHosts, m.Hostname)
	}
	cert, err := tlscert.NewTLS(ctx, n.registry, &tlscert.TLSArgs{
		Namespace:   namespace,
		DNSNames:    append(args.DNSNames(), mirrorHosts...),
		IPAddresses: args.ExtraIPAddresses,
		Generated:   args.TLS.Generated,
		Secret:      args.TLS.Secret,
	}, child...)
	if err != nil {
		return nil, err
	}
	routes := []kube.Route{{Name: n.registry, Hostnames: args.DNSNames(), ServiceName: reg.ServiceName, ServicePort: registry.Port}}
	if reg.AuthRoute != nil {
		routes[0].Paths = []kube.Path{*reg.AuthRoute}
	}
	for _, m := range mirrors {
		routes = append(routes, kube.Route{Name: m.instance, Hostnames: []string{m.cfg.Hostname}, ServiceName: m.reg.ServiceName, ServicePort: registry.Port})
	}
	route, err := newRoute(ctx, args, n, namespace, routes, cert, child)
	if err != nil {
		return nil, err
	}

	var clusterPullOutputs pulumi.Map
	gcArgs := &gc.GCArgs{
		Namespace:        namespace,
		Schedule:         args.GC.Schedule,
		Suspend:          args.GC.Suspend,
		DeploymentName:   reg.DeploymentName,
		ContainerName:    registry.ContainerName,
		RegistrySelector: registry.PodSelector(n.registry),
		RegistryImage:    r.Image,
		RegistryUID:      registry.UID,
		ConfigSecretName: reg.ConfigSecretName,
		Storage:          data.Backend,
		KubectlImage:     args.GC.KubectlImage,
		Placement:        args.Placement.gc(),
		ExtraEnv:         r.Env,
		Retention:        args.Retention,
	}
	if cache != nil {
		gcArgs.CacheEnabled = true
		gcArgs.RedisHost = cache.ServiceName
		gcArgs.RedisPort = redis.Port
		gcArgs.RedisImage = args.Cache.Image
		gcArgs.RedisUsername = redis.FlushUser
		gcArgs.RedisPasswordSecret = cache.SecretName
		gcArgs.RedisPasswordKey = redis.FlushPasswordKey
	}
	collector, err := gc.NewGC(ctx, n.gc, gcArgs, child...)
	if err != nil {
		return nil, err
	}

	if c := args.ClusterPull; c != nil {
		pull, err := newClusterPull(ctx, args, n, nsName, reg, cert, mirrors, child)
		if err != nil {
			return nil, err
		}
		clusterPullOutputs = pulumi.Map{"pullSecretNames": pull.SecretNames}
		if c.NodeAgent != nil {
			clusterPullOutputs["nodeAgentNamespace"] = pull.AgentNamespace
		}
	}

	out := stackOutputs(args, namespace, reg, cert, route, collector, data, cache)
	for k, v := range clusterPullOutputs {
		out[k] = v
	}
	for k, v := range mirrorOutputs(args, mirrors) {
		out[k] = v
	}
	if args.Autoscaling != nil {
		out["autoscalerName"] = pulumi.String(registry.AutoscalerName(n.registry, args.Autoscaling))
	}
	if args.Monitoring != nil {
		mon, err := newMonitoring(ctx, args, n, namespace, mirrors, cert, cache != nil, child)
		if err != nil {
			return nil, err
		}
		out["metricsServiceNames"] = mon.MetricsServiceNames
	}
	return out, nil
}

// newClusterPull registers the pull Secrets of args.ClusterPull's account and its node agent.
func newClusterPull(ctx *pulumi.Context, args *Args, n names, nsName string, reg *registry.Registry, cert *tlscert.TLS,
	mirrors []*mirror, child []pulumi.ResourceOption) (*clusterpull.ClusterPull, error) {
	c := args.ClusterPull
	in := &clusterpull.ClusterPullArgs{
		Hostname:   args.Hostname,
		Namespaces: c.Namespaces,
		SecretName: PullSecretName(n.registry),
	}
	if c.Account != "" {
		in.Username, in.Password = c.Account, pulumi.ToSecret(reg.Passwords.MapIndex(pulumi.String(c.Account))).(pulumi.StringOutput)
	}
	if g := c.NodeAgent; g != nil {
		agent := *g
		if agent.Namespace == "" {
			agent.Namespace = nsName + "-node-agent"
		}
		in.Agent = &agent
		if trustCA := args.TLS.Secret == nil || args.TLS.Secret.CACertPEM != ""; trustCA {
			in.CACertPEM = cert.CACertPem
		}
		if len(mirrors) > 0 {
			in.MirrorHosts = mirrorHostFiles(mirrors, in.CACertPEM != nil, agent.ConfigPath, false)
		}
	}
	return clusterpull.NewClusterPull(ctx, n.registry+"-pull", in, child...)
}

// newMonitoring registers the metrics Services of the registry and each mirror and the monitoring
// objects args.Monitoring switches on.
func newMonitoring(ctx *pulumi.Context, args *Args, n names, namespace pulumi.StringInput, mirrors []*mirror,
	cert *tlscert.TLS, cache bool, child []pulumi.ResourceOption) (*monitoring.Monitoring, error) {
	targets := []monitoring.Target{{Instance: n.registry, PodSelector: registry.PodSelector(n.registry)}}
	for _, m := range mirrors {
		targets = append(targets, monitoring.Target{Instance: m.instance, PodSelector: registry.PodSelector(m.instance)})
	}
	mon := &monitoring.MonitoringArgs{
		Namespace: namespace,
		Targets:   targets,
		Config:    args.Monitoring,
		GCCronJob: n.gc,
		Cache:     cache,
	}
	if args.Autoscaling != nil {
		mon.Autoscaler = registry.AutoscalerName(n.registry, args.Autoscaling)
	}
	// The claims holding images, by name: the storage components name their claims after
	// themselves.
	if args.Storage.Filesystem != nil {
		mon.Claims = append(mon.Claims, n.storage)
	}
	for _, m := range mirrors {
		if m.cfg.Storage.Filesystem != nil {
			mon.Claims = append(mon.Claims, m.instance+"-data")
		}
	}
	if g := args.TLS.Generated; g != nil {
		// Half of the early-renewal window (the last tenth of validity): a `pulumi up` was due.
		mon.CertNotAfter, mon.CertWarnBefore = cert.NotAfter, tlscert.ValidityOrDefault(g.ValidityHours)/20
	}
	return monitoring.NewMonitoring(ctx, n.registry, mon, child...)
}

// NamespaceLabels are the created namespace's labels: Pod Security admission enforces level (the
// API server refuses any pod that does not meet it) and warns and audits against restricted.
func NamespaceLabels(instance, level string) map[string]string {
	labels := kube.Labels("registry", instance, "namespace")
	labels["pod-security.kubernetes.io/enforce"] = level
	labels["pod-security.kubernetes.io/warn"] = PodSecurityRestricted
	labels["pod-security.kubernetes.io/audit"] = PodSecurityRestricted
	return labels
}

// cacheClients select the pods that may reach Redis: the registry, GC's flush, every mirror.
func cacheClients(args *Args, n names) []map[string]string {
	clients := []map[string]string{registry.PodSelector(n.registry), gc.PodSelector(n.gc)}
	for _, m := range args.Mirrors {
		clients = append(clients, registry.PodSelector(n.mirror(m.Name)))
	}
	return clients
}

// mirror is one deployed pull-through cache.
type mirror struct {
	cfg      Mirror
	instance string
	reg      *registry.Registry
	data     *storage.Storage
}

// newMirrors registers each mirror: a registry instance in proxy mode with a store of its own, its
// own Redis database (1, 2, ...; the registry has 0) and, unless anonymous, its own account.
func newMirrors(ctx *pulumi.Context, args *Args, n names, namespace pulumi.StringInput, cache *redis.Redis,
	child []pulumi.ResourceOption) ([]*mirror, error) {
	var out []*mirror
	r := args.Registry
	for i, m := range args.Mirrors {
		instance := n.mirror(m.Name)
		data, err := storage.NewStorage(ctx, instance+"-data", &storage.StorageArgs{
			Namespace:  namespace,
			Filesystem: withHostPath(m.Storage.Filesystem, registryHostPath(args, n)+"-mirror-"+m.Name),
			S3:         m.Storage.S3,
		}, child...)
		if err != nil {
			return nil, err
		}
		proxy := &registry.ProxyArgs{RemoteURL: m.Upstream, TTL: m.TTL, CABundlePEM: m.CABundlePEM, Anonymous: m.Anonymous}
		if c := m.Credentials; c != nil {
			proxy.Username, proxy.Password = c.Username, pulumi.ToSecret(pulumi.String(c.Password)).(pulumi.StringOutput)
		}
		regArgs := &registry.RegistryArgs{
			Namespace: namespace,
			Storage:   data.Backend,
			Image:     r.Image,
			Replicas:  1,
			LogLevel:  r.LogLevel,
			// Reached through the route only: registry.serviceType is the registry's Service's.
			ServiceType:   "ClusterIP",
			CPURequest:    r.CPURequest,
			MemoryRequest: r.MemoryRequest,
			MemoryLimit:   r.MemoryLimit,
			Proxy:         proxy,
			RedisDB:       i + 1,
			Placement:     args.Placement.mirrors(),
			ExtraEnv:      r.Env,
		}
		if !m.Anonymous {
			regArgs.Accounts = []string{MirrorAccount}
		}
		if cache != nil {
			regArgs.CacheEnabled, regArgs.RedisAddr, regArgs.RedisUsername, regArgs.RedisPassword = true, cache.Address, redis.RegistryUser, cache.Password
		}
		reg, err := registry.NewRegistry(ctx, instance, regArgs, child...)
		if err != nil {
			return nil, err
		}
		out = append(out, &mirror{cfg: m, instance: instance, reg: reg, data: data})
	}
	return out, nil
}

// routeInfo is what the outputs say about the way in.
type routeInfo struct {
	// Description names the mode and its controller, e.g. "ingress (class traefik, controller traefik)".
	Description pulumi.StringOutput
	// Name is the Ingress or the HTTPRoute.
	Name pulumi.StringOutput
}

// newRoute registers the way in that args.Routing chooses (exactly one is set) for the routes, the
// registry's first.
func newRoute(ctx *pulumi.Context, args *Args, n names, namespace pulumi.StringInput, routes []kube.Route,
	cert *tlscert.TLS, child []pulumi.ResourceOption) (*routeInfo, error) {
	r := args.Routing
	switch {
	case r.Ingress != nil:
		if r.Controller == routing.ControllerOther {
			// Said on every preview and up: nothing the stack sets keeps this controller from
			// also serving the registry (and taking its credentials) on plain HTTP.
			if err := ctx.Log.Warn(fmt.Sprintf("routing.ingress.controller=other: the stack cannot keep IngressClass %s from serving %s on plain HTTP; "+
				"make sure that controller serves the host on HTTPS only", r.Ingress.ClassName, args.Hostname), nil); err != nil {
				return nil, fmt.Errorf("routing: warn: %w", err)
			}
		}
		ing, err := ingress.NewIngress(ctx, n.registry, &ingress.IngressArgs{
			Namespace:         namespace,
			Routes:            routes,
			ClassName:         r.Ingress.ClassName,
			Controller:        r.Controller,
			TraefikEntryPoint: r.Ingress.TraefikEntryPoint,
			SourceRanges:      r.SourceRanges,
			TLSSecretName:     cert.SecretName,
		}, child...)
		if err != nil {
			return nil, err
		}
		return &routeInfo{pulumi.Sprintf("ingress (class %s, controller %s)", r.Ingress.ClassName, r.Controller), ing.IngressName}, nil
	case r.Gateway != nil:
		gw, err := gateway.NewGateway(ctx, n.registry, &gateway.GatewayArgs{
			Namespace:     namespace,
			Routes:        routes,
			Create:        r.Gateway.Create,
			Existing:      r.Gateway.Existing,
			Controller:    r.Controller,
			SourceRanges:  r.SourceRanges,
			TLSSecretName: cert.SecretName,
		}, child...)
		if err != nil {
			return nil, err
		}
		var desc pulumi.StringOutput
		if c := r.Gateway.Create; c != nil {
			desc = pulumi.Sprintf("gateway (created, class %s, listener port %d, controller %s)", c.ClassName, c.ListenerPort, r.Controller)
		} else {
			e := r.Gateway.Existing
			ctrl := string(r.Controller)
			if r.Controller == routing.ControllerOfGatewayClass {
				ctrl = "of its GatewayClass"
			}
			desc = pulumi.Sprintf("gateway (existing %s/%s, listener %s, controller %s)", e.Namespace, e.Name, e.SectionName, ctrl)
		}
		return &routeInfo{desc, gw.RouteName}, nil
	}
	return nil, fmt.Errorf("routing: no mode set")
}
