// Package storage provides the registry's data volume: a PersistentVolumeClaim and, in hostPath
// mode, the static PersistentVolume it binds to.
//
// Data safety: every volume this component makes or binds is reclaimed with Retain (static PV,
// a Retain copy of the StorageClass for dynamic claims, a patch for existing PVs), and the PV and
// the claim are registered with retainOnDelete, so neither a mistaken `pulumi destroy` nor a replaced
// claim deletes images. Deleting the data is always a separate, deliberate step (see README).
package storage

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	storagev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/storage/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
)

// Modes (the same strings as the storageMode stack config key).
const (
	ModeHostPath = "hostPath"
	ModeDynamic  = "dynamic"
	ModeExisting = "existing"
)

// StorageArgs configures the data volume.
type StorageArgs struct {
	// Required: namespace of the claim.
	Namespace pulumi.StringInput
	// Optional: defaults to ModeHostPath. One of ModeHostPath, ModeDynamic, ModeExisting.
	Mode string
	// Optional: defaults to "10Gi". Capacity of the static PV (hostPath mode only).
	VolumeSize string
	// Optional: defaults to "10Gi". Size the claim requests.
	ClaimSize string
	// Optional: defaults to "ReadWriteOnce". ReadWriteMany is needed for replicas on several nodes.
	AccessMode string
	// Optional: defaults to "/data/registry" (survives minikube restarts). Node directory in hostPath mode.
	HostPath string
	// Optional: defaults to "standard" in dynamic mode. The StorageClass in dynamic mode; in
	// existing mode the PV's class ("" for a static PV such as a retained hostPath PV).
	StorageClassName string
	// Required in existing mode: the PersistentVolume the claim binds to.
	VolumeName string
	// Optional: defaults to "" (any node). Node holding the hostPath directory; pins every pod
	// that mounts the volume to it, so replicas never write to different nodes' directories.
	NodeName string
}

// Storage is the registry's data volume.
type Storage struct {
	pulumi.ResourceState

	// ClaimName is the name of the PersistentVolumeClaim to mount.
	ClaimName pulumi.StringOutput `pulumi:"claimName"`
	// VolumeName is the bound PersistentVolume (known after the claim binds in dynamic mode).
	VolumeName pulumi.StringOutput `pulumi:"volumeName"`
}

func (a *StorageArgs) withDefaults() (*StorageArgs, error) {
	out := *a
	if out.Namespace == nil {
		return nil, fmt.Errorf("storage: Namespace is required")
	}
	if out.Mode == "" {
		out.Mode = ModeHostPath
	}
	if out.VolumeSize == "" {
		out.VolumeSize = "10Gi"
	}
	if out.ClaimSize == "" {
		out.ClaimSize = "10Gi"
	}
	if out.AccessMode == "" {
		out.AccessMode = "ReadWriteOnce"
	}
	if out.HostPath == "" {
		out.HostPath = "/data/registry"
	}
	if out.StorageClassName == "" && out.Mode == ModeDynamic {
		out.StorageClassName = "standard"
	}
	switch out.Mode {
	case ModeHostPath, ModeDynamic:
	case ModeExisting:
		if out.VolumeName == "" {
			return nil, fmt.Errorf("storage: VolumeName is required in mode %q", ModeExisting)
		}
	default:
		return nil, fmt.Errorf("storage: unknown mode %q (allowed: %s, %s, %s)", out.Mode, ModeHostPath, ModeDynamic, ModeExisting)
	}
	return &out, nil
}

// NewStorage registers the claim (and the PV in hostPath mode).
func NewStorage(ctx *pulumi.Context, name string, args *StorageArgs, opts ...pulumi.ResourceOption) (*Storage, error) {
	a, err := args.withDefaults()
	if err != nil {
		return nil, err
	}
	comp := &Storage{}
	if err := ctx.RegisterComponentResource("registry-stack:index:Storage", name, comp, opts...); err != nil {
		return nil, fmt.Errorf("storage: register component %q: %w", name, err)
	}
	// retainOnDelete: `pulumi destroy` and replacements drop these from the state but leave the
	// objects (and the images on them) in the cluster.
	keep := []pulumi.ResourceOption{pulumi.Parent(comp), pulumi.RetainOnDelete(true)}
	labels := kube.StringMap(kube.Labels("registry", name, "storage"))

	claimSpec := &corev1.PersistentVolumeClaimSpecArgs{
		AccessModes: pulumi.ToStringArray([]string{a.AccessMode}),
		Resources: &corev1.VolumeResourceRequirementsArgs{
			Requests: pulumi.StringMap{"storage": pulumi.String(a.ClaimSize)},
		},
	}
	var volumeName pulumi.StringOutput
	switch a.Mode {
	case ModeHostPath:
		pv, err := corev1.NewPersistentVolume(ctx, name, &corev1.PersistentVolumeArgs{
			Metadata: &metav1.ObjectMetaArgs{
				// PVs are cluster-scoped: the namespace keeps two stacks on one cluster apart.
				Name:   pulumi.Sprintf("%s-%s", a.Namespace, name),
				Labels: labels,
			},
			Spec: HostPathVolumeSpec(a.HostPath, a.VolumeSize, a.AccessMode, a.NodeName),
		}, keep...)
		if err != nil {
			return nil, fmt.Errorf("storage: persistent volume: %w", err)
		}
		volumeName = pv.Metadata.Name().Elem()
		// An empty class keeps the default provisioner away; volumeName binds exactly this PV.
		claimSpec.StorageClassName = pulumi.String("")
		claimSpec.VolumeName = volumeName
	case ModeExisting:
		volumeName = pulumi.String(a.VolumeName).ToStringOutput()
		claimSpec.StorageClassName = pulumi.String(a.StorageClassName)
		claimSpec.VolumeName = volumeName
	case ModeDynamic:
		// The provisioner gives a new PV its class's reclaim policy, usually Delete: deleting the
		// claim (or the namespace) would delete the images. Claim from a copy of the class that
		// differs only in reclaimPolicy Retain. Unlike patching the PV afterwards, this works in
		// preview and with WaitForFirstConsumer classes.
		source, err := storagev1.GetStorageClass(ctx, name+"-source-class", pulumi.ID(a.StorageClassName), nil, pulumi.Parent(comp))
		if err != nil {
			return nil, fmt.Errorf("storage: read StorageClass %q: %w", a.StorageClassName, err)
		}
		retain, err := storagev1.NewStorageClass(ctx, name+"-retain", &storagev1.StorageClassArgs{
			Metadata: &metav1.ObjectMetaArgs{
				// Cluster-scoped: the namespace keeps two stacks on one cluster apart.
				Name:   pulumi.Sprintf("%s-%s-retain", a.Namespace, name),
				Labels: labels,
			},
			Provisioner:          source.Provisioner,
			Parameters:           source.Parameters,
			VolumeBindingMode:    source.VolumeBindingMode,
			AllowVolumeExpansion: source.AllowVolumeExpansion,
			AllowedTopologies:    source.AllowedTopologies,
			MountOptions:         source.MountOptions,
			ReclaimPolicy:        pulumi.String("Retain"),
		}, pulumi.Parent(comp))
		if err != nil {
			return nil, fmt.Errorf("storage: retaining copy of StorageClass %q: %w", a.StorageClassName, err)
		}
		claimSpec.StorageClassName = retain.Metadata.Name().Elem()
	}

	claim, err := corev1.NewPersistentVolumeClaim(ctx, name, &corev1.PersistentVolumeClaimArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: labels},
		Spec:     claimSpec,
	}, keep...)
	if err != nil {
		return nil, fmt.Errorf("storage: persistent volume claim: %w", err)
	}
	switch a.Mode {
	case ModeDynamic:
		volumeName = claim.Spec.VolumeName().Elem()
	case ModeExisting:
		// An existing PV may carry reclaim policy Delete; the claim must not be its death sentence.
		if _, err := corev1.NewPersistentVolumePatch(ctx, name+"-retain", &corev1.PersistentVolumePatchArgs{
			Metadata: &metav1.ObjectMetaPatchArgs{
				Name: volumeName,
				// Whoever created the PV owns the field; take it over.
				Annotations: pulumi.StringMap{"pulumi.com/patchForce": pulumi.String("true")},
			},
			Spec: &corev1.PersistentVolumeSpecPatchArgs{
				PersistentVolumeReclaimPolicy: pulumi.String("Retain"),
			},
		}, keep...); err != nil {
			return nil, fmt.Errorf("storage: retain patch of volume %q: %w", a.VolumeName, err)
		}
	}

	comp.ClaimName = claim.Metadata.Name().Elem()
	comp.VolumeName = volumeName
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"claimName":  comp.ClaimName,
		"volumeName": comp.VolumeName,
	}); err != nil {
		return nil, fmt.Errorf("storage: register outputs: %w", err)
	}
	return comp, nil
}

// HostPathVolumeSpec is the static PV of hostPath mode: Retain, no class, directory created on
// demand, on nodeName when given.
func HostPathVolumeSpec(hostPath, size, accessMode, nodeName string) *corev1.PersistentVolumeSpecArgs {
	spec := &corev1.PersistentVolumeSpecArgs{
		Capacity:                      pulumi.StringMap{"storage": pulumi.String(size)},
		AccessModes:                   pulumi.ToStringArray([]string{accessMode}),
		PersistentVolumeReclaimPolicy: pulumi.String("Retain"),
		StorageClassName:              pulumi.String(""),
		VolumeMode:                    pulumi.String("Filesystem"),
		HostPath: &corev1.HostPathVolumeSourceArgs{
			Path: pulumi.String(hostPath),
			Type: pulumi.String("DirectoryOrCreate"),
		},
	}
	if nodeName != "" {
		spec.NodeAffinity = &corev1.VolumeNodeAffinityArgs{Required: &corev1.NodeSelectorArgs{
			NodeSelectorTerms: corev1.NodeSelectorTermArray{&corev1.NodeSelectorTermArgs{
				MatchExpressions: corev1.NodeSelectorRequirementArray{&corev1.NodeSelectorRequirementArgs{
					Key: pulumi.String("kubernetes.io/hostname"), Operator: pulumi.String("In"),
					Values: pulumi.ToStringArray([]string{nodeName}),
				}},
			}},
		}}
	}
	return spec
}
