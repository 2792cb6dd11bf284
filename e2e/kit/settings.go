//go:build e2e

package kit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PreviousRelease is the last commit whose program registered the stack's parts at the root of
// the stack, before the RegistryStack component: the layout every existing stack has today.
const PreviousRelease = "63c74f69dbe9c2731ac491a658f8860f8e66cdb0"

// Settings is everything the suite takes from the environment. Defaults fit the sandbox cluster
// (../shared/sandbox/cluster); README.md lists the values for minikube.
type Settings struct {
	// KubeContext is passed to kubectl (--context) and to the program (kubeContext), so both talk
	// to the same cluster even if the current context changes while the suite runs.
	KubeContext string
	Namespace   string
	Hostname    string
	// IngressClass is the IngressClass of the target cluster (traefik on the sandbox, nginx on minikube).
	IngressClass string

	StorageMode  string // hostPath | dynamic | s3 (set by the S3 suite with S3)
	StorageClass string // only used in dynamic mode
	// HostPath is the node directory of the hostPath PV. The sandbox node is this machine, so the
	// suite can look at the directory directly; on a remote node those checks are skipped.
	HostPath string

	RegistryImage string
	RedisImage    string
	KubectlImage  string
	// TokenServerImage is auth.token.image of the token steps (they skip when no node has it).
	TokenServerImage string
	// NodeAgentImage and ContainerdConfigPath are clusterPull.nodeAgent's image and configPath
	// (the sandbox node's containerd reads $SANDBOX_HOME/cluster/containerd/certs.d).
	NodeAgentImage       string
	ContainerdConfigPath string

	// IngressAddr is host:port of the ingress controller's HTTPS entry point as seen from this
	// machine. Empty means: start a kubectl port-forward to IngressService.
	IngressAddr    string
	IngressService string // namespace/name of the ingress controller Service
	IngressPort    string // its HTTPS port
	// IngressHTTPAddr is host:port of the controller's plain-HTTP entry point, where the registry
	// must never answer. Empty skips those checks (said in the step's log).
	IngressHTTPAddr string

	// GatewayClass and GatewayPort are the GatewayClass and HTTPS listener port of the Gateway API
	// phases (sandbox: traefik, 8443 = the websecure entry point); GatewayHTTPPort is a plain-HTTP
	// listener port of the same controller (sandbox: 8000 = web).
	GatewayClass    string
	GatewayPort     string
	GatewayHTTPPort string

	// ClusterIngressHost is the in-cluster DNS name of the ingress controller's Service (HTTPS on
	// 443): the mirror steps use the stack's own registry, reached there, as the mirror's upstream
	// (the sandbox has no internet).
	ClusterIngressHost string

	// S3 is the object store of the S3 suite (storage.s3); nil: the filesystem driver.
	S3 *S3Target

	// UpgradeFrom is the git commit of the previous release (E2E_UPGRADE_FROM, default
	// PreviousRelease): the gc track deploys it first and upgrades to the working tree's program.
	UpgradeFrom string

	// Keep leaves the stack, namespace, PV and temp dirs in place when the suite fails (debugging).
	Keep bool

	// Stack is the Pulumi stack name, e2e-<random>.
	Stack string
	// WorkDir holds the file backend, the stack config file and the default hostPath. Removed at the end.
	WorkDir string
	// LogDir keeps the full output of every pulumi/kubectl call that produces a lot of text. It is
	// not removed, so a failed run can be investigated.
	LogDir string
}

// S3Target is an S3 endpoint and bucket the suite deployed as a test fixture.
type S3Target struct {
	Endpoint, Bucket, RootDirectory, CAPEM string
	AccessKey, SecretKey                   string
	// Redirect turns storage.s3.redirect on.
	Redirect bool
}

// Env is the trimmed value of the environment variable name, or def when it is empty.
func Env(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// RandomSuffix is 6 random hex digits, for names that must not collide with another run's.
func RandomSuffix() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random suffix: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// loadSettings reads the E2E_* variables and creates the work and log directories. The current
// kubectl context is resolved once here. A track (see NewTrackFixture) gets names of its own
// wherever the variables name one thing: its hostname is <track>.<E2E_HOSTNAME>, and a given
// namespace, hostPath or log dir gets the track as a suffix, so that two deployments never share
// an Ingress host, a namespace or a directory.
func loadSettings(ctx context.Context, track string) (*Settings, error) {
	suffix, err := RandomSuffix()
	if err != nil {
		return nil, err
	}
	own := func(name string) string { return name }
	hostname := Env("E2E_HOSTNAME", "registry.e2e.test")
	if track != "" {
		suffix = track + "-" + suffix
		own = func(name string) string { return name + "-" + track }
		hostname = track + "." + hostname
	}
	namespace := "regstack-e2e-" + suffix
	if v := Env("E2E_NAMESPACE", ""); v != "" {
		namespace = own(v)
	}
	s := &Settings{
		Namespace:            namespace,
		Hostname:             hostname,
		IngressClass:         Env("E2E_INGRESS_CLASS", "traefik"),
		StorageMode:          Env("E2E_STORAGE_MODE", "dynamic"),
		StorageClass:         Env("E2E_STORAGE_CLASS", "standard"),
		RegistryImage:        Env("E2E_REGISTRY_IMAGE", "registry:3.1.2"),
		RedisImage:           Env("E2E_REDIS_IMAGE", "redis:8.0.2-alpine"),
		KubectlImage:         Env("E2E_KUBECTL_IMAGE", "registry.k8s.io/kubectl:v1.33.13"),
		TokenServerImage:     Env("E2E_TOKEN_SERVER_IMAGE", "cesanta/docker_auth:1.14.0"),
		NodeAgentImage:       Env("E2E_NODE_AGENT_IMAGE", "busybox:1.35.0"),
		ContainerdConfigPath: Env("E2E_CONTAINERD_CONFIG_PATH", containerdConfigPath()),
		IngressAddr:          Env("E2E_INGRESS_ADDR", os.Getenv("INGRESS_HTTPS_ADDR")),
		IngressService:       Env("E2E_INGRESS_SERVICE", "ingress-nginx/ingress-nginx-controller"),
		IngressPort:          Env("E2E_INGRESS_PORT", "443"),
		IngressHTTPAddr:      Env("E2E_INGRESS_HTTP_ADDR", os.Getenv("INGRESS_HTTP_ADDR")),
		UpgradeFrom:          Env("E2E_UPGRADE_FROM", PreviousRelease),
		GatewayClass:         Env("E2E_GATEWAY_CLASS", "traefik"),
		ClusterIngressHost:   Env("E2E_CLUSTER_INGRESS_HOST", "traefik.ingress.svc.cluster.local"),
		GatewayPort:          Env("E2E_GATEWAY_PORT", "8443"),
		GatewayHTTPPort:      Env("E2E_GATEWAY_HTTP_PORT", "8000"),
		Keep:                 Env("E2E_KEEP", "") == "1",
		Stack:                "e2e-" + suffix,
	}
	switch s.StorageMode {
	case "hostPath", "dynamic":
	default:
		return nil, fmt.Errorf("E2E_STORAGE_MODE=%q: the suite supports hostPath and dynamic", s.StorageMode)
	}
	if !strings.Contains(s.IngressService, "/") {
		return nil, fmt.Errorf("E2E_INGRESS_SERVICE=%q: want namespace/name", s.IngressService)
	}

	s.KubeContext = os.Getenv("E2E_KUBE_CONTEXT")
	if s.KubeContext == "" {
		out, err := RunCmd(ctx, "", nil, "kubectl", "config", "current-context")
		if err != nil {
			return nil, fmt.Errorf("no E2E_KUBE_CONTEXT and no current kubectl context: %w", err)
		}
		s.KubeContext = strings.TrimSpace(out)
	}

	// MkdirTemp gives 0700; the kubelet (root) creates the hostPath below it, so that is enough.
	s.WorkDir, err = os.MkdirTemp("", "regstack-e2e-"+suffix+"-")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	s.HostPath = filepath.Join(s.WorkDir, "data")
	if v := Env("E2E_STORAGE_HOST_PATH", ""); v != "" {
		s.HostPath = own(v)
	}
	s.LogDir = filepath.Join(os.TempDir(), "regstack-e2e-logs", s.Stack)
	if v := Env("E2E_LOG_DIR", ""); v != "" {
		s.LogDir = own(v)
	}
	if err := os.MkdirAll(s.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	return s, nil
}

// StackConfig is the stack configuration the suite deploys: the target cluster's specifics plus
// small sizes, two replicas and a suspended GC schedule (the tests trigger GC by hand).
func (s *Settings) StackConfig() map[string]string {
	c := map[string]string{
		"kubeContext":                s.KubeContext,
		"namespace":                  s.Namespace,
		"createNamespace":            "true",
		"hostname":                   s.Hostname,
		"routing.ingress.className":  s.IngressClass,
		"replicas":                   "2",
		"registry.image":             s.RegistryImage,
		"cache.image":                s.RedisImage,
		"gc.kubectlImage":            s.KubectlImage,
		"storage.filesystem.mode":    s.StorageMode,
		"storage.filesystem.pvSize":  "2Gi",
		"storage.filesystem.pvcSize": "1Gi",
		"cache.maxMemory":            "32mb",
		// The program derives the Redis memory limit from cache.maxMemory (32mb -> 72Mi); the
		// default request (96Mi) would exceed it and the API server rejects the Deployment.
		"cache.memoryRequest": "48Mi",
		"registry.cpuRequest": "10m",
		"cache.cpuRequest":    "10m",
		"gc.suspend":          "true",
		"accounts":            `["admin","ci","cluster-a"]`,
		"registry.logLevel":   "info",
	}
	switch {
	case s.S3 != nil:
		for _, k := range []string{"storage.filesystem.mode", "storage.filesystem.pvSize", "storage.filesystem.pvcSize"} {
			delete(c, k)
		}
		c["storage.s3.endpoint"] = s.S3.Endpoint
		c["storage.s3.bucket"] = s.S3.Bucket
		c["storage.s3.region"] = "us-east-1"
		c["storage.s3.forcePathStyle"] = "true"
		c["storage.s3.rootDirectory"] = s.S3.RootDirectory
		c["storage.s3.caBundlePem"] = s.S3.CAPEM
		c["s3AccessKeyId"] = s.S3.AccessKey
		c["s3SecretAccessKey"] = s.S3.SecretKey
		c["storage.s3.redirect"] = fmt.Sprint(s.S3.Redirect)
	case s.StorageMode == "hostPath":
		c["storage.filesystem.hostPath"] = s.HostPath
		// The kubelet creates the directory root-owned: the suite opts in to the ownership fix
		// (the namespace then enforces baseline).
		c["storage.filesystem.chownHostPath"] = "true"
	case s.StorageMode == "dynamic" && s.StorageClass == "standard":
		// The product's default: leave the fields unset, so that the default stack is what runs.
		delete(c, "storage.filesystem.mode")
		delete(c, "storage.filesystem.pvSize")
	case s.StorageMode == "dynamic":
		c["storage.filesystem.className"] = s.StorageClass
	}
	return c
}

// timeouts of the long operations; generous because the first preview compiles the Kubernetes SDK.
const (
	PreviewTimeout       = 15 * time.Minute
	upTimeout            = 20 * time.Minute
	DestroyTimeout       = 15 * time.Minute
	ReadyTimeout         = 5 * time.Minute
	GCJobTimeout         = 10 * time.Minute
	kubectlTimeout       = 2 * time.Minute
	ingressTimeout       = 3 * time.Minute
	NamespaceGoneTimeout = 5 * time.Minute
)

// Accounts are the htpasswd accounts the suite deploys: the default username, then the other accounts.
func (s *Settings) Accounts() []string { return []string{"admin", "ci", "cluster-a"} }

// containerdConfigPath is the sandbox node's containerd config_path, or the common default.
func containerdConfigPath() string {
	if home := os.Getenv("SANDBOX_HOME"); home != "" {
		return filepath.Join(home, "cluster", "containerd", "certs.d")
	}
	return "/etc/containerd/certs.d"
}
