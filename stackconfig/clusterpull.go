package stackconfig

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/clusterpull"
	"github.com/regstack/registry-stack/registrystack"
)

// Defaults of the clusterPull key's node agent.
const (
	// DefaultNodeAgentImage runs the node agent's shell script.
	DefaultNodeAgentImage = "busybox:1.37.0"
	// DefaultContainerdConfigPath is containerd's config_path of kubeadm, kind and minikube nodes.
	DefaultContainerdConfigPath = "/etc/containerd/certs.d"
)

const clusterPullFields = "account, namespaces, nodeAgent {configPath, namespace, image}"

// rawClusterPull is the clusterPull key as stack config holds it.
type rawClusterPull struct {
	Account    string   `json:"account"`
	Namespaces []string `json:"namespaces"`
	NodeAgent  *struct {
		ConfigPath string `json:"configPath"`
		Namespace  string `json:"namespace"`
		Image      string `json:"image"`
	} `json:"nodeAgent"`
}

// validateClusterPull checks the key with the component's own rules (registrystack's
// ClusterPullProblems), and the agent's image.
func (v *validator) validateClusterPull(c *Config) {
	r := c.ClusterPullRaw
	if r == nil {
		return
	}
	if r.NodeAgent != nil && r.NodeAgent.Image != "" {
		v.image("clusterPull.nodeAgent.image", r.NodeAgent.Image)
	}
	args := &registrystack.Args{Namespace: pulumi.String(c.Namespace), Accounts: c.Accounts(), Auth: c.auth(), ClusterPull: c.clusterPull()}
	for _, p := range registrystack.ClusterPullProblems(args, "clusterPull") {
		v.bad(p.Path, p.Value, p.Allowed)
	}
}

// clusterPull builds the typed clusterPull from the key (nil: off).
func (c *Config) clusterPull() *registrystack.ClusterPullArgs {
	r := c.ClusterPullRaw
	if r == nil {
		return nil
	}
	out := &registrystack.ClusterPullArgs{Account: r.Account, Namespaces: r.Namespaces}
	if g := r.NodeAgent; g != nil {
		out.NodeAgent = &clusterpull.Agent{ConfigPath: g.ConfigPath, Namespace: g.Namespace, Image: g.Image}
		if out.NodeAgent.ConfigPath == "" {
			out.NodeAgent.ConfigPath = DefaultContainerdConfigPath
		}
		if out.NodeAgent.Image == "" {
			out.NodeAgent.Image = DefaultNodeAgentImage
		}
	}
	return out
}

// clusterPullDoc is the clusterPull key's description.
const clusterPullDoc = "Lets the cluster pull from the registry: {account (a pull-only account of auth.token, not the first) and namespaces (each gets a kubernetes.io/dockerconfigjson Secret <component>-pull with its credentials, for imagePullSecrets; they must exist), " +
	"nodeAgent {configPath (containerd's config_path on the nodes, default " + DefaultContainerdConfigPath + "; k3s: /var/lib/rancher/k3s/agent/etc/containerd/certs.d), namespace (default <namespace>-node-agent, Pod Security privileged: it writes that host directory), image (default " + DefaultNodeAgentImage + ")}: " +
	"installs the CA and hosts.toml of the registry and the mirrors on every node, and removes them when turned off}. Empty: nothing. See README, Accounts."
