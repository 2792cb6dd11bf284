// Package registry runs CNCF distribution v3: config.yml and its auth files in a Secret, a Deployment of
// replicas that share storage, the Redis cache and one http.secret, a Service and a
// PodDisruptionBudget.
package registry

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/regstack/registry-stack/auth"
	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/placement"
	"github.com/regstack/registry-stack/storage"
)

const (
	// ContainerName is the registry container of every pod (GC patches its env by this name).
	ContainerName = "registry"
	// UID runs the registry; volumes must be writable by it.
	UID = 1000
	// ConfigKey is config.yml's key in the config Secret; the auth mode adds its own files.
	ConfigKey = "config.yml"
	// preStopSeconds + http.draintimeout (25 s) stay below the grace period.
	preStopSeconds                = 8
	terminationGracePeriodSeconds = 45
)

// RegistryArgs configures the registry.
type RegistryArgs struct {
	// Required: namespace of every object.
	Namespace pulumi.StringInput
	// Required: where the images are (volumes, driver config, credentials, placement).
	Storage *storage.Backend
	// Required. Must be distribution v3 (config at /etc/distribution).
	Image string
	// Required (at least 1) unless Autoscaling is set; a proxy runs one.
	Replicas int
	// Required unless an anonymous proxy. The accounts, each with its own generated password; the
	// first is the primary account (Username/Password outputs).
	Accounts []string
	// Optional: the zero value is htpasswd. How the accounts are checked.
	Auth auth.Spec
	// Required with Auth.Token: the DNS name clients use (the token realm's host).
	Hostname string
	// Required: error, warn, info or debug.
	LogLevel string
	// Required: ClusterIP, NodePort or LoadBalancer.
	ServiceType string
	// Optional: defaults to false. When true, blob descriptors are cached in Redis at RedisAddr.
	CacheEnabled bool
	// Required when CacheEnabled: host:port of Redis.
	RedisAddr pulumi.StringInput
	// Required when CacheEnabled: the Redis ACL user and its password (secret).
	RedisUsername string
	RedisPassword pulumi.StringInput
	// Required: Kubernetes quantities (no CPU limit is set).
	CPURequest    string
	MemoryRequest string
	MemoryLimit   string
	// Optional: defaults to 0. The Redis database of the cache: instances sharing one Redis each
	// use their own (a shared one would tell one instance that blobs of another exist).
	RedisDB int
	// Optional: nil is a registry of its own images. Set, the instance is a pull-through cache of
	// one upstream: pulls only, one replica.
	Proxy *ProxyArgs
	// Optional: nil keeps Replicas. Set, an autoscaler owns the replica count (Replicas unused).
	Autoscaling *Autoscaling
	// Optional: nil adds nothing. Where the pods may run (added to the stack's own affinity), their
	// priority class, extra pod labels and annotations, and image pull secrets.
	Placement *placement.Spec
	// Optional: environment variables added to the registry container (HTTP_PROXY, OTEL_* ...);
	// see ValidateExtraEnv for the names refused.
	ExtraEnv []EnvVar
	// Optional: defaults to false. LocalConfig adds the loopback registry's config
	// (LocalConfigKey) to the config Secret, for GC's retention step; the pods never read it.
	LocalConfig bool
}

// PatchForceAnnotation makes pulumi-kubernetes apply the Deployment with force (server-side apply).
const PatchForceAnnotation = "pulumi.com/patchForce"

// ProxyArgs makes the registry a pull-through cache (distribution's proxy mode).
type ProxyArgs struct {
	// Required: the upstream's https:// URL.
	RemoteURL string
	// Optional: upstream credentials (Password is a secret); empty pulls anonymously.
	Username string
	Password pulumi.StringInput
	// Required: how long cached content stays after it was last fetched ("0": forever).
	TTL string
	// Optional: PEM CA certificates added to the system roots for TLS to the upstream.
	CABundlePEM string
	// Optional: defaults to false. True serves pulls without credentials (no accounts).
	Anonymous bool
}

// UpstreamCAFile is where a mirror's upstream CA bundle is mounted: a file in the directory Go
// reads its roots from, beside the image's own bundle (SSL_CERT_FILE would replace that).
const UpstreamCAFile = "/etc/ssl/certs/registry-stack-upstream-ca.pem"

// upstreamCAKey is the config Secret's key of the upstream CA bundle.
const upstreamCAKey = "upstream-ca.pem"

// Registry is the registry Deployment and everything it needs.
type Registry struct {
	pulumi.ResourceState

	// DeploymentName names the registry Deployment.
	DeploymentName pulumi.StringOutput `pulumi:"deploymentName"`
	// ServiceName names the Service in front of the pods (port Port).
	ServiceName pulumi.StringOutput `pulumi:"serviceName"`
	// ConfigSecretName names the Secret with config.yml and the auth mode's files.
	ConfigSecretName pulumi.StringOutput `pulumi:"configSecretName"`
	// Username is the primary account.
	Username pulumi.StringOutput `pulumi:"username"`
	// Password is its generated password (secret).
	Password pulumi.StringOutput `pulumi:"password"`
	// Passwords maps every account to its generated password (secret).
	Passwords pulumi.StringMapOutput `pulumi:"passwords"`
	// AuthRoute is a path of the registry's hostnames the route must send to the auth mode's
	// server (token mode's realm); nil: none.
	AuthRoute *kube.Path
}

func (a *RegistryArgs) withDefaults() (*RegistryArgs, error) {
	out := *a
	if out.Namespace == nil || out.Storage == nil {
		return nil, fmt.Errorf("registry: Namespace and Storage are required")
	}
	if out.CacheEnabled && (out.RedisAddr == nil || out.RedisUsername == "" || out.RedisPassword == nil) {
		return nil, fmt.Errorf("registry: RedisAddr, RedisUsername and RedisPassword are required when CacheEnabled")
	}
	// No defaults here: the one table of defaults is stackconfig's (registrystack's args).
	var missing []string
	for field, v := range map[string]string{"Image": out.Image, "LogLevel": out.LogLevel, "ServiceType": out.ServiceType,
		"CPURequest": out.CPURequest, "MemoryRequest": out.MemoryRequest, "MemoryLimit": out.MemoryLimit} {
		if v == "" {
			missing = append(missing, field)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("registry: %s required", strings.Join(missing, ", "))
	}
	if out.Replicas < 1 && out.Autoscaling == nil {
		return nil, fmt.Errorf("registry: Replicas must be at least 1, got %d", out.Replicas)
	}
	if errs := append(out.Placement.Validate("placement"), ValidateExtraEnv("extraEnv", false, out.ExtraEnv, out.Storage)...); len(errs) > 0 {
		return nil, fmt.Errorf("registry: %w", errors.Join(errs...))
	}
	if as := out.Autoscaling; as != nil && (as.MinReplicas < 1 || as.MaxReplicas < as.MinReplicas || (as.Resources == nil) == (as.KEDA == nil)) {
		return nil, fmt.Errorf("registry: Autoscaling needs 1 <= MinReplicas <= MaxReplicas and one of Resources and KEDA, got %+v", *as)
	}
	if p := out.Proxy; p != nil {
		// The proxy's expiry scheduler keeps its state in one file on the store; replicas would
		// overwrite each other's, and content would expire late or never.
		if a.Replicas > 1 {
			return nil, fmt.Errorf("registry: a proxy runs one replica, got %d", a.Replicas)
		}
		out.Replicas = 1
		if out.Autoscaling != nil {
			return nil, fmt.Errorf("registry: a proxy runs one replica, it cannot autoscale")
		}
		if p.RemoteURL == "" || p.TTL == "" || (p.Username == "") != (p.Password == nil) {
			return nil, fmt.Errorf("registry: a proxy needs RemoteURL and TTL, and Username with Password or neither")
		}
		if p.Anonymous && len(out.Accounts) > 0 {
			return nil, fmt.Errorf("registry: an anonymous proxy has no accounts, got %q", out.Accounts)
		}
		// A proxy only serves pulls: every account is pull-only without a token server.
		if out.Auth.Token != nil {
			return nil, fmt.Errorf("registry: a proxy uses htpasswd (its accounts can only pull), not token auth")
		}
	}
	if out.Auth.Token != nil && out.Hostname == "" {
		return nil, fmt.Errorf("registry: token auth needs Hostname (the token realm's host)")
	}
	if len(out.Accounts) == 0 && !out.anonymous() {
		return nil, fmt.Errorf("registry: Accounts required (only an anonymous proxy has none)")
	}
	seen := map[string]bool{}
	for _, acct := range out.Accounts {
		if acct == "" || seen[acct] {
			return nil, fmt.Errorf("registry: account names must be non-empty and unique, got %q", out.Accounts)
		}
		seen[acct] = true
	}
	return &out, nil
}

// NewRegistry registers the registry.
func NewRegistry(ctx *pulumi.Context, name string, args *RegistryArgs, opts ...pulumi.ResourceOption) (*Registry, error) {
	a, err := args.withDefaults()
	if err != nil {
		return nil, err
	}
	comp := &Registry{}
	if err := ctx.RegisterComponentResource("registry-stack:index:Registry", name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registry: register component %q: %w", name, err)
	}
	parent := pulumi.Parent(comp)
	labels := kube.StringMap(a.podLabels(name))
	selector := kube.StringMap(PodSelector(name))

	accounts, err := auth.NewAccounts(ctx, name, a.Accounts, parent)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	// An anonymous proxy has no accounts and no auth section.
	var mode *auth.Mode
	if !a.anonymous() {
		modeArgs := auth.ModeArgs{ConfigDir: ConfigDir, Accounts: accounts, Namespace: a.Namespace, Hostname: a.Hostname, Placement: a.Placement}
		if mode, err = a.Auth.NewMode(ctx, name, modeArgs, parent); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	// One secret for every replica: upload state is HMAC-signed with it, and an upload's requests
	// land on different replicas.
	httpSecret, err := random.NewRandomPassword(ctx, name+"-http-secret", &random.RandomPasswordArgs{
		Length: pulumi.Int(64), Special: pulumi.Bool(false),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("registry: http secret: %w", err)
	}

	redisAddr, redisPassword := pulumi.String("").ToStringOutput(), pulumi.String("").ToStringOutput()
	if a.CacheEnabled {
		redisAddr, redisPassword = a.RedisAddr.ToStringOutput(), a.RedisPassword.ToStringOutput()
	}
	upstreamPassword := pulumi.String("").ToStringOutput()
	if a.Proxy != nil && a.Proxy.Password != nil {
		upstreamPassword = a.Proxy.Password.ToStringOutput()
	}
	configs := pulumi.All(httpSecret.Result, redisAddr, redisPassword, upstreamPassword, a.Storage.Inputs.ToStringMapOutput()).ApplyT(func(v []any) ([]string, error) {
		in := ConfigInput{
			LogLevel:      a.LogLevel,
			Storage:       a.Storage.WithInputs(v[4].(map[string]string)),
			HTTPSecret:    v[0].(string),
			RedisAddr:     v[1].(string),
			RedisUsername: a.RedisUsername,
			RedisPassword: v[2].(string),
			RedisDB:       a.RedisDB,
			CacheEnabled:  a.CacheEnabled,
		}
		if mode != nil {
			in.Auth = mode.Section
		}
		if p := a.Proxy; p != nil {
			in.Proxy = &ProxyConfig{RemoteURL: p.RemoteURL, Username: p.Username, Password: v[3].(string), TTL: p.TTL}
		}
		own, err := RenderConfig(in)
		if err != nil || !a.LocalConfig {
			return []string{own}, err
		}
		in.Local = true
		local, err := RenderConfig(in)
		return []string{own, local}, err
	}).(pulumi.StringArrayOutput)
	rendered := configs.Index(pulumi.Int(0))
	configSecret, err := corev1.NewSecret(ctx, name+"-config", &corev1.SecretArgs{
		Metadata:   &metav1.ObjectMetaArgs{Name: pulumi.String(name + "-config"), Namespace: a.Namespace, Labels: labels},
		Type:       pulumi.String("Opaque"),
		StringData: configData(a, configs, mode),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("registry: config secret: %w", err)
	}

	serviceAccount := pulumi.String("").ToStringOutput()
	if len(a.Storage.ServiceAccountAnnotations) > 0 {
		// The pods' cloud identity for the store (IRSA, EKS Pod Identity, ...). Its webhook
		// mounts its own token; the Kubernetes API token stays unmounted.
		sa, err := corev1.NewServiceAccount(ctx, name, &corev1.ServiceAccountArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(name), Namespace: a.Namespace, Labels: labels,
				Annotations: pulumi.ToStringMap(a.Storage.ServiceAccountAnnotations),
			},
			AutomountServiceAccountToken: pulumi.Bool(false),
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("registry: service account: %w", err)
		}
		serviceAccount = sa.Metadata.Name().Elem()
	}

	podInputs := rendered
	if mode != nil {
		for _, key := range slices.Sorted(maps.Keys(mode.Files)) {
			podInputs = pulumi.Sprintf("%s\n%s", podInputs, mode.Files[key])
		}
	}
	if a.Proxy != nil && a.Proxy.CABundlePEM != "" {
		// Mounted by subPath, which never updates in place: a new bundle must restart the pod.
		podInputs = pulumi.Sprintf("%s\n%s", podInputs, a.Proxy.CABundlePEM)
	}
	if a.Storage.Revision != nil {
		// A new S3 key or CA bundle reaches the pods only when they restart.
		podInputs = pulumi.Sprintf("%s\n%s", podInputs, a.Storage.Revision)
	}
	checksum := kube.Checksum(podInputs)
	// With an autoscaler the Deployment has no count of ours: a count in the applied spec would
	// reset the autoscaler's on every `pulumi up` (and show as a diff).
	var replicas pulumi.IntPtrInput = pulumi.Int(a.Replicas)
	if a.Autoscaling != nil {
		replicas = nil
	}
	podSpec, err := PodSpec(a, configSecret.Metadata.Name().Elem(), serviceAccount, PodSelector(name))
	if err != nil {
		return nil, err
	}
	var modeDeps []pulumi.Resource
	if mode != nil {
		modeDeps = mode.DependsOn
	}
	podMeta := &metav1.ObjectMetaArgs{Labels: labels, Annotations: pulumi.StringMap{kube.ChecksumAnnotation: checksum}}
	if err := placement.ApplyPodMetadata(podMeta, a.Placement); err != nil {
		return nil, fmt.Errorf("registry: pod template: %w", err)
	}
	deployment, err := appsv1.NewDeployment(ctx, name, &appsv1.DeploymentArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String(name), Namespace: a.Namespace, Labels: labels,
			// Force the stack's own fields on conflict: an HPA's scale writes take spec.replicas
			// over, and without force the `up` that gives the count back to the stack (autoscaling
			// removed) fails on that conflict. Fields only others set (GC's read-only label and
			// env) are not the stack's and stay theirs.
			Annotations: pulumi.StringMap{PatchForceAnnotation: pulumi.String("true")},
		},
		Spec: &appsv1.DeploymentSpecArgs{
			Replicas: replicas,
			Selector: &metav1.LabelSelectorArgs{MatchLabels: selector},
			// Never below the wanted count: a new pod must be Ready before an old one goes.
			Strategy: &appsv1.DeploymentStrategyArgs{
				Type: pulumi.String("RollingUpdate"),
				RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{
					MaxUnavailable: pulumi.Int(0), MaxSurge: pulumi.Int(1),
				},
			},
			Template: &corev1.PodTemplateSpecArgs{Metadata: podMeta, Spec: podSpec},
		},
	}, parent, pulumi.DependsOn(modeDeps))
	if err != nil {
		return nil, fmt.Errorf("registry: deployment: %w", err)
	}

	if mode != nil {
		comp.AuthRoute = mode.Route
	}

	service, err := corev1.NewService(ctx, name, &corev1.ServiceArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: labels},
		Spec: &corev1.ServiceSpecArgs{
			Type:     pulumi.String(a.ServiceType),
			Selector: selector,
			// Only the API port: the debug port (metrics, pprof) has no auth.
			Ports: corev1.ServicePortArray{&corev1.ServicePortArgs{
				Name: pulumi.String("http"), Port: pulumi.Int(Port), TargetPort: pulumi.String("http"),
			}},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("registry: service: %w", err)
	}

	// Where NetworkPolicy is enforced, only the API port is reachable: the debug port serves pprof,
	// expvar and metrics without auth (the monitoring package's policy admits the scrapers alone).
	if _, err := networkingv1.NewNetworkPolicy(ctx, name, &networkingv1.NetworkPolicyArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: labels},
		Spec:     kube.PortOnlyPolicy(selector, Port, false),
	}, parent); err != nil {
		return nil, fmt.Errorf("registry: network policy: %w", err)
	}

	if a.Autoscaling != nil {
		if err := newAutoscaler(ctx, name, a, labels, deployment.Metadata.Name().Elem(), parent); err != nil {
			return nil, err
		}
	}

	// One pod at a time may be evicted (a drain never blocks), whenever there can be more than one.
	if a.Replicas > 1 || (a.Autoscaling != nil && a.Autoscaling.MaxReplicas > 1) {
		if _, err := policyv1.NewPodDisruptionBudget(ctx, name, &policyv1.PodDisruptionBudgetArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: labels},
			Spec:     kube.OneAtATime(selector),
		}, parent); err != nil {
			return nil, fmt.Errorf("registry: pod disruption budget: %w", err)
		}
	}

	comp.DeploymentName = deployment.Metadata.Name().Elem()
	comp.ServiceName = service.Metadata.Name().Elem()
	comp.ConfigSecretName = configSecret.Metadata.Name().Elem()
	comp.Username, comp.Password = pulumi.String("").ToStringOutput(), pulumi.String("").ToStringOutput()
	if len(a.Accounts) > 0 {
		comp.Username = pulumi.String(a.Accounts[0]).ToStringOutput()
		comp.Password = accounts.Passwords[a.Accounts[0]].ToStringOutput()
	}
	comp.Passwords = pulumi.ToSecret(accounts.Passwords.ToStringMapOutput()).(pulumi.StringMapOutput)
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"deploymentName":   comp.DeploymentName,
		"serviceName":      comp.ServiceName,
		"configSecretName": comp.ConfigSecretName,
		"username":         comp.Username,
		"password":         comp.Password,
		"passwords":        comp.Passwords,
	}); err != nil {
		return nil, fmt.Errorf("registry: register outputs: %w", err)
	}
	return comp, nil
}

func (a *RegistryArgs) anonymous() bool { return a.Proxy != nil && a.Proxy.Anonymous }

// configData is the config Secret: config.yml, the auth mode's files and a mirror's upstream CA bundle.
func configData(a *RegistryArgs, configs pulumi.StringArrayOutput, mode *auth.Mode) pulumi.StringMap {
	data := pulumi.StringMap{
		ConfigKey: pulumi.ToSecret(configs.Index(pulumi.Int(0))).(pulumi.StringOutput),
	}
	if mode != nil {
		for key, content := range mode.Files {
			data[key] = pulumi.ToSecret(content).(pulumi.StringOutput)
		}
	}
	if a.Proxy != nil && a.Proxy.CABundlePEM != "" {
		data[upstreamCAKey] = pulumi.String(a.Proxy.CABundlePEM)
	}
	if a.LocalConfig {
		data[LocalConfigKey] = pulumi.ToSecret(configs.Index(pulumi.Int(1))).(pulumi.StringOutput)
	}
	return data
}

// PodLabels are the labels of the registry pods of the instance name.
func PodLabels(name string) map[string]string {
	return kube.Labels("registry", name, "registry")
}

// MirrorPodLabels are the labels of a mirror's pods: component mirror, so that nothing selecting
// the registry's pods (GC, NetworkPolicies, tests) takes a mirror for a replica.
func MirrorPodLabels(name string) map[string]string {
	return kube.Labels("registry", name, "mirror")
}

func (a *RegistryArgs) podLabels(name string) map[string]string {
	if a.Proxy != nil {
		return MirrorPodLabels(name)
	}
	return PodLabels(name)
}

// PodSelector selects the registry pods of the instance name.
func PodSelector(name string) map[string]string {
	return kube.Selector("registry", name)
}

// PodSpec is the registry pod with a.Placement added; serviceAccount "" is the namespace's default
// (no identity needed).
func PodSpec(a *RegistryArgs, configSecretName, serviceAccount pulumi.StringInput, selector map[string]string) (*corev1.PodSpecArgs, error) {
	volumes := corev1.VolumeArray{&corev1.VolumeArgs{Name: pulumi.String("config"), Secret: &corev1.SecretVolumeSourceArgs{
		SecretName: configSecretName, DefaultMode: pulumi.Int(0o440),
	}}}
	volumes = append(volumes, a.Storage.Volumes...)
	volumes = append(volumes, &corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{}})
	spec := &corev1.PodSpecArgs{
		// A Service named "registry" would inject REGISTRY_* variables, which the registry reads
		// as configuration overrides.
		EnableServiceLinks:            pulumi.Bool(false),
		AutomountServiceAccountToken:  pulumi.Bool(false),
		TerminationGracePeriodSeconds: pulumi.Int(terminationGracePeriodSeconds),
		SecurityContext:               kube.PodSecurityContext(UID),
		InitContainers:                a.Storage.InitContainers(a.Image, UID),
		Containers:                    corev1.ContainerArray{Container(a)},
		Volumes:                       volumes,
	}
	if len(a.Storage.ServiceAccountAnnotations) > 0 {
		spec.ServiceAccountName = serviceAccount
	}
	var own *placement.Affinity
	if a.Storage.CoLocate {
		// A ReadWriteOnce volume attaches to one node only.
		// The first replica matches its own term, so it schedules; the others follow it.
		own = &placement.Affinity{PodAffinity: &placement.PodAffinity{Required: []placement.PodAffinityTerm{{
			TopologyKey: "kubernetes.io/hostname", LabelSelector: &placement.LabelSelector{MatchLabels: selector},
		}}}}
	} else {
		// Shared storage (an object store, a ReadWriteMany claim): spread over nodes and zones so
		// one node or zone going takes at most its share. ScheduleAnyway: a preference, never a
		// reason to leave a replica pending (one-node clusters, nodes without zone labels).
		spread := func(key string) *corev1.TopologySpreadConstraintArgs {
			return &corev1.TopologySpreadConstraintArgs{
				MaxSkew:           pulumi.Int(1),
				TopologyKey:       pulumi.String(key),
				WhenUnsatisfiable: pulumi.String("ScheduleAnyway"),
				LabelSelector:     &metav1.LabelSelectorArgs{MatchLabels: kube.StringMap(selector)},
			}
		}
		spec.TopologySpreadConstraints = corev1.TopologySpreadConstraintArray{
			spread("kubernetes.io/hostname"), spread("topology.kubernetes.io/zone"),
		}
	}
	// The user's affinity terms join the stack's: a placement must never undo the co-location.
	if err := placement.ApplyPodSpec(spec, own, a.Placement); err != nil {
		return nil, fmt.Errorf("registry: pod spec: %w", err)
	}
	return spec, nil
}

// Container is the registry container: probes on / (200 unless a health check fails; /v2/ is 401
// with auth), liveness on the TCP port only, so a storage outage makes pods unready instead of
// restarting them in a loop.
func Container(a *RegistryArgs) *corev1.ContainerArgs {
	return &corev1.ContainerArgs{
		Name:            pulumi.String(ContainerName),
		Image:           pulumi.String(a.Image),
		ImagePullPolicy: pulumi.String("IfNotPresent"),
		Command:         pulumi.ToStringArray([]string{"registry", "serve", ConfigFile}),
		Env:             append(containerEnv(a.Storage), ExtraEnvVars(a.ExtraEnv)...),
		Ports: corev1.ContainerPortArray{
			&corev1.ContainerPortArgs{Name: pulumi.String("http"), ContainerPort: pulumi.Int(Port)},
			&corev1.ContainerPortArgs{Name: pulumi.String(DebugPortName), ContainerPort: pulumi.Int(DebugPort)},
		},
		// Every rolling restart (a config change, GC's read-only switch and back) waits for each
		// new pod's first successful probe, and the registry answers within a second of starting:
		// a probe every 2 s (not 5) shortens each rollout by several seconds. Five failures in a
		// row take a pod out after 10-15 s, about as long as three 5 s periods did, so a pod slowed
		// by load is not dropped sooner than before.
		ReadinessProbe: &corev1.ProbeArgs{
			HttpGet:          &corev1.HTTPGetActionArgs{Path: pulumi.String("/"), Port: pulumi.String("http")},
			PeriodSeconds:    pulumi.Int(2),
			TimeoutSeconds:   pulumi.Int(3),
			FailureThreshold: pulumi.Int(5),
		},
		LivenessProbe: &corev1.ProbeArgs{
			TcpSocket:           &corev1.TCPSocketActionArgs{Port: pulumi.String("http")},
			InitialDelaySeconds: pulumi.Int(10),
			PeriodSeconds:       pulumi.Int(10),
			FailureThreshold:    pulumi.Int(6),
		},
		// The registry stops accepting connections on SIGTERM, while Services and ingress
		// controllers still route to the pod until they see it terminating: keep serving for a few
		// seconds first, so rolling restarts (config changes, GC's read-only switch) drop nothing.
		Lifecycle: &corev1.LifecycleArgs{PreStop: &corev1.LifecycleHandlerArgs{
			Exec: &corev1.ExecActionArgs{Command: pulumi.ToStringArray([]string{"sleep", fmt.Sprint(preStopSeconds)})},
		}},
		Resources:       kube.Resources(a.CPURequest, a.MemoryRequest, a.MemoryLimit),
		SecurityContext: kube.ContainerSecurityContext(),
		VolumeMounts:    volumeMounts(a),
	}
}

// containerEnv is the registry container's own environment: the stack's and the storage's.
func containerEnv(backend *storage.Backend) corev1.EnvVarArray {
	env := corev1.EnvVarArray{
		// v3 exports traces to localhost:4318 by default and logs an error every few seconds.
		&corev1.EnvVarArgs{Name: pulumi.String("OTEL_TRACES_EXPORTER"), Value: pulumi.String("none")},
	}
	if backend != nil {
		env = append(env, backend.Env...)
	}
	return env
}

// EnvPath names entry i (called name) of extra environment in errors: path[i].name, or path.NAME
// when keyed (the list came from an object keyed by name, as the registry.env config path is).
func EnvPath(path string, keyed bool, i int, name string) string {
	if keyed {
		return path + "." + name
	}
	return fmt.Sprintf("%s[%d].name", path, i)
}

// ExtraEnvVars are env as container variables (GC's collector gets the registry's too).
func ExtraEnvVars(env []EnvVar) corev1.EnvVarArray {
	var out corev1.EnvVarArray
	for _, e := range env {
		out = append(out, &corev1.EnvVarArgs{Name: pulumi.String(e.Name), Value: pulumi.String(e.Value)})
	}
	return out
}

// ValidateExtraEnv lists the problems of extra environment variables for the registry container,
// each naming its path below path, the name and why: a name must be a valid variable name, given
// once, not one the container sets itself (the stack's own and backend's storage variables; nil
// backend: the stack's own only), and must not start with REGISTRY_. Distribution reads REGISTRY_*
// variables as overrides of config.yml (auth, storage, read-only mode...): they could switch off
// authentication or redirect storage unseen, and the stack's config must stay the one source.
//
// path names the list; an entry is path[i].name, or path.NAME when keyed is set (the list came from
// an object keyed by name, as the registry.env stack config path is).
func ValidateExtraEnv(path string, keyed bool, env []EnvVar, backend *storage.Backend) []error {
	own := map[string]bool{}
	for _, v := range containerEnv(backend) {
		// The stack builds its variables with plain names.
		if e, ok := v.(*corev1.EnvVarArgs); ok {
			if n, ok := e.Name.(pulumi.String); ok {
				own[string(n)] = true
			}
		}
	}
	var errs []error
	seen := map[string]bool{}
	for i, e := range env {
		at := EnvPath(path, keyed, i, e.Name)
		switch msgs := validation.IsEnvVarName(e.Name); {
		case len(msgs) > 0:
			errs = append(errs, fmt.Errorf("%s: %q is invalid: %s", at, e.Name, strings.Join(msgs, "; ")))
		case strings.HasPrefix(e.Name, "REGISTRY_"):
			errs = append(errs, fmt.Errorf("%s: %q is refused: distribution reads REGISTRY_* variables as overrides of its "+
				"config.yml, which the stack's config alone sets", at, e.Name))
		case own[e.Name]:
			errs = append(errs, fmt.Errorf("%s: %q is refused: the registry container sets it itself", at, e.Name))
		case seen[e.Name]:
			errs = append(errs, fmt.Errorf("%s: %q is given twice", at, e.Name))
		}
		seen[e.Name] = true
	}
	return errs
}

func volumeMounts(a *RegistryArgs) corev1.VolumeMountArray {
	mounts := corev1.VolumeMountArray{
		&corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String(ConfigDir), ReadOnly: pulumi.Bool(true)},
	}
	if a.Proxy != nil && a.Proxy.CABundlePEM != "" {
		// One file of the config Secret, added to the image's roots (see UpstreamCAFile).
		mounts = append(mounts, &corev1.VolumeMountArgs{
			Name: pulumi.String("config"), MountPath: pulumi.String(UpstreamCAFile), SubPath: pulumi.String(upstreamCAKey), ReadOnly: pulumi.Bool(true),
		})
	}
	mounts = append(mounts, a.Storage.Mounts...)
	return append(mounts, &corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")})
}
