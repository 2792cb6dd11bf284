package stackconfig

import (
	"fmt"
	"maps"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/regstack/registry-stack/storage"
)

// Storage drivers (storage.filesystem or storage.s3): distribution's driver names.
const (
	DriverFilesystem = "filesystem"
	DriverS3         = "s3"
)

// Limits of distribution's s3 driver (v3.1.2) for the multipart chunk size.
const (
	MinS3ChunkSize = 5 << 20
	MaxS3ChunkSize = 5 << 30
)

var (
	// s3StorageClasses are the classes distribution's s3 driver accepts (NONE: the endpoint has none).
	s3StorageClasses = []string{"NONE", "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
		"INTELLIGENT_TIERING", "OUTPOSTS", "GLACIER_IR", "EXPRESS_ONEZONE"}
	// AWS region names; distribution checks the name against its AWS list when no endpoint is set.
	awsRegionPattern = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$`)
	// Any endpoint's region (signature v4 signs it; S3-compatible stores mostly accept any).
	s3RegionPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	s3PrefixPattern = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)
)

// storage builds the typed backend from the validated flat keys.
func (c *Config) storage() storage.Store {
	if c.StorageDriver == DriverS3 {
		s := &storage.S3{
			Bucket: pulumi.String(c.S3Bucket), Region: c.S3Region, ForcePathStyle: c.S3ForcePathStyle, AllowHTTPEndpoint: c.S3AllowHTTPEndpoint,
			RootDirectory: c.S3RootDirectory, CABundlePEM: c.S3CABundlePEM, Encrypt: c.S3Encrypt, KMSKeyID: c.S3KMSKeyID,
			StorageClass: c.S3StorageClass, ChunkSize: c.S3ChunkSize, Redirect: c.StorageRedirect,
		}
		if c.S3Endpoint != "" {
			s.Endpoint = pulumi.String(c.S3Endpoint)
		}
		if c.S3AccessKeyID != "" {
			s.Credentials = &storage.S3Credentials{AccessKeyID: c.S3AccessKeyID, SecretAccessKey: c.S3SecretAccessKey}
		}
		if len(c.S3ServiceAccountAnnotations) > 0 {
			s.ServiceAccountAnnotations = maps.Clone(c.S3ServiceAccountAnnotations)
		}
		return storage.Store{S3: s}
	}
	return storage.Store{Filesystem: &storage.Filesystem{
		Mode:             c.StorageMode,
		VolumeSize:       c.PVSize,
		ClaimSize:        c.PVCSize,
		AccessMode:       c.StorageAccessMode,
		HostPath:         c.StorageHostPath,
		StorageClassName: c.StorageClassName,
		VolumeName:       c.StorageVolumeName,
		NodeName:         c.StorageNodeName,
		ChownHostPath:    c.StorageHostPathChown,
	}}
}

// validateStorage checks the fields of the variant set (Parse refuses both variants at once, so no
// field of the other is silently ignored).
func (v *validator) validateStorage(c *Config) {
	if c.StorageDriver == DriverS3 {
		v.validateS3(c)
		return
	}
	v.validateFilesystem(c)
	if c.S3AccessKeyID != "" || c.S3SecretAccessKey != "" {
		// Not echoed: the values are credentials.
		v.bad("s3AccessKeyId", "<secret>", "unset unless storage.s3 is set: the key would be ignored by a volume")
	}
}

func (v *validator) validateFilesystem(c *Config) {
	v.oneOf("storage.filesystem.mode", c.StorageMode, storageModes)
	if c.hostPathKeysSet && c.StorageMode != StorageHostPath {
		v.bad("storage.filesystem.mode", c.StorageMode, "hostPath when storage.filesystem.hostPath or storage.filesystem.nodeName is set (they mean nothing in another mode); "+
			"the default storage.filesystem.mode is dynamic since 2026-12: a stack on a hostPath volume sets storage.filesystem.mode=hostPath to keep it")
	}
	if c.StorageHostPathChown && c.StorageMode != StorageHostPath {
		v.bad("storage.filesystem.chownHostPath", "true", "false unless storage.filesystem.mode is hostPath: only a hostPath directory needs its owner changed")
	}
	v.oneOf("storage.filesystem.accessMode", c.StorageAccessMode, accessModes)
	pv := v.quantity("storage.filesystem.pvSize", c.PVSize)
	pvc := v.quantity("storage.filesystem.pvcSize", c.PVCSize)
	switch c.StorageMode {
	case StorageHostPath:
		if c.StorageHostPath != "" && (!path.IsAbs(c.StorageHostPath) || path.Clean(c.StorageHostPath) != c.StorageHostPath || c.StorageHostPath == "/") {
			v.bad("storage.filesystem.hostPath", c.StorageHostPath, "an absolute, clean directory path other than / (e.g. /data/registry)")
		}
		if c.StorageAccessMode == "ReadWriteMany" {
			v.bad("storage.filesystem.accessMode", c.StorageAccessMode, "ReadWriteOnce with storage.filesystem.mode hostPath: hostPath volumes live on one node "+
				"(use storage.filesystem.mode dynamic with a ReadWriteMany class for replicas on several nodes)")
		}
		if c.StorageNodeName != "" {
			v.dnsSubdomain("storage.filesystem.nodeName", c.StorageNodeName)
		}
		if pv != nil && pvc != nil && pvc.Cmp(*pv) > 0 {
			v.bad("storage.filesystem.pvcSize", c.PVCSize, fmt.Sprintf("a size no larger than storage.filesystem.pvSize (%s): the claim must fit its volume", c.PVSize))
		}
	case StorageDynamic:
		v.dnsSubdomain("storage.filesystem.className", c.StorageClassName)
	case StorageExisting:
		if c.StorageVolumeName == "" {
			v.bad("storage.filesystem.volumeName", c.StorageVolumeName, "the name of an existing PersistentVolume (required when storage.filesystem.mode is existing)")
		} else {
			v.dnsSubdomain("storage.filesystem.volumeName", c.StorageVolumeName)
		}
		if c.StorageClassName != "" {
			v.dnsSubdomain("storage.filesystem.className", c.StorageClassName)
		}
	}
}

func (v *validator) validateS3(c *Config) {
	// The rules are storage's: the component checks a bucket or endpoint from another resource
	// with them once it resolves.
	if why := storage.BucketProblem(c.S3Bucket); why != "" {
		v.bad("storage.s3.bucket", c.S3Bucket, why)
	}
	var endpoint *url.URL
	if why := storage.EndpointProblem(c.S3Endpoint, c.S3AllowHTTPEndpoint); why != "" {
		v.bad("storage.s3.endpoint", c.S3Endpoint, why)
	} else if c.S3Endpoint != "" {
		endpoint, _ = url.Parse(c.S3Endpoint)
	}
	if c.S3AllowHTTPEndpoint && (endpoint == nil || endpoint.Scheme != "http") {
		v.bad("storage.s3.allowHttpEndpoint", "true", "false unless storage.s3.endpoint is an http:// URL")
	}
	switch {
	case c.S3Region == "":
		v.bad("storage.s3.region", c.S3Region, "the bucket's region, such as eu-west-1 (any name the store accepts with storage.s3.endpoint, e.g. us-east-1)")
	case c.S3Endpoint == "" && !awsRegionPattern.MatchString(c.S3Region):
		v.bad("storage.s3.region", c.S3Region, "an AWS region such as us-east-1 or eu-central-1 (storage.s3.endpoint is empty, so the store is AWS S3)")
	case !s3RegionPattern.MatchString(c.S3Region):
		v.bad("storage.s3.region", c.S3Region, "a region name of lower-case letters, digits and -")
	}
	if c.S3RootDirectory != "" && (!s3PrefixPattern.MatchString(c.S3RootDirectory) || path.Clean(c.S3RootDirectory) != c.S3RootDirectory) {
		v.bad("storage.s3.rootDirectory", c.S3RootDirectory, "empty (the bucket's root) or a clean prefix such as /registry or /envs/prod: "+
			"segments of letters, digits, . _ -, starting with /, no trailing /")
	}
	if c.S3CABundlePEM != "" {
		switch {
		case !isPEMCertificates(c.S3CABundlePEM):
			v.bad("storage.s3.caBundlePem", abbreviate(c.S3CABundlePEM), "empty, or PEM-encoded CA certificates (-----BEGIN CERTIFICATE----- ...)")
		case endpoint == nil || endpoint.Scheme != "https":
			v.bad("storage.s3.caBundlePem", abbreviate(c.S3CABundlePEM), "empty unless storage.s3.endpoint is an https:// URL: the bundle replaces "+
				"the system roots for every connection to the store")
		}
	}
	if c.S3KMSKeyID != "" && !c.S3Encrypt {
		v.bad("storage.s3.kmsKeyId", c.S3KMSKeyID, "empty unless storage.s3.encrypt is true (the key encrypts server-side)")
	}
	if c.S3KMSKeyID != "" && strings.ContainsAny(c.S3KMSKeyID, " \t\n") {
		v.bad("storage.s3.kmsKeyId", c.S3KMSKeyID, "a KMS key id, alias or ARN without spaces")
	}
	v.oneOf("storage.s3.storageClass", c.S3StorageClass, s3StorageClasses)
	if c.S3ChunkSize != 0 && (c.S3ChunkSize < MinS3ChunkSize || c.S3ChunkSize > MaxS3ChunkSize) {
		v.bad("storage.s3.chunkSize", fmt.Sprint(c.S3ChunkSize), fmt.Sprintf("0 (the driver's 10 MiB) or bytes from %d (5 MiB) to %d (5 GiB)", MinS3ChunkSize, MaxS3ChunkSize))
	}
	if (c.S3AccessKeyID == "") != (c.S3SecretAccessKey == "") {
		v.bad("s3AccessKeyId", "<secret>", "set together with s3SecretAccessKey (both with --secret), or neither for the default AWS credential chain")
	}
	for _, k := range slices.Sorted(maps.Keys(c.S3ServiceAccountAnnotations)) {
		if len(validation.IsQualifiedName(k)) > 0 {
			v.bad(fmt.Sprintf("storage.s3.serviceAccountAnnotations[%q]", k), c.S3ServiceAccountAnnotations[k],
				"an entry whose key is a Kubernetes annotation key, such as eks.amazonaws.com/role-arn")
		}
	}
	if c.S3AccessKeyID != "" && len(c.S3ServiceAccountAnnotations) > 0 {
		v.bad("storage.s3.serviceAccountAnnotations", strings.Join(slices.Sorted(maps.Keys(c.S3ServiceAccountAnnotations)), ","), "empty when s3AccessKeyId is set: "+
			"a static key takes precedence, so a workload identity would never be used")
	}
}
