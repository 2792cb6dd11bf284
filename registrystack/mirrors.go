package registrystack

import (
	"encoding/base64"
	"fmt"
	"github.com/regstack/registry-stack/clusterpull"
	"path"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// ContainerdCertsDir is containerd's registry host configuration directory (config_path).
const ContainerdCertsDir = "/etc/containerd/certs.d"

// mirrorCAFile is the name the setup commands give the stack's CA in each certs.d directory.
const mirrorCAFile = clusterpull.CAFile

// mirrorOutputs describe every mirror and give ready-to-use client configuration; anything that
// holds a credential is a secret output. No mirror: no outputs.
func mirrorOutputs(args *Args, mirrors []*mirror) pulumi.Map {
	if len(mirrors) == 0 {
		return nil
	}
	trustCA := args.TLS.Secret == nil || args.TLS.Secret.CACertPEM != ""
	info := pulumi.Map{}
	passwords := pulumi.StringMap{}
	anyAuth := false
	for _, m := range mirrors {
		c := m.cfg
		username := ""
		if !c.Anonymous {
			username, anyAuth = MirrorAccount, true
			passwords[c.Name] = m.reg.Password
		}
		info[c.Name] = pulumi.Map{
			"url":               pulumi.String("https://" + c.Hostname),
			"hostname":          pulumi.String(c.Hostname),
			"upstream":          pulumi.String(c.Upstream),
			"upstreamNamespace": pulumi.String(c.UpstreamNamespace()),
			"ttl":               pulumi.String(c.TTL),
			"anonymous":         pulumi.Bool(c.Anonymous),
			"username":          pulumi.String(username),
			"deploymentName":    m.reg.DeploymentName,
			"serviceName":       m.reg.ServiceName,
			"storage":           m.data.Backend.Description,
		}
	}
	var hosts pulumi.Output = mirrorHostFiles(mirrors, trustCA, ContainerdCertsDir, true)
	if anyAuth {
		// The files carry the mirrors' Basic credentials.
		hosts = pulumi.ToSecret(hosts)
	}
	out := pulumi.Map{
		"mirrors":               info,
		"mirrorContainerdHosts": hosts,
		"mirrorSetupCommands":   pulumi.String(MirrorSetupCommands(args.Mirrors, trustCA)),
	}
	if len(passwords) > 0 {
		out["mirrorPasswords"] = pulumi.ToSecret(passwords.ToStringMapOutput())
	}
	return out
}

// mirrorHostFiles are the mirrors' hosts.toml files for containerd's config_path certsDir, each
// trusting the stack's CA beside it (trustCA): by full path, or by upstream directory when
// fullPaths is false (the node agent's).
func mirrorHostFiles(mirrors []*mirror, trustCA bool, certsDir string, fullPaths bool) pulumi.StringMapOutput {
	var hostFiles []pulumi.StringOutput
	var paths []string
	for _, m := range mirrors {
		c := m.cfg
		username := ""
		if !c.Anonymous {
			username = MirrorAccount
		}
		caPath := ""
		if trustCA {
			caPath = path.Join(certsDir, c.UpstreamNamespace(), mirrorCAFile)
		}
		key := c.UpstreamNamespace()
		if fullPaths {
			key = path.Join(certsDir, key, "hosts.toml")
		}
		paths = append(paths, key)
		mc, user := c, username
		hostFiles = append(hostFiles, m.reg.Password.ApplyT(func(pw string) string {
			return ContainerdHostsTOML(mc, user, pw, caPath)
		}).(pulumi.StringOutput))
	}
	return pulumi.ToStringArrayOutput(hostFiles).ApplyT(func(contents []string) map[string]string {
		out := map[string]string{}
		for i, p := range paths {
			out[p] = contents[i]
		}
		return out
	}).(pulumi.StringMapOutput)
}

// ContainerdHostsTOML is the certs.d/<upstream>/hosts.toml that sends a node's pulls of the
// upstream's images to the mirror first (pull and resolve only: never pushes), falling back to
// the upstream itself when the mirror fails. An account (username != "") goes in as a static
// Authorization header: kubelet's pull secrets name the image's registry, not the mirror.
func ContainerdHostsTOML(m Mirror, username, password, caPath string) string {
	host := "https://" + m.Hostname
	var b strings.Builder
	fmt.Fprintf(&b, "# Mirror %s of %s (registry-stack)\n", m.Name, m.Upstream)
	fmt.Fprintf(&b, "server = %q\n\n", m.Upstream)
	fmt.Fprintf(&b, "[host.%q]\n", host)
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	if caPath != "" {
		fmt.Fprintf(&b, "  ca = %q\n", caPath)
	}
	if username != "" {
		token := base64.StdEncoding.EncodeToString([]byte(username + ":" + password))
		fmt.Fprintf(&b, "  [host.%q.header]\n", host)
		fmt.Fprintf(&b, "    Authorization = [%q]\n", "Basic "+token)
	}
	return b.String()
}

// MirrorSetupCommands tell how each kind of client uses the mirrors: containerd nodes, Docker
// Engine, minikube, and pods that name a mirror directly.
func MirrorSetupCommands(mirrors []Mirror, trustCA bool) string {
	var lines []string
	add := func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }
	add("# containerd (each node; config_path = %s): one hosts.toml per upstream.", ContainerdCertsDir)
	for _, m := range mirrors {
		dir := path.Join(ContainerdCertsDir, m.UpstreamNamespace())
		add("sudo mkdir -p %s", dir)
		if trustCA {
			add("pulumi stack output caCertPem | sudo tee %s/%s >/dev/null", dir, mirrorCAFile)
		}
		add("pulumi stack output mirrorContainerdHosts --show-secrets --json | jq -r '.[%q]' | sudo tee %s/hosts.toml >/dev/null",
			path.Join(dir, "hosts.toml"), dir)
	}
	hub := dockerHubMirror(mirrors)
	switch {
	case hub == nil:
		add("# Docker Engine: registry-mirrors applies to Docker Hub only, and no mirror has Docker Hub as upstream.")
	case !hub.Anonymous:
		add("# Docker Engine and minikube --registry-mirror: Docker Hub only, and without credentials of the mirror's own;")
		add("# mirror %s needs its account, so set anonymous: true on it for these (see README, Mirrors), or pull by its name:", hub.Name)
		add("pulumi stack output mirrorPasswords --show-secrets --json | jq -r '.%s' | docker login %s --username %s --password-stdin", hub.Name, hub.Hostname, MirrorAccount)
		add("docker pull %s/library/alpine:3.20", hub.Hostname)
	default:
		add("# Docker Engine (/etc/docker/daemon.json, then restart dockerd; trust the CA in /etc/docker/certs.d/%s/ca.crt):", hub.Hostname)
		add(`{"registry-mirrors": ["https://%s"]}`, hub.Hostname)
		add("# minikube (docker runtime):")
		add("minikube start --registry-mirror=https://%s", hub.Hostname)
	}
	header := false
	for _, m := range mirrors {
		if m.Anonymous {
			continue
		}
		if !header {
			add("# Pods that name a mirror (image: <mirror host>/<repository>:<tag>) pull with a secret for that host:")
			header = true
		}
		add("kubectl create secret docker-registry mirror-%s --docker-server=%s --docker-username=%s "+
			"--docker-password=\"$(pulumi stack output mirrorPasswords --show-secrets --json | jq -r '.%s')\"",
			m.Name, m.Hostname, MirrorAccount, m.Name)
	}
	return strings.Join(lines, "\n")
}

func dockerHubMirror(mirrors []Mirror) *Mirror {
	for i := range mirrors {
		if mirrors[i].UpstreamNamespace() == DockerHubNamespace {
			return &mirrors[i]
		}
	}
	return nil
}
