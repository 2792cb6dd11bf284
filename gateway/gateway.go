// Package gateway routes HTTPS to the registry through the Gateway API: an HTTPRoute attached to a
// Gateway the stack creates (one HTTPS listener per hostname, the stack's certificate) or to an
// existing Gateway a platform team runs (one named listener, checked to be HTTPS). `pulumi up`
// returns only once the controller has accepted the route.
package gateway

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/internal/traefik"
	"github.com/regstack/registry-stack/routing"
)

// Gateway API (standard channel).
const (
	Group                     = "gateway.networking.k8s.io"
	APIVersion                = Group + "/v1"
	ReferenceGrantAPIVersion  = Group + "/v1beta1"
	waitForAnnotation         = "pulumi.com/waitFor"
	readyTimeout              = "3m"
	listenerProtocolForRoutes = "HTTPS"
	// TraefikControllerName is the controllerName of Traefik's GatewayClasses.
	TraefikControllerName = "traefik.io/gateway-controller"
)

// GatewayArgs configures the route. Exactly one of Create and Existing is set.
type GatewayArgs struct {
	// Required: namespace of every object the stack creates.
	Namespace pulumi.StringInput
	// Required: the routes, the registry's first; one HTTPRoute each.
	Routes []kube.Route
	// Create makes a Gateway in Namespace.
	Create *routing.CreatedGateway
	// Existing attaches to a Gateway the stack does not manage.
	Existing *routing.ExistingGateway
	// Required: the controller behind the Gateway's class (ControllerOfGatewayClass: read it from
	// the existing Gateway's class).
	Controller routing.Controller
	// Optional: defaults to none (all sources). Client CIDRs allowed in (Traefik only; validation
	// refuses them elsewhere unless the user enforces them outside the stack).
	SourceRanges []string
	// Required: the kubernetes.io/tls Secret of every route's hostnames, in Namespace.
	TLSSecretName pulumi.StringInput
}

// Gateway is the Gateway API entry point of the registry.
type Gateway struct {
	pulumi.ResourceState

	// RouteName names the first route's HTTPRoute (the registry's).
	RouteName pulumi.StringOutput `pulumi:"routeName"`
	// GatewayName and GatewayNamespace name the Gateway the route is attached to.
	GatewayName      pulumi.StringOutput `pulumi:"gatewayName"`
	GatewayNamespace pulumi.StringOutput `pulumi:"gatewayNamespace"`
}

func (a *GatewayArgs) validate() error {
	if a.Namespace == nil || a.TLSSecretName == nil {
		return fmt.Errorf("gateway: Namespace and TLSSecretName are required")
	}
	if err := kube.ValidateRoutes("gateway", a.Routes); err != nil {
		return err
	}
	if (a.Create == nil) == (a.Existing == nil) {
		return fmt.Errorf("gateway: exactly one of Create and Existing must be set")
	}
	if e := a.Existing; e != nil && (e.Name == nil || e.Name == pulumi.String("") || e.Namespace == nil || e.Namespace == pulumi.String("") || e.SectionName == "") {
		return fmt.Errorf("gateway: Existing needs Name, Namespace and SectionName")
	}
	switch a.Controller {
	case routing.ControllerTraefik, routing.ControllerOther:
	case routing.ControllerOfGatewayClass:
		if a.Existing == nil {
			return fmt.Errorf("gateway: controller %q needs an Existing Gateway", a.Controller)
		}
	default:
		return fmt.Errorf("gateway: unknown controller %q", a.Controller)
	}
	return nil
}

// NewGateway registers one HTTPRoute per route and what they need: the Gateway (Create) or a ReferenceGrant
// letting the existing Gateway's namespace use the TLS Secret, and the source-range Middleware.
func NewGateway(ctx *pulumi.Context, name string, args *GatewayArgs, opts ...pulumi.ResourceOption) (*Gateway, error) {
	if err := args.validate(); err != nil {
		return nil, err
	}
	comp := &Gateway{}
	if err := ctx.RegisterComponentResource("registry-stack:index:Gateway", name, comp, opts...); err != nil {
		return nil, fmt.Errorf("gateway: register component %q: %w", name, err)
	}
	parent := pulumi.Parent(comp)
	labels := kube.StringMap(kube.Labels("registry", name, "gateway"))
	// The controller reports acceptance in status; a route it refuses must fail `pulumi up`
	// within minutes, not hang for the provider's default ten.
	wait := pulumi.Timeouts(&pulumi.CustomTimeouts{Create: readyTimeout, Update: readyTimeout})

	var parentRef pulumi.Map
	var deps []pulumi.Resource
	parentName := pulumi.String(name).ToStringOutput()
	switch {
	case args.Create != nil:
		gw, err := apiextensions.NewCustomResource(ctx, name, &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String(APIVersion),
			Kind:       pulumi.String("Gateway"),
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(name), Namespace: args.Namespace, Labels: labels,
				Annotations: pulumi.StringMap{waitForAnnotation: pulumi.String(GatewayWaitFor)},
			},
			OtherFields: kubernetes.UntypedArgs{"spec": GatewaySpec(args.Create, kube.AllHostnames(args.Routes), args.TLSSecretName)},
		}, parent, wait)
		if err != nil {
			return nil, fmt.Errorf("gateway: gateway: %w", err)
		}
		deps = append(deps, gw)
		comp.GatewayName = gw.Metadata.Name().Elem()
		comp.GatewayNamespace = gw.Metadata.Namespace().Elem()
		parentRef = pulumi.Map{"group": pulumi.String(Group), "kind": pulumi.String("Gateway"), "name": comp.GatewayName}
	case args.Existing != nil:
		e := args.Existing
		gwName, gwNamespace := e.Name.ToStringOutput(), e.Namespace.ToStringOutput()
		section, err := checkedListener(ctx, name, gwName, gwNamespace, e.SectionName, args.Controller == routing.ControllerOfGatewayClass, args.SourceRanges, parent)
		if err != nil {
			return nil, err
		}
		grant, err := apiextensions.NewCustomResource(ctx, name+"-tls", &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String(ReferenceGrantAPIVersion),
			Kind:       pulumi.String("ReferenceGrant"),
			Metadata:   &metav1.ObjectMetaArgs{Name: pulumi.String(name + "-tls"), Namespace: args.Namespace, Labels: labels},
			// The grant's peer namespace comes through the listener check: no access to the TLS
			// Secret is granted when the route is refused.
			OtherFields: kubernetes.UntypedArgs{"spec": ReferenceGrantSpec(pulumi.All(section, gwNamespace).ApplyT(func(v []any) string { return v[1].(string) }).(pulumi.StringOutput), args.TLSSecretName)},
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("gateway: reference grant: %w", err)
		}
		deps = append(deps, grant)
		parentName = gwName
		comp.GatewayName, comp.GatewayNamespace = gwName, gwNamespace
		parentRef = pulumi.Map{
			"group": pulumi.String(Group), "kind": pulumi.String("Gateway"),
			"name": gwName, "namespace": gwNamespace, "sectionName": section,
		}
	}

	var filters []map[string]any
	// Of an existing Gateway's class: the listener check above refuses the ranges unless Traefik
	// serves that class, and nothing is routed until it passed.
	enforces := args.Controller == routing.ControllerTraefik || args.Controller == routing.ControllerOfGatewayClass
	if enforces && len(args.SourceRanges) > 0 {
		// Not the Ingress component's name: see ingress.NewIngress.
		mwName := name + "-gateway-allow"
		mw, err := traefik.NewIPAllowList(ctx, mwName, args.Namespace, labels, args.SourceRanges, parent)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		deps = append(deps, mw)
		filters = append(filters, MiddlewareFilter(mwName))
	}

	var routeNames []pulumi.StringOutput
	for _, r := range args.Routes {
		route, err := apiextensions.NewCustomResource(ctx, r.Name, &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String(APIVersion),
			Kind:       pulumi.String("HTTPRoute"),
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(r.Name), Namespace: args.Namespace, Labels: labels,
				Annotations: pulumi.StringMap{waitForAnnotation: parentName.ApplyT(RouteWaitFor).(pulumi.StringOutput)},
			},
			OtherFields: kubernetes.UntypedArgs{"spec": RouteSpec(parentRef, r, filters)},
		}, parent, wait, pulumi.DependsOn(deps))
		if err != nil {
			return nil, fmt.Errorf("gateway: route %s: %w", r.Name, err)
		}
		routeNames = append(routeNames, route.Metadata.Name().Elem())
	}

	comp.RouteName = routeNames[0]
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"routeName":        comp.RouteName,
		"gatewayName":      comp.GatewayName,
		"gatewayNamespace": comp.GatewayNamespace,
	}); err != nil {
		return nil, fmt.Errorf("gateway: register outputs: %w", err)
	}
	return comp, nil
}

// checkedListener reads the existing Gateway (in preview too, once its name and namespace are
// known) and returns the section name only if that listener is HTTPS: a route on a plain-HTTP
// listener would take credentials in clear text. With ofClass it also reads the Gateway's
// GatewayClass, and refuses source ranges unless Traefik serves it (CheckClassController).
func checkedListener(ctx *pulumi.Context, name string, gwName, gwNamespace pulumi.StringOutput, sectionName string, ofClass bool,
	ranges []string, parent pulumi.ResourceOption) (pulumi.StringOutput, error) {
	ref := pulumi.Sprintf("%s/%s", gwNamespace, gwName)
	// The name and namespace go in the state too: with apiVersion and kind given, the provider reads
	// the object named there (without them it looks in the default namespace and finds nothing).
	gw, err := apiextensions.GetCustomResource(ctx, name+"-parent", ref.ApplyT(func(id string) pulumi.ID { return pulumi.ID(id) }).(pulumi.IDOutput),
		&apiextensions.CustomResourceState{
			ApiVersion: pulumi.String(APIVersion), Kind: pulumi.String("Gateway"),
			Metadata: &metav1.ObjectMetaArgs{Name: gwName, Namespace: gwNamespace},
		}, parent)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("gateway: read the existing Gateway: %w", err)
	}
	section := pulumi.All(ref, gw.OtherFields).ApplyT(func(v []any) (string, error) {
		fields, _ := v[1].(map[string]any)
		return sectionName, CheckListener(fields["spec"], v[0].(string), sectionName)
	}).(pulumi.StringOutput)
	if !ofClass {
		return section, nil
	}
	className := pulumi.All(ref, gw.OtherFields).ApplyT(func(v []any) (string, error) {
		fields, _ := v[1].(map[string]any)
		spec, _ := fields["spec"].(map[string]any)
		class, _ := spec["gatewayClassName"].(string)
		if class == "" {
			return "", fmt.Errorf("gateway: Gateway %s has no spec.gatewayClassName", v[0])
		}
		return class, nil
	}).(pulumi.StringOutput)
	class, err := apiextensions.GetCustomResource(ctx, name+"-parent-class", className.ApplyT(func(c string) pulumi.ID { return pulumi.ID(c) }).(pulumi.IDOutput),
		&apiextensions.CustomResourceState{
			ApiVersion: pulumi.String(APIVersion), Kind: pulumi.String("GatewayClass"),
			Metadata: &metav1.ObjectMetaArgs{Name: className},
		}, parent)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("gateway: read the GatewayClass of the existing Gateway: %w", err)
	}
	return pulumi.All(section, className, class.OtherFields, ref).ApplyT(func(all []any) (string, error) {
		fields, _ := all[2].(map[string]any)
		spec, _ := fields["spec"].(map[string]any)
		controller, _ := spec["controllerName"].(string)
		return all[0].(string), CheckClassController(all[3].(string), all[1].(string), controller, ranges)
	}).(pulumi.StringOutput), nil
}

// CheckClassController refuses source ranges on an existing Gateway (namespace/name) whose class
// another controller than Traefik serves: the stack enforces them with a Traefik Middleware only,
// and a range that nothing enforces must not look like protection.
func CheckClassController(gateway, class, controller string, ranges []string) error {
	if len(ranges) == 0 || controller == TraefikControllerName {
		return nil
	}
	return fmt.Errorf("config \"routing.sourceRanges\": %q is invalid; allowed: empty with Gateway %s, whose GatewayClass %s is served by %q, "+
		"not Traefik (%s): the stack cannot enforce source ranges there; enforce them at that Gateway and set routing.gateway.controller=other "+
		"with routing.allowUnenforcedSourceRanges=true, or clear routing.sourceRanges",
		strings.Join(ranges, ","), gateway, class, controller, TraefikControllerName)
}

// CheckListener finds the listener sectionName in the spec of a Gateway (namespace/name) and
// refuses anything but an HTTPS listener.
func CheckListener(spec any, gateway, sectionName string) error {
	raw, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("gateway: Gateway %s spec: %w", gateway, err)
	}
	var s struct {
		Listeners []struct{ Name, Protocol string } `json:"listeners"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("gateway: Gateway %s spec: %w", gateway, err)
	}
	var names []string
	for _, l := range s.Listeners {
		if l.Name != sectionName {
			names = append(names, l.Name+" ("+l.Protocol+")")
			continue
		}
		if l.Protocol != listenerProtocolForRoutes {
			return fmt.Errorf("config \"routing.gateway.existing.sectionName\": %q is invalid; allowed: an HTTPS listener of Gateway %s "+
				"(listener %q is %s: registry credentials would cross the network in clear text)", sectionName, gateway, l.Name, l.Protocol)
		}
		return nil
	}
	return fmt.Errorf("config \"routing.gateway.existing.sectionName\": %q is invalid; allowed: a listener of Gateway %s (it has: %s)",
		sectionName, gateway, strings.Join(names, ", "))
}

// ListenerName is the created Gateway's listener for the i-th hostname.
func ListenerName(i int) string {
	if i == 0 {
		return "https"
	}
	return fmt.Sprintf("https-%d", i)
}

// GatewaySpec is the created Gateway: one HTTPS listener per hostname (a listener without hostname
// would make the stack's certificate the default for every name on that port), terminating TLS with
// the stack's Secret, admitting routes of its own namespace only. No plain-HTTP listener.
func GatewaySpec(c *routing.CreatedGateway, hostnames []string, tlsSecret pulumi.StringInput) pulumi.Map {
	var listeners pulumi.Array
	for i, h := range hostnames {
		listeners = append(listeners, pulumi.Map{
			"name":     pulumi.String(ListenerName(i)),
			"protocol": pulumi.String("HTTPS"),
			"port":     pulumi.Int(c.ListenerPort),
			"hostname": pulumi.String(h),
			"tls": pulumi.Map{
				"mode":            pulumi.String("Terminate"),
				"certificateRefs": pulumi.Array{pulumi.Map{"kind": pulumi.String("Secret"), "name": tlsSecret}},
			},
			"allowedRoutes": pulumi.Map{"namespaces": pulumi.Map{"from": pulumi.String("Same")}},
		})
	}
	return pulumi.Map{"gatewayClassName": pulumi.String(c.ClassName), "listeners": listeners}
}

// ReferenceGrantSpec lets Gateways of the existing Gateway's namespace reference the TLS Secret (and nothing else)
// of the stack's namespace, so the platform's listener can serve the stack's certificate.
func ReferenceGrantSpec(gatewayNamespace, tlsSecret pulumi.StringInput) pulumi.Map {
	return pulumi.Map{
		"from": pulumi.Array{pulumi.Map{"group": pulumi.String(Group), "kind": pulumi.String("Gateway"), "namespace": gatewayNamespace}},
		"to":   pulumi.Array{pulumi.Map{"group": pulumi.String(""), "kind": pulumi.String("Secret"), "name": tlsSecret}},
	}
}

// MiddlewareFilter attaches a Traefik Middleware of the route's namespace to an HTTPRoute rule.
func MiddlewareFilter(middleware string) map[string]any {
	return map[string]any{
		"type":         "ExtensionRef",
		"extensionRef": map[string]any{"group": traefik.MiddlewareGroup, "kind": traefik.MiddlewareKind, "name": middleware},
	}
}

// RouteSpec sends every path of the route's hostnames to its Service and its own path prefixes
// (the token realm) to theirs; the Gateway API picks the longest matching prefix. Every rule
// carries the filters (source ranges).
func RouteSpec(parentRef pulumi.Map, r kube.Route, filters []map[string]any) pulumi.Map {
	rule := func(prefix string, service pulumi.StringInput, port int) pulumi.Map {
		out := pulumi.Map{
			"matches":     pulumi.Array{pulumi.Map{"path": pulumi.Map{"type": pulumi.String("PathPrefix"), "value": pulumi.String(prefix)}}},
			"backendRefs": pulumi.Array{pulumi.Map{"name": service, "port": pulumi.Int(port)}},
		}
		if len(filters) > 0 {
			var fs pulumi.Array
			for _, f := range filters {
				fs = append(fs, pulumi.ToMap(f))
			}
			out["filters"] = fs
		}
		return out
	}
	var rules pulumi.Array
	for _, p := range r.Paths {
		rules = append(rules, rule(p.Prefix, p.ServiceName, p.ServicePort))
	}
	rules = append(rules, rule("/", r.ServiceName, r.ServicePort))
	return pulumi.Map{
		"parentRefs": pulumi.Array{parentRef},
		"hostnames":  pulumi.ToStringArray(r.Hostnames),
		"rules":      rules,
	}
}

// GatewayWaitFor makes the provider wait until the controller has programmed the Gateway.
const GatewayWaitFor = "condition=Programmed"

// RouteWaitFor makes the provider wait until the parent Gateway named parent has accepted the route
// and resolved its references (Service, Middleware): a JSON list of conditions, all of which must
// hold. It selects that parent's entry: after a move to another Gateway the old parent's status may
// still be there for a moment, and must not count.
func RouteWaitFor(parent string) string {
	cond := func(typ string) string {
		return fmt.Sprintf(`jsonpath={.status.parents[?(@.parentRef.name==%q)].conditions[?(@.type==%q)].status}=True`, parent, typ)
	}
	// %q of these ASCII strings is their JSON encoding.
	return fmt.Sprintf("[%q,%q]", cond("Accepted"), cond("ResolvedRefs"))
}
