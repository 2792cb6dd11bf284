package registry

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/auth"
	"github.com/regstack/registry-stack/internal/testutil"
)

// proxyInput is a mirror's config: proxy mode, its own Redis database.
func proxyInput() ConfigInput {
	in := cacheInput
	in.RedisDB = 3
	in.Proxy = &ProxyConfig{RemoteURL: "https://registry-1.docker.io", Username: "hubuser", Password: "hub #token", TTL: "72h"}
	return in
}

func TestProxyConfigReachesTheRegistry(t *testing.T) {
	cfg, raw := parse(t, proxyInput())
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"proxy.remoteurl", cfg.Proxy.RemoteURL, "https://registry-1.docker.io"},
		{"proxy.username", cfg.Proxy.Username, "hubuser"},
		// In the file, not an env override: the override would be parsed as YAML and cut at " #".
		{"proxy.password", cfg.Proxy.Password, "hub #token"},
		{"proxy.ttl", *cfg.Proxy.TTL, 72 * time.Hour},
		{"redis.db", cfg.Redis.Options.DB, 3},
		{"auth type", cfg.Auth.Type(), "htpasswd"},
		// The TTL scheduler deletes nothing without it.
		{"storage.delete.enabled", param(cfg.Storage["delete"], "enabled"), true},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v\n%s", c.what, c.got, c.want, raw)
		}
	}

	in := proxyInput()
	in.Proxy.TTL = "0"
	if cfg, _ := parse(t, in); cfg.Proxy.TTL == nil || *cfg.Proxy.TTL != 0 {
		t.Errorf("ttl 0 parsed as %v, want 0 (expiry off)", cfg.Proxy.TTL)
	}
	in.Proxy.Username, in.Proxy.Password = "", ""
	if cfg, raw := parse(t, in); cfg.Proxy.Username != "" || cfg.Proxy.Password != "" || strings.Contains(raw, "hubuser") || strings.Contains(raw, "hub #token") {
		t.Errorf("anonymous upstream renders credentials:\n%s", raw)
	}
}

func TestAnonymousMirrorHasNoAuthAndOnlyAMirrorMayBeAnonymous(t *testing.T) {
	in := proxyInput()
	in.Auth = nil
	cfg, raw := parse(t, in)
	if cfg.Auth.Type() != "" || strings.Contains(raw, "htpasswd") {
		t.Errorf("anonymous mirror has auth %q:\n%s", cfg.Auth.Type(), raw)
	}
	in = cacheInput
	in.Auth = nil
	if _, err := RenderConfig(in); err == nil {
		t.Error("a registry of its own images rendered without auth")
	}
	if cfg, _ := parse(t, cacheInput); cfg.Proxy.RemoteURL != "" {
		t.Errorf("the registry has a proxy section: %+v", cfg.Proxy)
	}
}

// mirrorArgs are a mirror's inputs: proxy mode with an upstream password and CA.
func mirrorArgs() *RegistryArgs {
	a := args()
	a.Replicas, a.Accounts, a.RedisDB = 1, []string{"pull"}, 1
	a.Proxy = &ProxyArgs{RemoteURL: "https://ghcr.io", Username: "me", TTL: "168h", CABundlePEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		Password: pulumi.ToSecret(pulumi.String("upstream-token")).(pulumi.StringOutput)}
	return a
}

func TestMirrorInstance(t *testing.T) {
	m := runRegistry(t, "registry-mirror-ghcr", mirrorArgs())
	dep := m.Get(t, tDeployment, "registry-mirror-ghcr")
	if got := dep.Lookup("spec", "replicas"); got != 1.0 {
		t.Errorf("replicas = %v, want 1 (one expiry scheduler per store)", got)
	}
	if got := dep.String("spec", "template", "metadata", "labels", "app.kubernetes.io/component"); got != "mirror" {
		t.Errorf("pod component label = %q, want mirror (nothing that selects registry pods may take it for a replica)", got)
	}
	if n := len(m.OfType(tPDB)); n != 0 {
		t.Errorf("%d PodDisruptionBudgets for one replica", n)
	}
	s := m.Get(t, tSecret, "registry-mirror-ghcr-config")
	if !s.IsSecret("stringData", ConfigKey) || !strings.Contains(s.String("stringData", ConfigKey), "upstream-token") {
		t.Errorf("the upstream password is not in the secret config.yml")
	}
	if got := s.String("stringData", upstreamCAKey); !strings.Contains(got, "BEGIN CERTIFICATE") {
		t.Errorf("config Secret %s = %q, want the upstream CA", upstreamCAKey, got)
	}
	others := m.Dump(func(r testutil.Resource) bool { return strings.HasPrefix(r.Type, "kubernetes:") && r.Type != tSecret })
	if strings.Contains(others, "upstream-token") {
		t.Error("the upstream password appears outside the config Secret")
	}
	var caMount map[string]any
	for _, v := range dep.Lookup("spec", "template", "spec", "containers", 0, "volumeMounts").([]any) {
		if mount := v.(map[string]any); mount["mountPath"] == UpstreamCAFile {
			caMount = mount
		}
	}
	if caMount == nil || caMount["subPath"] != upstreamCAKey || caMount["name"] != "config" {
		t.Errorf("upstream CA mount = %v, want %s from the config Secret by subPath (Go skips the Secret volume's symlinks in a cert dir)", caMount, UpstreamCAFile)
	}
	checkHtpasswd(t, s.String("stringData", auth.HtpasswdKey), map[string]string{"pull": "mock-password-registry-mirror-ghcr-password"})
}

func TestMirrorCAChangeRollsThePod(t *testing.T) {
	checksum := func(ca string) string {
		a := mirrorArgs()
		a.Proxy.CABundlePEM = ca
		return runRegistry(t, "m", a).Get(t, tDeployment, "m").String("spec", "template", "metadata", "annotations", "checksum/config")
	}
	if checksum("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n") == checksum("-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n") {
		t.Error("a new upstream CA leaves the pod checksum unchanged; the subPath mount would keep the old CA")
	}
}

func TestAnonymousMirrorHasNoAccounts(t *testing.T) {
	a := mirrorArgs()
	a.Accounts, a.Proxy.Anonymous = nil, true
	var user pulumi.StringOutput
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		r, err := NewRegistry(ctx, "m", a)
		if err == nil {
			user = r.Username
		}
		return err
	})
	if n := len(m.OfType("random:index/randomPassword:RandomPassword")); n != 1 {
		t.Errorf("%d generated passwords, want only the http.secret", n)
	}
	if got, _ := testutil.Resolve(t, user); got != "" {
		t.Errorf("Username = %q, want none", got)
	}
	if cfg := m.Get(t, tSecret, "m-config").String("stringData", ConfigKey); strings.Contains(cfg, "htpasswd") {
		t.Errorf("anonymous mirror config has auth:\n%s", cfg)
	}
}
