package stackconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws/endpoints"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/registrystack"
)

// s3Base is a valid S3 configuration on an S3-compatible store; cases change one key.
func s3Base() map[string]string {
	return map[string]string{
		"storage.s3.bucket": "registry-images", "storage.s3.region": "us-east-1",
		"storage.s3.endpoint": "https://s3.storage.svc:7070", "storage.s3.forcePathStyle": "true",
		"s3AccessKeyId": "AKIAEXAMPLE", "s3SecretAccessKey": "secret-example-key",
	}
}

func TestS3ConfigIsTyped(t *testing.T) {
	in := s3Base()
	in["storage.s3.rootDirectory"], in["storage.s3.encrypt"], in["storage.s3.kmsKeyId"], in["storage.s3.storageClass"] = "/envs/prod", "true", "alias/registry", "STANDARD_IA"
	in["storage.s3.chunkSize"], in["storage.s3.redirect"], in["storage.s3.caBundlePem"] = "16777216", "true", testCAPEM(t)
	c, err := parse(in)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Storage.S3
	if c.Storage.Filesystem != nil || s == nil {
		t.Fatalf("storage = %+v, want only S3", c.Storage)
	}
	if s.Bucket != pulumi.String("registry-images") || s.Region != "us-east-1" || s.Endpoint != pulumi.String("https://s3.storage.svc:7070") || !s.ForcePathStyle ||
		s.RootDirectory != "/envs/prod" || !s.Encrypt || s.KMSKeyID != "alias/registry" || s.StorageClass != "STANDARD_IA" ||
		s.ChunkSize != 16<<20 || !s.Redirect || s.CABundlePEM == "" {
		t.Errorf("S3 = %+v", *s)
	}
	if s.Credentials == nil || s.Credentials.AccessKeyID != "AKIAEXAMPLE" || s.Credentials.SecretAccessKey != "secret-example-key" {
		t.Errorf("credentials = %+v", s.Credentials)
	}

	// No key: the default AWS chain, bound to a workload identity through the ServiceAccount.
	irsa := map[string]string{"storage.s3.bucket": "images", "storage.s3.region": "eu-west-1",
		"storage.s3.serviceAccountAnnotations": `{"eks.amazonaws.com/role-arn":"arn:aws:iam::123456789012:role/registry"}`}
	c, err = parse(irsa)
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.S3.Credentials != nil || c.Storage.S3.ServiceAccountAnnotations["eks.amazonaws.com/role-arn"] != "arn:aws:iam::123456789012:role/registry" {
		t.Errorf("workload identity = %+v", *c.Storage.S3)
	}
	if c.Storage.S3.Endpoint != nil || c.Storage.S3.StorageClass != "STANDARD" {
		t.Errorf("defaults: endpoint %v (want AWS), storage class %q (want STANDARD)", c.Storage.S3.Endpoint, c.Storage.S3.StorageClass)
	}
}

func TestFilesystemIsTheDefaultDriver(t *testing.T) {
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.S3 != nil || c.Storage.Filesystem == nil || c.Storage.Filesystem.Mode != StorageDynamic || c.Storage.Filesystem.ChownHostPath {
		t.Errorf("default storage = %+v, want the filesystem driver in dynamic mode, no ownership fix", c.Storage)
	}
}

// Every pod of the default stack meets restricted; only the hostPath ownership fix, asked for
// explicitly, lowers the level, and only to baseline.
func TestPodSecurityLevel(t *testing.T) {
	for _, c := range []struct {
		values map[string]string
		want   string
	}{
		{nil, registrystack.PodSecurityRestricted},
		{map[string]string{"storage.filesystem.mode": "hostPath"}, registrystack.PodSecurityRestricted},
		{map[string]string{"storage.filesystem.mode": "hostPath", "storage.filesystem.chownHostPath": "true"}, registrystack.PodSecurityBaseline},
	} {
		cfg, err := parse(c.values)
		if err != nil {
			t.Fatalf("%v: %v", c.values, err)
		}
		if got := cfg.Args().PodSecurityLevel(); got != c.want {
			t.Errorf("%v: level %q, want %q", c.values, got, c.want)
		}
		if got := cfg.Storage.Filesystem.ChownHostPath; got != (c.want == registrystack.PodSecurityBaseline) {
			t.Errorf("%v: ChownHostPath = %v", c.values, got)
		}
	}
}

// A credential typed in plain text (`pulumi config set` without --secret) is refused, and the
// message never repeats it.
func TestPlaintextS3CredentialsAreRefused(t *testing.T) {
	for _, key := range []string{"s3AccessKeyId", "s3SecretAccessKey"} {
		t.Run(key, func(t *testing.T) {
			secret := map[string]bool{"s3AccessKeyId": true, "s3SecretAccessKey": true}
			delete(secret, key)
			_, err := parseWithSecrets(s3Base(), secret)
			if err == nil {
				t.Fatal("plaintext credential accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, key) || !strings.Contains(msg, "--secret") {
				t.Errorf("error %q does not name %s and --secret", msg, key)
			}
			if strings.Contains(msg, s3Base()[key]) {
				t.Errorf("error repeats the credential: %q", msg)
			}
		})
	}
}

func TestInvalidS3ValuesAreRefused(t *testing.T) {
	for _, c := range []struct {
		name, key, value string
		also             map[string]string
		want             string // a fragment of the allowed text
	}{
		{"bucket missing", "storage.s3.bucket", "", nil, "existing bucket"},
		{"bucket too short", "storage.s3.bucket", "ab", nil, "S3 bucket name"},
		{"bucket upper case", "storage.s3.bucket", "Registry", nil, "S3 bucket name"},
		{"bucket underscore", "storage.s3.bucket", "my_bucket", nil, "S3 bucket name"},
		{"bucket ends with dash", "storage.s3.bucket", "images-", nil, "S3 bucket name"},
		{"bucket double dot", "storage.s3.bucket", "my..images", nil, "S3 bucket name"},
		{"bucket is an IP", "storage.s3.bucket", "192.168.1.10", nil, "not an IP address"},
		{"bucket reserved prefix", "storage.s3.bucket", "xn--images", nil, "S3 bucket name"},
		{"bucket too long", "storage.s3.bucket", strings.Repeat("a", 64), nil, "S3 bucket name"},
		{"region missing", "storage.s3.region", "", nil, "region"},
		{"region not AWS without endpoint", "storage.s3.region", "garage", map[string]string{"storage.s3.endpoint": "", "storage.s3.forcePathStyle": "false"}, "an AWS region"},
		{"region with spaces", "storage.s3.region", "us east", nil, "lower-case"},
		{"endpoint not a URL", "storage.s3.endpoint", "s3.example.com", nil, "base URL"},
		{"endpoint with path", "storage.s3.endpoint", "https://s3.example.com/bucket", nil, "base URL"},
		{"endpoint with credentials", "storage.s3.endpoint", "https://user:pw@s3.example.com", nil, "base URL"},
		{"endpoint plain http", "storage.s3.endpoint", "http://s3.storage:7070", nil, "storage.s3.allowHttpEndpoint"},
		{"endpoint ftp", "storage.s3.endpoint", "ftp://s3.example.com", nil, "https://"},
		{"http allowed but endpoint https", "storage.s3.allowHttpEndpoint", "true", nil, "http:// URL"},
		{"root directory relative", "storage.s3.rootDirectory", "registry", nil, "clean prefix"},
		{"root directory trailing slash", "storage.s3.rootDirectory", "/registry/", nil, "clean prefix"},
		{"root directory dot-dot", "storage.s3.rootDirectory", "/a/../b", nil, "clean prefix"},
		{"root directory space", "storage.s3.rootDirectory", "/my images", nil, "clean prefix"},
		{"CA bundle not PEM", "storage.s3.caBundlePem", "not a certificate", nil, "PEM"},
		{"CA bundle without https endpoint", "storage.s3.caBundlePem", "", map[string]string{"storage.s3.endpoint": ""}, "https:// URL"},
		{"KMS key without encryption", "storage.s3.kmsKeyId", "alias/registry", nil, "storage.s3.encrypt"},
		{"storage class unknown", "storage.s3.storageClass", "GLACIER", nil, "one of"},
		{"chunk size too small", "storage.s3.chunkSize", "1048576", nil, "5 MiB"},
		{"chunk size too big", "storage.s3.chunkSize", "6442450944", nil, "5 GiB"},
		{"chunk size not a number", "storage.s3.chunkSize", "10Mi", nil, "whole number"},
		{"secret key without access key", "s3AccessKeyId", "", nil, "together"},
		{"annotations not an object", "storage.s3.serviceAccountAnnotations", `["eks.amazonaws.com/role-arn=arn:x"]`, map[string]string{"s3AccessKeyId": "", "s3SecretAccessKey": ""}, "an object of names"},
		{"annotation bad key", "storage.s3.serviceAccountAnnotations", `{"bad key":"x"}`, map[string]string{"s3AccessKeyId": "", "s3SecretAccessKey": ""}, "annotation key"},
		{"identity and static key", "storage.s3.serviceAccountAnnotations", `{"eks.amazonaws.com/role-arn":"arn:x"}`, nil, "static key takes precedence"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := s3Base()
			for k, v := range c.also {
				in[k] = v
			}
			in[c.key] = c.value
			if c.name == "CA bundle without https endpoint" {
				in[c.key] = testCAPEM(t)
			}
			_, err := parse(in)
			if err == nil {
				t.Fatalf("%s=%q accepted", c.key, c.value)
			}
			if !strings.Contains(err.Error(), `"`+c.key) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %s or say %q", err, c.key, c.want)
			}
		})
	}
}

func TestPlainHTTPEndpointNeedsTheExplicitSwitch(t *testing.T) {
	in := s3Base()
	in["storage.s3.endpoint"], in["storage.s3.allowHttpEndpoint"] = "http://s3.storage:7070", "true"
	if _, err := parse(in); err != nil {
		t.Errorf("http endpoint with storage.s3.allowHttpEndpoint refused: %v", err)
	}
}

// testCAPEM is a self-signed CA certificate in PEM.
func testCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// Without an endpoint the s3 driver accepts only the AWS regions it knows: the pattern must accept
// every one of them (and so never refuse a region the driver takes).
func TestAWSRegionPatternAcceptsTheDriversRegions(t *testing.T) {
	n := 0
	for _, p := range endpoints.DefaultPartitions() {
		for region := range p.Regions() {
			n++
			if !awsRegionPattern.MatchString(region) {
				t.Errorf("AWS region %q refused by the pattern", region)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d regions listed: the check proves nothing", n)
	}
}
