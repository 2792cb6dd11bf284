// Command registry-stack deploys a private Docker/OCI registry on Kubernetes. It only adapts: stack
// config (stackconfig, read and validated once) becomes registrystack.Args, the component is
// registered through an explicit Kubernetes provider, and its outputs are exported.
package main

import (
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/stackconfig"
)

// componentName names the component and, through it, every Kubernetes object ("registry",
// "registry-data", ...): the names the stack has always had.
const componentName = "registry"

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

// deploy registers the provider and the component and returns the stack outputs.
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
	stack, err := registrystack.NewRegistryStack(ctx, componentName, cfg.Args(), pulumi.Provider(provider))
	if err != nil {
		return nil, err
	}
	return stack.Outputs, nil
}
