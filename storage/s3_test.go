package storage

import (
	"fmt"
	"strings"
	"testing"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
)

const tSecret = "kubernetes:core/v1:Secret"

func s3Args(s3 *S3) *StorageArgs {
	return &StorageArgs{Namespace: pulumi.String("images"), S3: s3}
}

// S3 mode creates no volume at all, only the Secret with the credentials and the CA bundle.
func TestS3ModeRegistersOnlyItsSecret(t *testing.T) {
	s3 := &S3{Bucket: pulumi.String("images"), Region: "us-east-1", Endpoint: pulumi.String("https://s3.example.com"),
		CABundlePEM: "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n",
		Credentials: &S3Credentials{AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "example-secret"}}
	var b *Backend
	var claim string
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		s, err := NewStorage(ctx, "data", s3Args(s3))
		if err != nil {
			return err
		}
		b, claim = s.Backend, resolve(t, s.ClaimName)
		return nil
	})
	for _, typ := range []string{tPV, tPVC, tStorageClass, tPVPatch} {
		if n := len(m.OfType(typ)); n != 0 {
			t.Errorf("S3 mode registered %d %s", n, typ)
		}
	}
	if claim != "" {
		t.Errorf("claimName = %q in S3 mode", claim)
	}
	secret := m.Get(t, tSecret, "data-s3")
	for key, want := range map[string]string{S3AccessKeyKey: "AKIAEXAMPLE", S3SecretKeyKey: "example-secret", S3CABundleKey: s3.CABundlePEM} {
		if secret.String("stringData", key) != want || !secret.IsSecret("stringData", key) {
			t.Errorf("Secret key %s = %q (secret %v), want %q marked secret", key, secret.String("stringData", key), secret.IsSecret("stringData", key), want)
		}
	}
	if b.Driver != "s3" || b.CoLocate || len(b.InitContainers("registry:3.1.2", 1000)) != 0 {
		t.Errorf("backend = %+v: want driver s3, no co-location, no init container", *b)
	}
	if b.Redirect == nil || *b.Redirect {
		t.Errorf("redirect = %v, want an explicit off", b.Redirect)
	}
	env := envText(t, b)
	for _, want := range []string{"REGISTRY_STORAGE_S3_ACCESSKEY", "REGISTRY_STORAGE_S3_SECRETKEY", "AWS_CA_BUNDLE"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s: %s", want, env)
		}
	}
	if strings.Contains(env, "AKIAEXAMPLE") || strings.Contains(env, "example-secret") {
		t.Errorf("a credential is in the pod env as a value, not a Secret reference: %s", env)
	}
}

// Without a key and a CA (a workload identity on AWS) there is nothing secret to store.
func TestS3WithWorkloadIdentityHasNoSecret(t *testing.T) {
	s3 := &S3{Bucket: pulumi.String("images"), Region: "eu-west-1",
		ServiceAccountAnnotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}}
	var b *Backend
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		s, err := NewStorage(ctx, "data", s3Args(s3))
		b = s.Backend
		return err
	})
	if n := len(m.OfType(tSecret)); n != 0 {
		t.Errorf("%d Secrets with no credential to keep", n)
	}
	if len(b.Env) != 0 || len(b.Volumes) != 0 || b.ServiceAccountAnnotations["eks.amazonaws.com/role-arn"] == "" {
		t.Errorf("backend = %+v: want no env, no volume, the identity annotation", *b)
	}
}

// Placement per backend: only a ReadWriteOnce claim co-locates its pods; only hostPath needs
// the ownership fix.
func TestPlacementPerBackend(t *testing.T) {
	for _, c := range []struct {
		name     string
		b        *Backend
		coLocate bool
		init     string
	}{
		{"hostPath", FilesystemBackend(pulumi.String("c"), &Filesystem{Mode: ModeHostPath, HostPath: "/data/r", AccessMode: "ReadWriteOnce"}), true, "volume-writable"},
		{"hostPath chown", FilesystemBackend(pulumi.String("c"), &Filesystem{Mode: ModeHostPath, HostPath: "/data/r", AccessMode: "ReadWriteOnce", ChownHostPath: true}), true, "volume-ownership"},
		{"dynamic RWO", FilesystemBackend(pulumi.String("c"), &Filesystem{Mode: ModeDynamic, AccessMode: "ReadWriteOnce"}), true, ""},
		{"dynamic RWX", FilesystemBackend(pulumi.String("c"), &Filesystem{Mode: ModeDynamic, AccessMode: "ReadWriteMany"}), false, ""},
		{"dynamic, ChownHostPath ignored", FilesystemBackend(pulumi.String("c"), &Filesystem{Mode: ModeDynamic, AccessMode: "ReadWriteMany", ChownHostPath: true}), false, ""},
		{"s3", S3Backend(&S3{Bucket: pulumi.String("b"), Region: "r"}, nil), false, ""},
	} {
		var names []string
		for _, ic := range c.b.InitContainers("img", 1000) {
			names = append(names, fmt.Sprint(ic.(*corev1.ContainerArgs).Name))
		}
		if c.b.CoLocate != c.coLocate || strings.Join(names, ",") != c.init {
			t.Errorf("%s: coLocate=%v init=%v, want %v %q", c.name, c.b.CoLocate, names, c.coLocate, c.init)
		}
	}
}

// envText lists the Backend's env as NAME=value or NAME=<from secret KEY>.
func envText(t *testing.T, b *Backend) string {
	t.Helper()
	var parts []string
	for _, e := range b.Env {
		a, ok := e.(*corev1.EnvVarArgs)
		if !ok {
			t.Fatalf("env %T is not an EnvVarArgs", e)
		}
		v := "<from secret>"
		if a.Value != nil {
			v = string(a.Value.(pulumi.String))
		}
		if a.ValueFrom != nil && a.Value != nil {
			t.Errorf("env %v has both a value and a source", a.Name)
		}
		parts = append(parts, string(a.Name.(pulumi.String))+"="+v)
	}
	return strings.Join(parts, " ")
}
