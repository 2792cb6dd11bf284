//go:build e2e

package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/regstack/registry-stack/e2e/kit"
)

// TestE2ES3 deploys the stack a second time with storageDriver s3, against an S3 server the suite
// runs as a test fixture (versitygw over a directory, TLS from a CA of the test's own, reached
// through the stack's s3CaBundlePem), and runs the steps whose outcome depends on the storage:
// GC on an empty bucket, push/pull, uploads across replicas, objects in the bucket and on no claim,
// GC under load, a clean preview and refresh after GC, replica loss, Redis down, and destroy
// leaving the bucket as it was.
func TestE2ES3(t *testing.T) {
	f := &fixture{Fixture: kit.NewFixture(t)}
	f.RunSteps(t, []kit.Step{
		{Name: "s3_store_fixture", Run: f.stepS3Store, Critical: true},
		{Name: "deploy", Run: f.stepDeploy, Critical: true},
		{Name: "preview_no_changes", Run: f.stepPreviewNoChanges},
		{Name: "auth_through_ingress", Run: f.stepAuth, Critical: true},
		{Name: "gc_on_empty_bucket", Run: f.stepGCEmpty},
		{Name: "push_pull", Run: f.stepPushPull, Critical: true},
		{Name: "uploads_across_replicas", Run: f.stepUploadsAcrossReplicas},
		{Name: "objects_in_bucket", Run: f.stepObjectsInBucket},
		{Name: "gc_under_load", Run: f.stepGCUnderLoad},
		{Name: "preview_after_gc", Run: f.stepPreviewAfterGC},
		{Name: "replica_loss", Run: f.stepReplicaLoss},
		{Name: "redis_down", Run: f.stepRedisDown},
		{Name: "destroy_keeps_bucket", Run: f.stepDestroyKeepsBucket},
	})
}

// stepS3Store deploys the S3 store fixture and points the suite's stack at it.
func (f *fixture) stepS3Store(t *testing.T) {
	ctx := context.Background()
	err := f.Timed("S3 store Ready", func() (string, error) {
		var err error
		f.s3, err = f.DeployS3Store(ctx, "/stacks/e2e")
		return "versitygw v1.8.0 (posix), TLS", err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Report.Fact("S3 store: %s, bucket %s, prefix %s, TLS from the test's CA (s3CaBundlePem)", f.Settings.S3.Endpoint, f.s3.Bucket, f.s3.Prefix)
}

// countObjects counts the registry's objects in the bucket (files below the prefix).
func (f *fixture) countObjects(ctx context.Context, sub string) (int, error) {
	out, err := f.storeExec(ctx, `d="$ROOT/`+sub+`"; if [ -d "$d" ]; then find "$d" -type f | wc -l; else echo 0; fi`)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

// stepObjectsInBucket: the pushed images are objects in the bucket under the prefix, and no claim
// or PersistentVolume holds any of it (the registry pods mount none).
func (f *fixture) stepObjectsInBucket(t *testing.T) {
	need(t, f.s3 != nil && f.imgKeep != nil, "S3 store and pushed images")
	ctx := context.Background()
	n, err := f.countObjects(ctx, "docker/registry/v2/blobs")
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no blob object under %s in the bucket", f.s3.Root())
	}
	present, err := f.blobsOnDisk(ctx, f.imgKeep.Blobs())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range f.imgKeep.Blobs() {
		if !present[b.Digest] {
			t.Errorf("blob %s of %s is not an object in the bucket", b.Digest, f.imgKeep.Ref())
		}
	}
	claims, err := f.Kube.NS(ctx, "get", "pvc", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(claims) != "" {
		t.Errorf("claims in the stack's namespace with storageDriver s3: %s", claims)
	}
	var pods struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				Volumes []struct {
					Name string          `json:"name"`
					PVC  *map[string]any `json:"persistentVolumeClaim"`
				} `json:"volumes"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := f.Kube.GetJSON(ctx, true, &pods, "pods", "-l", kit.RegistryPodSelector); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		for _, v := range p.Spec.Volumes {
			if v.PVC != nil {
				t.Errorf("registry pod %s mounts claim volume %s", p.Metadata.Name, v.Name)
			}
		}
	}
	f.Report.Fact("bucket %s: %d blob objects under %s; %d registry pods, no claim mounted, no PVC in the namespace; output storage = %q",
		f.s3.Bucket, n, f.s3.Prefix, len(pods.Items), f.Out.Storage)
}

// stepPreviewAfterGC: GC switched every replica read-only and back; the stack must see no drift,
// neither from its state nor after reading the live objects.
func (f *fixture) stepPreviewAfterGC(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	for _, c := range []struct{ label, name string }{
		{"pulumi preview --expect-no-changes (after GC)", "preview-after-gc"},
		{"pulumi preview --refresh --expect-no-changes (after GC)", "preview-refresh-after-gc"},
	} {
		args := []string{"preview", "--expect-no-changes", "--diff"}
		if strings.Contains(c.label, "--refresh") {
			args = append(args, "--refresh")
		}
		if err := f.Timed(c.label, func() (string, error) {
			_, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, c.name, args...)
			return "", err
		}); err != nil {
			t.Errorf("%s: %v", c.label, err)
		}
	}
}

// stepDestroyKeepsBucket destroys the stack and checks that every object of the bucket is still
// there: the stack never deletes what the registry stored.
func (f *fixture) stepDestroyKeepsBucket(t *testing.T) {
	need(t, f.s3 != nil && f.StackCreated, "S3 store and stack")
	ctx := context.Background()
	before, err := f.countObjects(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	f.stepDestroy(t)
	after, err := f.countObjects(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if before == 0 || after != before {
		t.Errorf("bucket objects: %d before destroy, %d after; want the same, non-zero", before, after)
	}
	f.Report.Fact("destroy: %d objects in bucket %s before, %d after", before, f.s3.Bucket, after)
}
