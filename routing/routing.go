// Package routing holds the types that choose the way in: an Ingress or a Gateway API HTTPRoute,
// and the controller that serves it. The ingress and gateway components and the registry stack's
// args share them.
package routing

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

// Controller names the implementation behind an IngressClass or GatewayClass. The stack enforces
// HTTPS-only routing and source ranges with controller-specific objects, so it must know which one
// serves the route; "other" means the stack cannot enforce them itself.
type Controller string

const (
	ControllerNginx   Controller = "nginx"
	ControllerTraefik Controller = "traefik"
	ControllerOther   Controller = "other"
	// ControllerOfGatewayClass is the controller of an existing Gateway's class, which only the
	// cluster knows: the gateway component reads the Gateway and its GatewayClass (in preview too)
	// and enforces the source ranges when Traefik serves it, refusing them otherwise. Never a
	// config value: routing.gateway.controller left empty with routing.gateway.existing.
	ControllerOfGatewayClass Controller = "of-gatewayclass"
)

// Spec is the way in. Exactly one of Ingress and Gateway is set.
type Spec struct {
	Ingress *Ingress
	Gateway *Gateway
	// SourceRanges are the client CIDRs allowed in (empty: all); enforced by Controller.
	SourceRanges []string
	// Controller serves the route. With ControllerOther the stack enforces neither HTTPS-only nor
	// SourceRanges itself (the user accepted that explicitly).
	Controller Controller
}

// Ingress routes through a networking.k8s.io/v1 Ingress.
type Ingress struct {
	ClassName string
	// TraefikEntryPoint is the TLS entry point the Traefik routers are bound to (Traefik only).
	TraefikEntryPoint string
}

// Gateway routes through a Gateway API HTTPRoute, attached to a Gateway the stack creates
// (Create) or to one a platform team runs (Existing). Exactly one is set.
type Gateway struct {
	Create   *CreatedGateway
	Existing *ExistingGateway
}

// CreatedGateway is a Gateway the stack creates in its namespace with one HTTPS listener.
type CreatedGateway struct {
	ClassName    string
	ListenerPort int
}

// ExistingGateway is a Gateway the stack attaches to and never changes. Name and Namespace are
// inputs, so that they can come from the program that makes the Gateway: the stack reads it once
// they resolve.
type ExistingGateway struct {
	Name, Namespace pulumi.StringInput
	// SectionName is the listener the route binds to; the stack checks that it is HTTPS.
	SectionName string
}
