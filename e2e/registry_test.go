//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
	"github.com/regstack/registry-stack/redis"
)

// Sizes of the test images: several MiB in several layers, uploaded in 512 KiB chunks so that each
// upload is a sequence of requests the Ingress can spread over the replicas.
const (
	mainLayers     = 4
	mainLayerBytes = 1536 << 10 // 4 x 1.5 MiB = 6 MiB
)

// stepPushPull pushes two random multi-layer images and pulls them back byte for byte. The first
// stays for the rest of the suite; the second is the one GC will collect.
func (f *fixture) stepPushPull(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	var err error
	if f.imgKeep, err = kit.RandomImage(f.repo("keep"), "v1", mainLayers, mainLayerBytes); err != nil {
		t.Fatal(err)
	}
	drop, err := kit.RandomImage(f.repo("drop"), "v1", mainLayers, mainLayerBytes/2)
	if err != nil {
		t.Fatal(err)
	}

	var res *kit.PushResult
	err = f.Timed("push (4 layers)", func() (string, error) {
		start := time.Now()
		res, err = f.Client.PushImage(ctx, f.imgKeep)
		return fmt.Sprintf("%s, %s, %s/s", f.imgKeep.Ref(), kit.MiB(f.imgKeep.Size()), kit.MiB(int(float64(f.imgKeep.Size())/time.Since(start).Seconds()))), err
	})
	if err != nil {
		if kit.HTTPStatus(err) == 405 {
			t.Fatalf("push refused with 405: is the registry still read-only after the first GC? %v", err)
		}
		t.Fatal(err)
	}
	f.uploads = append(f.uploads, res.Uploads...)
	f.survivors = append(f.survivors, f.imgKeep)
	t.Logf("pushed %s@%s: %d blobs uploaded, %d already present", f.imgKeep.Ref(), f.imgKeep.Digest, len(res.Uploads), res.Skipped)

	err = f.Timed("pull (4 layers)", func() (string, error) {
		start := time.Now()
		n, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep)
		return fmt.Sprintf("%s, digests equal, %s/s", kit.MiB(n), kit.MiB(int(float64(n)/time.Since(start).Seconds()))), err
	})
	if err != nil {
		t.Fatal(err)
	}
	// By digest as well: this is how Kubernetes pulls pinned images.
	if _, err := f.Client.PullImage(ctx, f.imgKeep.Digest, f.imgKeep); err != nil {
		t.Fatalf("pull by digest: %v", err)
	}
	tags, err := f.Client.Tags(ctx, f.imgKeep.Repo)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tags, f.imgKeep.Tag) {
		t.Errorf("tags of %s are %v, want %s among them", f.imgKeep.Repo, tags, f.imgKeep.Tag)
	}

	res, err = f.Client.PushImage(ctx, drop)
	if err != nil {
		t.Fatal(err)
	}
	f.uploads = append(f.uploads, res.Uploads...)
	if _, err := f.Client.PullImage(ctx, drop.Tag, drop); err != nil {
		t.Fatal(err)
	}
	f.imgDrop = drop
	t.Logf("pushed and pulled %s@%s", drop.Ref(), drop.Digest)
}

// logLine extracts method and URI from a distribution "response completed" log line (logrus text
// format: http.request.method=PATCH http.request.uri="/v2/...").
var (
	logMethodRE = regexp.MustCompile(`http\.request\.method="?([A-Z]+)`)
	logURIRE    = regexp.MustCompile(`http\.request\.uri="?([^" ]+)`)
	uploadURIRE = regexp.MustCompile(`/blobs/uploads/([0-9a-fA-F-]{36})`)
)

// splitStats is what the registry logs tell about the upload sessions the suite made.
type splitStats struct {
	Seen   int                            // uploads found in any pod's log
	Split  []string                       // uploads served by two or more pods, described
	PerPod map[string]int                 // requests carrying an upload UUID per pod
	ByUUID map[string]map[string][]string // uuid -> pod -> methods
}

// stepUploadsAcrossReplicas shows from the registry pods' own logs that requests of one upload
// session were served by different replicas (possible only with shared storage and http.secret).
// It pushes more images until it has seen it, across at most 24 blobs.
func (f *fixture) stepUploadsAcrossReplicas(t *testing.T) {
	need(t, f.imgKeep != nil, "pushed image")
	ctx := context.Background()
	const maxBlobs = 24
	var st *splitStats
	var err error
	for i := 1; ; i++ {
		st, err = f.analyseUploadLogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Split) > 0 || len(f.uploads) >= maxBlobs {
			break
		}
		im, err := kit.RandomImage(f.repo("spread"), fmt.Sprintf("v%d", i), 3, 1200<<10)
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.Client.PushImage(ctx, im)
		if err != nil {
			t.Fatal(err)
		}
		f.uploads = append(f.uploads, res.Uploads...)
		f.survivors = append(f.survivors, im)
	}
	if st.Seen == 0 {
		t.Fatalf("none of the %d upload sessions appears in the registry logs: do the 'response completed' lines carry http.request.uri?", len(f.uploads))
	}
	msg := fmt.Sprintf("uploads split across registry pods: %d of %d (%d found in logs); requests per pod %v",
		len(st.Split), len(f.uploads), st.Seen, st.PerPod)
	t.Log(msg)
	for i, s := range st.Split {
		if i == 3 {
			t.Logf("  ... %d more", len(st.Split)-3)
			break
		}
		t.Logf("  %s", s)
	}
	f.Report.Fact("%s", msg)
	if len(st.Split) > 0 {
		f.Report.Fact("example: %s", st.Split[0])
	} else {
		t.Errorf("no upload was served by more than one replica across %d blobs; is the Ingress balancing per request?", len(f.uploads))
	}
}

// analyseUploadLogs reads every registry pod's log and maps the suite's upload UUIDs to the pods
// that served a request of that upload.
func (f *fixture) analyseUploadLogs(ctx context.Context) (*splitStats, error) {
	pods, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		return nil, err
	}
	ours := map[string]string{} // uuid -> digest
	for _, u := range f.uploads {
		ours[u.UUID] = u.Digest
	}
	st := &splitStats{PerPod: map[string]int{}, ByUUID: map[string]map[string][]string{}}
	for _, p := range pods {
		logs, err := f.Kube.NS(ctx, "logs", p.Name, "-c", "registry")
		if err != nil {
			return nil, fmt.Errorf("logs of %s: %w", p.Name, err)
		}
		for _, line := range strings.Split(logs, "\n") {
			// One line per response; other lines (e.g. the access log) would count requests twice.
			if !strings.Contains(line, `msg="response completed"`) {
				continue
			}
			um := logURIRE.FindStringSubmatch(line)
			if um == nil {
				continue
			}
			m := uploadURIRE.FindStringSubmatch(um[1])
			if m == nil {
				continue
			}
			if _, ok := ours[m[1]]; !ok {
				continue
			}
			method := "?"
			if mm := logMethodRE.FindStringSubmatch(line); mm != nil {
				method = mm[1]
			}
			if st.ByUUID[m[1]] == nil {
				st.ByUUID[m[1]] = map[string][]string{}
			}
			st.ByUUID[m[1]][p.Name] = append(st.ByUUID[m[1]][p.Name], method)
			st.PerPod[p.Name]++
		}
	}
	st.Seen = len(st.ByUUID)
	uuids := make([]string, 0, len(st.ByUUID))
	for u := range st.ByUUID {
		uuids = append(uuids, u)
	}
	sort.Strings(uuids)
	for _, u := range uuids {
		byPod := st.ByUUID[u]
		if len(byPod) < 2 {
			continue
		}
		var parts []string
		for pod, methods := range byPod {
			parts = append(parts, fmt.Sprintf("%s@%s", strings.Join(methods, "+"), pod))
		}
		sort.Strings(parts)
		st.Split = append(st.Split, fmt.Sprintf("upload %s (blob %.19s): %s", u, ours[u], strings.Join(parts, ", ")))
	}
	return st, nil
}

// stepRedisKeys proves the blob descriptor cache is wired: after the pushes Redis holds
// blobs::sha256:<digest> keys for the pushed blobs.
func (f *fixture) stepRedisKeys(t *testing.T) {
	need(t, f.imgKeep != nil, "pushed image")
	ctx := context.Background()
	var keys map[string]bool
	var missing []string
	// The registry writes descriptors when an upload is committed; poll briefly in case a write lags.
	err := kit.Poll(ctx, 30*time.Second, 2*time.Second, func() (bool, error) {
		var err error
		keys, err = f.RedisCachedBlobs(ctx, f.imgKeep.Blobs())
		if err != nil {
			return false, err
		}
		missing = missing[:0]
		for _, b := range f.imgKeep.Blobs() {
			if !keys["blobs::"+b.Digest] {
				missing = append(missing, b.Digest)
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		t.Fatalf("redis has descriptors of %d blobs of %s, missing %v (%v)", len(keys), f.imgKeep.Ref(), missing, err)
	}
	msg := fmt.Sprintf("redis holds the descriptors (blobs::<digest>) of %d of the %d blobs of %s", len(keys), len(f.imgKeep.Blobs()), f.imgKeep.Ref())
	t.Log(msg)
	f.Report.Fact("%s", msg)
	f.checkRedisACL(ctx, t)
}

// checkRedisACL: with the registry's own credentials a client can run the cache's commands and
// nothing else (no scripting, CONFIG, FLUSHALL, KEYS); GC's user can only empty database 0; the
// default user is off. The registry's cache still hits under these rules.
func (f *fixture) checkRedisACL(ctx context.Context, t *testing.T) {
	t.Helper()
	cli := "redis-cli -h 127.0.0.1 --user "
	for _, c := range []struct {
		user, secretKey, command, want string
	}{
		{redis.RegistryUser, redis.PasswordKey, "EVAL 'return 1' 0", "NOPERM"},
		{redis.RegistryUser, redis.PasswordKey, "SCRIPT LOAD 'return 1'", "NOPERM"},
		{redis.RegistryUser, redis.PasswordKey, "CONFIG GET maxmemory", "NOPERM"},
		{redis.RegistryUser, redis.PasswordKey, "FLUSHALL", "NOPERM"},
		{redis.RegistryUser, redis.PasswordKey, "FLUSHDB", "NOPERM"},
		{redis.RegistryUser, redis.PasswordKey, "KEYS '*'", "NOPERM"},
		{redis.RegistryUser, redis.PasswordKey, "SCAN 0", "NOPERM"},
		{redis.RegistryUser, redis.PasswordKey, "SET other-key x", "NOPERM"},
		{redis.RegistryUser, redis.PasswordKey, "PING", "PONG"},
		{redis.FlushUser, redis.FlushPasswordKey, "FLUSHALL", "NOPERM"},
		{redis.FlushUser, redis.FlushPasswordKey, "HGET blobs::x digest", "NOPERM"},
		{redis.FlushUser, redis.FlushPasswordKey, "SELECT 1", "NOPERM"},
		{redis.FlushUser, redis.FlushPasswordKey, "EVAL 'return 1' 0", "NOPERM"},
		{"default", redis.PasswordKey, "PING", "WRONGPASS"},
	} {
		out, err := f.RedisAs(ctx, c.secretKey, cli+c.user+" "+c.command+" 2>&1; true")
		if err != nil {
			t.Errorf("redis-cli as %s: %v", c.user, err)
			continue
		}
		if !strings.Contains(out, c.want) {
			t.Errorf("redis-cli as %s: %s = %q, want %s", c.user, c.command, strings.TrimSpace(out), c.want)
		}
	}
	m0, m1 := f.cacheAroundPulls(ctx, t)
	if m1.Hits <= m0.Hits || m1.Errors != m0.Errors {
		t.Errorf("cache under the ACL: %s -> %s after 3 pulls, want more hits and no new errors", m0, m1)
	}
	f.Report.Fact("Redis ACL: as %s, EVAL, SCRIPT LOAD, CONFIG GET, FLUSHALL, FLUSHDB, KEYS, SCAN and SET on another key got NOPERM (PING: PONG); "+
		"as %s, FLUSHALL, HGET, SELECT 1 and EVAL got NOPERM; the default user is off (WRONGPASS). 3 pulls: cache %s -> %s",
		redis.RegistryUser, redis.FlushUser, m0, m1)
}
