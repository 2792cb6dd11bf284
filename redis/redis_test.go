package redis

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/regstack/registry-stack/internal/testutil"
)

const (
	tDeployment = "kubernetes:apps/v1:Deployment"
	tService    = "kubernetes:core/v1:Service"
	tSecret     = "kubernetes:core/v1:Secret"
	tNetPol     = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	tRedis      = "registry-stack:index:Redis"
	// The mock engine's RandomPassword result for the component "cache".
	mockPassword = "mock-password-cache-password"
)

var (
	registryClients = map[string]string{"app.kubernetes.io/name": "registry", "app.kubernetes.io/instance": "registry"}
	gcClients       = map[string]string{"app.kubernetes.io/name": "registry-gc", "app.kubernetes.io/instance": "registry-gc"}
)

func TestConfIsAnACLProtectedLRUCacheWithoutPersistence(t *testing.T) {
	conf := Conf("256mb", Users("s3cr3t", "fl0sh", "pr0be", false))
	lines := strings.Split(conf, "\n")
	hash := func(pw string) string {
		sum := sha256.Sum256([]byte(pw))
		return "#" + hex.EncodeToString(sum[:])
	}
	for _, want := range []string{
		"maxmemory 256mb",
		"maxmemory-policy allkeys-lru", // the registry sets no TTLs
		`save ""`,                      // no RDB snapshots
		"appendonly no",                // no AOF
		"port 6379",
		"protected-mode yes",
		// No password and no command for a client that does not log in as one of the users.
		"user default off resetkeys resetchannels -@all",
		"user registry on " + hash("s3cr3t") + " resetkeys resetchannels ~blobs::* ~repository::* -@all " +
			"+ping +hello +hget +hmget +hset +hmset +hsetnx +hdel +sismember +sadd +srem +del +multi +exec +discard",
		"user gc on " + hash("fl0sh") + " resetkeys resetchannels -@all +ping +hello +flushdb",
		"user probe on " + hash("pr0be") + " resetkeys resetchannels -@all +ping +hello",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("redis.conf lacks the line %q:\n%s", want, conf)
		}
	}
	// A directive given twice: redis uses the last one, which would silently undo the one above.
	seen := map[string]string{}
	for _, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		key := strings.Fields(l)[0]
		if key == "user" {
			key += " " + strings.Fields(l)[1]
		}
		if prev, ok := seen[key]; ok {
			t.Errorf("directive %s appears twice: %q and %q", key, prev, l)
		}
		seen[key] = l
	}
	if !strings.HasSuffix(conf, "\n") {
		t.Error("redis.conf does not end with a newline")
	}
	for _, pw := range []string{"s3cr3t", "fl0sh", "pr0be"} {
		if strings.Contains(conf, pw) {
			t.Errorf("redis.conf holds the password %q in clear, want only its hash", pw)
		}
	}
	if strings.Contains(conf, "requirepass") {
		t.Error("redis.conf sets requirepass: that is the default user's password, and the default user is off")
	}
}

// No user gets a command category, scripting, administration or a key-listing command; only the
// registry's user touches keys, and only its own; SELECT only when mirrors use other databases.
func TestACLUsersAreLeastPrivilege(t *testing.T) {
	for _, selectDBs := range []bool{false, true} {
		users := Users("a", "b", "c", selectDBs)
		if len(users) != 3 {
			t.Fatalf("users = %v, want registry, gc, probe", users)
		}
		for _, u := range users {
			if !slices.Equal(u.Rules[:2], []string{"resetkeys", "resetchannels"}) {
				t.Errorf("user %s rules start %v, want resetkeys resetchannels (nothing inherited)", u.Name, u.Rules)
			}
			allowed := 0
			for _, r := range u.Rules {
				switch {
				case strings.HasPrefix(r, "+@") || r == "allcommands" || r == "allkeys" || r == "~*" || r == "nopass" || r == "allchannels":
					t.Errorf("user %s has the broad rule %q", u.Name, r)
				case strings.HasPrefix(r, "+"):
					allowed++
					for _, bad := range []string{"eval", "evalsha", "function", "script", "config", "keys", "scan", "flushall", "acl", "module", "debug", "shutdown", "client", "monitor", "migrate", "restore"} {
						if strings.TrimPrefix(r, "+") == bad || strings.HasPrefix(strings.TrimPrefix(r, "+"), bad+"|") {
							t.Errorf("user %s may run %s", u.Name, bad)
						}
					}
				case strings.HasPrefix(r, "~") && u.Name != RegistryUser:
					t.Errorf("user %s may touch keys %s", u.Name, r)
				}
			}
			if allowed == 0 || !slices.Contains(u.Rules, "-@all") {
				t.Errorf("user %s rules %v: want -@all and a few commands", u.Name, u.Rules)
			}
			if got := slices.Contains(u.Rules, "+select"); got != (selectDBs && u.Name == RegistryUser) {
				t.Errorf("selectDatabases=%v: user %s may SELECT = %v", selectDBs, u.Name, got)
			}
		}
		if !slices.Contains(users[1].Rules, "+flushdb") || users[1].Name != FlushUser {
			t.Errorf("GC's user %v cannot FLUSHDB", users[1])
		}
	}
}

// registryCommands are exactly the commands distribution's Redis cache (the pinned version, read
// from its source in the module cache) and go-redis's connection setup send: a command the
// registry needs but the ACL refuses would turn every cache call into an error.
func TestRegistryCommandsMatchDistributionsCache(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/distribution/distribution/v3").Output()
	if err != nil {
		t.Fatalf("locate distribution's module: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "registry", "storage", "cache", "redis", "redis.go"))
	if err != nil {
		t.Fatal(err)
	}
	// Calls on the go-redis client or a pipeline: pool.HMGet(ctx, ...), pipe.SRem(ctx, ...).
	calls := regexp.MustCompile(`\b(?:pool|pipe|conn)\.([A-Z][A-Za-z]+)\(`).FindAllStringSubmatch(string(src), -1)
	used := map[string]bool{"ping": true, "hello": true} // distribution's OnConnect; go-redis's handshake
	for _, c := range calls {
		switch name := strings.ToLower(c[1]); name {
		case "txpipeline":
			used["multi"], used["exec"], used["discard"] = true, true, true
		default:
			used[name] = true
		}
	}
	if len(calls) < 8 {
		t.Fatalf("found only %d cache calls in distribution's source: the pattern no longer matches it", len(calls))
	}
	for cmd := range used {
		if !slices.Contains(registryCommands, cmd) {
			t.Errorf("distribution's cache sends %s, which the registry's ACL user may not run", strings.ToUpper(cmd))
		}
	}
	for _, cmd := range registryCommands {
		if !used[cmd] {
			t.Errorf("the registry's ACL user may run %s, which distribution's cache never sends", strings.ToUpper(cmd))
		}
	}
}

// renderPod registers a Pod with the given spec under the mock engine and returns what Kubernetes
// would receive.
func renderPod(t *testing.T, spec func() (*corev1.PodSpecArgs, error)) testutil.Resource {
	t.Helper()
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		s, err := spec()
		if err != nil {
			return err
		}
		_, err = corev1.NewPod(ctx, "probe", &corev1.PodArgs{Spec: s})
		return err
	})
	return m.Get(t, "kubernetes:core/v1:Pod", "probe")
}

// complete fills what a test leaves unset with the values the stack's defaults give.
func complete(a RedisArgs) *RedisArgs {
	if a.Namespace == nil {
		a.Namespace = pulumi.String("ns")
	}
	if a.ClientSelectors == nil {
		a.ClientSelectors = []map[string]string{registryClients}
	}
	if a.Image == "" {
		a.Image = "redis:8.10.2-alpine"
	}
	if a.MaxMemory == "" {
		a.MaxMemory, a.MaxMemoryBytes = "64mb", 64<<20
	}
	if a.CPURequest == "" {
		a.CPURequest = "50m"
	}
	if a.MemoryRequest == "" {
		a.MemoryRequest = "96Mi"
	}
	return &a
}

func defaultedArgs(t *testing.T, a RedisArgs) *RedisArgs {
	t.Helper()
	out, err := complete(a).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPodSpec(t *testing.T) {
	a := defaultedArgs(t, RedisArgs{Image: "redis:7.0.15-alpine"})
	pod := renderPod(t, func() (*corev1.PodSpecArgs, error) { return PodSpec(pulumi.String("cache-secret"), a) })
	c := func(path ...any) any { return pod.Lookup(append([]any{"spec", "containers", 0}, path...)...) }

	if got := fmt.Sprint(c("command")); got != "[redis-server /etc/redis/redis.conf]" {
		t.Errorf("command = %s, want redis-server with the mounted config file", got)
	}
	if got := c("args"); got != nil {
		t.Errorf("args = %v, want none (everything is in redis.conf)", got)
	}
	// The config file the command names must be the Secret item mounted there.
	if got := c("volumeMounts", 0); fmt.Sprint(got) != fmt.Sprint(map[string]any{"name": "config", "mountPath": "/etc/redis", "readOnly": true}) {
		t.Errorf("first volume mount = %v, want the config Secret read-only at /etc/redis", got)
	}
	if got := pod.Lookup("spec", "volumes", 0, "secret"); fmt.Sprint(got) != fmt.Sprint(map[string]any{
		"secretName": "cache-secret", "defaultMode": float64(0o440),
		"items": []any{map[string]any{"key": "redis.conf", "path": "redis.conf"}},
	}) {
		t.Errorf("config volume = %v, want item redis.conf of Secret cache-secret", got)
	}
	if got := c("image"); got != "redis:7.0.15-alpine" {
		t.Errorf("image = %v", got)
	}

	// Probes authenticate as the probe user (which may only PING): redis-cli reads
	// REDISCLI_AUTH, taken from the Secret. The registry's password is not in the pod.
	env := c("env").([]any)
	if len(env) != 1 || fmt.Sprint(env[0]) != fmt.Sprint(map[string]any{
		"name": "REDISCLI_AUTH", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "cache-secret", "key": probePasswordKey}},
	}) {
		t.Errorf("env = %v, want only REDISCLI_AUTH from Secret cache-secret key %s", env, probePasswordKey)
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		cmd, _ := c(probe, "exec", "command").([]any)
		script := fmt.Sprint(cmd)
		if len(cmd) != 3 || cmd[0] != "sh" || cmd[1] != "-c" {
			t.Errorf("%s = %v, want sh -c <pipeline>", probe, cmd)
			continue
		}
		for _, want := range []string{"redis-cli", "-p 6379", "--user probe", "ping", "grep -q PONG"} {
			if !strings.Contains(script, want) {
				t.Errorf("%s %q lacks %q (an unauthenticated or unchecked ping passes even when auth is broken)", probe, script, want)
			}
		}
		if strings.Contains(script, " -a ") || strings.Contains(script, "--pass") || strings.Contains(script, "AUTH") {
			t.Errorf("%s %q passes the password on the command line", probe, script)
		}
	}

	// Non-root, restricted.
	for _, p := range []struct {
		path []any
		want any
	}{
		{[]any{"spec", "securityContext", "runAsUser"}, 999.0},
		{[]any{"spec", "securityContext", "runAsNonRoot"}, true},
		{[]any{"spec", "containers", 0, "securityContext", "readOnlyRootFilesystem"}, true},
		{[]any{"spec", "containers", 0, "securityContext", "allowPrivilegeEscalation"}, false},
		{[]any{"spec", "automountServiceAccountToken"}, false},
		{[]any{"spec", "enableServiceLinks"}, false},
		{[]any{"spec", "containers", 0, "ports", 0, "containerPort"}, float64(Port)},
		{[]any{"spec", "containers", 0, "ports", 0, "name"}, "redis"},
	} {
		if got := pod.Lookup(p.path...); got != p.want {
			t.Errorf("%v = %v, want %v", p.path, got, p.want)
		}
	}
	// dir /data must be writable with a read-only root filesystem.
	if got := fmt.Sprint(c("volumeMounts", 1)); !strings.Contains(got, "mountPath:/data") {
		t.Errorf("second mount = %s, want the writable /data (redis.conf: dir /data)", got)
	}
}

func TestMemoryLimitLeavesHeadroomAboveMaxmemory(t *testing.T) {
	for _, c := range []struct {
		maxMemory string
		bytes     int64
	}{
		{"64mb", 64 << 20},
		{"100mb", 100 * 1000 * 1000},
		{"1gb", 1 << 30},
		{"1500000", 1500000},
	} {
		t.Run(c.maxMemory, func(t *testing.T) {
			a := defaultedArgs(t, RedisArgs{MaxMemory: c.maxMemory, MaxMemoryBytes: c.bytes})
			pod := renderPod(t, func() (*corev1.PodSpecArgs, error) { return PodSpec(pulumi.String("s"), a) })
			limit := pod.String("spec", "containers", 0, "resources", "limits", "memory")
			q, err := resource.ParseQuantity(limit)
			if err != nil {
				t.Fatalf("memory limit %q is not a Kubernetes quantity: %v", limit, err)
			}
			// Redis needs room for its own structures beyond maxmemory; an OOM kill empties the cache.
			if min := c.bytes + c.bytes/10; q.Value() < min {
				t.Errorf("memory limit %s (%d bytes) is below maxmemory %s + 10%% (%d bytes)", limit, q.Value(), c.maxMemory, min)
			}
			if req := pod.String("spec", "containers", 0, "resources", "requests", "memory"); req != "96Mi" {
				t.Errorf("memory request = %q, want the default 96Mi", req)
			}
		})
	}
}

func TestNetworkPolicySpecAdmitsOnlyTheClients(t *testing.T) {
	redisSel := map[string]string{"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "cache"}
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		_, err := networkingv1.NewNetworkPolicy(ctx, "np", &networkingv1.NetworkPolicyArgs{
			Spec: NetworkPolicySpec(redisSel, []map[string]string{registryClients, gcClients}),
		})
		return err
	})
	np := m.Get(t, tNetPol, "np")
	if got := fmt.Sprint(np.Lookup("spec", "podSelector")); got != fmt.Sprint(map[string]any{"matchLabels": map[string]any{
		"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "cache"}}) {
		t.Errorf("podSelector = %s, want the Redis pods", got)
	}
	if got := fmt.Sprint(np.Lookup("spec", "policyTypes")); got != "[Ingress]" {
		t.Errorf("policyTypes = %s, want [Ingress]", got)
	}
	rules, _ := np.Lookup("spec", "ingress").([]any)
	if len(rules) != 1 {
		t.Fatalf("%d ingress rules, want exactly 1 (every rule widens access)", len(rules))
	}
	from, _ := np.Lookup("spec", "ingress", 0, "from").([]any)
	if len(from) != 2 {
		t.Fatalf("from = %v, want the two client selectors", from)
	}
	for i, want := range []map[string]string{registryClients, gcClients} {
		peer := from[i].(map[string]any)
		if len(peer) != 1 {
			t.Errorf("peer %d = %v, want a podSelector only (no namespaceSelector or ipBlock)", i, peer)
		}
		if got := np.Lookup("spec", "ingress", 0, "from", i, "podSelector", "matchLabels"); fmt.Sprint(got) != fmt.Sprint(testutil.AnyMap(want)) {
			t.Errorf("peer %d matchLabels = %v, want %v", i, got, want)
		}
	}
	if got := fmt.Sprint(np.Lookup("spec", "ingress", 0, "ports")); got != fmt.Sprint([]any{map[string]any{"protocol": "TCP", "port": 6379.0}}) {
		t.Errorf("ports = %s, want only TCP 6379", got)
	}
}

func TestWithDefaultsRejectsMissingArgs(t *testing.T) {
	for _, c := range []struct {
		name string
		args RedisArgs
		want string
	}{
		{"no namespace", RedisArgs{ClientSelectors: []map[string]string{registryClients}}, "Namespace"},
		{"no clients", RedisArgs{Namespace: pulumi.String("ns")}, "ClientSelectors"},
		{"maxmemory without bytes", RedisArgs{Namespace: pulumi.String("ns"), ClientSelectors: []map[string]string{registryClients}, MaxMemory: "1gb",
			Image: "redis:8.10.2-alpine", CPURequest: "50m", MemoryRequest: "96Mi"}, "MaxMemoryBytes"},
		{"no image", RedisArgs{Namespace: pulumi.String("ns"), ClientSelectors: []map[string]string{registryClients}}, "Image, MaxMemory, CPURequest and MemoryRequest are required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
				_, err := NewRedis(ctx, "cache", &c.args)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %v, want one naming %s", err, c.want)
			}
			if n := len(m.Resources()); n != 0 {
				t.Errorf("%d resources registered before the args were rejected", n)
			}
		})
	}
}

type resolved struct {
	value  string
	secret bool
}

func resolve(t *testing.T, out pulumi.StringOutput) resolved {
	t.Helper()
	v, secret := testutil.Resolve(t, out)
	return resolved{v, secret}
}

func TestNewRedis(t *testing.T) {
	var address, password, secretName, deploymentName resolved
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		r, err := NewRedis(ctx, "cache", complete(RedisArgs{
			Namespace:       pulumi.String("images"),
			MaxMemory:       "128mb",
			MaxMemoryBytes:  128 << 20,
			ClientSelectors: []map[string]string{registryClients, gcClients},
		}))
		if err != nil {
			return err
		}
		address, password = resolve(t, r.Address), resolve(t, r.Password)
		secretName, deploymentName = resolve(t, r.SecretName), resolve(t, r.DeploymentName)
		return nil
	})

	t.Run("outputs", func(t *testing.T) {
		if address != (resolved{"cache:6379", false}) {
			t.Errorf("Address = %+v, want plain cache:6379 (the Service)", address)
		}
		if password != (resolved{mockPassword, true}) {
			t.Errorf("Password = %+v, want the generated password, secret", password)
		}
		if secretName.value != "cache" || deploymentName.value != "cache" {
			t.Errorf("SecretName = %q, DeploymentName = %q, want both named after the component", secretName.value, deploymentName.value)
		}
	})

	t.Run("secret", func(t *testing.T) {
		s := m.Get(t, tSecret, "cache")
		for _, key := range []string{PasswordKey, FlushPasswordKey, probePasswordKey, "redis.conf"} {
			if !s.IsSecret("stringData", key) {
				t.Errorf("Secret key %s is not marked secret", key)
			}
		}
		if got := s.String("stringData", PasswordKey); got != mockPassword {
			t.Errorf("Secret %s = %q, want the generated password", PasswordKey, got)
		}
		conf := s.String("stringData", "redis.conf")
		sum := sha256.Sum256([]byte(mockPassword))
		for _, want := range []string{"user registry on #" + hex.EncodeToString(sum[:]) + " ", "maxmemory 128mb", "maxmemory-policy allkeys-lru"} {
			if !strings.Contains(conf, want) {
				t.Errorf("redis.conf lacks %q:\n%s", want, conf)
			}
		}
	})

	t.Run("password only in the Secret", func(t *testing.T) {
		leaks := m.Dump(func(r testutil.Resource) bool { return r.Type != tSecret && r.Type != tRedis })
		if strings.Contains(leaks, mockPassword) {
			t.Errorf("the password appears outside the Secret:\n%s", leaks)
		}
		dep := m.Get(t, tDeployment, "cache")
		if dep.IsSecret("spec", "template", "metadata", "annotations", "checksum/config") {
			t.Error("checksum/config is secret: previews would hide which pods roll")
		}
		if len(dep.String("spec", "template", "metadata", "annotations", "checksum/config")) != 64 {
			t.Errorf("checksum/config = %q, want a SHA-256 hex", dep.String("spec", "template", "metadata", "annotations", "checksum/config"))
		}
	})

	t.Run("service", func(t *testing.T) {
		svc := m.Get(t, tService, "cache")
		ports, _ := svc.Lookup("spec", "ports").([]any)
		if len(ports) != 1 || svc.Lookup("spec", "ports", 0, "port") != 6379.0 || svc.String("spec", "ports", 0, "targetPort") != "redis" {
			t.Errorf("Service ports = %v, want only 6379 -> the container port named redis", ports)
		}
		if got := svc.String("spec", "type"); got != "ClusterIP" {
			t.Errorf("Service type = %q, want ClusterIP (a cache is internal)", got)
		}
		dep := m.Get(t, tDeployment, "cache")
		sel := fmt.Sprint(svc.Lookup("spec", "selector"))
		if got := fmt.Sprint(dep.Lookup("spec", "selector", "matchLabels")); got != sel {
			t.Errorf("Service selector %s != Deployment selector %s", sel, got)
		}
		podLabels := dep.Lookup("spec", "template", "metadata", "labels").(map[string]any)
		for k, v := range svc.Lookup("spec", "selector").(map[string]any) {
			if podLabels[k] != v {
				t.Errorf("Service selects %s=%v, but the pods have %v", k, v, podLabels[k])
			}
		}
	})

	t.Run("network policy", func(t *testing.T) {
		np := m.Get(t, tNetPol, "cache")
		if got := fmt.Sprint(np.Lookup("spec", "podSelector", "matchLabels")); got != fmt.Sprint(m.Get(t, tDeployment, "cache").Lookup("spec", "selector", "matchLabels")) {
			t.Errorf("NetworkPolicy protects %s, not the Redis pods", got)
		}
		if n := len(np.Lookup("spec", "ingress", 0, "from").([]any)); n != 2 {
			t.Errorf("NetworkPolicy admits %d peers, want the 2 client selectors", n)
		}
	})

	t.Run("deployment", func(t *testing.T) {
		dep := m.Get(t, tDeployment, "cache")
		if got := dep.String("spec", "strategy", "type"); got != "Recreate" {
			t.Errorf("strategy = %q, want Recreate", got)
		}
		if got := dep.Lookup("spec", "replicas"); got != 1.0 {
			t.Errorf("replicas = %v, want 1", got)
		}
		if got := dep.String("spec", "template", "spec", "volumes", 0, "secret", "secretName"); got != "cache" {
			t.Errorf("config volume from Secret %q, want cache", got)
		}
	})

	t.Run("children parented and named", func(t *testing.T) {
		parent := "urn:pulumi:unit::registry-stack::" + tRedis + "::cache"
		for _, r := range m.Resources() {
			if r.Type == tRedis {
				continue
			}
			if r.Parent != parent {
				t.Errorf("%s/%s parent = %q, want the Redis component", r.Type, r.Name, r.Parent)
			}
			if !strings.HasPrefix(r.Name, "cache") {
				t.Errorf("%s/%s is not named after the component", r.Type, r.Name)
			}
			if strings.HasPrefix(r.Type, "kubernetes:") && r.String("metadata", "namespace") != "images" {
				t.Errorf("%s/%s namespace = %q, want images", r.Type, r.Name, r.String("metadata", "namespace"))
			}
		}
	})
}

func TestPasswordIsSafeUnquoted(t *testing.T) {
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewRedis(ctx, "cache", complete(RedisArgs{}))
		return err
	})
	pw := m.Get(t, "random:index/randomPassword:RandomPassword", "cache-password")
	// Client configs and redis-cli's environment take it unquoted: no special characters.
	if got := pw.Lookup("special"); got != false {
		t.Errorf("RandomPassword special = %v, want false", got)
	}
	if got := pw.Lookup("length"); got.(float64) < 24 {
		t.Errorf("RandomPassword length = %v, want at least 24", got)
	}
}

// A small maxmemory with the default request must not yield a limit below the request, which
// Kubernetes rejects ("must be less than or equal to memory limit").
func TestMemoryLimitNeverBelowRequest(t *testing.T) {
	for _, c := range []struct {
		maxMemoryBytes int64
		request, want  string
	}{
		{32 << 20, "96Mi", "96Mi"},
		{64 << 20, "96Mi", "112Mi"},
		{1 << 30, "256Mi", "1312Mi"},
	} {
		got, err := MemoryLimit(c.maxMemoryBytes, c.request)
		if err != nil || got != c.want {
			t.Errorf("MemoryLimit(%d, %s) = %q, %v; want %q", c.maxMemoryBytes, c.request, got, err, c.want)
		}
	}
	if _, err := MemoryLimit(1, "lots"); err == nil {
		t.Error("a request that is no quantity was accepted")
	}
}
