package main

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"

	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/stackconfig"
)

// construct builds a RegistryStack for the component provider,
// so that YAML, TypeScript, Python and .NET programs get the same component. Its inputs are the
// stack config keys under the same names and structure, parsed and validated by the same code
// (stackconfig.Parse) with the same defaults; a credential must arrive as a secret. The Kubernetes provider comes
// from the resource's providers option, so kubeContext is refused.
func construct(ctx *pulumi.Context, typ, name string, inputs provider.ConstructInputs, options pulumi.ResourceOption) (*provider.ConstructResult, error) {
	if typ != registrystack.Type {
		return nil, fmt.Errorf("unknown resource type %s; this provider has %s", typ, registrystack.Type)
	}
	m, err := inputs.Map()
	if err != nil {
		return nil, fmt.Errorf("%s %s: inputs: %w", registrystack.Type, name, err)
	}
	// The engine prefixes these errors with the type and the resource's name.
	raw, secret, err := rawInputs(ctx, m)
	if err != nil {
		return nil, err
	}
	cfg, err := stackconfig.Parse(func(k string) (string, bool) {
		v, ok := raw[k]
		return v, ok
	}, func(k string) bool { return secret[k] })
	if err != nil {
		return nil, err
	}
	comp, err := registrystack.NewRegistryStack(ctx, name, cfg.Args(), options)
	if err != nil {
		return nil, err
	}
	return &provider.ConstructResult{URN: comp.URN(), State: comp.Outputs}, nil
}

// rawInputs turns the inputs into the strings `pulumi config set` would have stored (lists and
// objects as JSON) and says which were secret. Every input must be a known config key with a known
// value: the component derives names and validates from them before it registers anything.
func rawInputs(ctx *pulumi.Context, inputs pulumi.Map) (map[string]string, map[string]bool, error) {
	names := make([]string, 0, len(inputs))
	for k := range inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	raw, secret := map[string]string{}, map[string]bool{}
	var errs []error
	for _, k := range names {
		if !slices.Contains(stackconfig.TopLevelKeys(), k) || k == "kubeContext" {
			why := "not an input of " + registrystack.Type + " (see the schema: the stack config keys)"
			if k == "kubeContext" {
				why = "the Kubernetes provider is given with the resource's providers option, not as an input"
			}
			errs = append(errs, fmt.Errorf("input %q: %s", k, why))
			continue
		}
		out, ok := inputs[k].(pulumi.Output)
		if !ok {
			errs = append(errs, fmt.Errorf("input %q: unexpected %T", k, inputs[k]))
			continue
		}
		res, err := internals.UnsafeAwaitOutput(ctx.Context(), out)
		if err != nil {
			errs = append(errs, fmt.Errorf("input %q: %w", k, err))
			continue
		}
		if !res.Known {
			errs = append(errs, fmt.Errorf("input %q: its value is not known yet (it comes from a resource that is still to be created); "+
				"the component needs every input known when it is planned", k))
			continue
		}
		s, _, err := stackconfig.RawValue(res.Value)
		if err != nil {
			errs = append(errs, fmt.Errorf("input %q: %w", k, err))
			continue
		}
		raw[k], secret[k] = s, res.Secret
	}
	return raw, secret, errors.Join(errs...)
}
