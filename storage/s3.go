package storage

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
)

// Keys of the S3 Secret, and where the CA bundle is mounted.
const (
	S3AccessKeyKey = "accessKeyId"
	S3SecretKeyKey = "secretAccessKey"
	S3CABundleKey  = "ca.pem"
	s3CADir        = "/etc/registry-s3"
)

// newS3 registers the Secret holding the S3 credentials and CA bundle (when there are any) and
// sets comp's Backend. Nothing is created in the bucket: the registry writes its objects, and
// `pulumi destroy` leaves them.
func newS3(ctx *pulumi.Context, name string, namespace pulumi.StringInput, s3 *S3, comp *Storage) error {
	comp.ClaimName = pulumi.String("").ToStringOutput()
	comp.VolumeName = pulumi.String("").ToStringOutput()
	secretName := pulumi.String("").ToStringOutput()
	data := S3SecretData(s3)
	if len(data) > 0 {
		secret, err := corev1.NewSecret(ctx, name+"-s3", &corev1.SecretArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(name + "-s3"), Namespace: namespace,
				Labels: kube.StringMap(kube.Labels("registry", name, "storage")),
			},
			Type:       pulumi.String("Opaque"),
			StringData: pulumi.ToSecret(pulumi.ToStringMap(data)).(pulumi.StringMapOutput),
		}, pulumi.Parent(comp))
		if err != nil {
			return fmt.Errorf("storage: S3 secret: %w", err)
		}
		secretName = secret.Metadata.Name().Elem()
	}
	comp.Backend = S3Backend(s3, secretName)
	if len(data) > 0 {
		keys := slices.Sorted(maps.Keys(data))
		var text strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&text, "%s=%s\n", k, data[k])
		}
		comp.Backend.Revision = pulumi.ToSecret(pulumi.String(text.String())).(pulumi.StringOutput)
	}
	return nil
}

// S3SecretData is what the S3 Secret holds: the static key and the CA bundle, each only if set.
func S3SecretData(s3 *S3) map[string]string {
	data := map[string]string{}
	if c := s3.Credentials; c != nil {
		data[S3AccessKeyKey], data[S3SecretKeyKey] = c.AccessKeyID, c.SecretAccessKey
	}
	if s3.CABundlePEM != "" {
		data[S3CABundleKey] = s3.CABundlePEM
	}
	return data
}

// S3Parameters are the s3 driver's config.yml parameters: everything but the credentials, which
// reach the driver through REGISTRY_STORAGE_S3_* variables from the Secret.
func S3Parameters(s3 *S3) map[string]any {
	p := map[string]any{
		"bucket":         s3.Bucket,
		"region":         s3.Region,
		"forcepathstyle": s3.ForcePathStyle,
		"encrypt":        s3.Encrypt,
		"storageclass":   s3.StorageClass,
		// Private objects only: nobody reads the bucket but the registry (and presigned URLs).
		"objectacl": "private",
	}
	if s3.Endpoint != "" {
		p["regionendpoint"] = s3.Endpoint
	}
	if s3.RootDirectory != "" {
		p["rootdirectory"] = s3.RootDirectory
	}
	if s3.KMSKeyID != "" {
		p["keyid"] = s3.KMSKeyID
	}
	if s3.ChunkSize != 0 {
		p["chunksize"] = s3.ChunkSize
	}
	return p
}

// S3Backend is the Backend of the s3 driver; secretName is the S3 Secret (unused when
// S3SecretData is empty).
func S3Backend(s3 *S3, secretName pulumi.StringInput) *Backend {
	redirect := s3.Redirect
	b := &Backend{
		Driver:                    "s3",
		Parameters:                S3Parameters(s3),
		Redirect:                  &redirect,
		ServiceAccountAnnotations: s3.ServiceAccountAnnotations,
		Description:               S3Description(s3),
	}
	fromSecret := func(env, key string) *corev1.EnvVarArgs {
		return &corev1.EnvVarArgs{Name: pulumi.String(env), ValueFrom: &corev1.EnvVarSourceArgs{
			SecretKeyRef: &corev1.SecretKeySelectorArgs{Name: secretName, Key: pulumi.String(key)},
		}}
	}
	if s3.Credentials != nil {
		// The registry's documented overrides of storage.s3.accesskey/secretkey: the key never
		// appears in config.yml.
		b.Env = append(b.Env, fromSecret("REGISTRY_STORAGE_S3_ACCESSKEY", S3AccessKeyKey), fromSecret("REGISTRY_STORAGE_S3_SECRETKEY", S3SecretKeyKey))
	}
	if s3.CABundlePEM != "" {
		// The AWS SDK (v1, in distribution's s3 driver) trusts exactly this bundle for the store.
		b.Env = append(b.Env, &corev1.EnvVarArgs{Name: pulumi.String("AWS_CA_BUNDLE"), Value: pulumi.String(s3CADir + "/" + S3CABundleKey)})
		b.Volumes = corev1.VolumeArray{&corev1.VolumeArgs{Name: pulumi.String("s3-ca"), Secret: &corev1.SecretVolumeSourceArgs{
			SecretName: secretName, DefaultMode: pulumi.Int(0o444),
			Items: corev1.KeyToPathArray{&corev1.KeyToPathArgs{Key: pulumi.String(S3CABundleKey), Path: pulumi.String(S3CABundleKey)}},
		}}}
		b.Mounts = corev1.VolumeMountArray{&corev1.VolumeMountArgs{Name: pulumi.String("s3-ca"), MountPath: pulumi.String(s3CADir), ReadOnly: pulumi.Bool(true)}}
	}
	return b
}

// S3Description names the bucket, prefix and store.
func S3Description(s3 *S3) string {
	where := "AWS S3 " + s3.Region
	if s3.Endpoint != "" {
		where = s3.Endpoint
	}
	prefix := s3.RootDirectory
	if prefix == "" {
		prefix = "/"
	}
	redirect := "off"
	if s3.Redirect {
		redirect = "on"
	}
	return fmt.Sprintf("s3 (bucket %s, prefix %s, %s, redirect %s)", s3.Bucket, prefix, where, redirect)
}
