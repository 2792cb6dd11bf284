// Package redis runs the registry's blob-descriptor cache: a password-protected, memory-only Redis
// that evicts least-recently-used keys (the registry sets no TTLs), reachable only from its clients.
package redis

import (
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
)

const (
	// Port is the Redis port of the Service.
	Port = 6379
	// PasswordKey is the key of the password in the Secret.
	PasswordKey = "password"
	confKey     = "redis.conf"
	confDir     = "/etc/redis"
	// uid of the redis user in the official images.
	uid = 999
)

// RedisArgs configures the cache.
type RedisArgs struct {
	// Required: namespace of every object.
	Namespace pulumi.StringInput
	// Optional: defaults to "redis:7.0.15-alpine".
	Image string
	// Optional: defaults to "64mb". Redis maxmemory (redis.conf units).
	MaxMemory string
	// Optional: defaults to 64 MiB. MaxMemory in bytes; sizes the container's memory limit.
	MaxMemoryBytes int64
	// Optional: defaults to "50m".
	CPURequest string
	// Optional: defaults to "96Mi".
	MemoryRequest string
	// Required: label selectors of the pods allowed to connect (the NetworkPolicy admits only these).
	ClientSelectors []map[string]string

	memoryLimit string // derived by withDefaults
}

// Redis is the cache Deployment, its Service, password Secret and NetworkPolicy.
type Redis struct {
	pulumi.ResourceState

	// Address is host:port of the Service inside the cluster.
	Address pulumi.StringOutput `pulumi:"address"`
	// ServiceName names the Service (the host part of Address).
	ServiceName pulumi.StringOutput `pulumi:"serviceName"`
	// Password is the generated password (secret).
	Password pulumi.StringOutput `pulumi:"password"`
	// SecretName names the Secret holding PasswordKey.
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
	if out.Image == "" {
		out.Image = "redis:7.0.15-alpine"
	}
	if out.MaxMemory == "" {
		out.MaxMemory, out.MaxMemoryBytes = "64mb", 64<<20
	}
	if out.MaxMemoryBytes == 0 {
		return nil, fmt.Errorf("redis: MaxMemoryBytes must be set with MaxMemory %q", out.MaxMemory)
	}
	if out.CPURequest == "" {
		out.CPURequest = "50m"
	}
	if out.MemoryRequest == "" {
		out.MemoryRequest = "96Mi"
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

	// Alphanumeric only: the password goes into redis.conf and client URLs unquoted.
	password, err := random.NewRandomPassword(ctx, name+"-password", &random.RandomPasswordArgs{
		Length: pulumi.Int(32), Special: pulumi.Bool(false),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("redis: password: %w", err)
	}
	// The password lives in redis.conf, never on a command line where `ps` or the pod spec shows it.
	conf := password.Result.ApplyT(func(pw string) string { return Conf(a.MaxMemory, pw) }).(pulumi.StringOutput)
	secret, err := corev1.NewSecret(ctx, name, &corev1.SecretArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: kube.StringMap(labels)},
		Type:     pulumi.String("Opaque"),
		StringData: pulumi.StringMap{
			PasswordKey: password.Result,
			confKey:     pulumi.ToSecret(conf).(pulumi.StringOutput),
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("redis: secret: %w", err)
	}

	deployment, err := appsv1.NewDeployment(ctx, name, &appsv1.DeploymentArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: kube.StringMap(labels)},
		Spec: &appsv1.DeploymentSpecArgs{
			Replicas: pulumi.Int(1),
			// A cache: a short gap between the old and the new pod only costs cache misses.
			Strategy: &appsv1.DeploymentStrategyArgs{Type: pulumi.String("Recreate")},
			Selector: &metav1.LabelSelectorArgs{MatchLabels: kube.StringMap(selector)},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{
					Labels: kube.StringMap(labels),
					// Rolls the pod when the password or maxmemory changes.
					Annotations: pulumi.StringMap{"checksum/config": kube.Checksum(conf)},
				},
				Spec: PodSpec(secret.Metadata.Name().Elem(), a),
			},
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

// Conf renders redis.conf: a bounded LRU cache with no persistence, password required.
func Conf(maxMemory, password string) string {
	return strings.Join([]string{
		"bind * -::*",
		fmt.Sprintf("port %d", Port),
		"protected-mode yes",
		"requirepass " + password,
		"maxmemory " + maxMemory,
		"maxmemory-policy allkeys-lru",
		`save ""`,
		"appendonly no",
		"dir /data",
		"",
	}, "\n")
}

// PodSpec is the Redis pod: non-root, read-only root filesystem, probes that authenticate.
func PodSpec(secretName pulumi.StringInput, a *RedisArgs) *corev1.PodSpecArgs {
	// A ping with the password: an unauthenticated ping would pass even if auth were broken.
	probe := func(initialDelay int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			Exec: &corev1.ExecActionArgs{Command: pulumi.ToStringArray([]string{
				"sh", "-c", "redis-cli -h 127.0.0.1 -p " + fmt.Sprint(Port) + " ping | grep -q PONG",
			})},
			InitialDelaySeconds: pulumi.Int(initialDelay),
			PeriodSeconds:       pulumi.Int(10),
			TimeoutSeconds:      pulumi.Int(3),
			FailureThreshold:    pulumi.Int(3),
		}
	}
	return &corev1.PodSpecArgs{
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
				// redis-cli reads it: probes and operators authenticate without a password argument.
				Name: pulumi.String("REDISCLI_AUTH"),
				ValueFrom: &corev1.EnvVarSourceArgs{SecretKeyRef: &corev1.SecretKeySelectorArgs{
					Name: secretName, Key: pulumi.String(PasswordKey),
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
