package stackconfig

import (
	"fmt"
	"maps"
	"slices"

	"github.com/regstack/registry-stack/placement"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/registrystack"
)

// rawPlacement is the placement key: the pods of every workload (all) and of each one, which
// overrides all field by field. Each entry is a placement.Spec with Kubernetes' own field names.
type rawPlacement struct {
	All      *placement.Spec `json:"all"`
	Registry *placement.Spec `json:"registry"`
	Mirrors  *placement.Spec `json:"mirrors"`
	Cache    *placement.Spec `json:"cache"`
	GC       *placement.Spec `json:"gc"`
}

const placementFields = "all, registry, mirrors, cache, gc, each {nodeSelector, tolerations, affinity, priorityClassName, podAnnotations, podLabels, imagePullSecrets}"

func (v *validator) validatePlacement(c *Config) {
	p := c.PlacementRaw
	if p == nil {
		return
	}
	for _, w := range []struct {
		key  string
		spec *placement.Spec
	}{{"placement.all", p.All}, {"placement.registry", p.Registry}, {"placement.mirrors", p.Mirrors}, {"placement.cache", p.Cache}, {"placement.gc", p.GC}} {
		for _, err := range w.spec.Validate(w.key) {
			v.errs = append(v.errs, fmt.Errorf("config %w", err))
		}
	}
	if p.Cache != nil && !c.CacheEnabled {
		v.bad("placement.cache", "set", "unset while cache.enabled is false (there is no Redis pod to place)")
	}
	if p.Mirrors != nil && len(c.MirrorsRaw) == 0 {
		v.bad("placement.mirrors", "set", "unset while mirrors is empty (there is no mirror pod to place)")
	}
}

// validateRegistryEnv checks registry.env against the names the registry's container, the mirrors'
// and GC's collector set for the chosen store (registrystack.ValidateExtraEnv, as Args.Validate).
func (v *validator) validateRegistryEnv(c *Config) {
	for _, err := range registrystack.ValidateExtraEnv("registry.env", true, c.storage(), c.registryEnv()) {
		v.errs = append(v.errs, fmt.Errorf("config %w", err))
	}
}

// registryEnv is registry.env as variables, in name order (a map has none; the pod spec
// must not change between previews).
func (c *Config) registryEnv() []registry.EnvVar {
	var out []registry.EnvVar
	for _, name := range slices.Sorted(maps.Keys(c.RegistryEnv)) {
		out = append(out, registry.EnvVar{Name: name, Value: c.RegistryEnv[name]})
	}
	return out
}

// placementArgs is the placement key as the component's args (nil: unset).
func (c *Config) placementArgs() *registrystack.PlacementArgs {
	p := c.PlacementRaw
	if p == nil {
		return nil
	}
	return &registrystack.PlacementArgs{All: p.All, Registry: p.Registry, Mirrors: p.Mirrors, Cache: p.Cache, GC: p.GC}
}
