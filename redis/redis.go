// Package redis runs the registry's blob-descriptor cache: a memory-only Redis that evicts
// least-recently-used keys (the registry sets no TTLs), reachable only from its clients, with one
// least-privilege ACL user per client role and the default user disabled.
package redis

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/placement"
)

const (
	// Port is the Redis port of the Service.
	Port = 6379
	// Users of the ACL, and the Secret keys of their passwords. The registry's key keeps its old
	// name, so that existing stacks keep their password.
	RegistryUser     = "registry"
	PasswordKey      = "password"
	FlushUser        = "gc"
	FlushPasswordKey = "gc-password"
	probeUser        = "probe"
	probePasswordKey = "probe-password"
	confKey          = "redis.conf"
	confDir          = "/etc/redis"
	// uid of the redis user in the official images.
	uid = 999
)

// RedisArgs configures the cache.
type RedisArgs struct {
	// Required: namespace of every object.
	Namespace pulumi.StringInput
	// Required: a pinned Redis image, 6.2 or later (ACL users).
	Image string
	// Required: Redis maxmemory (redis.conf units).
	MaxMemory string
	// Required: MaxMemory in bytes (MaxMemoryBytes); sizes the container's memory limit.
	MaxMemoryBytes int64
	// Required: Kubernetes quantity.
	CPURequest string
	// Required: Kubernetes quantity (the limit is derived from MaxMemoryBytes).
	MemoryRequest string
	// Required: label selectors of the pods allowed to connect (the NetworkPolicy admits only these).
	ClientSelectors []map[string]string
	// Optional: defaults to false. True when a client of RegistryUser uses a database other than 0
	// (the mirrors): only then may that user SELECT.
	SelectDatabases bool
	// Optional: nil adds nothing. Where the pod may run, its priority class, extra pod labels and
	// annotations, and image pull secrets.
	Placement *placement.Spec

	memoryLimit string // derived by withDefaults
}

// Redis is the cache Deployment, its Service, password Secret and NetworkPolicy.
type Redis struct {
	pulumi.ResourceState

	// Address is host:port of the Service inside the cluster.
	Address pulumi.StringOutput `pulumi:"address"`
	// ServiceName names the Service (the host part of Address).
	ServiceName pulumi.StringOutput `pulumi:"serviceName"`
	// Password is the generated password of RegistryUser (secret).
	Password pulumi.StringOutput `pulumi:"password"`
	// SecretName names the Secret holding PasswordKey (RegistryUser) and FlushPasswordKey (FlushUser).
	SecretName pulumi.StringOutput `pulumi:"secretName"`
	// DeploymentName names the Redis Deployment.
	DeploymentName pulumi.StringOutput `pulumi:"deploymentName"`
}

func (a *RedisArgs) withDefaults() (*RedisArgs, error) {
	out := *a
	if out.Namespace == nil {
		return nil, fmt.Errorf("redis: Namespace is required")
	}
	if len(out.ClientSelectors) == 0 {
		return nil, fmt.Errorf("redis: ClientSelectors is required (nobody could connect)")
	}
	if errs := out.Placement.Validate("placement"); len(errs) > 0 {
		return nil, fmt.Errorf("redis: %w", errors.Join(errs...))
	}
	// No defaults here: the one table of defaults is stackconfig's (registrystack's args).
	if out.Image == "" || out.MaxMemory == "" || out.CPURequest == "" || out.MemoryRequest == "" {
		return nil, fmt.Errorf("redis: Image, MaxMemory, CPURequest and MemoryRequest are required")
	}
	if out.MaxMemoryBytes == 0 {
		return nil, fmt.Errorf("redis: MaxMemoryBytes must be set with MaxMemory %q", out.MaxMemory)
	}
	limit, err := MemoryLimit(out.MaxMemoryBytes, out.MemoryRequest)
	if err != nil {
		return nil, err
	}
	out.memoryLimit = limit
	return &out, nil
}

// NewRedis registers the cache.
func NewRedis(ctx *pulumi.Context, name string, args *RedisArgs, opts ...pulumi.ResourceOption) (*Redis, error) {
	a, err := args.withDefaults()
	if err != nil {
		return nil, err
	}
	comp := &Redis{}
	if err := ctx.RegisterComponentResource("registry-stack:index:Redis", name, comp, opts...); err != nil {
		return nil, fmt.Errorf("redis: register component %q: %w", name, err)
	}
	parent := pulumi.Parent(comp)
	labels := PodLabels(name)
	selector := kube.Selector("redis", name)

	// Alphanumeric only: passwords go into client configs and redis-cli's environment unquoted.
	newPassword := func(suffix string) (*random.RandomPassword, error) {
		pw, err := random.NewRandomPassword(ctx, name+suffix, &random.RandomPasswordArgs{
			Length: pulumi.Int(32), Special: pulumi.Bool(false),
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("redis: password %s: %w", name+suffix, err)
		}
		return pw, nil
	}
	password, err := newPassword("-password")
	if err != nil {
		return nil, err
	}
	flushPassword, err := newPassword("-gc-password")
	if err != nil {
		return nil, err
	}
	probePassword, err := newPassword("-probe-password")
	if err != nil {
		return nil, err
	}
	// redis.conf holds only SHA-256 hashes of the passwords; it stays in the Secret all the same.
	conf := pulumi.All(password.Result, flushPassword.Result, probePassword.Result).ApplyT(func(v []any) string {
		return Conf(a.MaxMemory, Users(v[0].(string), v[1].(string), v[2].(string), a.SelectDatabases))
	}).(pulumi.StringOutput)
	secret, err := corev1.NewSecret(ctx, name, &corev1.SecretArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: kube.StringMap(labels)},
		Type:     pulumi.String("Opaque"),
		StringData: pulumi.StringMap{
			PasswordKey:      password.Result,
			FlushPasswordKey: flushPassword.Result,
			probePasswordKey: probePassword.Result,
			confKey:          pulumi.ToSecret(conf).(pulumi.StringOutput),
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("redis: secret: %w", err)
	}

	podSpec, err := PodSpec(secret.Metadata.Name().Elem(), a)
	if err != nil {
		return nil, err
	}
	podMeta := &metav1.ObjectMetaArgs{
		Labels: kube.StringMap(labels),
		// Rolls the pod when a password, an ACL rule or maxmemory changes.
		Annotations: pulumi.StringMap{kube.ChecksumAnnotation: kube.Checksum(conf)},
	}
	if err := placement.ApplyPodMetadata(podMeta, a.Placement); err != nil {
		return nil, fmt.Errorf("redis: pod template: %w", err)
	}
	deployment, err := appsv1.NewDeployment(ctx, name, &appsv1.DeploymentArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: kube.StringMap(labels)},
		Spec: &appsv1.DeploymentSpecArgs{
			Replicas: pulumi.Int(1),
			// A cache: a short gap between the old and the new pod only costs cache misses.
			Strategy: &appsv1.DeploymentStrategyArgs{Type: pulumi.String("Recreate")},
			Selector: &metav1.LabelSelectorArgs{MatchLabels: kube.StringMap(selector)},
			Template: &corev1.PodTemplateSpecArgs{Metadata: podMeta, Spec: podSpec},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("redis: deployment: %w", err)
	}

	service, err := corev1.NewService(ctx, name, &corev1.ServiceArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: kube.StringMap(labels)},
		Spec: &corev1.ServiceSpecArgs{
			Type:     pulumi.String("ClusterIP"),
			Selector: kube.StringMap(selector),
			Ports: corev1.ServicePortArray{&corev1.ServicePortArgs{
				Name: pulumi.String("redis"), Port: pulumi.Int(Port), TargetPort: pulumi.String("redis"),
			}},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("redis: service: %w", err)
	}

	if _, err := networkingv1.NewNetworkPolicy(ctx, name, &networkingv1.NetworkPolicyArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: kube.StringMap(labels)},
		Spec:     NetworkPolicySpec(selector, a.ClientSelectors),
	}, parent); err != nil {
		return nil, fmt.Errorf("redis: network policy: %w", err)
	}

	comp.ServiceName = service.Metadata.Name().Elem()
	comp.Address = pulumi.Sprintf("%s:%d", comp.ServiceName, Port)
	comp.Password = password.Result
	comp.SecretName = secret.Metadata.Name().Elem()
	comp.DeploymentName = deployment.Metadata.Name().Elem()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"address":        comp.Address,
		"serviceName":    comp.ServiceName,
		"password":       comp.Password,
		"secretName":     comp.SecretName,
		"deploymentName": comp.DeploymentName,
	}); err != nil {
		return nil, fmt.Errorf("redis: register outputs: %w", err)
	}
	return comp, nil
}

// PodLabels are the labels of the Redis pods of the instance name.
func PodLabels(name string) map[string]string {
	return kube.Labels("redis", name, "cache")
}

// MemoryLimit is the container's memory limit: maxmemory plus headroom for Redis' own structures
// and fragmentation (an OOM kill empties the cache), and never below the request (Kubernetes
// rejects a limit under the request).
func MemoryLimit(maxMemoryBytes int64, memoryRequest string) (string, error) {
	req, err := resource.ParseQuantity(memoryRequest)
	if err != nil {
		return "", fmt.Errorf("redis: memory request %q: %w", memoryRequest, err)
	}
	limitBytes := max(maxMemoryBytes+maxMemoryBytes/4+32<<20, req.Value())
	return fmt.Sprintf("%dMi", (limitBytes+(1<<20)-1)>>20), nil
}

// User is one ACL user: its name, password and rules (after "on").
type User struct {
	Name, Password string
	Rules          []string
}

// registryCommands are the commands distribution v3.1.2's blob-descriptor cache sends
// (registry/storage/cache/redis: HMGET/HGET/SISMEMBER to look up, HMSET/HSETNX/HSET/SADD to store,
// MULTI/SREM/DEL/HDEL/EXEC to clear), plus what go-redis sends on connect (HELLO, and PING from
// distribution's OnConnect). CLIENT SETINFO is switched off in the registry's config instead.
var registryCommands = []string{"ping", "hello", "hget", "hmget", "hset", "hmset", "hsetnx", "hdel",
	"sismember", "sadd", "srem", "del", "multi", "exec", "discard"}

// Users are the ACL users: the registry (and mirrors) may only run the cache's commands on its
// own keys, GC may only empty database 0 (no SELECT: a new connection is on 0), the probes may
// only PING. Everything else, scripting, CONFIG, KEYS and FLUSHALL included, is refused.
func Users(registryPassword, flushPassword, probePassword string, selectDatabases bool) []User {
	// rules starts from nothing (no keys, no channels, no command) and allows keys and commands.
	rules := func(keys []string, cmds ...string) []string {
		out := append([]string{"resetkeys", "resetchannels"}, keys...)
		out = append(out, "-@all")
		for _, c := range cmds {
			out = append(out, "+"+c)
		}
		return out
	}
	cmds := registryCommands
	if selectDatabases {
		cmds = append(append([]string{}, cmds...), "select")
	}
	// The keys distribution writes: blobs::<digest> and repository::<name>::blobs[::<digest>].
	registryKeys := []string{"~blobs::*", "~repository::*"}
	return []User{
		{Name: RegistryUser, Password: registryPassword, Rules: rules(registryKeys, cmds...)},
		{Name: FlushUser, Password: flushPassword, Rules: rules(nil, "ping", "hello", "flushdb")},
		{Name: probeUser, Password: probePassword, Rules: rules(nil, "ping", "hello")},
	}
}

// Conf renders redis.conf: a bounded LRU cache with no persistence, the default user disabled and
// the given users, whose passwords appear only as SHA-256 hashes.
func Conf(maxMemory string, users []User) string {
	lines := []string{
		"bind * -::*",
		fmt.Sprintf("port %d", Port),
		"protected-mode yes",
		// No password, no command: a client that does not authenticate as one of the users below
		// gets NOAUTH for everything.
		"user default off resetkeys resetchannels -@all",
	}
	for _, u := range users {
		sum := sha256.Sum256([]byte(u.Password))
		lines = append(lines, fmt.Sprintf("user %s on #%s %s", u.Name, hex.EncodeToString(sum[:]), strings.Join(u.Rules, " ")))
	}
	lines = append(lines,
		"maxmemory "+maxMemory,
		"maxmemory-policy allkeys-lru",
		`save ""`,
		"appendonly no",
		"dir /data",
		"",
	)
	return strings.Join(lines, "\n")
}

// PodSpec is the Redis pod: non-root, read-only root filesystem, probes that authenticate; with
// a.Placement added.
func PodSpec(secretName pulumi.StringInput, a *RedisArgs) (*corev1.PodSpecArgs, error) {
	// An authenticated ping: with the default user off, an unauthenticated one gets NOAUTH, so a
	// PONG proves both that Redis answers and that the ACL file loaded.
	probe := func(initialDelay int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			Exec: &corev1.ExecActionArgs{Command: pulumi.ToStringArray([]string{
				"sh", "-c", "redis-cli -h 127.0.0.1 -p " + fmt.Sprint(Port) + " --user " + probeUser + " ping | grep -q PONG",
			})},
			InitialDelaySeconds: pulumi.Int(initialDelay),
			PeriodSeconds:       pulumi.Int(10),
			TimeoutSeconds:      pulumi.Int(3),
			FailureThreshold:    pulumi.Int(3),
		}
	}
	spec := &corev1.PodSpecArgs{
		AutomountServiceAccountToken: pulumi.Bool(false),
		EnableServiceLinks:           pulumi.Bool(false),
		SecurityContext:              kube.PodSecurityContext(uid),
		Containers: corev1.ContainerArray{&corev1.ContainerArgs{
			Name:            pulumi.String("redis"),
			Image:           pulumi.String(a.Image),
			ImagePullPolicy: pulumi.String("IfNotPresent"),
			Command:         pulumi.ToStringArray([]string{"redis-server", confDir + "/" + confKey}),
			Ports: corev1.ContainerPortArray{&corev1.ContainerPortArgs{
				Name: pulumi.String("redis"), ContainerPort: pulumi.Int(Port),
			}},
			Env: corev1.EnvVarArray{&corev1.EnvVarArgs{
				// redis-cli reads it: the probes authenticate as the probe user, which may only PING.
				Name: pulumi.String("REDISCLI_AUTH"),
				ValueFrom: &corev1.EnvVarSourceArgs{SecretKeyRef: &corev1.SecretKeySelectorArgs{
					Name: secretName, Key: pulumi.String(probePasswordKey),
				}},
			}},
			ReadinessProbe:  probe(2),
			LivenessProbe:   probe(15),
			Resources:       kube.Resources(a.CPURequest, a.MemoryRequest, a.memoryLimit),
			SecurityContext: kube.ContainerSecurityContext(),
			VolumeMounts: corev1.VolumeMountArray{
				&corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String(confDir), ReadOnly: pulumi.Bool(true)},
				&corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String("/data")},
			},
		}},
		Volumes: corev1.VolumeArray{
			&corev1.VolumeArgs{Name: pulumi.String("config"), Secret: &corev1.SecretVolumeSourceArgs{
				SecretName: secretName,
				Items: corev1.KeyToPathArray{&corev1.KeyToPathArgs{
					Key: pulumi.String(confKey), Path: pulumi.String(confKey),
				}},
				DefaultMode: pulumi.Int(0o440),
			}},
			&corev1.VolumeArgs{Name: pulumi.String("data"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{}},
		},
	}
	// The cache has no scheduling rules of its own.
	if err := placement.ApplyPodSpec(spec, nil, a.Placement); err != nil {
		return nil, fmt.Errorf("redis: pod spec: %w", err)
	}
	return spec, nil
}

// NetworkPolicySpec admits traffic to the Redis port only from pods carrying one of the client label sets.
func NetworkPolicySpec(redisSelector map[string]string, clients []map[string]string) *networkingv1.NetworkPolicySpecArgs {
	var peers networkingv1.NetworkPolicyPeerArray
	for _, c := range clients {
		peers = append(peers, &networkingv1.NetworkPolicyPeerArgs{
			PodSelector: &metav1.LabelSelectorArgs{MatchLabels: kube.StringMap(c)},
		})
	}
	return &networkingv1.NetworkPolicySpecArgs{
		PodSelector: &metav1.LabelSelectorArgs{MatchLabels: kube.StringMap(redisSelector)},
		PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{&networkingv1.NetworkPolicyIngressRuleArgs{
			From: peers,
			Ports: networkingv1.NetworkPolicyPortArray{&networkingv1.NetworkPolicyPortArgs{
				Protocol: pulumi.String("TCP"), Port: pulumi.Int(Port),
			}},
		}},
	}
}
