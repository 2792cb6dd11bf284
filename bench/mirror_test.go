//go:build e2e

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Variants of the mirror part: pulls through the Ingress (host client, the same port-forward),
// of the same fresh image per round.
const (
	varMirrorCold   = "mirror-cold"   // first pull through the mirror: it fetches every blob from the upstream while serving it
	varMirrorWarm   = "mirror-warm"   // the same image again: served from the mirror's own storage
	varMirrorDirect = "mirror-direct" // the same image from the registry itself (the mirror's upstream)
)

var mirrorVariants = []string{varMirrorCold, varMirrorWarm, varMirrorDirect}

// benchMirror adds a mirror of the bench stack's own registry (through the ingress controller's
// in-cluster Service, as in the e2e suite), pushes a fresh image per round to the registry and
// pulls it through the mirror cold (always first: only the first pull is cold), then warm and
// directly from the registry in alternating order.
func (b *bench) benchMirror(t *testing.T) {
	ctx := context.Background()
	cfg := b.cfg
	res, layerBytes := b.newDataResult(func(r *dataResult) { b.res.Mirror = r })
	const name = "bench"
	if err := b.f.SetSelfMirrorConfig(ctx, name, "20Gi"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.f.Pulumi.Up(ctx, "up-mirror"); err != nil {
		t.Fatalf("pulumi up (mirror): %v", err)
	}
	mirror, _, err := b.f.MirrorClient(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	ingress, err := b.newIngressClient()
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(b.f.Settings.WorkDir, "bench-mirror")
	defer os.RemoveAll(base)

	// Warm-up (not recorded): connections and TLS sessions on both routes, the mirror's first
	// upstream requests.
	if err := b.warmUp(ctx, filepath.Join(base, "warmup"), "bench/mirror-warmup", ingress, mirror); err != nil {
		t.Fatal(err)
	}

	for r := 0; r < cfg.Runs; r++ {
		dir := filepath.Join(base, fmt.Sprintf("round-%d", r))
		im, err := genFileImage(dir, "bench/mirror-data", fmt.Sprintf("r%d", r), cfg.Layers, layerBytes)
		if err != nil {
			t.Fatal(err)
		}
		res.ImageBytes = im.Bytes()
		if err := pushFileImage(ctx, ingress, im, cfg.Parallel); err != nil {
			t.Fatalf("round %d push: %v", r+1, err)
		}
		order := append([]string{varMirrorCold}, rotate([]string{varMirrorWarm, varMirrorDirect}, r)...)
		for seq, v := range order {
			c := mirror
			if v == varMirrorDirect {
				c = ingress
			}
			start := time.Now()
			if err := pullFileImage(ctx, c, im, cfg.Parallel); err != nil {
				t.Fatalf("round %d %s: %v", r+1, v, err)
			}
			b.record(t, res, dataSample{Round: r + 1, Seq: seq + 1, Variant: v, Op: "pull", Bytes: im.Bytes(), Seconds: time.Since(start).Seconds()})
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	b.res.note(fmt.Sprintf("mirror part: mirror %q of the bench stack's own registry (upstream through Traefik's in-cluster Service, TLS with the stack's CA, "+
		"the ci account), one replica, its own claim and Redis database; all pulls from this machine through the same port-forward", name))
}
