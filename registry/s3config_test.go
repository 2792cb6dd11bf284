package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws" // registers "s3"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"

	"github.com/regstack/registry-stack/storage"
)

func s3Storage() *storage.S3 {
	return &storage.S3{
		Bucket: pulumi.String("registry-images"), Region: "us-east-1", Endpoint: pulumi.String("https://s3.storage.svc:7070"), ForcePathStyle: true,
		RootDirectory: "/envs/prod", Encrypt: true, KMSKeyID: "alias/registry", StorageClass: "STANDARD_IA", ChunkSize: 16 << 20,
		Credentials: &storage.S3Credentials{AccessKeyID: "AKIAEXAMPLEKEYID", SecretAccessKey: "example-secret-access-key"},
		Redirect:    true,
	}
}

// Every S3 setting arrives where distribution's s3 driver reads it, the credentials only through
// the pods' environment (as the Secret supplies them), never in config.yml.
func TestS3ConfigReachesTheDriver(t *testing.T) {
	s3 := s3Storage()
	in := cacheInput
	in.Storage = resolved(t, storage.S3Backend(s3, nil))
	raw, err := RenderConfig(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{s3.Credentials.AccessKeyID, s3.Credentials.SecretAccessKey, "accesskey", "secretkey"} {
		if strings.Contains(raw, secret) {
			t.Errorf("config.yml contains %q: credentials come from the Secret through the environment only", secret)
		}
	}
	// What the pods' environment holds, by the names the Backend sets.
	for _, e := range envNames(t, in.Storage) {
		switch e {
		case "REGISTRY_STORAGE_S3_ACCESSKEY":
			t.Setenv(e, s3.Credentials.AccessKeyID)
		case "REGISTRY_STORAGE_S3_SECRETKEY":
			t.Setenv(e, s3.Credentials.SecretAccessKey)
		}
	}
	cfg, err := configuration.Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("registry rejects its S3 config: %v\n%s", err, raw)
	}
	if got := cfg.Storage.Type(); got != "s3" {
		t.Fatalf("storage driver = %q, want s3\n%s", got, raw)
	}
	p := cfg.Storage.Parameters()
	for key, want := range map[string]any{
		"bucket": "registry-images", "region": "us-east-1", "regionendpoint": "https://s3.storage.svc:7070",
		"forcepathstyle": true, "rootdirectory": "/envs/prod", "encrypt": true, "keyid": "alias/registry",
		"storageclass": "STANDARD_IA", "chunksize": 16 << 20, "objectacl": "private",
		"accesskey": s3.Credentials.AccessKeyID, "secretkey": s3.Credentials.SecretAccessKey,
	} {
		if fmt.Sprint(p[key]) != fmt.Sprint(want) {
			t.Errorf("storage.s3.%s = %#v, want %#v", key, p[key], want)
		}
	}
	if got := param(cfg.Storage["redirect"], "disable"); got != false {
		t.Errorf("storage.redirect.disable = %v, want false (storage.s3.redirect on)", got)
	}
	if got := param(cfg.Storage["delete"], "enabled"); got != true {
		t.Errorf("storage.delete.enabled = %v, want true (GC and manifest deletes)", got)
	}

	// The driver itself accepts the parameters (it builds its client; no request is sent).
	if _, err := factory.Create(context.Background(), "s3", p); err != nil {
		t.Errorf("s3 driver refuses the parameters: %v", err)
	}

	off := *s3
	off.Redirect = false
	in.Storage = resolved(t, storage.S3Backend(&off, nil))
	cfg, _ = parse(t, in)
	if got := param(cfg.Storage["redirect"], "disable"); got != true {
		t.Errorf("storage.redirect.disable = %v, want true by default: clients may not reach the store", got)
	}
}

// The filesystem driver has no redirect: its config has no redirect section at all.
func TestFilesystemConfigHasNoRedirect(t *testing.T) {
	cfg, _ := parse(t, cacheInput)
	if cfg.Storage["redirect"] != nil || cfg.Storage.Type() != "filesystem" {
		t.Errorf("filesystem storage = %v", cfg.Storage)
	}
}

// resolved is b with its inputs resolved, as the registry renders its config.
func resolved(t *testing.T, b *storage.Backend) *storage.Backend {
	t.Helper()
	res, err := internals.UnsafeAwaitOutput(context.Background(), b.Inputs.ToStringMapOutput())
	if err != nil || !res.Known {
		t.Fatalf("storage inputs: known %v, %v", res.Known, err)
	}
	return b.WithInputs(res.Value.(map[string]string))
}

func envNames(t *testing.T, b *storage.Backend) []string {
	t.Helper()
	var names []string
	for _, e := range b.Env {
		args, ok := e.(*corev1.EnvVarArgs)
		if !ok {
			t.Fatalf("env %T is not an EnvVarArgs", e)
		}
		names = append(names, string(args.Name.(pulumi.String)))
	}
	return names
}
