package stackconfig

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// mirrorsJSON is the mirrors key as `pulumi config set --path` stores it.
func mirrorsJSON(t *testing.T, mirrors ...map[string]any) string {
	t.Helper()
	raw, err := json.Marshal(mirrors)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// withSecretMirrors counts the mirrors key as stored encrypted (a field set with --secret).
func withSecretMirrors() map[string]bool {
	return map[string]bool{"mirrors": true, "s3AccessKeyId": true, "s3SecretAccessKey": true}
}

func TestMirrorsAreTypedWithDefaultsAndAStoreOfTheirOwn(t *testing.T) {
	ca := testCAPEM(t)
	c, err := parseWithSecrets(map[string]string{
		"hostname": "registry.example.com", "storage.filesystem.mode": "hostPath", "storage.filesystem.hostPath": "/data/registry",
		"mirrors": mirrorsJSON(t,
			map[string]any{"name": "dockerhub", "upstream": "https://registry-1.docker.io/", "username": "me", "password": "hub-token"},
			map[string]any{"name": "ghcr", "upstream": "https://ghcr.io", "hostname": "ghcr.mirror.example.com", "ttl": "0",
				"anonymous": true, "caBundlePem": ca, "size": "5Gi"}),
	}, withSecretMirrors())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mirrors) != 2 {
		t.Fatalf("%d mirrors, want 2", len(c.Mirrors))
	}
	hub, gh := c.Mirrors[0], c.Mirrors[1]
	if hub.Upstream != "https://registry-1.docker.io" || hub.Hostname != "dockerhub.registry.example.com" || hub.TTL != DefaultMirrorTTL ||
		hub.Anonymous || hub.Credentials == nil || hub.Credentials.Username != "me" || hub.Credentials.Password != "hub-token" {
		t.Errorf("dockerhub mirror = %+v", hub)
	}
	if hub.UpstreamNamespace() != "docker.io" || gh.UpstreamNamespace() != "ghcr.io" {
		t.Errorf("upstream namespaces %q, %q; want docker.io, ghcr.io", hub.UpstreamNamespace(), gh.UpstreamNamespace())
	}
	if gh.Hostname != "ghcr.mirror.example.com" || gh.TTL != "0" || !gh.Anonymous || gh.Credentials != nil || gh.CABundlePEM != ca {
		t.Errorf("ghcr mirror = %+v", gh)
	}
	fs := hub.Storage.Filesystem
	if fs == nil || fs.HostPath != "/data/registry-mirror-dockerhub" || fs.ClaimSize != DefaultMirrorSize || fs.AccessMode != "ReadWriteOnce" {
		t.Errorf("dockerhub store = %+v, want its own hostPath directory beside the registry's", fs)
	}
	if got := gh.Storage.Filesystem.ClaimSize; got != "5Gi" {
		t.Errorf("ghcr claim size = %q", got)
	}
	if c.Storage.Filesystem.HostPath != "/data/registry" {
		t.Errorf("the registry's own directory changed to %q", c.Storage.Filesystem.HostPath)
	}
	if got := strings.Join(c.MirrorHostnames(), " "); got != "dockerhub.registry.example.com ghcr.mirror.example.com" {
		t.Errorf("MirrorHostnames = %s", got)
	}

	// On S3 a mirror gets a prefix beside the registry's repositories, never inside them.
	in := s3Base()
	in["storage.s3.rootDirectory"] = "/envs/prod"
	in["mirrors"] = mirrorsJSON(t, map[string]any{"name": "quay", "upstream": "https://quay.io"})
	c, err = parseWithSecrets(in, withSecretMirrors())
	if err != nil {
		t.Fatal(err)
	}
	s3 := c.Mirrors[0].Storage.S3
	if s3 == nil || s3.RootDirectory != "/envs/prod/mirrors/quay" || s3.Bucket != pulumi.String("registry-images") || c.Storage.S3.RootDirectory != "/envs/prod" {
		t.Errorf("mirror S3 store = %+v (registry root %q)", s3, c.Storage.S3.RootDirectory)
	}
}

func TestNoMirrorsByDefault(t *testing.T) {
	c, err := parse(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mirrors) != 0 || len(c.MirrorHostnames()) != 0 {
		t.Errorf("mirrors = %+v, want none", c.Mirrors)
	}
}

func TestInvalidMirrorsAreRejectedNamingTheField(t *testing.T) {
	ok := func() map[string]any {
		return map[string]any{"name": "hub", "upstream": "https://registry-1.docker.io"}
	}
	with := func(k string, v any) []map[string]any {
		m := ok()
		m[k] = v
		return []map[string]any{m}
	}
	for _, c := range []struct {
		name    string
		mirrors []map[string]any
		extra   map[string]string
		want    string
	}{
		{"bad name", with("name", "Docker_Hub"), nil, `"mirrors[0].name": "Docker_Hub"`},
		{"long name", with("name", strings.Repeat("a", MaxMirrorNameLength+1)), nil, `mirrors[0].name`},
		{"no name", with("name", ""), nil, `mirrors[0].name`},
		{"duplicate name", []map[string]any{ok(), {"name": "hub", "upstream": "https://ghcr.io"}}, nil, `"mirrors[1].name": "hub"`},
		{"plain http upstream", with("upstream", "http://registry.internal:5000"), nil, `"mirrors[0].upstream": "http://registry.internal:5000"`},
		{"upstream with path", with("upstream", "https://ghcr.io/org"), nil, `mirrors[0].upstream`},
		{"upstream with credentials", with("upstream", "https://me:pw@ghcr.io"), nil, `mirrors[0].upstream`},
		{"docker hub web host", with("upstream", "https://docker.io"), nil, `https://registry-1.docker.io for Docker Hub`},
		{"no upstream", with("upstream", ""), nil, `mirrors[0].upstream`},
		{"duplicate upstream", []map[string]any{ok(), {"name": "hub2", "upstream": "https://registry-1.docker.io"}}, nil, `"mirrors[1].upstream"`},
		{"hostname without dot", with("hostname", "mirror"), nil, `"mirrors[0].hostname": "mirror"`},
		{"hostname of the registry", with("hostname", "registry.minikube.test"), nil, `the registry's hostname`},
		{"duplicate hostname", []map[string]any{ok(), {"name": "gh", "upstream": "https://ghcr.io", "hostname": "hub.registry.minikube.test"}}, nil, `"mirrors[1].hostname"`},
		{"ttl without unit", with("ttl", "7"), nil, `"mirrors[0].ttl": "7"`},
		{"negative ttl", with("ttl", "-1h"), nil, `mirrors[0].ttl`},
		{"username without password", with("username", "me"), nil, `mirrors[0].username`},
		{"bad CA", with("caBundlePem", "not a certificate"), nil, `mirrors[0].caBundlePem`},
		{"bad size", with("size", "big"), nil, `"mirrors[0].size": "big"`},
		{"unknown field", with("remoteurl", "https://ghcr.io"), nil, `unknown field "remoteurl"`},
		{"existing storage", []map[string]any{ok()}, map[string]string{"storage.filesystem.mode": "existing", "storage.filesystem.volumeName": "pv-1"}, `"storage.filesystem.mode": "existing"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := map[string]string{"mirrors": mirrorsJSON(t, c.mirrors...)}
			for k, v := range c.extra {
				in[k] = v
			}
			_, err := parseWithSecrets(in, withSecretMirrors())
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
	t.Run("too many", func(t *testing.T) {
		var many []map[string]any
		for i := 0; i <= MaxMirrors; i++ {
			many = append(many, map[string]any{"name": fmt.Sprintf("m%d", i), "upstream": fmt.Sprintf("https://r%d.example.com", i)})
		}
		_, err := parseWithSecrets(map[string]string{"mirrors": mirrorsJSON(t, many...)}, withSecretMirrors())
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("at most %d mirrors", MaxMirrors)) {
			t.Errorf("%d mirrors: %v", len(many), err)
		}
	})
	t.Run("not a list of objects", func(t *testing.T) {
		_, err := parse(map[string]string{"mirrors": `["hub"]`})
		if err == nil || !strings.Contains(err.Error(), `config "mirrors"`) {
			t.Errorf("a list of strings: %v", err)
		}
	})
}

func TestPlaintextUpstreamPasswordIsRefusedWithoutEchoingIt(t *testing.T) {
	in := map[string]string{"mirrors": mirrorsJSON(t, map[string]any{
		"name": "hub", "upstream": "https://registry-1.docker.io", "username": "me", "password": "hub-token-123"})}
	_, err := parseWithSecrets(in, nil)
	if err == nil {
		t.Fatal("a plaintext upstream password was accepted")
	}
	if !strings.Contains(err.Error(), "--secret --path 'mirrors[N].password'") || strings.Contains(err.Error(), "hub-token-123") {
		t.Errorf("error %q: want the --secret hint and never the password", err)
	}
	if _, err := parseWithSecrets(in, withSecretMirrors()); err != nil {
		t.Errorf("the same password set with --secret: %v", err)
	}
	// A malformed value is reported without quoting it: it may hold the password.
	_, err = parse(map[string]string{"mirrors": `[{"password": "hub-token-123"`})
	if err == nil || strings.Contains(err.Error(), "hub-token-123") {
		t.Errorf("malformed mirrors: %v", err)
	}
}
