package ingress

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
)

const (
	tIngress    = "kubernetes:networking.k8s.io/v1:Ingress"
	tSecret     = "kubernetes:core/v1:Secret"
	tPrivateKey = "tls:index/privateKey:PrivateKey"
	tSelfSigned = "tls:index/selfSignedCert:SelfSignedCert"
	tCSR        = "tls:index/certRequest:CertRequest"
	tLocal      = "tls:index/locallySignedCert:LocallySignedCert"
	tComponent  = "registry-stack:index:Ingress"
)

func TestDNSNames(t *testing.T) {
	for _, c := range []struct {
		host  string
		extra []string
		want  []string
	}{
		{"registry.test", nil, []string{"registry.test"}},
		{"registry.test", []string{"a.test", "b.test"}, []string{"registry.test", "a.test", "b.test"}},
		{"registry.test", []string{"registry.test"}, []string{"registry.test"}},
		{"registry.test", []string{"b.test", "registry.test", "a.test", "b.test"}, []string{"registry.test", "b.test", "a.test"}},
	} {
		if got := DNSNames(c.host, c.extra); !slices.Equal(got, c.want) {
			t.Errorf("DNSNames(%q, %q) = %q, want %q (hostname first, then extras in order, no duplicates)", c.host, c.extra, got, c.want)
		}
	}
	extra := []string{"x.test", "x.test"}
	DNSNames("registry.test", extra)
	if !slices.Equal(extra, []string{"x.test", "x.test"}) {
		t.Errorf("DNSNames modified its argument: %q", extra)
	}
}

func TestAnnotations(t *testing.T) {
	const p = "nginx.ingress.kubernetes.io/"
	ann := Annotations(nil)
	if got := ann[p+"proxy-body-size"]; got != "0" {
		t.Errorf("proxy-body-size = %q, want \"0\" (the 1 MiB default gives 413 on layer uploads)", got)
	}
	for _, k := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
		n, err := strconv.Atoi(ann[p+k])
		if err != nil || n < 600 {
			t.Errorf("%s = %q, want seconds >= 600 for big blobs", k, ann[p+k])
		}
	}
	if got := ann[p+"proxy-request-buffering"]; got != "off" {
		t.Errorf("proxy-request-buffering = %q, want off (uploads would be buffered on the controller's disk)", got)
	}
	for _, k := range []string{"whitelist-source-range", "allowlist-source-range"} {
		if v, ok := ann[p+k]; ok {
			t.Errorf("%s = %q without source ranges: it must be absent to allow every source", k, v)
		}
	}

	ranges := []string{"10.0.0.0/8", "192.168.1.0/24"}
	if got := Annotations(ranges)[p+"whitelist-source-range"]; got != "10.0.0.0/8,192.168.1.0/24" {
		t.Errorf("whitelist-source-range = %q, want the ranges comma-separated", got)
	}
	if got := Annotations([]string{})[p+"whitelist-source-range"]; got != "" {
		t.Errorf("whitelist-source-range = %q for an empty list", got)
	}
}

type result struct {
	m         *testutil.Mocks
	caCertPem string
	caSecret  bool
	url       string
	name      string
}

func runIngress(t *testing.T, name string, args *IngressArgs) result {
	t.Helper()
	var r result
	r.m = testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		ing, err := NewIngress(ctx, name, args)
		if err != nil {
			return err
		}
		r.caCertPem, r.caSecret = testutil.Resolve(t, ing.CACertPem)
		r.url, _ = testutil.Resolve(t, ing.URL)
		r.name, _ = testutil.Resolve(t, ing.IngressName)
		return nil
	})
	return r
}

func fullArgs() *IngressArgs {
	return &IngressArgs{
		Namespace:        pulumi.String("images"),
		Hostname:         "registry.example.com",
		ExtraDNSNames:    []string{"registry.internal", "registry.example.com"},
		ExtraIPAddresses: []string{"10.1.2.3", "192.168.49.2"},
		IngressClassName: "traefik",
		SourceRanges:     []string{"10.0.0.0/8"},
		ServiceName:      pulumi.String("registry-svc"),
		ServicePort:      5000,
	}
}

func TestCertificates(t *testing.T) {
	r := runIngress(t, "reg", fullArgs())
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
	if r.url != "https://registry.example.com" {
		t.Errorf("URL = %q", r.url)
	}
}

func TestIngressRoutesTheHostToTheService(t *testing.T) {
	r := runIngress(t, "reg", fullArgs())
	ing := r.m.Get(t, tIngress, "reg")
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"metadata", "name"}, "reg"},
		{[]any{"metadata", "namespace"}, "images"},
		{[]any{"spec", "ingressClassName"}, "traefik"},
		{[]any{"spec", "rules", 0, "host"}, "registry.example.com"},
		{[]any{"spec", "rules", 0, "http", "paths", 0, "path"}, "/"},
		{[]any{"spec", "rules", 0, "http", "paths", 0, "pathType"}, "Prefix"},
		{[]any{"spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"}, "registry-svc"},
		{[]any{"spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", "number"}, 5000.0},
		{[]any{"spec", "tls", 0, "secretName"}, "reg-tls"},
		{[]any{"metadata", "annotations", "nginx.ingress.kubernetes.io/proxy-body-size"}, "0"},
		{[]any{"metadata", "annotations", "nginx.ingress.kubernetes.io/whitelist-source-range"}, "10.0.0.0/8"},
	} {
		if got := ing.Lookup(c.path...); got != c.want {
			t.Errorf("Ingress %v = %#v, want %#v", c.path, got, c.want)
		}
	}
	if got := fmt.Sprint(ing.Lookup("spec", "tls", 0, "hosts")); got != "[registry.example.com registry.internal]" {
		t.Errorf("Ingress TLS hosts = %s, want the certificate's DNS names", got)
	}
	// Every DNS name of the certificate is routed, each to the registry Service.
	rules := ing.Lookup("spec", "rules").([]any)
	if len(rules) != 2 {
		t.Fatalf("%d rules, want one per DNS name (2)", len(rules))
	}
	if got := ing.String("spec", "rules", 1, "host"); got != "registry.internal" {
		t.Errorf("second rule host = %q, want the extra DNS name", got)
	}
	if got := ing.String("spec", "rules", 1, "http", "paths", 0, "backend", "service", "name"); got != "registry-svc" {
		t.Errorf("second rule backend = %q, want the registry Service", got)
	}
	if r.name != "reg" {
		t.Errorf("IngressName output = %q", r.name)
	}
}

func TestDefaultsAndParenting(t *testing.T) {
	r := runIngress(t, "edge", &IngressArgs{
		Namespace: pulumi.String("ns"), Hostname: "registry.test", ServiceName: pulumi.String("registry"), ServicePort: 5000,
	})
	ing := r.m.Get(t, tIngress, "edge")
	if got := ing.String("spec", "ingressClassName"); got != "nginx" {
		t.Errorf("default ingress class = %q, want nginx (minikube's addon)", got)
	}
	if _, ok := ing.Lookup("metadata", "annotations").(map[string]any)["nginx.ingress.kubernetes.io/whitelist-source-range"]; ok {
		t.Error("source-range annotation set without source ranges")
	}
	if got := fmt.Sprint(r.m.Get(t, tCSR, "edge-server-csr").Lookup("dnsNames")); got != "[registry.test]" {
		t.Errorf("CSR dnsNames = %s", got)
	}
	parent := "urn:pulumi:unit::registry-stack::" + tComponent + "::edge"
	for _, res := range r.m.Resources() {
		if res.Type == tComponent {
			continue
		}
		if res.Parent != parent {
			t.Errorf("%s/%s parent = %q, want the Ingress component", res.Type, res.Name, res.Parent)
		}
		if !strings.HasPrefix(res.Name, "edge") {
			t.Errorf("%s/%s is not named after the component", res.Type, res.Name)
		}
	}
	// No private key outside the TLS Secret.
	others := r.m.Dump(func(res testutil.Resource) bool {
		return strings.HasPrefix(res.Type, "kubernetes:") && res.Type != tSecret
	})
	if strings.Contains(others, "PRIVATE KEY") {
		t.Errorf("a private key appears outside the TLS Secret:\n%s", others)
	}
}

func TestRequiredArgs(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*IngressArgs)
	}{
		{"no hostname", func(a *IngressArgs) { a.Hostname = "" }},
		{"no namespace", func(a *IngressArgs) { a.Namespace = nil }},
		{"no service", func(a *IngressArgs) { a.ServiceName = nil }},
		{"no port", func(a *IngressArgs) { a.ServicePort = 0 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := fullArgs()
			c.edit(a)
			m, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
				_, err := NewIngress(ctx, "reg", a)
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
