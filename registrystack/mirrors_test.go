package registrystack

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// hostsFile is the hosts.toml schema containerd reads (core/remotes/docker/config, fields of
// hostFileConfig); decoded strictly, so a misspelt key fails here instead of being ignored on a node.
type hostsFile struct {
	Server string `toml:"server"`
	Host   map[string]struct {
		Capabilities []string            `toml:"capabilities"`
		CA           string              `toml:"ca"`
		Header       map[string][]string `toml:"header"`
		SkipVerify   *bool               `toml:"skip_verify"`
		OverridePath bool                `toml:"override_path"`
	} `toml:"host"`
}

func decodeHosts(t *testing.T, raw string) hostsFile {
	t.Helper()
	var h hostsFile
	dec := toml.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("hosts.toml does not parse as containerd's schema: %v\n%s", err, raw)
	}
	return h
}

func TestContainerdHostsTOML(t *testing.T) {
	m := Mirror{Name: "dockerhub", Upstream: "https://registry-1.docker.io", Hostname: "hub.example.com"}
	h := decodeHosts(t, ContainerdHostsTOML(m, "pull", "s3cret-pw", "/etc/containerd/certs.d/docker.io/registry-stack-ca.crt"))
	if h.Server != "https://registry-1.docker.io" {
		t.Errorf("server = %q, want the upstream (the fallback when the mirror fails)", h.Server)
	}
	host, ok := h.Host["https://hub.example.com"]
	if !ok || len(h.Host) != 1 {
		t.Fatalf("hosts = %v, want the mirror only", h.Host)
	}
	if strings.Join(host.Capabilities, ",") != "pull,resolve" {
		t.Errorf("capabilities = %v, want pull and resolve only (a mirror refuses pushes)", host.Capabilities)
	}
	if host.CA != "/etc/containerd/certs.d/docker.io/registry-stack-ca.crt" || host.SkipVerify != nil {
		t.Errorf("ca = %q, skip_verify = %v; want the stack's CA and verification on", host.CA, host.SkipVerify)
	}
	auth := host.Header["Authorization"]
	if len(auth) != 1 || auth[0] != "Basic "+base64.StdEncoding.EncodeToString([]byte("pull:s3cret-pw")) {
		t.Errorf("Authorization header = %v", auth)
	}

	// Anonymous mirror with a publicly trusted certificate: no header, no ca.
	h = decodeHosts(t, ContainerdHostsTOML(m, "", "", ""))
	if host := h.Host["https://hub.example.com"]; host.CA != "" || host.Header != nil {
		t.Errorf("anonymous mirror: ca %q, header %v; want neither", host.CA, host.Header)
	}
}
