package storage

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
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

// S3Parameters are the s3 driver's config.yml parameters but the bucket and the endpoint (inputs,
// see S3Inputs) and the credentials, which reach the driver through REGISTRY_STORAGE_S3_*
// variables from the Secret.
func S3Parameters(s3 *S3) map[string]any {
	p := map[string]any{
		"region":         s3.Region,
		"forcepathstyle": s3.ForcePathStyle,
		"encrypt":        s3.Encrypt,
		"storageclass":   s3.StorageClass,
		// Private objects only: nobody reads the bucket but the registry (and presigned URLs).
		"objectacl": "private",
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
		Inputs:                    S3Inputs(s3),
		Redirect:                  &redirect,
		ServiceAccountAnnotations: s3.ServiceAccountAnnotations,
		Description: pulumi.All(s3.Bucket, endpointOf(s3)).ApplyT(func(v []any) string {
			return S3Description(s3, v[0].(string), v[1].(string))
		}).(pulumi.StringOutput),
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

// S3Description names the bucket, prefix and store (bucket and endpoint resolved).
func S3Description(s3 *S3, bucket, endpoint string) string {
	where := "AWS S3 " + s3.Region
	if endpoint != "" {
		where = endpoint
	}
	prefix := s3.RootDirectory
	if prefix == "" {
		prefix = "/"
	}
	redirect := "off"
	if s3.Redirect {
		redirect = "on"
	}
	return fmt.Sprintf("s3 (bucket %s, prefix %s, %s, redirect %s)", bucket, prefix, where, redirect)
}

// endpointOf is the endpoint input ("" for AWS S3 when none is given).
func endpointOf(s3 *S3) pulumi.StringInput {
	if s3.Endpoint == nil {
		return pulumi.String("")
	}
	return s3.Endpoint
}

// S3Inputs are the parameters that may come from other resources, each checked once it resolves:
// a bucket or endpoint that is not what the driver can use fails the deployment, naming it.
func S3Inputs(s3 *S3) pulumi.StringMap {
	in := pulumi.StringMap{"bucket": s3.Bucket.ToStringOutput().ApplyT(func(b string) (string, error) {
		if why := BucketProblem(b); why != "" {
			return "", fmt.Errorf("storage: S3.Bucket %q is invalid; allowed: %s", b, why)
		}
		return b, nil
	}).(pulumi.StringOutput)}
	if s3.Endpoint != nil {
		// An empty endpoint is AWS S3: the parameter is then omitted (regionendpoint "" is the same).
		in["regionendpoint"] = s3.Endpoint.ToStringOutput().ApplyT(func(e string) (string, error) {
			if why := EndpointProblem(e, s3.AllowHTTPEndpoint); why != "" {
				return "", fmt.Errorf("storage: S3.Endpoint %q is invalid; allowed: %s", e, why)
			}
			return e, nil
		}).(pulumi.StringOutput)
	}
	return in
}

var (
	// S3 general-purpose bucket names (AWS rules; other stores accept these too).
	s3BucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// BucketProblem says what a bucket name must be ("" when b is one).
func BucketProblem(b string) string {
	switch {
	case b == "":
		return "the name of an existing bucket (the stack never creates it)"
	case !s3BucketPattern.MatchString(b) || strings.Contains(b, "..") || net.ParseIP(b) != nil ||
		strings.HasPrefix(b, "xn--") || strings.HasSuffix(b, "-s3alias"):
		return "an S3 bucket name: 3-63 lower-case letters, digits, . and -, starting and ending with a letter or digit, not an IP address"
	}
	return ""
}

// EndpointProblem says what an endpoint must be ("" when e is one; empty e is AWS S3): http only
// with allowHTTP.
func EndpointProblem(e string, allowHTTP bool) string {
	if e == "" {
		return ""
	}
	u, err := url.Parse(e)
	switch {
	case err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "empty for AWS S3, or the store's base URL such as https://s3.example.com or https://minio.storage:9000"
	case u.Scheme == "http" && !allowHTTP:
		return "an https:// URL: over http the images (and, with redirect, the presigned URLs clients follow) travel in clear text; " +
			"allow http only for a store reachable on a trusted network (storage.s3.allowHttpEndpoint)"
	case u.Scheme != "http" && u.Scheme != "https":
		return "an https:// URL"
	}
	return ""
}
