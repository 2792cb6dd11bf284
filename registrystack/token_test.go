package registrystack_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/regstack/registry-stack/auth"
	"github.com/regstack/registry-stack/stackconfig"
)

const (
	tDeployment = "kubernetes:apps/v1:Deployment"
	tSecret     = "kubernetes:core/v1:Secret"
	tKey        = "tls:index/privateKey:PrivateKey"
)

// Token mode: RSA signing keys (docker_auth's key id of an EC key never matches the registry's),
// the registry trusts every key's certificate and checks no htpasswd, waits for the token server,
// and the route sends the realm to the token server on the registry's hosts.
func TestTokenModeWiresKeysServerAndRealm(t *testing.T) {
	m := runStacks(t, map[string]string{"auth": `{"token":{"signingKeys":["a","b"]}}`, "routing.ingress.className": "traefik"}, nil, "registry")
	keys := 0
	for _, k := range m.OfType(tKey) {
		if !strings.HasPrefix(k.Name, "registry-auth-key-") {
			continue
		}
		keys++
		if alg := k.String("algorithm"); alg != "RSA" || k.Inputs["rsaBits"].NumberValue() < 2048 {
			t.Errorf("signing key %s: %s %v; docker_auth's EC key ids are never trusted, RSA only", k.Name, alg, k.Inputs["rsaBits"])
		}
	}
	if keys != 2 {
		t.Errorf("%d signing keys, want 2", keys)
	}
	cfg := m.Get(t, tSecret, "registry-config")
	if cfg.String("stringData", auth.HtpasswdKey) != "" {
		t.Error("token mode still writes the htpasswd file")
	}
	if bundle := cfg.String("stringData", auth.TokenCAKey); strings.Count(bundle, "BEGIN CERTIFICATE") != 2 {
		t.Errorf("token-ca.pem holds %d certificates, want both keys':\n%s", strings.Count(bundle, "BEGIN CERTIFICATE"), bundle)
	}
	if rendered := cfg.String("stringData", "config.yml"); !strings.Contains(rendered, "realm: https://registry.minikube.test/auth") {
		t.Errorf("config.yml has no token realm:\n%s", rendered)
	}
	server := m.Get(t, tDeployment, "registry-auth")
	reg := m.Get(t, tDeployment, "registry")
	if !slices.ContainsFunc(reg.Dependencies, func(u string) bool {
		return strings.HasSuffix(u, "::registry-auth") && strings.Contains(u, "apps/v1:Deployment")
	}) {
		t.Errorf("the registry's Deployment does not wait for the token server's: %v", reg.Dependencies)
	}
	if got := server.String("spec", "template", "spec", "containers", 0, "image"); got != "cesanta/docker_auth:1.14.0" {
		t.Errorf("token server image %q", got)
	}
	srvCfg := m.Get(t, tSecret, "registry-auth").String("stringData", "auth_config.yml")
	if !strings.Contains(srvCfg, "disable_legacy_key_id: true") || !strings.Contains(srvCfg, "admin:") {
		t.Errorf("token server config:\n%s", srvCfg)
	}
	ing := m.Get(t, "kubernetes:networking.k8s.io/v1:Ingress", "registry")
	if p, svc := ing.String("spec", "rules", 0, "http", "paths", 0, "path"), ing.String("spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"); p != auth.RealmPath || svc != "registry-auth" {
		t.Errorf("the ingress's first path is %q to %q, want %s to the token server", p, svc, auth.RealmPath)
	}
	if p := ing.String("spec", "rules", 0, "http", "paths", 1, "path"); p != "/" {
		t.Errorf("the ingress's second path is %q, want /", p)
	}
}

// Choosing the signing key changes the token server, never the registry's trusted bundle: the
// registry's pods do not roll for it.
func TestSignWithLeavesTheRegistryAlone(t *testing.T) {
	bundle := func(authCfg string) (string, string) {
		m := runStacks(t, map[string]string{"auth": authCfg}, nil, "registry")
		return m.Get(t, tSecret, "registry-config").String("stringData", auth.TokenCAKey),
			m.Get(t, tSecret, "registry-auth").String("stringData", "signing.crt")
	}
	b1, s1 := bundle(`{"token":{"signingKeys":["a","b"]}}`)
	b2, s2 := bundle(`{"token":{"signingKeys":["b","a"],"signWith":"b"}}`)
	if b1 != b2 {
		t.Errorf("the trusted bundle changed with the signer:\n%s\n%s", b1, b2)
	}
	if s1 == s2 || !strings.Contains(s2, "registry-auth-cert-b") {
		t.Errorf("signWith b signs with %q (was %q)", s2, s1)
	}
}

// Permissions are refused in config before anything is registered when they name no account.
func TestTokenValidationNamesTheField(t *testing.T) {
	args := stackconfig.DefaultArgs()
	args.Auth = auth.Spec{Token: &auth.Token{Image: "x", Replicas: 2, Lifetime: 0, SigningKeys: []string{"a"},
		Permissions: []auth.Permission{{Account: "nobody", Access: "pull"}}}}
	err := args.Validate()
	if err == nil || !strings.Contains(err.Error(), "Auth.Token.permissions[0].account") || !strings.Contains(err.Error(), "Auth.Token.lifetime") {
		t.Errorf("err = %v", err)
	}
}
