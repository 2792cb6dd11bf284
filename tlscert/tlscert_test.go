package tlscert

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
)

const (
	tSecret     = "kubernetes:core/v1:Secret"
	tPrivateKey = "tls:index/privateKey:PrivateKey"
	tSelfSigned = "tls:index/selfSignedCert:SelfSignedCert"
	tCSR        = "tls:index/certRequest:CertRequest"
	tLocal      = "tls:index/locallySignedCert:LocallySignedCert"
)

type result struct {
	m          *testutil.Mocks
	caCertPem  string
	caSecret   bool
	secretName string
}

func runTLS(t *testing.T, name string, args *TLSArgs) result {
	t.Helper()
	var r result
	r.m = testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		c, err := NewTLS(ctx, name, args)
		if err != nil {
			return err
		}
		r.caCertPem, r.caSecret = testutil.Resolve(t, c.CACertPem)
		r.secretName, _ = testutil.Resolve(t, c.SecretName)
		return nil
	})
	return r
}

func fullArgs() *TLSArgs {
	return &TLSArgs{
		Namespace:   pulumi.String("images"),
		DNSNames:    []string{"registry.example.com", "registry.internal"},
		IPAddresses: []string{"10.1.2.3", "192.168.49.2"},
		Generated:   &Generated{},
	}
}

func TestCertificates(t *testing.T) {
	r := runTLS(t, "reg", fullArgs())
	m := r.m

	ca := m.Get(t, tSelfSigned, "reg-ca")
	if got := ca.Lookup("isCaCertificate"); got != true {
		t.Errorf("CA isCaCertificate = %v, want true (clients reject a leaf as issuer)", got)
	}
	if uses := fmt.Sprint(ca.Lookup("allowedUses")); !strings.Contains(uses, "cert_signing") {
		t.Errorf("CA allowedUses = %s, want cert_signing", uses)
	}
	if got := ca.Lookup("validityPeriodHours"); got != float64(CAValidityHours) {
		t.Errorf("CA validity = %v h, want %d", got, CAValidityHours)
	}
	if !strings.Contains(ca.String("privateKeyPem"), "mock-reg-ca-key") {
		t.Errorf("CA is not self-signed with the CA key: %q", ca.String("privateKeyPem"))
	}

	csr := m.Get(t, tCSR, "reg-server-csr")
	if got := fmt.Sprint(csr.Lookup("dnsNames")); got != "[registry.example.com registry.internal]" {
		t.Errorf("CSR dnsNames = %s, want the hostname first, extras deduplicated (docker ignores the CN)", got)
	}
	if got := fmt.Sprint(csr.Lookup("ipAddresses")); got != "[10.1.2.3 192.168.49.2]" {
		t.Errorf("CSR ipAddresses = %s", got)
	}
	if got := csr.String("subject", "commonName"); got != "registry.example.com" {
		t.Errorf("CSR CN = %q, want the hostname", got)
	}
	if !strings.Contains(csr.String("privateKeyPem"), "mock-reg-server-key") {
		t.Errorf("CSR is not made with the server key: %q", csr.String("privateKeyPem"))
	}

	server := m.Get(t, tLocal, "reg-server-cert")
	if !strings.Contains(server.String("caPrivateKeyPem"), "mock-reg-ca-key") {
		t.Errorf("server certificate is not signed by the CA key: %q", server.String("caPrivateKeyPem"))
	}
	if strings.Contains(server.String("caPrivateKeyPem"), "server-key") {
		t.Error("server certificate signed with its own key: it would be self-signed, not issued by the CA")
	}
	if !strings.Contains(server.String("caCertPem"), "mock-reg-ca\n") {
		t.Errorf("server certificate issuer = %q, want the CA certificate", server.String("caCertPem"))
	}
	if !strings.Contains(server.String("certRequestPem"), "mock-reg-server-csr") {
		t.Errorf("server certificate is not made from the CSR: %q", server.String("certRequestPem"))
	}
	if uses := fmt.Sprint(server.Lookup("allowedUses")); !strings.Contains(uses, "server_auth") {
		t.Errorf("server certificate allowedUses = %s, want server_auth", uses)
	}
	if got, early := server.Lookup("validityPeriodHours"), server.Lookup("earlyRenewalHours"); got != 8760.0 || early != 876.0 {
		t.Errorf("server validity = %v h, early renewal = %v h, want the default 8760 and 876", got, early)
	}
	if n := len(m.OfType(tPrivateKey)); n != 2 {
		t.Errorf("%d private keys, want 2 (the CA's and the server's)", n)
	}

	secret := m.Get(t, tSecret, "reg-tls")
	if got := secret.String("type"); got != "kubernetes.io/tls" {
		t.Errorf("TLS Secret type = %q, want kubernetes.io/tls (ingress controllers require it)", got)
	}
	if !secret.IsSecret("stringData", "tls.key") {
		t.Error("TLS Secret tls.key is not marked secret")
	}
	if got := secret.String("stringData", "tls.key"); !strings.Contains(got, "mock-reg-server-key") {
		t.Errorf("tls.key = %q, want the server key", got)
	}
	if got := secret.String("stringData", "tls.crt"); !strings.Contains(got, "mock-reg-server-cert") {
		t.Errorf("tls.crt = %q, want the CA-signed server certificate", got)
	}
	if got := secret.String("stringData", "ca.crt"); !strings.Contains(got, "mock-reg-ca\n") {
		t.Errorf("ca.crt = %q, want the CA certificate", got)
	}

	if r.caSecret || strings.Contains(r.caCertPem, "PRIVATE KEY") || !strings.Contains(r.caCertPem, "mock-reg-ca\n") {
		t.Errorf("CACertPem output = %q (secret %v), want the plain CA certificate", r.caCertPem, r.caSecret)
	}
	if r.secretName != "reg-tls" {
		t.Errorf("SecretName output = %q, want the generated Secret", r.secretName)
	}
}

// The certificates once belonged to the Ingress component: every generated resource carries an
// alias to that parent, so an existing stack keeps its CA (clients keep trusting it).
func TestGeneratedResourcesKeepTheirFormerURNs(t *testing.T) {
	r := runTLS(t, "registry", fullArgs())
	former := "urn:pulumi:unit::registry-stack::registry-stack:index:Ingress::registry"
	parent := "urn:pulumi:unit::registry-stack::registry-stack:index:TLS::registry"
	n := 0
	for _, res := range r.m.Resources() {
		if res.Type == "registry-stack:index:TLS" {
			continue
		}
		n++
		if res.Parent != parent {
			t.Errorf("%s/%s parent = %q, want the TLS component", res.Type, res.Name, res.Parent)
		}
		if len(res.AliasParents) != 1 || res.AliasParents[0] != former {
			t.Errorf("%s/%s aliases = %q, want the former Ingress parent %q", res.Type, res.Name, res.AliasParents, former)
		}
		if !strings.HasPrefix(res.Name, "registry") {
			t.Errorf("%s/%s is not named after the component", res.Type, res.Name)
		}
	}
	if n != 6 {
		t.Errorf("%d children, want 6 (2 keys, CA, CSR, certificate, Secret)", n)
	}
	if others := r.m.Dump(func(res testutil.Resource) bool {
		return strings.HasPrefix(res.Type, "kubernetes:") && res.Type != tSecret
	}); strings.Contains(others, "PRIVATE KEY") {
		t.Errorf("a private key appears outside the TLS Secret:\n%s", others)
	}
}

// An existing Secret is used by name: nothing is generated, no Secret is written, and the CA output
// is what the user gave (or empty).
func TestExistingSecretGeneratesNothing(t *testing.T) {
	for _, ca := range []string{"", "-----BEGIN CERTIFICATE-----\ncorp-root\n-----END CERTIFICATE-----\n"} {
		a := fullArgs()
		a.Generated, a.Secret = nil, &Secret{Name: pulumi.String("corp-tls"), CACertPEM: ca}
		r := runTLS(t, "reg", a)
		if n := len(r.m.Resources()); n != 1 {
			t.Errorf("%d registrations, want only the component: %s", n, r.m.Dump(nil))
		}
		if r.secretName != "corp-tls" || r.caCertPem != ca || r.caSecret {
			t.Errorf("outputs secretName=%q caCertPem=%q (secret %v), want corp-tls and the given CA", r.secretName, r.caCertPem, r.caSecret)
		}
	}
}

func TestRequiredArgs(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*TLSArgs)
	}{
		{"no names", func(a *TLSArgs) { a.DNSNames = nil }},
		{"no namespace", func(a *TLSArgs) { a.Namespace = nil }},
		{"no source", func(a *TLSArgs) { a.Generated = nil }},
		{"two sources", func(a *TLSArgs) { a.Secret = &Secret{Name: pulumi.String("x")} }},
		{"secret without name", func(a *TLSArgs) { a.Generated, a.Secret = nil, &Secret{} }},
		{"secret with an empty name", func(a *TLSArgs) { a.Generated, a.Secret = nil, &Secret{Name: pulumi.String("")} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := fullArgs()
			c.edit(a)
			m, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
				_, err := NewTLS(ctx, "reg", a)
				return err
			})
			if err == nil {
				t.Fatal("accepted")
			}
			if n := len(m.Resources()); n != 0 {
				t.Errorf("%d resources registered before the args were rejected", n)
			}
		})
	}
}
