// Package gc schedules the registry's garbage collection as a CronJob that is safe to run on a live
// registry:
//
//  1. maintenance.sh enter (kubectl): takes the GC lease, then every replica restarts read-only;
//     pulls keep working, pushes get 405; it waits until no writable pod is left;
//  2. collect.sh (registry image): `registry garbage-collect --delete-untagged`, also on an empty
//     registry, for as long as the lease is renewed and no replica is writable;
//  3. flush.sh (redis image): empties the blob-descriptor cache, whose entries GC leaves stale;
//  4. restore.sh (kubectl): back to read-write, lease given back, then fails the Job if GC or the
//     flush failed.
//
// Steps 1-3 are init containers (they run in order, each only after the previous one exited 0);
// 2 and 3 always exit 0 and leave their result in a shared emptyDir for step 4. Two no-op init
// containers before step 1 pull the registry and redis images, so that no image pull can fail
// while the registry is read-only. A sidecar (lease.sh keep) renews the lease from step 1 to the
// end and stops step 2 when it cannot.
//
// With Retention (retention.go) the pod first takes the lease, runs retention.sh (tags deleted
// through a registry on the pod's loopback while the registry is writable) and gives the lease back
// for step 1; the last step is then retention-kubectl.sh finish, with report-freed beside it.
//
// Whatever kills a GC pod, its lease expires LeaseSeconds after its last renewal, and its collector
// was stopped before that (FenceSeconds). The watchdog CronJob (every minute) then finds the
// registry read-only with an expired lease, empties the cache and restores writes: within
// LeaseSeconds + a minute + one rollout of the GC pod's death, and never while a collector runs.
package gc

import (
	"embed"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	coordinationv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/coordination/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/placement"
	"github.com/regstack/registry-stack/registry"
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
	// runDeadlineSeconds stops a GC run that has not finished in a day (a collector hung on its
	// storage): the pod goes, its lease expires and the watchdog restores writes.
	runDeadlineSeconds = int(RunDeadline / time.Second)
)

// collectorEnv is the collector's own environment; ValidateExtraEnv refuses these names in the
// registry's extra environment, which the collector gets too.
func collectorEnv() corev1.EnvVarArray {
	return corev1.EnvVarArray{
		&corev1.EnvVarArgs{Name: pulumi.String("CONFIG"), Value: pulumi.String(configDir + "/config.yml")},
		&corev1.EnvVarArgs{Name: pulumi.String("STATUS_DIR"), Value: pulumi.String(statusDir)},
		// The lease fence: collect.sh refuses to collect unless the lease was held this long.
		&corev1.EnvVarArgs{Name: pulumi.String("FENCE_SECONDS"), Value: pulumi.String(fmt.Sprint(FenceSeconds))},
		&corev1.EnvVarArgs{Name: pulumi.String("OTEL_TRACES_EXPORTER"), Value: pulumi.String("none")},
	}
}

// ValidateExtraEnv refuses, in the registry's extra environment, the names GC's collector sets
// itself: the later of two equal names wins in a container, so one of them (FENCE_SECONDS, the
// lease fence) could switch off what keeps GC from collecting beside a writable registry. path and
// keyed name the entries as registry.ValidateExtraEnv does (registry.EnvPath).
func ValidateExtraEnv(path string, keyed bool, env []registry.EnvVar) []error {
	own := map[string]bool{}
	for _, v := range collectorEnv() {
		own[string(v.(*corev1.EnvVarArgs).Name.(pulumi.String))] = true
	}
	var errs []error
	for i, e := range env {
		at := registry.EnvPath(path, keyed, i, e.Name)
		if own[e.Name] {
			errs = append(errs, fmt.Errorf("%s: %q is refused: GC's collector, which gets the registry's environment, sets it itself", at, e.Name))
		}
	}
	return errs
}

// RunDeadline is the GC Job's activeDeadlineSeconds: no run is longer.
const RunDeadline = 24 * time.Hour

// ModeLabel is the pod-template label maintenance.sh sets to ReadOnlyMode while GC holds the
// registry read-only (lease.sh's mode_label); monitoring alerts on it.
const (
	ModeLabel    = "registry-stack.io/maintenance"
	ReadOnlyMode = "read-only"
)

// The GC lease's timing. A holder renews every RenewSeconds; its collector stops when the last
// renewal is FenceSeconds old; anyone may take the lease over once it is LeaseSeconds old. The
// gap between the last two absorbs clock skew between nodes and the collector's stop (2 s).
const (
	RenewSeconds = 5
	FenceSeconds = 15
	LeaseSeconds = 30
	// WatchdogSchedule: the watchdog looks every minute (the CronJob's finest schedule).
	WatchdogSchedule = "* * * * *"
)

// GCArgs configures the garbage-collection CronJob.
type GCArgs struct {
	// Required: namespace of every object.
	Namespace pulumi.StringInput
	// Required: a cron schedule.
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
	// Required when CacheEnabled: Redis Service host, port, image, the ACL user that may flush,
	// and the Secret/key of its password.
	RedisHost           pulumi.StringInput
	RedisPort           int
	RedisImage          string
	RedisUsername       string
	RedisPasswordSecret pulumi.StringInput
	RedisPasswordKey    string
	// Required: an image with sh, kubectl, date -d, sed and tr.
	KubectlImage string
	// Optional: nil adds nothing. Where the GC and watchdog pods may run (added to the GC pod's own
	// affinity), their priority class, extra pod labels and annotations, and image pull secrets.
	// With a ReadWriteOnce volume the GC pod runs on the registry's node, whose taints it must
	// tolerate.
	Placement *placement.Spec
	// ExtraEnv is the registry's extra environment (registry.RegistryArgs.ExtraEnv): the collector
	// reaches the same store, e.g. through the same HTTP proxy.
	ExtraEnv []registry.EnvVar
	// Optional: nil deletes no tag. Retention runs first in every GC run, while the registry is
	// writable; the registry's config Secret must hold its loopback config
	// (registry.RegistryArgs.LocalConfig).
	Retention *Retention
}

// GC is the CronJob, its watchdog CronJob, the lease and their RBAC.
type GC struct {
	pulumi.ResourceState

	// CronJobName names the CronJob (`kubectl create job --from=cronjob/<name>` runs it now).
	CronJobName pulumi.StringOutput `pulumi:"cronJobName"`
	// WatchdogCronJobName names the watchdog (`kubectl create job --from=cronjob/<name>` checks now).
	WatchdogCronJobName pulumi.StringOutput `pulumi:"watchdogCronJobName"`
	// LeaseName names the GC lease (`kubectl get lease <name>` shows who holds it).
	LeaseName pulumi.StringOutput `pulumi:"leaseName"`
}

func (a *GCArgs) withDefaults() (*GCArgs, error) {
	out := *a
	if r := out.Retention; r != nil {
		if errs := r.Validate("gc: Retention"); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
	}
	if out.Namespace == nil || out.DeploymentName == nil || out.ConfigSecretName == nil || out.Storage == nil ||
		out.ContainerName == "" || len(out.RegistrySelector) == 0 || out.RegistryImage == "" || out.RegistryUID == 0 {
		return nil, fmt.Errorf("gc: Namespace, DeploymentName, ContainerName, RegistrySelector, RegistryImage, " +
			"RegistryUID, ConfigSecretName and Storage are required")
	}
	if out.CacheEnabled && (out.RedisHost == nil || out.RedisPort == 0 || out.RedisImage == "" || out.RedisUsername == "" ||
		out.RedisPasswordSecret == nil || out.RedisPasswordKey == "") {
		return nil, fmt.Errorf("gc: RedisHost, RedisPort, RedisImage, RedisUsername, RedisPasswordSecret and RedisPasswordKey are required when CacheEnabled")
	}
	if errs := append(out.Placement.Validate("placement"), ValidateExtraEnv("extraEnv", false, out.ExtraEnv)...); len(errs) > 0 {
		return nil, fmt.Errorf("gc: %w", errors.Join(errs...))
	}
	if out.Schedule == "" || out.KubectlImage == "" {
		// No defaults here: the one table of defaults is stackconfig's (registrystack's args).
		return nil, fmt.Errorf("gc: Schedule and KubectlImage are required")
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

	// The GC lease: only its holder may switch the registry to read-only and back (lease.sh).
	// The stack owns the object and its duration; the scripts own holder and times, under their
	// own field manager (registry-stack-gc), which a server-side apply of the stack leaves alone.
	lease, err := coordinationv1.NewLease(ctx, name, &coordinationv1.LeaseArgs{
		Metadata: meta(),
		Spec:     &coordinationv1.LeaseSpecArgs{LeaseDurationSeconds: pulumi.Int(LeaseSeconds)},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("gc: lease: %w", err)
	}

	scriptData, err := Scripts(a.Retention != nil)
	if err != nil {
		return nil, err
	}
	if a.Retention != nil {
		scriptData[PoliciesKey] = PoliciesFile(a.Retention)
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
		Rules:    RoleRules(a.DeploymentName, lease.Metadata.Name().Elem()),
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

	scripts := scriptsMap.Metadata.Name().Elem()
	sa := account.Metadata.Name().Elem()
	leaseName := lease.Metadata.Name().Elem()
	podSpec, err := PodSpec(a, sa, scripts, leaseName)
	if err != nil {
		return nil, err
	}
	podMeta := &metav1.ObjectMetaArgs{Labels: labels}
	if err := placement.ApplyPodMetadata(podMeta, a.Placement); err != nil {
		return nil, fmt.Errorf("gc: pod template: %w", err)
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
					BackoffLimit:          pulumi.Int(0),
					ActiveDeadlineSeconds: pulumi.Int(runDeadlineSeconds),
					Template:              &corev1.PodTemplateSpecArgs{Metadata: podMeta, Spec: podSpec},
				},
			},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("gc: cron job: %w", err)
	}

	watchdogLabels := kube.StringMap(WatchdogPodLabels(name))
	watchdogSpec, err := WatchdogPodSpec(a, sa, scripts, leaseName)
	if err != nil {
		return nil, err
	}
	watchdogMeta := &metav1.ObjectMetaArgs{Labels: watchdogLabels}
	if err := placement.ApplyPodMetadata(watchdogMeta, a.Placement); err != nil {
		return nil, fmt.Errorf("gc: watchdog pod template: %w", err)
	}
	watchdog, err := batchv1.NewCronJob(ctx, name+"-watchdog", &batchv1.CronJobArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name + "-watchdog"), Namespace: a.Namespace, Labels: watchdogLabels},
		Spec: &batchv1.CronJobSpecArgs{
			// Never suspended with the GC: a GC Job created by hand needs it as much.
			Schedule:                   pulumi.String(WatchdogSchedule),
			ConcurrencyPolicy:          pulumi.String("Forbid"),
			StartingDeadlineSeconds:    pulumi.Int(60),
			SuccessfulJobsHistoryLimit: pulumi.Int(1),
			FailedJobsHistoryLimit:     pulumi.Int(3),
			JobTemplate: &batchv1.JobTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: watchdogLabels},
				Spec: &batchv1.JobSpecArgs{
					// The next minute's run is the retry.
					BackoffLimit:          pulumi.Int(0),
					ActiveDeadlineSeconds: pulumi.Int(rolloutTimeoutSeconds + 120),
					Template:              &corev1.PodTemplateSpecArgs{Metadata: watchdogMeta, Spec: watchdogSpec},
				},
			},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("gc: watchdog cron job: %w", err)
	}

	comp.CronJobName = cron.Metadata.Name().Elem()
	comp.WatchdogCronJobName = watchdog.Metadata.Name().Elem()
	comp.LeaseName = leaseName
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"cronJobName":         comp.CronJobName,
		"watchdogCronJobName": comp.WatchdogCronJobName,
		"leaseName":           comp.LeaseName,
	}); err != nil {
		return nil, fmt.Errorf("gc: register outputs: %w", err)
	}
	return comp, nil
}

// PodLabels are the labels of the GC pods of the instance name.
func PodLabels(name string) map[string]string {
	return kube.Labels("registry-gc", name, "garbage-collection")
}

// WatchdogPodLabels are the labels of the watchdog pods of the instance name.
func WatchdogPodLabels(name string) map[string]string {
	return kube.Labels("registry-gc", name, "gc-watchdog")
}

// PodSelector selects the GC and watchdog pods of the instance name (both may flush the cache).
func PodSelector(name string) map[string]string {
	return kube.Selector("registry-gc", name)
}

// Scripts returns the step scripts keyed by file name; those of retention (retention*.sh) only
// with retention.
func Scripts(retention bool) (map[string]string, error) {
	entries, err := scripts.ReadDir("scripts")
	if err != nil {
		return nil, fmt.Errorf("gc: read embedded scripts: %w", err)
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		if !retention && strings.HasPrefix(e.Name(), "retention") {
			continue
		}
		b, err := scripts.ReadFile("scripts/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("gc: read embedded script %s: %w", e.Name(), err)
		}
		out[e.Name()] = string(b)
	}
	return out, nil
}

// RoleRules is the least the maintenance switch needs: read and patch the one Deployment (watch
// for `rollout status`) and the one lease, and list pods to see that no writable replica is left.
func RoleRules(deploymentName, leaseName pulumi.StringInput) rbacv1.PolicyRuleArray {
	return rbacv1.PolicyRuleArray{
		&rbacv1.PolicyRuleArgs{
			ApiGroups:     pulumi.ToStringArray([]string{"coordination.k8s.io"}),
			Resources:     pulumi.ToStringArray([]string{"leases"}),
			ResourceNames: pulumi.StringArray{leaseName},
			Verbs:         pulumi.ToStringArray([]string{"get", "patch"}),
		},
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

// podParts builds the containers and volumes the GC and watchdog pods share.
type podParts struct {
	a          *GCArgs
	kubectlEnv corev1.EnvVarArray
}

func newPodParts(a *GCArgs, lease pulumi.StringInput) *podParts {
	env := func(name string, value pulumi.StringInput) *corev1.EnvVarArgs {
		return &corev1.EnvVarArgs{Name: pulumi.String(name), Value: value}
	}
	field := func(name, path string) *corev1.EnvVarArgs {
		return &corev1.EnvVarArgs{Name: pulumi.String(name), ValueFrom: &corev1.EnvVarSourceArgs{
			FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String(path)},
		}}
	}
	return &podParts{a: a, kubectlEnv: corev1.EnvVarArray{
		field("NAMESPACE", "metadata.namespace"),
		// The lease holder's identity.
		field("POD_NAME", "metadata.name"),
		env("DEPLOYMENT", a.DeploymentName),
		env("CONTAINER", pulumi.String(a.ContainerName)),
		env("POD_SELECTOR", pulumi.String(SelectorString(a.RegistrySelector))),
		env("ROLLOUT_TIMEOUT", pulumi.String(fmt.Sprint(rolloutTimeoutSeconds))),
		env("LEASE", lease),
		env("LEASE_SECONDS", pulumi.String(fmt.Sprint(LeaseSeconds))),
		env("RENEW_SECONDS", pulumi.String(fmt.Sprint(RenewSeconds))),
		env("SCRIPTS_DIR", pulumi.String(scriptsDir)),
		env("STATUS_DIR", pulumi.String(statusDir)),
		env("CACHE_ENABLED", pulumi.String(fmt.Sprint(a.CacheEnabled))),
		// kubectl writes its discovery cache under $HOME; the root filesystem is read-only.
		env("HOME", pulumi.String("/tmp")),
	}}
}

func mount(volume, path string, readOnly bool) *corev1.VolumeMountArgs {
	return &corev1.VolumeMountArgs{Name: pulumi.String(volume), MountPath: pulumi.String(path), ReadOnly: pulumi.Bool(readOnly)}
}

// step runs script (the file name in scriptsDir followed by its arguments) in image as uid.
func (p *podParts) step(name, image string, script []string, uid int, env corev1.EnvVarArray, mounts ...corev1.VolumeMountInput) *corev1.ContainerArgs {
	sc := kube.ContainerSecurityContext()
	sc.RunAsUser, sc.RunAsGroup = pulumi.Int(uid), pulumi.Int(uid)
	vm := corev1.VolumeMountArray{mount("scripts", scriptsDir, true), mount("status", statusDir, false), mount("tmp", "/tmp", false)}
	vm = append(vm, mounts...)
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

// kubectl is a step of the kubectl image.
func (p *podParts) kubectl(name string, script ...string) *corev1.ContainerArgs {
	return p.step(name, p.a.KubectlImage, script, kubectlUID, p.kubectlEnv)
}

// pull is a no-op container that pulls image: images are pulled when their step starts, so pulling
// them all first means that no failing pull can strand the registry read-only.
func pull(name, image string, uid int, command ...string) *corev1.ContainerArgs {
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

// flush empties the registry's cache database as the ACL user that may do only that.
func (p *podParts) flush() *corev1.ContainerArgs {
	a := p.a
	return p.step("flush-cache", a.RedisImage, []string{"flush.sh"}, redisUID, corev1.EnvVarArray{
		&corev1.EnvVarArgs{Name: pulumi.String("REDIS_HOST"), Value: a.RedisHost},
		&corev1.EnvVarArgs{Name: pulumi.String("REDIS_PORT"), Value: pulumi.String(fmt.Sprint(a.RedisPort))},
		&corev1.EnvVarArgs{Name: pulumi.String("REDIS_USER"), Value: pulumi.String(a.RedisUsername)},
		&corev1.EnvVarArgs{Name: pulumi.String("STATUS_DIR"), Value: pulumi.String(statusDir)},
		&corev1.EnvVarArgs{Name: pulumi.String("REDISCLI_AUTH"), ValueFrom: &corev1.EnvVarSourceArgs{
			SecretKeyRef: &corev1.SecretKeySelectorArgs{Name: a.RedisPasswordSecret, Key: pulumi.String(a.RedisPasswordKey)},
		}},
	})
}

// spec is a Job pod of the given containers with the scripts, status and tmp volumes plus extra,
// its own affinity (nil: none) and the GC's placement added.
func (p *podParts) spec(serviceAccount, scriptsConfigMap pulumi.StringInput, own *placement.Affinity, inits, mains corev1.ContainerArray, extra ...corev1.VolumeInput) (*corev1.PodSpecArgs, error) {
	volumes := corev1.VolumeArray{
		&corev1.VolumeArgs{Name: pulumi.String("scripts"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{
			Name: scriptsConfigMap, DefaultMode: pulumi.Int(0o555),
		}},
	}
	volumes = append(volumes, extra...)
	volumes = append(volumes,
		&corev1.VolumeArgs{Name: pulumi.String("status"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{}},
		&corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{}},
	)
	spec := &corev1.PodSpecArgs{
		ServiceAccountName: serviceAccount,
		RestartPolicy:      pulumi.String("Never"),
		EnableServiceLinks: pulumi.Bool(false),
		SecurityContext:    kube.PodSecurityContext(p.a.RegistryUID),
		InitContainers:     inits,
		Containers:         mains,
		Volumes:            volumes,
	}
	if err := placement.ApplyPodSpec(spec, own, p.a.Placement); err != nil {
		return nil, fmt.Errorf("gc: pod spec: %w", err)
	}
	return spec, nil
}

// PodSpec is the GC pod: the four steps and the lease sidecar described in the package comment,
// with a.Placement added.
func PodSpec(a *GCArgs, serviceAccount, scriptsConfigMap, lease pulumi.StringInput) (*corev1.PodSpecArgs, error) {
	p := newPodParts(a, lease)
	inits := corev1.ContainerArray{pull("pull-registry-image", a.RegistryImage, a.RegistryUID, "registry", "--version")}
	if a.CacheEnabled {
		inits = append(inits, pull("pull-redis-image", a.RedisImage, redisUID, "redis-cli", "--version"))
	}
	// A native sidecar (an init container that keeps running): it starts before step 1 and is
	// stopped after step 4. Kubernetes 1.29 or later.
	keeper := p.kubectl("lease", "lease.sh", "keep")
	keeper.RestartPolicy = pulumi.String("Always")
	mains := corev1.ContainerArray{p.kubectl("restore-writes", "restore.sh")}
	if a.Retention != nil {
		copyRegctl, steps, report := p.retentionSteps()
		inits = append(append(inits, copyRegctl, keeper), steps...)
		mains = corev1.ContainerArray{p.kubectl("restore-writes", "retention-kubectl.sh", "finish"), report}
	} else {
		inits = append(inits, keeper)
	}
	inits = append(inits, p.kubectl("enter-read-only", "maintenance.sh", "enter"))
	collect := p.step("garbage-collect", a.RegistryImage, []string{"collect.sh"}, a.RegistryUID,
		append(append(collectorEnv(), a.Storage.Env...), registry.ExtraEnvVars(a.ExtraEnv)...),
		append(corev1.VolumeMountArray{mount("config", configDir, true)}, a.Storage.Mounts...)...)
	// The collector holds the whole manifest graph in memory.
	collect.Resources = kube.Resources("50m", "64Mi", "1Gi")
	inits = append(inits, collect)
	if a.CacheEnabled {
		inits = append(inits, p.flush())
	}
	volumes := corev1.VolumeArray{&corev1.VolumeArgs{Name: pulumi.String("config"), Secret: &corev1.SecretVolumeSourceArgs{
		SecretName: a.ConfigSecretName, DefaultMode: pulumi.Int(0o440),
	}}}
	for _, v := range a.Storage.Volumes {
		volumes = append(volumes, v)
	}
	var own *placement.Affinity
	if a.Storage.CoLocate {
		// The data claim is ReadWriteOnce (attached to the registry pods' node): run beside a
		// registry pod. Elsewhere the pod would wait for an attach that never comes, and block
		// every later run (Forbid). Unschedulable means pending before step 1: writes unaffected.
		own = &placement.Affinity{PodAffinity: &placement.PodAffinity{Required: []placement.PodAffinityTerm{{
			TopologyKey: "kubernetes.io/hostname", LabelSelector: &placement.LabelSelector{MatchLabels: a.RegistrySelector},
		}}}}
	}
	if a.Retention != nil {
		volumes = append(volumes, &corev1.VolumeArgs{Name: pulumi.String("tools"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{}})
	}
	return p.spec(serviceAccount, scriptsConfigMap, own, inits, mains, volumes...)
}

// WatchdogPodSpec is the watchdog pod: watchdog.sh check, the cache flush (skipped when there is
// nothing to restore), watchdog.sh restore, with a.Placement added. It mounts no storage: it never
// collects, and may run anywhere.
func WatchdogPodSpec(a *GCArgs, serviceAccount, scriptsConfigMap, lease pulumi.StringInput) (*corev1.PodSpecArgs, error) {
	p := newPodParts(a, lease)
	inits := corev1.ContainerArray{}
	if a.CacheEnabled {
		inits = append(inits, pull("pull-redis-image", a.RedisImage, redisUID, "redis-cli", "--version"))
	}
	inits = append(inits, p.kubectl("check", "watchdog.sh", "check"))
	if a.CacheEnabled {
		inits = append(inits, p.flush())
	}
	return p.spec(serviceAccount, scriptsConfigMap, nil, inits, corev1.ContainerArray{p.kubectl("restore-writes", "watchdog.sh", "restore")})
}
