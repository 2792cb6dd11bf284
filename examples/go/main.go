// Command go-example is a Pulumi Go program of a platform team that runs the registry beside its
// other infrastructure: it imports the RegistryStack component instead of copying this repository,
// and hands it resources of its own (the namespace) as Pulumi inputs. `go build ./...` compiles it
// and main_test.go runs it, so the README's Go example cannot drift from the package.
package main

import (
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/routing"
	"github.com/regstack/registry-stack/stackconfig"
)

func main() { pulumi.Run(program) }

// program is the whole program (main_test.go runs it with mocks).
func program(ctx *pulumi.Context) error {
	k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Context: pulumi.String("prod")})
	if err != nil {
		return err
	}
	// The team's own namespace, made next to its other resources.
	ns, err := corev1.NewNamespace(ctx, "registry", &corev1.NamespaceArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("registry")},
	}, pulumi.Provider(k8s))
	if err != nil {
		return err
	}
	args := stackconfig.DefaultArgs() // the README's defaults (the one table in stackconfig)
	args.Namespace, args.CreateNamespace = ns.Metadata.Name().Elem(), false
	args.Hostname = "registry.example.com"
	args.Routing.Ingress.ClassName, args.Routing.Ingress.TraefikEntryPoint = "traefik", "websecure"
	args.Routing.Controller = routing.ControllerTraefik
	reg, err := registrystack.NewRegistryStack(ctx, "registry", args, pulumi.Provider(k8s))
	if err != nil {
		return err
	}
	ctx.Export("url", reg.URL)
	ctx.Export("password", reg.Password) // secret
	return nil
}
