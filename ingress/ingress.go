// Package ingress routes HTTPS to the registry through a networking.k8s.io/v1 Ingress, with what its
// controller needs to be safe for a registry: HTTPS only (credentials never cross plain HTTP), source
// ranges the controller really enforces, and no body limit or short timeout for big layers.
package ingress

import (
	"fmt"
	"strings"

	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/internal/traefik"
	"github.com/regstack/registry-stack/routing"
)

// IngressArgs configures the Ingress.
type IngressArgs struct {
	// Required: namespace of every object.
	Namespace pulumi.StringInput
	// Required: the routes, the registry's first; one Ingress each.
	Routes []kube.Route
	// Required: IngressClass and the controller that serves it.
	ClassName  string
	Controller routing.Controller
	// Optional: defaults to "websecure". Traefik's TLS entry point.
	TraefikEntryPoint string
	// Optional: defaults to none (all sources). Client CIDRs allowed in, enforced by the controller
	// (refused for ControllerOther: the stack cannot enforce them there).
	SourceRanges []string
	// Required: the kubernetes.io/tls Secret served for every route's hostnames.
	TLSSecretName pulumi.StringInput
}

// Ingress is the HTTPS entry point of the registry.
type Ingress struct {
	pulumi.ResourceState

	// IngressName names the first route's Ingress (the registry's).
	IngressName pulumi.StringOutput `pulumi:"ingressName"`
}

// validate checks the required fields (there are no defaults here: stackconfig has them all).
func (a *IngressArgs) validate() error {
	if a.Namespace == nil || a.TLSSecretName == nil || a.ClassName == "" {
		return fmt.Errorf("ingress: Namespace, ClassName and TLSSecretName are required")
	}
	if err := kube.ValidateRoutes("ingress", a.Routes); err != nil {
		return err
	}
	switch a.Controller {
	// With ControllerOther, Annotations adds nothing and no Middleware is made: source ranges
	// there are refused by validation unless the user enforces them elsewhere.
	case routing.ControllerNginx, routing.ControllerTraefik, routing.ControllerOther:
	default:
		return fmt.Errorf("ingress: unknown controller %q", a.Controller)
	}
	if a.Controller == routing.ControllerTraefik && a.TraefikEntryPoint == "" {
		// No default here: the one table of defaults is stackconfig's.
		return fmt.Errorf("ingress: TraefikEntryPoint is required with controller traefik")
	}
	return nil
}

// NewIngress registers one Ingress per route (and, on Traefik with source ranges, the ipAllowList
// Middleware they share).
func NewIngress(ctx *pulumi.Context, name string, args *IngressArgs, opts ...pulumi.ResourceOption) (*Ingress, error) {
	if err := args.validate(); err != nil {
		return nil, err
	}
	a := args
	comp := &Ingress{}
	if err := ctx.RegisterComponentResource("registry-stack:index:Ingress", name, comp, opts...); err != nil {
		return nil, fmt.Errorf("ingress: register component %q: %w", name, err)
	}
	parent := pulumi.Parent(comp)
	labels := kube.StringMap(kube.Labels("registry", name, "ingress"))

	annotations := pulumi.ToStringMap(objectAnnotations(a)).ToStringMapOutput()
	var deps []pulumi.Resource
	if a.Controller == routing.ControllerTraefik && len(a.SourceRanges) > 0 {
		// Not the Gateway component's name: switching routing modes creates one before the
		// other is deleted, and both must never be the same Kubernetes object.
		mwName := name + "-ingress-allow"
		mw, err := traefik.NewIPAllowList(ctx, mwName, a.Namespace, labels, a.SourceRanges, parent)
		if err != nil {
			return nil, fmt.Errorf("ingress: %w", err)
		}
		deps = append(deps, mw)
		ann := objectAnnotations(a)
		annotations = mw.Metadata.Namespace().Elem().ApplyT(func(ns string) map[string]string {
			ann[TraefikMiddlewaresAnnotation] = traefik.MiddlewareRef(ns, mwName)
			return ann
		}).(pulumi.StringMapOutput)
	}

	var names []pulumi.StringOutput
	for _, r := range a.Routes {
		ing, err := networkingv1.NewIngress(ctx, r.Name, &networkingv1.IngressArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(r.Name), Namespace: a.Namespace, Labels: labels, Annotations: annotations},
			Spec:     Spec(a.ClassName, a.TLSSecretName, r),
		}, parent, pulumi.DependsOn(deps))
		if err != nil {
			return nil, fmt.Errorf("ingress: ingress %s: %w", r.Name, err)
		}
		names = append(names, ing.Metadata.Name().Elem())
	}

	comp.IngressName = names[0]
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"ingressName": comp.IngressName}); err != nil {
		return nil, fmt.Errorf("ingress: register outputs: %w", err)
	}
	return comp, nil
}

// objectAnnotations are the Ingress object's annotations: the controller's, and skipAwait.
//
// skipAwait: the provider's Ingress await (pulumi-kubernetes 4.25) returns the object its shared
// informer last saw as the update's result, with no generation or resourceVersion check; its
// cache can predate the patch (a replayed cache, or a first List served from the API server's
// watch cache). The state then records the old spec — seen as a second host added by `up` and
// proposed again by the next `preview` — and a preview after an up is not clean. Without the
// await the result is the apply response, which is current. Nothing is lost: the await only waits
// for status.loadBalancer, which the controller set at creation and keeps through updates, and for
// an Endpoints object of the backend Service's name; neither says the controller routes the new
// rules.
func objectAnnotations(a *IngressArgs) map[string]string {
	ann := Annotations(a.Controller, a.TraefikEntryPoint, a.SourceRanges)
	ann[SkipAwaitAnnotation] = "true"
	return ann
}

// Annotation keys the stack sets.
const (
	SkipAwaitAnnotation          = "pulumi.com/skipAwait"
	nginxPrefix                  = "nginx.ingress.kubernetes.io/"
	traefikPrefix                = "traefik.ingress.kubernetes.io/"
	NginxAllowlistAnnotation     = nginxPrefix + "allowlist-source-range"
	TraefikEntryPointsAnnotation = traefikPrefix + "router.entrypoints"
	TraefikTLSAnnotation         = traefikPrefix + "router.tls"
	TraefikMiddlewaresAnnotation = traefikPrefix + "router.middlewares"
)

// Annotations are the controller's own settings, and only its own: an annotation another
// controller ignores would look like protection that is not there.
//
//   - ingress-nginx: no body limit (1 MiB by default gives 413 on layer uploads), long timeouts for
//     big blobs, streaming instead of buffering uploads on the controller's disk, HTTP redirected to
//     HTTPS, and the source ranges (allowlist-source-range, and its old name whitelist-source-range).
//   - Traefik: routers only on the TLS entry point, so the plain-HTTP entry point has no router for
//     the host at all (404, never the registry); the Middleware reference is added by NewIngress.
//   - other: none.
func Annotations(ctrl routing.Controller, traefikEntryPoint string, sourceRanges []string) map[string]string {
	ann := map[string]string{}
	switch ctrl {
	case routing.ControllerNginx:
		for k, v := range map[string]string{
			"proxy-body-size":         "0",
			"proxy-read-timeout":      "600",
			"proxy-send-timeout":      "600",
			"proxy-request-buffering": "off",
			"proxy-buffering":         "off",
			"backend-protocol":        "HTTP",
			"ssl-redirect":            "true",
			"force-ssl-redirect":      "true",
		} {
			ann[nginxPrefix+k] = v
		}
		if len(sourceRanges) > 0 {
			// Both names: allowlist-source-range since ingress-nginx 1.9, whitelist-source-range
			// before (an older controller would otherwise enforce nothing, silently).
			ann[NginxAllowlistAnnotation] = strings.Join(sourceRanges, ",")
			ann[nginxPrefix+"whitelist-source-range"] = strings.Join(sourceRanges, ",")
		}
	case routing.ControllerTraefik:
		ann[TraefikEntryPointsAnnotation] = traefikEntryPoint
		ann[TraefikTLSAnnotation] = "true"
	}
	return ann
}

// Spec routes every path of each of the route's DNS names to its Service over TLS, and the route's
// own path prefixes to theirs. IP SANs are in
// the certificate but not routed: an Ingress rule matches host names only.
func Spec(className string, tlsSecretName pulumi.StringInput, r kube.Route) *networkingv1.IngressSpecArgs {
	path := func(prefix string, service pulumi.StringInput, port int) *networkingv1.HTTPIngressPathArgs {
		return &networkingv1.HTTPIngressPathArgs{
			Path:     pulumi.String(prefix),
			PathType: pulumi.String("Prefix"),
			Backend: &networkingv1.IngressBackendArgs{
				Service: &networkingv1.IngressServiceBackendArgs{
					Name: service,
					Port: &networkingv1.ServiceBackendPortArgs{Number: pulumi.Int(port)},
				},
			},
		}
	}
	var rules networkingv1.IngressRuleArray
	for _, host := range r.Hostnames {
		// The longest matching prefix wins: the route's own paths (the token realm), then "/".
		var paths networkingv1.HTTPIngressPathArray
		for _, p := range r.Paths {
			paths = append(paths, path(p.Prefix, p.ServiceName, p.ServicePort))
		}
		paths = append(paths, path("/", r.ServiceName, r.ServicePort))
		rules = append(rules, &networkingv1.IngressRuleArgs{
			Host: pulumi.String(host),
			Http: &networkingv1.HTTPIngressRuleValueArgs{Paths: paths},
		})
	}
	return &networkingv1.IngressSpecArgs{
		IngressClassName: pulumi.String(className),
		Tls: networkingv1.IngressTLSArray{&networkingv1.IngressTLSArgs{
			Hosts:      pulumi.ToStringArray(r.Hostnames),
			SecretName: tlsSecretName,
		}},
		Rules: rules,
	}
}
