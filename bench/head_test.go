//go:build e2e

package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
	"golang.org/x/crypto/bcrypt"
)

// Cache states of the HEAD part, in the order they are measured.
const (
	headWarm     = "warm"     // cache on (as deployed), every blob looked up once before measuring
	headDisabled = "disabled" // cache.enabled=false: Redis removed, lookups go to the filesystem
	headWarm2    = "warm2"    // cache.enabled=true again (new, empty Redis), warmed the same way
	// headCost10: cache warm, but the htpasswd Secret patched by the bench to bcrypt cost 10 (what
	// pulumi-random's bcryptHash gives, the stack's hash before issue 11), pods restarted; restored after.
	headCost10 = "cost10"
)

var headPaths = []string{varIngress, varDirect}

// benchHead measures blob existence checks (HEAD /v2/<repo>/blobs/<digest>, what docker push
// sends for every layer) on blobs that exist, through the Ingress and directly to one pod, with
// the Redis blob-descriptor cache warm, then disabled by config (`pulumi up`), then on again.
func (b *bench) benchHead(t *testing.T) {
	ctx := context.Background()
	f := b.f
	res := &headResult{Blobs: b.cfg.HeadBlobs, Samples: map[string][]float64{}, Errors: map[string]int{},
		Switch: map[string]float64{}, Extra: map[string]headExtras{}}
	b.res.mu.Lock()
	b.res.Head = res
	b.res.mu.Unlock()

	ingress, err := b.newIngressClient()
	if err != nil {
		t.Fatal(err)
	}
	im, err := headImage(b.cfg.HeadBlobs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ingress.PushImage(ctx, im); err != nil {
		t.Fatalf("push the HEAD test image: %v", err)
	}

	measure := func(state string, n int) {
		direct, pod, stop, err := b.directToPod(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		clients := map[string]*kit.RegistryClient{varIngress: ingress, varDirect: direct}
		head := func(c *kit.RegistryClient, bl kit.Blob, auth bool) (time.Duration, error) {
			return timeHead(ctx, c, im.Repo, bl, auth)
		}
		// Warm-up, not recorded: fills the cache (when on) and opens the connections.
		for _, p := range headPaths {
			for _, bl := range im.Layers {
				if _, err := head(clients[p], bl, true); err != nil {
					t.Fatalf("%s %s warm-up: %v", state, p, err)
				}
			}
		}
		if state != headDisabled {
			keys, err := f.RedisCachedBlobs(ctx, im.Layers)
			if err != nil {
				t.Fatal(err)
			}
			res.Extra[state] = headExtras{RedisKeys: len(keys)}
		}
		type variant struct {
			path string
			auth bool
		}
		variants := []variant{{varIngress, true}, {varDirect, true}, {varIngress, false}, {varDirect, false}}
		const batches = 10
		per := max(1, n/batches)
		for bi := range batches {
			// Rotate the order per batch so drift hits every variant alike.
			for vi := range variants {
				v := variants[(vi+bi)%len(variants)]
				key := headKey(state, v.path, v.auth)
				lat := make([]float64, 0, per)
				for j := range per {
					d, err := head(clients[v.path], im.Layers[(bi*per+j)%len(im.Layers)], v.auth)
					if err != nil {
						res.Errors[key]++
						if res.Errors[key] > 10 {
							t.Fatalf("%s: more than 10 failed HEADs, last: %v", key, err)
						}
						continue
					}
					lat = append(lat, float64(d.Microseconds())/1000)
				}
				b.res.mu.Lock()
				res.Samples[key] = append(res.Samples[key], lat...)
				b.res.mu.Unlock()
			}
		}
		res.Order = append(res.Order, state)
		for _, v := range variants {
			xs := res.Samples[headKey(state, v.path, v.auth)]
			t.Logf("HEAD %-8s %-7s auth=%-5v n=%d p50 %.2f ms p99 %.2f ms (direct pod %s)", state, v.path, v.auth, len(xs), percentile(xs, 50), percentile(xs, 99), pod)
		}
	}
	switchCache := func(on bool) {
		if err := f.Pulumi.SetConfig(ctx, map[string]string{"cache.enabled": fmt.Sprint(on)}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ops, err := f.Pulumi.Up(ctx, fmt.Sprintf("bench-cache-%v", on))
		if err != nil {
			t.Fatalf("pulumi up cache.enabled=%v: %v", on, err)
		}
		if err := f.Kube.RolloutStatus(ctx, f.Out.DeploymentName, kit.ReadyTimeout); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Kube.WaitReadyPods(ctx, kit.RegistryPodSelector, 2, kit.ReadyTimeout); err != nil {
			t.Fatal(err)
		}
		if on {
			if _, err := f.Kube.WaitReadyPods(ctx, kit.RedisPodSelector, 1, kit.ReadyTimeout); err != nil {
				t.Fatal(err)
			}
		}
		d := time.Since(start)
		res.Switch[fmt.Sprintf("cacheEnabled=%v", on)] = d.Seconds()
		t.Logf("cacheEnabled=%v: up + rollout %s (%s)", on, d.Round(100*time.Millisecond), kit.SummarizeOps(ops))
	}

	measure(headWarm, b.cfg.Heads)
	b.benchSmallLayers(ctx, t, ingress, res, headWarm)
	// The same requests against a cost-10 hash of the same password: the "before" of one run.
	restore := b.useHtpasswdCost(ctx, t, 10)
	measure(headCost10, max(10, b.cfg.Heads/4))
	b.benchSmallLayers(ctx, t, ingress, res, headCost10)
	restore()
	switchCache(false)
	// Without Redis the cache state must really be gone: the registry config has no cache.
	cfgYML, err := f.Kube.SecretValue(ctx, "registry-config", "config.yml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cfgYML, "blobdescriptor: redis") {
		t.Fatalf("cacheEnabled=false but the registry config still uses the redis cache")
	}
	measure(headDisabled, b.cfg.Heads)
	switchCache(true)
	// A shorter run: a drift check that the warm figures are reproducible with a new Redis.
	measure(headWarm2, max(10, b.cfg.Heads/4))
	for k, n := range res.Errors {
		if n > 0 {
			t.Errorf("%s: %d HEADs failed", k, n)
		}
	}
}

// Small-layer image of the HEAD part: many requests per byte, so per-request costs (the password
// check) dominate, as in a typical application image of many thin layers.
const (
	smallLayerCount  = 20
	smallLayerBytes  = 4 << 10
	smallLayerRounds = 5
)

// benchSmallLayers pushes then pulls a fresh image of 20 small layers through the Ingress, one
// layer at a time as the HEAD/POST/PATCH/PUT sequence of a client, and records the wall times
// under state/push and state/pull.
func (b *bench) benchSmallLayers(ctx context.Context, t *testing.T, c *kit.RegistryClient, res *headResult, state string) {
	if res.SmallLayers == nil {
		res.SmallLayers = map[string][]float64{}
	}
	for i := range smallLayerRounds {
		im, err := kit.RandomImage("bench/small", fmt.Sprintf("%s-r%d", state, i), smallLayerCount, smallLayerBytes)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := c.PushImage(ctx, im); err != nil {
			t.Fatalf("push %d small layers: %v", smallLayerCount, err)
		}
		push := time.Since(start)
		start = time.Now()
		if _, err := c.PullImage(ctx, im.Tag, im); err != nil {
			t.Fatalf("pull %d small layers: %v", smallLayerCount, err)
		}
		pull := time.Since(start)
		res.SmallLayers[state+"/push"] = append(res.SmallLayers[state+"/push"], push.Seconds())
		res.SmallLayers[state+"/pull"] = append(res.SmallLayers[state+"/pull"], pull.Seconds())
		t.Logf("%s: %d layers of %d KiB: push %s, pull %s", state, smallLayerCount, smallLayerBytes>>10, push.Round(time.Millisecond), pull.Round(time.Millisecond))
	}
}

// useHtpasswdCost rewrites the htpasswd Secret with bcrypt hashes of the same passwords at cost,
// restarts the registry pods, and returns the function that puts the stack's file back (and
// restarts again). Only the bench does this, to measure before and after in one run.
func (b *bench) useHtpasswdCost(ctx context.Context, t *testing.T, cost int) func() {
	f := b.f
	orig, err := f.Kube.SecretValue(ctx, "registry-config", "htpasswd")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, user := range f.Settings.Accounts() {
		h, err := bcrypt.GenerateFromPassword([]byte(f.Out.Passwords[user]), cost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, user+":"+string(h))
	}
	set := func(file, label string) {
		patch := fmt.Sprintf(`{"data":{"htpasswd":%q}}`, base64.StdEncoding.EncodeToString([]byte(file)))
		if _, err := f.Kube.NS(ctx, "patch", "secret", "registry-config", "--type", "merge", "-p", patch); err != nil {
			t.Fatalf("patch htpasswd (%s): %v", label, err)
		}
		if _, err := f.Kube.NS(ctx, "rollout", "restart", "deployment/"+f.Out.DeploymentName); err != nil {
			t.Fatalf("restart (%s): %v", label, err)
		}
		if err := f.Kube.RolloutStatus(ctx, f.Out.DeploymentName, kit.ReadyTimeout); err != nil {
			t.Fatal(err)
		}
		// Old pods keep answering through their preStop delay (8 s) after the rollout reports
		// done; wait past it so every measured request meets the new file.
		time.Sleep(10 * time.Second)
		t.Logf("htpasswd %s, pods restarted", label)
	}
	set(strings.Join(lines, "\n")+"\n", fmt.Sprintf("at bcrypt cost %d", cost))
	return func() { set(orig, "restored (the stack's)") }
}

// timeHead sends one HEAD on a blob of repo and times it. Without credentials the registry answers
// 401 before any password or token check or lookup, which isolates the round trip through the
// path; the client then tries nothing more (no anonymous token).
func timeHead(ctx context.Context, c *kit.RegistryClient, repo string, bl kit.Blob, auth bool) (time.Duration, error) {
	r := kit.Request{Method: http.MethodHead, URL: c.URL("/v2/" + repo + "/blobs/" + bl.Digest), Expect: []int{http.StatusOK}}
	if !auth {
		r.NoAuth, r.Raw, r.Expect = true, true, []int{http.StatusUnauthorized}
	}
	start := time.Now()
	_, _, err := c.Once(ctx, r)
	return time.Since(start), err
}

// headKey names a sample series: state/path, with "-noauth" for the requests without credentials.
func headKey(state, path string, auth bool) string {
	if auth {
		return state + "/" + path
	}
	return state + "/" + path + "-noauth"
}

// headImage is an image of n tiny (1 KiB) random layers, tagged so GC keeps it.
func headImage(n int) (*kit.Image, error) {
	im := &kit.Image{Repo: "bench/head", Tag: "v1"}
	var diffIDs []string
	for range n {
		data := make([]byte, 1024)
		if _, err := rand.Read(data); err != nil {
			return nil, fmt.Errorf("random blob: %w", err)
		}
		bl := kit.NewBlob(mediaTypeLayerTar, data)
		im.Layers = append(im.Layers, bl)
		diffIDs = append(diffIDs, bl.Digest)
	}
	cfg, err := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	im.Config = kit.NewBlob(kit.MediaTypeConfig, cfg)
	m := kit.OCIManifest{SchemaVersion: 2, MediaType: kit.MediaTypeManifest,
		Config: kit.Descriptor{MediaType: kit.MediaTypeConfig, Digest: im.Config.Digest, Size: len(cfg)}}
	for _, l := range im.Layers {
		m.Layers = append(m.Layers, kit.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: len(l.Data)})
	}
	if im.Manifest, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	im.Digest = kit.SHA256Digest(im.Manifest)
	return im, nil
}
