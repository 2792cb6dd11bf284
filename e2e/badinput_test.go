//go:build e2e

package e2e

import (
	"context"
	"fmt"
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
	key, value string
	path       bool // set with `pulumi config set --path` (list element)
	up         bool // also run `pulumi up --yes`: it must fail the same way and create nothing
	// secret: a credential set in plain text; refused, and the message must not repeat it.
	secret bool
	// named is the key the error must name when it is not key (a field of a structured key).
	named string
	// extra are valid values the bad one needs to be bad (set first).
	extra map[string]string
}

var badConfigCases = []badConfigCase{
	{key: "replicas", value: "0", up: true},
	{key: "hostname", value: "bad host"},
	{key: "pvcSize", value: "3Gi", extra: map[string]string{"storageMode": "hostPath", "pvSize": "2Gi"}}, // the claim would not fit its hostPath volume
	{key: "pvSize", value: "ten-gigs"},
	{key: "storageMode", value: "nfs"},
	{key: "gcSchedule", value: "every day"},
	{key: "username", value: ""},
	{key: "ingressSourceRanges[0]", value: "10.0.0.0", path: true},
	{key: "registryImage", value: "registry:latest"},
	{key: "registryImage", value: "registry:2.8.3"}, // v2 cannot read the rendered v3 config
	{key: "routing", value: "loadbalancer"},
	{key: "tlsSource", value: "acme"},
	{key: "s3SecretAccessKey", value: "plain-text-secret-key-e2e", secret: true},
	// Pulumi marks a structured key secret when any field is: a field set without --secret leaves
	// the whole key plaintext, which the program sees through the real CLI.
	{key: "mirrors[0].password", value: "plain-upstream-token-e2e", path: true, secret: true, named: "mirrors"},
}

// configKeyRE finds the keys an error message of the program names: config "KEY": ...
var configKeyRE = regexp.MustCompile(`config "([^"]+)"`)

// stepBadConfigRejected runs each invalid value through `pulumi preview` of a separate throwaway
// stack (same backend, its own namespace name): the preview fails, the message names exactly that
// key, and nothing is created — the throwaway stack has no resource, no new namespace or PV exists
// in the cluster, and the main stack's resources are untouched.
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
		base["storageHostPath"] = filepath.Join(f.Settings.WorkDir, "bad-data")
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
	nsBefore, err := f.clusterNames(ctx, "namespaces")
	if err != nil {
		t.Fatal(err)
	}
	pvBefore, err := f.clusterNames(ctx, "pv")
	if err != nil {
		t.Fatal(err)
	}

	var lines []string
	for _, c := range badConfigCases {
		label := fmt.Sprintf("%s=%q", c.key, c.value)
		name := c.key + "-" + c.value
		if c.secret {
			label, name = c.key+"=<plaintext credential>", c.key+"-plaintext"
		}
		t.Run(fileSafe(name), func(t *testing.T) {
			if err := os.WriteFile(p.ConfigFile, pristine, 0o600); err != nil {
				t.Fatal(err)
			}
			if len(c.extra) > 0 {
				if err := p.SetConfig(ctx, c.extra); err != nil {
					t.Fatalf("config set %v: %v", c.extra, err)
				}
			}
			args := []string{"config", "set", "--plaintext"}
			if c.path {
				args = append(args, "--path")
			}
			if _, err := p.Run(ctx, 2*time.Minute, true, append(args, "registry-stack:"+c.key, c.value)...); err != nil {
				t.Fatalf("config set %s: %v", label, err)
			}
			commands := [][]string{{"preview"}}
			if c.up {
				commands = append(commands, []string{"up", "--yes", "--skip-preview"})
			}
			for _, cmd := range commands {
				start := time.Now()
				out, err := p.RunLong(ctx, kit.PreviewTimeout, "bad-"+cmd[0]+"-"+fileSafe(name), cmd...)
				took := time.Since(start)
				if err == nil {
					if cmd[0] == "up" {
						deployed = true
					}
					t.Errorf("pulumi %s with %s succeeded; want a config error\n%s", cmd[0], label, kit.Tail(out, 20))
					continue
				}
				msg := err.Error()
				named := map[string]bool{}
				for _, m := range configKeyRE.FindAllStringSubmatch(msg, -1) {
					named[m[1]] = true
				}
				want := c.key
				if c.named != "" {
					want = c.named
				}
				if !named[want] || len(named) != 1 {
					t.Errorf("pulumi %s with %s: the error names keys %v, want exactly %q:\n%s", cmd[0], label, keysOf(named), want, kit.Tail(msg, 15))
				}
				switch {
				case c.secret && strings.Contains(out+msg, c.value):
					t.Errorf("pulumi %s with plaintext %s: the output repeats the credential", cmd[0], c.key)
				case c.secret && !strings.Contains(msg, "--secret"):
					t.Errorf("pulumi %s with plaintext %s: the error does not say to use --secret:\n%s", cmd[0], c.key, kit.Tail(msg, 15))
				case !c.secret && !strings.Contains(msg, fmt.Sprintf("%q", c.value)):
					t.Errorf("pulumi %s with %s: the error does not quote the value:\n%s", cmd[0], label, kit.Tail(msg, 15))
				}
				reason := ""
				for _, l := range strings.Split(msg, "\n") {
					if strings.Contains(l, `config "`+want+`"`) {
						reason = strings.TrimSpace(l)
						break
					}
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
					t.Errorf("pulumi %s with %s registered resources: %v", cmd[0], label, created)
				}
				t.Logf("pulumi %s with %s: refused in %s, %d resources in the throwaway stack: %s", cmd[0], label, took.Round(100*time.Millisecond), len(created), reason)
				lines = append(lines, fmt.Sprintf("%-7s %-30s refused in %5s, %d resources: %s", cmd[0], label, took.Round(100*time.Millisecond), len(created), reason))
			}
		})
	}

	nsAfter, err := f.clusterNames(ctx, "namespaces")
	if err != nil {
		t.Fatal(err)
	}
	if added := newNames(nsBefore, nsAfter); len(added) > 0 {
		t.Errorf("namespaces appeared while the invalid configs ran: %v", added)
	}
	if slices.Contains(nsAfter, badNamespace) {
		t.Errorf("namespace %s of the throwaway stack exists", badNamespace)
	}
	pvAfter, err := f.clusterNames(ctx, "pv")
	if err != nil {
		t.Fatal(err)
	}
	if added := newNames(pvBefore, pvAfter); len(added) > 0 {
		t.Errorf("PersistentVolumes appeared while the invalid configs ran: %v", added)
	}
	mainAfter, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(mainAfter) != len(mainBefore) {
		t.Errorf("the main stack went from %d to %d resources", len(mainBefore), len(mainAfter))
	}
	f.Report.Fact("invalid stack config through the real CLI (throwaway stack %s; %d namespaces and %d PVs before and after, main stack %d resources before and after):\n%s",
		p.Stack, len(nsAfter), len(pvAfter), len(mainAfter), strings.Join(lines, "\n"))
}

// clusterNames lists the names of a cluster-scoped kind.
func (f *fixture) clusterNames(ctx context.Context, kind string) ([]string, error) {
	out, err := f.Kube.Run(ctx, false, "get", kind, "-o", "name")
	if err != nil {
		return nil, err
	}
	names := strings.Fields(out)
	slices.Sort(names)
	return names, nil
}

func newNames(before, after []string) []string {
	var added []string
	for _, n := range after {
		if !slices.Contains(before, n) {
			added = append(added, n)
		}
	}
	return added
}

func keysOf(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// fileSafe keeps letters and digits and turns everything else into '-'.
func fileSafe(s string) string {
	return strings.Trim(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(s, "-"), "-")
}
