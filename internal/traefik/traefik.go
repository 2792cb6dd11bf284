// Package traefik holds the Traefik-specific objects both routing modes use: Traefik enforces
// source ranges only through its own Middleware CRD, attached by an Ingress annotation or an
// HTTPRoute ExtensionRef filter.
package traefik

import (
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Middleware API of Traefik v3 (the kubernetesCRD provider; on by default in k3s and minikube's
// traefik addon).
const (
	MiddlewareAPIVersion = "traefik.io/v1alpha1"
	MiddlewareGroup      = "traefik.io"
	MiddlewareKind       = "Middleware"
)

// IPAllowListSpec is the Middleware spec that answers 403 to clients outside ranges. Traefik looks at
// the connection's source address (not X-Forwarded-For), so a proxy in front must keep it.
func IPAllowListSpec(ranges []string) map[string]any {
	return map[string]any{"ipAllowList": map[string]any{"sourceRange": append([]string(nil), ranges...)}}
}

// MiddlewareRef is how an Ingress annotation names a Middleware of the kubernetesCRD provider.
func MiddlewareRef(namespace, name string) string {
	return fmt.Sprintf("%s-%s@kubernetescrd", namespace, name)
}

// NewIPAllowList registers the source-range Middleware.
func NewIPAllowList(ctx *pulumi.Context, name string, namespace pulumi.StringInput, labels pulumi.StringMap,
	ranges []string, opts ...pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	mw, err := apiextensions.NewCustomResource(ctx, name, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String(MiddlewareAPIVersion),
		Kind:        pulumi.String(MiddlewareKind),
		Metadata:    &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: namespace, Labels: labels},
		OtherFields: kubernetes.UntypedArgs{"spec": IPAllowListSpec(ranges)},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("traefik: ipAllowList middleware %q: %w", name, err)
	}
	return mw, nil
}
