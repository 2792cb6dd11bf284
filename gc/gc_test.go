package gc

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/stackconfig"
	"github.com/regstack/registry-stack/storage"
)

const (
	tCronJob        = "kubernetes:batch/v1:CronJob"
	tConfigMap      = "kubernetes:core/v1:ConfigMap"
	tServiceAccount = "kubernetes:core/v1:ServiceAccount"
	tRole           = "kubernetes:rbac.authorization.k8s.io/v1:Role"
	tRoleBinding    = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
	tGC             = "registry-stack:index:GC"
	gcName          = "registry-gc"
)

var registrySelector = map[string]string{"app.kubernetes.io/name": "registry", "app.kubernetes.io/instance": "registry"}

// gcArgs are the fixed inputs of NewGC (as main wires them); each call returns a fresh copy.
func gcArgs(cache bool) *GCArgs {
	a := &GCArgs{
		Namespace:        pulumi.String("images"),
		Schedule:         "30 4 * * 6",
		DeploymentName:   pulumi.String("registry"),
		ContainerName:    "registry",
		RegistrySelector: registrySelector,
		RegistryImage:    "registry:3.1.2",
		RegistryUID:      1000,
		ConfigSecretName: pulumi.String("registry-config"),
		Storage:          storage.FilesystemBackend(pulumi.String("registry-data"), &stackconfig.FilesystemStorage{Mode: "dynamic", AccessMode: "ReadWriteOnce"}),
		KubectlImage:     "registry.k8s.io/kubectl:v1.33.13",
	}
	if cache {
		a.CacheEnabled = true
		a.RedisHost = pulumi.String("registry-redis")
		a.RedisPort = 6379
		a.RedisImage = "redis:7.0.15-alpine"
		a.RedisPasswordSecret = pulumi.String("registry-redis")
		a.RedisPasswordKey = "password"
	}
	return a
}

func runGC(t *testing.T, a *GCArgs) *testutil.Mocks {
	t.Helper()
	return testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewGC(ctx, gcName, a)
		return err
	})
}

// podSpec is the Job pod template of the registered CronJob, as plain values.
func podSpec(t *testing.T, m *testutil.Mocks) map[string]any {
	t.Helper()
	spec, ok := m.Get(t, tCronJob, gcName).Lookup("spec", "jobTemplate", "spec", "template", "spec").(map[string]any)
	if !ok {
		t.Fatal("CronJob has no pod template spec")
	}
	return spec
}

type container = map[string]any

// containers returns the init containers followed by the main containers.
func containers(t *testing.T, spec map[string]any) (inits, mains []container) {
	t.Helper()
	for _, c := range asList(spec["initContainers"]) {
		inits = append(inits, c.(container))
	}
	for _, c := range asList(spec["containers"]) {
		mains = append(mains, c.(container))
	}
	return inits, mains
}

func asList(v any) []any { l, _ := v.([]any); return l }

func names(cs []container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c["name"].(string))
	}
	return out
}

// argv is the container's command followed by its args.
func argv(c container) []string {
	var out []string
	for _, v := range append(asList(c["command"]), asList(c["args"])...) {
		out = append(out, v.(string))
	}
	return out
}

// env returns the container's env as name -> value (literal) or "<from:...>" (valueFrom).
func env(c container) map[string]string {
	out := map[string]string{}
	for _, e := range asList(c["env"]) {
		em := e.(map[string]any)
		name := em["name"].(string)
		if v, ok := em["value"].(string); ok {
			out[name] = v
		} else {
			out[name] = fmt.Sprintf("<from:%v>", em["valueFrom"])
		}
	}
	return out
}

func TestCronJob(t *testing.T) {
	for _, suspend := range []bool{false, true} {
		a := gcArgs(true)
		a.Suspend = suspend
		cron := runGC(t, a).Get(t, tCronJob, gcName)
		for _, e := range []struct {
			path []any
			want any
			why  string
		}{
			{[]any{"spec", "schedule"}, "30 4 * * 6", "as given"},
			{[]any{"spec", "suspend"}, suspend, "as given"},
			{[]any{"spec", "concurrencyPolicy"}, "Forbid", "two GCs would restart the registry against each other"},
			{[]any{"spec", "jobTemplate", "spec", "backoffLimit"}, 0.0, "a retry restarts the registry twice more"},
			{[]any{"spec", "jobTemplate", "spec", "template", "spec", "restartPolicy"}, "Never", "a restarted init container would re-enter maintenance"},
			{[]any{"spec", "jobTemplate", "spec", "template", "spec", "serviceAccountName"}, gcName, "the account bound to the Role"},
			{[]any{"metadata", "namespace"}, "images", "as given"},
		} {
			if got := cron.Lookup(e.path...); got != e.want {
				t.Errorf("suspend=%v: %v = %#v, want %#v (%s)", suspend, e.path, got, e.want, e.why)
			}
		}
	}
	a := gcArgs(false)
	a.Schedule = ""
	if got := runGC(t, a).Get(t, tCronJob, gcName).String("spec", "schedule"); got != "0 3 * * 0" {
		t.Errorf("default schedule = %q, want 0 3 * * 0", got)
	}
}

// pullSteps are the init containers that only pull an image (they run its --version) before the
// registry goes read-only.
var pullSteps = map[string]bool{"pull-registry-image": true, "pull-redis-image": true}

func TestStepsRunInOrder(t *testing.T) {
	for _, c := range []struct {
		cache     bool
		wantInits []string
	}{
		{true, []string{"pull-registry-image", "pull-redis-image", "enter-read-only", "garbage-collect", "flush-cache"}},
		{false, []string{"pull-registry-image", "enter-read-only", "garbage-collect"}},
	} {
		t.Run(fmt.Sprint("cache=", c.cache), func(t *testing.T) {
			inits, mains := containers(t, podSpec(t, runGC(t, gcArgs(c.cache))))
			if got := names(inits); !slices.Equal(got, c.wantInits) {
				t.Errorf("init containers = %v, want %v (init containers run in this order; every image is pulled "+
					"before enter-read-only)", got, c.wantInits)
			}
			if got := names(mains); !slices.Equal(got, []string{"restore-writes"}) {
				t.Errorf("containers = %v, want [restore-writes]", got)
			}
			want := map[string][]string{
				"pull-registry-image": {"registry", "--version"},
				"pull-redis-image":    {"redis-cli", "--version"},
				"enter-read-only":     {"sh", "/scripts/maintenance.sh", "enter"},
				"garbage-collect":     {"sh", "/scripts/collect.sh"},
				"flush-cache":         {"sh", "/scripts/flush.sh"},
				"restore-writes":      {"sh", "/scripts/restore.sh"},
			}
			images := map[string]string{
				"pull-registry-image": "registry:3.1.2",
				"pull-redis-image":    "redis:7.0.15-alpine",
				"enter-read-only":     "registry.k8s.io/kubectl:v1.33.13",
				"garbage-collect":     "registry:3.1.2",
				"flush-cache":         "redis:7.0.15-alpine",
				"restore-writes":      "registry.k8s.io/kubectl:v1.33.13",
			}
			for _, ctr := range append(inits, mains...) {
				name := ctr["name"].(string)
				if _, ok := want[name]; !ok {
					t.Errorf("unexpected container %s", name)
					continue
				}
				if got := argv(ctr); !slices.Equal(got, want[name]) {
					msg := ""
					if name == "enter-read-only" {
						msg = "\nBUG: maintenance.sh without an argument prints its usage and exits 2, so every GC run fails " +
							"at its first step and never collects"
					}
					t.Errorf("%s runs %q, want %q%s", name, got, want[name], msg)
				}
				if got := ctr["image"]; got != images[name] {
					t.Errorf("%s image = %v, want %s", name, got, images[name])
				}
				if got := ctr["imagePullPolicy"]; got != "IfNotPresent" {
					t.Errorf("%s imagePullPolicy = %v, want IfNotPresent (the image pulled before read-only is reused)", name, got)
				}
			}

			// The kubelet pulls an image when its container starts. Once enter-read-only has run, a
			// failing pull would leave the registry read-only (restore-writes could never start), so
			// every later container must use an image already pulled by an earlier one.
			enter := slices.Index(names(inits), "enter-read-only")
			if enter < 0 {
				t.Fatal("no enter-read-only step")
			}
			pulled := map[any]bool{}
			for _, ctr := range inits[:enter+1] { // enter-read-only's own image is pulled before it switches
				pulled[ctr["image"]] = true
			}
			for _, ctr := range append(slices.Clone(inits[enter+1:]), mains...) {
				if !pulled[ctr["image"]] {
					t.Errorf("%s (image %v) starts after enter-read-only, but its image was not pulled before: "+
						"a failing pull would strand the registry read-only", ctr["name"], ctr["image"])
				}
			}
		})
	}
}

// TestPullStepsDoNothingElse: the pull containers run a no-op with no access to anything.
func TestPullStepsDoNothingElse(t *testing.T) {
	for _, cache := range []bool{true, false} {
		inits, _ := containers(t, podSpec(t, runGC(t, gcArgs(cache))))
		var seen []string
		for _, c := range inits {
			name := c["name"].(string)
			if !pullSteps[name] {
				continue
			}
			seen = append(seen, name)
			if m := asList(c["volumeMounts"]); len(m) != 0 {
				t.Errorf("cache=%v: %s mounts %v, want nothing", cache, name, m)
			}
			if e := asList(c["env"]); len(e) != 0 {
				t.Errorf("cache=%v: %s env = %v, want none", cache, name, e)
			}
			if c["envFrom"] != nil || c["args"] != nil {
				t.Errorf("cache=%v: %s has envFrom %v / args %v, want none", cache, name, c["envFrom"], c["args"])
			}
			if r, _ := c["resources"].(map[string]any); r["requests"] == nil || r["limits"] == nil {
				t.Errorf("cache=%v: %s resources = %v, want requests and a memory limit", cache, name, r)
			}
		}
		want := []string{"pull-registry-image", "pull-redis-image"}
		if !cache {
			want = want[:1]
		}
		if !slices.Equal(seen, want) {
			t.Errorf("cache=%v: pull steps = %v, want %v", cache, seen, want)
		}
	}
}

func TestEveryContainerIsRestricted(t *testing.T) {
	spec := podSpec(t, runGC(t, gcArgs(true)))
	if sc, _ := spec["securityContext"].(map[string]any); sc["runAsNonRoot"] != true || sc["runAsUser"] == 0.0 {
		t.Errorf("pod securityContext = %v, want runAsNonRoot and a non-zero user", sc)
	}
	// Each container runs as its image's own account, set explicitly (the pod default is the
	// registry's): the pull steps too, although they only print a version.
	wantUID := map[string]float64{
		"pull-registry-image": 1000, "pull-redis-image": 999,
		"enter-read-only": 65532, "garbage-collect": 1000, "flush-cache": 999, "restore-writes": 65532,
	}
	inits, mains := containers(t, spec)
	if got, want := len(inits)+len(mains), len(wantUID); got != want {
		t.Errorf("%d containers %v, want %d", got, names(append(inits, mains...)), want)
	}
	for _, c := range append(inits, mains...) {
		name := c["name"].(string)
		uid, known := wantUID[name]
		if !known {
			t.Errorf("container %s has no expected user", name)
			continue
		}
		sc, _ := c["securityContext"].(map[string]any)
		for _, e := range []struct {
			key  string
			want any
		}{
			{"runAsNonRoot", true},
			{"runAsUser", uid},
			{"runAsGroup", uid},
			{"allowPrivilegeEscalation", false},
			{"readOnlyRootFilesystem", true},
			{"privileged", nil},
		} {
			if got := sc[e.key]; got != e.want {
				t.Errorf("%s securityContext.%s = %v, want %v", name, e.key, got, e.want)
			}
		}
		caps, _ := sc["capabilities"].(map[string]any)
		if fmt.Sprint(caps["drop"]) != "[ALL]" || caps["add"] != nil {
			t.Errorf("%s capabilities = %v, want drop [ALL] and nothing added", name, caps)
		}
		if seccomp, _ := sc["seccompProfile"].(map[string]any); seccomp["type"] != "RuntimeDefault" {
			t.Errorf("%s seccompProfile = %v, want RuntimeDefault", name, seccomp)
		}
		if r, _ := c["resources"].(map[string]any); r["requests"] == nil || r["limits"] == nil {
			t.Errorf("%s resources = %v, want requests and a memory limit", name, r)
		}
	}
}

// scriptVars are the upper-case variables a script reads, plus those of the scripts it runs.
func scriptVars(t *testing.T, scripts map[string]string, name string) []string {
	t.Helper()
	body, ok := scripts[name]
	if !ok {
		t.Fatalf("no script %s", name)
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{?([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(body, -1) {
		seen[m[1]] = true
	}
	for other := range scripts {
		if other != name && strings.Contains(body, "/"+other) {
			for _, v := range scriptVars(t, scripts, other) {
				seen[v] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func TestEveryStepGetsTheEnvironmentItsScriptReads(t *testing.T) {
	scripts, err := Scripts()
	if err != nil {
		t.Fatal(err)
	}
	inits, mains := containers(t, podSpec(t, runGC(t, gcArgs(true))))
	checked := 0
	for _, c := range append(inits, mains...) {
		name, script := c["name"].(string), ""
		for _, a := range argv(c) {
			if strings.HasPrefix(a, scriptsDir+"/") {
				script = strings.TrimPrefix(a, scriptsDir+"/")
			}
		}
		e := env(c)
		if pullSteps[name] {
			// A pull step runs the image's own binary, no script, and needs no environment.
			if script != "" || len(e) != 0 {
				t.Errorf("pull step %s runs script %q with env %v, want no script and no env", name, script, e)
			}
			continue
		}
		if script == "" {
			t.Errorf("%s runs %q: no script from %s", name, argv(c), scriptsDir)
			continue
		}
		checked++
		vars := scriptVars(t, scripts, script)
		if len(vars) == 0 {
			t.Errorf("%s: found no variables in %s; the check would prove nothing", name, script)
		}
		for _, v := range vars {
			if _, ok := e[v]; !ok {
				t.Errorf("%s runs %s, which reads $%s, but the container does not set it (set -u aborts the script)", name, script, v)
			}
		}
	}
	if checked != 4 {
		t.Errorf("checked %d script steps, want 4 (enter-read-only, garbage-collect, flush-cache, restore-writes)", checked)
	}
}

func TestStepEnvironmentValues(t *testing.T) {
	inits, mains := containers(t, podSpec(t, runGC(t, gcArgs(true))))
	byName := map[string]container{}
	for _, c := range append(inits, mains...) {
		byName[c["name"].(string)] = c
	}
	gcSelector := SelectorString(PodSelector(gcName))
	if gcSelector != "app.kubernetes.io/instance=registry-gc,app.kubernetes.io/name=registry-gc" {
		t.Errorf("SelectorString(PodSelector(%q)) = %q", gcName, gcSelector)
	}
	for _, step := range []string{"enter-read-only", "restore-writes"} {
		e := env(byName[step])
		for k, want := range map[string]string{
			"NAMESPACE":       "<from:map[fieldRef:map[fieldPath:metadata.namespace]]>",
			"POD_NAME":        "<from:map[fieldRef:map[fieldPath:metadata.name]]>",
			"GC_SELECTOR":     gcSelector,
			"DEPLOYMENT":      "registry",
			"CONTAINER":       "registry",
			"POD_SELECTOR":    "app.kubernetes.io/instance=registry,app.kubernetes.io/name=registry",
			"ROLLOUT_TIMEOUT": "600",
			"CACHE_ENABLED":   "true",
			"HOME":            "/tmp",
		} {
			if e[k] != want {
				t.Errorf("%s env %s = %q, want %q", step, k, e[k], want)
			}
		}
	}
	collect := env(byName["garbage-collect"])
	if collect["CONFIG"] != "/etc/distribution/config.yml" || collect["STATUS_DIR"] != "/status" || collect["OTEL_TRACES_EXPORTER"] != "none" {
		t.Errorf("garbage-collect env = %v", collect)
	}
	flush := env(byName["flush-cache"])
	if flush["REDISCLI_AUTH"] != "<from:map[secretKeyRef:map[key:password name:registry-redis]]>" {
		t.Errorf("flush-cache REDISCLI_AUTH = %q, want the Redis Secret's password key", flush["REDISCLI_AUTH"])
	}
	if flush["REDIS_HOST"] != "registry-redis" || flush["REDIS_PORT"] != "6379" {
		t.Errorf("flush-cache targets %s:%s, want registry-redis:6379", flush["REDIS_HOST"], flush["REDIS_PORT"])
	}
	if got := env(byName["enter-read-only"])["CACHE_ENABLED"]; got != "true" {
		t.Errorf("CACHE_ENABLED = %q with the cache", got)
	}
	_, mainsNoCache := containers(t, podSpec(t, runGC(t, gcArgs(false))))
	if got := env(mainsNoCache[0])["CACHE_ENABLED"]; got != "false" {
		t.Errorf("CACHE_ENABLED = %q without the cache, want false (restore.sh would wait for a flush that never runs)", got)
	}

	// Mounts: the collector sees the data and the config (read-only); every step shares /status.
	mounts := func(c container) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, m := range asList(c["volumeMounts"]) {
			mm := m.(map[string]any)
			out[mm["mountPath"].(string)] = mm
		}
		return out
	}
	cm := mounts(byName["garbage-collect"])
	if cm["/var/lib/registry"]["name"] != "data" || cm["/etc/distribution"]["name"] != "config" || cm["/etc/distribution"]["readOnly"] != true {
		t.Errorf("garbage-collect mounts = %v, want data at /var/lib/registry and config read-only at /etc/distribution", cm)
	}
	for name, c := range byName {
		if pullSteps[name] {
			if m := mounts(c); len(m) != 0 {
				t.Errorf("pull step %s mounts %v, want nothing", name, m)
			}
			continue
		}
		if mounts(c)[statusDir]["name"] != "status" {
			t.Errorf("%s does not mount the shared status volume at %s", name, statusDir)
		}
		if name != "garbage-collect" {
			if _, ok := mounts(c)["/var/lib/registry"]; ok {
				t.Errorf("%s mounts the registry data; only the collector needs it", name)
			}
		}
	}
	volumes := map[string]string{}
	for _, v := range asList(podSpec(t, runGC(t, gcArgs(true)))["volumes"]) {
		vm := v.(map[string]any)
		volumes[vm["name"].(string)] = fmt.Sprint(vm)
	}
	for name, want := range map[string]string{
		"data":    "claimName:registry-data",
		"config":  "secretName:registry-config",
		"scripts": "configMap:map[defaultMode:365 name:registry-gc]",
		"status":  "emptyDir",
	} {
		if !strings.Contains(volumes[name], want) {
			t.Errorf("volume %s = %s, want %s", name, volumes[name], want)
		}
	}
}

func TestRoleRulesAreMinimal(t *testing.T) {
	m := runGC(t, gcArgs(true))
	for _, forbidden := range []string{"kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"} {
		if n := len(m.OfType(forbidden)); n != 0 {
			t.Errorf("%d %s registered: GC needs namespaced RBAC only", n, forbidden)
		}
	}
	role := m.Get(t, tRole, gcName)
	rules := asList(role.Lookup("rules"))
	type rule struct{ groups, resources, names, verbs string }
	var got []rule
	for i := range rules {
		strs := func(k string) string {
			l := []string{}
			for _, v := range asList(role.Lookup("rules", i, k)) {
				l = append(l, v.(string))
			}
			slices.Sort(l)
			return strings.Join(l, ",")
		}
		got = append(got, rule{strs("apiGroups"), strs("resources"), strs("resourceNames"), strs("verbs")})
	}
	want := []rule{
		{"apps", "deployments", "registry", "get,list,patch,watch"},
		{"", "pods", "", "get,list"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Role rules = %+v, want exactly %+v (patch/watch the one Deployment, list pods)", got, want)
	}
	dump := fmt.Sprint(role.Lookup("rules"))
	for _, bad := range []string{"*", "secrets", "configmaps", "create", "delete", "update", "escalate", "bind", "exec"} {
		if strings.Contains(dump, bad) {
			t.Errorf("Role mentions %q: %s", bad, dump)
		}
	}

	rb := m.Get(t, tRoleBinding, gcName)
	if rb.String("roleRef", "kind") != "Role" || rb.String("roleRef", "name") != gcName {
		t.Errorf("RoleBinding roleRef = %v, want Role %s", rb.Lookup("roleRef"), gcName)
	}
	if got := fmt.Sprint(rb.Lookup("subjects")); got != fmt.Sprint([]any{map[string]any{"kind": "ServiceAccount", "name": gcName, "namespace": "images"}}) {
		t.Errorf("RoleBinding subjects = %s, want only the GC ServiceAccount", got)
	}
	if got := m.Get(t, tServiceAccount, gcName).String("metadata", "namespace"); got != "images" {
		t.Errorf("ServiceAccount namespace = %q", got)
	}
}

func TestSelectorString(t *testing.T) {
	sel := map[string]string{"c": "3", "app.kubernetes.io/name": "registry", "a": "1", "app.kubernetes.io/instance": "blue"}
	want := "a=1,app.kubernetes.io/instance=blue,app.kubernetes.io/name=registry,c=3"
	for i := 0; i < 50; i++ { // map iteration order is random: repeat to catch an unsorted result
		if got := SelectorString(sel); got != want {
			t.Fatalf("SelectorString = %q, want %q (sorted, kubectl -l syntax)", got, want)
		}
	}
	if got := SelectorString(nil); got != "" {
		t.Errorf("SelectorString(nil) = %q", got)
	}
}

func TestScripts(t *testing.T) {
	scripts, err := Scripts()
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(scripts)); !slices.Equal(got, []string{"collect.sh", "flush.sh", "maintenance.sh", "restore.sh"}) {
		t.Errorf("Scripts() = %v, want the four step scripts", got)
	}
	for name, body := range scripts {
		if !strings.HasPrefix(body, "#!/bin/sh\n") {
			t.Errorf("%s does not start with #!/bin/sh", name)
		}
		if !regexp.MustCompile(`(?m)^set -[a-z]*u`).MatchString(body) {
			t.Errorf("%s has no set -u: a missing variable would be silently empty", name)
		}
	}
}

func TestConfigMapHoldsOnlyTheScripts(t *testing.T) {
	scripts, err := Scripts()
	if err != nil {
		t.Fatal(err)
	}
	m := runGC(t, gcArgs(true))
	cm := m.Get(t, tConfigMap, gcName)
	data, _ := cm.Lookup("data").(map[string]any)
	if got := slices.Sorted(maps.Keys(data)); !slices.Equal(got, slices.Sorted(maps.Keys(scripts))) {
		t.Errorf("ConfigMap keys = %v, want exactly the scripts", got)
	}
	for name, body := range scripts {
		if data[name] != body {
			t.Errorf("ConfigMap %s differs from the embedded script", name)
		}
	}
	if cm.IsSecret("data") {
		t.Error("ConfigMap data is secret: it should hold nothing secret")
	}
	dump := m.Dump(func(r testutil.Resource) bool { return r.Type == tConfigMap || r.Type == tCronJob })
	for _, secret := range []string{"mock-password-", "requirepass", "PRIVATE KEY", "$2a$", "redis-pass"} {
		if strings.Contains(dump, secret) {
			t.Errorf("ConfigMap or CronJob holds secret material %q", secret)
		}
	}
}

func TestChildrenAreParentedAndNamed(t *testing.T) {
	m := runGC(t, gcArgs(true))
	parent := "urn:pulumi:unit::registry-stack::" + tGC + "::" + gcName
	var kinds []string
	for _, r := range m.Resources() {
		if r.Type == tGC {
			continue
		}
		kinds = append(kinds, r.Type)
		if r.Parent != parent {
			t.Errorf("%s/%s parent = %q, want the GC component", r.Type, r.Name, r.Parent)
		}
		if r.Name != gcName || r.String("metadata", "name") != gcName {
			t.Errorf("%s/%s (Kubernetes name %q) is not named after the component", r.Type, r.Name, r.String("metadata", "name"))
		}
		if r.String("metadata", "labels", "app.kubernetes.io/instance") != gcName {
			t.Errorf("%s/%s lacks the instance label", r.Type, r.Name)
		}
	}
	slices.Sort(kinds)
	if want := []string{tConfigMap, tCronJob, tServiceAccount, tRole, tRoleBinding}; !slices.Equal(kinds, slices.Sorted(slices.Values(want))) {
		t.Errorf("children = %v, want %v", kinds, want)
	}
	// The GC pods carry the labels the Redis NetworkPolicy admits (PodSelector).
	labels, _ := m.Get(t, tCronJob, gcName).Lookup("spec", "jobTemplate", "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range PodSelector(gcName) {
		if labels[k] != v {
			t.Errorf("GC pod label %s = %v, want %s (Redis admits GC pods by PodSelector)", k, labels[k], v)
		}
	}
}

func TestInvalidArgsRegisterNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*GCArgs)
	}{
		{"no deployment", func(a *GCArgs) { a.DeploymentName = nil }},
		{"no selector", func(a *GCArgs) { a.RegistrySelector = nil }},
		{"no uid", func(a *GCArgs) { a.RegistryUID = 0 }},
		{"cache without redis host", func(a *GCArgs) { a.RedisHost = nil }},
		{"cache without password secret", func(a *GCArgs) { a.RedisPasswordSecret = nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := gcArgs(true)
			c.edit(a)
			m, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
				_, err := NewGC(ctx, gcName, a)
				return err
			})
			if err == nil {
				t.Fatal("accepted")
			}
			if n := len(m.Resources()); n != 0 {
				t.Errorf("%d resources registered before the args were rejected", n)
			}
		})
	}
}

// TestGCSelectorSelectsThisCronJobsPods: enter-read-only lists the pods matching GC_SELECTOR to
// refuse to run beside another GC run. The selector must match the labels of the Job pods (its own
// included, which it then skips by POD_NAME), never the registry pods, and only this instance.
func TestGCSelectorSelectsThisCronJobsPods(t *testing.T) {
	for _, name := range []string{gcName, "blue-gc"} {
		m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
			_, err := NewGC(ctx, name, gcArgs(true))
			return err
		})
		tmpl := m.Get(t, tCronJob, name).Lookup("spec", "jobTemplate", "spec", "template")
		spec, _ := tmpl.(map[string]any)["spec"].(map[string]any)
		podLabels, _ := tmpl.(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)
		inits, mains := containers(t, spec)
		for _, c := range append(inits, mains...) {
			step := c["name"].(string)
			if step != "enter-read-only" && step != "restore-writes" {
				if _, ok := env(c)["GC_SELECTOR"]; ok {
					t.Errorf("%s: %s gets GC_SELECTOR, only the kubectl steps need it", name, step)
				}
				continue
			}
			sel, ok := env(c)["GC_SELECTOR"]
			if !ok {
				t.Errorf("%s: %s has no GC_SELECTOR", name, step)
				continue
			}
			if want := "app.kubernetes.io/instance=" + name + ",app.kubernetes.io/name=registry-gc"; sel != want {
				t.Errorf("%s: %s GC_SELECTOR = %q, want %q", name, step, sel, want)
			}
			registryMatched := true
			for _, term := range strings.Split(sel, ",") {
				k, v, found := strings.Cut(term, "=")
				if !found || k == "" || v == "" {
					t.Errorf("%s: GC_SELECTOR term %q is not key=value", name, term)
					continue
				}
				if podLabels[k] != v {
					t.Errorf("%s: GC_SELECTOR requires %s=%s, but the GC pods carry %s=%v: the check would miss another run",
						name, k, v, k, podLabels[k])
				}
				if registrySelector[k] != v {
					registryMatched = false
				}
			}
			if registryMatched {
				t.Errorf("%s: GC_SELECTOR %q also selects the registry pods: enter-read-only would always refuse", name, sel)
			}
		}
	}
}

// The GC pod mounts the registry's claim, which may be ReadWriteOnce: it must run beside a registry pod.
func TestGCPodRunsBesideTheRegistry(t *testing.T) {
	a, err := (&GCArgs{
		Namespace: pulumi.String("ns"), DeploymentName: pulumi.String("registry"), ContainerName: "registry",
		RegistrySelector: map[string]string{"app.kubernetes.io/name": "registry"}, RegistryImage: "registry:3.1.2",
		RegistryUID: 1000, ConfigSecretName: pulumi.String("cfg"),
		Storage: storage.FilesystemBackend(pulumi.String("data"), &stackconfig.FilesystemStorage{Mode: "dynamic", AccessMode: "ReadWriteOnce"}),
	}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		_, err := corev1.NewPod(ctx, "gc", &corev1.PodArgs{Spec: PodSpec(a, PodSelector("gc"), pulumi.String("sa"), pulumi.String("cm"))})
		return err
	})
	term := m.Get(t, "kubernetes:core/v1:Pod", "gc")
	if got := term.String("spec", "affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "topologyKey"); got != "kubernetes.io/hostname" {
		t.Errorf("required pod affinity topology = %q, want kubernetes.io/hostname", got)
	}
	if got := term.String("spec", "affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "labelSelector", "matchLabels", "app.kubernetes.io/name"); got != "registry" {
		t.Errorf("affinity selects %q, want the registry pods", got)
	}
}
