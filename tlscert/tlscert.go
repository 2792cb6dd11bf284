// Package tlscert provides the registry's server certificate as a kubernetes.io/tls Secret, from one
// of several sources: a CA and certificate the stack generates, or a Secret someone else keeps
// (cert-manager, a corporate PKI). Routes (Ingress, Gateway) only need the Secret's name.
package tlscert

import (
	"fmt"
	"time"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi-tls/sdk/v5/go/tls"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
)

// CAValidityHours is the generated CA's lifetime (10 years): clients trust it once; the server
// certificate below it is short-lived and renewed by `pulumi up`.
const CAValidityHours = 10 * 8760

// componentType is the Pulumi type of the component.
const componentType = "registry-stack:index:TLS"

// formerParentType is the component that owned the certificates before they had their own: the
// aliases keep existing stacks' CA, key and certificate (no new CA for every client to trust).
const formerParentType = "registry-stack:index:Ingress"

// Source is where the server certificate comes from. Exactly one is set.
type Source struct {
	Generated *Generated
	Secret    *Secret
}

// Generated: the stack's CA and a server certificate for the hostnames.
type Generated struct {
	ValidityHours int
}

// Secret: a kubernetes.io/tls Secret that exists in the stack's namespace.
type Secret struct {
	// Name is an input, so that it can come from the resource that makes the Secret (a Secret the
	// program creates, a cert-manager Certificate's secretName): the route then waits for it.
	Name pulumi.StringInput
	// CACertPEM is what clients should trust, as the user supplied it (may be empty).
	CACertPEM string
}

// TLSArgs configures the certificate source. Exactly one of Generated and Secret is set.
type TLSArgs struct {
	// Required: namespace of the TLS Secret.
	Namespace pulumi.StringInput
	// Required: the DNS names clients use, the hostname first (DNS SANs of a generated certificate).
	DNSNames []string
	// Optional: defaults to none. IP SANs of a generated certificate.
	IPAddresses []string
	// Generated makes the stack's own CA (ECDSA P-256, 10 years) and a server certificate valid
	// ValidityHours (default 8760), re-issued on the first `pulumi up --refresh` in its last tenth.
	Generated *Generated
	// Secret uses an existing kubernetes.io/tls Secret in Namespace, by name only; its CACertPEM
	// (may be empty) is what clients should trust.
	Secret *Secret
}

// TLS is the server certificate of the registry's routes.
type TLS struct {
	pulumi.ResourceState

	// SecretName names the kubernetes.io/tls Secret in the stack's namespace.
	SecretName pulumi.StringOutput `pulumi:"secretName"`
	// CACertPem is the CA certificate clients must trust; empty when an existing Secret's issuer
	// was not given.
	CACertPem pulumi.StringOutput `pulumi:"caCertPem"`
	// NotAfter is the generated server certificate's end of validity (RFC 3339), for the expiry
	// alert: it is renewed only by a `pulumi up`. Empty for an existing Secret.
	NotAfter pulumi.StringOutput `pulumi:"notAfter"`
}

func (a *TLSArgs) validate() error {
	if a.Namespace == nil || len(a.DNSNames) == 0 {
		return fmt.Errorf("tlscert: Namespace and DNSNames are required")
	}
	if (a.Generated == nil) == (a.Secret == nil) {
		return fmt.Errorf("tlscert: exactly one certificate source (Generated or Secret) must be set")
	}
	if a.Secret != nil && (a.Secret.Name == nil || a.Secret.Name == pulumi.String("")) {
		return fmt.Errorf("tlscert: Secret.Name is required")
	}
	return nil
}

// ValidityOrDefault is the generated server certificate's validity (hours; 0: a year).
func ValidityOrDefault(hours int) time.Duration {
	if hours == 0 {
		hours = 8760
	}
	return time.Duration(hours) * time.Hour
}

// NewTLS registers the certificate source.
func NewTLS(ctx *pulumi.Context, name string, args *TLSArgs, opts ...pulumi.ResourceOption) (*TLS, error) {
	if err := args.validate(); err != nil {
		return nil, err
	}
	comp := &TLS{}
	if err := ctx.RegisterComponentResource(componentType, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("tlscert: register component %q: %w", name, err)
	}
	switch {
	case args.Generated != nil:
		secretName, caPem, notAfter, err := generate(ctx, name, comp, args)
		if err != nil {
			return nil, err
		}
		comp.SecretName, comp.CACertPem, comp.NotAfter = secretName, caPem, notAfter
	case args.Secret != nil:
		comp.SecretName = args.Secret.Name.ToStringOutput().ApplyT(func(n string) (string, error) {
			if n == "" {
				return "", fmt.Errorf("tlscert: Secret.Name resolved to an empty name")
			}
			return n, nil
		}).(pulumi.StringOutput)
		comp.CACertPem = pulumi.String(args.Secret.CACertPEM).ToStringOutput()
		comp.NotAfter = pulumi.String("").ToStringOutput()
	}
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"secretName": comp.SecretName,
		"caCertPem":  comp.CACertPem,
		"notAfter":   comp.NotAfter,
	}); err != nil {
		return nil, fmt.Errorf("tlscert: register outputs: %w", err)
	}
	return comp, nil
}

// generate registers the CA, the server certificate and the TLS Secret holding them.
func generate(ctx *pulumi.Context, name string, comp *TLS, args *TLSArgs) (secretName, caPem, notAfter pulumi.StringOutput, err error) {
	var none pulumi.StringOutput
	validity := int(ValidityOrDefault(args.Generated.ValidityHours) / time.Hour)
	formerParent := pulumi.CreateURN(pulumi.String(name), pulumi.String(formerParentType), nil,
		pulumi.String(ctx.Project()), pulumi.String(ctx.Stack()))
	child := []pulumi.ResourceOption{pulumi.Parent(comp), pulumi.Aliases([]pulumi.Alias{{ParentURN: formerParent}})}

	caKey, err := tls.NewPrivateKey(ctx, name+"-ca-key", &tls.PrivateKeyArgs{
		Algorithm: pulumi.String("ECDSA"), EcdsaCurve: pulumi.String("P256"),
	}, child...)
	if err != nil {
		return none, none, none, fmt.Errorf("tlscert: CA key: %w", err)
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
	}, child...)
	if err != nil {
		return none, none, none, fmt.Errorf("tlscert: CA certificate: %w", err)
	}
	serverKey, err := tls.NewPrivateKey(ctx, name+"-server-key", &tls.PrivateKeyArgs{
		Algorithm: pulumi.String("ECDSA"), EcdsaCurve: pulumi.String("P256"),
	}, child...)
	if err != nil {
		return none, none, none, fmt.Errorf("tlscert: server key: %w", err)
	}
	csr, err := tls.NewCertRequest(ctx, name+"-server-csr", &tls.CertRequestArgs{
		PrivateKeyPem: serverKey.PrivateKeyPem,
		Subject:       &tls.CertRequestSubjectArgs{CommonName: pulumi.String(args.DNSNames[0]), Organization: pulumi.String("registry-stack")},
		DnsNames:      pulumi.ToStringArray(args.DNSNames),
		IpAddresses:   pulumi.ToStringArray(args.IPAddresses),
	}, child...)
	if err != nil {
		return none, none, none, fmt.Errorf("tlscert: certificate request: %w", err)
	}
	serverCert, err := tls.NewLocallySignedCert(ctx, name+"-server-cert", &tls.LocallySignedCertArgs{
		CertRequestPem:      csr.CertRequestPem,
		CaPrivateKeyPem:     caKey.PrivateKeyPem,
		CaCertPem:           ca.CertPem,
		ValidityPeriodHours: pulumi.Int(validity),
		EarlyRenewalHours:   pulumi.Int(validity / 10),
		SetSubjectKeyId:     pulumi.Bool(true),
		AllowedUses:         pulumi.ToStringArray([]string{"server_auth", "digital_signature", "key_encipherment"}),
	}, child...)
	if err != nil {
		return none, none, none, fmt.Errorf("tlscert: server certificate: %w", err)
	}
	secret, err := corev1.NewSecret(ctx, name+"-tls", &corev1.SecretArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String(name + "-tls"), Namespace: args.Namespace,
			Labels: kube.StringMap(kube.Labels("registry", name, "tls")),
		},
		Type: pulumi.String("kubernetes.io/tls"),
		StringData: pulumi.StringMap{
			"tls.crt": serverCert.CertPem,
			"tls.key": serverKey.PrivateKeyPem,
			"ca.crt":  ca.CertPem,
		},
	}, child...)
	if err != nil {
		return none, none, none, fmt.Errorf("tlscert: TLS secret: %w", err)
	}
	return secret.Metadata.Name().Elem(), ca.CertPem, serverCert.ValidityEndTime, nil
}
