// Package stackconfig reads the stack configuration once, applies defaults in one place and validates
// every value before any resource is registered. Components never read configuration themselves.
package stackconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
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

// Storage modes: the values of storage.filesystem.mode.
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

	// Raw routing and TLS fields; Routing and TLS below are what components use. RoutingMode and
	// TLSSource follow from the variant set (routing.ingress or routing.gateway, tls.generated or
	// tls.secret).
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

	Replicas      int
	RegistryImage string
	// AccountNames is the accounts key; the first is the admin.
	AccountNames          []string
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
	// hostPathKeysSet: storage.filesystem.hostPath or nodeName was set (before defaulting).
	hostPathKeysSet bool
	// gatewayCreateSet: a field of routing.gateway.create was set (its class is then required).
	gatewayCreateSet bool
	// StorageHostPathChown opts in to the root init container that hands a new hostPath
	// directory to the registry's user (the namespace then enforces only "baseline").
	StorageHostPathChown bool
	StorageVolumeName    string
	StorageAccessMode    string
	PVSize               string
	PVCSize              string

	// Raw storage fields; Storage above is what components use. StorageDriver follows from the
	// variant set (storage.filesystem or storage.s3).
	StorageDriver       string
	StorageRedirect     bool
	S3Bucket            string
	S3Region            string
	S3Endpoint          string
	S3AllowHTTPEndpoint bool
	S3ForcePathStyle    bool
	S3RootDirectory     string
	S3CABundlePEM       string
	S3Encrypt           bool
	S3KMSKeyID          string
	S3StorageClass      string
	S3ChunkSize         int
	S3AccessKeyID       string
	S3SecretAccessKey   string
	// TokenServerExtraConfig is auth.token's docker_auth settings of its own (a secret key).
	TokenServerExtraConfig      string
	S3ServiceAccountAnnotations map[string]string

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

	// PlacementRaw is the placement key as set (nil: unset).
	PlacementRaw *rawPlacement
	RetentionRaw *rawRetention
	AuthRaw      *rawAuth
	// ClusterPullRaw is the clusterPull key.
	ClusterPullRaw *rawClusterPull
	// RegistryEnv is registry.env: extra environment of the registry, mirrors and GC's collector.
	RegistryEnv map[string]string
}

// key describes one config path: where it is in the stack config, its default, how it is stored
// into Config, and what it means (the schema and the README's table say the same).
type key struct {
	// path is a top-level key (hostname) or a field of one (storage.s3.bucket).
	path  string
	def   string
	value setter
	doc   string
}

// secretPaths must be set with `pulumi config set --secret`: a plaintext value is refused. Each is a
// top-level key of its own: Pulumi records secrecy per top-level key (a structured key is secret as
// a whole when any field of it is), so a credential beside other fields could be stored in plaintext
// unnoticed once one of them was set with --secret.
var secretPaths = map[string]bool{"s3AccessKeyId": true, "s3SecretAccessKey": true, "tokenServerExtraConfig": true}

// IsSecretKey tells whether the config path (without the project prefix) must be set with --secret.
func IsSecretKey(path string) bool { return secretPaths[path] }

// keys is the single table of config paths with their defaults. The stack config mirrors the
// component's Args: one structured key per feature (routing, tls, storage, registry, cache, gc,
// mirrors, monitoring, autoscaling, placement), the everyday keys flat. Pulumi.yaml declares the
// top-level keys, the provider's schema and the README's table every path; tests keep them in step.
var keys = []key{
	{"kubeContext", "", str(func(c *Config) *string { return &c.KubeContext }),
		"kubeconfig context to deploy to; empty means the current context. Set it per stack so nothing lands on the wrong cluster."},
	{"namespace", "registry", str(func(c *Config) *string { return &c.Namespace }),
		"Namespace of every object (DNS-1123 label)."},
	{"createNamespace", "true", boolean(func(c *Config) *bool { return &c.CreateNamespace }),
		"Create the namespace (and delete it on destroy). Set false to use an existing one."},
	{"hostname", "registry.minikube.test", str(func(c *Config) *string { return &c.Hostname }),
		"DNS name clients use (route host, first SAN of the server certificate). Must contain a dot."},
	{"extraDnsNames", "[]", list(func(c *Config) *[]string { return &c.ExtraDNSNames }),
		"More DNS names of the server certificate, also served by the route."},
	{"extraIpAddresses", "[]", list(func(c *Config) *[]string { return &c.ExtraIPAddresses }),
		"IP SANs of the server certificate."},
	{"replicas", "2", integer(func(c *Config) *int { return &c.Replicas }),
		"Registry replicas (1-20). They share storage, cache and http.secret."},
	{"accounts", `["admin"]`, list(func(c *Config) *[]string { return &c.AccountNames }),
		"Accounts, one per client (CI, each cluster, each developer), each with its own generated password (output passwords), rotatable alone. The first is the admin of the outputs username and password; what the others may do is auth's."},

	{"auth", "", object(func(c *Config) **rawAuth { return &c.AuthRaw }, authFields), authDoc},
	// A top-level key of its own (see secretPaths): it may hold an LDAP bind password or an OIDC client secret.
	{"tokenServerExtraConfig", "", str(func(c *Config) *string { return &c.TokenServerExtraConfig }),
		"With auth.token, YAML of docker_auth's own settings added to the token server's config: its other backends (ldap_auth, oidc_auth, github_auth, gitlab_auth, google_auth, ext_auth ...); not server, token, users or acl, which the stack renders. Set with `pulumi config set --secret tokenServerExtraConfig < file.yml` (plaintext refused). With it, auth.token.permissions may name those backends' users, and the token server may open connections. See README, Accounts."},
	{"clusterPull", "", object(func(c *Config) **rawClusterPull { return &c.ClusterPullRaw }, clusterPullFields), clusterPullDoc},

	{"routing.ingress.className", "nginx", str(func(c *Config) *string { return &c.IngressClassName }),
		"IngressClass of the Ingress (nginx = minikube's ingress addon; traefik = minikube's traefik addon, k3s). routing.ingress is the default way in; set routing.gateway instead for a Gateway API HTTPRoute."},
	{"routing.ingress.traefikEntryPoint", "websecure", str(func(c *Config) *string { return &c.TraefikEntryPoint }),
		"With Traefik, the TLS entry point the routers are bound to (never the plain-HTTP one)."},
	{"routing.ingress.controller", "", str(func(c *Config) *string { return &c.IngressController }),
		"Controller behind the IngressClass (nginx, traefik, other); empty derives it from the class name nginx or traefik. other = the stack cannot enforce HTTPS-only or source ranges."},
	{"routing.gateway.create.className", "", str(func(c *Config) *string { return &c.GatewayClassName }),
		"GatewayClass of a Gateway the stack creates (one HTTPS listener with the stack's certificate)."},
	{"routing.gateway.create.listenerPort", "0", integer(func(c *Config) *int { return &c.GatewayListenerPort }),
		"Port of the created Gateway's HTTPS listener; 0 derives it, 8443 for Traefik (it serves only ports equal to an entry point's port, websecure = 8443) and 443 otherwise."},
	{"routing.gateway.existing.name", "", str(func(c *Config) *string { return &c.GatewayName }),
		"An existing Gateway to attach the HTTPRoute to (the stack never changes it)."},
	{"routing.gateway.existing.namespace", "", str(func(c *Config) *string { return &c.GatewayNamespace }),
		"Namespace of the existing Gateway; empty means the stack's namespace."},
	{"routing.gateway.existing.sectionName", "", str(func(c *Config) *string { return &c.GatewaySectionName }),
		"Listener of the existing Gateway the route binds to; it must be an HTTPS listener (checked). Required with routing.gateway.existing."},
	{"routing.gateway.controller", "", str(func(c *Config) *string { return &c.GatewayController }),
		"Controller behind the Gateway (traefik, other); empty derives it: traefik for a created Gateway of class traefik, other for another class, and an existing Gateway's from its GatewayClass. other = the stack cannot enforce source ranges."},
	{"routing.sourceRanges", "[]", list(func(c *Config) *[]string { return &c.IngressSourceRanges }),
		"Client CIDRs allowed in, with either route (ingress-nginx allowlist annotation, or a Traefik ipAllowList Middleware); empty allows all. Refused on a controller the stack cannot enforce them on."},
	{"routing.allowUnenforcedSourceRanges", "false", boolean(func(c *Config) *bool { return &c.AllowUnenforcedSourceRanges }),
		"Accept routing.sourceRanges on a controller the stack cannot enforce them on (other), because you enforce them elsewhere."},

	{"tls.generated.validityHours", "8760", integer(func(c *Config) *int { return &c.CertValidityHours }),
		"The default certificate source: the stack's own CA and server certificate. Lifetime of the server certificate (24-87600); re-issued by `pulumi up --refresh` in its last tenth."},
	{"tls.secret.name", "", str(func(c *Config) *string { return &c.TLSSecretName }),
		"An existing kubernetes.io/tls Secret in the stack's namespace (e.g. cert-manager's) instead of the generated certificate."},
	{"tls.secret.caCertPem", "", str(func(c *Config) *string { return &c.TLSCACertPEM }),
		"With tls.secret, the CA certificate(s) clients should trust (PEM), exported as caCertPem; may be empty."},

	{"storage.filesystem.mode", StorageDynamic, str(func(c *Config) *string { return &c.StorageMode }),
		"The default store is a volume: dynamic (a claim on storage.filesystem.className, e.g. minikube's standard), hostPath (a static PV on a node directory) or existing (bind storage.filesystem.volumeName). Set storage.s3 instead for a bucket."},
	{"storage.filesystem.className", "standard", str(func(c *Config) *string { return &c.StorageClassName }),
		"StorageClass in dynamic mode; the PV's class in existing mode (may be empty). Ignored for hostPath."},
	{"storage.filesystem.hostPath", "", str(func(c *Config) *string { return &c.StorageHostPath }),
		"Node directory of the hostPath PV; empty means /data/<namespace> (/data/<namespace>-<component> for a component not named registry; minikube keeps /data across restarts)."},
	{"storage.filesystem.nodeName", "", str(func(c *Config) *string { return &c.StorageNodeName }),
		"Node that holds the hostPath PV (its nodeAffinity); empty allows any node, which is right only on one-node clusters such as minikube."},
	{"storage.filesystem.chownHostPath", "false", boolean(func(c *Config) *bool { return &c.StorageHostPathChown }),
		"hostPath mode only. true runs a root init container (CHOWN only) that hands the directory to the registry's user, and lowers the created namespace's enforced Pod Security level to baseline; false needs a directory the registry's user (UID 1000) can already write."},
	{"storage.filesystem.volumeName", "", str(func(c *Config) *string { return &c.StorageVolumeName }),
		"Existing PersistentVolume to bind in existing mode (e.g. the retained PV of a destroyed stack)."},
	{"storage.filesystem.accessMode", "ReadWriteOnce", str(func(c *Config) *string { return &c.StorageAccessMode }),
		"Access mode of the volume (ReadWriteOnce, or ReadWriteMany for replicas on several nodes)."},
	{"storage.filesystem.pvSize", "10Gi", str(func(c *Config) *string { return &c.PVSize }),
		"Capacity of the hostPath PV (Kubernetes quantity)."},
	{"storage.filesystem.pvcSize", "10Gi", str(func(c *Config) *string { return &c.PVCSize }),
		"Size the claim requests (Kubernetes quantity, at most storage.filesystem.pvSize in hostPath mode)."},
	{"storage.s3.bucket", "", str(func(c *Config) *string { return &c.S3Bucket }),
		"An existing S3 bucket (AWS or S3-compatible) instead of a volume, for replicas on several nodes; the stack never creates, empties or deletes it. Required with storage.s3."},
	{"storage.s3.region", "", str(func(c *Config) *string { return &c.S3Region }),
		"The bucket's region (an AWS region when storage.s3.endpoint is empty; any name the store accepts otherwise, e.g. us-east-1). Required with storage.s3."},
	{"storage.s3.endpoint", "", str(func(c *Config) *string { return &c.S3Endpoint }),
		"Base URL of an S3-compatible store (Ceph RGW, SeaweedFS, Garage, MinIO, a cloud's S3 API), e.g. https://s3.example.com. Empty = AWS S3."},
	{"storage.s3.allowHttpEndpoint", "false", boolean(func(c *Config) *bool { return &c.S3AllowHTTPEndpoint }),
		"Allow an http:// storage.s3.endpoint (images in clear text on the network). Only for a store on a trusted network."},
	{"storage.s3.forcePathStyle", "false", boolean(func(c *Config) *bool { return &c.S3ForcePathStyle }),
		"Address the bucket as <endpoint>/<bucket> instead of <bucket>.<endpoint>; most S3-compatible stores need true."},
	{"storage.s3.rootDirectory", "", str(func(c *Config) *string { return &c.S3RootDirectory }),
		"Key prefix of every object, e.g. /registry or /envs/prod (several registries can share a bucket under different prefixes). Empty = the bucket's root."},
	{"storage.s3.caBundlePem", "", str(func(c *Config) *string { return &c.S3CABundlePEM }),
		"PEM CA certificates for TLS to an https storage.s3.endpoint with a private CA. Replaces the system roots for the store's connections."},
	{"storage.s3.encrypt", "false", boolean(func(c *Config) *bool { return &c.S3Encrypt }),
		"Ask for server-side encryption of every object (SSE-S3, or SSE-KMS with storage.s3.kmsKeyId). AWS encrypts new objects with SSE-S3 anyway."},
	{"storage.s3.kmsKeyId", "", str(func(c *Config) *string { return &c.S3KMSKeyID }),
		"KMS key (id, alias or ARN) for server-side encryption; needs storage.s3.encrypt."},
	{"storage.s3.storageClass", "STANDARD", str(func(c *Config) *string { return &c.S3StorageClass }),
		"Storage class of new objects (STANDARD, STANDARD_IA, INTELLIGENT_TIERING, ...; NONE for stores that have no classes)."},
	{"storage.s3.chunkSize", "0", integer(func(c *Config) *int { return &c.S3ChunkSize }),
		"Multipart upload part size in bytes, 5 MiB to 5 GiB; 0 = the driver's 10 MiB."},
	{"storage.s3.redirect", "false", boolean(func(c *Config) *bool { return &c.StorageRedirect }),
		"Answer blob downloads with a redirect to a presigned URL of the store, so the bytes bypass the registry. Only when every client can reach storage.s3.endpoint (or AWS S3) directly."},
	{"storage.s3.serviceAccountAnnotations", "{}", stringMap(func(c *Config) *map[string]string { return &c.S3ServiceAccountAnnotations }),
		"Annotations of the registry's (and GC's) ServiceAccount for a workload identity, {key: value}, e.g. {\"eks.amazonaws.com/role-arn\": \"arn:aws:iam::123456789012:role/registry\"}. Only without static keys."},

	// The S3 credentials are top-level keys of their own (see secretPaths), the static key of storage.s3.
	{"s3AccessKeyId", "", str(func(c *Config) *string { return &c.S3AccessKeyID }),
		"With storage.s3, a static access key id; set with `pulumi config set --secret` (plaintext refused), together with s3SecretAccessKey. Empty = the default AWS credential chain (IRSA, EKS Pod Identity, instance role)."},
	{"s3SecretAccessKey", "", str(func(c *Config) *string { return &c.S3SecretAccessKey }),
		"With storage.s3, a static secret access key; set with `pulumi config set --secret` (plaintext refused). Stored only in a Kubernetes Secret."},

	{"registry.image", "registry:3.1.2", str(func(c *Config) *string { return &c.RegistryImage }),
		"CNCF distribution v3 image, pinned (tag other than latest, or digest)."},
	{"registry.logLevel", "info", str(func(c *Config) *string { return &c.LogLevel }),
		"Registry log level (error, warn, info, debug)."},
	{"registry.serviceType", "ClusterIP", str(func(c *Config) *string { return &c.ServiceType }),
		"Type of the registry Service (ClusterIP, NodePort, LoadBalancer)."},
	{"registry.cpuRequest", "100m", str(func(c *Config) *string { return &c.RegistryCPURequest }),
		"CPU request of each registry pod (no CPU limit is set)."},
	{"registry.memoryRequest", "128Mi", str(func(c *Config) *string { return &c.RegistryMemoryRequest }),
		"Memory request of each registry pod."},
	{"registry.memoryLimit", "1Gi", str(func(c *Config) *string { return &c.RegistryMemoryLimit }),
		"Memory limit of each registry pod (at least the request)."},
	{"registry.env", "{}", stringMap(func(c *Config) *map[string]string { return &c.RegistryEnv }),
		"Extra environment of the registry, every mirror and GC's collector, {NAME: value}, e.g. HTTP_PROXY or OTEL exporter settings. REGISTRY_* and the stack's own names are refused; plain values only (a secret is refused: the values are in the pod spec)."},

	{"cache.enabled", "true", boolean(func(c *Config) *bool { return &c.CacheEnabled }),
		"Cache blob descriptors in Redis. false removes Redis entirely (the other cache fields must then be unset)."},
	// Redis 8.10, the newest stable release line (8.10.2 carries the September 2026 security
	// fixes); Redis 7.0 no longer gets them.
	{"cache.image", "redis:8.10.2-alpine", str(func(c *Config) *string { return &c.RedisImage }),
		"Redis image, pinned (Redis 6.2 or later, for the ACL users; the default is the supported 8.x line)."},
	{"cache.maxMemory", "64mb", str(func(c *Config) *string { return &c.RedisMaxMemory }),
		"Redis maxmemory (redis.conf units, e.g. 64mb, 1gb); keys are evicted LRU beyond it."},
	{"cache.cpuRequest", "50m", str(func(c *Config) *string { return &c.RedisCPURequest }),
		"CPU request of the Redis pod."},
	{"cache.memoryRequest", "96Mi", str(func(c *Config) *string { return &c.RedisMemoryRequest }),
		"Memory request of the Redis pod (its limit is derived from cache.maxMemory)."},

	{"gc.schedule", "0 3 * * 0", str(func(c *Config) *string { return &c.GCSchedule }),
		"Cron schedule of garbage collection (5 fields or a macro such as @weekly)."},
	{"gc.suspend", "false", boolean(func(c *Config) *bool { return &c.GCSuspend }),
		"Suspend scheduled GC (manual runs with kubectl create job --from=cronjob/<component>-gc still work)."},
	{"gc.kubectlImage", "registry.k8s.io/kubectl:v1.33.13", str(func(c *Config) *string { return &c.GCKubectlImage }),
		"Image with sh, kubectl, date -d, sed and tr; runs the GC read-only switch, its lease sidecar and the watchdog."},

	{"mirrors", "[]", mirrorList(func(c *Config) *[]rawMirror { return &c.MirrorsRaw }),
		"Pull-through caches of public registries, each {name, upstream (https URL), hostname (default <name>.<hostname>), ttl (default 168h, 0 = never expire), username + password (upstream credentials; password with --secret), anonymous (default false: pulls need the mirror's generated account), caBundlePem (upstream's private CA), size (claim, default 20Gi)}. Empty: no mirror."},
	{"monitoring", "", object(func(c *Config) **rawMonitoring { return &c.MonitoringRaw }, monitoringFields),
		"Metrics for a Prometheus, each instance's metrics Service (port 5001) reachable only from the scrapers: {scrapeNamespace (default monitoring), scrapePodLabels (default {app.kubernetes.io/name: prometheus}; {} admits every pod of the namespace), serviceMonitor {enabled, labels, interval (default 30s)}, alerts {enabled, labels, readOnlyFor (default 1h)} (a PrometheusRule), dashboard {enabled, namespace (default the stack's), labels (default {grafana_dashboard: \"1\"})}}. serviceMonitor and alerts need the Prometheus Operator CRDs. Empty: off. See README, Monitoring."},
	{"autoscaling", "", object(func(c *Config) **rawAutoscaling { return &c.AutoscalingRaw }, autoscalingFields),
		"The registry's replicas follow the load (replaces replicas, which must then be unset): {minReplicas (default 2), maxReplicas (default 6), cpuUtilization (default 70), memoryUtilization (default 0: none)} for a HorizontalPodAutoscaler, or {minReplicas, maxReplicas, keda {serverAddress, query (default in-flight requests of the registry), threshold (default 20)}} for a KEDA ScaledObject. Empty: fixed replicas. See README, Monitoring."},
	{"retention", "", object(func(c *Config) **rawRetention { return &c.RetentionRaw }, retentionFields),
		"Deletes, first thing in every GC run, the tags no policy keeps: {dryRun (default false: report only when true), regctlImage (default " + DefaultRegctlImage + "), policies: [{repositories (patterns, * also matches /), keepNewest (the N tags whose images were created last), keepTags (regular expressions, whole tag), keepYoungerThan (30d, 72h), deleteAll (default false: a repository where nothing would be kept is left alone)}]}; the first policy matching a repository decides, repositories no policy matches are untouched. Empty: no tag is ever deleted. See README, Retention."},
	{"placement", "", object(func(c *Config) **rawPlacement { return &c.PlacementRaw }, placementFields),
		"Where and how the pods run: {all, registry, mirrors, cache, gc}, each {nodeSelector, tolerations, affinity (added to the stack's own rules), priorityClassName, podAnnotations, podLabels (not app.kubernetes.io/*), imagePullSecrets} in Kubernetes' field names. all applies to every pod, a workload's entry overrides it field by field; gc also takes registry's scheduling fields. Empty: nothing added. See README, Placement."},
}

// Each of these objects holds at most one of its variants; why says which one applies when neither
// is set.
var variants = []struct{ key, first, second, why string }{
	{"routing", "routing.ingress", "routing.gateway", "routing.ingress is the default"},
	{"routing.gateway", "routing.gateway.create", "routing.gateway.existing", "the stack creates a Gateway or attaches to one"},
	{"tls", "tls.generated", "tls.secret", "tls.generated is the default"},
	{"storage", "storage.filesystem", "storage.s3", "storage.filesystem is the default"},
}

// moved are the keys of the flat layout (before 2026-12) and where each one lives now. Parse refuses
// them by name; Migrate rewrites a stack's config.
var moved = map[string]string{
	"ingressClassName": "routing.ingress.className", "traefikEntryPoint": "routing.ingress.traefikEntryPoint",
	"ingressController": "routing.ingress.controller", "gatewayController": "routing.gateway.controller",
	"ingressSourceRanges": "routing.sourceRanges", "allowUnenforcedSourceRanges": "routing.allowUnenforcedSourceRanges",
	"gatewayClassName": "routing.gateway.create.className", "gatewayListenerPort": "routing.gateway.create.listenerPort",
	"gatewayName": "routing.gateway.existing.name", "gatewayNamespace": "routing.gateway.existing.namespace",
	"gatewaySectionName": "routing.gateway.existing.sectionName",
	"tlsSource":          "tls.generated or tls.secret (the one set)", "certValidityHours": "tls.generated.validityHours",
	"tlsSecretName": "tls.secret.name", "tlsCaCertPem": "tls.secret.caCertPem",
	"username": "accounts[0]", "extraAccounts": "accounts (after the first)",
	"registryImage": "registry.image", "logLevel": "registry.logLevel", "serviceType": "registry.serviceType",
	"registryCpuRequest": "registry.cpuRequest", "registryMemoryRequest": "registry.memoryRequest",
	"registryMemoryLimit": "registry.memoryLimit", "registryEnv": "registry.env",
	"storageDriver": "storage.filesystem or storage.s3 (the one set)",
	"storageMode":   "storage.filesystem.mode", "storageClassName": "storage.filesystem.className",
	"storageHostPath": "storage.filesystem.hostPath", "storageNodeName": "storage.filesystem.nodeName",
	"storageHostPathChown": "storage.filesystem.chownHostPath", "storageVolumeName": "storage.filesystem.volumeName",
	"storageAccessMode": "storage.filesystem.accessMode", "pvSize": "storage.filesystem.pvSize",
	"pvcSize": "storage.filesystem.pvcSize", "storageRedirect": "storage.s3.redirect",
	"s3Bucket": "storage.s3.bucket", "s3Region": "storage.s3.region", "s3Endpoint": "storage.s3.endpoint",
	"s3AllowHttpEndpoint": "storage.s3.allowHttpEndpoint", "s3ForcePathStyle": "storage.s3.forcePathStyle",
	"s3RootDirectory": "storage.s3.rootDirectory", "s3CaBundlePem": "storage.s3.caBundlePem",
	"s3Encrypt": "storage.s3.encrypt", "s3KmsKeyId": "storage.s3.kmsKeyId", "s3StorageClass": "storage.s3.storageClass",
	"s3ChunkSize": "storage.s3.chunkSize", "s3ServiceAccountAnnotations": "storage.s3.serviceAccountAnnotations",
	"cacheEnabled": "cache.enabled", "redisImage": "cache.image", "redisMaxMemory": "cache.maxMemory",
	"redisCpuRequest": "cache.cpuRequest", "redisMemoryRequest": "cache.memoryRequest",
	"gcSchedule": "gc.schedule", "gcSuspend": "gc.suspend", "gcKubectlImage": "gc.kubectlImage",
}

// Kind is the type of a config path's value.
type Kind string

const (
	KindString  Kind = "string"
	KindInteger Kind = "integer"
	KindBoolean Kind = "boolean"
	// KindList is a list of strings, KindMap an object of string values, KindObjects a list of
	// objects and KindObject an object whose fields the README describes.
	KindList    Kind = "list"
	KindMap     Kind = "map"
	KindObjects Kind = "objects"
	KindObject  Kind = "object"
)

// setter stores a raw value (as `pulumi config set` stores it) into Config.
type setter struct {
	kind Kind
	set  func(c *Config, raw string) error
}

// Key is one config path as the schema and the README's table show it.
type Key struct {
	Path, Default, Doc string
	Kind               Kind
}

// Keys are every config path in the table's order.
func Keys() []Key {
	out := make([]Key, len(keys))
	for i, k := range keys {
		out[i] = Key{Path: k.path, Default: k.def, Doc: k.doc, Kind: k.value.kind}
	}
	return out
}

// Defaults returns every path's default value.
func Defaults() map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k.path] = k.def
	}
	return out
}

// defaultOf is one path's default.
func defaultOf(path string) string {
	for _, k := range keys {
		if k.path == path {
			return k.def
		}
	}
	panic("stackconfig: no path " + path)
}

// TopLevelKeys are the stack config keys: the first segment of every path, in the table's order.
func TopLevelKeys() []string {
	var out []string
	for _, k := range keys {
		top, _, _ := strings.Cut(k.path, ".")
		if !slices.Contains(out, top) {
			out = append(out, top)
		}
	}
	return out
}

// Moved are the keys of the flat layout before 2026-12 and where each one lives now.
func Moved() map[string]string { return maps.Clone(moved) }

// isPath tells whether path is a config path of the table; isPrefix whether paths lie below it.
func isPath(path string) bool {
	return slices.ContainsFunc(keys, func(k key) bool { return k.path == path })
}

func isPrefix(path string) bool {
	return slices.ContainsFunc(keys, func(k key) bool { return strings.HasPrefix(k.path, path+".") })
}

// fieldsUnder names the fields an object path may hold, in the table's order.
func fieldsUnder(prefix string) string {
	var out []string
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k.path, prefix+"."); ok {
			field, _, _ := strings.Cut(rest, ".")
			if !slices.Contains(out, field) {
				out = append(out, field)
			}
		}
	}
	return strings.Join(out, ", ")
}

// anyUnder tells whether a path at or below prefix was set; an empty object or list (what `pulumi
// config rm --path` leaves of one) sets nothing.
func anyUnder(values map[string]string, prefix string) bool {
	for p, v := range values {
		if (p == prefix || strings.HasPrefix(p, prefix+".")) && v != "{}" && v != "[]" {
			return true
		}
	}
	return false
}

// Load reads the stack configuration of the current project and validates it.
func Load(ctx *pulumi.Context) (*Config, error) {
	return Parse(func(name string) (string, bool) {
		return ctx.GetConfig(ctx.Project() + ":" + name)
	}, func(name string) bool {
		return ctx.IsConfigSecret(ctx.Project() + ":" + name)
	})
}

// Parse builds a Config from a lookup of top-level keys' raw values (as stored by `pulumi config
// set`; a structured key as JSON), with defaults for missing paths, and validates it; isSecret
// tells whether a key's value is stored encrypted (Pulumi marks a whole key secret when any field
// of it is). All problems are reported together, each named by its config path.
func Parse(lookup func(name string) (string, bool), isSecret func(name string) bool) (*Config, error) {
	var errs []error
	for _, old := range slices.Sorted(maps.Keys(moved)) {
		if _, ok := lookup(old); ok {
			errs = append(errs, fmt.Errorf("config %q: moved to %s", old, moved[old]))
		}
	}
	if len(errs) > 0 {
		errs = append(errs, errors.New("the stack config mirrors the component's args since 2026-12: "+
			"`make migrate-config` rewrites the stack's config (README, Upgrading)"))
	}
	values := map[string]string{}
	for _, top := range TopLevelKeys() {
		raw, ok := lookup(top)
		switch {
		case !ok:
		case isPath(top):
			values[top] = raw
		default:
			errs = append(errs, flatten(top, raw, values)...)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(secretPaths)) {
		if values[p] != "" && !isSecret(p) {
			// Not echoed: the value is a credential.
			errs = append(errs, fmt.Errorf("config %q: a plaintext value is refused; it is a credential: "+
				"set it with `pulumi config set --secret %s` (then rotate it: it is in the stack file's history)", p, p))
		}
	}
	if raw, ok := lookup("mirrors"); ok && !isSecret("mirrors") && mirrorsHavePassword(raw) {
		// Pulumi marks the whole key secret when any field of it is; a plaintext key means the
		// password was set without --secret.
		errs = append(errs, fmt.Errorf("config \"mirrors\": an upstream password in plaintext is refused; it is a credential: "+
			"set it with `pulumi config set --secret --path 'mirrors[N].password'` (then rotate it: it is in the stack file's history)"))
	}
	if _, ok := lookup("registry"); ok && isSecret("registry") {
		// Refused, not taken: nothing in it is a credential, and registry.env goes into the
		// Deployment's spec (readable by whoever can read Deployments), not into a Secret.
		errs = append(errs, fmt.Errorf("config \"registry\": a secret value is refused: registry.env goes into the pod spec, "+
			"not into a Secret; keep credentials out of it"))
	}
	for _, v := range variants {
		if anyUnder(values, v.first) && anyUnder(values, v.second) {
			errs = append(errs, fmt.Errorf("config %q: set either %s or %s, not both (%s)", v.key, v.first, v.second, v.why))
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	c := &Config{}
	for _, k := range keys {
		raw, ok := values[k.path]
		if !ok {
			raw = k.def
		}
		if err := k.value.set(c, raw); err != nil {
			errs = append(errs, fmt.Errorf("config %q: %w", k.path, err))
		}
	}
	if values["cache.enabled"] != "" && !c.CacheEnabled {
		for _, k := range keys {
			if _, ok := values[k.path]; ok && strings.HasPrefix(k.path, "cache.") && k.path != "cache.enabled" {
				errs = append(errs, fmt.Errorf("config %q: unset while cache.enabled is false (there is no Redis to shape)", k.path))
			}
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	// The variant set chooses the mode; the first is the default.
	c.RoutingMode, c.TLSSource, c.StorageDriver = string(RoutingIngress), string(TLSGenerated), DriverFilesystem
	if anyUnder(values, "routing.gateway") {
		c.RoutingMode = string(RoutingGateway)
	}
	if anyUnder(values, "tls.secret") {
		c.TLSSource = string(TLSSecret)
	}
	if anyUnder(values, "storage.s3") {
		c.StorageDriver = DriverS3
	}
	// A hostPath field set while the mode is another would be ignored; the default mode changed from
	// hostPath to dynamic (2026-12), so this is what a stack that relied on the old default sets.
	// An empty hostPath stays empty: the component derives the directory from the namespace
	// and its own name (registrystack.DefaultHostPath), so two stacks never share (and GC) one store.
	c.hostPathKeysSet = c.StorageHostPath != "" || c.StorageNodeName != ""
	c.gatewayCreateSet = anyUnder(values, "routing.gateway.create")
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.Routing, c.TLS, c.Storage = c.routing(), c.tls(), c.storage()
	c.Mirrors = c.mirrors(c.Storage)
	c.Monitoring, c.Autoscaling = c.monitoring(), c.autoscaling()
	return c, nil
}

// flatten stores the paths set in a structured key's JSON into values, refusing unknown fields by
// their path. A structured key's values are not echoed: a field may be a credential.
func flatten(top, raw string, values map[string]string) []error {
	raw = strings.TrimSpace(raw)
	if raw == "" || raw == "null" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var node any
	if err := dec.Decode(&node); err != nil {
		node = raw
	}
	var errs []error
	var walk func(path string, node any)
	walk = func(path string, node any) {
		if isPath(path) {
			if s, set, err := RawValue(node); err == nil && set {
				values[path] = s
			}
			return
		}
		m, ok := node.(map[string]any)
		if !ok {
			hint := ""
			if path == "routing" && (node == "ingress" || node == "gateway") {
				hint = " (the routing mode of the flat layout before 2026-12: run `make migrate-config`, see README, Upgrading)"
			}
			errs = append(errs, fmt.Errorf("config %q: is not an object%s; allowed: an object with %s "+
				"(set a field with `pulumi config set --path %s.FIELD VALUE`)", path, hint, fieldsUnder(path), path))
			return
		}
		for _, field := range slices.Sorted(maps.Keys(m)) {
			child := path + "." + field
			if strings.Contains(field, ".") {
				// storage["s3.bucket"] would read as storage.s3.bucket beside the real one.
				errs = append(errs, fmt.Errorf("config %s[%q]: unknown field; allowed in %s: %s", path, field, path, fieldsUnder(path)))
				continue
			}
			if !isPath(child) && !isPrefix(child) {
				errs = append(errs, fmt.Errorf("config %q: unknown field; allowed in %s: %s", child, path, fieldsUnder(path)))
				continue
			}
			walk(child, m[field])
		}
	}
	walk(top, node)
	return errs
}

// RawValue is a decoded value (a leaf of a structured key, a component provider's input) as `pulumi
// config set` stores a top-level key, which Parse reads: a string as is, a number or boolean in its
// text form, a list or object as JSON; set is false for null (unset).
func RawValue(v any) (raw string, set bool, err error) {
	switch x := v.(type) {
	case nil:
		return "", false, nil
	case string:
		return x, true, nil
	case json.Number:
		return x.String(), true, nil
	case bool:
		return strconv.FormatBool(x), true, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true, nil
	case int:
		return strconv.Itoa(x), true, nil
	}
	out, err := json.Marshal(v)
	if err != nil {
		return "", false, fmt.Errorf("not a config value (%T): %w", v, err)
	}
	return string(out), true, nil
}

func joinErrors(errs []error) error {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return errors.New("invalid stack configuration:\n  " + strings.Join(msgs, "\n  "))
}

func str(field func(*Config) *string) setter {
	return setter{KindString, func(c *Config, raw string) error {
		*field(c) = strings.TrimSpace(raw)
		return nil
	}}
}

func integer(field func(*Config) *int) setter {
	return setter{KindInteger, func(c *Config, raw string) error {
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("%q is invalid; allowed: a whole number", raw)
		}
		*field(c) = n
		return nil
	}}
}

func boolean(field func(*Config) *bool) setter {
	return setter{KindBoolean, func(c *Config, raw string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("%q is invalid; allowed: true, false", raw)
		}
		*field(c) = b
		return nil
	}}
}

// list takes a JSON list of strings (stringList).
func list(field func(*Config) *[]string) setter {
	return setter{KindList, func(c *Config, raw string) error {
		out, err := stringList(raw)
		if err != nil {
			return err
		}
		*field(c) = out
		return nil
	}}
}

// stringList parses a JSON list of strings, also when `pulumi config set --path` stored it as a
// string or stored an item as a number or boolean (`--path 'accounts[1]' 1001`).
func stringList(raw string) ([]string, error) {
	var items []any
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&items); err != nil {
		return nil, fmt.Errorf("%q is invalid; allowed: a list of strings (set items with `pulumi config set --path 'KEY[0]' VALUE`)", raw)
	}
	out := make([]string, len(items))
	for i, item := range items {
		s, ok, rawErr := RawValue(item)
		ok = ok && rawErr == nil
		switch item.(type) {
		case nil:
			// What `pulumi config set --path 'KEY[1]' x` leaves before an item 0 that was never set.
			return nil, fmt.Errorf("item %d is empty (%s); set every item from 0 on (`pulumi config set --path 'KEY[%d]' VALUE`)", i, raw, i)
		case map[string]any, []any:
			ok = false
		}
		if !ok {
			return nil, fmt.Errorf("%q is invalid; allowed: a list of strings", raw)
		}
		out[i] = s
	}
	return out, nil
}

// stringMap takes a JSON object of names and plain values (numbers and booleans in their text form).
func stringMap(field func(*Config) *map[string]string) setter {
	return setter{KindMap, func(c *Config, raw string) error {
		var in map[string]any
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		err := dec.Decode(&in)
		out := make(map[string]string, len(in))
		for name, v := range in {
			s, set, rawErr := RawValue(v)
			if _, nested := v.(map[string]any); nested || !set || rawErr != nil {
				err = fmt.Errorf("%s is not a plain value", name)
			} else if _, isList := v.([]any); isList {
				err = fmt.Errorf("%s is not a plain value", name)
			}
			out[name] = s
		}
		if err != nil {
			return fmt.Errorf("is invalid (%v); allowed: an object of names and plain values (set one with `pulumi config set --path 'KEY.NAME' VALUE`)", err)
		}
		*field(c) = out
		return nil
	}}
}

// Accounts are the accounts, the admin first.
func (c *Config) Accounts() []string { return slices.Clone(c.AccountNames) }
