//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// badConfigCase is one invalid stack config value run through the real CLI. Every value is also
// covered (with many more) by the stackconfig unit tests; this proves the CLI path: the program
// refuses before it registers anything, and says which key is wrong.
type badConfigCase struct {
	// key is set with `pulumi config set --path` when it is a path (storage.s3.bucket, mirrors[0].name).
	key, value string
	// secret: a credential set in plain text; refused, and the message must not repeat it.
	secret bool
	// named is the key the error must name when it is not key (a field of a structured key).
	named string
	// says is what the error's line must say when the layout, not the value, is wrong (an unknown
	// field, a key of the old layout, two variants at once): those lines do not quote a value.
	says string
}

// badConfigRun is one throwaway configuration holding several invalid values at once: the program
// validates everything before it registers a resource and reports every problem together, so one
// CLI run proves all of them (each line names its key and quotes its value). Values that exclude
// each other (two registry.image tags, storage.filesystem.mode nfs and the hostPath-only pvcSize >
// pvSize) go in separate runs, and so do the credentials and the layout: a plaintext credential, an
// unknown field or an old key is refused while the raw values are read, before the validation of
// the others starts.
type badConfigRun struct {
	name  string
	cases []badConfigCase
	// extra are valid values the bad ones need to be bad (set first).
	extra map[string]string
	up    bool // also run `pulumi up --yes`: it must fail the same way and create nothing
}

var badConfigRuns = []badConfigRun{
	{name: "values", up: true, cases: []badConfigCase{
		{key: "replicas", value: "0"},
		{key: "hostname", value: "bad host"},
		{key: "storage.filesystem.pvSize", value: "ten-gigs"},
		{key: "storage.filesystem.mode", value: "nfs"},
		{key: "gc.schedule", value: "every day"},
		{key: "accounts[0]", value: ""},
		{key: "routing.sourceRanges[0]", value: "10.0.0.0"},
		{key: "registry.image", value: "registry:latest"},
		{key: "tls.generated.validityHours", value: "1"},
	}},
	{name: "layout", cases: []badConfigCase{
		{key: "storage.filesystem.pvcsize", value: "5Gi", says: "unknown field; allowed in storage.filesystem: mode, className"},
		{key: "gcSchedule", value: "@daily", says: "moved to gc.schedule"},
		{key: "routing.gateway.create.className", value: "traefik", named: "routing", says: "set either routing.ingress or routing.gateway, not both"},
	}},
	{name: "hostpath-and-v2", extra: map[string]string{"storage.filesystem.mode": "hostPath", "storage.filesystem.pvSize": "2Gi"}, cases: []badConfigCase{
		{key: "storage.filesystem.pvcSize", value: "3Gi"}, // the claim would not fit its hostPath volume
		{key: "registry.image", value: "registry:2.8.3"},  // v2 cannot read the rendered v3 config
	}},
	{name: "plaintext-credentials", cases: []badConfigCase{
		{key: "s3SecretAccessKey", value: "plain-text-secret-key-e2e", secret: true},
		// Pulumi marks a structured key secret when any field is: a field set without --secret
		// leaves the whole key plaintext, which the program sees through the real CLI.
		{key: "mirrors[0].password", value: "plain-upstream-token-e2e", secret: true, named: "mirrors"},
	}},
}

// configKeyRE finds the keys an error message of the program names: config "KEY": ...
var configKeyRE = regexp.MustCompile(`config "([^"]+)"`)

// stepBadConfigRejected runs each group of invalid values through `pulumi preview` (and one through
// `pulumi up`) of a separate throwaway stack (same backend, its own namespace name): the command
// fails, the message names exactly the keys of the group and quotes each value on its key's line,
// and nothing is created — the throwaway stack has no resource, no namespace or PV of its namespace
// exists in the cluster, and the deployed stack's resources are untouched.
func (f *fixture) stepBadConfigRejected(t *testing.T) {
	need(t, f.StackCreated, "stack")
	ctx := context.Background()
	p, err := kit.NewPulumiCLI(f.RepoRoot, f.Settings.WorkDir, f.Settings.LogDir, f.Settings.Stack+"-bad")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.InitStack(ctx); err != nil {
		t.Fatal(err)
	}
	deployed := false
	defer func() {
		if deployed {
			if _, err := p.RunLong(ctx, kit.DestroyTimeout, "bad-destroy", "destroy", "--yes", "--skip-preview"); err != nil {
				t.Errorf("destroy of the throwaway stack %s: %v", p.Stack, err)
			}
		}
		if _, err := p.Run(ctx, 2*time.Minute, false, "stack", "rm", "--yes", "--force"); err != nil {
			t.Errorf("remove the throwaway stack %s: %v", p.Stack, err)
		}
	}()
	badNamespace := f.Settings.Namespace + "-bad"
	base := f.Settings.StackConfig()
	base["namespace"] = badNamespace
	if f.Settings.StorageMode == "hostPath" {
		base["storage.filesystem.hostPath"] = filepath.Join(f.Settings.WorkDir, "bad-data")
	}
	if err := p.SetConfig(ctx, base); err != nil {
		t.Fatal(err)
	}
	pristine, err := os.ReadFile(p.ConfigFile)
	if err != nil {
		t.Fatalf("config of the throwaway stack: %v", err)
	}

	mainBefore, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}

	var lines []string
	for _, run := range badConfigRuns {
		t.Run(run.name, func(t *testing.T) {
			if err := os.WriteFile(p.ConfigFile, pristine, 0o600); err != nil {
				t.Fatal(err)
			}
			if len(run.extra) > 0 {
				if err := p.SetConfig(ctx, run.extra); err != nil {
					t.Fatalf("config set %v: %v", run.extra, err)
				}
			}
			want := map[string]badConfigCase{}
			for _, c := range run.cases {
				args := []string{"config", "set", "--plaintext"}
				if strings.ContainsAny(c.key, ".[") {
					args = append(args, "--path")
				}
				if _, err := p.Run(ctx, 2*time.Minute, true, append(args, "registry-stack:"+c.key, c.value)...); err != nil {
					t.Fatalf("config set %s: %v", c.label(), err)
				}
				want[c.errorKey()] = c
			}
			commands := [][]string{{"preview"}}
			if run.up {
				commands = append(commands, []string{"up", "--yes", "--skip-preview"})
			}
			for _, cmd := range commands {
				start := time.Now()
				out, err := p.RunLong(ctx, kit.PreviewTimeout, "bad-"+cmd[0]+"-"+run.name, cmd...)
				took := time.Since(start)
				if err == nil {
					if cmd[0] == "up" {
						deployed = true
					}
					t.Errorf("pulumi %s with %d invalid values succeeded; want a config error\n%s", cmd[0], len(run.cases), kit.Tail(out, 20))
					continue
				}
				msg := err.Error()
				named := map[string]bool{}
				for _, m := range configKeyRE.FindAllStringSubmatch(msg, -1) {
					named[m[1]] = true
				}
				if !maps.EqualFunc(named, want, func(bool, badConfigCase) bool { return true }) {
					t.Errorf("pulumi %s: the error names keys %v, want exactly %v:\n%s", cmd[0], keysOf(named), keysOf(want), kit.Tail(msg, 20))
				}
				for _, c := range run.cases {
					reason := lineNaming(msg, c.errorKey())
					switch {
					case c.secret && strings.Contains(out+msg, c.value):
						t.Errorf("pulumi %s with plaintext %s: the output repeats the credential", cmd[0], c.key)
					case c.secret && !strings.Contains(reason, "--secret"):
						t.Errorf("pulumi %s with plaintext %s: the error does not say to use --secret:\n%s", cmd[0], c.key, kit.Tail(msg, 20))
					case c.says != "" && !strings.Contains(reason, c.says):
						t.Errorf("pulumi %s with %s: the line naming the key does not say %q: %q", cmd[0], c.label(), c.says, reason)
					case !c.secret && c.says == "" && !strings.Contains(reason, fmt.Sprintf("%q", c.value)):
						t.Errorf("pulumi %s with %s: the line naming the key does not quote the value: %q", cmd[0], c.label(), reason)
					}
					lines = append(lines, fmt.Sprintf("%-7s %-30s refused in the run %q (%s): %s", cmd[0], c.label(), run.name, took.Round(100*time.Millisecond), reason))
				}
				res, err := p.ExportResources(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var created []string
				for _, r := range res {
					if r.Type != "pulumi:pulumi:Stack" {
						created = append(created, kit.ShortURN(r.URN))
					}
				}
				if len(created) > 0 {
					deployed = true
					t.Errorf("pulumi %s with the run %q registered resources: %v", cmd[0], run.name, created)
				}
				t.Logf("pulumi %s with the run %q (%d invalid values): refused in %s, %d resources in the throwaway stack", cmd[0], run.name, len(run.cases), took.Round(100*time.Millisecond), len(created))
			}
		})
	}

	// Only what the throwaway stack would own counts: the suite's other track creates namespaces
	// and volumes meanwhile.
	leftovers, err := f.objectsOfNamespace(ctx, badNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if len(leftovers) > 0 {
		t.Errorf("the throwaway stack's objects exist after the invalid configs ran: %v", leftovers)
	}
	mainAfter, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(mainAfter) != len(mainBefore) {
		t.Errorf("the deployed stack went from %d to %d resources", len(mainBefore), len(mainAfter))
	}
	f.Report.Fact("invalid stack config through the real CLI (throwaway stack %s; no namespace or PV of %s, deployed stack %d resources before and after):\n%s",
		p.Stack, badNamespace, len(mainAfter), strings.Join(lines, "\n"))
}

// label shows the case without repeating a credential.
func (c badConfigCase) label() string {
	if c.secret {
		return c.key + "=<plaintext credential>"
	}
	return fmt.Sprintf("%s=%q", c.key, c.value)
}

// errorKey is the key the error must name.
func (c badConfigCase) errorKey() string {
	if c.named != "" {
		return c.named
	}
	return c.key
}

// lineNaming is the error's line about key.
func lineNaming(msg, key string) string {
	for _, l := range strings.Split(msg, "\n") {
		if strings.Contains(l, `config "`+key+`"`) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// objectsOfNamespace lists the namespaces named ns or ns-<something> (the stack's own and its
// scrape or platform namespaces) and the PersistentVolumes named after ns or claimed from it.
func (f *fixture) objectsOfNamespace(ctx context.Context, ns string) ([]string, error) {
	ours := func(name string) bool { return name == ns || strings.HasPrefix(name, ns+"-") }
	var found []string
	out, err := f.Kube.Run(ctx, false, "get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		return nil, err
	}
	for _, name := range strings.Fields(out) {
		if ours(name) {
			found = append(found, "namespace/"+name)
		}
	}
	out, err = f.Kube.Run(ctx, false, "get", "pv", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.claimRef.namespace}{"\n"}{end}`)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		name, claimNS, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name != "" && (ours(name) || ours(claimNS)) {
			found = append(found, "pv/"+name)
		}
	}
	return found, nil
}

func keysOf[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
