package registrystack

import (
	"net/url"
	"slices"

	"github.com/regstack/registry-stack/storage"
)

// DockerHubNamespace is how image references name Docker Hub (docker.io/library/nginx).
const DockerHubNamespace = "docker.io"

// dockerHubHosts are the upstream hosts that serve Docker Hub's registry API.
var dockerHubHosts = []string{"registry-1.docker.io", "index.docker.io", "docker.io"}

// Mirror is one pull-through cache: a registry in proxy mode serving one upstream at its own host.
type Mirror struct {
	// Name identifies the mirror (its objects are <component>-mirror-<name>).
	Name string
	// Upstream is the https:// URL of the registry it mirrors.
	Upstream string
	// Hostname is where clients reach the mirror (routed and in the certificate).
	Hostname string
	// TTL is how long cached content stays after it was last fetched ("0": forever).
	TTL string
	// Credentials for the upstream; nil pulls anonymously.
	Credentials *UpstreamCredentials
	// Anonymous serves pulls without credentials (default: the mirror's own generated account).
	Anonymous bool
	// CABundlePEM is added to the system roots for TLS to the upstream (a private registry).
	CABundlePEM string
	// Storage is the mirror's own store: a claim, or a prefix of the registry's bucket.
	Storage storage.Store
}

// UpstreamCredentials log the mirror in to its upstream; the password is a secret.
type UpstreamCredentials struct {
	Username string
	Password string
}

// UpstreamNamespace is the registry host image references use for the upstream (docker.io for
// Docker Hub): the containerd certs.d directory and Docker's registry-mirrors key off it.
func (m *Mirror) UpstreamNamespace() string {
	u, err := url.Parse(m.Upstream)
	if err != nil {
		return ""
	}
	if slices.Contains(dockerHubHosts, u.Host) {
		return DockerHubNamespace
	}
	return u.Host
}
