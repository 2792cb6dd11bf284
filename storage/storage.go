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
	"sort"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	storagev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/storage/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
)

// Modes of the filesystem driver (the values of the storage.filesystem.mode stack config path).
const (
	// ModeHostPath makes a static hostPath PersistentVolume bound to the claim.
	ModeHostPath = "hostPath"
	// ModeDynamic asks a StorageClass (through a Retain copy of it) for a volume.
	ModeDynamic = "dynamic"
	// ModeExisting binds the claim to a PersistentVolume that already exists (restore, NFS, ...).
	ModeExisting = "existing"
)

// DataDir is where the filesystem driver's volume is mounted in the pods that read the images.
const DataDir = "/var/lib/registry"

// Store is the validated storage backend: exactly one of its drivers is set.
type Store struct {
	Filesystem *Filesystem
	S3         *S3
}

// Filesystem keeps the images on a PersistentVolume mounted into every registry pod.
type Filesystem struct {
	// Mode is how the volume is provisioned: StorageHostPath, StorageDynamic or StorageExisting.
	Mode string
	// VolumeSize is the capacity of the static PV (hostPath mode).
	VolumeSize string
	// ClaimSize is what the claim requests.
	ClaimSize string
	// AccessMode of the claim: ReadWriteOnce pins every pod that mounts it to one node.
	AccessMode string
	// HostPath is the node directory (hostPath mode).
	HostPath string
	// StorageClassName is the class to provision from (dynamic) or the PV's class (existing).
	StorageClassName string
	// VolumeName is the PersistentVolume to bind (existing mode).
	VolumeName string
	// NodeName pins the hostPath PV to one node (hostPath mode; empty: any node).
	NodeName string
	// ChownHostPath runs a root init container that hands the hostPath directory to the
	// registry's user (hostPath mode). Without it the directory must already be writable by it.
	ChownHostPath bool
}

// S3 keeps the images in an S3 bucket (AWS or any S3-compatible store). The stack never
// creates, empties or deletes the bucket.
type S3 struct {
	// Bucket is an existing bucket's name. Bucket and Endpoint are inputs, so that they can come
	// from the resources that make them (a bucket, an in-cluster store's Service); they are checked
	// (BucketProblem, EndpointProblem) once they resolve.
	Bucket pulumi.StringInput
	Region string
	// Endpoint is the store's base URL (nil or empty: AWS S3 of Region).
	Endpoint pulumi.StringInput
	// AllowHTTPEndpoint accepts an http:// Endpoint, for a store on a trusted network only: the
	// images (and presigned URLs) then travel in clear text.
	AllowHTTPEndpoint bool
	// ForcePathStyle addresses the bucket as endpoint/bucket instead of bucket.endpoint.
	ForcePathStyle bool
	// RootDirectory is the key prefix of every object ("" = the bucket's root).
	RootDirectory string
	// CABundlePEM replaces the system roots for TLS to Endpoint (a private CA).
	CABundlePEM string
	// Encrypt asks for server-side encryption, with KMSKeyID if set (else the store's key).
	Encrypt  bool
	KMSKeyID string
	// StorageClass of new objects (NONE: send none).
	StorageClass string
	// ChunkSize of multipart uploads in bytes (0: the driver's 10 MiB).
	ChunkSize int
	// Credentials: nil means the default AWS credential chain (IRSA, EKS Pod Identity, an
	// instance role), with ServiceAccountAnnotations binding the pods' ServiceAccount to it.
	Credentials               *S3Credentials
	ServiceAccountAnnotations map[string]string
	// Redirect sends blob downloads to the store (presigned URLs) instead of through the registry.
	Redirect bool
}

// S3Credentials is a static access key; both values are secrets.
type S3Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
}

// StorageArgs configures the storage. Exactly one driver is set.
type StorageArgs struct {
	// Required: namespace of the claim and of every Secret.
	Namespace pulumi.StringInput
	// Filesystem keeps the images on a PersistentVolumeClaim; every field its mode uses is
	// required (the defaults are stackconfig's).
	Filesystem *Filesystem
	// S3 keeps the images in an existing bucket; its credentials (if any) go to a Secret.
	S3 *S3
}

// Storage is the registry's storage: the objects it needs in the cluster and the Backend that
// tells the registry and its GC how to reach it.
type Storage struct {
	pulumi.ResourceState

	// ClaimName is the name of the PersistentVolumeClaim (filesystem driver; empty otherwise).
	ClaimName pulumi.StringOutput `pulumi:"claimName"`
	// VolumeName is the bound PersistentVolume (known after the claim binds in dynamic mode).
	VolumeName pulumi.StringOutput `pulumi:"volumeName"`

	// Backend is what every pod that reads or writes the images needs (not a resource output).
	Backend *Backend
}

// Backend is what the registry and its garbage collector need from the storage, whatever the
// driver: the storage section of config.yml, volumes, credentials and placement. The components
// that use it know no driver, path or credential of their own.
type Backend struct {
	// Driver names distribution's storage driver; Parameters are its config.yml parameters,
	// which never hold a credential (those arrive through Env, from a Secret). Inputs are the
	// parameters known only once other resources resolve (the S3 bucket and endpoint, checked):
	// WithInputs merges them when the config is rendered.
	Driver     string
	Parameters map[string]any
	Inputs     pulumi.StringMap
	// Redirect is storage.redirect for drivers that can redirect blob downloads (nil: no such
	// setting for this driver): true sends clients to the store with presigned URLs.
	Redirect *bool
	// Volumes are added to every pod that uses the storage; Mounts to its container that does.
	Volumes corev1.VolumeArray
	Mounts  corev1.VolumeMountArray
	// Env is added to the containers that use the storage (credentials from a Secret).
	Env corev1.EnvVarArray
	// Revision is what long-running pods read only at start besides their config (the S3
	// Secret's key and CA bundle), as a secret; nil when there is none. A change must roll them:
	// env from a Secret and the SDK's CA pool are not reloaded.
	Revision pulumi.StringInput
	// CoLocate: every pod that mounts the storage must run on one node (a ReadWriteOnce claim).
	CoLocate bool
	// ServiceAccountAnnotations bind the pods' ServiceAccount to a cloud identity that grants
	// access to the store (IRSA, EKS Pod Identity, ...); empty: no identity needed.
	ServiceAccountAnnotations map[string]string
	// Description says where the images are, for the stack outputs.
	Description pulumi.StringOutput

	// hostPath is the node directory of hostPath mode (empty otherwise): the kubelet creates it
	// root-owned, and fsGroup does not apply to it.
	hostPath string
	// fixOwnership: hand hostPath to the pods' user with a root init container (an opt-in).
	fixOwnership bool
}

// WithInputs is b with the resolved values of its Inputs added to its Parameters, as the
// registry's config.yml needs them.
func (b *Backend) WithInputs(resolved map[string]string) *Backend {
	out := *b
	out.Parameters = make(map[string]any, len(b.Parameters)+len(resolved))
	for k, v := range b.Parameters {
		out.Parameters[k] = v
	}
	for k, v := range resolved {
		out.Parameters[k] = v
	}
	return &out
}

// InitContainers are the containers a pod running image as uid needs before it can use the
// storage: in hostPath mode the ownership fix when asked for, else a check that the directory is
// writable (failing with what to do); nothing in other modes.
func (b *Backend) InitContainers(image string, uid int) corev1.ContainerArray {
	switch {
	case b.hostPath == "":
		return nil
	case b.fixOwnership:
		return corev1.ContainerArray{VolumeOwnershipContainer(image, uid, DataDir)}
	default:
		return corev1.ContainerArray{WritableCheckContainer(image, uid, DataDir, b.hostPath)}
	}
}

// Validate checks that every field the driver needs is set. It sets no defaults: those are in one
// table (stackconfig, also behind stackconfig.DefaultArgs), so this package cannot disagree.
func (a *StorageArgs) Validate() error {
	if a.Namespace == nil {
		return fmt.Errorf("storage: Namespace is required")
	}
	if (a.Filesystem == nil) == (a.S3 == nil) {
		return fmt.Errorf("storage: exactly one driver is required (Filesystem or S3)")
	}
	if a.S3 != nil {
		if a.S3.Bucket == nil || a.S3.Bucket == pulumi.String("") || a.S3.Region == "" {
			return fmt.Errorf("storage: S3 needs Bucket and Region")
		}
		if b, ok := a.S3.Bucket.(pulumi.String); ok {
			if why := BucketProblem(string(b)); why != "" {
				return fmt.Errorf("storage: S3.Bucket %q is invalid; allowed: %s", string(b), why)
			}
		}
		if e, ok := a.S3.Endpoint.(pulumi.String); ok {
			if why := EndpointProblem(string(e), a.S3.AllowHTTPEndpoint); why != "" {
				return fmt.Errorf("storage: S3.Endpoint %q is invalid; allowed: %s", string(e), why)
			}
		}
		return nil
	}
	fs := a.Filesystem
	var missing []string
	for field, v := range map[string]string{"ClaimSize": fs.ClaimSize, "AccessMode": fs.AccessMode} {
		if v == "" {
			missing = append(missing, field)
		}
	}
	switch fs.Mode {
	case ModeHostPath:
		if fs.HostPath == "" {
			missing = append(missing, "HostPath")
		}
		if fs.VolumeSize == "" {
			missing = append(missing, "VolumeSize")
		}
	case ModeDynamic:
		if fs.StorageClassName == "" {
			missing = append(missing, "StorageClassName")
		}
	case ModeExisting:
		if fs.VolumeName == "" {
			missing = append(missing, "VolumeName")
		}
	default:
		return fmt.Errorf("storage: unknown mode %q (allowed: %s, %s, %s)", fs.Mode, ModeHostPath, ModeDynamic, ModeExisting)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("storage: Filesystem in mode %q needs %s", fs.Mode, strings.Join(missing, ", "))
	}
	return nil
}

// NewStorage registers the claim (and the PV in hostPath mode).
func NewStorage(ctx *pulumi.Context, name string, args *StorageArgs, opts ...pulumi.ResourceOption) (*Storage, error) {
	if err := args.Validate(); err != nil {
		return nil, err
	}
	comp := &Storage{}
	if err := ctx.RegisterComponentResource("registry-stack:index:Storage", name, comp, opts...); err != nil {
		return nil, fmt.Errorf("storage: register component %q: %w", name, err)
	}
	var err error
	if args.S3 != nil {
		err = newS3(ctx, name, args.Namespace, args.S3, comp)
	} else {
		err = newFilesystem(ctx, name, args.Namespace, args.Filesystem, comp)
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"claimName":  comp.ClaimName,
		"volumeName": comp.VolumeName,
	}); err != nil {
		return nil, fmt.Errorf("storage: register outputs: %w", err)
	}
	return comp, nil
}

// newFilesystem registers the claim (and the PV in hostPath mode) of the filesystem driver and
// sets comp's outputs and Backend.
func newFilesystem(ctx *pulumi.Context, name string, namespace pulumi.StringInput, a *Filesystem, comp *Storage) error {
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
				Name:   pulumi.Sprintf("%s-%s", namespace, name),
				Labels: labels,
			},
			Spec: HostPathVolumeSpec(a.HostPath, a.VolumeSize, a.AccessMode, a.NodeName),
		}, keep...)
		if err != nil {
			return fmt.Errorf("storage: persistent volume: %w", err)
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
			return fmt.Errorf("storage: read StorageClass %q: %w", a.StorageClassName, err)
		}
		retain, err := storagev1.NewStorageClass(ctx, name+"-retain", &storagev1.StorageClassArgs{
			Metadata: &metav1.ObjectMetaArgs{
				// Cluster-scoped: the namespace keeps two stacks on one cluster apart.
				Name:   pulumi.Sprintf("%s-%s-retain", namespace, name),
				Labels: labels,
			},
			Provisioner:          source.Provisioner,
			Parameters:           source.Parameters,
			VolumeBindingMode:    source.VolumeBindingMode,
			AllowVolumeExpansion: source.AllowVolumeExpansion,
			AllowedTopologies:    source.AllowedTopologies,
			MountOptions:         source.MountOptions,
			ReclaimPolicy:        pulumi.String("Retain"),
		}, pulumi.Parent(comp),
			// A field the source class does not set is unknown in a preview (the read cannot tell
			// "absent" from "not known yet"), and a StorageClass is immutable: without this every
			// preview of a class with no parameters (minikube's, the sandbox's) would replace the
			// copy, the claim and the Deployment. A class's fields cannot change in place anyway.
			pulumi.IgnoreChanges([]string{"parameters", "allowedTopologies", "mountOptions"}))
		if err != nil {
			return fmt.Errorf("storage: retaining copy of StorageClass %q: %w", a.StorageClassName, err)
		}
		claimSpec.StorageClassName = retain.Metadata.Name().Elem()
	}

	claim, err := corev1.NewPersistentVolumeClaim(ctx, name, &corev1.PersistentVolumeClaimArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: namespace, Labels: labels},
		Spec:     claimSpec,
	}, keep...)
	if err != nil {
		return fmt.Errorf("storage: persistent volume claim: %w", err)
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
			return fmt.Errorf("storage: retain patch of volume %q: %w", a.VolumeName, err)
		}
	}

	comp.ClaimName = claim.Metadata.Name().Elem()
	comp.VolumeName = volumeName
	comp.Backend = FilesystemBackend(comp.ClaimName, a)
	return nil
}

// FilesystemBackend is the Backend of the filesystem driver on claimName, provisioned as fs says.
func FilesystemBackend(claimName pulumi.StringInput, fs *Filesystem) *Backend {
	b := &Backend{
		Description: pulumi.Sprintf("filesystem (claim, %s, %s)", fs.Mode, fs.AccessMode),
		Driver:      "filesystem",
		Parameters:  map[string]any{"rootdirectory": DataDir},
		Volumes: corev1.VolumeArray{&corev1.VolumeArgs{
			Name:                  pulumi.String("data"),
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSourceArgs{ClaimName: claimName},
		}},
		Mounts:   corev1.VolumeMountArray{&corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String(DataDir)}},
		CoLocate: fs.AccessMode == "ReadWriteOnce",
	}
	if fs.Mode == ModeHostPath {
		b.hostPath, b.fixOwnership = fs.HostPath, fs.ChownHostPath
	}
	return b
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

// WritableCheckContainer fails, saying what to do, when dir (the node's hostPath directory, mounted
// at mountPath) is not writable by uid: a registry on it would start, then fail every push. It
// runs as uid under the restricted profile. image must have sh, touch and rm.
func WritableCheckContainer(image string, uid int, mountPath, hostPath string) *corev1.ContainerArgs {
	sc := kube.ContainerSecurityContext()
	sc.RunAsUser, sc.RunAsGroup = pulumi.Int(uid), pulumi.Int(uid)
	msg := fmt.Sprintf("the hostPath directory %s is not writable by UID %d. Create it owned by that user on the node "+
		"(minikube: minikube ssh -- sudo install -d -o %d -g %d %s), or set storage.filesystem.chownHostPath=true "+
		"(a root init container; the namespace then enforces only the baseline Pod Security level)", hostPath, uid, uid, uid, hostPath)
	return &corev1.ContainerArgs{
		Name:            pulumi.String("volume-writable"),
		Image:           pulumi.String(image),
		ImagePullPolicy: pulumi.String("IfNotPresent"),
		Command: pulumi.ToStringArray([]string{"sh", "-c",
			`f="$1/.registry-stack-write-check"; if touch "$f" 2>/dev/null && rm -f "$f"; then exit 0; fi; echo "$2" >&2; exit 1`,
			"check", mountPath, msg}),
		Resources:       kube.Resources("10m", "16Mi", "64Mi"),
		SecurityContext: sc,
		VolumeMounts: corev1.VolumeMountArray{
			&corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String(mountPath)},
		},
	}
}

// VolumeOwnershipContainer hands dir to uid. It is the one container that runs as root, with
// CHOWN as its only capability; it never touches the contents. image must have chown. Only with
// storage.filesystem.chownHostPath: it needs the baseline Pod Security level.
func VolumeOwnershipContainer(image string, uid int, dir string) *corev1.ContainerArgs {
	return &corev1.ContainerArgs{
		Name:            pulumi.String("volume-ownership"),
		Image:           pulumi.String(image),
		ImagePullPolicy: pulumi.String("IfNotPresent"),
		Command:         pulumi.ToStringArray([]string{"chown", fmt.Sprintf("%d:%d", uid, uid), dir}),
		Resources:       kube.Resources("10m", "16Mi", "64Mi"),
		SecurityContext: &corev1.SecurityContextArgs{
			RunAsUser:                pulumi.Int(0),
			RunAsNonRoot:             pulumi.Bool(false),
			AllowPrivilegeEscalation: pulumi.Bool(false),
			ReadOnlyRootFilesystem:   pulumi.Bool(true),
			Capabilities: &corev1.CapabilitiesArgs{
				Drop: pulumi.ToStringArray([]string{"ALL"}),
				Add:  pulumi.ToStringArray([]string{"CHOWN"}),
			},
			SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
		},
		VolumeMounts: corev1.VolumeMountArray{
			&corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String(dir)},
		},
	}
}
