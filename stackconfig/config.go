// Package stackconfig reads the stack configuration once, applies defaults in one place and validates
// every value before any resource is registered. Components never read configuration themselves.
package stackconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/monitoring"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/routing"
	"github.com/regstack/registry-stack/storage"
	"github.com/regstack/registry-stack/tlscert"
)

// Storage modes: the values of storageMode.
const (
	StorageHostPath = storage.ModeHostPath
	StorageDynamic  = storage.ModeDynamic
	StorageExisting = storage.ModeExisting
)

// Config is the whole, validated stack configuration.
type Config struct {
	KubeContext     string
	Namespace       string
	CreateNamespace bool

	Hostname            string
	ExtraDNSNames       []string
	ExtraIPAddresses    []string
	IngressClassName    string
	IngressSourceRanges []string
	CertValidityHours   int

	// Raw routing and TLS keys; Routing and TLS below are what components use.
	RoutingMode                 string
	IngressController           string
	TraefikEntryPoint           string
	AllowUnenforcedSourceRanges bool
	GatewayClassName            string
	GatewayListenerPort         int
	GatewayName                 string
	GatewayNamespace            string
	GatewaySectionName          string
	GatewayController           string
	TLSSource                   string
	TLSSecretName               string
	TLSCACertPEM                string

	// Routing is the validated way in (exactly one of its modes is set), built from the keys above.
	Routing routing.Spec
	// TLS is the validated certificate source (exactly one is set).
	TLS tlscert.Source
	// Storage is the validated storage backend (exactly one driver is set), built from the storage keys.
	Storage storage.Store

	Replicas              int
	RegistryImage         string
	Username              string
	ExtraAccounts         []string
	LogLevel              string
	ServiceType           string
	CacheEnabled          bool
	RegistryCPURequest    string
	RegistryMemoryRequest string
	RegistryMemoryLimit   string

	StorageMode      string
	StorageClassName string
	StorageHostPath  string
	StorageNodeName  string
	// hostPathKeysSet: storageHostPath or storageNodeName was set (before defaulting).
	hostPathKeysSet bool
	// StorageHostPathChown opts in to the root init container that hands a new hostPath
	// directory to the registry's user (the namespace then enforces only "baseline").
	StorageHostPathChown bool
	StorageVolumeName    string
	StorageAccessMode    string
	PVSize               string
	PVCSize              string

	// Raw storage-driver keys; Storage above is what components use.
	StorageDriver               string
	StorageRedirect             bool
	S3Bucket                    string
	S3Region                    string
	S3Endpoint                  string
	S3AllowHTTPEndpoint         bool
	S3ForcePathStyle            bool
	S3RootDirectory             string
	S3CABundlePEM               string
	S3Encrypt                   bool
	S3KMSKeyID                  string
	S3StorageClass              string
	S3ChunkSize                 int
	S3AccessKeyID               string
	S3SecretAccessKey           string
	S3ServiceAccountAnnotations []string

	RedisImage         string
	RedisMaxMemory     string
	RedisCPURequest    string
	RedisMemoryRequest string

	GCSchedule     string
	GCSuspend      bool
	GCKubectlImage string

	// MirrorsRaw is the mirrors key as set; Mirrors is what components use.
	MirrorsRaw []rawMirror
	// Mirrors are the validated pull-through caches, each with its own store (empty: none).
	Mirrors []registrystack.Mirror

	// MonitoringRaw and AutoscalingRaw are the object keys as set (nil: unset); Monitoring and
	// Autoscaling are what components use (nil: off).
	MonitoringRaw  *rawMonitoring
	AutoscalingRaw *rawAutoscaling
	Monitoring     *monitoring.Config
	Autoscaling    *registry.Autoscaling

	// PlacementRaw is the placement key as set (nil: unset); registryEnvRaw the registryEnv key.
	PlacementRaw   *rawPlacement
	registryEnvRaw *map[string]string
}

// key describes one stack config key: its name, default and how it is stored into Config.
type key struct {
	name string
	def  string
	set  func(c *Config, raw string) error
}

// secretKeys must be set with `pulumi config set --secret`: a plaintext value is refused.
var secretKeys = map[string]bool{"s3AccessKeyId": true, "s3SecretAccessKey": true}

// IsSecretKey tells whether the key (without the project prefix) must be set with --secret.
func IsSecretKey(name string) bool { return secretKeys[name] }

// keys is the single list of config keys with their defaults. Pulumi.yaml declares the same keys;
// a test keeps the two in step.
var keys = []key{
	{"kubeContext", "", str(func(c *Config) *string { return &c.KubeContext })},
	{"namespace", "registry", str(func(c *Config) *string { return &c.Namespace })},
	{"createNamespace", "true", boolean(func(c *Config) *bool { return &c.CreateNamespace })},
	{"hostname", "registry.minikube.test", str(func(c *Config) *string { return &c.Hostname })},
	{"extraDnsNames", "[]", list(func(c *Config) *[]string { return &c.ExtraDNSNames })},
	{"extraIpAddresses", "[]", list(func(c *Config) *[]string { return &c.ExtraIPAddresses })},
	{"ingressClassName", "nginx", str(func(c *Config) *string { return &c.IngressClassName })},
	{"ingressSourceRanges", "[]", list(func(c *Config) *[]string { return &c.IngressSourceRanges })},
	{"certValidityHours", "8760", integer(func(c *Config) *int { return &c.CertValidityHours })},
	{"routing", string(RoutingIngress), str(func(c *Config) *string { return &c.RoutingMode })},
	{"ingressController", "", str(func(c *Config) *string { return &c.IngressController })},
	{"traefikEntryPoint", "websecure", str(func(c *Config) *string { return &c.TraefikEntryPoint })},
	{"allowUnenforcedSourceRanges", "false", boolean(func(c *Config) *bool { return &c.AllowUnenforcedSourceRanges })},
	{"gatewayClassName", "", str(func(c *Config) *string { return &c.GatewayClassName })},
	{"gatewayListenerPort", "0", integer(func(c *Config) *int { return &c.GatewayListenerPort })},
	{"gatewayName", "", str(func(c *Config) *string { return &c.GatewayName })},
	{"gatewayNamespace", "", str(func(c *Config) *string { return &c.GatewayNamespace })},
	{"gatewaySectionName", "", str(func(c *Config) *string { return &c.GatewaySectionName })},
	{"gatewayController", "", str(func(c *Config) *string { return &c.GatewayController })},
	{"tlsSource", string(TLSGenerated), str(func(c *Config) *string { return &c.TLSSource })},
	{"tlsSecretName", "", str(func(c *Config) *string { return &c.TLSSecretName })},
	{"tlsCaCertPem", "", str(func(c *Config) *string { return &c.TLSCACertPEM })},
	{"replicas", "2", integer(func(c *Config) *int { return &c.Replicas })},
	{"registryImage", "registry:3.1.2", str(func(c *Config) *string { return &c.RegistryImage })},
	{"username", "admin", str(func(c *Config) *string { return &c.Username })},
	{"extraAccounts", "[]", list(func(c *Config) *[]string { return &c.ExtraAccounts })},
	{"logLevel", "info", str(func(c *Config) *string { return &c.LogLevel })},
	{"serviceType", "ClusterIP", str(func(c *Config) *string { return &c.ServiceType })},
	{"cacheEnabled", "true", boolean(func(c *Config) *bool { return &c.CacheEnabled })},
	{"registryCpuRequest", "100m", str(func(c *Config) *string { return &c.RegistryCPURequest })},
	{"registryMemoryRequest", "128Mi", str(func(c *Config) *string { return &c.RegistryMemoryRequest })},
	{"registryMemoryLimit", "1Gi", str(func(c *Config) *string { return &c.RegistryMemoryLimit })},
	{"storageMode", StorageDynamic, str(func(c *Config) *string { return &c.StorageMode })},
	{"storageClassName", "standard", str(func(c *Config) *string { return &c.StorageClassName })},
	{"storageHostPath", "", str(func(c *Config) *string { return &c.StorageHostPath })},
	{"storageNodeName", "", str(func(c *Config) *string { return &c.StorageNodeName })},
	{"storageHostPathChown", "false", boolean(func(c *Config) *bool { return &c.StorageHostPathChown })},
	{"storageVolumeName", "", str(func(c *Config) *string { return &c.StorageVolumeName })},
	{"storageAccessMode", "ReadWriteOnce", str(func(c *Config) *string { return &c.StorageAccessMode })},
	{"pvSize", "10Gi", str(func(c *Config) *string { return &c.PVSize })},
	{"pvcSize", "10Gi", str(func(c *Config) *string { return &c.PVCSize })},
	{"storageDriver", DriverFilesystem, str(func(c *Config) *string { return &c.StorageDriver })},
	{"storageRedirect", "false", boolean(func(c *Config) *bool { return &c.StorageRedirect })},
	{"s3Bucket", "", str(func(c *Config) *string { return &c.S3Bucket })},
	{"s3Region", "", str(func(c *Config) *string { return &c.S3Region })},
	{"s3Endpoint", "", str(func(c *Config) *string { return &c.S3Endpoint })},
	{"s3AllowHttpEndpoint", "false", boolean(func(c *Config) *bool { return &c.S3AllowHTTPEndpoint })},
	{"s3ForcePathStyle", "false", boolean(func(c *Config) *bool { return &c.S3ForcePathStyle })},
	{"s3RootDirectory", "", str(func(c *Config) *string { return &c.S3RootDirectory })},
	{"s3CaBundlePem", "", str(func(c *Config) *string { return &c.S3CABundlePEM })},
	{"s3Encrypt", "false", boolean(func(c *Config) *bool { return &c.S3Encrypt })},
	{"s3KmsKeyId", "", str(func(c *Config) *string { return &c.S3KMSKeyID })},
	{"s3StorageClass", "STANDARD", str(func(c *Config) *string { return &c.S3StorageClass })},
	{"s3ChunkSize", "0", integer(func(c *Config) *int { return &c.S3ChunkSize })},
	{"s3AccessKeyId", "", str(func(c *Config) *string { return &c.S3AccessKeyID })},
	{"s3SecretAccessKey", "", str(func(c *Config) *string { return &c.S3SecretAccessKey })},
	{"s3ServiceAccountAnnotations", "[]", list(func(c *Config) *[]string { return &c.S3ServiceAccountAnnotations })},
	// Redis 8.10, the newest stable release line (8.10.2 carries the September 2026 security
	// fixes); Redis 7.0 no longer gets them.
	{"redisImage", "redis:8.10.2-alpine", str(func(c *Config) *string { return &c.RedisImage })},
	{"redisMaxMemory", "64mb", str(func(c *Config) *string { return &c.RedisMaxMemory })},
	{"redisCpuRequest", "50m", str(func(c *Config) *string { return &c.RedisCPURequest })},
	{"redisMemoryRequest", "96Mi", str(func(c *Config) *string { return &c.RedisMemoryRequest })},
	{"gcSchedule", "0 3 * * 0", str(func(c *Config) *string { return &c.GCSchedule })},
	{"gcSuspend", "false", boolean(func(c *Config) *bool { return &c.GCSuspend })},
	{"gcKubectlImage", "registry.k8s.io/kubectl:v1.33.13", str(func(c *Config) *string { return &c.GCKubectlImage })},
	{"mirrors", "[]", mirrorList(func(c *Config) *[]rawMirror { return &c.MirrorsRaw })},
	{"monitoring", "", object(func(c *Config) **rawMonitoring { return &c.MonitoringRaw }, monitoringFields)},
	{"autoscaling", "", object(func(c *Config) **rawAutoscaling { return &c.AutoscalingRaw }, autoscalingFields)},
	{"placement", "", object(func(c *Config) **rawPlacement { return &c.PlacementRaw }, placementFields)},
	{"registryEnv", "", object(func(c *Config) **map[string]string { return &c.registryEnvRaw }, "an object of environment variable names and their values")},
}

// Defaults returns every key's default value, as Pulumi.yaml declares them.
func Defaults() map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k.name] = k.def
	}
	return out
}

// defaultOf is one key's default.
func defaultOf(name string) string {
	for _, k := range keys {
		if k.name == name {
			return k.def
		}
	}
	panic("stackconfig: no key " + name)
}

// Load reads the stack configuration of the current project and validates it.
func Load(ctx *pulumi.Context) (*Config, error) {
	return Parse(func(name string) (string, bool) {
		return ctx.GetConfig(ctx.Project() + ":" + name)
	}, func(name string) bool {
		return ctx.IsConfigSecret(ctx.Project() + ":" + name)
	})
}

// Parse builds a Config from a lookup of raw values (as stored by `pulumi config set`), with
// defaults for missing keys, and validates it; isSecret tells whether a key's value is stored
// encrypted. All problems are reported together.
func Parse(lookup func(name string) (string, bool), isSecret func(name string) bool) (*Config, error) {
	c := &Config{}
	var errs []error
	for _, k := range keys {
		raw, ok := lookup(k.name)
		if !ok {
			raw = k.def
		}
		if secretKeys[k.name] && ok && raw != "" && !isSecret(k.name) {
			// Not echoed: the value is a credential.
			errs = append(errs, fmt.Errorf("config %q: a plaintext value is refused; it is a credential: "+
				"set it with `pulumi config set --secret %s` (then rotate it: it is in the stack file's history)", k.name, k.name))
			continue
		}
		if err := k.set(c, raw); err != nil {
			errs = append(errs, fmt.Errorf("config %q: %w", k.name, err))
		}
	}
	if c.mirrorHasPassword() && !isSecret("mirrors") {
		// Pulumi marks the whole key secret when any field of it is; a plaintext key means the
		// password was set without --secret.
		errs = append(errs, fmt.Errorf("config \"mirrors\": an upstream password in plaintext is refused; it is a credential: "+
			"set it with `pulumi config set --secret --path 'mirrors[N].password'` (then rotate it: it is in the stack file's history)"))
	}
	if ok := c.registryEnvRaw != nil; ok && isSecret("registryEnv") {
		// Refused, not taken: the values would be in the Deployment's spec, not in a Secret.
		errs = append(errs, fmt.Errorf("config \"registryEnv\": a secret value is refused: its values go into the pod spec "+
			"(readable by whoever can read Deployments), not into a Secret; keep credentials out of registryEnv"))
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	// A hostPath key set while the mode is another would be ignored; the default mode changed from
	// hostPath to dynamic (2026-12), so this is what a stack that relied on the old default sets.
	// An empty storageHostPath stays empty: the component derives the directory from the namespace
	// and its own name (registrystack.DefaultHostPath), so two stacks never share (and GC) one store.
	c.hostPathKeysSet = c.StorageHostPath != "" || c.StorageNodeName != ""
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.Routing, c.TLS, c.Storage = c.routing(), c.tls(), c.storage()
	c.Mirrors = c.mirrors(c.Storage)
	c.Monitoring, c.Autoscaling = c.monitoring(), c.autoscaling()
	return c, nil
}

func joinErrors(errs []error) error {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return errors.New("invalid stack configuration:\n  " + strings.Join(msgs, "\n  "))
}

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, raw string) error {
		*field(c) = strings.TrimSpace(raw)
		return nil
	}
}

func integer(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, raw string) error {
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("%q is invalid; allowed: a whole number", raw)
		}
		*field(c) = n
		return nil
	}
}

func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, raw string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("%q is invalid; allowed: true, false", raw)
		}
		*field(c) = b
		return nil
	}
}

func list(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, raw string) error {
		var out []string
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			return fmt.Errorf("%q is invalid; allowed: a list of strings (set items with `pulumi config set --path 'KEY[0]' VALUE`)", raw)
		}
		*field(c) = out
		return nil
	}
}

// Accounts are the htpasswd accounts: username first, then extraAccounts.
func (c *Config) Accounts() []string {
	return append([]string{c.Username}, c.ExtraAccounts...)
}
