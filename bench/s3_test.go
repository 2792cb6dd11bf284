//go:build e2e

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Variants of the data path on the s3 driver (the S3 fixture: versitygw over the node's disk, TLS).
const (
	varS3Ingress        = "s3-ingress"          // as varIngress, the registry on S3
	varS3ClusterIngress = "s3-cluster-ingress"  // as varClusterIngress, on S3
	varS3ClusterSvc     = "s3-cluster-svc"      // as varClusterSvc, on S3: the registry proxies the bytes
	varS3Redirect       = "s3-cluster-redirect" // pull only: storage.s3.redirect on, benchpod follows the 307 to the S3 Service
)

// s3Variants lists the S3 variants in report order; s3Rotated are the ones rotated per round
// (the redirect pulls need another `pulumi up` and run after them).
var (
	s3Variants = []string{varS3Ingress, varS3ClusterIngress, varS3ClusterSvc, varS3Redirect}
	s3Rotated  = []string{varS3Ingress, varS3ClusterIngress, varS3ClusterSvc}
	// s3Base maps an S3 variant to the filesystem variant that takes the same path.
	s3Base = map[string]string{varS3Ingress: varIngress, varS3ClusterIngress: varClusterIngress, varS3ClusterSvc: varClusterSvc, varS3Redirect: varClusterSvc}
)

// benchS3 moves the bench stack to the s3 driver (the S3 fixture, storage.s3.redirect off), pushes
// and pulls a fresh image per round through the ingress and from inside the cluster, then turns
// storage.s3.redirect on and pulls the same images from inside the cluster again, following the
// redirects to the store.
func (b *bench) benchS3(t *testing.T) {
	ctx := context.Background()
	cfg := b.cfg
	res, layerBytes := b.newDataResult(func(r *dataResult) { b.res.S3 = r })

	store, err := b.f.DeployS3Store(ctx, "/bench")
	if err != nil {
		t.Fatal(err)
	}
	b.storeCA = b.f.Settings.S3.CAPEM
	defer func() { b.storeCA = "" }()
	up := func(label string, redirect bool) {
		t.Helper()
		b.f.Settings.S3.Redirect = redirect
		if err := b.f.Pulumi.SetConfig(ctx, b.benchStackConfig()); err != nil {
			t.Fatal(err)
		}
		if _, err := b.f.Pulumi.Up(ctx, label); err != nil {
			t.Fatalf("pulumi up (%s): %v", label, err)
		}
		if err := b.f.LoadOutputs(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.f.WaitReady(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	up("up-s3", false)
	t.Logf("storage: %s", b.f.Out.Storage)

	ingress, err := b.newIngressClient()
	if err != nil {
		t.Fatal(err)
	}
	// The pf pod hosts benchpod (its nc servers are not used here).
	pf, err := b.startPFProbe(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.stopPFProbe(ctx, pf); err != nil {
			t.Error(err)
		}
	}()
	if err := b.installBenchPod(ctx); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(b.f.Settings.WorkDir, "bench-s3")
	defer os.RemoveAll(base)

	record := func(r, seq int, v, phase string, bytes int64, d time.Duration) {
		b.record(t, res, dataSample{Round: r + 1, Seq: seq + 1, Variant: v, Op: phase, Bytes: bytes, Seconds: d.Seconds()})
	}
	// Warm-up (not recorded): connections, TLS sessions, the driver's first requests.
	if err := b.warmUp(ctx, filepath.Join(base, "warmup"), "bench/s3-warmup", ingress, ingress); err != nil {
		t.Fatal(err)
	}

	var pushed []*fileImage
	for r := 0; r < cfg.Runs; r++ {
		dir := filepath.Join(base, fmt.Sprintf("round-%d", r))
		im, err := genFileImage(dir, "bench/s3-data", fmt.Sprintf("r%d", r), cfg.Layers, layerBytes)
		if err != nil {
			t.Fatal(err)
		}
		res.ImageBytes = im.Bytes()
		for _, phase := range []string{"push", "pull"} {
			for seq, v := range rotate(s3Rotated, r) {
				var d time.Duration
				var bytes int64
				if v == varS3Ingress {
					start := time.Now()
					if phase == "push" {
						err = pushFileImage(ctx, ingress, im, cfg.Parallel)
					} else {
						err = pullFileImage(ctx, ingress, im, cfg.Parallel)
					}
					d, bytes = time.Since(start), im.Bytes()
				} else {
					var in clusterResult
					in, err = b.clusterOp(ctx, s3Base[v], phase, im, cfg.Parallel)
					d, bytes = in.d, in.bytes
					if err == nil && in.redirected > 0 {
						err = fmt.Errorf("%d blobs redirected with storage.s3.redirect off", in.redirected)
					}
				}
				if err != nil {
					t.Fatalf("round %d %s %s: %v", r+1, v, phase, err)
				}
				record(r, seq, v, phase, bytes, d)
			}
		}
		pushed = append(pushed, im)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}

	up("up-s3-redirect", true)
	for r, im := range pushed {
		in, err := b.clusterOp(ctx, varClusterSvc, "pull", im, cfg.Parallel)
		if err != nil {
			t.Fatalf("round %d redirect pull: %v", r+1, err)
		}
		if in.redirected != len(im.Layers) {
			t.Fatalf("round %d: %d of %d layers came from the store: the redirect was not taken", r+1, in.redirected, len(im.Layers))
		}
		record(r, 0, varS3Redirect, "pull", in.bytes, in.d)
	}
	objects, err := store.Exec(ctx, b.f.Kube, `find "$ROOT/docker/registry/v2/blobs" -type f | wc -l`)
	if err != nil {
		t.Fatal(err)
	}
	b.res.note(fmt.Sprintf("s3 part: bucket %s prefix %s on the S3 fixture (versitygw v1.8.0, posix backend on the node's disk, TLS); %s blob objects at the end",
		store.Bucket, store.Prefix, strings.TrimSpace(objects)))
}
