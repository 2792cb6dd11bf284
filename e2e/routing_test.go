//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// Routing steps (issue 8): the plain-HTTP entry point never serves the registry, source ranges are
// enforced by the controller, the same deployment moves from the Ingress to a Gateway the stack
// creates, to an existing Gateway of a platform namespace, and back to an Ingress with a certificate
// made outside the stack, keeping its data and credentials throughout.

// routeTimeout bounds how long the controller may take to apply a route change after `pulumi up`.
const routeTimeout = 90 * time.Second

// plainHTTPResult is one probe of the plain-HTTP entry point.
type plainHTTPResult struct {
	path      string
	withCreds bool
	code      int
	registry  bool // the answer came from the registry (its API version header)
}

// probePlainHTTP sends GET path with Host: hostname to the plain-HTTP address, without following
// redirects.
func probePlainHTTP(ctx context.Context, addr, hostname, path, user, pass string) (plainHTTPResult, error) {
	r := plainHTTPResult{path: path, withCreds: user != ""}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return r, err
	}
	req.Host = hostname
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return r, fmt.Errorf("GET http://%s%s (Host %s): %w", addr, path, hostname, err)
	}
	resp.Body.Close()
	r.code = resp.StatusCode
	r.registry = resp.Header.Get("Docker-Distribution-Api-Version") != "" || strings.Contains(resp.Header.Get("Www-Authenticate"), "Basic")
	return r, nil
}

// checkPlainHTTP asserts that no registry path answers 200 or a registry 401 over plain HTTP, with
// or without credentials, and records what it got.
func (f *fixture) checkPlainHTTP(ctx context.Context, t *testing.T, mode string) {
	t.Helper()
	if f.Settings.IngressHTTPAddr == "" {
		t.Errorf("%s: no E2E_INGRESS_HTTP_ADDR / INGRESS_HTTP_ADDR: the plain-HTTP entry point cannot be checked", mode)
		return
	}
	// The real credentials go only to a loopback address (the sandbox's port-forward): a probe must
	// not itself send them in clear text across a network. Elsewhere a well-formed decoy is sent.
	host, _, err := net.SplitHostPort(f.Settings.IngressHTTPAddr)
	if err != nil {
		t.Errorf("E2E_INGRESS_HTTP_ADDR=%q: %v", f.Settings.IngressHTTPAddr, err)
		return
	}
	user, pass := f.Out.Username, f.Out.Password
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		user, pass = f.Out.Username, "decoy-not-the-password-0123456789"
	}
	paths := []string{"/v2/", "/v2/_catalog", "/"}
	if f.imgKeep != nil {
		paths = append(paths, "/v2/"+f.imgKeep.Repo+"/tags/list", "/v2/"+f.imgKeep.Repo+"/manifests/"+f.imgKeep.Tag)
	}
	codes := map[int]int{}
	n := 0
	for _, p := range paths {
		for _, creds := range []bool{false, true} {
			u, pw := "", ""
			if creds {
				u, pw = user, pass
			}
			r, err := probePlainHTTP(ctx, f.Settings.IngressHTTPAddr, f.Settings.Hostname, p, u, pw)
			if err != nil {
				t.Errorf("%s: %v", mode, err)
				continue
			}
			n++
			codes[r.code]++
			if r.code == http.StatusOK || r.code == http.StatusUnauthorized || r.registry {
				t.Errorf("%s: plain HTTP %s (credentials %v) answered %d (registry headers %v): the registry is reachable without TLS",
					mode, p, creds, r.code, r.registry)
			}
		}
	}
	f.Report.Fact("plain HTTP (%s, %s): %d probes of %d paths with and without credentials -> status counts %v, none from the registry",
		mode, f.Settings.IngressHTTPAddr, n, len(paths), codes)
}

// stepPlainHTTPRefused: on the Ingress as deployed, the controller's plain-HTTP entry point never
// reaches the registry.
func (f *fixture) stepPlainHTTPRefused(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	f.checkPlainHTTP(context.Background(), t, "ingress "+f.Settings.IngressClass)
}

// routeUp sets config, runs `pulumi up`, and checks that only routing objects (and, for a new TLS
// source, certificate objects) were created or deleted: claim, Deployments, Secrets with
// credentials and passwords keep their identity.
func (f *fixture) routeUp(ctx context.Context, t *testing.T, label string, config map[string]string, alsoChanging ...string) {
	t.Helper()
	if err := f.Pulumi.SetConfig(ctx, config); err != nil {
		t.Fatal(err)
	}
	before, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := f.TimedUp(ctx, "pulumi up ("+label+")", "up-"+label)
	if err != nil {
		t.Fatalf("pulumi up (%s): %v\nevents:\n%s", label, err, f.Kube.Events(ctx))
	}
	t.Logf("up %s: %s", label, kit.SummarizeOps(ops))
	routing := []string{"Ingress", "Gateway", "HTTPRoute", "ReferenceGrant", "Middleware"}
	allowed := append(routing, alsoChanging...)
	for _, o := range ops {
		if kit.InPlaceOps[o.Op] {
			continue
		}
		ok := false
		for _, a := range allowed {
			if strings.Contains(kit.ShortURN(o.URN), a) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: %s %s; only routing objects may be created or deleted", label, o.Op, o.URN)
		}
	}
	after, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, b := range before {
		for _, a := range after {
			if a.URN == b.URN && a.ID == b.ID {
				kept++
			}
		}
	}
	passwords := f.Out.Passwords
	htBefore, err := f.Kube.SecretValue(ctx, "registry-config", "htpasswd")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.LoadOutputs(ctx); err != nil {
		t.Fatal(err)
	}
	for user, pw := range passwords {
		if f.Out.Passwords[user] != pw {
			t.Errorf("%s: the password of account %s changed", label, user)
		}
	}
	if htAfter, err := f.Kube.SecretValue(ctx, "registry-config", "htpasswd"); err != nil || htAfter != htBefore {
		t.Errorf("%s: the htpasswd file changed (%v)", label, err)
	}
	nonRouting := func(rs []kit.StateResource) []kit.StateResource {
		var out []kit.StateResource
		for _, r := range rs {
			routingObject := false
			for _, a := range allowed {
				if strings.Contains(kit.ShortURN(r.URN), a) {
					routingObject = true
				}
			}
			if !routingObject {
				out = append(out, r)
			}
		}
		return out
	}
	compareIdentities(t, nonRouting(before), after)
	t.Logf("%s: %d of %d resources kept their ID; routing output %q", label, kept, len(before), f.Out.Routing)
}

// routedClient is a registry client through the HTTPS entry point that trusts caPEM.
func (f *fixture) routedClient(caPEM string) (*kit.RegistryClient, error) {
	hc, err := kit.NewHTTPClient(f.Settings.Hostname, f.IngressAddr, []byte(caPEM))
	if err != nil {
		return nil, err
	}
	return kit.NewRegistryClient(hc, "https://"+f.Settings.Hostname, f.Out.Username, f.Out.Password)
}

// waitPing polls GET /v2/ with the stack's credentials until it answers want.
func (f *fixture) waitPing(ctx context.Context, c *kit.RegistryClient, want int, what string) (time.Duration, error) {
	start := time.Now()
	var last string
	err := kit.Poll(ctx, routeTimeout, time.Second, func() (bool, error) {
		code, err := c.Ping(ctx, false, "", "")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("HTTP %d", code)
		return code == want, nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s: /v2/ never answered %d within %s (last: %s)", what, want, routeTimeout, last)
	}
	return time.Since(start), nil
}

// pullSurvivors pulls every acknowledged image through c, and pushes one more that later steps keep.
func (f *fixture) pullSurvivorsAndPush(ctx context.Context, t *testing.T, c *kit.RegistryClient, mode string) {
	t.Helper()
	n, err := f.pullAll(ctx, f.survivors)
	if err != nil {
		t.Errorf("%s: an image pushed earlier does not pull: %v", mode, err)
	}
	im, err := kit.RandomImage("e2e/routing", strings.NewReplacer(" ", "-", "/", "-").Replace(mode), 2, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PushImage(ctx, im); err != nil {
		t.Errorf("%s: push: %v", mode, err)
		return
	}
	if _, err := c.PullImage(ctx, im.Tag, im); err != nil {
		t.Errorf("%s: pull of the new image: %v", mode, err)
		return
	}
	f.survivors = append(f.survivors, im)
	f.Report.Fact("%s: %d earlier images pulled (%s), new image pushed and pulled, TLS verified, same credentials", mode, len(f.survivors)-1, kit.MiB(n))
}

// stepIngressSourceRanges: ranges without the client's address give 403; adding it lets it in.
func (f *fixture) stepIngressSourceRanges(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	f.routeUp(ctx, t, "ranges-deny", map[string]string{"routing.sourceRanges": `["10.0.0.0/8"]`})
	took, err := f.waitPing(ctx, f.Client, http.StatusForbidden, "routing.sourceRanges=[10.0.0.0/8]")
	if err != nil {
		t.Fatal(err)
	}
	f.Report.Fact("ingress %s, routing.sourceRanges [10.0.0.0/8]: /v2/ from 127.0.0.1 answered 403 %s after up", f.Settings.IngressClass, took.Round(time.Second))
	f.checkPlainHTTP(ctx, t, "ingress with source ranges")

	f.routeUp(ctx, t, "ranges-allow", map[string]string{"routing.sourceRanges": `["10.0.0.0/8","127.0.0.1/32"]`})
	if took, err = f.waitPing(ctx, f.Client, http.StatusOK, "routing.sourceRanges=[10.0.0.0/8,127.0.0.1/32]"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep); err != nil {
		t.Errorf("pull with 127.0.0.1 allowed: %v", err)
	}
	f.Report.Fact("ingress %s, routing.sourceRanges [10.0.0.0/8, 127.0.0.1/32]: /v2/ 200 %s after up, pull ok", f.Settings.IngressClass, took.Round(time.Second))
}

// stepGatewayCreated moves the registry to an HTTPRoute on a Gateway the stack creates: source
// ranges refuse first, then admit; data and credentials are the same; plain HTTP never answers.
func (f *fixture) stepGatewayCreated(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	f.routeUp(ctx, t, "gateway-created-deny", map[string]string{
		"routing.ingress": kit.Unset, "routing.gateway.create.className": f.Settings.GatewayClass,
		"routing.gateway.create.listenerPort": f.Settings.GatewayPort, "routing.sourceRanges": `["10.0.0.0/8"]`,
	})
	if !strings.HasPrefix(f.Out.Routing, "gateway (created") {
		t.Errorf("routing output = %q", f.Out.Routing)
	}
	if err := f.checkRouteAccepted(ctx, f.Settings.Namespace, f.Settings.Namespace+"/registry"); err != nil {
		t.Error(err)
	}
	took, err := f.waitPing(ctx, f.Client, http.StatusForbidden, "gateway, ranges [10.0.0.0/8]")
	if err != nil {
		t.Fatal(err)
	}
	f.Report.Fact("gateway (created, class %s, port %s), routing.sourceRanges [10.0.0.0/8]: /v2/ 403 %s after up",
		f.Settings.GatewayClass, f.Settings.GatewayPort, took.Round(time.Second))

	f.routeUp(ctx, t, "gateway-created-allow", map[string]string{"routing.sourceRanges": `["10.0.0.0/8","127.0.0.1/32"]`})
	if _, err := f.waitPing(ctx, f.Client, http.StatusOK, "gateway, ranges with 127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	f.checkPlainHTTP(ctx, t, "gateway created")
	f.pullSurvivorsAndPush(ctx, t, f.Client, "gateway created")
}

// checkRouteAccepted reads the HTTPRoute's status: `pulumi up` returned, so the parent (the Gateway
// want, namespace/name) must have accepted it and resolved its references.
func (f *fixture) checkRouteAccepted(ctx context.Context, ns, wantParent string) error {
	var route struct {
		Status struct {
			Parents []struct {
				ParentRef struct {
					Name, Namespace string
				} `json:"parentRef"`
				Conditions []struct{ Type, Status, Reason string } `json:"conditions"`
			} `json:"parents"`
		} `json:"status"`
	}
	if err := f.Kube.GetJSON(ctx, true, &route, "httproute", "registry"); err != nil {
		return err
	}
	for _, p := range route.Status.Parents {
		pns := p.ParentRef.Namespace
		if pns == "" {
			pns = ns
		}
		if pns+"/"+p.ParentRef.Name != wantParent {
			continue
		}
		got := map[string]string{}
		for _, c := range p.Conditions {
			got[c.Type] = c.Status + "/" + c.Reason
		}
		if !strings.HasPrefix(got["Accepted"], "True") || !strings.HasPrefix(got["ResolvedRefs"], "True") {
			return fmt.Errorf("HTTPRoute registry on %s right after up: %v, want Accepted and ResolvedRefs True", wantParent, got)
		}
		f.Report.Fact("HTTPRoute registry on %s when up returned: Accepted=%s ResolvedRefs=%s", wantParent, got["Accepted"], got["ResolvedRefs"])
		return nil
	}
	return fmt.Errorf("HTTPRoute registry has no status for parent %s right after up", wantParent)
}

// stepGatewayExisting attaches the route to a Gateway of another namespace (the platform-team
// pattern) whose HTTPS listener serves the stack's certificate through the stack's ReferenceGrant.
// A plain-HTTP listener of the same Gateway is refused by preview, naming the key.
func (f *fixture) stepGatewayExisting(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	gwNS := f.PlatformNamespace()
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: %[1]s}
spec:
  gatewayClassName: %[2]s
  listeners:
  - name: websecure
    protocol: HTTPS
    port: %[3]s
    hostname: %[4]s
    tls: {mode: Terminate, certificateRefs: [{kind: Secret, name: %[5]s, namespace: %[6]s}]}
    allowedRoutes: {namespaces: {from: All}}
  - name: web
    protocol: HTTP
    port: %[7]s
    hostname: %[4]s
    allowedRoutes: {namespaces: {from: All}}
`, gwNS, f.Settings.GatewayClass, f.Settings.GatewayPort, f.Settings.Hostname, f.Out.TLSSecretName, f.Settings.Namespace, f.Settings.GatewayHTTPPort)
	path := filepath.Join(f.Settings.WorkDir, "platform-gateway.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Kube.Run(ctx, false, "apply", "-f", path); err != nil {
		t.Fatalf("platform Gateway fixture: %v", err)
	}
	f.PlatformGateway = true

	existing := map[string]string{
		"routing.gateway.create": kit.Unset, "routing.gateway.existing.name": "edge", "routing.gateway.existing.namespace": gwNS,
		// No routing.gateway.controller: the stack reads it from the Gateway's class (traefik's here).
		"routing.gateway.existing.sectionName": "web", "routing.gateway.controller": kit.Unset,
	}
	if err := f.Pulumi.SetConfig(ctx, existing); err != nil {
		t.Fatal(err)
	}
	out, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-http-listener", "preview")
	if err == nil {
		t.Errorf("preview with routing.gateway.existing.sectionName=web (an HTTP listener) succeeded")
	} else if !strings.Contains(out+err.Error(), `config "routing.gateway.existing.sectionName": "web" is invalid`) ||
		!strings.Contains(out+err.Error(), "is HTTP") {
		t.Errorf("preview with an HTTP listener failed without naming the key and the reason:\n%s", kit.Tail(out, 15))
	} else {
		f.Report.Fact("existing Gateway, routing.gateway.existing.sectionName=web (HTTP listener): preview refused, naming the path")
	}

	// The source ranges on the existing Gateway, enforced because its class's controller (read
	// from the cluster) is Traefik: first without 127.0.0.1, then with it.
	existing["routing.gateway.existing.sectionName"] = "websecure"
	existing["routing.sourceRanges"] = `["10.0.0.0/8"]`
	f.routeUp(ctx, t, "gateway-existing-deny", existing)
	if err := f.checkRouteAccepted(ctx, f.Settings.Namespace, gwNS+"/edge"); err != nil {
		t.Error(err)
	}
	took, err := f.waitPing(ctx, f.Client, http.StatusForbidden, "existing gateway, routing.sourceRanges=[10.0.0.0/8]")
	if err != nil {
		t.Fatal(err)
	}
	f.Report.Fact("existing Gateway of class %s without routing.gateway.controller (read from its GatewayClass), routing.sourceRanges [10.0.0.0/8]: /v2/ 403 %s after up",
		f.Settings.GatewayClass, took.Round(time.Second))
	f.routeUp(ctx, t, "gateway-existing", map[string]string{"routing.sourceRanges": `["10.0.0.0/8","127.0.0.1/32"]`})
	if _, err := f.waitPing(ctx, f.Client, http.StatusOK, "existing gateway"); err != nil {
		t.Fatal(err)
	}
	grant, err := f.Kube.NS(ctx, "get", "referencegrants.gateway.networking.k8s.io", "-o", "jsonpath={.items[*].spec.from[*].namespace}")
	if err != nil || !strings.Contains(grant, gwNS) {
		t.Errorf("no ReferenceGrant from %s in the stack's namespace (%q, %v)", gwNS, grant, err)
	}
	f.checkPlainHTTP(ctx, t, "existing gateway (with an HTTP listener for the same host)")
	f.pullSurvivorsAndPush(ctx, t, f.Client, "existing gateway")
}

// stepTLSSecretSource goes back to the Ingress with a certificate the stack did not make (a CA and
// server certificate made here, in a kubernetes.io/tls Secret), with its CA given as tls.secret.caCertPem.
func (f *fixture) stepTLSSecretSource(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	caPEM, certPEM, keyPEM, err := makeCA(f.Settings.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Kube.NS(ctx, "create", "secret", "tls", "e2e-own-tls", "--cert", filepath.Join(dir, "tls.crt"), "--key", filepath.Join(dir, "tls.key")); err != nil {
		t.Fatal(err)
	}
	// The generated keys leave the stack: they must still never show up in plain text.
	res, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Type == "tls:index/privateKey:PrivateKey" {
			if k, err := stateString(r.Outputs["privateKeyPem"]); err == nil && k != "" {
				f.retire("generated "+kit.ShortURN(r.URN), k)
			}
		}
	}
	oldCA := f.Out.CACertPEM

	f.routeUp(ctx, t, "tls-secret", map[string]string{
		"routing.gateway": kit.Unset, "routing.ingress.className": f.Settings.IngressClass,
		"tls.secret.name": "e2e-own-tls", "tls.secret.caCertPem": string(caPEM),
	}, "tls:", "Secret::registry-tls", "TLS::registry")
	if f.Out.CACertPEM != strings.TrimSpace(string(caPEM)) && f.Out.CACertPEM != string(caPEM) {
		t.Errorf("caCertPem output is not the tls.secret.caCertPem given")
	}
	if f.Out.CACertPEM == oldCA || f.Out.TLSSecretName != "e2e-own-tls" {
		t.Errorf("outputs after the switch: tlsSecretName %q, caCertPem unchanged %v", f.Out.TLSSecretName, f.Out.CACertPEM == oldCA)
	}
	c, err := f.routedClient(f.Out.CACertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.waitPing(ctx, c, http.StatusOK, "ingress with the user's certificate"); err != nil {
		t.Fatal(err)
	}
	f.Client = c
	served, err := f.servedCert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := parseCertPEM(string(certPEM)); want == nil || served.SerialNumber.Cmp(want.SerialNumber) != 0 {
		t.Errorf("the Ingress serves serial %s, not the certificate of Secret e2e-own-tls", served.SerialNumber)
	}
	if out, err := f.Kube.NS(ctx, "get", "secret", "registry-tls", "--ignore-not-found", "-o", "name"); err != nil || out != "" {
		t.Errorf("the generated TLS Secret is still there (%q, %v)", out, err)
	}
	f.Report.Fact("tls.secret: the Ingress serves the outside certificate (serial %s), verified against the supplied CA; generated CA/Secret removed", served.SerialNumber)
	f.checkPlainHTTP(ctx, t, "ingress with tls.secret")
	f.pullSurvivorsAndPush(ctx, t, c, "ingress with tls.secret")
	f.DeletePlatformNamespace(ctx, t)
}

// makeCA makes a CA and a server certificate for hostname, as a corporate PKI or cert-manager would.
func makeCA(hostname string) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "e2e outside CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano() + 1), Subject: pkix.Name{CommonName: hostname},
		DNSNames: []string{hostname}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
