package stackconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/storage"
)

// Mirror defaults and limits.
const (
	// DefaultMirrorTTL is how long a cached image stays after its last pull (distribution's default).
	DefaultMirrorTTL = "168h"
	// DefaultMirrorSize is the claim of a mirror on the filesystem driver.
	DefaultMirrorSize = "20Gi"
	// MaxMirrors: each mirror has its own Redis database (1..15 of Redis's default 16; 0 is the registry's).
	MaxMirrors = 15
	// MaxMirrorNameLength keeps every object named after a mirror within Kubernetes' limits.
	MaxMirrorNameLength = 24
)

// rawMirror is one entry of the mirrors key as stored by `pulumi config set --path`.
type rawMirror struct {
	Name        string `json:"name"`
	Upstream    string `json:"upstream"`
	Hostname    string `json:"hostname"`
	TTL         string `json:"ttl"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	Anonymous   bool   `json:"anonymous"`
	CABundlePEM string `json:"caBundlePem"`
	Size        string `json:"size"`
}

// mirrorList parses the mirrors key: a list of objects with only the known fields.
func mirrorList(field func(*Config) *[]rawMirror) setter {
	return setter{KindObjects, func(c *Config, raw string) error {
		dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
		dec.DisallowUnknownFields()
		var out []rawMirror
		if err := dec.Decode(&out); err != nil {
			// Not echoed: the value may hold an upstream password.
			return fmt.Errorf("is invalid (%s); allowed: a list of objects with name, upstream, hostname, ttl, username, "+
				"password, anonymous, caBundlePem, size (set fields with `pulumi config set --path 'mirrors[0].name' dockerhub`)", jsonProblem(err))
		}
		*field(c) = out
		return nil
	}}
}

// jsonProblem names what is wrong without quoting the value.
func jsonProblem(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "unknown field") {
		return msg
	}
	return "not a JSON list of objects"
}

// mirrorsHavePassword tells whether any mirror of the raw mirrors key carries an upstream password
// (then the key must be stored encrypted). A malformed key is reported when it is parsed.
func mirrorsHavePassword(raw string) bool {
	var mirrors []struct {
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(raw), &mirrors); err != nil {
		return false
	}
	for _, m := range mirrors {
		if m.Password != "" {
			return true
		}
	}
	return false
}

// validateMirrors checks every mirror field; each line names mirrors[i].field.
func (v *validator) validateMirrors(c *Config) {
	if len(c.MirrorsRaw) > MaxMirrors {
		v.bad("mirrors", fmt.Sprintf("%d mirrors", len(c.MirrorsRaw)), fmt.Sprintf("at most %d mirrors (one Redis database each)", MaxMirrors))
	}
	if len(c.MirrorsRaw) > 0 && c.StorageDriver == DriverFilesystem && c.StorageMode == StorageExisting {
		v.bad("storage.filesystem.mode", c.StorageMode, "hostPath or dynamic when mirrors are set: each mirror needs a volume of its own, "+
			"and existing binds the one named volume the registry uses")
	}
	names, upstreams := map[string]bool{}, map[string]bool{}
	hosts := map[string]string{}
	for _, h := range c.DNSNames() {
		hosts[h] = "the registry's hostname or extraDnsNames"
	}
	for i, m := range c.MirrorsRaw {
		key := func(field string) string { return fmt.Sprintf("mirrors[%d].%s", i, field) }
		switch {
		case len(m.Name) > MaxMirrorNameLength || len(validation.IsDNS1123Label(m.Name)) > 0:
			v.bad(key("name"), m.Name, fmt.Sprintf("a DNS-1123 label of at most %d characters, such as dockerhub", MaxMirrorNameLength))
		case names[m.Name]:
			v.bad(key("name"), m.Name, "a name no other mirror uses")
		}
		names[m.Name] = true

		u, err := url.Parse(m.Upstream)
		switch {
		case err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			v.bad(key("upstream"), m.Upstream, "the https:// URL of a registry without path or credentials, such as https://registry-1.docker.io "+
				"(plain http is refused: the upstream credentials and the images would cross the network unprotected)")
		case u.Host == "docker.io" || u.Host == "index.docker.io":
			v.bad(key("upstream"), m.Upstream, "https://registry-1.docker.io for Docker Hub (its registry API host)")
		case upstreams[u.Host]:
			v.bad(key("upstream"), m.Upstream, "an upstream no other mirror has (clients pick one mirror per upstream)")
		}
		if err == nil {
			upstreams[u.Host] = true
		}

		hostname := m.mirrorHostname(c.Hostname)
		v.hostname(key("hostname"), hostname)
		if other, taken := hosts[hostname]; taken {
			v.bad(key("hostname"), hostname, "a hostname of its own (it is already "+other+")")
		}
		hosts[hostname] = fmt.Sprintf("mirrors[%d].hostname", i)

		if d, err := time.ParseDuration(m.mirrorTTL()); err != nil || d < 0 {
			v.bad(key("ttl"), m.TTL, "a duration such as 168h or 720h, or 0 to keep cached content until a person deletes it")
		}
		if (m.Username == "") != (m.Password == "") {
			v.bad(key("username"), m.Username, "set together with password (both for upstream credentials, or neither to pull anonymously)")
		}
		if m.Username != "" && strings.ContainsAny(m.Username, " \t\n:") {
			v.bad(key("username"), m.Username, "an upstream account name without spaces or colons")
		}
		if m.CABundlePEM != "" && !isPEMCertificates(m.CABundlePEM) {
			v.bad(key("caBundlePem"), abbreviate(m.CABundlePEM), "empty, or PEM-encoded CA certificates (-----BEGIN CERTIFICATE----- ...)")
		}
		v.quantity(key("size"), m.mirrorSize())
	}
}

func (m rawMirror) mirrorHostname(registryHost string) string {
	if m.Hostname != "" {
		return m.Hostname
	}
	return m.Name + "." + registryHost
}

func (m rawMirror) mirrorTTL() string {
	if m.TTL != "" {
		return m.TTL
	}
	return DefaultMirrorTTL
}

func (m rawMirror) mirrorSize() string {
	if m.Size != "" {
		return m.Size
	}
	return DefaultMirrorSize
}

// mirrors builds the typed mirrors from the validated raw entries, each with a store of its own
// beside the registry's: a claim (a hostPath directory next to the registry's, or a volume of the
// same class), or the prefix mirrors/<name> under the registry's S3 root, outside its repositories.
func (c *Config) mirrors(registryStorage storage.Store) []registrystack.Mirror {
	var out []registrystack.Mirror
	for _, m := range c.MirrorsRaw {
		mirror := registrystack.Mirror{
			Name: m.Name, Upstream: strings.TrimSuffix(m.Upstream, "/"), Hostname: m.mirrorHostname(c.Hostname),
			TTL: m.mirrorTTL(), Anonymous: m.Anonymous, CABundlePEM: m.CABundlePEM,
		}
		if m.Username != "" {
			mirror.Credentials = &registrystack.UpstreamCredentials{Username: m.Username, Password: m.Password}
		}
		if s3 := registryStorage.S3; s3 != nil {
			own := *s3
			own.RootDirectory = s3.RootDirectory + "/mirrors/" + m.Name
			mirror.Storage = storage.Store{S3: &own}
		} else {
			own := *registryStorage.Filesystem
			own.ClaimSize, own.VolumeSize, own.AccessMode = m.mirrorSize(), m.mirrorSize(), "ReadWriteOnce"
			if own.HostPath != "" {
				// Empty: the component derives it from the registry's (registrystack.DefaultHostPath).
				own.HostPath += "-mirror-" + m.Name
			}
			mirror.Storage = storage.Store{Filesystem: &own}
		}
		out = append(out, mirror)
	}
	return out
}

// MirrorHostnames are the hostnames of every mirror, in order.
func (c *Config) MirrorHostnames() []string {
	var out []string
	for _, m := range c.Mirrors {
		out = append(out, m.Hostname)
	}
	return out
}
