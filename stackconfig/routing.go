package stackconfig

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"
)

// RoutingMode is how clients reach the registry: an Ingress or a Gateway API HTTPRoute.
type RoutingMode string

const (
	RoutingIngress RoutingMode = "ingress"
	RoutingGateway RoutingMode = "gateway"
)

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
	// config value: gatewayController left empty with gatewayName.
	ControllerOfGatewayClass Controller = "of-gatewayclass"
)

// TLSSourceKind is where the server certificate comes from.
type TLSSourceKind string

const (
	// TLSGenerated: the stack's own CA and server certificate (pulumi-tls).
	TLSGenerated TLSSourceKind = "generated"
	// TLSSecret: an existing kubernetes.io/tls Secret (cert-manager, a corporate PKI, ...).
	TLSSecret TLSSourceKind = "secret"
)

var (
	routingModes       = []string{string(RoutingIngress), string(RoutingGateway)}
	ingressControllers = []string{string(ControllerNginx), string(ControllerTraefik), string(ControllerOther)}
	gatewayControllers = []string{string(ControllerTraefik), string(ControllerOther)}
	tlsSources         = []string{string(TLSGenerated), string(TLSSecret)}
)

// Routing is the validated way in. Exactly one of Ingress and Gateway is set.
type Routing struct {
	Ingress *IngressRouting
	Gateway *GatewayRouting
	// SourceRanges are the client CIDRs allowed in (empty: all); enforced by Controller.
	SourceRanges []string
	// Controller serves the route. With ControllerOther the stack enforces neither HTTPS-only nor
	// SourceRanges itself (the user accepted that explicitly).
	Controller Controller
}

// IngressRouting routes through a networking.k8s.io/v1 Ingress.
type IngressRouting struct {
	ClassName string
	// TraefikEntryPoint is the TLS entry point the Traefik routers are bound to (Traefik only).
	TraefikEntryPoint string
}

// GatewayRouting routes through a Gateway API HTTPRoute, attached to a Gateway the stack creates
// (Create) or to one a platform team runs (Existing). Exactly one is set.
type GatewayRouting struct {
	Create   *CreatedGateway
	Existing *ExistingGateway
}

// CreatedGateway is a Gateway the stack creates in its namespace with one HTTPS listener.
type CreatedGateway struct {
	ClassName    string
	ListenerPort int
}

// ExistingGateway is a Gateway the stack attaches to and never changes.
type ExistingGateway struct {
	Name, Namespace string
	// SectionName is the listener the route binds to; the stack checks that it is HTTPS.
	SectionName string
}

// TLS is the validated certificate source. Exactly one is set.
type TLS struct {
	Generated *GeneratedTLS
	Secret    *SecretTLS
}

// GeneratedTLS: the stack's CA and a server certificate for the hostnames.
type GeneratedTLS struct {
	ValidityHours int
}

// SecretTLS: a kubernetes.io/tls Secret that exists in the stack's namespace.
type SecretTLS struct {
	Name string
	// CACertPEM is what clients should trust, as the user supplied it (may be empty).
	CACertPEM string
}

// knownIngressControllers maps the IngressClass names the controllers install by default
// (minikube's addons, k3s, the Helm charts) to the controller.
var knownIngressControllers = map[string]Controller{"nginx": ControllerNginx, "traefik": ControllerTraefik}

// ingressController is the configured controller, or the one the class name implies.
func (c *Config) ingressController() Controller {
	if c.IngressController != "" {
		return Controller(c.IngressController)
	}
	return knownIngressControllers[c.IngressClassName]
}

// gatewayController is the configured controller, the one a created Gateway's class implies, or
// that of an existing Gateway's class (read from the cluster).
func (c *Config) gatewayController() Controller {
	switch {
	case c.GatewayController != "":
		return Controller(c.GatewayController)
	case c.GatewayClassName == "traefik":
		return ControllerTraefik
	case c.GatewayClassName == "" && c.GatewayName != "":
		return ControllerOfGatewayClass
	}
	// A class the stack does not know: HTTPS-only is still checked (the listener's protocol);
	// source ranges are refused unless the user opts out.
	return ControllerOther
}

// GeneratedTLSSecretName is the Secret of the generated certificate (the TLS component's name +
// "-tls"; main_test keeps the two in step).
const GeneratedTLSSecretName = "registry-tls"

// TraefikWebsecurePort is the port of the websecure entry point in Traefik's Helm chart (k3s,
// minikube's traefik addon). Traefik serves a Gateway listener only on a port equal to an entry
// point's port, so a listener on 443 would never be programmed there.
const TraefikWebsecurePort = 8443

// gatewayListenerPort is the configured port, or the one the controller needs (0 = derive).
func (c *Config) gatewayListenerPort() int {
	switch {
	case c.GatewayListenerPort != 0:
		return c.GatewayListenerPort
	case c.gatewayController() == ControllerTraefik:
		return TraefikWebsecurePort
	}
	return 443
}

// validateRouting checks the routing and TLS keys; it never looks at keys of the mode not chosen
// beyond refusing ones that would be silently ignored.
func (v *validator) validateRouting(c *Config) {
	v.oneOf("routing", c.RoutingMode, routingModes)
	for i, r := range c.IngressSourceRanges {
		if _, _, err := net.ParseCIDR(r); err != nil {
			v.bad(fmt.Sprintf("ingressSourceRanges[%d]", i), r, "a CIDR such as 10.0.0.0/8 or 192.168.1.7/32")
		}
	}
	switch RoutingMode(c.RoutingMode) {
	case RoutingIngress:
		v.dnsSubdomain("ingressClassName", c.IngressClassName)
		if c.IngressController != "" {
			v.oneOf("ingressController", c.IngressController, ingressControllers)
		} else if c.ingressController() == "" {
			v.bad("ingressController", c.IngressController, fmt.Sprintf(
				"nginx, traefik or other: ingressClassName %q is not a class the stack knows (nginx, traefik), so say which controller serves it",
				c.IngressClassName))
		}
		if c.ingressController() == ControllerTraefik {
			v.entryPoint("traefikEntryPoint", c.TraefikEntryPoint)
		}
		if c.GatewayListenerPort != 0 {
			v.bad("gatewayListenerPort", fmt.Sprint(c.GatewayListenerPort), "0 with routing ingress (it is the port of a Gateway the stack creates)")
		}
		for _, k := range []struct{ key, value string }{
			{"gatewayClassName", c.GatewayClassName}, {"gatewayName", c.GatewayName},
			{"gatewayNamespace", c.GatewayNamespace}, {"gatewaySectionName", c.GatewaySectionName},
			{"gatewayController", c.GatewayController},
		} {
			if k.value != "" {
				v.bad(k.key, k.value, "empty with routing ingress (set routing to gateway to use a Gateway)")
			}
		}
		v.unenforced(c, c.ingressController(), "ingressController", "nginx or traefik")
	case RoutingGateway:
		if c.IngressController != "" {
			v.bad("ingressController", c.IngressController, "empty with routing gateway (the controller is gatewayController)")
		}
		switch {
		case c.GatewayClassName != "" && c.GatewayName != "":
			v.bad("gatewayName", c.GatewayName, "empty when gatewayClassName is set: either the stack creates a Gateway "+
				"(gatewayClassName) or attaches to an existing one (gatewayName), not both")
		case c.GatewayClassName != "":
			v.dnsSubdomain("gatewayClassName", c.GatewayClassName)
			if c.GatewayListenerPort != 0 {
				v.intRange("gatewayListenerPort", c.GatewayListenerPort, 1, 65535)
			}
			for _, k := range []struct{ key, value string }{{"gatewayNamespace", c.GatewayNamespace}, {"gatewaySectionName", c.GatewaySectionName}} {
				if k.value != "" {
					v.bad(k.key, k.value, "empty when the stack creates the Gateway (gatewayClassName); it is for an existing Gateway (gatewayName)")
				}
			}
		case c.GatewayName != "":
			v.dnsSubdomain("gatewayName", c.GatewayName)
			if c.GatewayListenerPort != 0 {
				v.bad("gatewayListenerPort", fmt.Sprint(c.GatewayListenerPort), "0 with an existing Gateway (its listeners are the platform's)")
			}
			if c.GatewayNamespace != "" {
				v.dnsLabel("gatewayNamespace", c.GatewayNamespace)
			}
			if c.GatewaySectionName == "" {
				v.bad("gatewaySectionName", c.GatewaySectionName, "the name of the Gateway's HTTPS listener: without it the route "+
					"would attach to every listener, plain-HTTP ones included")
			} else {
				v.dnsSubdomain("gatewaySectionName", c.GatewaySectionName)
			}
		default:
			v.bad("gatewayClassName", c.GatewayClassName, "a GatewayClass for a Gateway the stack creates, or set gatewayName "+
				"(and gatewaySectionName) to attach to an existing Gateway (required when routing is gateway)")
		}
		if c.GatewayController != "" {
			v.oneOf("gatewayController", c.GatewayController, gatewayControllers)
		}
		v.unenforced(c, c.gatewayController(), "gatewayController", "traefik")
	}

	v.oneOf("tlsSource", c.TLSSource, tlsSources)
	switch TLSSourceKind(c.TLSSource) {
	case TLSGenerated:
		for _, k := range []struct{ key, value string }{{"tlsSecretName", c.TLSSecretName}, {"tlsCaCertPem", c.TLSCACertPEM}} {
			if k.value != "" {
				v.bad(k.key, abbreviate(k.value), "empty with tlsSource generated (the stack makes its own CA; set tlsSource to secret to bring a certificate)")
			}
		}
	case TLSSecret:
		if c.TLSSecretName == "" {
			v.bad("tlsSecretName", c.TLSSecretName, "the name of an existing kubernetes.io/tls Secret in the stack's namespace (required when tlsSource is secret)")
		} else if c.TLSSecretName == GeneratedTLSSecretName {
			v.bad("tlsSecretName", c.TLSSecretName, "a name other than "+GeneratedTLSSecretName+": that is the generated certificate's Secret, "+
				"which the stack deletes when tlsSource changes from generated")
		} else {
			v.dnsSubdomain("tlsSecretName", c.TLSSecretName)
		}
		if c.TLSCACertPEM != "" && !isPEMCertificates(c.TLSCACertPEM) {
			v.bad("tlsCaCertPem", abbreviate(c.TLSCACertPEM), "empty, or PEM-encoded CA certificates (-----BEGIN CERTIFICATE----- ...) that clients should trust")
		}
	}
}

// unenforced refuses source ranges the chosen controller cannot enforce, unless the user said so.
func (v *validator) unenforced(c *Config, ctrl Controller, key, enforcing string) {
	if ctrl == ControllerOfGatewayClass {
		// The ranges are checked against the class's controller when the Gateway is read.
		if c.AllowUnenforcedSourceRanges {
			v.bad("allowUnenforcedSourceRanges", "true", "false unless gatewayController is other: the stack reads the existing Gateway's "+
				"class and enforces the source ranges itself when Traefik serves it; set gatewayController=other to accept ranges it cannot enforce")
		}
		return
	}
	if ctrl == ControllerOther && len(c.IngressSourceRanges) > 0 && !c.AllowUnenforcedSourceRanges {
		v.bad(key, string(ctrl), fmt.Sprintf(enforcing+" while ingressSourceRanges is set: the stack cannot enforce %s "+
			"on another controller; enforce them elsewhere and set allowUnenforcedSourceRanges=true, or clear ingressSourceRanges",
			strings.Join(c.IngressSourceRanges, ",")))
	}
	if c.AllowUnenforcedSourceRanges && ctrl != ControllerOther {
		v.bad("allowUnenforcedSourceRanges", "true", fmt.Sprintf("false with controller %s: the stack enforces the source ranges itself", ctrl))
	}
}

// entryPoint: Traefik entry point names are plain identifiers (letters, digits, - and _).
func (v *validator) entryPoint(key, value string) {
	ok := value != "" && len(value) <= 63
	for _, r := range value {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			ok = false
		}
	}
	if !ok {
		v.bad(key, value, "the name of Traefik's TLS entry point (websecure on k3s, minikube's traefik addon and the Helm chart)")
	}
}

// isPEMCertificates: one or more PEM CERTIFICATE blocks that parse, and nothing else.
func isPEMCertificates(s string) bool {
	rest := []byte(strings.TrimSpace(s))
	n := 0
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" {
			return false
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return false
		}
		n++
		rest = []byte(strings.TrimSpace(string(rest)))
	}
	return n > 0
}

// abbreviate keeps error messages readable for long values such as a PEM bundle.
func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// routing builds the typed routing from validated keys.
func (c *Config) routing() Routing {
	r := Routing{SourceRanges: slices.Clone(c.IngressSourceRanges)}
	switch RoutingMode(c.RoutingMode) {
	case RoutingIngress:
		r.Controller = c.ingressController()
		r.Ingress = &IngressRouting{ClassName: c.IngressClassName}
		if r.Controller == ControllerTraefik {
			r.Ingress.TraefikEntryPoint = c.TraefikEntryPoint
		}
	case RoutingGateway:
		r.Controller = c.gatewayController()
		r.Gateway = &GatewayRouting{}
		if c.GatewayClassName != "" {
			r.Gateway.Create = &CreatedGateway{ClassName: c.GatewayClassName, ListenerPort: c.gatewayListenerPort()}
		} else {
			ns := c.GatewayNamespace
			if ns == "" {
				ns = c.Namespace
			}
			r.Gateway.Existing = &ExistingGateway{Name: c.GatewayName, Namespace: ns, SectionName: c.GatewaySectionName}
		}
	}
	return r
}

// tls builds the typed certificate source from validated keys.
func (c *Config) tls() TLS {
	if TLSSourceKind(c.TLSSource) == TLSSecret {
		return TLS{Secret: &SecretTLS{Name: c.TLSSecretName, CACertPEM: c.TLSCACertPEM}}
	}
	return TLS{Generated: &GeneratedTLS{ValidityHours: c.CertValidityHours}}
}

// DNSNames are the names clients use: the hostname first, then the extra names, without duplicates.
// They are the certificate's DNS SANs and the route's hostnames.
func (c *Config) DNSNames() []string {
	names := []string{c.Hostname}
	for _, n := range c.ExtraDNSNames {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}
