// Package gc schedules the registry's garbage collection as a CronJob that is safe to run on a live
// registry:
//
//  1. maintenance.sh enter (kubectl): every replica restarts read-only; pulls keep working, pushes
//     get 405; it waits until no writable pod is left;
//  2. collect.sh (registry image): `registry garbage-collect --delete-untagged`, also on an empty
//     registry;
//  3. flush.sh (redis image): empties the blob-descriptor cache, whose entries GC leaves stale;
//  4. restore.sh (kubectl): back to read-write whatever happened before, then fails the Job if GC or
//     the flush failed.
//
// Steps 1-3 are init containers (they run in order, each only after the previous one exited 0);
// 2 and 3 always exit 0 and leave their result in a shared emptyDir for step 4. Two no-op init
// containers before step 1 pull the registry and redis images, so that no image pull can fail
// while the registry is read-only. Step 1 refuses to start beside another GC pod of the CronJob
// (concurrencyPolicy does not cover Jobs created by hand).
package gc

import (
	"embed"
	"fmt"
	"sort"
	"strings"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/storage"
)

//go:embed scripts/*.sh
var scripts embed.FS

const (
	scriptsDir = "/scripts"
	statusDir  = "/status"
	configDir  = "/etc/distribution"
	// Users of the images' own accounts: registry data is owned by RegistryUID, redis-cli needs none.
	kubectlUID = 65532
	redisUID   = 999
	// rolloutTimeoutSeconds bounds each of the two rolling restarts.
	rolloutTimeoutSeconds = 600
)

// GCArgs configures the garbage-collection CronJob.
type GCArgs struct {
	// Required: namespace of every object.
	Namespace pulumi.StringInput
	// Optional: defaults to "0 3 * * 0" (Sundays 03:00).
	Schedule string
	// Optional: defaults to false. A suspended CronJob still runs Jobs created from it by hand.
	Suspend bool
	// Required: the registry Deployment and its container, switched to read-only during GC.
	DeploymentName pulumi.StringInput
	ContainerName  string
	// Required: selector of the registry pods (to wait until none is writable).
	RegistrySelector map[string]string
	// Required: registry image (runs the collector) and the UID it runs as.
	RegistryImage string
	RegistryUID   int
	// Required: the Secret holding the registry's config.yml.
	ConfigSecretName pulumi.StringInput
	// Required: the registry's storage, which the collector mounts and reaches as the registry does.
	Storage *storage.Backend
	// Optional: defaults to false. When true the Redis cache at RedisHost:RedisPort is flushed.
	CacheEnabled bool
	// Required when CacheEnabled: Redis Service host, port, image, and the Secret/key of its password.
	RedisHost           pulumi.StringInput
	RedisPort           int
	RedisImage          string
	RedisPasswordSecret pulumi.StringInput
	RedisPasswordKey    string
	// Optional: defaults to "registry.k8s.io/kubectl:v1.33.13". Needs sh and kubectl.
	KubectlImage string
}

// GC is the CronJob and its RBAC.
type GC struct {
	pulumi.ResourceState

	// CronJobName names the CronJob (`kubectl create job --from=cronjob/<name>` runs it now).
	CronJobName pulumi.StringOutput `pulumi:"cronJobName"`
}

func (a *GCArgs) withDefaults() (*GCArgs, error) {
	out := *a
	if out.Namespace == nil || out.DeploymentName == nil || out.ConfigSecretName == nil || out.Storage == nil ||
		out.ContainerName == "" || len(out.RegistrySelector) == 0 || out.RegistryImage == "" || out.RegistryUID == 0 {
		return nil, fmt.Errorf("gc: Namespace, DeploymentName, ContainerName, RegistrySelector, RegistryImage, " +
			"RegistryUID, ConfigSecretName and Storage are required")
	}
	if out.CacheEnabled && (out.RedisHost == nil || out.RedisPort == 0 || out.RedisImage == "" ||
		out.RedisPasswordSecret == nil || out.RedisPasswordKey == "") {
		return nil, fmt.Errorf("gc: RedisHost, RedisPort, RedisImage, RedisPasswordSecret and RedisPasswordKey are required when CacheEnabled")
	}
	if out.Schedule == "" {
		out.Schedule = "0 3 * * 0"
	}
	if out.KubectlImage == "" {
		out.KubectlImage = "registry.k8s.io/kubectl:v1.33.13"
	}
	return &out, nil
}

// NewGC registers the CronJob, its scripts, ServiceAccount and the namespaced RBAC it needs.
func NewGC(ctx *pulumi.Context, name string, args *GCArgs, opts ...pulumi.ResourceOption) (*GC, error) {
	a, err := args.withDefaults()
	if err != nil {
		return nil, err
	}
	comp := &GC{}
	if err := ctx.RegisterComponentResource("registry-stack:index:GC", name, comp, opts...); err != nil {
		return nil, fmt.Errorf("gc: register component %q: %w", name, err)
	}
	parent := pulumi.Parent(comp)
	labels := kube.StringMap(PodLabels(name))
	meta := func() *metav1.ObjectMetaArgs {
		return &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: labels}
	}

	scriptData, err := Scripts()
	if err != nil {
		return nil, err
	}
	scriptsMap, err := corev1.NewConfigMap(ctx, name, &corev1.ConfigMapArgs{
		Metadata: meta(),
		Data:     pulumi.ToStringMap(scriptData),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("gc: scripts config map: %w", err)
	}

	saMeta := meta()
	if len(a.Storage.ServiceAccountAnnotations) > 0 {
		// The collector reaches the store with the registry's cloud identity.
		saMeta.Annotations = pulumi.ToStringMap(a.Storage.ServiceAccountAnnotations)
	}
	account, err := corev1.NewServiceAccount(ctx, name, &corev1.ServiceAccountArgs{Metadata: saMeta}, parent)
	if err != nil {
		return nil, fmt.Errorf("gc: service account: %w", err)
	}
	role, err := rbacv1.NewRole(ctx, name, &rbacv1.RoleArgs{
		Metadata: meta(),
		Rules:    RoleRules(a.DeploymentName),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("gc: role: %w", err)
	}
	if _, err := rbacv1.NewRoleBinding(ctx, name, &rbacv1.RoleBindingArgs{
		Metadata: meta(),
		RoleRef: &rbacv1.RoleRefArgs{
			ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: role.Metadata.Name().Elem(),
		},
		Subjects: rbacv1.SubjectArray{&rbacv1.SubjectArgs{
			Kind: pulumi.String("ServiceAccount"), Name: account.Metadata.Name().Elem(), Namespace: a.Namespace,
		}},
	}, parent); err != nil {
		return nil, fmt.Errorf("gc: role binding: %w", err)
	}

	cron, err := batchv1.NewCronJob(ctx, name, &batchv1.CronJobArgs{
		Metadata: meta(),
		Spec: &batchv1.CronJobSpecArgs{
			Schedule:                   pulumi.String(a.Schedule),
			Suspend:                    pulumi.Bool(a.Suspend),
			ConcurrencyPolicy:          pulumi.String("Forbid"),
			StartingDeadlineSeconds:    pulumi.Int(3600),
			SuccessfulJobsHistoryLimit: pulumi.Int(3),
			FailedJobsHistoryLimit:     pulumi.Int(3),
			JobTemplate: &batchv1.JobTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels},
				Spec: &batchv1.JobSpecArgs{
					// A retry would restart the registry twice more; a failed run waits for the next
					// schedule (or a manual run) and shows up in the Job history.
					BackoffLimit: pulumi.Int(0),
					Template: &corev1.PodTemplateSpecArgs{
						Metadata: &metav1.ObjectMetaArgs{Labels: labels},
						Spec:     PodSpec(a, PodSelector(name), account.Metadata.Name().Elem(), scriptsMap.Metadata.Name().Elem()),
					},
				},
			},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("gc: cron job: %w", err)
	}

	comp.CronJobName = cron.Metadata.Name().Elem()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"cronJobName": comp.CronJobName}); err != nil {
		return nil, fmt.Errorf("gc: register outputs: %w", err)
	}
	return comp, nil
}

// PodLabels are the labels of the GC pods of the instance name.
func PodLabels(name string) map[string]string {
	return kube.Labels("registry-gc", name, "garbage-collection")
}

// PodSelector selects the GC pods of the instance name.
func PodSelector(name string) map[string]string {
	return kube.Selector("registry-gc", name)
}

// Scripts returns the step scripts keyed by file name.
func Scripts() (map[string]string, error) {
	entries, err := scripts.ReadDir("scripts")
	if err != nil {
		return nil, fmt.Errorf("gc: read embedded scripts: %w", err)
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		b, err := scripts.ReadFile("scripts/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("gc: read embedded script %s: %w", e.Name(), err)
		}
		out[e.Name()] = string(b)
	}
	return out, nil
}

// RoleRules is the least the maintenance switch needs: read and patch the one Deployment (watch
// for `rollout status`), and list pods to see that no writable replica is left.
func RoleRules(deploymentName pulumi.StringInput) rbacv1.PolicyRuleArray {
	return rbacv1.PolicyRuleArray{
		&rbacv1.PolicyRuleArgs{
			ApiGroups:     pulumi.ToStringArray([]string{"apps"}),
			Resources:     pulumi.ToStringArray([]string{"deployments"}),
			ResourceNames: pulumi.StringArray{deploymentName},
			Verbs:         pulumi.ToStringArray([]string{"get", "list", "watch", "patch"}),
		},
		&rbacv1.PolicyRuleArgs{
			ApiGroups: pulumi.ToStringArray([]string{""}),
			Resources: pulumi.ToStringArray([]string{"pods"}),
			Verbs:     pulumi.ToStringArray([]string{"get", "list"}),
		},
	}
}

// SelectorString renders a label selector for kubectl -l, in a stable order.
func SelectorString(sel map[string]string) string {
	parts := make([]string, 0, len(sel))
	for k, v := range sel {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// PodSpec is the GC pod: the four steps described in the package comment. selfSelector selects
// the GC pods of this CronJob (a run refuses to start beside another one).
func PodSpec(a *GCArgs, selfSelector map[string]string, serviceAccount, scriptsConfigMap pulumi.StringInput) *corev1.PodSpecArgs {
	kubectlEnv := corev1.EnvVarArray{
		&corev1.EnvVarArgs{Name: pulumi.String("NAMESPACE"), ValueFrom: &corev1.EnvVarSourceArgs{
			FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String("metadata.namespace")},
		}},
		&corev1.EnvVarArgs{Name: pulumi.String("POD_NAME"), ValueFrom: &corev1.EnvVarSourceArgs{
			FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String("metadata.name")},
		}},
		&corev1.EnvVarArgs{Name: pulumi.String("GC_SELECTOR"), Value: pulumi.String(SelectorString(selfSelector))},
		&corev1.EnvVarArgs{Name: pulumi.String("DEPLOYMENT"), Value: a.DeploymentName},
		&corev1.EnvVarArgs{Name: pulumi.String("CONTAINER"), Value: pulumi.String(a.ContainerName)},
		&corev1.EnvVarArgs{Name: pulumi.String("POD_SELECTOR"), Value: pulumi.String(SelectorString(a.RegistrySelector))},
		&corev1.EnvVarArgs{Name: pulumi.String("ROLLOUT_TIMEOUT"), Value: pulumi.String(fmt.Sprint(rolloutTimeoutSeconds))},
		&corev1.EnvVarArgs{Name: pulumi.String("SCRIPTS_DIR"), Value: pulumi.String(scriptsDir)},
		&corev1.EnvVarArgs{Name: pulumi.String("STATUS_DIR"), Value: pulumi.String(statusDir)},
		&corev1.EnvVarArgs{Name: pulumi.String("CACHE_ENABLED"), Value: pulumi.String(fmt.Sprint(a.CacheEnabled))},
		// kubectl writes its discovery cache under $HOME; the root filesystem is read-only.
		&corev1.EnvVarArgs{Name: pulumi.String("HOME"), Value: pulumi.String("/tmp")},
	}
	mount := func(volume, path string, readOnly bool) *corev1.VolumeMountArgs {
		return &corev1.VolumeMountArgs{Name: pulumi.String(volume), MountPath: pulumi.String(path), ReadOnly: pulumi.Bool(readOnly)}
	}
	// script is the file name in scriptsDir followed by its arguments.
	step := func(name, image string, script []string, uid int, env corev1.EnvVarArray, mounts ...corev1.VolumeMountInput) *corev1.ContainerArgs {
		sc := kube.ContainerSecurityContext()
		sc.RunAsUser, sc.RunAsGroup = pulumi.Int(uid), pulumi.Int(uid)
		vm := corev1.VolumeMountArray{mount("scripts", scriptsDir, true), mount("status", statusDir, false), mount("tmp", "/tmp", false)}
		for _, m := range mounts {
			vm = append(vm, m)
		}
		return &corev1.ContainerArgs{
			Name:            pulumi.String(name),
			Image:           pulumi.String(image),
			ImagePullPolicy: pulumi.String("IfNotPresent"),
			Command:         pulumi.ToStringArray(append([]string{"sh", scriptsDir + "/" + script[0]}, script[1:]...)),
			Env:             env,
			Resources:       kube.Resources("10m", "32Mi", "256Mi"),
			SecurityContext: sc,
			VolumeMounts:    vm,
		}
	}

	// Images are pulled when their step starts: pull them all before the registry goes read-only,
	// so that a failing pull cannot strand it there.
	pull := func(name, image string, uid int, command ...string) *corev1.ContainerArgs {
		sc := kube.ContainerSecurityContext()
		sc.RunAsUser, sc.RunAsGroup = pulumi.Int(uid), pulumi.Int(uid)
		return &corev1.ContainerArgs{
			Name:            pulumi.String(name),
			Image:           pulumi.String(image),
			ImagePullPolicy: pulumi.String("IfNotPresent"),
			Command:         pulumi.ToStringArray(command),
			Resources:       kube.Resources("10m", "16Mi", "64Mi"),
			SecurityContext: sc,
		}
	}
	inits := corev1.ContainerArray{pull("pull-registry-image", a.RegistryImage, a.RegistryUID, "registry", "--version")}
	if a.CacheEnabled {
		inits = append(inits, pull("pull-redis-image", a.RedisImage, redisUID, "redis-cli", "--version"))
	}
	inits = append(inits, step("enter-read-only", a.KubectlImage, []string{"maintenance.sh", "enter"}, kubectlUID, kubectlEnv))
	collect := step("garbage-collect", a.RegistryImage, []string{"collect.sh"}, a.RegistryUID, append(corev1.EnvVarArray{
		&corev1.EnvVarArgs{Name: pulumi.String("CONFIG"), Value: pulumi.String(configDir + "/config.yml")},
		&corev1.EnvVarArgs{Name: pulumi.String("STATUS_DIR"), Value: pulumi.String(statusDir)},
		&corev1.EnvVarArgs{Name: pulumi.String("OTEL_TRACES_EXPORTER"), Value: pulumi.String("none")},
	}, a.Storage.Env...), append(corev1.VolumeMountArray{mount("config", configDir, true)}, a.Storage.Mounts...)...)
	// The collector holds the whole manifest graph in memory.
	collect.Resources = kube.Resources("50m", "64Mi", "1Gi")
	inits = append(inits, collect)
	if a.CacheEnabled {
		inits = append(inits, step("flush-cache", a.RedisImage, []string{"flush.sh"}, redisUID, corev1.EnvVarArray{
			&corev1.EnvVarArgs{Name: pulumi.String("REDIS_HOST"), Value: a.RedisHost},
			&corev1.EnvVarArgs{Name: pulumi.String("REDIS_PORT"), Value: pulumi.String(fmt.Sprint(a.RedisPort))},
			&corev1.EnvVarArgs{Name: pulumi.String("STATUS_DIR"), Value: pulumi.String(statusDir)},
			&corev1.EnvVarArgs{Name: pulumi.String("REDISCLI_AUTH"), ValueFrom: &corev1.EnvVarSourceArgs{
				SecretKeyRef: &corev1.SecretKeySelectorArgs{Name: a.RedisPasswordSecret, Key: pulumi.String(a.RedisPasswordKey)},
			}},
		}))
	}

	volumes := corev1.VolumeArray{
		&corev1.VolumeArgs{Name: pulumi.String("scripts"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{
			Name: scriptsConfigMap, DefaultMode: pulumi.Int(0o555),
		}},
		&corev1.VolumeArgs{Name: pulumi.String("config"), Secret: &corev1.SecretVolumeSourceArgs{
			SecretName: a.ConfigSecretName, DefaultMode: pulumi.Int(0o440),
		}},
	}
	volumes = append(volumes, a.Storage.Volumes...)
	volumes = append(volumes,
		&corev1.VolumeArgs{Name: pulumi.String("status"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{}},
		&corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{}},
	)
	spec := &corev1.PodSpecArgs{
		ServiceAccountName: serviceAccount,
		RestartPolicy:      pulumi.String("Never"),
		EnableServiceLinks: pulumi.Bool(false),
		SecurityContext:    kube.PodSecurityContext(a.RegistryUID),
		InitContainers:     inits,
		Containers:         corev1.ContainerArray{step("restore-writes", a.KubectlImage, []string{"restore.sh"}, kubectlUID, kubectlEnv)},
		Volumes:            volumes,
	}
	if a.Storage.CoLocate {
		// The data claim is ReadWriteOnce (attached to the registry pods' node): run beside a
		// registry pod. Elsewhere the pod would wait for an attach that never comes, and block
		// every later run (Forbid). Unschedulable means pending before step 1: writes unaffected.
		spec.Affinity = &corev1.AffinityArgs{PodAffinity: &corev1.PodAffinityArgs{
			RequiredDuringSchedulingIgnoredDuringExecution: corev1.PodAffinityTermArray{&corev1.PodAffinityTermArgs{
				TopologyKey:   pulumi.String("kubernetes.io/hostname"),
				LabelSelector: &metav1.LabelSelectorArgs{MatchLabels: kube.StringMap(a.RegistrySelector)},
			}},
		}}
	}
	return spec
}
