//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// The mirror of the mirror steps: a pull-through cache whose upstream is the stack's own registry,
// reached through the ingress controller's in-cluster Service over HTTPS (the sandbox has no
// internet), with the ci account's credentials and the stack's CA as the upstream's private CA.
const (
	mirrorName     = "self"
	mirrorInstance = "registry-mirror-" + mirrorName
	mirrorRoot     = "/var/lib/registry"
)

// mirrorUnderTest is the deployed mirror and a client through its route.
type mirrorUnderTest struct {
	host     string
	password string
	client   *kit.RegistryClient
}

// stepMirrorAdd adds the mirror to the running stack: only mirror objects are created (and the
// certificate reissued for the new names), the registry's pods keep running, the outputs give a
// containerd hosts.toml with the mirror's credentials as a secret, and pulls need the account.
func (f *fixture) stepMirrorAdd(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	host := f.MirrorHost(mirrorName)
	if err := f.SetSelfMirrorConfig(ctx, mirrorName, "1Gi"); err != nil {
		t.Fatal(err)
	}
	created := f.mirrorUp(ctx, t, "add mirror", "create")

	out, err := f.Pulumi.Outputs(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := out["mirrors"].(map[string]any)[mirrorName].(map[string]any)
	if info["url"] != "https://"+host || info["username"] != kit.MirrorAccount || info["upstreamNamespace"] != f.Settings.ClusterIngressHost {
		t.Fatalf("mirror outputs: mirrors.%s = %v", mirrorName, info)
	}
	hostsFile := "/etc/containerd/certs.d/" + f.Settings.ClusterIngressHost + "/hosts.toml"
	toml, _ := out["mirrorContainerdHosts"].(map[string]any)[hostsFile].(string)
	for _, want := range []string{`[host."https://` + host + `"]`, `capabilities = ["pull", "resolve"]`, `Authorization = ["Basic `} {
		if !strings.Contains(toml, want) {
			t.Errorf("mirrorContainerdHosts[%s] lacks %s:\n%s", hostsFile, want, toml)
		}
	}
	plain, err := f.Pulumi.Outputs(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"mirrorPasswords", "mirrorContainerdHosts"} {
		if fmt.Sprint(plain[key]) != "[secret]" {
			t.Errorf("output %s without --show-secrets is %v, want [secret] (it holds credentials)", key, plain[key])
		}
	}

	start := time.Now()
	c, password, err := f.MirrorClient(ctx, mirrorName)
	if err != nil {
		t.Fatalf("%v\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	wait := time.Since(start)
	code, err := c.Ping(ctx, true, "", "")
	if err != nil || code != 401 {
		t.Errorf("anonymous GET /v2/ on the mirror: HTTP %d (%v), want 401 (pulls need the mirror's account)", code, err)
	}
	f.mirror = &mirrorUnderTest{host: host, password: password, client: c}
	f.retire("mirror upstream password (ci)", f.Out.Passwords["ci"])
	f.retire("mirror account password", password)
	f.Report.Fact("mirror added: %d objects created, registry pods unchanged, mirror answering through its route %s after up; anonymous 401",
		created, wait.Round(100*time.Millisecond))

	state, err := f.Pulumi.Run(ctx, 2*time.Minute, false, "stack", "export")
	if err != nil {
		t.Fatal(err)
	}
	for what, secret := range map[string]string{"upstream password": f.Out.Passwords["ci"], "mirror password": password} {
		if strings.Contains(state, secret) {
			t.Errorf("the %s is in the state in plain text", what)
		}
	}

	err = f.Timed("pulumi preview --expect-no-changes (mirror)", func() (string, error) {
		_, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-mirror", "preview", "--expect-no-changes", "--diff")
		return "", err
	})
	if err != nil {
		t.Errorf("preview after adding the mirror: %v", err)
	}
}

// mirrorUp runs `pulumi up` for a mirror change (label what): every operation that is not in place
// must be on the mirror's objects (of kind mirrorOp, "" for any) or on the certificate (new SANs,
// the same CA), and the registry's pods keep running. It returns how many mirror objects changed.
func (f *fixture) mirrorUp(ctx context.Context, t *testing.T, what, mirrorOp string) int {
	t.Helper()
	podsBefore, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := f.TimedUp(ctx, "pulumi up ("+what+")", "up-"+strings.ReplaceAll(what, " ", "-"))
	if err != nil {
		t.Fatalf("pulumi up (%s): %v\nevents:\n%s", what, err, f.Kube.Events(ctx))
	}
	changed := 0
	for _, o := range ops {
		switch {
		case kit.InPlaceOps[o.Op]:
		case strings.Contains(o.URN, mirrorInstance) && (mirrorOp == "" || o.Op == mirrorOp):
			changed++
		case strings.Contains(o.URN, "$tls:index/"):
		default:
			t.Errorf("%s: %s %s; only mirror objects may change, and nothing of the registry be replaced", what, o.Op, kit.ShortURN(o.URN))
		}
	}
	podsAfter, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(podNames(podsBefore), podNames(podsAfter)) {
		t.Errorf("%s: the registry's pods changed: %v -> %v", what, podNames(podsBefore), podNames(podsAfter))
	}
	return changed
}

// upstreamBlobGets counts the blob downloads of repo the registry (the mirror's upstream) logged
// since start.
func (f *fixture) upstreamBlobGets(ctx context.Context, repo string, start time.Time) (int, error) {
	return f.countLogLines(ctx, `"GET /v2/`+repo+`/blobs/`, time.Since(start)+time.Second)
}

// stepMirrorPullThrough: an image pushed to the registry pulls through the mirror with the same
// digests; the second pull comes from the mirror's own storage (the upstream logs no new blob
// download); the mirror refuses pushes.
func (f *fixture) stepMirrorPullThrough(t *testing.T) {
	need(t, f.mirror != nil && f.imgKeep != nil, "mirror and pushed image")
	ctx := context.Background()
	m, img := f.mirror, f.imgKeep
	// Log windows have one-second resolution: keep the pulls apart.
	time.Sleep(2 * time.Second)
	coldStart := time.Now()
	var cold int
	err := f.Timed("pull through mirror (cold)", func() (string, error) {
		n, err := m.client.PullImage(ctx, img.Tag, img)
		return fmt.Sprintf("%s, digests equal to the registry's", kit.MiB(n)), err
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if cold, err = f.upstreamBlobGets(ctx, img.Repo, coldStart); err != nil {
		t.Fatal(err)
	}
	if cold < len(img.Blobs()) {
		t.Errorf("cold pull: the upstream logged %d blob downloads of %s, want at least %d (the mirror fetches each blob once)", cold, img.Repo, len(img.Blobs()))
	}

	onMirror, err := f.Kube.Exec(ctx, "deploy/"+mirrorInstance, "registry", mirrorBlobScript(img.Blobs()))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(onMirror, "present"); got != len(img.Blobs()) {
		t.Errorf("mirror storage holds %d of %d blobs after the cold pull:\n%s", got, len(img.Blobs()), onMirror)
	}

	warmStart := time.Now()
	err = f.Timed("pull through mirror (warm)", func() (string, error) {
		n, err := m.client.PullImage(ctx, img.Tag, img)
		return kit.MiB(n), err
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	warm, err := f.upstreamBlobGets(ctx, img.Repo, warmStart)
	if err != nil {
		t.Fatal(err)
	}
	if warm != 0 {
		t.Errorf("warm pull: the upstream logged %d blob downloads of %s, want 0 (cached blobs come from the mirror's storage)", warm, img.Repo)
	}
	f.Report.Fact("mirror: cold pull %d upstream blob GETs, %d/%d blobs then on the mirror's own claim; warm pull %d upstream blob GETs",
		cold, strings.Count(onMirror, "present"), len(img.Blobs()), warm)

	small, err := kit.RandomImage("e2e/pushed-to-mirror", "v1", 1, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.client.PushImage(ctx, small)
	if code := kit.HTTPStatus(err); err == nil || code != 405 {
		t.Errorf("push to the mirror: %v (HTTP %d), want 405 (a mirror is read-only)", err, code)
	}
	if code, err := f.Client.ManifestStatus(ctx, small.Repo, small.Tag); err != nil || code != 404 {
		t.Errorf("after the refused push the upstream has %s: HTTP %d (%v), want 404", small.Ref(), code, err)
	}
	f.Report.Fact("mirror: push refused with 405, nothing reached the upstream")
}

// mirrorBlobScript lists which of the blobs have a data file in the mirror's storage.
func mirrorBlobScript(blobs []kit.Blob) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ROOT=%s\n", mirrorRoot)
	for _, bl := range blobs {
		fmt.Fprintf(&b, "if test -e %s; then echo present %s; else echo absent %s; fi\n", blobDataPath(bl.Hex()), bl.Digest, bl.Digest)
	}
	return b.String()
}

// stepMirrorUpstreamDown scales the registry (the upstream) to 0: the cached image still pulls
// through the mirror, an image it never cached does not; with the upstream back, that one pulls too.
func (f *fixture) stepMirrorUpstreamDown(t *testing.T) {
	need(t, f.mirror != nil && f.imgKeep != nil, "mirror and pushed image")
	ctx := context.Background()
	m := f.mirror
	uncached, err := kit.RandomImage("e2e/mirror-uncached", "v1", 1, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Client.PushImage(ctx, uncached); err != nil {
		t.Fatal(err)
	}
	replicas, err := f.deploymentReplicas(ctx, f.Out.DeploymentName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Kube.NS(ctx, "scale", "deploy/"+f.Out.DeploymentName, "--replicas=0"); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if restored {
			return
		}
		restored = true
		if _, err := f.Kube.NS(ctx, "scale", "deploy/"+f.Out.DeploymentName, fmt.Sprintf("--replicas=%d", replicas)); err != nil {
			t.Errorf("scale the registry back to %d: %v", replicas, err)
			return
		}
		if err := f.WaitReady(ctx, replicas); err != nil {
			t.Errorf("registry not Ready after scaling back: %v", err)
			return
		}
		// Traefik drops the routers of a Service without endpoints (404 while the registry was
		// at 0) and adds them back on a later sync: back means answering through the route.
		if d, err := f.waitPing(ctx, f.Client, 200, "registry scaled back"); err != nil {
			t.Errorf("%v", err)
		} else {
			t.Logf("registry routed again %s after its pods were Ready", d.Round(100*time.Millisecond))
		}
	}
	defer restore()
	if err := kit.Poll(ctx, 2*time.Minute, time.Second, func() (bool, error) {
		pods, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
		return len(pods) == 0, err
	}); err != nil {
		t.Fatalf("registry pods still there after scaling to 0: %v", err)
	}
	if code, err := f.Client.Ping(ctx, false, "", ""); err == nil && code == 200 {
		t.Fatalf("the registry still answers with 0 replicas")
	}
	err = f.Timed("pull through mirror (upstream at 0 replicas)", func() (string, error) {
		n, err := m.client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep)
		return fmt.Sprintf("%s cached image, digests equal", kit.MiB(n)), err
	})
	if err != nil {
		t.Errorf("the cached image does not pull through the mirror while the upstream is down: %v", err)
	}
	_, _, uncachedErr := m.client.Once(ctx, kit.Request{Method: "GET", URL: m.client.URL("/v2/" + uncached.Repo + "/manifests/" + uncached.Tag),
		Header: manifestHeader(), Expect: []int{200}})
	if uncachedErr == nil {
		t.Errorf("an image the mirror never cached pulled while the upstream was down: the upstream was not really down")
	}
	restore()
	if _, err := m.client.PullImage(ctx, uncached.Tag, uncached); err != nil {
		t.Errorf("with the upstream back, the uncached image does not pull through the mirror: %v", err)
	}
	f.survivors = append(f.survivors, uncached)
	f.Report.Fact("upstream at 0 replicas: cached %s pulled through the mirror, uncached %s refused (HTTP %d); both pull once it is back",
		f.imgKeep.Ref(), uncached.Ref(), kit.HTTPStatus(uncachedErr))
}

func manifestHeader() http.Header {
	h := http.Header{}
	h.Set("Accept", kit.ManifestAccept)
	return h
}

// startMirrorGCLoad pushes an image the mirror has not cached and starts pulling it through the
// mirror (the first pull fetches it from the upstream, which GC is about to switch read-only).
func (f *fixture) startMirrorGCLoad(ctx context.Context) (*loop, error) {
	img, err := kit.RandomImage("e2e/mirror-during-gc", "v1", 2, 256<<10)
	if err != nil {
		return nil, err
	}
	if _, err := f.Client.PushImage(ctx, img); err != nil {
		return nil, fmt.Errorf("push %s for the mirror's pulls during GC: %w", img.Ref(), err)
	}
	f.survivors = append(f.survivors, img)
	return startPullLoop(ctx, f.mirror.client, img, 200*time.Millisecond), nil
}

// stepMirrorRemove takes the mirror out of the config: its objects go, its claim stays (like the
// registry's, retained), the registry's pods keep running and its images pull.
func (f *fixture) stepMirrorRemove(t *testing.T) {
	need(t, f.mirror != nil, "mirror")
	ctx := context.Background()
	if err := f.Pulumi.RemoveConfig(ctx, "mirrors"); err != nil {
		t.Fatal(err)
	}
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"extraDnsNames": "[]"}); err != nil {
		t.Fatal(err)
	}
	f.mirrorUp(ctx, t, "remove mirror", "")
	f.mirror = nil
	if _, err := f.Kube.NS(ctx, "get", "deploy/"+mirrorInstance); !kit.IsNotFound(err) {
		t.Errorf("mirror Deployment after removal: %v, want NotFound", err)
	}
	if phase, err := f.Kube.NS(ctx, "get", "pvc", mirrorInstance+"-data", "-o", "jsonpath={.status.phase}"); err != nil || phase != "Bound" {
		t.Errorf("mirror claim after removal: %q (%v), want kept and Bound (claims are retained)", phase, err)
	}
	if err := f.pullAcked(ctx, f.survivors); err != nil {
		t.Error(err)
	}
	f.Report.Fact("mirror removed: its objects deleted, its claim kept, registry pods unchanged, %d images pull", len(f.survivors))
}
