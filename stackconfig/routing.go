package stackconfig

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/routing"
	"github.com/regstack/registry-stack/tlscert"
)

// RoutingMode is how clients reach the registry: an Ingress or a Gateway API HTTPRoute.
type RoutingMode string

const (
	RoutingIngress RoutingMode = "ingress"
	RoutingGateway RoutingMode = "gateway"
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
	ingressControllers = []string{string(routing.ControllerNginx), string(routing.ControllerTraefik), string(routing.ControllerOther)}
	gatewayControllers = []string{string(routing.ControllerTraefik), string(routing.ControllerOther)}
)

// knownIngressControllers maps the IngressClass names the controllers install by default
// (minikube's addons, k3s, the Helm charts) to the controller.
var knownIngressControllers = map[string]routing.Controller{"nginx": routing.ControllerNginx, "traefik": routing.ControllerTraefik}

// ingressController is the configured controller, or the one the class name implies.
func (c *Config) ingressController() routing.Controller {
	if c.IngressController != "" {
		return routing.Controller(c.IngressController)
	}
	return knownIngressControllers[c.IngressClassName]
}

// gatewayController is the configured controller, the one a created Gateway's class implies, or
// that of an existing Gateway's class (read from the cluster).
func (c *Config) gatewayController() routing.Controller {
	switch {
	case c.GatewayController != "":
		return routing.Controller(c.GatewayController)
	case c.GatewayClassName == "traefik":
		return routing.ControllerTraefik
	case c.GatewayClassName == "" && c.GatewayName != "":
		return routing.ControllerOfGatewayClass
	}
	// A class the stack does not know: HTTPS-only is still checked (the listener's protocol);
	// source ranges are refused unless the user opts out.
	return routing.ControllerOther
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
	case c.gatewayController() == routing.ControllerTraefik:
		return TraefikWebsecurePort
	}
	return 443
}

// validateRouting checks the routing and TLS fields of the variant set (Parse refuses both variants
// of one object set at once).
func (v *validator) validateRouting(c *Config) {
	for i, r := range c.IngressSourceRanges {
		if _, _, err := net.ParseCIDR(r); err != nil {
			v.bad(fmt.Sprintf("routing.sourceRanges[%d]", i), r, "a CIDR such as 10.0.0.0/8 or 192.168.1.7/32")
		}
	}
	switch RoutingMode(c.RoutingMode) {
	case RoutingIngress:
		v.dnsSubdomain("routing.ingress.className", c.IngressClassName)
		if c.IngressController != "" {
			v.oneOf("routing.ingress.controller", c.IngressController, ingressControllers)
		} else if c.ingressController() == "" {
			v.bad("routing.ingress.controller", c.IngressController, fmt.Sprintf(
				"nginx, traefik or other: routing.ingress.className %q is not a class the stack knows (nginx, traefik), so say which controller serves it",
				c.IngressClassName))
		}
		if c.ingressController() == routing.ControllerTraefik {
			v.entryPoint("routing.ingress.traefikEntryPoint", c.TraefikEntryPoint)
		}
		v.unenforced(c, c.ingressController(), "routing.ingress.controller", "nginx or traefik")
	case RoutingGateway:
		switch {
		case c.GatewayClassName != "":
			v.dnsSubdomain("routing.gateway.create.className", c.GatewayClassName)
			if c.GatewayListenerPort != 0 {
				v.intRange("routing.gateway.create.listenerPort", c.GatewayListenerPort, 1, 65535)
			}
		case c.GatewayName != "":
			v.dnsSubdomain("routing.gateway.existing.name", c.GatewayName)
			if c.GatewayNamespace != "" {
				v.dnsLabel("routing.gateway.existing.namespace", c.GatewayNamespace)
			}
			if c.GatewaySectionName == "" {
				v.bad("routing.gateway.existing.sectionName", c.GatewaySectionName, "the name of the Gateway's HTTPS listener: without it the route "+
					"would attach to every listener, plain-HTTP ones included")
			} else {
				v.dnsSubdomain("routing.gateway.existing.sectionName", c.GatewaySectionName)
			}
		case c.gatewayCreateSet:
			v.bad("routing.gateway.create.className", c.GatewayClassName, "the GatewayClass of the Gateway the stack creates (required with routing.gateway.create)")
		default:
			v.bad("routing.gateway.existing.name", c.GatewayName, "the existing Gateway to attach to (required with routing.gateway.existing)")
		}
		if c.GatewayController != "" {
			v.oneOf("routing.gateway.controller", c.GatewayController, gatewayControllers)
		}
		v.unenforced(c, c.gatewayController(), "routing.gateway.controller", "traefik")
	}

	v.intRange("tls.generated.validityHours", c.CertValidityHours, MinCertValidityHours, MaxCertValidityHours)
	if TLSSourceKind(c.TLSSource) == TLSSecret {
		if c.TLSSecretName == "" {
			v.bad("tls.secret.name", c.TLSSecretName, "the name of an existing kubernetes.io/tls Secret in the stack's namespace (required with tls.secret)")
		} else if c.TLSSecretName == GeneratedTLSSecretName {
			v.bad("tls.secret.name", c.TLSSecretName, "a name other than "+GeneratedTLSSecretName+": that is the generated certificate's Secret, "+
				"which the stack deletes when the source changes from tls.generated")
		} else {
			v.dnsSubdomain("tls.secret.name", c.TLSSecretName)
		}
		if c.TLSCACertPEM != "" && !isPEMCertificates(c.TLSCACertPEM) {
			v.bad("tls.secret.caCertPem", abbreviate(c.TLSCACertPEM), "empty, or PEM-encoded CA certificates (-----BEGIN CERTIFICATE----- ...) that clients should trust")
		}
	}
}

// unenforced refuses source ranges the chosen controller cannot enforce, unless the user said so.
func (v *validator) unenforced(c *Config, ctrl routing.Controller, key, enforcing string) {
	if ctrl == routing.ControllerOfGatewayClass {
		// The ranges are checked against the class's controller when the Gateway is read.
		if c.AllowUnenforcedSourceRanges {
			v.bad("routing.allowUnenforcedSourceRanges", "true", "false unless routing.gateway.controller is other: the stack reads the existing Gateway's "+
				"class and enforces the source ranges itself when Traefik serves it; set routing.gateway.controller=other to accept ranges it cannot enforce")
		}
		return
	}
	if ctrl == routing.ControllerOther && len(c.IngressSourceRanges) > 0 && !c.AllowUnenforcedSourceRanges {
		v.bad(key, string(ctrl), fmt.Sprintf(enforcing+" while routing.sourceRanges is set: the stack cannot enforce %s "+
			"on another controller; enforce them elsewhere and set routing.allowUnenforcedSourceRanges=true, or clear routing.sourceRanges",
			strings.Join(c.IngressSourceRanges, ",")))
	}
	if c.AllowUnenforcedSourceRanges && ctrl != routing.ControllerOther {
		v.bad("routing.allowUnenforcedSourceRanges", "true", fmt.Sprintf("false with controller %s: the stack enforces the source ranges itself", ctrl))
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
func (c *Config) routing() routing.Spec {
	r := routing.Spec{SourceRanges: slices.Clone(c.IngressSourceRanges)}
	switch RoutingMode(c.RoutingMode) {
	case RoutingIngress:
		r.Controller = c.ingressController()
		r.Ingress = &routing.Ingress{ClassName: c.IngressClassName}
		if r.Controller == routing.ControllerTraefik {
			r.Ingress.TraefikEntryPoint = c.TraefikEntryPoint
		}
	case RoutingGateway:
		r.Controller = c.gatewayController()
		r.Gateway = &routing.Gateway{}
		if c.GatewayClassName != "" {
			r.Gateway.Create = &routing.CreatedGateway{ClassName: c.GatewayClassName, ListenerPort: c.gatewayListenerPort()}
		} else {
			ns := c.GatewayNamespace
			if ns == "" {
				ns = c.Namespace
			}
			r.Gateway.Existing = &routing.ExistingGateway{Name: pulumi.String(c.GatewayName), Namespace: pulumi.String(ns), SectionName: c.GatewaySectionName}
		}
	}
	return r
}

// tls builds the typed certificate source from validated keys.
func (c *Config) tls() tlscert.Source {
	if TLSSourceKind(c.TLSSource) == TLSSecret {
		return tlscert.Source{Secret: &tlscert.Secret{Name: pulumi.String(c.TLSSecretName), CACertPEM: c.TLSCACertPEM}}
	}
	return tlscert.Source{Generated: &tlscert.Generated{ValidityHours: c.CertValidityHours}}
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
