package gc

// Shell-level tests of the GC step scripts: each script runs under a real POSIX sh against fake
// `kubectl`, `registry`, `redis-cli` and `sleep` executables placed first on PATH. The fakes log
// their argv (tab-separated, one call per line) and answer from counters, so a test can script a
// sequence ("the first `get pods` lists a pod, the next lists none").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"

	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/stackconfig"
	"github.com/regstack/registry-stack/storage"
)

// fakeLib is sourced text shared by the fakes.
const fakeLib = `
log_argv() { { printf '%s' "$1"; shift; for a in "$@"; do printf '\t%s' "$a"; done; printf '\n'; } >>"$FAKE_LOG"; }
# next KIND SEP LIST: the item of LIST (split on SEP) for this call of KIND; the last item repeats.
next() {
	f="$FAKE_DIR/$1.count"
	n=$(( $(cat "$f" 2>/dev/null || echo 0) + 1 ))
	echo "$n" >"$f"
	old_ifs=$IFS; IFS=$2; set -f; set -- $3; set +f; IFS=$old_ifs
	i=0; v=
	for x in "$@"; do i=$((i+1)); v=$x; [ "$i" -ge "$n" ] && break; done
	printf '%s\n' "$v"
}
`

var fakes = map[string]string{
	// FAKE_PATCH_RCS, FAKE_ROLLOUT_RCS: exit codes per call.
	// `get pods -l "$GC_SELECTOR"` (the GC pods) answers from FAKE_GC_PODS: per call, separated by
	// '|', the comma-separated names of the live GC pods ("-" for none; default: only $POD_NAME).
	// Any other `get pods` (the registry pods) answers from FAKE_PODS: per call, the number of old
	// pods listed. FAKE_FINISHED and FAKE_GC_FINISHED name pods that have terminated (evicted,
	// failed, completed): like the API server, the fake lists them too unless the call excludes the
	// phases Failed and Succeeded with --field-selector. FAKE_GC_GET_RC: exit code of the GC listing.
	"kubectl": `log_argv kubectl "$@"
case " $* " in
*" patch deployment "*) exit "$(next patch ' ' "${FAKE_PATCH_RCS:-0}")" ;;
*" rollout status deployment "*) exit "$(next rollout ' ' "${FAKE_ROLLOUT_RCS:-0}")" ;;
*" get pods "*)
	sel=; fields=; prev=
	for a in "$@"; do
		[ "$prev" = -l ] && sel=$a
		case $a in --field-selector=*) fields=${a#--field-selector=} ;; esac
		prev=$a
	done
	if [ -n "${GC_SELECTOR:-}" ] && [ "$sel" = "$GC_SELECTOR" ]; then
		list=$(next gcpods '|' "${FAKE_GC_PODS:-${POD_NAME:-}}")
		[ "$list" = - ] && list=
		finished=${FAKE_GC_FINISHED:-}
		rc=${FAKE_GC_GET_RC:-0}
	else
		n=$(next pods ' ' "${FAKE_PODS:-1 0}")
		list=; i=0; while [ "$i" -lt "$n" ]; do i=$((i+1)); list="$list,registry-old-$i"; done
		finished=${FAKE_FINISHED:-}
		rc=0
	fi
	case ",$fields," in
	*,status.phase!=Failed,*) case ",$fields," in *,status.phase!=Succeeded,*) finished= ;; esac ;;
	esac
	all="$list,$finished"
	old_ifs=$IFS; IFS=,
	for p in $all; do [ -n "$p" ] && echo "pod/$p"; done
	IFS=$old_ifs
	exit "$rc" ;;
esac
echo "fake kubectl: unexpected call: $*" >&2
exit 97
`,
	// FAKE_REGISTRY_OUT is what the collector prints (as the real one, without a final newline).
	"registry": `log_argv registry "$@"
if [ "$*" = --version ]; then echo "registry github.com/distribution/distribution/v3 v3.1.2"; exit 0; fi
printf '%s' "${FAKE_REGISTRY_OUT:-}" >&2
exit "${FAKE_REGISTRY_RC:-0}"
`,
	// FAKE_REDIS_REPLIES: replies per call, separated by '|'.
	"redis-cli": `log_argv redis-cli "$@"
if [ "$*" = --version ]; then echo "redis-cli 7.0.15"; exit 0; fi
log_argv redis-cli:auth "${REDISCLI_AUTH:-<unset>}"
reply=$(next redis '|' "${FAKE_REDIS_REPLIES:-OK}")
echo "$reply"
[ "$reply" = OK ] || exit "${FAKE_REDIS_RC:-0}"
`,
	"sleep": `log_argv sleep "$@"
`,
}

type shell struct {
	name string
	argv []string // the interpreter, the script path is appended
}

// shells are the POSIX shells of the step images: dash (Debian kubectl image, also /bin/sh here)
// and BusyBox ash (Alpine registry and redis images), when installed.
func shells(t *testing.T) []shell {
	t.Helper()
	out := []shell{{"sh", []string{"/bin/sh"}}}
	if bb, err := exec.LookPath("busybox"); err == nil {
		out = append(out, shell{"busybox", []string{bb, "sh"}})
	}
	return out
}

type sandbox struct {
	t     *testing.T
	shell shell
	dir   string
	env   map[string]string
}

// newSandbox lays out the scripts, the fakes and the directories the pod would mount, with the
// environment the CronJob gives its steps.
func newSandbox(t *testing.T, sh shell) *sandbox {
	t.Helper()
	dir := t.TempDir()
	s := &sandbox{t: t, shell: sh, dir: dir}
	for _, d := range []string{"bin", "scripts", "status", "data", "config", "tmp", "fake"} {
		if err := os.MkdirAll(s.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	scripts, err := Scripts()
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range scripts {
		s.write("scripts/"+name, body, 0o555)
	}
	for name, body := range fakes {
		s.write("bin/"+name, "#!/bin/sh\n"+fakeLib+body, 0o755)
	}
	// Scripts that start other scripts with `sh` get the shell under test.
	s.write("bin/sh", "#!/bin/sh\nexec "+strings.Join(sh.argv, " ")+` "$@"`+"\n", 0o755)
	s.write("config/config.yml", "version: 0.1\n", 0o444)
	s.env = map[string]string{
		"PATH":            s.path("bin") + ":/usr/local/bin:/usr/bin:/bin",
		"HOME":            s.path("tmp"),
		"FAKE_LOG":        s.path("calls.log"),
		"FAKE_DIR":        s.path("fake"),
		"NAMESPACE":       "images",
		"DEPLOYMENT":      "registry",
		"CONTAINER":       "registry",
		"POD_SELECTOR":    "app.kubernetes.io/instance=registry,app.kubernetes.io/name=registry",
		"GC_SELECTOR":     gcSel,
		"POD_NAME":        ownPod,
		"ROLLOUT_TIMEOUT": "600",
		"SCRIPTS_DIR":     s.path("scripts"),
		"STATUS_DIR":      s.path("status"),
		"CACHE_ENABLED":   "true",
		"CONFIG":          s.path("config/config.yml"),
		"REDIS_HOST":      "registry-redis",
		"REDIS_PORT":      "6379",
		"REDISCLI_AUTH":   "redis-pass",
	}
	return s
}

func (s *sandbox) path(rel string) string { return filepath.Join(s.dir, rel) }

func (s *sandbox) write(rel, body string, mode os.FileMode) {
	s.t.Helper()
	if err := os.WriteFile(s.path(rel), []byte(body), mode); err != nil {
		s.t.Fatal(err)
	}
}

// run runs a script (a file in the sandbox, or an argv whose first word is `sh`) and returns its
// exit code and combined output.
func (s *sandbox) run(env map[string]string, argv ...string) (int, string) {
	s.t.Helper()
	if argv[0] == "sh" {
		argv = append(slices.Clone(s.shell.argv), argv[1:]...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = s.path("tmp")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		s.t.Fatalf("%v did not finish within 20 s (a fake not on PATH? a real sleep?)\n%s", argv, out)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		s.t.Fatalf("run %v: %v", argv, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// script runs one step script with the sandbox environment plus extra.
func (s *sandbox) script(name string, extra map[string]string, args ...string) (int, string) {
	s.t.Helper()
	env := map[string]string{}
	for k, v := range s.env {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return s.run(env, append([]string{"sh", s.path("scripts/" + name)}, args...)...)
}

// calls returns the logged calls of the fakes (argv[0] is the program) whose program is one of progs
// (all when none given).
func (s *sandbox) calls(progs ...string) [][]string {
	s.t.Helper()
	b, err := os.ReadFile(s.path("calls.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		s.t.Fatal(err)
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		c := strings.Split(line, "\t")
		if len(progs) == 0 || slices.Contains(progs, c[0]) {
			out = append(out, c)
		}
	}
	return out
}

// status returns the content of a result file in $STATUS_DIR, or "<missing>".
func (s *sandbox) status(name string) string {
	b, err := os.ReadFile(s.path("status/" + name))
	if err != nil {
		return "<missing>"
	}
	return strings.TrimSpace(string(b))
}

func (s *sandbox) setStatus(name, value string) {
	s.t.Helper()
	s.write("status/"+name, value+"\n", 0o644)
}

func TestScriptsParse(t *testing.T) {
	scripts, err := Scripts()
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shells(t) {
		s := newSandbox(t, sh)
		for name := range scripts {
			if code, out := s.run(s.env, append(slices.Clone(sh.argv), "-n", s.path("scripts/"+name))...); code != 0 {
				t.Errorf("%s -n %s: exit %d\n%s", sh.name, name, code, out)
			}
		}
	}
}

func TestCollect(t *testing.T) {
	for _, sh := range shells(t) {
		for _, c := range []struct {
			name, out string
			rc, want  int
		}{
			{"success", "mark-and-sweep done\n", 0, 0},
			{"failure", "failed to garbage collect: failed to mark: s3aws: AccessDenied", 1, 1},
			{"other exit code", "", 3, 3},
			// The messages of distribution v3.1.2 on a storage that never held an image.
			{"empty filesystem", "failed to garbage collect: failed to mark: filesystem: Path not found: /docker/registry/v2/repositories", 1, 0},
			{"empty bucket", "failed to garbage collect: failed to mark: s3aws: Path not found: /docker/registry/v2/repositories", 1, 0},
			{"no blobs yet", "failed to garbage collect: error enumerating blobs: s3aws: Path not found: /docker/registry/v2/blobs", 1, 0},
			// Anything deeper is a real inconsistency, not an empty registry.
			{"missing manifest", "failed to garbage collect: failed to mark: s3aws: Path not found: /docker/registry/v2/repositories/a/_manifests", 1, 1},
			{"missing root named by another error", "failed to garbage collect: failed to delete blob x: s3aws: Path not found: /docker/registry/v2/blobs", 1, 1},
		} {
			t.Run(sh.name+"/"+c.name, func(t *testing.T) {
				s := newSandbox(t, sh)
				code, out := s.script("collect.sh", map[string]string{"FAKE_REGISTRY_RC": fmt.Sprint(c.rc), "FAKE_REGISTRY_OUT": c.out})
				if code != 0 {
					t.Errorf("collect.sh exited %d, want 0 always (the restore step must run)\n%s", code, out)
				}
				if got := s.status("gc"); got != fmt.Sprint(c.want) {
					t.Errorf("status gc = %q, want %d\n%s", got, c.want, out)
				}
				if !strings.Contains(out, strings.TrimSuffix(c.out, "\n")) {
					t.Errorf("the collector's output is not shown:\n%s", out)
				}
				calls := s.calls("registry")
				want := [][]string{{"registry", "garbage-collect", "--delete-untagged", s.path("config/config.yml")}}
				if fmt.Sprint(calls) != fmt.Sprint(want) {
					t.Errorf("calls = %q, want %q", calls, want)
				}
			})
		}
	}
}

func TestFlush(t *testing.T) {
	for _, c := range []struct {
		name        string
		replies     string
		rc          string
		wantCalls   int
		wantStatus  string
		sleeps      bool // needs the fake sleep (BusyBox runs its own sleep applet: too slow)
		wantSleeps  int
		minSleeps   int
		checkSleeps bool
	}{
		{name: "first try", replies: "OK", wantCalls: 1, wantStatus: "0", checkSleeps: true, wantSleeps: 0},
		{name: "redis loading, then OK", replies: "LOADING Redis is loading the dataset in memory|LOADING|OK", wantCalls: 3, wantStatus: "0", sleeps: true, checkSleeps: true, wantSleeps: 2},
		{name: "wrong password", replies: "NOAUTH Authentication required.", wantCalls: 5, wantStatus: "1", sleeps: true, minSleeps: 4},
		{name: "unreachable", replies: "Could not connect to Redis at registry-redis:6379: Connection refused", rc: "1", wantCalls: 5, wantStatus: "1", sleeps: true, minSleeps: 4},
	} {
		for _, sh := range shells(t) {
			if c.sleeps && sh.name == "busybox" {
				continue
			}
			t.Run(sh.name+"/"+c.name, func(t *testing.T) {
				s := newSandbox(t, sh)
				code, out := s.script("flush.sh", map[string]string{"FAKE_REDIS_REPLIES": c.replies, "FAKE_REDIS_RC": c.rc})
				if code != 0 {
					t.Errorf("flush.sh exited %d, want 0 always (the restore step must run)\n%s", code, out)
				}
				if got := s.status("flush"); got != c.wantStatus {
					t.Errorf("status flush = %q, want %s\n%s", got, c.wantStatus, out)
				}
				calls := s.calls("redis-cli")
				if len(calls) != c.wantCalls {
					t.Errorf("%d redis-cli calls, want %d: %q", len(calls), c.wantCalls, calls)
				}
				for _, call := range calls {
					if want := []string{"redis-cli", "-h", "registry-redis", "-p", "6379", "FLUSHDB"}; !slices.Equal(call, want) {
						t.Errorf("redis-cli called as %q, want %q (DB 0, the registry's; password from REDISCLI_AUTH, never in argv)", call, want)
					}
				}
				for _, auth := range s.calls("redis-cli:auth") {
					if auth[1] != "redis-pass" {
						t.Errorf("redis-cli saw REDISCLI_AUTH = %q, want the password", auth[1])
					}
				}
				if sh.name == "busybox" {
					return // its sleep is a builtin applet: the fake sees nothing
				}
				sleeps := s.calls("sleep")
				if c.checkSleeps && len(sleeps) != c.wantSleeps {
					t.Errorf("%d sleeps, want %d: %q", len(sleeps), c.wantSleeps, sleeps)
				}
				if len(sleeps) < c.minSleeps {
					t.Errorf("%d sleeps, want at least %d between attempts", len(sleeps), c.minSleeps)
				}
			})
		}
	}
}

const modeLabel = "registry-stack.io/maintenance"

// patches returns the JSON patches sent to `kubectl patch`, checking the rest of the command line.
func patches(t *testing.T, s *sandbox) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, c := range s.calls("kubectl") {
		if !slices.Contains(c, "patch") {
			continue
		}
		if len(c) != 9 || !slices.Equal(c[:7], []string{"kubectl", "-n", "images", "patch", "deployment", "registry", "--type=strategic"}) || c[7] != "-p" {
			t.Fatalf("patch call = %q, want kubectl -n images patch deployment registry --type=strategic -p <json>", c)
		}
		var p map[string]any
		if err := json.Unmarshal([]byte(c[8]), &p); err != nil {
			t.Fatalf("patch is not valid JSON: %v\n%s", err, c[8])
		}
		out = append(out, p)
	}
	return out
}

// patchedTemplate extracts the pod template label and the registry container's env entry of a patch.
func patchedTemplate(t *testing.T, p map[string]any) (label any, labelSet bool, container, envEntry map[string]any) {
	t.Helper()
	tmpl := p["spec"].(map[string]any)["template"].(map[string]any)
	labels := tmpl["metadata"].(map[string]any)["labels"].(map[string]any)
	label, labelSet = labels[modeLabel]
	ctrs := tmpl["spec"].(map[string]any)["containers"].([]any)
	if len(ctrs) != 1 {
		t.Fatalf("patch touches %d containers, want the registry container only", len(ctrs))
	}
	container = ctrs[0].(map[string]any)
	env := container["env"].([]any)
	if len(env) != 1 {
		t.Fatalf("patch sets %d env entries, want 1", len(env))
	}
	return label, labelSet, container, env[0].(map[string]any)
}

func isEnterPatch(t *testing.T, p map[string]any) bool {
	label, _, _, _ := patchedTemplate(t, p)
	return label == "read-only"
}

func checkEnterPatch(t *testing.T, p map[string]any) {
	t.Helper()
	label, _, ctr, e := patchedTemplate(t, p)
	if label != "read-only" {
		t.Errorf("enter patch label %s = %v, want read-only (the wait selects pods without it)", modeLabel, label)
	}
	if ctr["name"] != "registry" {
		t.Errorf("enter patch targets container %v, want $CONTAINER registry", ctr["name"])
	}
	if e["name"] != "REGISTRY_STORAGE_MAINTENANCE_READONLY" || e["value"] != `{"enabled":true}` {
		t.Errorf("enter patch env = %v, want REGISTRY_STORAGE_MAINTENANCE_READONLY={\"enabled\":true}", e)
	}
}

func checkLeavePatch(t *testing.T, p map[string]any) {
	t.Helper()
	label, set, ctr, e := patchedTemplate(t, p)
	if !set || label != nil {
		t.Errorf("leave patch label %s = %v (present %v), want null (deletes it)", modeLabel, label, set)
	}
	if ctr["name"] != "registry" {
		t.Errorf("leave patch targets container %v, want registry", ctr["name"])
	}
	if e["name"] != "REGISTRY_STORAGE_MAINTENANCE_READONLY" || e["$patch"] != "delete" || len(e) != 2 {
		t.Errorf("leave patch env = %v, want a $patch: delete of REGISTRY_STORAGE_MAINTENANCE_READONLY", e)
	}
}

// kubectlVerbs summarises the kubectl calls: "patch", "rollout" or "get <selector>".
func kubectlVerbs(s *sandbox) []string {
	var out []string
	for _, c := range s.calls("kubectl") {
		switch {
		case slices.Contains(c, "patch"):
			out = append(out, "patch")
		case slices.Contains(c, "rollout"):
			out = append(out, "rollout")
		case slices.Contains(c, "get"):
			out = append(out, "get "+c[slices.Index(c, "-l")+1])
		default:
			out = append(out, strings.Join(c, " "))
		}
	}
	return out
}

const (
	sel          = "app.kubernetes.io/instance=registry,app.kubernetes.io/name=registry"
	getWritable  = "get " + sel + "," + modeLabel + "!=read-only"
	getReadOnly  = "get " + sel + "," + modeLabel + "=read-only"
	rolloutCheck = "rollout"
	// gcSel is GC_SELECTOR, the selector of the GC pods (SelectorString(PodSelector("registry-gc")));
	// ownPod is POD_NAME, the GC pod running the script.
	gcSel  = "app.kubernetes.io/instance=registry-gc,app.kubernetes.io/name=registry-gc"
	ownPod = "registry-gc-29170080-x7k2p"
	getGC  = "get " + gcSel
	// liveOnly is how every pod listing must exclude pods that run nothing any more.
	liveOnly = "--field-selector=status.phase!=Failed,status.phase!=Succeeded"
)

// checkGetPods checks the command line of every `kubectl get`: live pods only (an evicted or
// completed pod stays listed until deleted and would block the wait, or the GC-run check, forever)
// and -o name (empty output means no pod).
func checkGetPods(t *testing.T, s *sandbox) {
	t.Helper()
	n := 0
	for _, c := range s.calls("kubectl") {
		if !slices.Contains(c, "get") {
			continue
		}
		n++
		if len(c) != 10 || !slices.Equal(c[:6], []string{"kubectl", "-n", "images", "get", "pods", "-l"}) ||
			!slices.Equal(c[7:], []string{liveOnly, "-o", "name"}) {
			t.Errorf("get pods call = %q, want kubectl -n images get pods -l <selector> %s -o name", c, liveOnly)
		}
	}
	if n == 0 {
		t.Error("no get pods call to check")
	}
}

func TestMaintenanceEnter(t *testing.T) {
	s := newSandbox(t, shells(t)[0])
	code, out := s.script("maintenance.sh", nil, "enter")
	if code != 0 {
		t.Fatalf("maintenance.sh enter exited %d\n%s", code, out)
	}
	// First the check for another GC run (only this pod is listed), then the switch; the first
	// poll lists an old pod, the second none.
	if got, want := kubectlVerbs(s), []string{getGC, "patch", rolloutCheck, getWritable, getWritable}; !slices.Equal(got, want) {
		t.Errorf("kubectl calls = %q, want %q", got, want)
	}
	p := patches(t, s)
	if len(p) != 1 {
		t.Fatalf("%d patches, want only the enter patch", len(p))
	}
	checkEnterPatch(t, p[0])
	for _, c := range s.calls("kubectl") {
		if slices.Contains(c, "rollout") && !slices.Equal(c, []string{"kubectl", "-n", "images", "rollout", "status", "deployment", "registry", "--timeout=600s"}) {
			t.Errorf("rollout call = %q, want a status wait bounded by ROLLOUT_TIMEOUT", c)
		}
	}
	checkGetPods(t, s)
	if n := len(s.calls("sleep")); n != 1 {
		t.Errorf("%d sleeps, want 1 between the two polls", n)
	}
}

// TestMaintenanceEnterRefusesBesideAnotherGCRun: concurrencyPolicy Forbid does not cover Jobs
// created by hand, so enter checks the live GC pods itself before touching the Deployment.
func TestMaintenanceEnterRefusesBesideAnotherGCRun(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     map[string]string
		proceed bool
		other   string // for a refusal: a pod the message must name
	}{
		{name: "only this pod", env: map[string]string{"FAKE_GC_PODS": ownPod}, proceed: true},
		{name: "no GC pod listed", env: map[string]string{"FAKE_GC_PODS": "-"}, proceed: true},
		{name: "a manual run in progress", env: map[string]string{"FAKE_GC_PODS": "registry-gc-manual-q4m9z," + ownPod},
			other: "pod/registry-gc-manual-q4m9z"},
		{name: "a manual run listed first or last", env: map[string]string{"FAKE_GC_PODS": ownPod + ",registry-gc-manual-q4m9z"},
			other: "pod/registry-gc-manual-q4m9z"},
		{name: "another run only", env: map[string]string{"FAKE_GC_PODS": "registry-gc-29160000-abcde"},
			other: "pod/registry-gc-29160000-abcde"},
		// The own name is matched whole, not as a prefix.
		{name: "a pod whose name extends ours", env: map[string]string{"FAKE_GC_PODS": ownPod + "," + ownPod + "x"},
			other: "pod/" + ownPod + "x"},
		// A failed earlier run (kept in the Job history) or a completed one is no run in progress.
		{name: "finished GC pods only", env: map[string]string{"FAKE_GC_PODS": ownPod,
			"FAKE_GC_FINISHED": "registry-gc-29160000-failed,registry-gc-29150000-done"}, proceed: true},
		{name: "a finished and a live one", env: map[string]string{"FAKE_GC_PODS": ownPod + ",registry-gc-manual-q4m9z",
			"FAKE_GC_FINISHED": "registry-gc-29160000-failed"}, other: "pod/registry-gc-manual-q4m9z"},
	} {
		for _, sh := range shells(t) {
			t.Run(sh.name+"/"+c.name, func(t *testing.T) {
				s := newSandbox(t, sh)
				env := map[string]string{"FAKE_PODS": "0"} // no poll sleeps (BusyBox's sleep is an applet)
				for k, v := range c.env {
					env[k] = v
				}
				code, out := s.script("maintenance.sh", env, "enter")
				checkGetPods(t, s)
				if c.proceed {
					if code != 0 {
						t.Errorf("maintenance.sh enter exited %d, want 0: no other GC run is live\n%s", code, out)
					}
					if got, want := kubectlVerbs(s), []string{getGC, "patch", rolloutCheck, getWritable}; !slices.Equal(got, want) {
						t.Errorf("kubectl calls = %q, want %q", got, want)
					}
					if p := patches(t, s); len(p) != 1 {
						t.Errorf("%d patches, want the enter patch", len(p))
					} else {
						checkEnterPatch(t, p[0])
					}
					return
				}
				if code != 1 {
					t.Errorf("maintenance.sh enter exited %d, want 1 beside another GC run\n%s", code, out)
				}
				// No patch (neither enter nor leave: the other run owns the registry's mode), no rollout.
				if got := kubectlVerbs(s); !slices.Equal(got, []string{getGC}) {
					t.Errorf("kubectl calls = %q, want only the GC pod listing: the other run's read-only "+
						"switch must not be touched\n%s", got, out)
				}
				if !strings.Contains(out, "another GC run is in progress") || !strings.Contains(out, c.other) {
					t.Errorf("output does not name the other run %s:\n%s", c.other, out)
				}
				if strings.Contains(out, "pod/"+ownPod+" ") || strings.HasSuffix(strings.TrimSpace(out), "pod/"+ownPod) {
					t.Errorf("output names this pod as another run:\n%s", out)
				}
			})
		}
	}
	t.Run("GC pods cannot be listed", func(t *testing.T) {
		s := newSandbox(t, shells(t)[0])
		code, out := s.script("maintenance.sh", map[string]string{"FAKE_GC_GET_RC": "1", "FAKE_GC_PODS": "-"}, "enter")
		if code == 0 {
			t.Errorf("maintenance.sh enter exited 0 although it could not tell whether another run is live\n%s", out)
		}
		if got := kubectlVerbs(s); !slices.Equal(got, []string{getGC}) {
			t.Errorf("kubectl calls = %q, want only the failed listing", got)
		}
	})
}

// TestMaintenanceIgnoresFinishedPods: an evicted or completed registry pod of the old template
// stays listed until deleted; without the phase filter, enter (and leave) would wait for it until
// the timeout.
func TestMaintenanceIgnoresFinishedPods(t *testing.T) {
	for _, mode := range []string{"enter", "leave"} {
		t.Run(mode, func(t *testing.T) {
			s := newSandbox(t, shells(t)[0])
			code, out := s.script("maintenance.sh", map[string]string{
				"FAKE_PODS": "0", "FAKE_FINISHED": "registry-old-evicted", "ROLLOUT_TIMEOUT": "0",
			}, mode)
			if code != 0 {
				t.Errorf("maintenance.sh %s exited %d, want 0: the only pod left has terminated\n%s", mode, code, out)
			}
			checkGetPods(t, s)
			if p := patches(t, s); len(p) != 1 {
				t.Errorf("%d patches, want only the %s patch\n%s", len(p), mode, out)
			}
		})
	}
}

func TestMaintenanceEnterRestoresWritesOnFailure(t *testing.T) {
	for _, c := range []struct {
		name      string
		env       map[string]string
		wantVerbs []string
	}{
		{"rollout fails", map[string]string{"FAKE_ROLLOUT_RCS": "1 0", "FAKE_PODS": "0"},
			[]string{getGC, "patch", rolloutCheck, "patch", rolloutCheck, getReadOnly}},
		// ROLLOUT_TIMEOUT 0: the first poll that still lists a pod times out (in leave too).
		{"old pods never go", map[string]string{"FAKE_PODS": "1", "ROLLOUT_TIMEOUT": "0"},
			[]string{getGC, "patch", rolloutCheck, getWritable, "patch", rolloutCheck, getReadOnly}},
		// Restoring is best effort: `leave || true` suspends set -e, so it still waits for the pods.
		{"rollout fails, and again while restoring", map[string]string{"FAKE_ROLLOUT_RCS": "1", "FAKE_PODS": "0"},
			[]string{getGC, "patch", rolloutCheck, "patch", rolloutCheck, getReadOnly}},
		// The patch may fail after the API server applied it (a timeout): the trap is set before it,
		// so the leave patch, its rollout and the wait still run.
		{"patch fails", map[string]string{"FAKE_PATCH_RCS": "1 0", "FAKE_PODS": "0"},
			[]string{getGC, "patch", "patch", rolloutCheck, getReadOnly}},
		{"patch fails, and again while restoring", map[string]string{"FAKE_PATCH_RCS": "1", "FAKE_PODS": "0"},
			[]string{getGC, "patch", "patch", rolloutCheck, getReadOnly}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t, shells(t)[0])
			code, out := s.script("maintenance.sh", c.env, "enter")
			if code != 1 {
				t.Errorf("maintenance.sh enter exited %d, want 1 (the Job must fail)\n%s", code, out)
			}
			if got := kubectlVerbs(s); !slices.Equal(got, c.wantVerbs) {
				t.Errorf("kubectl calls = %q, want %q", got, c.wantVerbs)
			}
			checkGetPods(t, s)
			p := patches(t, s)
			if len(p) != 2 {
				t.Fatalf("%d patches, want enter then leave: the registry must not stay read-only\n%s", len(p), out)
			}
			checkEnterPatch(t, p[0])
			checkLeavePatch(t, p[1])
			if !strings.Contains(out, "failed to enter read-only mode; restoring writes") {
				t.Errorf("output does not say that writes are being restored:\n%s", out)
			}
		})
	}
}

func TestMaintenanceLeave(t *testing.T) {
	for _, c := range []struct {
		name     string
		env      map[string]string
		wantCode int
		want     []string
	}{
		// No GC-run check: leave must restore writes whatever else runs.
		{"ok", nil, 0, []string{"patch", rolloutCheck, getReadOnly, getReadOnly}},
		{"another GC pod is live", map[string]string{"FAKE_GC_PODS": "registry-gc-manual-q4m9z," + ownPod}, 0,
			[]string{"patch", rolloutCheck, getReadOnly, getReadOnly}},
		{"rollout fails", map[string]string{"FAKE_ROLLOUT_RCS": "1"}, 1, []string{"patch", rolloutCheck}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t, shells(t)[0])
			code, out := s.script("maintenance.sh", c.env, "leave")
			if code != c.wantCode {
				t.Errorf("maintenance.sh leave exited %d, want %d\n%s", code, c.wantCode, out)
			}
			if got := kubectlVerbs(s); !slices.Equal(got, c.want) {
				t.Errorf("kubectl calls = %q, want %q", got, c.want)
			}
			if slices.Contains(c.want, getReadOnly) {
				checkGetPods(t, s)
			}
			p := patches(t, s)
			if len(p) != 1 {
				t.Fatalf("%d patches, want the leave patch", len(p))
			}
			checkLeavePatch(t, p[0])
		})
	}
}

func TestMaintenanceNeedsAMode(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}} {
		s := newSandbox(t, shells(t)[0])
		code, out := s.script("maintenance.sh", nil, args...)
		if code != 2 || !strings.Contains(out, "usage:") {
			t.Errorf("maintenance.sh %q exited %d, want 2 with a usage message\n%s", args, code, out)
		}
		if calls := s.calls("kubectl"); len(calls) != 0 {
			t.Errorf("maintenance.sh %q called kubectl: %q", args, calls)
		}
	}
}

// TestEnterPatchMakesTheRegistryReadOnly feeds the env entry that maintenance.sh really patches into
// the registry's own configuration parser, on top of the config.yml that package registry renders.
func TestEnterPatchMakesTheRegistryReadOnly(t *testing.T) {
	s := newSandbox(t, shells(t)[0])
	if code, out := s.script("maintenance.sh", nil, "enter"); code != 0 {
		t.Fatalf("maintenance.sh enter exited %d\n%s", code, out)
	}
	p := patches(t, s)
	if len(p) != 1 {
		t.Fatalf("%d patches", len(p))
	}
	_, _, ctr, e := patchedTemplate(t, p[0])
	if ctr["name"] != registry.ContainerName {
		t.Errorf("the patch targets container %v, the registry's is %s", ctr["name"], registry.ContainerName)
	}
	name, value := e["name"].(string), e["value"].(string)
	raw, err := registry.RenderConfig(registry.ConfigInput{LogLevel: "info",
		Storage: storage.FilesystemBackend(nil, &stackconfig.FilesystemStorage{Mode: stackconfig.StorageHostPath}), HTTPSecret: "s", RedisAddr: "redis:6379", RedisPassword: "p", CacheEnabled: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(name, value)
	cfg, err := configuration.Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("the registry rejects its config with %s=%s: %v", name, value, err)
	}
	// As distribution's handlers/app.go reads it.
	ro, ok := cfg.Storage["maintenance"]["readonly"].(map[any]any)
	if !ok {
		t.Fatalf("storage.maintenance.readonly = %#v: the registry would panic or stay writable", cfg.Storage["maintenance"]["readonly"])
	}
	if enabled, ok := ro["enabled"].(bool); !ok || !enabled {
		t.Errorf("readonly.enabled = %#v, want true", ro["enabled"])
	}
}

func TestRestore(t *testing.T) {
	for _, c := range []struct {
		name       string
		gc, flush  string // "" = no status file
		cache      string
		env        map[string]string
		wantOK     bool
		wantInText string
	}{
		{name: "all fine", gc: "0", flush: "0", cache: "true", wantOK: true, wantInText: "garbage-collect=0 cache-flush=0 read-write-restored=yes"},
		{name: "gc failed", gc: "1", flush: "0", cache: "true", wantInText: "garbage-collect=1"},
		{name: "gc status missing", gc: "", flush: "0", cache: "true", wantInText: "garbage-collect=missing"},
		{name: "flush failed", gc: "0", flush: "1", cache: "true", wantInText: "cache-flush=1"},
		{name: "flush missing with cache", gc: "0", flush: "", cache: "true", wantInText: "cache-flush=missing"},
		{name: "no cache, no flush", gc: "0", flush: "", cache: "false", wantOK: true},
		{name: "no cache ignores a flush status", gc: "0", flush: "1", cache: "false", wantOK: true},
		{name: "no cache, gc failed", gc: "2", flush: "", cache: "false"},
		{name: "leave fails", gc: "0", flush: "0", cache: "true", env: map[string]string{"FAKE_ROLLOUT_RCS": "1"}, wantInText: "read-write-restored=NO"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t, shells(t)[0])
			if c.gc != "" {
				s.setStatus("gc", c.gc)
			}
			if c.flush != "" {
				s.setStatus("flush", c.flush)
			}
			env := map[string]string{"CACHE_ENABLED": c.cache}
			for k, v := range c.env {
				env[k] = v
			}
			code, out := s.script("restore.sh", env)
			if ok := code == 0; ok != c.wantOK {
				t.Errorf("restore.sh exited %d, want success=%v (a failed GC must fail the Job)\n%s", code, c.wantOK, out)
			}
			if !strings.Contains(out, c.wantInText) {
				t.Errorf("output lacks %q:\n%s", c.wantInText, out)
			}
			p := patches(t, s)
			if len(p) != 1 {
				t.Fatalf("%d patches, want the leave patch whatever happened before\n%s", len(p), out)
			}
			checkLeavePatch(t, p[0])
		})
	}
}

// TestCronJobRunsLikeKubernetes runs the Job pod that NewGC registers the way the kubelet would:
// init containers in order with their own command and env, each only after the previous one
// exited 0, then the main container. Container paths are mapped into the sandbox.
func TestCronJobRunsLikeKubernetes(t *testing.T) {
	for _, cache := range []bool{true, false} {
		t.Run(fmt.Sprint("cache=", cache), func(t *testing.T) {
			spec := podSpec(t, runGC(t, gcArgs(cache)))
			inits, mains := containers(t, spec)
			s := newSandbox(t, shells(t)[0])
			mapped := map[string]string{
				"/scripts": s.path("scripts"), "/status": s.path("status"), "/tmp": s.path("tmp"),
				"/etc/distribution": s.path("config"), "/var/lib/registry": s.path("data"),
			}
			mapPath := func(c container, v string) string {
				for from, to := range mapped {
					if v == from || strings.HasPrefix(v, from+"/") {
						mounted := false
						for _, m := range asList(c["volumeMounts"]) {
							mounted = mounted || m.(map[string]any)["mountPath"] == from
						}
						if !mounted {
							t.Errorf("%s uses %s but does not mount it", c["name"], v)
						}
						return to + strings.TrimPrefix(v, from)
					}
				}
				return v
			}
			runContainer := func(c container) (int, string) {
				// The GC pod listing answers with this pod only: the run may proceed.
				env := map[string]string{"PATH": s.env["PATH"], "FAKE_LOG": s.env["FAKE_LOG"], "FAKE_DIR": s.env["FAKE_DIR"],
					"FAKE_GC_PODS": ownPod}
				for _, e := range asList(c["env"]) {
					em := e.(map[string]any)
					name := em["name"].(string)
					switch from := fmt.Sprint(em["valueFrom"]); {
					case em["value"] != nil:
						env[name] = mapPath(c, em["value"].(string))
					case from == "map[fieldRef:map[fieldPath:metadata.namespace]]":
						env[name] = "images"
					case from == "map[fieldRef:map[fieldPath:metadata.name]]":
						env[name] = ownPod
					case from == "map[secretKeyRef:map[key:password name:registry-redis]]":
						env[name] = "redis-pass"
					default:
						t.Fatalf("%s env %s: cannot resolve %s", c["name"], name, from)
					}
				}
				var cmd []string
				for _, a := range argv(c) {
					cmd = append(cmd, mapPath(c, a))
				}
				// The image's own executables (the fakes) are found on the container's PATH.
				if len(cmd) > 0 && cmd[0] != "sh" && !strings.Contains(cmd[0], "/") {
					if _, ok := fakes[cmd[0]]; !ok {
						t.Fatalf("%s runs %q: no fake for it", c["name"], cmd[0])
					}
					cmd[0] = s.path("bin/" + cmd[0])
				}
				return s.run(env, cmd...)
			}

			for _, c := range inits {
				code, out := runContainer(c)
				if code != 0 {
					msg := ""
					if c["name"] == "enter-read-only" && strings.Contains(out, "usage:") {
						msg = "\nBUG: the first step starts maintenance.sh without its mode argument, so it prints its " +
							"usage and exits 2: every scheduled GC fails before collecting anything. " +
							"Fix: pass \"enter\" in PodSpec."
					}
					t.Fatalf("init container %s exited %d: the pod fails here and the rest never runs\n%s%s", c["name"], code, out, msg)
				}
			}
			for _, c := range mains {
				if code, out := runContainer(c); code != 0 {
					t.Errorf("container %s exited %d: the Job fails although every step succeeded\n%s", c["name"], code, out)
				}
			}

			// What happened, in order: the images pulled (their no-op ran), then read-only, collect,
			// flush (with the cache), read-write.
			var steps []string
			for _, c := range s.calls("kubectl", "registry", "redis-cli") {
				switch {
				case slices.Equal(c, []string{"registry", "--version"}):
					steps = append(steps, "pull registry")
				case slices.Equal(c, []string{"redis-cli", "--version"}):
					steps = append(steps, "pull redis")
				case c[0] == "kubectl" && slices.Contains(c, "patch"):
					var p map[string]any
					if err := json.Unmarshal([]byte(c[len(c)-1]), &p); err != nil {
						t.Fatal(err)
					}
					if isEnterPatch(t, p) {
						steps = append(steps, "read-only")
					} else {
						steps = append(steps, "read-write")
					}
				case c[0] == "registry":
					steps = append(steps, "collect")
				case c[0] == "redis-cli":
					steps = append(steps, "flush")
				}
			}
			want := []string{"pull registry", "pull redis", "read-only", "collect", "flush", "read-write"}
			if !cache {
				want = []string{"pull registry", "read-only", "collect", "read-write"}
			}
			if !slices.Equal(steps, want) {
				t.Errorf("the Job did %q, want %q", steps, want)
			}
			if got := s.status("gc"); got != "0" {
				t.Errorf("status gc = %q", got)
			}
			// Before anything else, enter-read-only looked for another run with the CronJob's selector.
			if got := kubectlVerbs(s); len(got) == 0 || got[0] != getGC {
				t.Errorf("kubectl calls = %q, want the GC pod listing (%s) first", got, getGC)
			}
			checkGetPods(t, s)
		})
	}
}
