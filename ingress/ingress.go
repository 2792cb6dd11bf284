// Package ingress exposes the registry over HTTPS: a generated CA, a server certificate whose SANs
// hold the hostname (docker and Go clients ignore the Common Name), the TLS Secret and the Ingress.
package ingress

import (
	"fmt"
	"slices"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi-tls/sdk/v5/go/tls"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
)

// CAValidityHours is the CA's lifetime (10 years): clients trust it once; the server certificate
// below it is short-lived and renewed by `pulumi up`.
const CAValidityHours = 10 * 8760

// IngressArgs configures the Ingress and its certificates.
type IngressArgs struct {
	// Required: namespace of every object.
	Namespace pulumi.StringInput
	// Required: the DNS name clients use; first SAN of the server certificate.
	Hostname string
	// Optional: defaults to none. More DNS SANs of the server certificate.
	ExtraDNSNames []string
	// Optional: defaults to none. IP SANs of the server certificate.
	ExtraIPAddresses []string
	// Optional: defaults to "nginx" (minikube's ingress addon).
	IngressClassName string
	// Optional: defaults to none (all sources). CIDRs allowed to connect (enforced by ingress-nginx).
	SourceRanges []string
	// Required: the registry Service and its port.
	ServiceName pulumi.StringInput
	ServicePort int
	// Optional: defaults to 8760 (one year). Lifetime of the server certificate; it is re-issued on
	// the first `pulumi up --refresh` in its last tenth.
	CertValidityHours int
}

// Ingress is the HTTPS entry point of the registry.
type Ingress struct {
	pulumi.ResourceState

	// CACertPem is the CA certificate clients must trust.
	CACertPem pulumi.StringOutput `pulumi:"caCertPem"`
	// URL is https://<hostname>.
	URL pulumi.StringOutput `pulumi:"url"`
	// IngressName names the Ingress.
	IngressName pulumi.StringOutput `pulumi:"ingressName"`
}

func (a *IngressArgs) withDefaults() (*IngressArgs, error) {
	out := *a
	if out.Namespace == nil || out.ServiceName == nil || out.Hostname == "" || out.ServicePort == 0 {
		return nil, fmt.Errorf("ingress: Namespace, Hostname, ServiceName and ServicePort are required")
	}
	if out.IngressClassName == "" {
		out.IngressClassName = "nginx"
	}
	if out.CertValidityHours == 0 {
		out.CertValidityHours = 8760
	}
	return &out, nil
}

// NewIngress registers the CA, the server certificate, the TLS Secret and the Ingress.
func NewIngress(ctx *pulumi.Context, name string, args *IngressArgs, opts ...pulumi.ResourceOption) (*Ingress, error) {
	a, err := args.withDefaults()
	if err != nil {
		return nil, err
	}
	comp := &Ingress{}
	if err := ctx.RegisterComponentResource("registry-stack:index:Ingress", name, comp, opts...); err != nil {
		return nil, fmt.Errorf("ingress: register component %q: %w", name, err)
	}
	parent := pulumi.Parent(comp)
	labels := kube.StringMap(kube.Labels("registry", name, "ingress"))

	caKey, err := tls.NewPrivateKey(ctx, name+"-ca-key", &tls.PrivateKeyArgs{
		Algorithm: pulumi.String("ECDSA"), EcdsaCurve: pulumi.String("P256"),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("ingress: CA key: %w", err)
	}
	ca, err := tls.NewSelfSignedCert(ctx, name+"-ca", &tls.SelfSignedCertArgs{
		PrivateKeyPem:       caKey.PrivateKeyPem,
		IsCaCertificate:     pulumi.Bool(true),
		SetSubjectKeyId:     pulumi.Bool(true),
		ValidityPeriodHours: pulumi.Int(CAValidityHours),
		AllowedUses:         pulumi.ToStringArray([]string{"cert_signing", "crl_signing", "digital_signature"}),
		Subject: &tls.SelfSignedCertSubjectArgs{
			// No hostname in the subject: a subject change replaces the CA, and every client
			// would have to trust a new one just because the hostname changed.
			CommonName:   pulumi.String("registry-stack CA"),
			Organization: pulumi.String("registry-stack"),
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("ingress: CA certificate: %w", err)
	}
	serverKey, err := tls.NewPrivateKey(ctx, name+"-server-key", &tls.PrivateKeyArgs{
		Algorithm: pulumi.String("ECDSA"), EcdsaCurve: pulumi.String("P256"),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("ingress: server key: %w", err)
	}
	csr, err := tls.NewCertRequest(ctx, name+"-server-csr", &tls.CertRequestArgs{
		PrivateKeyPem: serverKey.PrivateKeyPem,
		Subject:       &tls.CertRequestSubjectArgs{CommonName: pulumi.String(a.Hostname), Organization: pulumi.String("registry-stack")},
		DnsNames:      pulumi.ToStringArray(DNSNames(a.Hostname, a.ExtraDNSNames)),
		IpAddresses:   pulumi.ToStringArray(a.ExtraIPAddresses),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("ingress: certificate request: %w", err)
	}
	serverCert, err := tls.NewLocallySignedCert(ctx, name+"-server-cert", &tls.LocallySignedCertArgs{
		CertRequestPem:      csr.CertRequestPem,
		CaPrivateKeyPem:     caKey.PrivateKeyPem,
		CaCertPem:           ca.CertPem,
		ValidityPeriodHours: pulumi.Int(a.CertValidityHours),
		EarlyRenewalHours:   pulumi.Int(a.CertValidityHours / 10),
		SetSubjectKeyId:     pulumi.Bool(true),
		AllowedUses:         pulumi.ToStringArray([]string{"server_auth", "digital_signature", "key_encipherment"}),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("ingress: server certificate: %w", err)
	}

	tlsSecret, err := corev1.NewSecret(ctx, name+"-tls", &corev1.SecretArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name + "-tls"), Namespace: a.Namespace, Labels: labels},
		Type:     pulumi.String("kubernetes.io/tls"),
		StringData: pulumi.StringMap{
			"tls.crt": serverCert.CertPem,
			"tls.key": serverKey.PrivateKeyPem,
			"ca.crt":  ca.CertPem,
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("ingress: TLS secret: %w", err)
	}

	ing, err := networkingv1.NewIngress(ctx, name, &networkingv1.IngressArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String(name), Namespace: a.Namespace, Labels: labels,
			Annotations: pulumi.ToStringMap(Annotations(a.SourceRanges)),
		},
		Spec: Spec(a, tlsSecret.Metadata.Name().Elem()),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("ingress: ingress: %w", err)
	}

	comp.CACertPem = ca.CertPem
	comp.URL = pulumi.String("https://" + a.Hostname).ToStringOutput()
	comp.IngressName = ing.Metadata.Name().Elem()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"caCertPem":   comp.CACertPem,
		"url":         comp.URL,
		"ingressName": comp.IngressName,
	}); err != nil {
		return nil, fmt.Errorf("ingress: register outputs: %w", err)
	}
	return comp, nil
}

// DNSNames are the DNS SANs: the hostname first, then the extra names, without duplicates.
func DNSNames(hostname string, extra []string) []string {
	names := []string{hostname}
	for _, n := range extra {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// Annotations make ingress-nginx fit a registry: no body limit (1 MiB by default gives 413 on layer
// uploads), long timeouts for big blobs, and streaming instead of buffering uploads on the
// controller's disk. Other controllers ignore them.
func Annotations(sourceRanges []string) map[string]string {
	ann := map[string]string{
		"nginx.ingress.kubernetes.io/proxy-body-size":         "0",
		"nginx.ingress.kubernetes.io/proxy-read-timeout":      "600",
		"nginx.ingress.kubernetes.io/proxy-send-timeout":      "600",
		"nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
		"nginx.ingress.kubernetes.io/proxy-buffering":         "off",
		"nginx.ingress.kubernetes.io/backend-protocol":        "HTTP",
	}
	if len(sourceRanges) > 0 {
		ann["nginx.ingress.kubernetes.io/whitelist-source-range"] = strings.Join(sourceRanges, ",")
	}
	return ann
}

// Spec routes every path of the hostname and of each extra DNS name to the registry Service over
// TLS. IP SANs are in the certificate but not routed: an Ingress rule matches host names only.
func Spec(a *IngressArgs, tlsSecretName pulumi.StringInput) *networkingv1.IngressSpecArgs {
	var rules networkingv1.IngressRuleArray
	for _, host := range DNSNames(a.Hostname, a.ExtraDNSNames) {
		rules = append(rules, &networkingv1.IngressRuleArgs{
			Host: pulumi.String(host),
			Http: &networkingv1.HTTPIngressRuleValueArgs{
				Paths: networkingv1.HTTPIngressPathArray{&networkingv1.HTTPIngressPathArgs{
					Path:     pulumi.String("/"),
					PathType: pulumi.String("Prefix"),
					Backend: &networkingv1.IngressBackendArgs{
						Service: &networkingv1.IngressServiceBackendArgs{
							Name: a.ServiceName,
							Port: &networkingv1.ServiceBackendPortArgs{Number: pulumi.Int(a.ServicePort)},
						},
					},
				}},
			},
		})
	}
	return &networkingv1.IngressSpecArgs{
		IngressClassName: pulumi.String(a.IngressClassName),
		Tls: networkingv1.IngressTLSArray{&networkingv1.IngressTLSArgs{
			Hosts:      pulumi.ToStringArray(DNSNames(a.Hostname, a.ExtraDNSNames)),
			SecretName: tlsSecretName,
		}},
		Rules: rules,
	}
}
