//go:build e2e

package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// benchToken measures what token auth costs per request against htpasswd on the same deployment:
// HEADs of existing blobs through the Ingress with credentials (basic, or a bearer token the
// client keeps, as docker does) and without (the 401 round trip), then a 20-layer push and pull;
// htpasswd first, then token mode (`pulumi up`), then htpasswd again. Skipped without the
// docker_auth image on the node.
func (b *bench) benchToken(t *testing.T) {
	ctx := context.Background()
	f := b.f
	ok, err := f.Kube.NodeHasImage(ctx, f.Settings.TokenServerImage)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skipf("SKIPPED: no node has the token server image %s (README, Tests)", f.Settings.TokenServerImage)
	}
	res := &tokenResult{Heads: b.cfg.Heads, Samples: map[string][]float64{}, SmallLayers: map[string][]float64{}}
	b.res.mu.Lock()
	b.res.Token = res
	b.res.mu.Unlock()
	ingress, err := b.newIngressClient()
	if err != nil {
		t.Fatal(err)
	}
	im, err := headImage(b.cfg.HeadBlobs)
	if err != nil {
		t.Fatal(err)
	}
	im.Repo = "bench/token-head"
	if _, err := ingress.PushImage(ctx, im); err != nil {
		t.Fatal(err)
	}
	measure := func(mode string) {
		c, err := b.newIngressClient()
		if err != nil {
			t.Fatal(err)
		}
		head := func(bl kit.Blob, auth bool) (time.Duration, error) { return timeHead(ctx, c, im.Repo, bl, auth) }
		// Warm-up: connections, and in token mode the token the client then keeps.
		for _, bl := range im.Layers {
			if _, err := head(bl, true); err != nil {
				t.Fatalf("%s warm-up: %v", mode, err)
			}
		}
		const batches = 10
		per := max(1, b.cfg.Heads/batches)
		for bi := range batches {
			for vi := range 2 {
				auth := (vi+bi)%2 == 0
				key := mode + "/noauth"
				if auth {
					key = mode + "/auth"
				}
				for j := range per {
					d, err := head(im.Layers[(bi*per+j)%len(im.Layers)], auth)
					if err != nil {
						t.Fatalf("%s: %v", key, err)
					}
					res.Samples[key] = append(res.Samples[key], float64(d.Microseconds())/1000)
				}
			}
		}
		small := &headResult{}
		b.benchSmallLayers(ctx, t, c, small, mode)
		for k, v := range small.SmallLayers {
			res.SmallLayers[k] = v
		}
		t.Logf("%s: HEAD p50 auth %.2f ms, without credentials %.2f ms", mode, percentile(res.Samples[mode+"/auth"], 50), percentile(res.Samples[mode+"/noauth"], 50))
	}
	setAuth := func(value, label string) {
		if err := f.Pulumi.SetConfig(ctx, map[string]string{"auth": value}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := f.TimedUp(ctx, "pulumi up ("+label+")", "up-bench-"+label); err != nil {
			t.Fatal(err)
		}
		if err := f.Kube.RolloutStatus(ctx, f.Out.DeploymentName, kit.ReadyTimeout); err != nil {
			t.Fatal(err)
		}
		// Past the old pods' preStop delay, and (token) until the realm serves.
		time.Sleep(10 * time.Second)
		if err := kit.Poll(ctx, time.Minute, time.Second, func() (bool, error) {
			code, err := ingress.Ping(ctx, false, f.Out.Username, f.Out.Password)
			return err == nil && code == http.StatusOK, nil
		}); err != nil {
			t.Fatalf("%s: the registry does not let the admin in: %v", label, err)
		}
		res.SwitchSeconds[label] = time.Since(start).Seconds()
	}
	res.SwitchSeconds = map[string]float64{}
	measure("htpasswd")
	raw, err := json.Marshal(map[string]any{"token": map[string]any{"image": f.Settings.TokenServerImage}})
	if err != nil {
		t.Fatal(err)
	}
	setAuth(string(raw), "token")
	measure("token")
	setAuth(kit.Unset, "htpasswd")
}
