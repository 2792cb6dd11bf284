//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
	"github.com/regstack/registry-stack/stackconfig"
)

// The S3 phase of TestE2E: the stack, on the filesystem driver until then, moves to an S3 bucket
// the way the README says (its files copied into the bucket, then storage switched to storage.s3 with
// `pulumi up`), on an S3 server the suite runs as a test fixture (versitygw over a directory, TLS
// from a CA of the test's own, reached through the stack's storage.s3.caBundlePem). Then the checks whose
// outcome depends on the driver: every earlier image pulls from the bucket, the claim is kept,
// GC on an empty prefix, push/pull, uploads across replicas, objects in the bucket and on no
// claim, GC under load (collected objects gone from the bucket), a clean preview and refresh
// after GC, and destroy leaving the bucket as it was. What does not depend on the driver runs once:
// auth on the filesystem phase; replica loss, Redis down and every other later step on S3.

// stepS3Store deploys the S3 store fixture and points the suite's stack at it.
func (f *fixture) stepS3Store(t *testing.T) {
	ctx := context.Background()
	err := f.Timed("S3 store Ready", func() (string, error) {
		var err error
		f.s3, err = f.DeployS3Store(ctx, s3Prefix)
		return "versitygw v1.8.0 (posix), TLS", err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Report.Fact("S3 store: %s, bucket %s, prefix %s, TLS from the test's CA (storage.s3.caBundlePem)", f.Settings.S3.Endpoint, f.s3.Bucket, f.s3.Prefix)
}

// s3Prefix is the stack's storage.s3.rootDirectory in the bucket.
const s3Prefix = "/stacks/e2e"

// stepS3Switch moves the registry's data to the bucket as the README's migration says (copy
// docker/registry/v2/ to <bucket><storage.s3.rootDirectory>/ while nothing writes, then switch
// storage.s3) and checks: `pulumi up` only deletes the claim from the stack (it stays in the
// cluster, Bound: data survives the switch) and updates what reads the storage; no pod mounts a
// claim; every image pushed so far pulls by tag and digest from the bucket; the next preview is
// clean.
func (f *fixture) stepS3Switch(t *testing.T) {
	need(t, f.s3 != nil && f.Client != nil, "S3 store and deployment")
	ctx := context.Background()
	claim := f.Out.ClaimName
	err := f.Timed("copy docker/registry/v2 to the bucket", func() (string, error) {
		// tar from a registry pod (it mounts the claim) into the store's bucket directory: what
		// `aws s3 sync` does for a posix-backed store.
		pods, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
		if err != nil || len(pods) == 0 {
			return "", fmt.Errorf("registry pods: %v (%d)", err, len(pods))
		}
		src := exec.CommandContext(ctx, "kubectl", "--context", f.Settings.KubeContext, "-n", f.Settings.Namespace,
			"exec", pods[0].Name, "-c", "registry", "--", "tar", "-C", "/var/lib/registry", "-cf", "-", "docker")
		dst := exec.CommandContext(ctx, "kubectl", "--context", f.Settings.KubeContext, "-n", f.s3.Namespace,
			"exec", "-i", "deploy/s3", "-c", "s3", "--", "sh", "-c", `mkdir -p "$1" && tar -C "$1" -xf -`, "sh", f.s3.Root())
		pipe, err := src.StdoutPipe()
		if err != nil {
			return "", err
		}
		dst.Stdin = pipe
		var srcErr, dstErr strings.Builder
		src.Stderr, dst.Stderr = &srcErr, &dstErr
		if err := src.Start(); err != nil {
			return "", err
		}
		if err := dst.Run(); err != nil {
			_ = src.Wait()
			return "", fmt.Errorf("untar in the store: %w: %s", err, dstErr.String())
		}
		if err := src.Wait(); err != nil {
			return "", fmt.Errorf("tar in %s: %w: %s", pods[0].Name, err, srcErr.String())
		}
		n, err := f.countObjects(ctx, "docker/registry/v2")
		return fmt.Sprintf("%d files from %s", n, pods[0].Name), err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The switch as a user makes it: storage.filesystem removed, storage.s3 set (both at once are
	// refused).
	config := map[string]string{"storage.filesystem": kit.Unset}
	for k, v := range f.Settings.StackConfig() {
		if strings.HasPrefix(k, "storage.s3.") || stackconfig.IsSecretKey(k) {
			config[k] = v
		}
		if strings.HasPrefix(k, "storage.filesystem.") {
			t.Fatalf("the S3 stack config still has %s", k)
		}
	}
	if err := f.Pulumi.SetConfig(ctx, config); err != nil {
		t.Fatal(err)
	}
	ops, err := f.TimedUp(ctx, "pulumi up (filesystem -> s3)", "up-switch-to-s3")
	if err != nil {
		t.Fatalf("pulumi up to storage.s3: %v\n%s", err, f.Kube.Events(ctx))
	}
	for _, o := range ops {
		if !kit.InPlaceOps[o.Op] && !((o.Op == "delete" || o.Op == "discard") && storageOnly(o.URN)) && o.Op != "create" {
			t.Errorf("switching to s3: %s %s; want only in-place updates, creates, and the claim (and its StorageClass copy) dropped from the stack", o.Op, kit.ShortURN(o.URN))
		}
	}
	if err := f.Kube.RolloutStatus(ctx, f.Out.DeploymentName, kit.ReadyTimeout); err != nil {
		t.Fatal(err)
	}
	if claim != "" {
		phase, err := f.Kube.NS(ctx, "get", "pvc", claim, "-o", "jsonpath={.status.phase}")
		if err != nil || strings.TrimSpace(phase) != "Bound" {
			t.Errorf("claim %s after the switch to s3: phase %q (%v); want it kept, Bound (retainOnDelete)", claim, phase, err)
		}
	}
	if err := f.LoadOutputs(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.ToLower(f.Out.Storage), "s3") {
		t.Errorf("output storage = %q after the switch, want the S3 driver", f.Out.Storage)
	}
	err = f.Timed("pull every earlier image from the bucket", func() (string, error) {
		for _, im := range f.survivors {
			for _, ref := range []string{im.Tag, im.Digest} {
				if _, err := f.Client.PullImage(ctx, ref, im); err != nil {
					return "", fmt.Errorf("%s (%s): %w", im.Ref(), ref, err)
				}
			}
		}
		return fmt.Sprintf("%d images by tag and digest", len(f.survivors)), nil
	})
	if err != nil {
		t.Errorf("an image pushed before the switch does not pull from the bucket: %v", err)
	}
	if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-after-s3-switch", "preview", "--expect-no-changes", "--diff"); err != nil {
		t.Errorf("preview after the switch to s3 is not clean: %v", err)
	}
	f.onS3 = true
	f.Report.Fact("filesystem -> s3: %s; claim %s kept; %d earlier images pull from bucket %s", kit.SummarizeOps(ops), claim, len(f.survivors), f.s3.Bucket)
	// The upload sessions to look for in the logs are the bucket's from now on.
	f.uploads = nil
}

// onS3Only runs a driver-dependent step of the filesystem phase again in the S3 phase, once the
// stack serves from the bucket (skipped when the switch failed).
func (f *fixture) onS3Only(step func(*testing.T)) func(*testing.T) {
	return func(t *testing.T) {
		need(t, f.onS3, "the stack on S3")
		step(t)
	}
}

// storageOnly: the objects of the filesystem driver that leave the stack with the switch (the
// claim, its StorageClass copy, and the read of the class it copies).
func storageOnly(urn string) bool {
	return strings.Contains(urn, "PersistentVolumeClaim::") || strings.Contains(urn, "StorageClass::")
}

// stepS3GCOnEmptyPrefix: the product's GC Job, with the collector's root directory moved to an
// empty prefix of the bucket (REGISTRY_STORAGE_S3_ROOTDIRECTORY, which overrides config.yml), as
// on a new stack's empty bucket: the collector finds no docker/registry/v2 at all and the run
// still succeeds and restores writes.
func (f *fixture) stepS3GCOnEmptyPrefix(t *testing.T) {
	need(t, f.onS3, "the stack on S3")
	ctx := context.Background()
	suffix, err := kit.RandomSuffix()
	if err != nil {
		t.Fatal(err)
	}
	job, empty := "e2e-gc-empty-prefix-"+suffix, "/empty-"+suffix
	err = f.Timed("GC job (empty S3 prefix)", func() (string, error) {
		start := time.Now()
		err := f.createJobFromCronJob(ctx, job, func(spec map[string]any) error {
			inits, _ := spec["initContainers"].([]any)
			for _, item := range inits {
				if c, _ := item.(map[string]any); c["name"] == "garbage-collect" {
					env, _ := c["env"].([]any)
					c["env"] = append(env, map[string]any{"name": "REGISTRY_STORAGE_S3_ROOTDIRECTORY", "value": empty})
					return nil
				}
			}
			return fmt.Errorf("the GC pod template has no garbage-collect init container")
		})
		if err != nil {
			return "", err
		}
		res, err := f.Kube.WaitJob(ctx, job, start, kit.GCJobTimeout)
		if err != nil {
			return "", err
		}
		if !strings.Contains(res.Logs, "read-write-restored=yes") {
			return "", fmt.Errorf("GC summary: %s", kit.Tail(res.Logs, 10))
		}
		return "prefix " + empty + ": " + lastLine(res.Logs), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.countObjects(ctx, "../.."+empty); err != nil || n != 0 {
		t.Errorf("the empty prefix %s holds %d objects after GC (%v)", empty, n, err)
	}
	if err := f.WaitReady(ctx, 2); err != nil {
		t.Fatalf("registry not Ready after GC: %v", err)
	}
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
	need(t, f.onS3 && f.imgKeep != nil, "the stack on S3 and pushed images")
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
	// The claims of the filesystem phase are kept in the namespace (retainOnDelete); none is the
	// stack's any more.
	res, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Type == "kubernetes:core/v1:PersistentVolumeClaim" || r.Type == "kubernetes:core/v1:PersistentVolume" {
			t.Errorf("the stack holds %s with storage.s3", kit.ShortURN(r.URN))
		}
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
	f.Report.Fact("bucket %s: %d blob objects under %s; %d registry pods, no claim mounted, no claim or volume in the stack; output storage = %q",
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
// Without the S3 phase (its store failed) it is the plain destroy step.
func (f *fixture) stepDestroyKeepsBucket(t *testing.T) {
	if f.s3 == nil {
		f.stepDestroy(t)
		return
	}
	need(t, f.StackCreated, "stack")
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
