package main

// Offline tests of the pull-request preview workflow (.github/workflows/preview.yml), which runs in
// the users' GitHub with their backend and clusters, never here: its YAML is parsed and checked,
// and its guard (scripts/preview-guard.sh) runs on fixtures shaped like `pulumi preview --json`.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/stackconfig"
)

const (
	previewWorkflowPath = ".github/workflows/preview.yml"
	guardScriptPath     = "scripts/preview-guard.sh"
	guardFixtures       = "scripts/testdata/preview-guard"
)

type ghWorkflow struct {
	Name        string               `yaml:"name"`
	On          map[string]ghTrigger `yaml:"on"`
	Permissions yaml.Node            `yaml:"permissions"`
	Env         map[string]string    `yaml:"env"`
	Jobs        map[string]ghJob     `yaml:"jobs"`
}

type ghTrigger struct {
	Types []string `yaml:"types"`
	Paths []string `yaml:"paths"`
}

type ghJob struct {
	Name        string    `yaml:"name"`
	If          string    `yaml:"if"`
	Permissions yaml.Node `yaml:"permissions"`
	Strategy    struct {
		Matrix map[string]any `yaml:"matrix"`
	} `yaml:"strategy"`
	Concurrency struct {
		Group            string `yaml:"group"`
		CancelInProgress bool   `yaml:"cancel-in-progress"`
	} `yaml:"concurrency"`
	Env   map[string]string `yaml:"env"`
	Steps []ghStep          `yaml:"steps"`
}

type ghStep struct {
	Name string            `yaml:"name"`
	Uses string            `yaml:"uses"`
	Run  string            `yaml:"run"`
	If   string            `yaml:"if"`
	With map[string]any    `yaml:"with"`
	Env  map[string]string `yaml:"env"`
}

// with returns an input as the string GitHub passes to the action ("true" for true).
func (s ghStep) with(key string) string {
	v, ok := s.With[key]
	if !ok || v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func (s ghStep) label() string {
	if s.Name != "" {
		return s.Name
	}
	if s.Uses != "" {
		return s.Uses
	}
	return strings.SplitN(s.Run, "\n", 2)[0]
}

// action returns the owner/repo of uses, "" for a run step.
func (s ghStep) action() string {
	repo, _, _ := strings.Cut(s.Uses, "@")
	return repo
}

func (s ghStep) isPreview() bool { return s.action() == "pulumi/actions" && s.with("command") != "" }

func loadPreviewWorkflow(t *testing.T) (ghWorkflow, []byte) {
	t.Helper()
	raw, err := os.ReadFile(previewWorkflowPath)
	if err != nil {
		t.Fatalf("read the workflow: %v", err)
	}
	var wf ghWorkflow
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatalf("%s is not a workflow of the expected shape: %v", previewWorkflowPath, err)
	}
	if len(wf.Jobs) == 0 {
		t.Fatalf("%s has no jobs", previewWorkflowPath)
	}
	return wf, raw
}

// previewJobs returns the jobs that run pulumi/actions with a command, failing when there is none.
func previewJobs(t *testing.T, wf ghWorkflow) map[string]ghJob {
	t.Helper()
	out := map[string]ghJob{}
	for id, job := range wf.Jobs {
		if slices.ContainsFunc(job.Steps, ghStep.isPreview) {
			out[id] = job
		}
	}
	if len(out) == 0 {
		t.Fatalf("no job of %s runs pulumi/actions", previewWorkflowPath)
	}
	return out
}

var matrixExpr = regexp.MustCompile(`\$\{\{\s*matrix\.([A-Za-z0-9_-]+)\s*\}\}`)

// matrixValues lists the values of one matrix key: its own list plus the include entries.
func matrixValues(job ghJob, key string) []string {
	var out []string
	add := func(v any) {
		if v != nil && !slices.Contains(out, fmt.Sprint(v)) {
			out = append(out, fmt.Sprint(v))
		}
	}
	if list, ok := job.Strategy.Matrix[key].([]any); ok {
		for _, v := range list {
			add(v)
		}
	}
	if include, ok := job.Strategy.Matrix["include"].([]any); ok {
		for _, entry := range include {
			if m, ok := entry.(map[string]any); ok {
				add(m[key])
			}
		}
	}
	return out
}

// expand resolves the ${{ matrix.X }} expressions of s over the job's matrix (one result per
// combination of the single key it uses; a value using no matrix key is returned as is).
func expand(t *testing.T, job ghJob, s string) []string {
	t.Helper()
	m := matrixExpr.FindAllStringSubmatch(s, -1)
	if len(m) == 0 {
		return []string{s}
	}
	key := m[0][1]
	var out []string
	for _, v := range matrixValues(job, key) {
		out = append(out, matrixExpr.ReplaceAllStringFunc(s, func(e string) string {
			if matrixExpr.FindStringSubmatch(e)[1] != key {
				t.Fatalf("%q uses more than one matrix key", s)
			}
			return v
		}))
	}
	if len(out) == 0 {
		t.Fatalf("%q uses matrix.%s, which the job's matrix does not define", s, key)
	}
	return out
}

// previewedStacks returns the stack names (without an org/ prefix) each preview step runs on.
func previewedStacks(t *testing.T, wf ghWorkflow) []string {
	t.Helper()
	var stacks []string
	for id, job := range previewJobs(t, wf) {
		for _, step := range job.Steps {
			if !step.isPreview() {
				continue
			}
			name := step.with("stack-name")
			if name == "" {
				t.Fatalf("job %s: step %q has no stack-name", id, step.label())
			}
			for _, full := range expand(t, job, name) {
				if strings.Contains(full, "${{") {
					t.Fatalf("job %s: stack-name %q has an expression this test cannot resolve", id, name)
				}
				stack := full[strings.LastIndex(full, "/")+1:]
				if !slices.Contains(stacks, stack) {
					stacks = append(stacks, stack)
				}
			}
		}
	}
	slices.Sort(stacks)
	return stacks
}

func TestWorkflowPreviewsOnlyStacksWithAConfigFile(t *testing.T) {
	wf, _ := loadPreviewWorkflow(t)
	stacks := previewedStacks(t, wf)
	if len(stacks) == 0 {
		t.Fatal("the workflow previews no stack")
	}
	t.Logf("previewed stacks: %v", stacks)
	for _, stack := range stacks {
		file := "Pulumi." + stack + ".yaml"
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s previews stack %q, but %s does not exist in the repository root: add the stack's config file or drop the stack from the workflow's matrix", previewWorkflowPath, stack, file)
		} else if err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}

func TestWorkflowRunsOnPullRequestsForProgramChanges(t *testing.T) {
	wf, _ := loadPreviewWorkflow(t)
	for event := range wf.On {
		if event != "pull_request" {
			// pull_request_target would run the pull request's code with the base's secrets and a
			// write token; push/schedule have no pull request to comment on.
			t.Errorf("trigger %q: the workflow must run on pull_request only", event)
		}
	}
	pr, ok := wf.On["pull_request"]
	if !ok {
		t.Fatal("no pull_request trigger")
	}
	for _, want := range []string{"**.go", "go.mod", "go.sum", "Pulumi*.yaml"} {
		if !slices.Contains(pr.Paths, want) {
			t.Errorf("pull_request paths %v lack %q", pr.Paths, want)
		}
	}
	// The override label is read from the event: adding it must trigger a run.
	for _, want := range []string{"opened", "synchronize", "reopened", "labeled"} {
		if !slices.Contains(pr.Types, want) {
			t.Errorf("pull_request types %v lack %q", pr.Types, want)
		}
	}
}

func TestWorkflowPreviewStepsUsePulumiActions(t *testing.T) {
	wf, _ := loadPreviewWorkflow(t)
	for id, job := range previewJobs(t, wf) {
		for _, step := range job.Steps {
			if step.action() != "pulumi/actions" {
				continue
			}
			if step.with("command") == "" {
				continue // install only
			}
			where := fmt.Sprintf("job %s, step %q", id, step.label())
			if got := step.with("command"); got != "preview" {
				t.Errorf("%s: command %q; a pull-request workflow only previews", where, got)
			}
			if got := step.with("comment-on-pr"); got != "true" {
				t.Errorf("%s: comment-on-pr = %q, want true", where, got)
			}
			if got := step.with("github-token"); !regexp.MustCompile(`^\$\{\{\s*(secrets\.GITHUB_TOKEN|github\.token)\s*\}\}$`).MatchString(got) {
				t.Errorf("%s: github-token = %q, want ${{ secrets.GITHUB_TOKEN }}", where, got)
			}
			for _, key := range []string{"upsert", "remove", "expect-no-changes"} {
				if step.with(key) == "true" {
					t.Errorf("%s: %s: true has no place in a review preview", where, key)
				}
			}
		}
	}
}

// The guard previews what the comment shows: the same stack, with --refresh when the action
// refreshes, as JSON, after the commented preview, through the script.
func TestWorkflowGuardFollowsEveryPreview(t *testing.T) {
	wf, _ := loadPreviewWorkflow(t)
	for id, job := range previewJobs(t, wf) {
		for i, step := range job.Steps {
			if !step.isPreview() {
				continue
			}
			j := slices.IndexFunc(job.Steps[i+1:], func(s ghStep) bool { return strings.Contains(s.Run, guardScriptPath) })
			if j < 0 {
				t.Errorf("job %s: no step after %q runs %s", id, step.label(), guardScriptPath)
				continue
			}
			guard := job.Steps[i+1+j]
			if guard.If != "" {
				t.Errorf("job %s: guard step has if: %q; it must run whenever the preview ran", id, guard.If)
			}
			if got, want := guard.Env["GUARD_STACK"], step.with("stack-name"); got != want {
				t.Errorf("job %s: guard GUARD_STACK = %q, preview stack-name = %q", id, got, want)
			}
			var cmd string
			for _, line := range strings.Split(guard.Run, "\n") {
				if l := strings.TrimSpace(line); !strings.HasPrefix(l, "#") && strings.Contains(l, "pulumi preview ") {
					cmd = line
				}
			}
			if cmd == "" {
				t.Errorf("job %s: guard step runs no `pulumi preview`", id)
				continue
			}
			for _, want := range []string{`--stack "$GUARD_STACK"`, "--json", "--non-interactive"} {
				if !strings.Contains(cmd, want) {
					t.Errorf("job %s: guard preview %q lacks %s", id, strings.TrimSpace(cmd), want)
				}
			}
			if refresh := step.with("refresh") == "true"; refresh != strings.Contains(cmd, "--refresh") {
				t.Errorf("job %s: the action has refresh=%v but the guard preview %q differs: they must plan the same thing", id, refresh, strings.TrimSpace(cmd))
			}
			if !strings.Contains(guard.Run, "unset PULUMI_ENABLE_STREAMING_JSON_PREVIEW") {
				t.Errorf("job %s: guard must unset PULUMI_ENABLE_STREAMING_JSON_PREVIEW (it turns --json into an event stream)", id)
			}
		}
		if lbl := guardOverrideLabel(t); !strings.Contains(job.If, lbl) {
			t.Errorf("job %s: if: %q does not let the %q label events through", id, job.If, lbl)
		}
		if !strings.Contains(job.If, "github.event.pull_request.head.repo.full_name == github.repository") {
			t.Errorf("job %s: if: %q does not skip fork pull requests (they get no secrets)", id, job.If)
		}
		if g := job.Concurrency.Group; !strings.Contains(g, "github.event.pull_request.number") || !strings.Contains(g, "matrix.stack") {
			t.Errorf("job %s: concurrency group %q is not per pull request and stack", id, g)
		}
	}
}

func TestWorkflowPermissionsAreLeastPrivilege(t *testing.T) {
	wf, _ := loadPreviewWorkflow(t)
	want := map[string]string{"contents": "read", "pull-requests": "write"}
	check := func(where string, n yaml.Node, required bool) {
		if n.Kind == 0 {
			if required {
				t.Errorf("%s: no permissions block (the token would get the repository's default permissions)", where)
			}
			return
		}
		var got map[string]string
		if err := n.Decode(&got); err != nil {
			t.Errorf("%s: permissions must be a mapping, not %q (read-all/write-all grant too much)", where, n.Value)
			return
		}
		for scope, level := range got {
			allowed, ok := want[scope]
			switch {
			case !ok && level != "none":
				t.Errorf("%s: permission %s: %s is not needed", where, scope, level)
			case ok && level == "write" && allowed != "write":
				t.Errorf("%s: permission %s: write, want read", where, scope)
			}
		}
		if required && !mapsEqual(got, want) {
			t.Errorf("%s: permissions %v, want exactly %v", where, got, want)
		}
	}
	check("workflow", wf.Permissions, true)
	for id, job := range wf.Jobs {
		check("job "+id, job.Permissions, false)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestWorkflowSetupGoReadsGoMod(t *testing.T) {
	wf, _ := loadPreviewWorkflow(t)
	for id, job := range previewJobs(t, wf) {
		setup := slices.IndexFunc(job.Steps, func(s ghStep) bool { return s.action() == "actions/setup-go" })
		checkout := slices.IndexFunc(job.Steps, func(s ghStep) bool { return s.action() == "actions/checkout" })
		preview := slices.IndexFunc(job.Steps, ghStep.isPreview)
		if checkout < 0 || setup < 0 || checkout > setup || setup > preview {
			t.Errorf("job %s: want actions/checkout, then actions/setup-go, then the preview (indexes %d, %d, %d)", id, checkout, setup, preview)
			continue
		}
		s := job.Steps[setup]
		if got := s.with("go-version-file"); got != "go.mod" {
			t.Errorf("job %s: setup-go go-version-file = %q, want go.mod (one Go version, the module's)", id, got)
		}
		if got := s.with("go-version"); got != "" {
			t.Errorf("job %s: setup-go go-version = %q overrides go-version-file", id, got)
		}
	}
}

// Every action is pinned to a major version at least (or a commit), never a branch.
func TestWorkflowActionsArePinned(t *testing.T) {
	wf, _ := loadPreviewWorkflow(t)
	minMajor := map[string]int{"actions/checkout": 4, "actions/setup-go": 5, "pulumi/actions": 6}
	ref := regexp.MustCompile(`^v(\d+)(\.\d+){0,2}$|^[0-9a-f]{40}$`)
	for id, job := range wf.Jobs {
		for _, step := range job.Steps {
			if step.Uses == "" {
				continue
			}
			repo, version, ok := strings.Cut(step.Uses, "@")
			m := ref.FindStringSubmatch(version)
			if !ok || m == nil {
				t.Errorf("job %s: uses %q is not pinned to vN, vN.N.N or a commit", id, step.Uses)
				continue
			}
			if m[1] == "" {
				continue // a commit
			}
			major, _ := strconv.Atoi(m[1])
			if major < minMajor[repo] {
				t.Errorf("job %s: %s is older than v%d", id, step.Uses, minMajor[repo])
			}
		}
	}
}

var (
	secretsRef    = regexp.MustCompile(`\bsecrets\b`)
	secretsExact  = regexp.MustCompile(`^\$\{\{\s*secrets\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}$`)
	sensitiveName = regexp.MustCompile(`(?i)token|passphrase|password|secret|credential|kubeconfig_b64|access_key|private_key`)
	// Literal credentials: Pulumi access tokens, GitHub tokens, AWS keys, PEM blocks.
	literalToken = regexp.MustCompile(`pul-[0-9a-f]{40}|gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|client-key-data|client-certificate-data`)
)

// scalars walks a YAML tree and calls f for every mapping key/value pair with a scalar value.
func scalars(n *yaml.Node, path string, f func(path, key, value string)) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			scalars(c, fmt.Sprintf("%s[%d]", path, i), f)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind == yaml.ScalarNode {
				f(path+"."+k.Value, k.Value, v.Value)
			}
			scalars(v, path+"."+k.Value, f)
		}
	}
}

func TestWorkflowSecretsOnlyFromTheSecretsContext(t *testing.T) {
	wf, raw := loadPreviewWorkflow(t)
	if m := literalToken.Find(raw); m != nil {
		t.Errorf("%s contains what looks like a literal credential (%.12s...)", previewWorkflowPath, m)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	scalars(&doc, "", func(path, key, value string) {
		// Any use of the secrets context is exactly ${{ secrets.NAME }}: no secrets[...] or
		// toJSON(secrets), which hand out every secret.
		if strings.Contains(value, "${{") && secretsRef.MatchString(value) && !secretsExact.MatchString(value) {
			t.Errorf("%s: %q: reference a secret only as the whole value ${{ secrets.NAME }}", path, value)
		}
		// Inputs and variables named like credentials come from secrets (or the job token);
		// switches such as persist-credentials: false are no credential.
		inputOrEnv := strings.Contains(path, ".env.") || strings.Contains(path, ".with.")
		if inputOrEnv && sensitiveName.MatchString(key) && value != "true" && value != "false" &&
			!secretsExact.MatchString(value) && !regexp.MustCompile(`^\$\{\{\s*github\.token\s*\}\}$`).MatchString(value) {
			t.Errorf("%s: %q is named like a credential but is not ${{ secrets.* }}", path, value)
		}
		// No expression inside a script: a secret would land in the script text, and event
		// fields (branch names, labels) could inject shell code. Scripts read env instead.
		if key == "run" && strings.Contains(value, "${{") {
			t.Errorf("%s: run script contains an expression; pass it through env", path)
		}
	})

	// The credentials are never printed: a script that gets a secret in its env only tests it
	// for emptiness or decodes it into a file, and never traces.
	for id, job := range wf.Jobs {
		for _, step := range job.Steps {
			for name, value := range step.Env {
				if !secretsExact.MatchString(value) {
					continue
				}
				if strings.Contains(step.Run, "set -x") {
					t.Errorf("job %s, step %q: set -x with secret %s in the environment", id, step.label(), name)
				}
				for _, line := range strings.Split(step.Run, "\n") {
					if !strings.Contains(line, "$"+name) {
						continue
					}
					test := regexp.MustCompile(`\[ -[zn] "\$` + name + `" \]`).MatchString(line)
					decode := regexp.MustCompile(`printf '%s' "\$` + name + `" \| base64 --decode >`).MatchString(line)
					if !test && !decode {
						t.Errorf("job %s, step %q: %s may be printed by %q", id, step.label(), name, strings.TrimSpace(line))
					}
				}
			}
		}
	}
}

// guardOverrideLabel is the default override label of the guard script.
func guardOverrideLabel(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(guardScriptPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`label=\$\{GUARD_OVERRIDE_LABEL:-([^}]+)\}`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s: no default override label", guardScriptPath)
	}
	return string(m[1])
}

// guardProtectedTypes is the default list of protected types of the guard script.
func guardProtectedTypes(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(guardScriptPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)protected_default=\((.*?)\)`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s: no protected_default list", guardScriptPath)
	}
	return strings.Fields(string(m[1]))
}

// The guard protects what the brief of a reviewer names, with type tokens the program really
// registers (a typo would silently protect nothing).
func TestPreviewGuardProtectsTypesTheProgramRegisters(t *testing.T) {
	got := guardProtectedTypes(t)
	want := []string{
		"kubernetes:core/v1:PersistentVolumeClaim",
		"kubernetes:core/v1:PersistentVolume",
		"kubernetes:core/v1:Secret",
		"kubernetes:core/v1:Namespace",
		"kubernetes:storage.k8s.io/v1:StorageClass",
		"tls:index/privateKey:PrivateKey",
		"tls:index/selfSignedCert:SelfSignedCert",
		"random:index/randomPassword:RandomPassword",
	}
	for _, typ := range want {
		if !slices.Contains(got, typ) {
			t.Errorf("the guard does not protect %s", typ)
		}
	}
	registered := map[string]bool{}
	deployOnly := func(ctx *pulumi.Context) error {
		cfg, err := stackconfig.Load(ctx)
		if err != nil {
			return err
		}
		_, err = deploy(ctx, cfg)
		return err
	}
	// The default stack (dynamic storage: the StorageClass copy; generated CA) and hostPath (the PV).
	for _, cfg := range []map[string]string{nil, {"storage.filesystem.mode": "hostPath"}} {
		for _, r := range testutil.MustRun(t, cfg, deployOnly).Resources() {
			registered[r.Type] = true
		}
	}
	for _, typ := range got {
		if !registered[typ] {
			t.Errorf("the guard protects %s, which the program never registers (a typo?)", typ)
		}
	}
}

type guardRun struct {
	code    int
	out     string
	summary string
}

func runGuard(t *testing.T, input string, env ...string) guardRun {
	t.Helper()
	for _, tool := range []string{"bash", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required for the guard tests (.ci/run installs jq)", tool)
			}
			t.Skipf("%s not installed: guard tests skipped", tool)
		}
	}
	summary := filepath.Join(t.TempDir(), "summary.md")
	cmd := exec.Command("bash", guardScriptPath, input)
	// A clean environment: a GITHUB_EVENT_PATH of the CI running these tests must not leak in.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "GITHUB_STEP_SUMMARY=" + summary}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run the guard: %v", err)
	}
	s, _ := os.ReadFile(summary)
	return guardRun{code: code, out: out.String(), summary: string(s)}
}

func errorLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "::error") {
			lines = append(lines, l)
		}
	}
	return lines
}

const (
	urnPrefix  = "urn:pulumi:minikube::registry-stack::"
	urnPVC     = urnPrefix + "registry-stack:index:Storage$kubernetes:core/v1:PersistentVolumeClaim::registry-data"
	urnPV      = urnPrefix + "registry-stack:index:Storage$kubernetes:core/v1:PersistentVolume::registry-data"
	urnRedisSc = urnPrefix + "registry-stack:index:Redis$kubernetes:core/v1:Secret::registry-redis"
	urnRedisPw = urnPrefix + "registry-stack:index:Redis$random:index/randomPassword:RandomPassword::registry-redis-password"
	urnRedisDp = urnPrefix + "registry-stack:index:Redis$kubernetes:apps/v1:Deployment::registry-redis"
	urnCAKey   = urnPrefix + "registry-stack:index:TLS$tls:index/privateKey:PrivateKey::registry-ca-key"
	urnCA      = urnPrefix + "registry-stack:index:TLS$tls:index/selfSignedCert:SelfSignedCert::registry-ca"
	urnCert    = urnPrefix + "registry-stack:index:TLS$tls:index/locallySignedCert:LocallySignedCert::registry-server-cert"
)

func fixture(name string) string { return filepath.Join(guardFixtures, name) }

func TestPreviewGuard(t *testing.T) {
	override := "GITHUB_EVENT_PATH=" + fixture("event-override.json")
	prodOverride := "GITHUB_EVENT_PATH=" + fixture("event-override-production.json")
	cases := []struct {
		name, input string
		env         []string
		code        int
		errors      []string // URNs named in ::error lines
		notErrors   []string // URNs that must not be
		output      []string // other text the output must contain
	}{
		{name: "updates only pass", input: "updates-only.json", code: 0},
		{name: "no changes pass", input: "no-changes.json", code: 0},
		{name: "PVC replace fails naming the URN", input: "replace-pvc.json", code: 1,
			errors: []string{urnPVC}, output: []string{"replace reasons: spec", "retainOnDelete", "allow-data-replacement"}},
		{name: "Secret delete fails", input: "delete-secret.json", code: 1,
			errors: []string{urnRedisSc, urnRedisPw}, notErrors: []string{urnRedisDp}},
		{name: "CA rotation fails on the CA, not on the re-issued server cert", input: "rotate-ca.json", code: 1,
			errors: []string{urnCAKey, urnCA}, notErrors: []string{urnCert}},
		{name: "replacement steps of one PV are one finding", input: "replace-pv-steps.json", code: 1,
			errors: []string{urnPV}, output: []string{"create-replacement,delete-replaced,replace"}},
		{name: "object deleted outside Pulumi only warns", input: "vanished-pvc.json", code: 0,
			notErrors: []string{urnPVC}, output: []string{"::warning title=preview-guard: gone from the cluster", urnPVC}},
		{name: "override label passes", input: "replace-pvc.json", env: []string{override, "GUARD_STACK=minikube"}, code: 0,
			notErrors: []string{urnPVC}, output: []string{"::warning", urnPVC, "allowed by label allow-data-replacement"}},
		{name: "override by environment passes", input: "delete-secret.json", env: []string{"ALLOW_DATA_REPLACEMENT=true"}, code: 0,
			output: []string{"allowed by ALLOW_DATA_REPLACEMENT=true"}},
		{name: "other labels do not override", input: "replace-pvc.json",
			env: []string{"GITHUB_EVENT_PATH=" + fixture("event-no-override.json")}, code: 1, errors: []string{urnPVC}},
		{name: "a stack's label does not override another stack", input: "replace-pvc.json",
			env: []string{prodOverride, "GUARD_STACK=minikube"}, code: 1, errors: []string{urnPVC}},
		{name: "a stack's label overrides that stack", input: "replace-pvc.json",
			env: []string{prodOverride, "GUARD_STACK=production"}, code: 0, output: []string{"allowed by label allow-data-replacement:production"}},
		{name: "custom protected types", input: "delete-secret.json", env: []string{"GUARD_PROTECTED_TYPES=kubernetes:apps/v1:Deployment"}, code: 1,
			errors: []string{urnRedisDp}, notErrors: []string{urnRedisSc}},
		{name: "streaming JSON events are refused", input: "streaming-events.jsonl", code: 2, output: []string{"not the output of 'pulumi preview --json'"}},
		// Captured from the real CLI (see the fixtures' README).
		{name: "real CLI: no-op preview with refresh passes", input: "real-cli-noop-refresh.json", code: 0},
		{name: "real CLI: replaced CA and password, deleted password fail", input: "real-cli-replace-delete-refresh.json", code: 1,
			errors: []string{
				urnPrefix + "random:index/randomPassword:RandomPassword::registry-password",
				urnPrefix + "random:index/randomPassword:RandomPassword::registry-redis-password",
				urnCAKey, urnCA,
			},
			output: []string{"replace reasons: length", "replace reasons: algorithm"}},
		{name: "real CLI: a failed preview never passes", input: "real-cli-failed-preview.json", code: 2,
			output: []string{"the preview failed", `Attribute algorithm value must be one of`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runGuard(t, fixture(tc.input), tc.env...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; output:\n%s", r.code, tc.code, r.out)
			}
			for _, urn := range tc.errors {
				if n := namedIn(errorLines(r.out), urn); n != 1 {
					t.Errorf("URN %s named in %d error lines, want 1; output:\n%s", urn, n, r.out)
				}
			}
			for _, urn := range tc.notErrors {
				if namedIn(errorLines(r.out), urn) != 0 {
					t.Errorf("URN %s flagged as an error; output:\n%s", urn, r.out)
				}
			}
			for _, s := range tc.output {
				if !strings.Contains(r.out, s) {
					t.Errorf("output lacks %q:\n%s", s, r.out)
				}
			}
			if tc.code == 0 && len(errorLines(r.out)) > 0 {
				t.Errorf("passing run printed errors:\n%s", r.out)
			}
		})
	}
}

// namedIn counts the lines that name urn as a whole word.
func namedIn(lines []string, urn string) int {
	re := regexp.MustCompile(regexp.QuoteMeta(urn) + `(\s|$)`)
	n := 0
	for _, l := range lines {
		if re.MatchString(l) {
			n++
		}
	}
	return n
}

func TestPreviewGuardRefusesWhatIsNotAPreview(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty":        "",
		"invalid JSON": `{"steps": [`,
		"not a digest": `{"hello": "world"}`,
		"two digests":  `{"steps": []} {"steps": []}`,
		"steps object": `{"steps": {"op": "delete"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
			if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if r := runGuard(t, f); r.code != 2 {
				t.Errorf("exit %d, want 2 (nothing checked must never pass); output:\n%s", r.code, r.out)
			}
		})
	}
	if r := runGuard(t, filepath.Join(dir, "missing.json")); r.code != 2 {
		t.Errorf("missing file: exit %d, want 2", r.code)
	}
}

func TestPreviewGuardWritesTheStepSummary(t *testing.T) {
	r := runGuard(t, fixture("replace-pvc.json"), "GUARD_STACK=production")
	for _, want := range []string{"### preview-guard: stack `production`", "| replace | `kubernetes:core/v1:PersistentVolumeClaim` | `registry-data` | spec |", "`allow-data-replacement:production`"} {
		if !strings.Contains(r.summary, want) {
			t.Errorf("step summary lacks %q:\n%s", want, r.summary)
		}
	}
	if r := runGuard(t, fixture("updates-only.json")); !strings.Contains(r.summary, "No replacement or deletion") {
		t.Errorf("step summary of a safe plan:\n%s", r.summary)
	}
}
