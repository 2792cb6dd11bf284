//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/stackconfig"
)

// upgradeState is what the previous release left for the upgrade step to compare.
type upgradeState struct {
	// cli runs the previous release's program on the track's stack.
	cli *kit.PulumiCLI
	// password and caPEM are the outputs before the upgrade; image was pushed through them.
	password, caPEM string
	image           *kit.Image
}

// stepDeployPreviousRelease deploys the stack as its previous release (E2E_UPGRADE_FROM, a commit
// of this repository) built from git, and pushes an image through it. Without that commit in the
// clone (a shallow clone) it says so and deploys the working tree's program: the upgrade step
// then skips.
func (f *fixture) stepDeployPreviousRelease(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(f.Settings.WorkDir, "previous-release")
	err := f.Timed("build previous release", func() (string, error) {
		return f.Settings.UpgradeFrom[:min(12, len(f.Settings.UpgradeFrom))], buildRelease(ctx, f.RepoRoot, f.Settings.UpgradeFrom, dir)
	})
	if err != nil {
		// Said in the step's log and in the summary's facts, and the upgrade step reports SKIP.
		t.Logf("UPGRADE NOT TESTED: the previous release %s cannot be built here (%v); deploying the current program instead",
			f.Settings.UpgradeFrom, err)
		f.Report.Fact("UPGRADE NOT TESTED: previous release %s not buildable here: %v", f.Settings.UpgradeFrom, err)
		f.stepDeploy(t)
		return
	}
	prev := f.Pulumi.InProject(dir)
	if err := f.Pulumi.InitStack(ctx); err != nil {
		t.Fatal(err)
	}
	f.StackCreated = true
	// The previous release reads the flat layout: the suite's config as a user of it had set it.
	legacy, err := legacyConfig(f.Settings.StackConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Pulumi.SetConfig(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	err = f.Timed("pulumi up (previous release)", func() (string, error) {
		ops, err := prev.Up(ctx, "up-previous-release")
		return fmt.Sprintf("%d resources created", countOps(ops, "create")), err
	})
	if err != nil {
		t.Fatalf("pulumi up of the previous release: %v\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	if err := f.LoadOutputs(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Timed("wait Ready", func() (string, error) { return "previous release", f.WaitReady(ctx, 2) }); err != nil {
		t.Fatalf("%v\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	if err := f.Connect(ctx, t); err != nil {
		t.Fatal(err)
	}
	img, err := kit.RandomImage(f.repo("before-upgrade"), "v1", 2, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Client.PushImage(ctx, img); err != nil {
		t.Fatalf("push to the previous release: %v", err)
	}
	f.upgrade = &upgradeState{cli: prev, password: f.Out.Password, caPEM: f.Out.CACertPEM, image: img}
	f.survivors = append(f.survivors, img)
}

// legacyConfig is config (by path) in the flat layout of the releases before 2026-12, the inverse of
// stackconfig.Moved: accounts become username and extraAccounts, the variant set the mode keys.
func legacyConfig(config map[string]string) (map[string]string, error) {
	byPath := map[string]string{}
	for old, path := range stackconfig.Moved() {
		byPath[path] = old
	}
	out := map[string]string{}
	for k, v := range config {
		switch {
		case k == "accounts":
			var accounts []string
			if err := json.Unmarshal([]byte(v), &accounts); err != nil || len(accounts) == 0 {
				return nil, fmt.Errorf("accounts %q: %v", v, err)
			}
			extra, err := json.Marshal(accounts[1:])
			if err != nil {
				return nil, err
			}
			out["username"], out["extraAccounts"] = accounts[0], string(extra)
		case stackconfig.IsSecretKey(k):
			return nil, fmt.Errorf("%s: the legacy config of the upgrade step has no credential", k)
		case byPath[k] != "":
			out[byPath[k]] = v
			if strings.HasPrefix(k, "storage.s3.") {
				out["storageDriver"] = "s3"
			}
		case strings.Contains(k, "."):
			return nil, fmt.Errorf("%s has no key in the flat layout", k)
		default:
			out[k] = v
		}
	}
	return out, nil
}

// buildRelease extracts commit of the repository at root into dir (git archive: the clone's work
// tree and worktree list stay untouched) and builds its program where its Pulumi.yaml expects it.
func buildRelease(ctx context.Context, root, commit, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", root, commit, dir)
	if out, err := archive.CombinedOutput(); err != nil {
		return fmt.Errorf("git archive %s: %w: %s", commit, err, strings.TrimSpace(string(out)))
	}
	// The same command the Go language host runs on preview and up (it then finds the binary up to
	// date); built here so its time shows as its own line.
	if _, err := kit.RunCmd(ctx, dir, nil, "go", "build", "-o", ".bin/registry-stack", "."); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}

// underComponent is the URN a resource of the previous release has once the RegistryStack
// component holds it: the component's type is the first of its type chain. The provider stays at
// the root.
func underComponent(urn string) string {
	parts := strings.SplitN(urn, "::", 4)
	if len(parts) != 4 || strings.HasPrefix(parts[2], "pulumi:") {
		return urn
	}
	parts[2] = registrystack.Type + "$" + parts[2]
	return strings.Join(parts, "::")
}

// stepUpgrade upgrades the previous release's stack to the working tree's program: the preview
// guard passes and the plan creates only the component and changes nothing else, `up` keeps the
// identity of every resource (IDs, Kubernetes UIDs, passwords, keys, certificates), and the image
// pushed before pulls byte for byte with the password and CA from before.
func (f *fixture) stepUpgrade(t *testing.T) {
	if f.upgrade == nil {
		t.Skip("UPGRADE NOT TESTED: the previous release was not deployed (see deploy_previous_release)")
	}
	ctx := context.Background()
	before, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The old layout is refused naming each key's new path, then migrated as the README says.
	if out, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-old-layout", "preview"); err == nil ||
		!strings.Contains(out+err.Error(), `config "gcSuspend": moved to gc.suspend`) || !strings.Contains(out+err.Error(), "make migrate-config") {
		t.Errorf("preview of the old config layout: err %v, want every old key refused with its new path\n%s", err, kit.Tail(out, 15))
	}
	migration, err := f.Pulumi.MigrateConfig(ctx, f.RepoRoot)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("migrate-config:\n%s", migration)
	lines := strings.Split(strings.TrimSpace(migration), "\n")
	f.Report.Fact("config migrated to the structured layout: %s", lines[len(lines)-1])
	out, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-upgrade", "preview", "--json")
	if err != nil {
		t.Fatalf("pulumi preview --json of the upgrade: %v", err)
	}
	guard := exec.CommandContext(ctx, "bash", filepath.Join(f.RepoRoot, "scripts", "preview-guard.sh"), "-")
	guard.Env = append(os.Environ(), "GUARD_STACK="+f.Settings.Stack, "ALLOW_DATA_REPLACEMENT=", "GITHUB_EVENT_PATH=", "GITHUB_STEP_SUMMARY=")
	guard.Stdin = strings.NewReader(out)
	if g, err := guard.CombinedOutput(); err != nil {
		t.Errorf("the preview guard refuses the upgrade: %v\n%s", err, g)
	} else {
		t.Logf("preview guard: %s", strings.TrimSpace(string(g)))
	}
	plan, err := kit.DecodePreview(out)
	if err != nil {
		t.Fatal(err)
	}
	var planned []kit.StepOp
	for _, s := range plan.Steps {
		planned = append(planned, kit.StepOp{Op: s.Op, URN: s.URN})
	}
	t.Logf("upgrade plan: %s (changeSummary %v)", kit.SummarizeOps(planned), plan.ChangeSummary)
	checkOnlyComponentCreated(t, "preview", planned)

	ops, err := f.TimedUp(ctx, "pulumi up (upgrade)", "up-upgrade")
	if err != nil {
		t.Fatalf("%v\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	checkOnlyComponentCreated(t, "up", ops)
	after, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := compareIdentitiesMapped(t, before, after, "", underComponent)
	t.Logf("identity kept for %d resources across the upgrade (IDs, Kubernetes UIDs, random/tls outputs)", n)

	if err := f.LoadOutputs(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Out.Password != f.upgrade.password || f.Out.CACertPEM != f.upgrade.caPEM {
		t.Errorf("the upgrade changed the password or the CA")
	}
	if err := f.WaitReady(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// f.Client still holds the password and CA of the previous release.
	if _, err := f.Client.PullImage(ctx, f.upgrade.image.Tag, f.upgrade.image); err != nil {
		t.Errorf("the image pushed before the upgrade does not pull with the old password and CA: %v", err)
	}
}

// checkOnlyComponentCreated: the upgrade creates the RegistryStack component (it holds no state
// of its own) and nothing else; everything else stays the same or is updated in place.
func checkOnlyComponentCreated(t *testing.T, what string, ops []kit.StepOp) {
	t.Helper()
	created := 0
	for _, o := range ops {
		switch {
		case o.Op == "create" && strings.Contains(o.URN, "::"+registrystack.Type+"::"):
			created++
		case o.Op != "same" && o.Op != "read" && o.Op != "refresh":
			// The migrated config must mean what the old one meant: an update would be a value that
			// changed on the way.
			t.Errorf("%s: %s %s (an upgrade may only create the component; everything else stays the same)", what, o.Op, o.URN)
		}
	}
	if created != 1 {
		t.Errorf("%s: the RegistryStack component created %d times, want once", what, created)
	}
}
