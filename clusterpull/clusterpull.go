// Package clusterpull lets a cluster pull from its own registry without hand work on the nodes:
// a kubernetes.io/dockerconfigjson Secret of a pull-only account in the namespaces listed (for
// imagePullSecrets), and an opt-in node agent, a DaemonSet that installs the registry's CA and
// containerd hosts.toml files (the registry's and each mirror's) into every node's containerd
// config_path, and removes them when it stops for good.
package clusterpull

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
)

// CAFile is the name of the registry's CA in each host's directory under config_path.
const CAFile = "registry-stack-ca.crt"

// PodSecurityLevel is the agent namespace's level: writing a node's containerd directory takes a
// hostPath volume, which only the privileged level admits. The container itself drops every
// capability, never escalates and has a read-only root filesystem.
const PodSecurityLevel = "privileged"

// ClusterPullArgs configure the pull Secrets and the node agent.
type ClusterPullArgs struct {
	// Required: the registry's hostname, the host of its image names.
	Hostname string
	// Optional: the account whose credentials the pull Secrets hold (Password a secret); "" writes
	// no pull Secret.
	Username string
	Password pulumi.StringInput
	// Optional: namespaces that get a pull Secret named SecretName; they must exist.
	Namespaces []string
	// SecretName names the pull Secrets.
	SecretName string
	// Optional: nil installs nothing on the nodes.
	Agent *Agent
	// Optional: the CA the nodes must trust for Hostname; "" (a publicly trusted certificate) installs none.
	CACertPEM pulumi.StringInput
	// Optional: more hosts.toml files (the mirrors'), by upstream host directory, rendered with
	// the agent's ConfigPath; secret when they hold credentials.
	MirrorHosts pulumi.StringMapInput
}

// Agent is the node agent.
type Agent struct {
	// ConfigPath is containerd's config_path on the nodes (registry host directories). Plain
	// containerd, kubeadm and kind: /etc/containerd/certs.d; minikube's containerd runtime: the
	// same; k3s and RKE2: /var/lib/rancher/{k3s,rke2}/agent/etc/containerd/certs.d.
	ConfigPath string
	// Namespace is the agent's own namespace, created with Pod Security level privileged.
	Namespace string
	// Image has sh, cp, cmp, mkdir, rm and sleep (busybox).
	Image string
}

// ClusterPull is the pull Secrets and the node agent.
type ClusterPull struct {
	pulumi.ResourceState

	// SecretNames are the pull Secrets as namespace/name.
	SecretNames pulumi.StringArrayOutput `pulumi:"secretNames"`
	// AgentNamespace is the node agent's namespace ("" without one).
	AgentNamespace pulumi.StringOutput `pulumi:"agentNamespace"`
}

// Validate names what is missing or wrong.
func (a *ClusterPullArgs) Validate() error {
	var bad []string
	if a.Hostname == "" {
		bad = append(bad, "Hostname is required")
	}
	if (a.Username == "") != (a.Password == nil) || (a.Username == "") != (len(a.Namespaces) == 0) {
		bad = append(bad, "Username, Password and Namespaces go together")
	}
	if len(a.Namespaces) > 0 && a.SecretName == "" {
		bad = append(bad, "SecretName is required with Namespaces")
	}
	if g := a.Agent; g != nil && (g.ConfigPath == "" || !path.IsAbs(g.ConfigPath) || g.Namespace == "" || g.Image == "") {
		bad = append(bad, "the agent needs an absolute ConfigPath, a Namespace and an Image")
	}
	if len(bad) > 0 {
		return fmt.Errorf("clusterpull: %s", strings.Join(bad, "; "))
	}
	return nil
}

// DockerConfigJSON is a pull Secret's .dockerconfigjson for one registry host.
func DockerConfigJSON(host, username, password string) (string, error) {
	auth := base64.StdEncoding.EncodeToString([]byte(username + ":" + password))
	out, err := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"username": username, "password": password, "auth": auth},
	}})
	if err != nil {
		return "", fmt.Errorf("clusterpull: pull secret: %w", err)
	}
	return string(out), nil
}

// RegistryHostsTOML is the hosts.toml of the registry's own host: pulls go to it, trusting
// caPath when set.
func RegistryHostsTOML(host, caPath string) string {
	var b strings.Builder
	b.WriteString("# The registry (registry-stack)\n")
	fmt.Fprintf(&b, "server = %q\n\n", "https://"+host)
	fmt.Fprintf(&b, "[host.%q]\n", "https://"+host)
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	if caPath != "" {
		fmt.Fprintf(&b, "  ca = %q\n", caPath)
	}
	return b.String()
}

// agentScript installs each file the index lists (Secret key, path under config_path) on the
// node, then waits; on SIGTERM it removes those still as it wrote them (a file another pod of the
// agent wrote since is left alone). A DaemonSet removed for good takes its files with it; a
// rolling update of the agent leaves each node without them for the seconds between its pods.
// Its Secret never changes under a running pod (a new one per content), so a pod removes exactly
// the files it installed. A failed copy stops the pod (set -e), which then restarts and shows.
const agentScript = `set -eu
root=/host-certs
while read -r key rel; do
  dest="$root/$rel"
  # A hosts.toml someone else wrote (it lacks the stack's marker) is left alone, and said so.
  if [ "${rel##*/}" = hosts.toml ] && [ -e "$dest" ] && ! grep -q '(registry-stack)' "$dest"; then
    echo "node-agent: $rel exists and is not registry-stack's: left as it is"
    continue
  fi
  mkdir -p "${dest%/*}"
  cp "/files/$key" "$dest.tmp"
  mv "$dest.tmp" "$dest"
  echo "node-agent: installed $rel"
done < /files/index
cleanup() {
  while read -r key rel; do
    if cmp -s "/files/$key" "$root/$rel"; then rm -f "$root/$rel"; echo "node-agent: removed $rel"; fi
    rmdir "$root/${rel%/*}" 2>/dev/null || true
  done < /files/index
  exit 0
}
trap cleanup TERM INT
while :; do sleep 3600 & wait $!; done
`

// agentSecretData is the agent Secret: the files as f0, f1, ... (a host with a port is no valid
// Secret key) and the index of their paths.
func agentSecretData(files map[string]string) map[string]string {
	out := map[string]string{}
	var index strings.Builder
	for i, rel := range slices.Sorted(maps.Keys(files)) {
		key := fmt.Sprintf("f%d", i)
		out[key] = files[rel]
		fmt.Fprintf(&index, "%s %s\n", key, rel)
	}
	out["index"] = index.String()
	return out
}

// NewClusterPull registers the pull Secrets and the node agent.
func NewClusterPull(ctx *pulumi.Context, name string, args *ClusterPullArgs, opts ...pulumi.ResourceOption) (*ClusterPull, error) {
	if err := args.Validate(); err != nil {
		return nil, err
	}
	comp := &ClusterPull{}
	if err := ctx.RegisterComponentResource("registry-stack:index:ClusterPull", name, comp, opts...); err != nil {
		return nil, fmt.Errorf("clusterpull: register component %q: %w", name, err)
	}
	parent := pulumi.Parent(comp)
	labels := kube.StringMap(kube.Labels("registry", name, "cluster-pull"))

	var secretNames []string
	if len(args.Namespaces) > 0 {
		config := args.Password.ToStringOutput().ApplyT(func(pw string) (string, error) {
			return DockerConfigJSON(args.Hostname, args.Username, pw)
		}).(pulumi.StringOutput)
		for _, ns := range args.Namespaces {
			if _, err := corev1.NewSecret(ctx, name+"-"+ns, &corev1.SecretArgs{
				Metadata:   &metav1.ObjectMetaArgs{Name: pulumi.String(args.SecretName), Namespace: pulumi.String(ns), Labels: labels},
				Type:       pulumi.String("kubernetes.io/dockerconfigjson"),
				StringData: pulumi.StringMap{".dockerconfigjson": pulumi.ToSecret(config).(pulumi.StringOutput)},
			}, parent); err != nil {
				return nil, fmt.Errorf("clusterpull: pull secret in %s: %w", ns, err)
			}
			secretNames = append(secretNames, ns+"/"+args.SecretName)
		}
	}
	comp.SecretNames = pulumi.ToStringArray(secretNames).ToStringArrayOutput()
	comp.AgentNamespace = pulumi.String("").ToStringOutput()

	if g := args.Agent; g != nil {
		if err := newAgent(ctx, name, args, g, labels, parent); err != nil {
			return nil, err
		}
		comp.AgentNamespace = pulumi.String(g.Namespace).ToStringOutput()
	}
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"secretNames":    comp.SecretNames,
		"agentNamespace": comp.AgentNamespace,
	}); err != nil {
		return nil, fmt.Errorf("clusterpull: register outputs: %w", err)
	}
	return comp, nil
}

// newAgent registers the agent's namespace, its files Secret and the DaemonSet.
func newAgent(ctx *pulumi.Context, name string, args *ClusterPullArgs, g *Agent, labels pulumi.StringMap, parent pulumi.ResourceOption) error {
	ns, err := corev1.NewNamespace(ctx, name+"-agent", &corev1.NamespaceArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(g.Namespace), Labels: pulumi.StringMap{
			"app.kubernetes.io/name": pulumi.String("registry"), "app.kubernetes.io/instance": pulumi.String(name),
			"app.kubernetes.io/component": pulumi.String("node-agent"), "app.kubernetes.io/managed-by": pulumi.String("pulumi"),
			"pod-security.kubernetes.io/enforce": pulumi.String(PodSecurityLevel),
			"pod-security.kubernetes.io/warn":    pulumi.String(PodSecurityLevel),
			"pod-security.kubernetes.io/audit":   pulumi.String(PodSecurityLevel),
		}},
	}, parent)
	if err != nil {
		return fmt.Errorf("clusterpull: agent namespace: %w", err)
	}
	caPEM := pulumi.String("").ToStringOutput()
	if args.CACertPEM != nil {
		caPEM = args.CACertPEM.ToStringOutput()
	}
	mirrors := pulumi.StringMap{}.ToStringMapOutput()
	if args.MirrorHosts != nil {
		mirrors = args.MirrorHosts.ToStringMapOutput()
	}
	files := pulumi.All(caPEM, mirrors).ApplyT(func(v []any) map[string]string {
		return agentSecretData(AgentFiles(args.Hostname, g.ConfigPath, v[0].(string), v[1].(map[string]string)))
	}).(pulumi.StringMapOutput)
	checksum := kube.Checksum(files.ApplyT(func(m map[string]string) string {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(m)) {
			b.WriteString(k + "\n" + m[k] + "\n")
		}
		return b.String()
	}).(pulumi.StringOutput))
	// A new, immutable Secret per content: the kubelet would otherwise update a running pod's
	// files, and its cleanup would then no longer know what it installed.
	secretName := pulumi.Sprintf("%s-node-agent-%s", name, checksum.ApplyT(func(sum string) string { return sum[:10] }).(pulumi.StringOutput))
	secret, err := corev1.NewSecret(ctx, name+"-agent", &corev1.SecretArgs{
		Metadata:   &metav1.ObjectMetaArgs{Name: secretName, Namespace: ns.Metadata.Name().Elem(), Labels: labels},
		Type:       pulumi.String("Opaque"),
		Immutable:  pulumi.Bool(true),
		StringData: pulumi.ToSecret(files).(pulumi.StringMapOutput),
	}, parent)
	if err != nil {
		return fmt.Errorf("clusterpull: agent files: %w", err)
	}
	spec, err := AgentPodSpec(g, secret.Metadata.Name().Elem())
	if err != nil {
		return err
	}
	selector := kube.StringMap(kube.Selector("registry-node-agent", name))
	podLabels := kube.StringMap(kube.Labels("registry-node-agent", name, "node-agent"))
	podMeta := &metav1.ObjectMetaArgs{Labels: podLabels, Annotations: pulumi.StringMap{kube.ChecksumAnnotation: checksum}}
	if _, err := appsv1.NewDaemonSet(ctx, name+"-agent", &appsv1.DaemonSetArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name + "-node-agent"), Namespace: ns.Metadata.Name().Elem(), Labels: labels},
		Spec: &appsv1.DaemonSetSpecArgs{
			Selector: &metav1.LabelSelectorArgs{MatchLabels: selector},
			Template: &corev1.PodTemplateSpecArgs{Metadata: podMeta, Spec: spec},
		},
	}, parent); err != nil {
		return fmt.Errorf("clusterpull: agent daemonset: %w", err)
	}
	return nil
}

// AgentFiles are the files the agent installs, by path under configPath: the registry's
// hosts.toml and CA, and each mirror's hosts.toml (mirrorHosts, by upstream directory) with the
// CA beside it.
func AgentFiles(host, configPath, caPEM string, mirrorHosts map[string]string) map[string]string {
	caPath := func(dir string) string {
		if caPEM == "" {
			return ""
		}
		return path.Join(configPath, dir, CAFile)
	}
	out := map[string]string{path.Join(host, "hosts.toml"): RegistryHostsTOML(host, caPath(host))}
	dirs := []string{host}
	for dir, content := range mirrorHosts {
		out[path.Join(dir, "hosts.toml")] = content
		dirs = append(dirs, dir)
	}
	if caPEM != "" {
		for _, d := range dirs {
			out[path.Join(d, CAFile)] = caPEM
		}
	}
	return out
}

// AgentPodSpec is the agent's pod: root (the node's containerd directory is root's) without any
// capability, privilege escalation or writable root filesystem; the only host access is the
// config_path directory. It runs on every node (any taint tolerated) and takes no placement: a
// node it skips could not pull from the registry.
func AgentPodSpec(g *Agent, secretName pulumi.StringInput) (*corev1.PodSpecArgs, error) {
	spec := &corev1.PodSpecArgs{
		AutomountServiceAccountToken: pulumi.Bool(false),
		// A node where the registry's pods cannot run still pulls from it.
		Tolerations: corev1.TolerationArray{&corev1.TolerationArgs{Operator: pulumi.String("Exists")}},
		SecurityContext: &corev1.PodSecurityContextArgs{
			RunAsUser: pulumi.Int(0), RunAsNonRoot: pulumi.Bool(false),
			SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
		},
		TerminationGracePeriodSeconds: pulumi.Int(10),
		Containers: corev1.ContainerArray{&corev1.ContainerArgs{
			Name:            pulumi.String("node-agent"),
			Image:           pulumi.String(g.Image),
			ImagePullPolicy: pulumi.String("IfNotPresent"),
			Command:         pulumi.ToStringArray([]string{"sh", "-c", agentScript}),
			Resources:       kube.Resources("5m", "8Mi", "32Mi"),
			SecurityContext: &corev1.SecurityContextArgs{
				AllowPrivilegeEscalation: pulumi.Bool(false),
				ReadOnlyRootFilesystem:   pulumi.Bool(true),
				Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
			},
			VolumeMounts: corev1.VolumeMountArray{
				&corev1.VolumeMountArgs{Name: pulumi.String("files"), MountPath: pulumi.String("/files"), ReadOnly: pulumi.Bool(true)},
				&corev1.VolumeMountArgs{Name: pulumi.String("certs"), MountPath: pulumi.String("/host-certs")},
			},
		}},
		Volumes: corev1.VolumeArray{
			// Root-only files: a mirror's hosts.toml holds its account's credentials.
			&corev1.VolumeArgs{Name: pulumi.String("files"), Secret: &corev1.SecretVolumeSourceArgs{SecretName: secretName, DefaultMode: pulumi.Int(0o400)}},
			&corev1.VolumeArgs{Name: pulumi.String("certs"), HostPath: &corev1.HostPathVolumeSourceArgs{
				Path: pulumi.String(g.ConfigPath), Type: pulumi.String("DirectoryOrCreate"),
			}},
		},
	}
	return spec, nil
}
