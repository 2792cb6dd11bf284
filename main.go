// Command registry-stack deploys a private Docker/OCI registry on Kubernetes: storage, a Redis
// cache, CNCF distribution v3 replicas, an Ingress with a generated CA, and a safe GC CronJob.
// This file only wires the components; stackconfig holds every setting.
package main

import (
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
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
	"github.com/regstack/registry-stack/stackconfig"
	"github.com/regstack/registry-stack/storage"
	"github.com/regstack/registry-stack/tlscert"
)

// Names of the component instances; the Kubernetes objects are named after them.
const (
	registryName = "registry"
	storageName  = "registry-data"
	redisName    = "registry-redis"
	gcName       = "registry-gc"
	// mirrorPrefix + a mirror's name is the mirror's instance.
	mirrorPrefix = "registry-mirror-"
	// MirrorAccount is the generated account of every mirror that is not anonymous.
	MirrorAccount = "pull"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		cfg, err := stackconfig.Load(ctx)
		if err != nil {
			return err
		}
		outputs, err := deploy(ctx, cfg)
		if err != nil {
			return err
		}
		for k, v := range outputs {
			ctx.Export(k, v)
		}
		return nil
	})
}

// deploy registers every component and returns the stack outputs.
func deploy(ctx *pulumi.Context, cfg *stackconfig.Config) (pulumi.Map, error) {

	// An explicit provider: the stack deploys to the context it names, never to whatever kubectl
	// context happens to be current (empty kubeContext = current, said out loud in the config).
	providerArgs := &kubernetes.ProviderArgs{
		// Update Secrets and ConfigMaps in place. By default the provider replaces them on any data
		// change; with fixed names that is delete-then-create, which cascades into replacing the
		// Deployments that mount them (all pods gone at once). Pods roll on the checksum annotation.
		EnableSecretMutable:    pulumi.Bool(true),
		EnableConfigMapMutable: pulumi.Bool(true),
	}
	if cfg.KubeContext != "" {
		providerArgs.Context = pulumi.String(cfg.KubeContext)
	}
	provider, err := kubernetes.NewProvider(ctx, "k8s", providerArgs)
	if err != nil {
		return nil, fmt.Errorf("kubernetes provider: %w", err)
	}
	k8s := pulumi.Provider(provider)

	namespace := pulumi.String(cfg.Namespace).ToStringOutput()
	level := cfg.PodSecurityLevel()
	if level != stackconfig.PodSecurityRestricted {
		msg := fmt.Sprintf("namespace %s enforces Pod Security level %q, not restricted: "+
			"storageHostPathChown runs a root init container (CHOWN only) in every registry and mirror pod", cfg.Namespace, level)
		if !cfg.CreateNamespace {
			msg = fmt.Sprintf("storageHostPathChown runs a root init container (CHOWN only) in every registry and mirror pod: "+
				"namespace %s must allow Pod Security level %q (a restricted namespace refuses these pods)", cfg.Namespace, level)
		}
		if err := ctx.Log.Warn(msg, nil); err != nil {
			return nil, fmt.Errorf("log: %w", err)
		}
	}
	if cfg.CreateNamespace {
		ns, err := corev1.NewNamespace(ctx, cfg.Namespace, &corev1.NamespaceArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name:   pulumi.String(cfg.Namespace),
				Labels: kube.StringMap(NamespaceLabels(level)),
			},
		}, k8s)
		if err != nil {
			return nil, fmt.Errorf("namespace %q: %w", cfg.Namespace, err)
		}
		namespace = ns.Metadata.Name().Elem()
	}

	data, err := storage.NewStorage(ctx, storageName, &storage.StorageArgs{
		Namespace:  namespace,
		Filesystem: cfg.Storage.Filesystem,
		S3:         cfg.Storage.S3,
	}, k8s)
	if err != nil {
		return nil, err
	}

	var cache *redis.Redis
	if cfg.CacheEnabled {
		maxMemoryBytes, err := stackconfig.RedisMaxMemoryBytes(cfg.RedisMaxMemory)
		if err != nil {
			return nil, fmt.Errorf("config redisMaxMemory: %w", err)
		}
		cache, err = redis.NewRedis(ctx, redisName, &redis.RedisArgs{
			Namespace:       namespace,
			Image:           cfg.RedisImage,
			MaxMemory:       cfg.RedisMaxMemory,
			MaxMemoryBytes:  maxMemoryBytes,
			CPURequest:      cfg.RedisCPURequest,
			MemoryRequest:   cfg.RedisMemoryRequest,
			ClientSelectors: cacheClients(cfg),
			// Mirrors keep their caches in databases 1, 2, ...
			SelectDatabases: len(cfg.Mirrors) > 0,
		}, k8s)
		if err != nil {
			return nil, err
		}
	}

	regArgs := &registry.RegistryArgs{
		Namespace:     namespace,
		Storage:       data.Backend,
		Image:         cfg.RegistryImage,
		Replicas:      cfg.Replicas,
		Accounts:      cfg.Accounts(),
		LogLevel:      cfg.LogLevel,
		ServiceType:   cfg.ServiceType,
		CPURequest:    cfg.RegistryCPURequest,
		MemoryRequest: cfg.RegistryMemoryRequest,
		MemoryLimit:   cfg.RegistryMemoryLimit,
		Autoscaling:   cfg.Autoscaling,
	}
	if cache != nil {
		regArgs.CacheEnabled, regArgs.RedisAddr, regArgs.RedisUsername, regArgs.RedisPassword = true, cache.Address, redis.RegistryUser, cache.Password
	}
	reg, err := registry.NewRegistry(ctx, registryName, regArgs, k8s)
	if err != nil {
		return nil, err
	}

	mirrors, err := newMirrors(ctx, cfg, namespace, cache, k8s)
	if err != nil {
		return nil, err
	}

	cert, err := tlscert.NewTLS(ctx, registryName, &tlscert.TLSArgs{
		Namespace:   namespace,
		DNSNames:    append(cfg.DNSNames(), cfg.MirrorHostnames()...),
		IPAddresses: cfg.ExtraIPAddresses,
		Generated:   cfg.TLS.Generated,
		Secret:      cfg.TLS.Secret,
	}, k8s)
	if err != nil {
		return nil, err
	}
	routes := []kube.Route{{Name: registryName, Hostnames: cfg.DNSNames(), ServiceName: reg.ServiceName, ServicePort: registry.Port}}
	for _, m := range mirrors {
		routes = append(routes, kube.Route{Name: m.instance, Hostnames: []string{m.cfg.Hostname}, ServiceName: m.reg.ServiceName, ServicePort: registry.Port})
	}
	route, err := newRoute(ctx, cfg, namespace, routes, cert, k8s)
	if err != nil {
		return nil, err
	}

	gcArgs := &gc.GCArgs{
		Namespace:        namespace,
		Schedule:         cfg.GCSchedule,
		Suspend:          cfg.GCSuspend,
		DeploymentName:   reg.DeploymentName,
		ContainerName:    registry.ContainerName,
		RegistrySelector: registry.PodSelector(registryName),
		RegistryImage:    cfg.RegistryImage,
		RegistryUID:      registry.UID,
		ConfigSecretName: reg.ConfigSecretName,
		Storage:          data.Backend,
		KubectlImage:     cfg.GCKubectlImage,
	}
	if cache != nil {
		gcArgs.CacheEnabled = true
		gcArgs.RedisHost = cache.ServiceName
		gcArgs.RedisPort = redis.Port
		gcArgs.RedisImage = cfg.RedisImage
		gcArgs.RedisUsername = redis.FlushUser
		gcArgs.RedisPasswordSecret = cache.SecretName
		gcArgs.RedisPasswordKey = redis.FlushPasswordKey
	}
	collector, err := gc.NewGC(ctx, gcName, gcArgs, k8s)
	if err != nil {
		return nil, err
	}

	out := stackOutputs(cfg, reg, cert, route, collector, data, cache)
	for k, v := range mirrorOutputs(cfg, mirrors) {
		out[k] = v
	}
	if cfg.Autoscaling != nil {
		out["autoscalerName"] = pulumi.String(registry.AutoscalerName(registryName, cfg.Autoscaling))
	}
	if cfg.Monitoring != nil {
		mon, err := newMonitoring(ctx, cfg, namespace, mirrors, cert, cache != nil, k8s)
		if err != nil {
			return nil, err
		}
		out["metricsServiceNames"] = mon.MetricsServiceNames
	}
	return out, nil
}

// newMonitoring registers the metrics Services of the registry and each mirror and the monitoring
// objects cfg.Monitoring switches on.
func newMonitoring(ctx *pulumi.Context, cfg *stackconfig.Config, namespace pulumi.StringInput, mirrors []*mirror,
	cert *tlscert.TLS, cache bool, k8s pulumi.ResourceOption) (*monitoring.Monitoring, error) {
	targets := []monitoring.Target{{Instance: registryName, PodSelector: registry.PodSelector(registryName)}}
	for _, m := range mirrors {
		targets = append(targets, monitoring.Target{Instance: m.instance, PodSelector: registry.PodSelector(m.instance)})
	}
	args := &monitoring.MonitoringArgs{
		Namespace:     namespace,
		NamespaceName: cfg.Namespace,
		Targets:       targets,
		Config:        cfg.Monitoring,
		GCCronJob:     gcName,
		Cache:         cache,
	}
	if cfg.Autoscaling != nil {
		args.Autoscaler = registry.AutoscalerName(registryName, cfg.Autoscaling)
	}
	if g := cfg.TLS.Generated; g != nil {
		// Half of the early-renewal window (the last tenth of validity): a `pulumi up` was due.
		args.CertNotAfter, args.CertWarnBefore = cert.NotAfter, tlscert.ValidityOrDefault(g.ValidityHours)/20
	}
	return monitoring.NewMonitoring(ctx, registryName, args, k8s)
}

// NamespaceLabels are the created namespace's labels: Pod Security admission enforces level (the
// API server refuses any pod that does not meet it) and warns and audits against restricted.
func NamespaceLabels(level string) map[string]string {
	labels := kube.Labels("registry", registryName, "namespace")
	labels["pod-security.kubernetes.io/enforce"] = level
	labels["pod-security.kubernetes.io/warn"] = stackconfig.PodSecurityRestricted
	labels["pod-security.kubernetes.io/audit"] = stackconfig.PodSecurityRestricted
	return labels
}

// cacheClients select the pods that may reach Redis: the registry, GC's flush, every mirror.
func cacheClients(cfg *stackconfig.Config) []map[string]string {
	clients := []map[string]string{registry.PodSelector(registryName), gc.PodSelector(gcName)}
	for _, m := range cfg.Mirrors {
		clients = append(clients, registry.PodSelector(mirrorPrefix+m.Name))
	}
	return clients
}

// mirror is one deployed pull-through cache.
type mirror struct {
	cfg      stackconfig.Mirror
	instance string
	reg      *registry.Registry
	data     *storage.Storage
}

// newMirrors registers each mirror: a registry instance in proxy mode with a store of its own, its
// own Redis database (1, 2, ...; the registry has 0) and, unless anonymous, its own account.
func newMirrors(ctx *pulumi.Context, cfg *stackconfig.Config, namespace pulumi.StringInput, cache *redis.Redis,
	k8s pulumi.ResourceOption) ([]*mirror, error) {
	var out []*mirror
	for i, m := range cfg.Mirrors {
		instance := mirrorPrefix + m.Name
		data, err := storage.NewStorage(ctx, instance+"-data", &storage.StorageArgs{
			Namespace:  namespace,
			Filesystem: m.Storage.Filesystem,
			S3:         m.Storage.S3,
		}, k8s)
		if err != nil {
			return nil, err
		}
		proxy := &registry.ProxyArgs{RemoteURL: m.Upstream, TTL: m.TTL, CABundlePEM: m.CABundlePEM, Anonymous: m.Anonymous}
		if c := m.Credentials; c != nil {
			proxy.Username, proxy.Password = c.Username, pulumi.ToSecret(pulumi.String(c.Password)).(pulumi.StringOutput)
		}
		args := &registry.RegistryArgs{
			Namespace:     namespace,
			Storage:       data.Backend,
			Image:         cfg.RegistryImage,
			Replicas:      1,
			LogLevel:      cfg.LogLevel,
			CPURequest:    cfg.RegistryCPURequest,
			MemoryRequest: cfg.RegistryMemoryRequest,
			MemoryLimit:   cfg.RegistryMemoryLimit,
			Proxy:         proxy,
			RedisDB:       i + 1,
		}
		if !m.Anonymous {
			args.Accounts = []string{MirrorAccount}
		}
		if cache != nil {
			args.CacheEnabled, args.RedisAddr, args.RedisUsername, args.RedisPassword = true, cache.Address, redis.RegistryUser, cache.Password
		}
		reg, err := registry.NewRegistry(ctx, instance, args, k8s)
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
	Description string
	// Name is the Ingress or the HTTPRoute.
	Name pulumi.StringOutput
}

// newRoute registers the way in that cfg.Routing chooses (exactly one is set) for the routes, the
// registry's first.
func newRoute(ctx *pulumi.Context, cfg *stackconfig.Config, namespace pulumi.StringInput, routes []kube.Route,
	cert *tlscert.TLS, k8s pulumi.ResourceOption) (*routeInfo, error) {
	r := cfg.Routing
	switch {
	case r.Ingress != nil:
		if r.Controller == stackconfig.ControllerOther {
			// Said on every preview and up: nothing the stack sets keeps this controller from
			// also serving the registry (and taking its credentials) on plain HTTP.
			if err := ctx.Log.Warn(fmt.Sprintf("ingressController=other: the stack cannot keep IngressClass %s from serving %s on plain HTTP; "+
				"make sure that controller serves the host on HTTPS only", r.Ingress.ClassName, cfg.Hostname), nil); err != nil {
				return nil, fmt.Errorf("routing: warn: %w", err)
			}
		}
		ing, err := ingress.NewIngress(ctx, registryName, &ingress.IngressArgs{
			Namespace:         namespace,
			Routes:            routes,
			ClassName:         r.Ingress.ClassName,
			Controller:        r.Controller,
			TraefikEntryPoint: r.Ingress.TraefikEntryPoint,
			SourceRanges:      r.SourceRanges,
			TLSSecretName:     cert.SecretName,
		}, k8s)
		if err != nil {
			return nil, err
		}
		return &routeInfo{fmt.Sprintf("ingress (class %s, controller %s)", r.Ingress.ClassName, r.Controller), ing.IngressName}, nil
	case r.Gateway != nil:
		gw, err := gateway.NewGateway(ctx, registryName, &gateway.GatewayArgs{
			Namespace:     namespace,
			Routes:        routes,
			Create:        r.Gateway.Create,
			Existing:      r.Gateway.Existing,
			Controller:    r.Controller,
			SourceRanges:  r.SourceRanges,
			TLSSecretName: cert.SecretName,
		}, k8s)
		if err != nil {
			return nil, err
		}
		var desc string
		if c := r.Gateway.Create; c != nil {
			desc = fmt.Sprintf("gateway (created, class %s, listener port %d, controller %s)", c.ClassName, c.ListenerPort, r.Controller)
		} else {
			e := r.Gateway.Existing
			ctrl := string(r.Controller)
			if r.Controller == stackconfig.ControllerOfGatewayClass {
				ctrl = "of its GatewayClass"
			}
			desc = fmt.Sprintf("gateway (existing %s/%s, listener %s, controller %s)", e.Namespace, e.Name, e.SectionName, ctrl)
		}
		return &routeInfo{desc, gw.RouteName}, nil
	}
	return nil, fmt.Errorf("routing: no mode set")
}
