package stackconfig

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/registrystack"
)

// DefaultArgs are the args of a stack whose config sets nothing: every default comes from the one
// table of config keys (keys), so a Go program and a stack see the same defaults.
// Change what differs, e.g. Hostname, and pass them to NewRegistryStack.
func DefaultArgs() *registrystack.Args {
	cfg, err := Parse(func(string) (string, bool) { return "", false }, func(string) bool { return false })
	if err != nil {
		// The defaults are valid; a unit test keeps them so.
		panic(fmt.Sprintf("stackconfig: the default config is invalid: %v", err))
	}
	return cfg.Args()
}

// Args maps the validated stack config onto the component's args.
func (cfg *Config) Args() *registrystack.Args {
	args := &registrystack.Args{
		Namespace:        pulumi.String(cfg.Namespace),
		CreateNamespace:  cfg.CreateNamespace,
		Hostname:         cfg.Hostname,
		ExtraDNSNames:    cfg.ExtraDNSNames,
		ExtraIPAddresses: cfg.ExtraIPAddresses,
		Routing:          cfg.Routing,
		TLS:              cfg.TLS,
		Storage:          cfg.Storage,
		Registry: registrystack.RegistryArgs{
			Image:         cfg.RegistryImage,
			Replicas:      cfg.Replicas,
			LogLevel:      cfg.LogLevel,
			ServiceType:   cfg.ServiceType,
			CPURequest:    cfg.RegistryCPURequest,
			MemoryRequest: cfg.RegistryMemoryRequest,
			MemoryLimit:   cfg.RegistryMemoryLimit,
			Env:           cfg.registryEnv(),
		},
		Accounts:    cfg.Accounts(),
		Auth:        cfg.auth(),
		ClusterPull: cfg.clusterPull(),
		GC:          registrystack.GCArgs{Schedule: cfg.GCSchedule, Suspend: cfg.GCSuspend, KubectlImage: cfg.GCKubectlImage},
		Mirrors:     cfg.Mirrors,
		Monitoring:  cfg.Monitoring,
		Autoscaling: cfg.Autoscaling,
		Placement:   cfg.placementArgs(),
		Retention:   cfg.retention(),
	}
	if cfg.CacheEnabled {
		args.Cache = &registrystack.CacheArgs{
			Image:         cfg.RedisImage,
			MaxMemory:     cfg.RedisMaxMemory,
			CPURequest:    cfg.RedisCPURequest,
			MemoryRequest: cfg.RedisMemoryRequest,
		}
	}
	return args
}
